package worker

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the partition workers' collectors (docs/operations.md lists
// every metric), shared by all workers of a process. Create them once per
// registry with NewMetrics.
type Metrics struct {
	RecordsConsumed prometheus.Counter
	RecordsWritten  *prometheus.CounterVec
	RecordsSkipped  prometheus.Counter
	// RecordsReplayed counts records read again after a rebalance or a
	// restart (ledger.Ledger.ReadBefore); FilesKept open files a worker
	// kept across a generation; FilesAbandoned open files thrown away (a
	// moved partition, a failure), whose records the next owner reads again.
	RecordsReplayed prometheus.Counter
	FilesKept       prometheus.Counter
	FilesAbandoned  prometheus.Counter
	FilesCommitted  prometheus.Counter
	// FilesFinished counts finished (uploaded) files by what ended them:
	// the finishReason constants. Small files in the lake are explained by
	// its reasons other than hour_closed.
	FilesFinished       *prometheus.CounterVec
	BytesCommitted      prometheus.Counter
	DeadLetters         *prometheus.CounterVec
	DeadLetterFailures  prometheus.Counter
	LateRecords         *prometheus.CounterVec
	UploadRetries       prometheus.Counter
	OffsetCommits       prometheus.Counter
	OffsetCommitErrors  prometheus.Counter
	MemoryHeld          prometheus.Gauge
	MemoryFlushes       prometheus.Counter
	RowGroupEnds        prometheus.Counter
	DeferredFiles       prometheus.Counter
	ConsumerLag         *prometheus.GaugeVec
	CommittedOffset     *prometheus.GaugeVec
	PartitionHighOffset *prometheus.GaugeVec
	// Watermark is set by the worker owning the partition, at each commit:
	// each instance reports the partitions it owns.
	Watermark *prometheus.GaugeVec
}

// NewMetrics creates the workers' collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		RecordsConsumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_records_consumed_total",
			Help: "Records read from Kafka (including replays after a restart).",
		}),
		RecordsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_records_written_total",
			Help: "Records in data files committed to the lake.",
		}, []string{"stream"}),
		RecordsReplayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_records_replayed_total",
			Help: "Records read a second time after a rebalance or a restart: below the read position of the commit the worker resumed from.",
		}),
		FilesKept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_files_kept_total",
			Help: "Open files a worker kept across a group generation (the partition came back to it unchanged).",
		}),
		FilesAbandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_files_abandoned_total",
			Help: "Open files thrown away unfinished (a moved or changed partition, a failure); the next owner reads their records again.",
		}),
		RecordsSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_records_replay_skipped_total",
			Help: "Records read again after a restart that were already durable and were skipped.",
		}),
		FilesFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_files_finished_total",
			Help: "Data files finished and committed, by what ended them: hour_closed, max_bytes, memory, idle, done_list, schema_roll, shutdown, max_age.",
		}, []string{"reason"}),
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
		DeadLetterFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_dead_letter_errors_total",
			Help: "Failed writes to the dead-letter topic (retried; the partition waits).",
		}),
		LateRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_late_records_total",
			Help: "Records for an hour the partition had already closed.",
		}, []string{"stream"}),
		UploadRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_upload_retries_total",
			Help: "Data file uploads retried after an error.",
		}),
		OffsetCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_offset_commits_total",
			Help: "Offset commits accepted by Kafka.",
		}),
		OffsetCommitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_offset_commit_errors_total",
			Help: "Offset commits that failed.",
		}),
		MemoryHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lakesink_memory_held_bytes",
			Help: "Bytes the open files and partition readers hold in memory, counted against files.memory_limit (not spool disk use).",
		}),
		MemoryFlushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_memory_limit_flushes_total",
			Help: "Files finished early because files.memory_limit was reached.",
		}),
		RowGroupEnds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_memory_row_group_ends_total",
			Help: "Row groups ended early because files.memory_limit was reached (the file stays open).",
		}),
		DeferredFiles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_deferred_files_total",
			Help: "Files opened deferred (rows in a row log on the spool disk, encoded at finish) because files.memory_limit leaves less than 8 MiB per partition or was reached.",
		}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_consumer_lag_records",
			Help: "Records between the partition's high watermark and the committed offset.",
		}, []string{"topic", "partition"}),
		CommittedOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_committed_offset",
			Help: "Last offset committed for the partition.",
		}, []string{"topic", "partition"}),
		PartitionHighOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_partition_high_watermark",
			Help: "High watermark of the partition last seen.",
		}, []string{"topic", "partition"}),
		Watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_watermark_timestamp_seconds",
			Help: "Committed event-time watermark of a partition this instance owns (unix seconds).",
		}, []string{"stream", "topic", "partition"}),
	}
	for _, r := range finishReasons {
		m.FilesFinished.WithLabelValues(string(r))
	}
	reg.MustRegister(m.RecordsReplayed, m.FilesKept, m.FilesAbandoned, m.RecordsConsumed, m.RecordsWritten, m.RecordsSkipped, m.FilesCommitted, m.FilesFinished, m.BytesCommitted,
		m.DeadLetters, m.DeadLetterFailures, m.LateRecords, m.UploadRetries, m.OffsetCommits, m.OffsetCommitErrors,
		m.MemoryHeld, m.MemoryFlushes, m.RowGroupEnds, m.DeferredFiles, m.ConsumerLag, m.CommittedOffset, m.PartitionHighOffset, m.Watermark)
	return m
}

// finishReason is what ended a file (lakesink_files_finished_total's
// reason label).
type finishReason string

const (
	// finishHourClosed: the hour closed (the watermark passed its end plus
	// the lateness), or a late file's hour was already closed. The one
	// reason that leaves a partition-hour in one file.
	finishHourClosed finishReason = "hour_closed"
	// finishMaxBytes: the file reached files.max_file_bytes.
	finishMaxBytes finishReason = "max_bytes"
	// finishMemory: the memory budget named this file (memShare.bound).
	finishMemory finishReason = "memory"
	// finishIdle: the partition was caught up and quiet for
	// markers.idle_partition_timeout.
	finishIdle finishReason = "idle"
	// finishDoneList: the ledger's done list reached its bound (Kafka's
	// commit metadata limit), so every open file finished.
	finishDoneList finishReason = "done_list"
	// finishSchemaRoll: a record fitted none of the hour's open schema
	// families (maxFamilies), so the hour's files finished.
	finishSchemaRoll finishReason = "schema_roll"
	// finishShutdown: a graceful shutdown drained the worker.
	finishShutdown finishReason = "shutdown"
	// finishMaxAge: the file was open for files.max_file_age.
	finishMaxAge finishReason = "max_age"
)

var finishReasons = []finishReason{finishHourClosed, finishMaxBytes, finishMemory, finishIdle, finishDoneList, finishSchemaRoll, finishShutdown, finishMaxAge}
