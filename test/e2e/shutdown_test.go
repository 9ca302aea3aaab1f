package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/test/testenv"
)

// TestGracefulShutdown sends SIGTERM while the sink holds open files of the
// current hour: it finishes, uploads and commits them before exiting, and
// leaves nothing half-written in the lake.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "clickstream", 3)
	k.CreateTopic(t, "iot-telemetry", 1)
	const group = "lakesink-shutdown"
	b := localBackend(t)
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	cfgPath := writeConfig(t, k.Addr, group, b.storage, httpAddr)
	// A long idle timeout: only the shutdown can finish the files.
	editConfig(t, cfgPath, "idle_partition_timeout: 3s", "idle_partition_timeout: 10m")
	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"), testenv.Options{}, "run", "-c", cfgPath)

	p := newProduced()
	now := time.Now().UTC()
	produce(t, k, p, "clickstream", "clickstream", []int{0, 1, 2}, 3000, now.Add(-time.Minute), 0, demo.Clickstream, clickID)
	n := len(p.valid["clickstream"]) + len(p.malformed)
	testenv.Eventually(t, time.Minute, 100*time.Millisecond, "records consumed", func() error {
		if got := metric(httpAddr, "lakesink_records_consumed_total"); got < float64(n) {
			return fmt.Errorf("%v of %d consumed", got, n)
		}
		return nil
	})
	if committed, _ := k.CommittedOffsets(t, group, "clickstream", 3); committed[0] > 0 && committed[0] == int64(p.perPart["clickstream"][0]) {
		t.Fatalf("offsets already fully committed before shutdown (%v): the test would prove nothing", committed)
	}
	proc.Signal(15)
	select {
	case <-proc.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	if err := proc.ExitErr(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	committed, _ := k.CommittedOffsets(t, group, "clickstream", 3)
	for part := 0; part < 3; part++ {
		if committed[part] != int64(p.perPart["clickstream"][part]) {
			t.Errorf("partition %d: committed %d after shutdown, want %d", part, committed[part], p.perPart["clickstream"][part])
		}
	}
	// Every valid record is in a data file; nothing temporary is left.
	root := strings.TrimSuffix(strings.SplitN(b.storage, "root: ", 2)[1], "}\n")
	root, _ = strconv.Unquote(root)
	rows := 0
	err := filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(info.Name(), ".") {
			t.Errorf("temporary file left in the lake: %s", path)
		}
		if strings.HasSuffix(path, ".parquet") {
			rel, _ := filepath.Rel(root, path)
			r, _ := readParquet(t, b.lake, filepath.ToSlash(rel))
			rows += len(r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows != len(p.valid["clickstream"]) {
		t.Errorf("%d rows in the lake after shutdown, want %d", rows, len(p.valid["clickstream"]))
	}
}

// metric returns the sum of a metric's samples from /metrics (0 if absent).
func metric(addr, name string) float64 {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}
