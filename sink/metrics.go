package sink

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the sink's Prometheus collectors (names in DESIGN.md). Create
// them once per registry with NewMetrics.
type Metrics struct {
	ConsumerLag         *prometheus.GaugeVec
	ConsumerLagSeconds  *prometheus.GaugeVec
	RecordsConsumed     prometheus.Counter
	RecordsWritten      *prometheus.CounterVec
	RecordsSkipped      prometheus.Counter
	FilesCommitted      prometheus.Counter
	BytesCommitted      prometheus.Counter
	DeadLetters         *prometheus.CounterVec
	Watermark           *prometheus.GaugeVec
	HoursCompleted      *prometheus.CounterVec
	MarkerDelay         prometheus.Histogram
	SpoolBytes          prometheus.Gauge
	MemoryFlushes       prometheus.Counter
	OffsetCommits       prometheus.Counter
	OffsetCommitErrors  prometheus.Counter
	UploadRetries       prometheus.Counter
	AssignedPartitions  prometheus.Gauge
	OldestOpenHour      *prometheus.GaugeVec
	LateRecords         *prometheus.CounterVec
	FinalizerErrors     prometheus.Counter
	EventsSent          *prometheus.CounterVec
	Rebalances          prometheus.Counter
	DeadLetterFailures  prometheus.Counter
	CommittedOffset     *prometheus.GaugeVec
	PartitionHighOffset *prometheus.GaugeVec
}

// NewMetrics creates and registers the sink's collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_consumer_lag",
			Help: "Records between the partition's high watermark and the committed offset.",
		}, []string{"topic", "partition"}),
		ConsumerLagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_consumer_lag_seconds",
			Help: "Wall time minus the event time of the last committed record, while records wait (0 when caught up).",
		}, []string{"topic", "partition"}),
		RecordsConsumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_records_consumed_total",
			Help: "Records read from Kafka (including replays after a restart).",
		}),
		RecordsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_records_written_total",
			Help: "Records in data files committed to the lake.",
		}, []string{"stream"}),
		RecordsSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_records_replay_skipped_total",
			Help: "Records read again after a restart that were already durable and were skipped.",
		}),
		FilesCommitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_files_committed_total",
			Help: "Data files committed to the lake.",
		}),
		BytesCommitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_bytes_committed_total",
			Help: "Bytes of data files committed to the lake.",
		}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_dead_letter_records_total",
			Help: "Records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		Watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_watermark_timestamp_seconds",
			Help: "Committed event-time watermark of the partition (unix seconds).",
		}, []string{"stream", "topic", "partition"}),
		HoursCompleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_hours_completed_total",
			Help: "Hour markers written.",
		}, []string{"stream"}),
		MarkerDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lakesink_marker_delay_seconds",
			Help:    "Time from the moment an hour was seen complete to its marker being written.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
		}),
		SpoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lakesink_spool_bytes",
			Help: "Bytes the open files hold in memory, counted against files.memory_limit.",
		}),
		MemoryFlushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_memory_limit_flushes_total",
			Help: "Files finished early because files.memory_limit was reached.",
		}),
		OffsetCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_offset_commits_total",
			Help: "Offset commits accepted by Kafka.",
		}),
		OffsetCommitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_offset_commit_errors_total",
			Help: "Offset commits that failed.",
		}),
		UploadRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_upload_retries_total",
			Help: "Data file uploads retried after an error.",
		}),
		AssignedPartitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lakesink_assigned_partitions",
			Help: "Partitions this instance owns in the current group generation.",
		}),
		OldestOpenHour: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_oldest_open_hour_timestamp_seconds",
			Help: "Start of the oldest hour of the stream without a marker (unix seconds).",
		}, []string{"stream"}),
		LateRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_late_records_total",
			Help: "Records for an hour the partition had already closed.",
		}, []string{"stream"}),
		FinalizerErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_finalizer_errors_total",
			Help: "Errors of the hour finalizer (retried at the next check).",
		}),
		EventsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_completion_events_total",
			Help: "Marker revisions whose completion events (Kafka topic, webhook) were delivered.",
		}, []string{"stream"}),
		Rebalances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_group_generations_total",
			Help: "Consumer group generations joined.",
		}),
		DeadLetterFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_dead_letter_errors_total",
			Help: "Failed writes to the dead-letter topic (retried; the partition waits).",
		}),
		CommittedOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_committed_offset",
			Help: "Last offset committed for the partition.",
		}, []string{"topic", "partition"}),
		PartitionHighOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_partition_high_watermark",
			Help: "High watermark of the partition last seen.",
		}, []string{"topic", "partition"}),
	}
	reg.MustRegister(m.ConsumerLag, m.ConsumerLagSeconds, m.RecordsConsumed, m.RecordsWritten, m.RecordsSkipped,
		m.FilesCommitted, m.BytesCommitted, m.DeadLetters, m.Watermark, m.HoursCompleted,
		m.MarkerDelay, m.SpoolBytes, m.MemoryFlushes, m.OffsetCommits, m.OffsetCommitErrors, m.UploadRetries,
		m.AssignedPartitions, m.OldestOpenHour, m.LateRecords, m.FinalizerErrors, m.EventsSent, m.Rebalances,
		m.DeadLetterFailures, m.CommittedOffset, m.PartitionHighOffset)
	return m
}
