package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/test/faultproxy"
	"github.com/lakesink/lakesink/test/testenv"
)

// faultHook is a webhook that answers status until told otherwise and
// counts the events it accepted, by "hour UTC/revision".
type faultHook struct {
	mu       sync.Mutex
	status   int
	rejected int
	accepted map[string]int
}

func (h *faultHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status != http.StatusOK {
		h.rejected++
		http.Error(w, "faultsuite: "+http.StatusText(h.status), h.status)
		return
	}
	var ev completion.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	hour, err := time.Parse(time.RFC3339, ev.Hour)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.accepted[fmt.Sprintf("%s/%d", hour.UTC().Format("2006-01-02T15Z"), ev.Revision)]++
	w.WriteHeader(http.StatusOK)
}

func (h *faultHook) set(status int) {
	h.mu.Lock()
	h.status = status
	h.mu.Unlock()
}

func (h *faultHook) counts() (rejected int, accepted map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	accepted = map[string]int{}
	for k, v := range h.accepted {
		accepted[k] = v
	}
	return h.rejected, accepted
}

// markerRevisions lists the marker revisions of stream in the lake, as
// "hour UTC/revision" (the marker store's layout, docs/design.md).
func (s *faultSink) markerRevisions(stream string) map[string]bool {
	s.t.Helper()
	objs, err := s.lake.List(s.t.Context(), "_lakesink/markers/"+stream+"/")
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, o := range objs {
		name := path.Base(o.Key)
		if !strings.HasPrefix(name, "r") || !strings.HasSuffix(name, ".json") {
			continue
		}
		rev, err := strconv.Atoi(strings.TrimSuffix(name[1:], ".json"))
		if err != nil {
			s.t.Fatalf("marker revision %s: %v", o.Key, err)
		}
		out[fmt.Sprintf("%s/%d", path.Base(path.Dir(o.Key)), rev)] = true
	}
	return out
}

// TestFaultWebhook — cell (g): the completion webhook answers 401 or 500,
// refuses connections or accepts them and never answers. /readyz must say
// the stream's completion events are not delivered to the webhook,
// lakesink_dependency_errors_total{dependency="webhook"} > 0 and
// lakesink_ready 0; the sink keeps retrying. Once the webhook answers 200,
// every marker revision's event arrives, the hours' manifests complete and
// /readyz turns 200; the output is exact. Events are delivered at least
// once (documented): where the webhook refused every attempt, each arrives
// exactly once; where an attempt may have reached it unanswered (a silent
// server), a repeat is allowed.
func TestFaultWebhook(t *testing.T) {
	skipShort(t)
	k := testenv.StartKafka(t)
	type cell struct {
		name   string
		status int             // the webhook's answer during the fault
		mode   faultproxy.Mode // the proxy's mode during the fault
		once   bool            // each event exactly once
	}
	cells := []cell{
		{"http401", http.StatusUnauthorized, faultproxy.Pass, true},
		{"http500", http.StatusInternalServerError, faultproxy.Pass, true},
		{"refuse", http.StatusOK, faultproxy.Refuse, true},
		{"blackhole", http.StatusOK, faultproxy.Blackhole, false},
	}
	concurrently(t, cells, func(c cell) string { return c.name }, func(t *testing.T, c cell) {
		hook := &faultHook{status: c.status, accepted: map[string]int{}}
		srv := httptest.NewServer(hook)
		t.Cleanup(srv.Close)
		proxy := faultproxy.New(t, srv.Listener.Addr().String())
		proxy.SetMode(c.mode)

		s := newLocalFaultSink(t, k, "webhook-"+c.name, "")
		s.cfg.Markers.Webhook.URL = "http://" + proxy.Addr()
		s.cfg.Markers.Webhook.Timeout = config.Duration(time.Second)
		s.start()
		s.produceHours(2)
		t.Logf("readiness reason: %s", s.waitNotReady(60*time.Second, "completion events", "clickstream", "webhook"))
		s.checkFaultMetrics("webhook")
		time.Sleep(3 * time.Second) // retries go on
		rejected, accepted := hook.counts()
		if c.status != http.StatusOK && rejected < 2 || len(accepted) > 0 {
			t.Errorf("webhook during the fault: %d rejected attempts (want retries), %d accepted", rejected, len(accepted))
		}

		hook.set(http.StatusOK)
		proxy.SetMode(faultproxy.Pass)
		s.waitDone(faultRecover)
		// The revisions seen once every one of them had its event: a marker
		// the finalizer writes after that (an empty hour completing as the
		// wall clock moves on) may still be waiting for its event at the
		// SIGTERM below, which the next run delivers.
		var delivered map[string]bool
		testenv.Eventually(t, faultRecover, 250*time.Millisecond, "an event for every marker revision", func() error {
			_, accepted := hook.counts()
			delivered = s.markerRevisions("clickstream")
			for rev := range delivered {
				if accepted[rev] == 0 {
					return fmt.Errorf("no event for %s (accepted: %v)", rev, accepted)
				}
			}
			return nil
		})
		s.finish()
		revs := s.markerRevisions("clickstream")
		_, accepted = hook.counts()
		for rev, n := range accepted {
			if !revs[rev] {
				t.Errorf("event for %s, which has no marker revision in the lake", rev)
			} else if c.once && n != 1 {
				t.Errorf("event for %s accepted %d times, want once", rev, n)
			}
		}
		for rev := range delivered {
			if accepted[rev] == 0 {
				t.Errorf("marker revision %s: no event accepted", rev)
			}
		}
	})
}
