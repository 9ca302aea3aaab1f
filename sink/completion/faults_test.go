package completion

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/writers"
)

// downLake fails every Get while down.
type downLake struct {
	writers.Writer
	down atomic.Bool
}

func (d *downLake) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if d.down.Load() {
		return nil, errors.New("dial tcp 127.0.0.1:9: connection refused")
	}
	return d.Writer.Get(ctx, key)
}

// storageFaults records the finalizer's storage reports: "ok" or "error".
type storageFaults struct {
	recFaults
	mu      sync.Mutex
	storage []string
}

func (s *storageFaults) Storage(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := "ok"
	if err != nil {
		r = "error"
	}
	s.storage = append(s.storage, r)
}

func (s *storageFaults) reports() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.storage)
}

// TestFinalizerClearsItsStorageFault: a check that fails on the lake is
// reported as a storage fault, and once a round of checks reaches the
// lake without an error the finalizer reports that too, clearing its own
// fault (readiness no longer lets the write probe clear it).
func TestFinalizerClearsItsStorageFault(t *testing.T) {
	h := newHarness(t, at(11, 0, 0))
	h.offs.Set(busy(0, at(10, 30, 0)), busy(1, at(10, 30, 0))) // reads the cursor, finalizes nothing
	lake := &downLake{Writer: h.lake}
	lake.down.Store(true)
	faults := &storageFaults{}
	f := NewFinalizer(Options{
		Streams: []*Stream{h.st}, Writer: lake, Offsets: h.offs,
		CheckInterval: 10 * time.Millisecond, IdleTimeout: testIdle, WebhookTimeout: time.Second,
		Now: h.clock.Now, Metrics: NewMetrics(prometheus.NewRegistry()), Log: slog.New(slog.DiscardHandler),
		Faults: faults,
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, ok func(r []string) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(faults.reports()); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: storage reports %v", what, faults.reports())
			}
		}
	}
	waitFor("a failing lake reported", func(r []string) bool { return len(r) >= 2 })
	if r := faults.reports(); slices.Contains(r, "ok") {
		t.Fatalf("the lake failed every check, yet a round was reported ok: %v", r)
	}
	n := len(faults.reports())
	lake.down.Store(false)
	waitFor("the lake back reported", func(r []string) bool { return slices.Contains(r[n:], "ok") })
}
