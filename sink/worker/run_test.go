package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/writers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// kfake's cluster and kafka-go's shared transport keep background
		// goroutines for the life of the process.
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*conn).run"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// memOffsets is a group's commits in memory.
type memOffsets struct {
	mu      sync.Mutex
	offset  int64
	meta    string
	commits int
}

func (o *memOffsets) Committed(context.Context, string, int) (int64, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.offset, o.meta, nil
}

func (o *memOffsets) Commit(_ context.Context, _ int, _, _ string, _ int, offset int64, meta string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.offset, o.meta = offset, meta
	o.commits++
	return nil
}

// TestRunPausesOnSpoolFault: a worker whose spool disk cannot be written
// does not return (which would end the generation of every partition of
// the member and rejoin the group); it reports itself stopped with the
// error, retries with backoff, and once the disk works again it runs,
// reports so, and every record lands exactly once.
func TestRunPausesOnSpoolFault(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	hour := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	conn, err := kafka.DialLeader(context.Background(), "tcp", addr, "events", 0)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []kafka.Message
	for i := range 20 {
		msgs = append(msgs, kafka.Message{Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, i, hour.Add(time.Duration(i)*time.Second).UnixMilli())})
	}
	if _, err := conn.WriteMessages(msgs...); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	cfg := testConfig()
	lake := writers.NewMemory()
	w, _ := testWorker(t, cfg, lake)
	env := w.env
	// The spool folder's parent is a file: every spool write fails.
	blocker := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env.SpoolDir = filepath.Join(blocker, "spool")
	env.Dialer, env.Brokers, env.StartOffset = kafka.DefaultDialer, []string{addr}, kafka.FirstOffset
	env.IdleTimeout, env.CommitInterval = 300*time.Millisecond, 100*time.Millisecond
	offsets := &memOffsets{offset: -1}
	env.Offsets = offsets
	health := env.Health.(*testHealth)

	ctx, cancel := context.WithCancel(context.Background())
	drain := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, drain, func() {}) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			select {
			case err := <-done:
				t.Fatalf("Run returned (%v) while waiting for %s", err, what)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the worker to stop on the spool fault", func() bool {
		health.mu.Lock()
		defer health.mu.Unlock()
		return len(health.stops) > 0 && health.spool != nil
	})
	health.mu.Lock()
	stop := health.stops[0]
	health.mu.Unlock()
	if !strings.Contains(stop.Error(), "spool dir") || !strings.Contains(stop.Error(), blocker) {
		t.Errorf("stop reason %q does not name the spool folder", stop)
	}
	if objs, _ := lake.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("lake has %d objects during the fault", len(objs))
	}

	// The disk works again.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitFor("all records committed", func() bool {
		offsets.mu.Lock()
		defer offsets.mu.Unlock()
		return offsets.offset == 20
	})
	waitFor("the worker to report it runs again", func() bool {
		health.mu.Lock()
		defer health.mu.Unlock()
		return health.starts > 0 && health.spool == nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after the generation ended", err)
	}
	var ids []int64
	for _, f := range readLake(t, lake) {
		for _, r := range f.rows {
			ids = append(ids, r["id"].(int64))
		}
	}
	slices.Sort(ids)
	if len(ids) != 20 || ids[0] != 0 || ids[19] != 19 || len(slices.Compact(ids)) != 20 {
		t.Errorf("lake holds ids %v, want 0..19 once each", ids)
	}
}

// fencedOffsets refuses every commit as the broker refuses one of an ended
// generation (kafkaio.Admin.Commit's error, TestAdminCommitFenced).
type fencedOffsets struct{ noOffsets }

func (fencedOffsets) Commit(_ context.Context, _ int, _, topic string, partition int, _ int64, _ string) error {
	return fmt.Errorf("offset commit %s/%d: %w", topic, partition, kafka.IllegalGeneration)
}

// TestCommitFencedRevokes: a commit the broker refuses because the
// generation ended stops the worker as revoked (errRevoked: consume returns
// and the open files are abandoned) instead of being retried or counted as
// committed.
func TestCommitFencedRevokes(t *testing.T) {
	w, _ := testWorker(t, testConfig(), writers.NewMemory())
	w.env.Offsets = fencedOffsets{}
	ts := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour).UnixMilli()
	m := kafka.Message{Topic: "events", Offset: 0, HighWaterMark: 1, Value: fmt.Appendf(nil, `{"id":1,"ts":%d}`, ts)}
	if err := w.process(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if err := w.commit(context.Background()); !errors.Is(err, errRevoked) {
		t.Fatalf("commit refused for a stale generation = %v, want errRevoked", err)
	}
	if w.offsets.last != -1 {
		t.Errorf("last committed offset %d after a refused commit, want -1", w.offsets.last)
	}
}
