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
	}
	reg.MustRegister(m.HoursCompleted, m.MarkerDelay, m.OldestOpenHour, m.FinalizerErrors, m.EventsSent, m.UnprovenFiles)
	return m
}
