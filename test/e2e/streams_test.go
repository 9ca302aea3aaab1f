package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/test/testenv"
)

// streamHook is a webhook that refuses the events of some streams and
// records the accepted ones per stream ("hour UTC/revision").
type streamHook struct {
	mu       sync.Mutex
	refuse   map[string]bool
	refused  map[string]int
	accepted map[string]map[string]int
}

func (h *streamHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var ev completion.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refuse[ev.Stream] {
		h.refused[ev.Stream]++
		http.Error(w, "refused by the test", http.StatusServiceUnavailable)
		return
	}
	hour, _ := time.Parse(time.RFC3339, ev.Hour)
	if h.accepted[ev.Stream] == nil {
		h.accepted[ev.Stream] = map[string]int{}
	}
	h.accepted[ev.Stream][fmt.Sprintf("%s/%d", hour.UTC().Format("2006-01-02T15Z"), ev.Revision)]++
	w.WriteHeader(http.StatusOK)
}

// state returns how often stream's events were refused and the events
// accepted.
func (h *streamHook) state(stream string) (int, map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	acc := map[string]int{}
	for k, v := range h.accepted[stream] {
		acc[k] = v
	}
	return h.refused[stream], acc
}

// TestWebhookRefusingOneStream: two streams share the webhook, which
// refuses every event of iot. iot's records come first, so its finalizer
// is already retrying its first event when clickstream's records arrive;
// clickstream's markers and events all arrive while iot's are refused — its first marker is out, its later ones wait
// for its events (hour order) — and /readyz names iot's events only. When
// the webhook accepts iot again, iot's markers and events follow. With the
// streams finalized from one goroutine, iot's delivery, retried until
// accepted, held back clickstream's markers too.
func TestWebhookRefusingOneStream(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	hook := &streamHook{refuse: map[string]bool{"iot": true}, refused: map[string]int{}, accepted: map[string]map[string]int{}}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)

	k := testenv.StartKafka(t)
	k.CreateTopic(t, "clickstream", 2)
	k.CreateTopic(t, "iot-telemetry", 2)
	from := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	p := newProduced()
	// iot first: its finalizer is delivering (and retrying) its first
	// event before clickstream has a record.
	produce(t, k, p, "iot", "iot-telemetry", []int{0, 1}, 3000, from, 3, demo.IoT, iotID)

	root := t.TempDir() + "/lake"
	b := localBackendAt(t, root)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfgPath := writeConfig(t, k.Addr, "lakesink-webhook-streams", b.storage, httpAddr)
	editConfig(t, cfgPath, "markers:\n", fmt.Sprintf("markers:\n  webhook: {url: %q, timeout: 1s}\n", srv.URL))
	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"), testenv.Options{}, "run", "-c", cfgPath)

	hours := []time.Time{from, from.Add(time.Hour), from.Add(2 * time.Hour)}
	testenv.Eventually(t, 2*time.Minute, 250*time.Millisecond, "iot's first event refused", func() error {
		if refused, _ := hook.state("iot"); refused < 2 {
			return fmt.Errorf("iot's events refused %d times", refused)
		}
		return nil
	})
	produce(t, k, p, "clickstream", "clickstream", []int{0, 1}, 3000, from, 3, demo.Clickstream, clickID)
	marker := func(stream string, h time.Time) bool {
		_, err := os.Stat(fmt.Sprintf("%s/%s/dt=%s/hour=%s/_SUCCESS", root, stream, h.Format("2006-01-02"), h.Format("15")))
		return err == nil
	}
	testenv.Eventually(t, 2*time.Minute, 250*time.Millisecond, "clickstream's markers and events while iot's are refused", func() error {
		select {
		case <-proc.Done():
			return fmt.Errorf("lakesink exited: %v", proc.ExitErr())
		default:
		}
		_, acc := hook.state("clickstream")
		for _, h := range hours {
			if !marker("clickstream", h) {
				return fmt.Errorf("no clickstream marker for %s", h.Format(time.RFC3339))
			}
			if acc[h.Format("2006-01-02T15Z")+"/1"] == 0 {
				return fmt.Errorf("no clickstream event for %s (accepted %v)", h.Format(time.RFC3339), acc)
			}
		}
		return nil
	})
	if _, acc := hook.state("iot"); len(acc) != 0 {
		t.Fatalf("iot events accepted while refused: %v", acc)
	}
	if marker("iot", hours[1]) {
		t.Errorf("iot marker of %s out before the events of %s were delivered", hours[1].Format(time.RFC3339), hours[0].Format(time.RFC3339))
	}
	code, body := httpGet(httpAddr, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "completion events of stream iot") || strings.Contains(body, "completion events of stream clickstream") {
		t.Errorf("/readyz %d %q, want 503 naming iot's events only", code, body)
	}

	hook.mu.Lock()
	hook.refuse["iot"] = false
	hook.mu.Unlock()
	testenv.Eventually(t, 2*time.Minute, 250*time.Millisecond, "iot's markers and events after the webhook accepts", func() error {
		_, acc := hook.state("iot")
		for _, h := range hours {
			if !marker("iot", h) || acc[h.Format("2006-01-02T15Z")+"/1"] == 0 {
				return fmt.Errorf("iot %s: marker %v, events %v", h.Format(time.RFC3339), marker("iot", h), acc)
			}
		}
		return nil
	})
	stopGracefully(t, proc)
	for _, stream := range []string{"clickstream", "iot"} {
		checkExactlyOnce(t, b.lake, stream, p.valid[stream])
	}
}
