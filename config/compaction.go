package config

import (
	"fmt"
	"slices"
	"time"
)

// Compaction merges a completed hour's small files before its marker
// (docs/compaction.md). Off unless Enabled.
type Compaction struct {
	Enabled bool `yaml:"enabled"`
	// TargetFileBytes is the size compacted files grow to, about: the
	// hour's files below half of it are merged into as few files as it
	// allows; files at or above half of it stay as they are.
	TargetFileBytes Size `yaml:"target_file_bytes"`
	// MinFiles: an hour is compacted only when it has at least this many
	// small files (of one bucket and schema).
	MinFiles int `yaml:"min_files"`
	// SortBy orders the rows of each compacted file by these columns
	// (schema list names), nulls first; empty keeps the input order.
	SortBy []string `yaml:"sort_by"`
}

// Defaults of a stream's compaction block.
const (
	DefaultCompactionTarget   = 256 * MiB
	DefaultCompactionMinFiles = 2
	minCompactionTarget       = 1 * MiB
)

// DefaultCompaction returns the compaction block's defaults (disabled).
func DefaultCompaction() Compaction {
	return Compaction{TargetFileBytes: DefaultCompactionTarget, MinFiles: DefaultCompactionMinFiles}
}

// Maintenance is a table's snapshot expiry (docs/iceberg.md,
// "Maintenance").
type Maintenance struct {
	// ExpireSnapshotsOlderThan: snapshots older than this, beyond the
	// newest KeepLast, are expired and the data files no remaining
	// snapshot references are removed. 0 turns expiry off.
	ExpireSnapshotsOlderThan Duration `yaml:"expire_snapshots_older_than"`
	// KeepLast is how many of the newest snapshots are always kept.
	KeepLast int `yaml:"keep_last"`
}

// Defaults of a table's maintenance block.
const (
	DefaultExpireSnapshotsOlderThan = Duration(168 * time.Hour)
	DefaultKeepLast                 = 100
)

// DefaultTable returns a table block's defaults: what a table: block
// starts from when the file has one.
func DefaultTable() Table {
	return Table{Maintenance: Maintenance{ExpireSnapshotsOlderThan: DefaultExpireSnapshotsOlderThan, KeepLast: DefaultKeepLast}}
}

// validateCompaction checks a stream's compaction: block.
func validateCompaction(p *problems, sp string, s Stream) {
	c := s.Compaction
	cp := sp + ".compaction"
	if c.TargetFileBytes < minCompactionTarget {
		p.add(cp+".target_file_bytes", "must be at least %s, got %s", minCompactionTarget, c.TargetFileBytes)
	}
	if c.MinFiles < 2 {
		p.add(cp+".min_files", "must be at least 2 (merging one file gains nothing), got %d", c.MinFiles)
	}
	if len(c.SortBy) > 0 && len(s.Schema) == 0 {
		p.add(cp+".sort_by", "needs the stream's schema list: the columns of registry and inferred schemas are known only per file")
		return
	}
	for i, col := range c.SortBy {
		path := fmt.Sprintf("%s.sort_by[%d]", cp, i)
		switch {
		case !slices.ContainsFunc(s.Schema, func(sc SchemaColumn) bool { return sc.Name == col }):
			p.add(path, "%q is not a column of the stream's schema list", col)
		case slices.Index(c.SortBy, col) < i:
			p.add(path, "%q is listed twice", col)
		}
	}
}

// validateMaintenance checks a table's maintenance: block.
func validateMaintenance(p *problems, tp string, m Maintenance) {
	mp := tp + ".maintenance"
	if m.ExpireSnapshotsOlderThan < 0 {
		p.add(mp+".expire_snapshots_older_than", "must not be negative (0 turns expiry off), got %s", m.ExpireSnapshotsOlderThan)
	}
	if m.KeepLast < 1 {
		p.add(mp+".keep_last", "must be at least 1 (the newest snapshot is the table), got %d", m.KeepLast)
	}
}
