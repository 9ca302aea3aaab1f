package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink"
	"github.com/lakesink/lakesink/writers/local"
)

// BenchmarkSink runs the whole sink in this process (sink.New with the local
// writer) against the broker process, so that a CPU profile of the test
// binary shows the sink's time and not the broker's:
//
//	go test -run '^$' -bench 'BenchmarkSink/throughput' -benchtime 1x -cpuprofile /tmp/sink.pprof -o /tmp/bench.test ./test/bench
//	go tool pprof -top /tmp/bench.test /tmp/sink.pprof | head -40        # flat
//	go tool pprof -top -cum /tmp/bench.test /tmp/sink.pprof | head -60   # cumulative
//
// Sub-benchmarks: "throughput" (6 partitions, 2 hours in event-time order)
// and "memory" (512 partitions, records spread at random over 4 open hours,
// memory_limit 256MiB). LAKESINK_BENCH_RECORDS sets the backlog (default
// 300,000 clickstream records). The backlog is produced once; each iteration
// consumes all of it with a new consumer group into a new lake, timed from
// sink.Run to every offset committed. The producer runs before the timer
// starts, but it is in this process, so profiles include it: look below
// sink.(*worker) for the sink's share.
func BenchmarkSink(b *testing.B) {
	b.Run("throughput", func(b *testing.B) { benchSink(b, Options{Partitions: 6}) })
	b.Run("memory", func(b *testing.B) {
		benchSink(b, Options{Partitions: 512, Hours: 4, Interleave: true, MemoryLimit: "256MiB"})
	})
}

func benchSink(b *testing.B, o Options) {
	n := 300_000
	if s := os.Getenv("LAKESINK_BENCH_RECORDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("LAKESINK_BENCH_RECORDS=%q", s)
		}
		n = v
	}
	_, bb := binaries(b)
	work := b.TempDir()
	broker, err := startBroker(bb, work)
	if err != nil {
		b.Fatal(err)
	}
	defer broker.stop(10 * time.Second)
	ctx := context.Background()
	const topic = "clickstream"
	o.Records = n
	o.defaults()
	partitions := o.Partitions
	if err := createTopic(ctx, broker.addr, topic, partitions); err != nil {
		b.Fatal(err)
	}
	from := time.Now().UTC().Truncate(time.Hour).Add(-o.Lateness - time.Duration(o.Hours+1)*time.Hour)
	prod, err := produce(ctx, broker.addr, topic, o, from, jsonGenerator(SchemaClickstream))
	if err != nil {
		b.Fatal(err)
	}
	high, err := highWatermarks(ctx, broker.addr, topic, partitions)
	if err != nil {
		b.Fatal(err)
	}

	b.SetBytes(prod.bytes)
	b.ReportAllocs()
	b.ResetTimer()
	iter := 0
	for b.Loop() {
		iter++
		group := fmt.Sprintf("bench-%d", iter)
		cfg := config.Default()
		cfg.Kafka.Brokers = []string{broker.addr}
		cfg.Kafka.GroupID = group
		cfg.Streams = []config.Stream{demo.ClickstreamStream(topic)}
		cfg.Streams[0].AllowedLateness = config.Duration(o.Lateness)
		if o.MemoryLimit != "" {
			if err := cfg.Files.MemoryLimit.UnmarshalText([]byte(o.MemoryLimit)); err != nil {
				b.Fatal(err)
			}
		}
		cfg.Files.SpoolDir = filepath.Join(work, group, "spool")
		cfg.Storage.Local.Root = filepath.Join(work, group, "lake")
		cfg.Markers.IdlePartitionTimeout = config.Duration(o.IdleTimeout)
		cfg.Markers.CheckInterval = config.Duration(500 * time.Millisecond)
		cfg.DeadLetter.Topic = "bench-dlq"
		lake, err := local.New(cfg.Storage.Local.Root)
		if err != nil {
			b.Fatal(err)
		}
		s, err := sink.New(sink.Options{Config: cfg, Writer: lake, Registry: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		m := &monitor{addr: broker.addr, group: group, topic: topic, high: high}
		deadline := time.Now().Add(5 * time.Minute)
		for !m.allCommitted(ctx) {
			if time.Now().After(deadline) {
				b.Fatalf("not all committed: %s", m.last)
			}
			select {
			case err := <-done:
				b.Fatalf("sink stopped: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatalf("sink: %v", err)
		}
		ls, err := lakeCounts(cfg.Storage.Local.Root)
		if err != nil || ls.records != prod.records {
			b.Fatalf("lake holds %d records (%v), produced %d", ls.records, err, prod.records)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(prod.records)*float64(iter)/b.Elapsed().Seconds(), "records/s")
}
