package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/writers"
)

// TestKeepFilesAcrossGenerations: a worker whose generation ends keeps its
// open file (parks); when its partition comes back unchanged it resumes
// where it was — nothing read twice, one file for the hour in the end; when
// the commit changed in between (another member committed), its file is
// abandoned and the next run starts from the commit.
func TestKeepFilesAcrossGenerations(t *testing.T) {
	for _, changed := range []bool{false, true} {
		t.Run(fmt.Sprintf("commit changed %v", changed), func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			addr := cluster.ListenAddrs()[0]
			// An hour the wall clock has not closed: nothing finishes it.
			hour := time.Now().UTC().Truncate(time.Hour)
			produce := func(from, n int) {
				t.Helper()
				conn, err := kafka.DialLeader(context.Background(), "tcp", addr, "events", 0)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				var msgs []kafka.Message
				for i := from; i < from+n; i++ {
					msgs = append(msgs, kafka.Message{Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, i, hour.Add(time.Duration(i)*time.Millisecond).UnixMilli())})
				}
				if _, err := conn.WriteMessages(msgs...); err != nil {
					t.Fatal(err)
				}
			}
			produce(0, 20)

			lake := writers.NewMemory()
			w, _ := testWorker(t, testConfig(), lake)
			env := w.env
			env.Dialer, env.Brokers, env.StartOffset = kafka.DefaultDialer, []string{addr}, kafka.FirstOffset
			env.IdleTimeout, env.CommitInterval, env.KeepFiles = time.Hour, 50*time.Millisecond, true
			offsets := &memOffsets{offset: -1}
			env.Offsets = offsets
			drain := make(chan struct{})

			// run runs the worker in a generation until it has read up to
			// next, then ends the generation.
			run := func(next int64) {
				t.Helper()
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- w.Run(ctx, drain, func() {}) }()
				deadline := time.Now().Add(20 * time.Second)
				for {
					// The commit metadata's read position (ledger.Meta NX)
					// says how far the worker has read.
					offsets.mu.Lock()
					meta, _, _ := ledger.Parse(offsets.meta)
					offsets.mu.Unlock()
					if meta.NX >= next {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("worker did not read to %d", next)
					}
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(150 * time.Millisecond) // a commit after the last read
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("Run: %v", err)
				}
			}
			run(20)
			if !w.Parked() || len(w.files.byKey) != 1 {
				t.Fatalf("after the generation: parked %v with %d open files, want the open hour's file kept", w.Parked(), len(w.files.byKey))
			}
			if changed {
				// Another member owned the partition meanwhile and committed.
				offsets.mu.Lock()
				offsets.meta += " "
				offsets.mu.Unlock()
			}
			ok, err := w.Resume(context.Background(), Generation{ID: 2, Member: "m", Partitions: 1})
			if err != nil || ok == changed {
				t.Fatalf("Resume: %v, %v; want %v", ok, err, !changed)
			}
			if !ok {
				w.Abandon()
				if got := testutil.ToFloat64(env.Metrics.FilesAbandoned); got != 1 {
					t.Errorf("files abandoned %v, want 1", got)
				}
				if w.Parked() || len(w.files.byKey) != 0 {
					t.Fatalf("after Abandon: parked %v, %d open files", w.Parked(), len(w.files.byKey))
				}
				return
			}
			produce(20, 10)
			run(30)
			if got := testutil.ToFloat64(env.Metrics.FilesKept); got != 1 {
				t.Errorf("files kept %v, want 1", got)
			}
			if got := testutil.ToFloat64(env.Metrics.RecordsReplayed); got != 0 {
				t.Errorf("records replayed %v, want 0", got)
			}
			if got := testutil.ToFloat64(env.Metrics.RecordsConsumed); got != 30 {
				t.Errorf("records consumed %v, want 30: each once", got)
			}
			// The last generation drains: one file of the hour, 30 records.
			if ok, err := w.Resume(context.Background(), Generation{ID: 3, Member: "m", Partitions: 1}); !ok || err != nil {
				t.Fatalf("second Resume: %v, %v", ok, err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx, drain, func() { cancel() }) }()
			close(drain)
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			objs, _ := lake.List(context.Background(), "")
			if len(objs) != 1 || offsets.offset != 30 {
				t.Fatalf("lake holds %d objects, committed %d; want one file of 30 records, committed 30", len(objs), offsets.offset)
			}
		})
	}
}
