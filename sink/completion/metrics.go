package completion

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the finalizer's collectors (docs/operations.md lists every
// metric). Create them once per registry with NewMetrics.
type Metrics struct {
	HoursCompleted  *prometheus.CounterVec
	MarkerDelay     prometheus.Histogram
	OldestOpenHour  *prometheus.GaugeVec
	FinalizerErrors prometheus.Counter
	EventsSent      *prometheus.CounterVec
	UnprovenFiles   *prometheus.GaugeVec

	// Compaction of completed hours (docs/compaction.md), per stream.
	HoursCompacted     *prometheus.CounterVec
	CompactedFilesIn   *prometheus.CounterVec
	CompactedFilesOut  *prometheus.CounterVec
	CompactedBytesIn   *prometheus.CounterVec
	CompactedBytesOut  *prometheus.CounterVec
	CompactionDuration *prometheus.HistogramVec
}

// NewMetrics creates the finalizer's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		HoursCompleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_hours_completed_total",
			Help: "Hour markers written.",
		}, []string{"stream"}),
		MarkerDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lakesink_marker_delay_seconds",
			Help:    "Time from the moment an hour was seen complete to its marker being written.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
		}),
		OldestOpenHour: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_oldest_open_hour_timestamp_seconds",
			Help: "Start of the oldest hour of the stream without a marker (unix seconds).",
		}, []string{"stream"}),
		FinalizerErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_finalizer_errors_total",
			Help: "Errors of the hour finalizer (retried at the next check).",
		}),
		EventsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_completion_events_total",
			Help: "Marker revisions whose completion events (Kafka topic, webhook) were delivered.",
		}, []string{"stream"}),
		UnprovenFiles: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_unproven_files",
			Help: "Files in the stream's oldest folder waiting for a marker that no manifest may list and that are not proven superseded: they are kept, and the folder's marker waits (docs/design.md, Orphans).",
		}, []string{"stream"}),
		HoursCompacted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_compaction_hours_total",
			Help: "Hour folders compacted before their first marker.",
		}, []string{"stream"}),
		CompactedFilesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_compaction_files_in_total",
			Help: "Data files merged by compaction (removed once the merged files were durable).",
		}, []string{"stream"}),
		CompactedFilesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_compaction_files_out_total",
			Help: "Compacted data files written.",
		}, []string{"stream"}),
		CompactedBytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_compaction_bytes_in_total",
			Help: "Bytes of the data files merged by compaction.",
		}, []string{"stream"}),
		CompactedBytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_compaction_bytes_out_total",
			Help: "Bytes of the compacted data files written.",
		}, []string{"stream"}),
		CompactionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lakesink_compaction_duration_seconds",
			Help:    "Time compaction held an hour's first marker back: from its plan to the merged inputs removed.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900},
		}, []string{"stream"}),
	}
	reg.MustRegister(m.HoursCompleted, m.MarkerDelay, m.OldestOpenHour, m.FinalizerErrors, m.EventsSent, m.UnprovenFiles,
		m.HoursCompacted, m.CompactedFilesIn, m.CompactedFilesOut, m.CompactedBytesIn, m.CompactedBytesOut, m.CompactionDuration)
	return m
}
