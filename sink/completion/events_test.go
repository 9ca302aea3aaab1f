package completion

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakesink/lakesink/config"
)

// recFaults records what the Notifier reports.
type recFaults struct {
	mu     sync.Mutex
	events []string // "stream dependency error-or-ok"
}

func (r *recFaults) Kafka(error)   {}
func (r *recFaults) Storage(error) {}
func (r *recFaults) Blocked(stream string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := "ok"
	if err != nil {
		s = err.Error()
	}
	r.events = append(r.events, stream+" blocked "+s)
}
func (r *recFaults) Events(stream, dep string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := "ok"
	if err != nil {
		s = err.Error()
	}
	r.events = append(r.events, stream+" "+dep+" "+s)
}

// TestNotifierReportsWebhookFaults: a webhook that answers 401 is retried,
// and every failure is reported for the stream (readiness and
// lakesink_dependency_errors_total come from there) until it answers 200,
// which is reported too.
func TestNotifierReportsWebhookFaults(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			http.Error(w, "token expired", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	cfg := config.Default()
	cfg.Markers.Webhook = config.Webhook{URL: srv.URL, Timeout: config.Duration(time.Second)}
	n, err := NewNotifier(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n.minBackoff, n.maxBackoff = time.Millisecond, 5*time.Millisecond
	faults := &recFaults{}
	n.SetFaults(faults)
	ev := Event{Manifest: Manifest{Version: 1, Stream: "clicks", Hour: "2026-11-25T13:00:00Z", Revision: 1, Files: []ManifestFile{}}}
	if err := n.Deliver(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"clicks webhook webhook post: status 401 Unauthorized",
		"clicks webhook webhook post: status 401 Unauthorized",
		"clicks webhook webhook post: status 401 Unauthorized",
		"clicks webhook ok",
	}
	if strings.Join(faults.events, "\n") != strings.Join(want, "\n") {
		t.Errorf("reported:\n%s\nwant:\n%s", strings.Join(faults.events, "\n"), strings.Join(want, "\n"))
	}
	// A delivery cut short by shutdown reports no recovery.
	calls.Store(-1 << 20)
	faults.events = nil
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := n.Deliver(ctx, ev); !errors.Is(err, ctx.Err()) || err == nil {
		t.Fatalf("Deliver after ctx ended = %v", err)
	}
	for _, e := range faults.events {
		if strings.HasSuffix(e, " ok") {
			t.Errorf("reported recovery %q although nothing was delivered", e)
		}
	}
}
