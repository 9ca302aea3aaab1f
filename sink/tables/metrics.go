package tables

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the table committers' metrics, shared by every table of a
// process (labelled by stream). Safe for concurrent use.
type Metrics struct {
	Commits        *prometheus.CounterVec
	Conflicts      *prometheus.CounterVec
	Fenced         *prometheus.CounterVec
	FilesAdded     *prometheus.CounterVec
	CommitDuration *prometheus.HistogramVec
	Snapshot       *prometheus.GaugeVec
	// SnapshotsExpired and FilesRemoved count Expire's work.
	SnapshotsExpired *prometheus.CounterVec
	FilesRemoved     *prometheus.CounterVec
}

// NewMetrics registers the table metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_table_commits_total",
			Help: "Snapshots committed to streams' Iceberg tables (files, claims, completion and replaces).",
		}, []string{"stream"}),
		Conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_table_commit_conflicts_total",
			Help: "Table commits that lost the compare-and-swap to another writer and were retried on the reloaded table.",
		}, []string{"stream"}),
		Fenced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_table_commits_fenced_total",
			Help: "Table commits refused because another worker had claimed the partition (a rebalance).",
		}, []string{"stream"}),
		FilesAdded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_table_files_added_total",
			Help: "Data files added to streams' Iceberg tables, compaction outputs included.",
		}, []string{"stream"}),
		CommitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lakesink_table_commit_duration_seconds",
			Help:    "Time to commit one batch to a stream's table, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"stream"}),
		Snapshot: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_table_snapshot_timestamp_seconds",
			Help: "Commit time of the newest snapshot lakesink committed to the stream's table.",
		}, []string{"stream"}),
		SnapshotsExpired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_table_snapshots_expired_total",
			Help: "Snapshots expired from the stream's table by table maintenance.",
		}, []string{"stream"}),
		FilesRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_table_files_removed_total",
			Help: "Data files deleted from the lake by table maintenance: referenced by expired snapshots only.",
		}, []string{"stream"}),
	}
	reg.MustRegister(m.Commits, m.Conflicts, m.Fenced, m.FilesAdded, m.CommitDuration, m.Snapshot, m.SnapshotsExpired, m.FilesRemoved)
	return m
}
