// Package demo runs lakesink end to end on one machine with nothing
// installed: an embedded Kafka-protocol broker (franz-go's kfake), an event
// generator for a clickstream and an IoT stream, and a local lake folder.
package demo

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lakesink/lakesink/config"
)

// Options configure a demo run.
type Options struct {
	Lake     string        // local lake folder
	Duration time.Duration // run time after the backlog is produced; 0: until ctx ends
	Records  int           // backlog records per stream
	Hours    int           // past hours the backlog spans
	HTTP     string        // listen address of the sink's endpoints; "" for none
	// Run runs the sink with cfg until ctx ends, calling ready with the
	// HTTP address once it serves. The command wires the real sink here.
	Run func(ctx context.Context, cfg *config.Config, ready func(httpAddr string)) error
}

// DefaultOptions are the `lakesink demo` defaults.
func DefaultOptions() Options {
	return Options{Lake: "./lake", Duration: 20 * time.Second, Records: 30000, Hours: 3, HTTP: "127.0.0.1:0"}
}

const (
	clickTopic = "clickstream"
	iotTopic   = "iot-telemetry"
	icebergDir = "_iceberg" // the demo's catalog and table metadata, under the lake
)

// Config returns the sink configuration the demo runs with.
func Config(broker, lake, spool, httpAddr string) *config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{broker}
	cfg.Kafka.GroupID = "lakesink-demo"
	cfg.Kafka.CommitInterval = config.Duration(time.Second)
	click, iot := ClickstreamStream(clickTopic), IoTStream(iotTopic)
	click.AllowedLateness = config.Duration(time.Minute)
	iot.AllowedLateness = config.Duration(time.Minute)
	// The clickstream also goes into an Apache Iceberg table, in an
	// embedded SQLite catalog under the lake.
	table := config.DefaultTable()
	table.Format, table.Namespace = config.TableIceberg, "lake"
	table.Catalog = config.Catalog{Type: config.CatalogSQL, URI: filepath.Join(lake, icebergDir, "catalog.db"), Warehouse: filepath.Join(lake, icebergDir)}
	click.Table = &table
	cfg.Streams = []config.Stream{click, iot}
	cfg.Storage.Type = config.StorageLocal
	cfg.Storage.Local.Root = lake
	cfg.Files.SpoolDir = spool
	cfg.Markers.IdlePartitionTimeout = config.Duration(5 * time.Second)
	cfg.Markers.CheckInterval = config.Duration(time.Second)
	cfg.DeadLetter.Topic = "lakesink-dlq"
	cfg.HTTP.Listen = httpAddr
	cfg.ShutdownTimeout = config.Duration(15 * time.Second)
	return cfg
}

// Run runs the demo and prints progress and a summary to out.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(6, clickTopic), kfake.SeedTopics(3, iotTopic),
		kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
	if err != nil {
		return fmt.Errorf("start embedded broker: %w", err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]

	lake, err := filepath.Abs(opts.Lake)
	if err != nil {
		return err
	}
	spool, err := os.MkdirTemp("", "lakesink-demo-spool-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(spool)
	cfg := Config(broker, lake, spool, opts.HTTP)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo config: %w", err)
	}

	fmt.Fprintf(out, "lakesink demo\n  broker     %s (embedded)\n  lake       %s\n  streams    clickstream (6 partitions; also Iceberg table lake.clickstream), iot (3 partitions)\n", broker, lake)
	now := time.Now()
	start := now.Truncate(time.Hour).Add(-time.Duration(opts.Hours) * time.Hour)
	fmt.Fprintf(out, "  backlog    %d events per stream from %s to now, ~0.5%% malformed\n", opts.Records, start.UTC().Format("2006-01-02 15:04 MST"))

	w := &kafka.Writer{Addr: kafka.TCP(broker), Balancer: &kafka.Hash{}, BatchSize: 1000, BatchTimeout: 10 * time.Millisecond, RequiredAcks: kafka.RequireOne}
	defer w.Close()
	var produced, malformed int
	r := rand.New(rand.NewPCG(uint64(now.UnixNano()), 42))
	for _, s := range []struct {
		topic, stream string
		gen           func(*rand.Rand, int64, time.Time) []byte
	}{{clickTopic, "clickstream", Clickstream}, {iotTopic, "iot", IoT}} {
		batch := make([]kafka.Message, 0, 1000)
		span := now.Sub(start)
		for i := 0; i < opts.Records; i++ {
			t := start.Add(time.Duration(int64(span) * int64(i) / int64(opts.Records)))
			v := s.gen(r, int64(i), t)
			if r.IntN(200) == 0 {
				v, _ = Malformed(r, s.stream, int64(i), t)
				malformed++
			}
			batch = append(batch, kafka.Message{Topic: s.topic, Key: fmt.Appendf(nil, "k%d", r.IntN(1000)), Value: v, Time: t})
			if len(batch) == cap(batch) || i == opts.Records-1 {
				if err := w.WriteMessages(ctx, batch...); err != nil {
					return fmt.Errorf("produce: %w", err)
				}
				produced += len(batch)
				batch = batch[:0]
			}
		}
	}
	fmt.Fprintf(out, "  produced   %d events (%d malformed, bound for the dead-letter topic)\n\n", produced, malformed)

	sctx, stopSink := context.WithCancel(context.Background())
	defer stopSink()
	sinkErr := make(chan error, 1)
	go func() {
		sinkErr <- opts.Run(sctx, cfg, func(addr string) {
			fmt.Fprintf(out, "  endpoints  http://%s/metrics  /healthz  /readyz\n\n", addr)
		})
	}()

	// A live trickle of current events.
	var wg sync.WaitGroup
	tctx, stopTrickle := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tr := rand.New(rand.NewPCG(7, uint64(now.UnixNano())))
		seq := int64(opts.Records)
		for tctx.Err() == nil {
			t := time.Now()
			msgs := []kafka.Message{
				{Topic: clickTopic, Key: fmt.Appendf(nil, "k%d", tr.IntN(1000)), Value: Clickstream(tr, seq, t), Time: t},
				{Topic: iotTopic, Key: fmt.Appendf(nil, "k%d", tr.IntN(1000)), Value: IoT(tr, seq, t), Time: t},
			}
			seq++
			_ = w.WriteMessages(tctx, msgs...)
			select {
			case <-tctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 5 * time.Second}
	deadline := time.After(opts.Duration)
	if opts.Duration <= 0 {
		deadline = nil
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	began := time.Now()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-deadline:
			break loop
		case err := <-sinkErr:
			runErr = err
			break loop
		case <-tick.C:
			fmt.Fprintf(out, "\r  %3ds  %s", int(time.Since(began).Seconds()), progress(ctx, client, cfg.Kafka.GroupID, lake))
		}
	}
	stopTrickle()
	wg.Wait()
	fmt.Fprintf(out, "\r  %3ds  %s\n\nstopping (finishing open files)...\n", int(time.Since(began).Seconds()), progress(context.Background(), client, cfg.Kafka.GroupID, lake))
	stopSink()
	if runErr == nil {
		runErr = <-sinkErr
	}
	if runErr != nil {
		return runErr
	}
	fmt.Fprintln(out)
	summary(out, lake)
	icebergSummary(ctx, out, cfg.Streams[0])
	return nil
}

// progress is the live status line: committed share of the topics, files and
// markers in the lake.
func progress(ctx context.Context, c *kafka.Client, group, lake string) string {
	var total, committed int64
	for _, t := range []struct {
		name string
		n    int
	}{{clickTopic, 6}, {iotTopic, 3}} {
		ps := make([]int, t.n)
		lreq := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
		for i := range ps {
			ps[i] = i
			lreq.Topics[t.name] = append(lreq.Topics[t.name], kafka.LastOffsetOf(i))
		}
		lo, err := c.ListOffsets(ctx, lreq)
		if err != nil {
			continue
		}
		for _, p := range lo.Topics[t.name] {
			total += p.LastOffset
		}
		of, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{t.name: ps}})
		if err != nil {
			continue
		}
		for _, p := range of.Topics[t.name] {
			if p.CommittedOffset > 0 {
				committed += p.CommittedOffset
			}
		}
	}
	files, markers := countLake(lake)
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(committed) / float64(total)
	}
	return fmt.Sprintf("committed %d/%d records (%.0f%%) · %d parquet files · %d hour markers   ", committed, total, pct, files, markers)
}

func countLake(lake string) (files, markers int) {
	_ = filepath.WalkDir(lake, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		switch {
		case strings.HasSuffix(p, ".parquet"):
			files++
		case d.Name() == "_SUCCESS":
			markers++
		}
		return nil
	})
	return files, markers
}

// summary prints every hour folder with its files and marker.
func summary(out io.Writer, lake string) {
	type hour struct {
		files  int
		marker bool
	}
	hours := map[string]*hour{}
	_ = filepath.WalkDir(lake, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, _ := filepath.Rel(lake, filepath.Dir(p))
		if strings.HasPrefix(rel, "_lakesink") || strings.HasPrefix(rel, icebergDir) {
			return nil
		}
		h := hours[rel]
		if h == nil {
			h = &hour{}
			hours[rel] = h
		}
		if d.Name() == "_SUCCESS" {
			h.marker = true
		} else if strings.HasSuffix(d.Name(), ".parquet") {
			h.files++
		}
		return nil
	})
	keys := make([]string, 0, len(hours))
	for k := range hours {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(out, "lake %s:\n", lake)
	example := ""
	for _, k := range keys {
		h := hours[k]
		state := "open (no marker yet)"
		if h.marker {
			state = "complete: _SUCCESS"
			if example == "" {
				example = filepath.Join(lake, k, "_SUCCESS")
			}
		}
		fmt.Fprintf(out, "  %-45s %3d parquet files   %s\n", k+"/", h.files, state)
	}
	if example != "" {
		fmt.Fprintf(out, "\nA marker lists exactly the files of its hour:\n  cat %s\n", example)
		fmt.Fprintf(out, "Query the files with any Parquet reader, e.g.:\n  duckdb -c \"select count(*) from '%s/clickstream/*/*/*.parquet'\"\n", lake)
	}
}
