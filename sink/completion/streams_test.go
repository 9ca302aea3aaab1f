package completion

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ledger"
)

// TestFinalizerStreamsIndependent: two streams share the webhook, which
// refuses every event of one of them. The other stream's markers and
// events still go out, hour after hour; the refused stream's markers wait
// (events go out in hour order) and follow once the webhook accepts. With
// all streams checked from one goroutine, the refused stream's delivery,
// retried until accepted, held back every other stream.
func TestFinalizerStreamsIndependent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var mu sync.Mutex
	refuse := map[string]bool{"refused": true}
	got := map[string][]string{} // stream -> accepted event hours
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if refuse[ev.Stream] {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		got[ev.Stream] = append(got[ev.Stream], ev.Hour)
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()
	accepted := func(stream string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(got[stream])
	}

	h := newHarness(t, at(14, 0, 0))
	cfg := config.Default()
	cfg.Markers.Webhook = config.Webhook{URL: hook.URL, Timeout: config.Duration(time.Second)}
	n, err := NewNotifier(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n.minBackoff, n.maxBackoff = time.Millisecond, 5*time.Millisecond
	streams := []*Stream{
		{Name: "refused", Topics: []string{"r"}, Loc: time.UTC, Lateness: testLateness, Path: h.st.Path},
		{Name: "ok", Topics: []string{"o"}, Loc: time.UTC, Lateness: testLateness, Path: h.st.Path},
	}
	part := func(topic string) kafkaio.PartitionOffsets {
		wm := at(14, 0, 0) // hours 10, 11 and 12 complete
		return kafkaio.PartitionOffsets{Topic: topic, Partition: 0, High: 1000, Committed: 500,
			Metadata: encMeta(ledger.Meta{WM: wm.UnixMilli(), RW: wm.UnixMilli(), FH: hourH.UnixMilli(), LA: wm.UnixMilli()})}
	}
	h.offs.Set(part("r"), part("o"))
	f := NewFinalizer(Options{
		Streams: streams, Writer: h.lake, Offsets: h.offs, Notifier: n,
		CheckInterval: 10 * time.Millisecond, IdleTimeout: testIdle, WebhookTimeout: time.Second,
		Now: h.clock.Now, Metrics: NewMetrics(prometheus.NewRegistry()), Log: slog.New(slog.DiscardHandler),
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(20 * time.Second)
	for accepted("ok") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stream ok: %d of 3 events delivered while the other stream's were refused", accepted("ok"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, hr := range []time.Time{hourH, hourH1, hourH2} {
		if ok, _ := h.lake.Exists(ctx, h.st.Path.MarkerKey("ok", hr)); !ok {
			t.Errorf("stream ok: no marker for %s", hr.Format(time.RFC3339))
		}
	}
	if accepted("refused") != 0 {
		t.Fatalf("refused stream's events accepted")
	}
	if ok, _ := h.lake.Exists(ctx, h.st.Path.MarkerKey("refused", hourH1)); ok {
		t.Errorf("stream refused: marker of %s before the events of %s were delivered", hourH1.Format(time.RFC3339), hourH.Format(time.RFC3339))
	}

	mu.Lock()
	refuse["refused"] = false
	mu.Unlock()
	for accepted("refused") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stream refused: %d of 3 events delivered after the webhook recovered", accepted("refused"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
