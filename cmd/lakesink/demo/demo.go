// Package demo runs lakesink end to end on one machine with nothing
// installed: an embedded Kafka-protocol broker (franz-go's kfake), an event
// generator for a clickstream and an IoT stream, and a local lake folder.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/term"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/ops"
)

// Options configure a demo run.
type Options struct {
	Lake     string        // local lake folder
	Duration time.Duration // run time after the backlog is produced; 0: until ctx ends
	Records  int           // backlog records per stream
	Hours    int           // past hours the backlog spans
	HTTP     string        // listen address of the sink's endpoints; "" for none
	// Terminal: the progress line is rewritten in place every second
	// (carriage return); otherwise a plain line is printed every five
	// seconds, for a pipe or a CI log. The command sets it from stdout
	// (IsTerminal).
	Terminal bool
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
	// The sink's ready callback writes from its own goroutine.
	out = &lockedWriter{w: out}
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
	var httpAddr atomic.Pointer[string]
	go func() {
		sinkErr <- opts.Run(sctx, cfg, func(addr string) {
			httpAddr.Store(&addr)
			fmt.Fprintf(out, "  endpoints  http://%s/  (status page)  /metrics  /healthz  /readyz  /api/progress\n\n", addr)
		})
	}()
	fmt.Fprintf(out, "Where the records are: consumed from Kafka; in the lake (in files uploaded and committed);\n"+
		"in open files (read, waiting for their hour to close: its end + allowed_lateness, %s here);\n"+
		"dead-lettered (malformed). An hour's marker follows once every partition is past it.\n\n", time.Duration(cfg.Streams[0].AllowedLateness))

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

	deadline := time.After(opts.Duration)
	if opts.Duration <= 0 {
		deadline = nil
	}
	// A terminal gets one line rewritten every second; a pipe or a file
	// (a CI log) a plain line every five seconds, no carriage returns.
	tty := opts.Terminal
	every := 5 * time.Second
	if tty {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	began := time.Now()
	show := func(ctx context.Context, last bool) {
		line := fmt.Sprintf("  %3ds  %s", int(time.Since(began).Seconds()), progress(ctx, &httpAddr))
		switch {
		case tty && last:
			fmt.Fprintf(out, "\r%s\x1b[K\n", line)
		case tty:
			fmt.Fprintf(out, "\r%s\x1b[K", line)
		default:
			fmt.Fprintln(out, line)
		}
	}
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
			show(ctx, false)
		}
	}
	stopTrickle()
	wg.Wait()
	show(context.Background(), true)
	fmt.Fprintf(out, "\nstopping (finishing and committing open files)...\n")
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

// progress is the live status line: where the records are, from the
// sink's /api/progress (ops.ProgressReport).
func progress(ctx context.Context, addr *atomic.Pointer[string]) string {
	a := addr.Load()
	if a == nil {
		return "starting…"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*a+"/api/progress", nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "progress: " + err.Error()
	}
	defer resp.Body.Close()
	var r ops.ProgressReport
	if resp.StatusCode != http.StatusOK {
		return "starting…" // the start-up handler answers until the sink runs
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "progress: " + err.Error()
	}
	return r.Line()
}

// IsTerminal reports whether out is a terminal (not a pipe, a file or
// /dev/null, which is a character device too).
func IsTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
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

// lockedWriter serializes writes to w: Run and the sink's ready callback
// write from different goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
