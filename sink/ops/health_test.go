package ops

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lakesink/lakesink/writers"
)

// TestHealthReasons: each problem a stage reports shows in readiness until
// it clears; a stopped partition worker shows until its partition runs
// again.
func TestHealthReasons(t *testing.T) {
	h := newHealth()
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
	want := []string{
		"storage unreachable: put x: disk full",
		"dead-letter topic unavailable: topic dlq: not found",
		"schema registry unreachable (2 partitions waiting): timeout",
		"partition worker stopped: clicks/1: boom",
		"partition worker stopped: clicks/3: spool dir: read-only file system",
	}
	if r := h.reasons(); !slices.Equal(r, want) {
		t.Fatalf("reasons = %q\nwant %q", r, want)
	}
	h.Storage(nil)
	h.DeadLetters(nil)
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
