// Package statuspage renders lakesink's status page in headless Chromium
// (Debian's chromium package; `make chromium` installs it) against a running
// binary with data, and checks the screenshot and the DOM.
//
// Set LAKESINK_UPDATE_SCREENSHOT=1 to copy the screenshot to
// examples/status-page.png (shown in the README).
package statuspage

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/ops"
	"github.com/lakesink/lakesink/test/testenv"
)

const width, height = 1280, 900

func TestStatusPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker, the sink and Chromium: not in -short mode")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not installed: run `make chromium` (apt-get install -y chromium)")
	}
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "clickstream", 3)
	k.CreateTopic(t, "iot-telemetry", 2)
	// The last hour must close (its end + the demo's lateness of 1m)
	// promptly, and the hours the test counts below must not shift.
	testenv.AwayFromHourEdge(t, time.Minute, 2*time.Minute)
	now := time.Now().UTC()
	from := now.Truncate(time.Hour).Add(-5 * time.Hour)
	produce(t, k.Addr, "clickstream", from, now, 6000, demo.Clickstream)
	produce(t, k.Addr, "iot-telemetry", from, now, 3000, demo.IoT)

	dir := t.TempDir()
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	cfg := demo.Config(k.Addr, filepath.Join(dir, "lake"), filepath.Join(dir, "spool"), httpAddr)
	cfg.Markers.CheckInterval = config.Duration(300 * time.Millisecond)
	cfg.Markers.IdlePartitionTimeout = config.Duration(2 * time.Second)
	y, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "lakesink.yaml")
	if err := os.WriteFile(cfgPath, y, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := testenv.Build(t, "./cmd/lakesink")
	testenv.Start(t, "lakesink", bin, testenv.Options{Dir: dir}, "run", "-c", cfgPath)
	base := "http://" + httpAddr

	// Wait for the past hours' markers: 5 complete hours per stream.
	testenv.Eventually(t, 60*time.Second, 250*time.Millisecond, "5 complete hours per stream", func() error {
		st, err := apiStatus(base)
		if err != nil {
			return err
		}
		for _, s := range st.Streams {
			n := 0
			for _, h := range s.Hours {
				if h.State == ops.HourComplete && h.Records > 0 {
					n++
				}
			}
			if n < 5 {
				return fmt.Errorf("%s: %d complete hours", s.Name, n)
			}
		}
		if len(st.Partitions) != 5 {
			return fmt.Errorf("%d partitions", len(st.Partitions))
		}
		return nil
	})

	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", fmt.Sprintf("--window-size=%d,%d", width, height)}

	// The DOM: a cell per hour of each stream's grid, states as rendered.
	dom := runChromium(t, chromium, append(args, "--user-data-dir="+t.TempDir(), "--dump-dom", base+"/")...)
	for _, stream := range []string{"clickstream", "iot"} {
		if !strings.Contains(dom, `data-stream="`+stream+`"`) {
			t.Errorf("DOM has no grid for %s", stream)
		}
	}
	if n := strings.Count(dom, `class="cell `); n != 48 {
		t.Errorf("DOM has %d hour cells, want 48 (24 per stream)", n)
	}
	for i := 1; i <= 5; i++ {
		h := now.Truncate(time.Hour).Add(-time.Duration(i) * time.Hour).Format(time.RFC3339)
		if c := strings.Count(dom, `data-hour="`+h+`" data-state="complete"`); c != 2 {
			t.Errorf("hour %s is complete in %d grids, want 2", h, c)
		}
	}
	if !strings.Contains(dom, `id="partitions"`) || strings.Count(dom, "<tr><td>clickstream</td>") != 3 {
		t.Errorf("DOM lacks the partition table with 3 clickstream partitions")
	}

	// The screenshot: right size, not blank, the grid's colours present.
	shot := filepath.Join(t.TempDir(), "status.png")
	runChromium(t, chromium, append(args, "--user-data-dir="+t.TempDir(), "--screenshot="+shot, base+"/")...)
	img := decodePNG(t, shot)
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Fatalf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), width, height)
	}
	colors, nonWhite, green := map[uint32]bool{}, 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			colors[r<<16|g<<8|bl] = true
			if r < 245 || g < 245 || bl < 245 {
				nonWhite++
			}
			// The "complete" cell colour #2e9e4f, with some tolerance.
			if near(r, 0x2e) && near(g, 0x9e) && near(bl, 0x4f) {
				green++
			}
		}
	}
	t.Logf("screenshot: %d colours, %d non-white pixels, %d complete-cell pixels", len(colors), nonWhite, green)
	if len(colors) < 20 || nonWhite < width*height/50 {
		t.Errorf("screenshot looks blank: %d colours, %d non-white pixels", len(colors), nonWhite)
	}
	// 10 complete cells of 44x44 px, minus text.
	if green < 10*44*44/2 {
		t.Errorf("screenshot shows %d pixels of complete cells, want at least %d", green, 10*44*44/2)
	}
	if os.Getenv("LAKESINK_UPDATE_SCREENSHOT") != "" {
		data, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(testenv.RepoRoot(), "examples", "status-page.png"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func near(v, want uint32) bool { return v+6 >= want && v <= want+6 }

func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	return img
}

func apiStatus(base string) (*ops.Status, error) {
	resp, err := http.Get(base + "/api/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var st ops.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode /api/status: %w", err)
	}
	return &st, nil
}

// produce sends n records evenly spread from from to to, round robin over
// the topic's partitions.
func produce(t *testing.T, addr, topic string, from, to time.Time, n int, gen func(*rand.Rand, int64, time.Time) []byte) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.RoundRobin{}, BatchSize: 500,
		BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	r := rand.New(rand.NewPCG(1, 2))
	span := to.Sub(from)
	msgs := make([]kafka.Message, 0, n)
	for i := range n {
		tm := from.Add(span * time.Duration(i) / time.Duration(n)).Truncate(time.Millisecond)
		msgs = append(msgs, kafka.Message{Value: gen(r, int64(i), tm), Time: tm})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatalf("produce %s: %v", topic, err)
	}
}
