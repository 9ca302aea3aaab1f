// Package ops is what operators look at: readiness (/readyz) and the
// health state behind it, per-partition progress (lag in records and
// seconds, watermarks, commit stalls), the periodic storage and dead-letter
// topic probes, the recent warnings and errors, the status page and
// /api/status, and the HTTP handler serving them with /metrics.
//
// It only reads: the other stages report into it (Health, NotePartition)
// and it reads the lake for the status page. docs/operations.md documents
// the endpoints and what each readiness reason means.
package ops

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/writers"
)

// Options are what Ops reads from and how often.
type Options struct {
	// Streams are shown on the status page.
	Streams []*completion.Stream
	// Writer is the lake: probed for readiness, read for the status page.
	Writer writers.Writer
	// Topics checks the dead-letter topic DeadLetterTopic (kafkaio.Admin).
	Topics          TopicChecker
	DeadLetterTopic string
	// HealthCheckInterval is http.health_check_interval; CommitStallTimeout
	// is http.commit_stall_timeout (0: no stall detection).
	HealthCheckInterval, CommitStallTimeout time.Duration
	// Now is the wall clock; nil: time.Now.
	Now func() time.Time
	// Logs is the ring of recent warnings and errors; nil: none shown.
	Logs *LogRing
	// Log receives fault transitions (see Health); nil: discarded.
	Log *slog.Logger
	// SpoolDir is the folder whose disk the spool probe writes to and
	// measures (files.spool_dir/<group>); empty: no spool probe.
	SpoolDir string
	// Registry gets the lag-in-seconds gauge; nil: a private registry.
	Registry prometheus.Registerer
	// Rebalances reports what rebalances cost this instance, for the
	// status page; nil: not shown.
	Rebalances func() RebalanceStatus
	// Counters gives the process's counters for progress reports
	// (Progress); nil: zeros.
	Counters func() ProgressCounters
}

// TopicChecker checks that a topic exists and has leaders.
type TopicChecker interface {
	CheckTopic(ctx context.Context, topic string) error
}

// Ops holds the operational state of one sink. Its methods are safe for
// concurrent use.
type Ops struct {
	o Options
	// Health is the readiness state the other stages report into.
	Health *Health
	parts  partitions
	hours  hourCache
	id     string // instance id, names the probe objects
	// probeSince is when the storage probe still running started (zero:
	// none).
	probeMu    sync.Mutex
	probeSince time.Time
	// lagSeconds is lakesink_consumer_lag_seconds; spoolBytes is
	// lakesink_spool_disk_bytes.
	lagSeconds *prometheus.GaugeVec
	spoolBytes prometheus.Gauge
	// more are further sources of readiness reasons (AddReasons).
	moreMu sync.Mutex
	more   []func() []string
}

// New returns the Ops of o.
func New(o Options) *Ops {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	ops := &Ops{o: o, id: newID(), Health: newHealth(o.Log, o.Now, o.Registry),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_consumer_lag_seconds",
			Help: "Wall time minus the largest event time the partition has read, as committed, while records wait (0 when caught up).",
		}, []string{"topic", "partition"}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lakesink_spool_disk_bytes",
			Help: "Bytes of spool files on disk (files.spool_dir), measured at each health check.",
		}),
	}
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lakesink_ready",
		Help: "1 while /readyz answers 200, else 0.",
	}, func() float64 {
		if ok, _ := ops.Readiness(); ok {
			return 1
		}
		return 0
	})
	o.Registry.MustRegister(ops.lagSeconds, ops.spoolBytes, ready)
	return ops
}

// Readiness reports whether the sink is ready and, if not, why: the group
// is not joined, storage or the dead-letter topic failed, partitions wait
// for the schema registry, a partition worker stopped, or commits stall;
// then the reasons of every source added with AddReasons.
func (o *Ops) Readiness() (bool, []string) {
	reasons := o.Health.reasons()
	reasons = append(reasons, o.stalls()...)
	o.moreMu.Lock()
	more := o.more
	o.moreMu.Unlock()
	for _, f := range more {
		reasons = append(reasons, f()...)
	}
	return len(reasons) == 0, reasons
}

// AddReasons adds a source of readiness reasons (for instance the
// unconsumed partitions of package unconsumed); Readiness lists its
// reasons after its own.
func (o *Ops) AddReasons(f func() []string) {
	o.moreMu.Lock()
	o.more = append(o.more, f)
	o.moreMu.Unlock()
}
