package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/writers"
)

// BenchmarkWorkerProcess is one partition's record path through
// Worker.process without Kafka — decode, hour, ledger, fit, append, the
// memory checks — for each kind of format, files finished at 64 MiB into
// a memory lake. test/bench's BenchmarkPipeline measures decode and
// FileWriter alone; this one adds what the worker does around them.
//
//	go test -run '^$' -bench WorkerProcess -benchmem -count 6 ./sink/worker
func BenchmarkWorkerProcess(b *testing.B) {
	hour := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return hour.Add(time.Duration(i) * time.Hour / 4096).Truncate(time.Millisecond) }
	for _, tc := range []struct {
		name  string
		setup func(b *testing.B) (*Worker, [][]byte)
	}{
		{"json", func(b *testing.B) (*Worker, [][]byte) {
			cfg := testConfig()
			cfg.Files.MaxFileBytes = 64 << 20
			w, _ := testWorker(b, cfg, writers.NewMemory())
			var vals [][]byte
			for i := range 4096 {
				vals = append(vals, fmt.Appendf(nil, `{"id":%d,"ts":%d}`, i, at(i).UnixMilli()))
			}
			return w, vals
		}},
		{"infer", func(b *testing.B) (*Worker, [][]byte) {
			w, _ := inferWorkerForTest(b, 1000)
			w.env.MaxFileBytes = 64 << 20
			var vals [][]byte
			for i := range 4096 {
				vals = append(vals, fmt.Appendf(nil, `{"id":%d,"ts":%d,"user":{"name":"u%d"},"n":%d.5}`, i, at(i).UnixMilli(), i%97, i))
			}
			return w, vals
		}},
		{"avro-derived", func(b *testing.B) (*Worker, [][]byte) {
			w, _, ids := registryVersionsWorker(b, nil)
			w.env.MaxFileBytes = 64 << 20
			var vals [][]byte
			for i := range 4096 {
				// v1 and v2 interleaved: one family, rows remapped.
				o := order{v: 1, id: int64(i), status: "NEW", amount: int32(i)}
				if i%2 == 1 {
					o = order{v: 2, id: int64(i), status: "PAID", amount: int64(i)}
				}
				vals = append(vals, o.encode(b, ids, at(i)))
			}
			return w, vals
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w, vals := tc.setup(b)
			ctx := context.Background()
			var size int64
			for _, v := range vals {
				size += int64(len(v))
			}
			m := kafka.Message{Topic: "events", HighWaterMark: 1 << 62}
			// The sample and the registry's schemas before the clock runs.
			for i := range 2048 {
				m.Value, m.Time, m.Offset = vals[i%len(vals)], at(i%len(vals)), int64(i)
				if err := w.process(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(size / int64(len(vals)))
			b.ReportAllocs()
			off := int64(2048)
			for b.Loop() {
				i := int(off % int64(len(vals)))
				m.Value, m.Time, m.Offset = vals[i], at(i), off
				if err := w.process(ctx, m); err != nil {
					b.Fatal(err)
				}
				off++
			}
			b.StopTimer()
			if len(w.dead.queue) > 0 {
				b.Fatalf("%d records dead-lettered", len(w.dead.queue))
			}
			w.abandonAll()
			b.ReportMetric(float64(off-2048)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
