package ops

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
)

// ownedPart is what this instance knows of a partition it owns.
type ownedPart struct {
	stream, topic string
	partition     int
	gen           int
	committed     int64
	high          int64
	meta          string
	watermark     int64 // safe watermark, unix ms
	raw           int64 // raw watermark (max event time read), unix ms
	reported      time.Time
	advanced      time.Time // last time offset or metadata changed
	lagAtAdvance  int64
	open          map[int64]int64 // records in open files per hour start (unix ms)
}

func (p *ownedPart) lag() int64 { return max(p.high-p.committed, 0) }

// partitions is the progress of the partitions this instance owns.
type partitions struct {
	mu    sync.Mutex
	parts map[topicPart]*ownedPart
	gen   int // newest generation a partition was reported in
}

type topicPart struct {
	topic     string
	partition int
}

// Progress is a partition worker's report after a commit attempt.
type Progress struct {
	Stream     string
	Topic      string
	Partition  int
	Generation int
	Committed  int64 // committed offset
	High       int64 // high watermark last seen
	// Meta is the commit metadata as committed, Watermark and Raw its safe
	// and raw watermarks (unix ms).
	Meta           string
	Watermark, Raw int64
	// Open are the records in the partition's open files per hour start
	// (unix ms).
	Open map[int64]int64
}

// NotePartition is called by a partition worker after every commit attempt
// (each commit interval) with its committed offset, the high watermark it
// last saw and the commit metadata. It sets the lag-in-seconds gauge and
// feeds stall detection and the status page.
func (ops *Ops) NotePartition(r Progress) {
	now := ops.o.Now()
	topic, partition, gen, committed, high, enc := r.Topic, r.Partition, r.Generation, r.Committed, r.High, r.Meta
	lagSeconds := 0.0
	if high > committed && r.Raw > 0 {
		lagSeconds = max(now.Sub(time.UnixMilli(r.Raw)).Seconds(), 0)
	}
	ops.lagSeconds.WithLabelValues(topic, strconv.Itoa(partition)).Set(lagSeconds)

	o := &ops.parts
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.parts == nil {
		o.parts = map[topicPart]*ownedPart{}
	}
	tp := topicPart{topic, partition}
	p := o.parts[tp]
	if p == nil || p.gen != gen {
		p = &ownedPart{stream: r.Stream, topic: topic, partition: partition, gen: gen, advanced: now}
		o.parts[tp] = p
	}
	o.gen = max(o.gen, gen)
	if committed != p.committed || enc != p.meta {
		p.advanced = now
		p.lagAtAdvance = max(high-committed, 0)
	}
	p.committed, p.high, p.meta = committed, high, enc
	p.watermark, p.raw, p.open = r.Watermark, r.Raw, r.Open
	p.reported = now
}

// stalls lists partitions whose commits have not advanced for the stall
// timeout while they have lag that grew since the last advance, or whose
// worker has not reported for the stall timeout while it had lag (blocked,
// e.g. retrying an upload).
func (ops *Ops) stalls() []string {
	timeout := ops.o.CommitStallTimeout
	if timeout <= 0 {
		return nil
	}
	now := ops.o.Now()
	o := &ops.parts
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, p := range o.parts {
		if p.gen != o.gen || p.lag() == 0 {
			continue
		}
		switch {
		case now.Sub(p.reported) >= timeout:
			out = append(out, fmt.Sprintf("%s: %s/%d has not reported progress for %s (lag %d records)",
				ReasonCommitsStalled, p.topic, p.partition, now.Sub(p.reported).Truncate(time.Second), p.lag()))
		case now.Sub(p.advanced) >= timeout && p.lag() > p.lagAtAdvance:
			out = append(out, fmt.Sprintf("%s: %s/%d has not committed for %s while its lag grew from %d to %d records",
				ReasonCommitsStalled, p.topic, p.partition, now.Sub(p.advanced).Truncate(time.Second), p.lagAtAdvance, p.lag()))
		}
	}
	sort.Strings(out)
	return out
}
