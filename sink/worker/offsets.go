package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ledger"
)

// offsetCommits is a worker's offset commits to its group (Env.Offsets,
// in its generation): the last one made, when it last tried, and what
// each commit reports (Env.Progress, the partition's gauges). It reads Env
// at each use. Not safe for concurrent use.
type offsetCommits struct {
	env       *Env
	stream    string
	topic     string
	partition int
	label     string // partition as a metric label
	gen       Generation
	log       *slog.Logger

	held     func() map[int64]int64 // records in open files per hour (fileSet.held)
	last     int64                  // the last committed offset (-1: none)
	lastMeta string                 // its metadata, encoded
	at       time.Time              // of the last commit attempt; zero: commit at the next chance
}

// commit commits offset c with meta (kafkaio.Admin.Commit says why not
// kafka-go's helpers) unless that is the last commit, and reports the
// partition's progress with high, its high watermark. made reports a new
// commit. A commit the broker refuses because the generation ended is
// errRevoked; other failures are logged and counted, and the next commit
// tries again.
func (o *offsetCommits) commit(ctx context.Context, c int64, meta ledger.Meta, high int64) (made bool, err error) {
	enc := meta.Encode()
	if c == o.last && enc == o.lastMeta {
		o.report(c, meta, high)
		return false, nil
	}
	if err := o.env.Offsets.Commit(ctx, o.gen.ID, o.gen.Member, o.topic, o.partition, c, enc); err != nil {
		o.env.Metrics.OffsetCommitErrors.Inc()
		if kafkaio.IsGenerationError(err) {
			return false, errRevoked
		}
		o.log.Warn("commit offset", "offset", c, "err", err)
		return false, nil
	}
	o.env.Metrics.OffsetCommits.Inc()
	o.last, o.lastMeta = c, enc
	o.report(c, meta, high)
	return true, nil
}

// report sets the partition's gauges and tells Progress.
func (o *offsetCommits) report(c int64, meta ledger.Meta, high int64) {
	if o.env.Progress != nil {
		p := Progress{Stream: o.stream, Topic: o.topic, Partition: o.partition, Generation: o.gen.ID,
			Committed: c, High: high, Meta: meta}
		if o.held != nil {
			p.Open = o.held()
		}
		o.env.Progress(p)
	}
	m := o.env.Metrics
	m.CommittedOffset.WithLabelValues(o.topic, o.label).Set(float64(c))
	if high > 0 {
		m.PartitionHighOffset.WithLabelValues(o.topic, o.label).Set(float64(high))
		m.ConsumerLag.WithLabelValues(o.topic, o.label).Set(float64(max(high-c, 0)))
	}
	if meta.WM > 0 {
		m.Watermark.WithLabelValues(o.stream, o.topic, o.label).Set(float64(meta.WM) / 1000)
	}
}
