package bench

import (
	"fmt"
	"time"

	"github.com/lakesink/lakesink/config"
)

// The targets of the held-out scenarios, which CheckSkewed and
// CheckCompaction check a run against.
const (
	// skewed: a 512-partition topic, ~10 busy partitions fed in bursts,
	// 1M clickstream records shuffled over 4 open hours, memory_limit
	// 256MiB, idle timeout 1s.
	SkewedMaxFilesPerPartitionHour = 1.2
	SkewedMaxPeakRSSMiB            = 300
	SkewedMinRecordsPerSec         = 150_000
	SkewedMaxTrail                 = 2 * time.Second // live runs: all consumed this soon after the last record produced
	// compaction: an hour of 512 files compacted before its marker.
	CompactionMaxCPURatio     = 0.5 // compaction CPU per record / writing CPU per record
	CompactionRSSOverLimitMiB = 60  // peak RSS at most memory_limit + this
)

func (r *Result) check(target string, pass bool, got string, a ...any) {
	r.Checks = append(r.Checks, Check{Target: target, Got: fmt.Sprintf(got, a...), Pass: pass})
}

// FilesPerPartitionHour is the lake's plain data files per (partition,
// hour) with data.
func (r Result) FilesPerPartitionHour() float64 {
	return float64(r.LakeFiles-r.CompactedFiles) / float64(max(r.Buckets, 1))
}

// PeakRSS is the peak RSS of the run in MiB: VmHWM at the measurement
// or, when the measurement ran to the sink's exit (OpenHours), the larger
// of that and ru_maxrss at exit.
func (r Result) PeakRSS() float64 {
	if r.OpenHours {
		return max(r.PeakRSSMiB, r.PeakRSSMiBExit)
	}
	return r.PeakRSSMiB
}

// CheckSkewed sets r.Checks to the skewed scenario's targets.
func (r *Result) CheckSkewed() {
	r.Checks = nil
	fph := r.FilesPerPartitionHour()
	r.check(fmt.Sprintf("files per partition-hour <= %.1f", SkewedMaxFilesPerPartitionHour), fph <= SkewedMaxFilesPerPartitionHour,
		"%.2f (%d files, %d partition-hours)", fph, r.LakeFiles, r.Buckets)
	r.check(fmt.Sprintf("peak RSS <= %d MiB", SkewedMaxPeakRSSMiB), r.PeakRSS() <= SkewedMaxPeakRSSMiB, "%.1f MiB", r.PeakRSS())
	if r.Live {
		// A live run's records/s is the producer's: its bursts wait an
		// idle timeout apart by design. What the sink owes is to keep up;
		// its own throughput is the backlog run's (-live=false).
		trail := r.AllConsumedSeconds - r.ProducedAtSeconds
		r.check(fmt.Sprintf("kept up with the producer (all consumed within %v of the last record)", SkewedMaxTrail), trail <= SkewedMaxTrail.Seconds(),
			"%.2f s after the last record (records/s %.0f, producer-bound; the records/s target applies to -live=false)", trail, r.RecordsPerSec)
	} else {
		r.check(fmt.Sprintf("records/s >= %d", SkewedMinRecordsPerSec), r.RecordsPerSec >= SkewedMinRecordsPerSec, "%.0f", r.RecordsPerSec)
	}
	r.check("every record in the lake once", r.Verified && r.RowsRead == r.Records, "%d rows read, %d produced, verified %v", r.RowsRead, r.Records, r.Verified)
}

// CheckCompaction sets r.Checks to the compaction scenario's targets; the
// peak RSS bound needs r.MemoryLimit.
func (r *Result) CheckCompaction() {
	r.Checks = nil
	c := r.Compaction
	if c == nil {
		r.check("compaction measured", false, "no marker, no measurement")
		return
	}
	r.check(fmt.Sprintf("compaction CPU <= %.1f x writing CPU", CompactionMaxCPURatio), c.Ratio <= CompactionMaxCPURatio && c.WriteCPUSeconds > 0,
		"%.2f (%.2f µs/record against %.2f)", c.Ratio, c.CompactMicrosPerRecord, c.WriteMicrosPerRecord)
	limit, err := config.ParseSize(r.MemoryLimit)
	if err != nil || limit <= 0 {
		r.check(fmt.Sprintf("peak RSS <= memory_limit + %d MiB", CompactionRSSOverLimitMiB), false, "memory_limit %q: %v", r.MemoryLimit, err)
	} else {
		bound := float64(limit)/(1<<20) + CompactionRSSOverLimitMiB
		peak := max(c.PeakRSSMiB, r.PeakRSSMiBExit)
		r.check(fmt.Sprintf("peak RSS <= memory_limit + %d MiB (%.0f MiB)", CompactionRSSOverLimitMiB, bound), peak <= bound, "%.1f MiB", peak)
	}
	r.check("marker delay reported", c.Hours > 0 && c.DurationSeconds > 0 && c.MarkerDelaySeconds > 0,
		"marker delay %.2f s, compaction %.2f s, %d hour(s) compacted", c.MarkerDelaySeconds, c.DurationSeconds, c.Hours)
	r.check("the folder holds only compacted files", c.FolderFiles > 0 && c.FolderCompacted == c.FolderFiles && c.FilesOut == int64(c.FolderFiles),
		"%d files in the folder, %d compacted; %d files in, %d out", c.FolderFiles, c.FolderCompacted, c.FilesIn, c.FilesOut)
	r.check("every record once, through the manifest", r.Verified && r.ManifestRecords == r.Records && r.RowsRead == r.Records,
		"manifest %d, rows read %d, produced %d, verified %v", r.ManifestRecords, r.RowsRead, r.Records, r.Verified)
}

// TargetsMet reports whether every check passed (true without checks).
func (r Result) TargetsMet() bool {
	for _, c := range r.Checks {
		if !c.Pass {
			return false
		}
	}
	return true
}
