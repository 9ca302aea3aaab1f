package worker

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/writers"
)

func testConfig() *config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{"127.0.0.1:9092"}
	cfg.Kafka.GroupID = "worker-test"
	st := config.DefaultStream()
	st.Name = "events"
	st.Topics = []string{"events"}
	st.Time = config.StreamTime{Field: "ts", Format: config.TimeUnixMillis, Timezone: "UTC"}
	st.Schema = []config.SchemaColumn{{Name: "id", Type: "int64", Required: true}, {Name: "ts", Type: "timestamp_ms"}}
	cfg.Streams = []config.Stream{st}
	return cfg
}

// testHealth records what workers report, like ops.Health.
type testHealth struct {
	mu         sync.Mutex
	storage    error
	spool      error
	dlq        error
	stops      []error
	starts     int
	regWaiting int
	regErr     error
	catalog    error
}

func (h *testHealth) Catalog(_ string, err error) { h.mu.Lock(); h.catalog = err; h.mu.Unlock() }

func (h *testHealth) Kafka(error)     {}
func (h *testHealth) Spool(err error) { h.mu.Lock(); h.spool = err; h.mu.Unlock() }
func (h *testHealth) Upload() (func(error), func()) {
	return func(err error) { h.mu.Lock(); h.storage = err; h.mu.Unlock() }, func() {}
}
func (h *testHealth) WorkerStopped(_ string, _ int, err error) {
	h.mu.Lock()
	h.stops = append(h.stops, err)
	h.mu.Unlock()
}
func (h *testHealth) WorkerStarted(string, int) { h.mu.Lock(); h.starts++; h.mu.Unlock() }
func (h *testHealth) DeadLetters(err error)     { h.mu.Lock(); h.dlq = err; h.mu.Unlock() }
func (h *testHealth) RegistryWait(err error) (func(error), func()) {
	h.mu.Lock()
	h.regWaiting++
	h.regErr = err
	h.mu.Unlock()
	return func(err error) { h.mu.Lock(); h.regErr = err; h.mu.Unlock() },
		func() { h.mu.Lock(); h.regWaiting--; h.mu.Unlock() }
}

// waiting returns the partitions waiting for the registry and the last error.
func (h *testHealth) waiting() (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.regWaiting, h.regErr
}

// noOffsets is a group with no commits that refuses none.
type noOffsets struct{}

func (noOffsets) Committed(context.Context, string, int) (int64, string, error) { return -1, "", nil }
func (noOffsets) Commit(context.Context, int, string, string, int, int64, string) error {
	return nil
}

// testEnv is an Env over lake with no Kafka behind it.
func testEnv(t testing.TB, cfg *config.Config, lake writers.Writer) *Env {
	t.Helper()
	return &Env{
		Writer: lake, Offsets: noOffsets{}, Health: &testHealth{},
		Budget: NewBudget(int64(cfg.Files.MemoryLimit)), Metrics: NewMetrics(prometheus.NewRegistry()),
		Log: slog.New(slog.DiscardHandler), Now: time.Now,
		GroupID: cfg.Kafka.GroupID, SpoolDir: t.TempDir(),
		FileOptions:  partitioner.FileOptions{Compression: string(cfg.Files.Compression), RowGroupBytes: int64(cfg.Files.RowGroupBytes)},
		MaxFileBytes: int64(cfg.Files.MaxFileBytes), IdleTimeout: time.Duration(cfg.Markers.IdlePartitionTimeout),
		CommitInterval: time.Duration(cfg.Kafka.CommitInterval), CheckInterval: time.Duration(cfg.Markers.CheckInterval),
		Tick: 50 * time.Millisecond,
	}
}

// testWorker is the worker of partition 0 of cfg's first stream over lake,
// driven through process() without Kafka; its drain channel is returned.
func testWorker(t testing.TB, cfg *config.Config, lake writers.Writer) (*Worker, chan struct{}) {
	t.Helper()
	tmpl, err := partitioner.ParsePathTemplate(cfg.Partitioning.Path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Compile(cfg.Streams[0], tmpl, int(cfg.Kafka.MaxRecordBytes), nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(testEnv(t, cfg, lake), st, "events", 0, Generation{ID: 1, Member: "m", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	drain := make(chan struct{})
	w.fx.drain = drain
	w.led = ledger.New(-1, ledger.Empty(), st.Lateness.Milliseconds())
	return w, drain
}
