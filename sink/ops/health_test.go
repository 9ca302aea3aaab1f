package ops

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/writers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestHealthReasons: each problem a stage reports shows in readiness until
// it clears; a stopped partition worker shows until its partition runs
// again.
func TestHealthReasons(t *testing.T) {
	h := newHealth(slog.New(slog.DiscardHandler), time.Now, prometheus.NewRegistry())
	h.SetJoined(true, "")
	if r := h.reasons(); len(r) != 0 {
		t.Fatalf("healthy: %v", r)
	}
	h.Storage(errors.New("put x: disk full"))
	h.DeadLetters(errors.New("topic dlq: not found"))
	update, end := h.RegistryWait(errors.New("connection refused"))
	_, end2 := h.RegistryWait(errors.New("connection refused"))
	update(errors.New("timeout"))
	h.WorkerStopped("clicks", 3, errors.New("spool dir: read-only file system"))
	h.WorkerStopped("clicks", 1, errors.New("boom"))
	h.Spool(errors.New("spool dir /s: no space left on device"))
	h.Events("clicks", DepWebhook, errors.New("webhook post: status 401 Unauthorized"))
	h.Kafka(errors.New("fetch clicks/0: connection refused")) // counted and logged, not readiness
	want := []string{
		"completion events of stream clicks not delivered (webhook): webhook post: status 401 Unauthorized",
		"dead-letter topic unavailable: topic dlq: not found",
		"schema registry unreachable (2 partitions waiting): timeout",
		"spool disk failing: spool dir /s: no space left on device",
		"storage unreachable: put x: disk full",
		"partition worker stopped: clicks/1: boom",
		"partition worker stopped: clicks/3: spool dir: read-only file system",
	}
	if r := h.reasons(); !slices.Equal(r, want) {
		t.Fatalf("reasons = %q\nwant %q", r, want)
	}
	if !h.EventsFailing("clicks") || h.EventsFailing("iot") {
		t.Error("EventsFailing does not name the failing stream only")
	}
	h.Storage(nil)
	h.DeadLetters(nil)
	h.Spool(nil)
	h.Events("clicks", DepWebhook, nil)
	end()
	end() // idempotent
	end2()
	h.WorkerStarted("clicks", 3)
	h.WorkerStarted("clicks", 1)
	h.SetJoined(false, "rebalancing")
	if r := h.reasons(); !slices.Equal(r, []string{"consumer group not joined: rebalancing"}) {
		t.Fatalf("after recovery: %q", r)
	}
}

// TestReadyGauge: lakesink_ready follows /readyz.
func TestReadyGauge(t *testing.T) {
	now := time.Now()
	o, reg := newTestOps(t, writers.NewMemory(), &now)
	ready := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "lakesink_ready" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no lakesink_ready")
		return -1
	}
	if got := ready(); got != 0 {
		t.Errorf("lakesink_ready before joining = %v, want 0", got)
	}
	o.Health.SetJoined(true, "")
	if got := ready(); got != 1 {
		t.Errorf("lakesink_ready when ready = %v, want 1", got)
	}
	o.Health.Storage(errors.New("put x: read-only file system"))
	if got := ready(); got != 0 {
		t.Errorf("lakesink_ready with storage failing = %v, want 0", got)
	}
}

// TestFaultLogging: a fault is logged when it starts, at most once a minute
// while it lasts however many partitions report it, and once when it
// clears; a fault that flaps within the minute is counted, not logged again.
// Every error counts in lakesink_dependency_errors_total.
func TestFaultLogging(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	reg := prometheus.NewRegistry()
	h := newHealth(slog.New(slog.NewTextHandler(&out, nil)), func() time.Time { return now }, reg)
	lines := func() []string {
		t.Helper()
		s := strings.TrimSpace(out.String())
		out.Reset()
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	down := errors.New("dial tcp 127.0.0.1:7070: connection refused")
	for range 100 { // 100 partitions fail at once
		h.Storage(down)
	}
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "level=WARN") || !strings.Contains(l[0], "storage unreachable") || !strings.Contains(l[0], "connection refused") {
		t.Fatalf("start: %q, want one warning with the error", l)
	}
	for i := range 59 { // a minute of retries every second
		now = now.Add(time.Second)
		h.Storage(down)
		if l := lines(); len(l) != 0 {
			t.Fatalf("second %d: logged %q", i+1, l)
		}
	}
	now = now.Add(time.Second)
	h.Storage(down)
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "still failing") || !strings.Contains(l[0], "errors=159") {
		t.Fatalf("after a minute: %q, want one line counting the 159 errors since the first line", l)
	}
	now = now.Add(time.Second)
	h.Storage(nil)
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "level=INFO") || !strings.Contains(l[0], "recovered: storage unreachable") || !strings.Contains(l[0], "after=1m1s") {
		t.Fatalf("clear: %q", l)
	}
	h.Storage(nil)
	// Flapping within the minute: counted, not logged.
	now = now.Add(time.Second)
	h.Storage(down)
	h.Storage(nil)
	if l := lines(); len(l) != 0 {
		t.Fatalf("flap: logged %q", l)
	}
	if got := testutil.ToFloat64(h.errors.WithLabelValues(DepStorage)); got != 161 {
		t.Errorf("storage errors = %v, want 161", got)
	}
	if got := testutil.ToFloat64(h.errors.WithLabelValues(DepWebhook)); got != 0 {
		t.Errorf("webhook errors = %v, want 0 (pre-registered)", got)
	}
}
