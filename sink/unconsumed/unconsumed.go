// Package unconsumed finds partitions that no live member of the consumer
// group consumes, from group-wide state only, so that every instance can
// say so: in the log, in /readyz and in lakesink_partitions_unconsumed.
//
// # Contract
//
// A partition's commit is its committed offset and metadata as the group
// sees them (kafkaio.Admin.GroupOffsets). A live owner changes its commit
// within kafka.commit_interval of reading a record (the metadata carries
// the raw watermark and the wall time of the last record read, see
// docs/design.md, Commit protocol), and a dead owner's partitions reach a
// live member within kafka.session_timeout plus a rebalance. So, with
// Bound = session_timeout + rebalance_timeout + 2 × commit_interval
// (see Bound), a partition is unconsumed when the instance looking does
// not own it and either
//
//   - records arrived after its commit last changed (its high watermark
//     rose above the one seen then) and the commit has not changed for
//     Bound since they were first seen, or
//   - it has had records above its committed offset for IdleTimeout +
//     Bound, all that time with the same commit (an owner holds its
//     committed offset at the first record of an open file; the owner of
//     a quiet partition, which keeps the open hour's file, renews its idle
//     claim in the metadata every half markers.idle_partition_timeout
//     (ledger.Meta IA); a caught-up partition's commit may not change for
//     hours, so the time counts from the first look that saw records
//     waiting).
//
// Times are from the injected clock, as seen by the looks (every
// Interval), so a partition is reported at most one Interval late. A
// partition never committed is read from its log start when FromEarliest
// (kafka.start_offset: earliest), so its records above the log start are
// waiting records; otherwise (latest) only records that arrive count, by
// the first rule: an owner that started at the end and read nothing does
// not commit. The detector keeps no history: after a restart the bounds
// count from its first look.
//
// The partitions the instance owns are left out: their own worker is alive
// and its stalls are reported by the commit-stall detection of sink/ops.
// An owner that is alive but blocked (storage down, registry down) is
// reported by the other instances too: from the group's state it cannot be
// told from a dead one.
//
// A topic's unconsumed partitions are logged at warn level when they
// start, again at most every logEvery while they last (with the current
// set), and once at info level when none is left.
package unconsumed

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/sink/kafkaio"
)

// logEvery is how often a topic's unconsumed partitions are logged again
// while they last.
const logEvery = 10 * time.Minute

// Bound is how long records may wait without a commit before their
// partition counts as unconsumed: a dead owner's session timeout, a
// rebalance, and two commit intervals for the new owner's first commit.
func Bound(sessionTimeout, rebalanceTimeout, commitInterval time.Duration) time.Duration {
	return sessionTimeout + rebalanceTimeout + 2*commitInterval
}

// Offsets reads the group-wide offsets (kafkaio.Admin).
type Offsets interface {
	GroupOffsets(ctx context.Context, topics []string) ([]kafkaio.PartitionOffsets, error)
}

// Options are a Detector's inputs.
type Options struct {
	Offsets Offsets
	Topics  []string
	// Bound: see the package comment and Bound.
	Bound time.Duration
	// IdleTimeout is markers.idle_partition_timeout.
	IdleTimeout time.Duration
	// FromEarliest: a partition never committed is read from its log
	// start (kafka.start_offset: earliest).
	FromEarliest bool
	// Interval is how often Run looks.
	Interval time.Duration
	// Owned reports whether this instance owns a partition in its current
	// generation; nil: none.
	Owned func(topic string, partition int) bool
	// Now is the wall clock; nil: time.Now.
	Now func() time.Time
	// Log gets the transitions; nil: discarded.
	Log *slog.Logger
	// Registry gets lakesink_partitions_unconsumed; nil: a private one.
	Registry prometheus.Registerer
	// Faults gets the error of a look that failed, and nil at the first
	// look that worked after one (ops.Health.Kafka); nil: ignored.
	Faults func(error)
}

// Detector tracks the partitions of Topics. Safe for concurrent use.
type Detector struct {
	o     Options
	gauge *prometheus.GaugeVec

	mu      sync.Mutex
	parts   map[tp]*part
	topics  map[string]*topicState // topics with unconsumed partitions
	failing bool                   // the last look failed
}

type tp struct {
	topic     string
	partition int
}

// part is what the looks saw of one partition.
type part struct {
	fromEarliest bool
	low          int64
	committed    int64
	meta         string
	high         int64
	changed      time.Time // the commit was first seen as it is
	highThen     int64     // the high watermark seen at changed
	grew         time.Time // the high watermark first seen above highThen; zero: not yet
	waiting      time.Time // records first seen above the commit; zero: not yet
}

// topicState is one topic's unconsumed partitions, as last reported.
type topicState struct {
	partitions []int
	lag        int64
	since      time.Time // the longest waiting partition's start
	started    time.Time
	logged     time.Time
}

// New returns a Detector; it does not look until Check or Run.
func New(o Options) *Detector {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Owned == nil {
		o.Owned = func(string, int) bool { return false }
	}
	d := &Detector{o: o, parts: map[tp]*part{}, topics: map[string]*topicState{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakesink_partitions_unconsumed",
			Help: "Partitions of the topic that no live group member appears to consume: records wait and the group's commit has not moved for longer than the session timeout allows (see docs/design.md).",
		}, []string{"topic"})}
	for _, t := range o.Topics {
		d.gauge.WithLabelValues(t)
	}
	o.Registry.MustRegister(d.gauge)
	return d
}

// Run looks every Interval until ctx ends.
func (d *Detector) Run(ctx context.Context) {
	t := time.NewTicker(d.o.Interval)
	defer t.Stop()
	for {
		d.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check reads the group's offsets once and updates the state. A failed
// read changes nothing but goes to Faults.
func (d *Detector) Check(ctx context.Context) {
	offs, err := d.o.Offsets.GroupOffsets(ctx, d.o.Topics)
	if ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	report := err != nil || d.failing
	d.failing = err != nil
	d.mu.Unlock()
	if report && d.o.Faults != nil {
		if err != nil {
			err = fmt.Errorf("look for unconsumed partitions: %w", err)
		}
		d.o.Faults(err)
	}
	if err == nil {
		d.Observe(offs)
	}
}

// Observe updates the state with one look at every partition.
func (d *Detector) Observe(offs []kafkaio.PartitionOffsets) {
	now := d.o.Now()
	found := map[string]*topicState{}
	type logLine struct {
		start, ongoing, clear bool
		topic                 string
		ts                    topicState
	}
	var lines []logLine

	d.mu.Lock()
	seen := map[tp]bool{}
	for _, po := range offs {
		k := tp{po.Topic, po.Partition}
		seen[k] = true
		p := d.parts[k]
		if p == nil || p.committed != po.Committed || p.meta != po.Metadata || po.High < p.highThen {
			p = &part{fromEarliest: d.o.FromEarliest, committed: po.Committed, meta: po.Metadata, changed: now, highThen: po.High}
			d.parts[k] = p
		}
		p.low, p.high = po.Low, po.High
		if p.grew.IsZero() && po.High > p.highThen {
			p.grew = now
		}
		if p.waiting.IsZero() && p.lag() > 0 {
			p.waiting = now
		}
		since, ok := d.unconsumed(p, now)
		if !ok || d.o.Owned(po.Topic, po.Partition) {
			continue
		}
		ts := found[po.Topic]
		if ts == nil {
			ts = &topicState{since: since}
			found[po.Topic] = ts
		}
		ts.partitions = append(ts.partitions, po.Partition)
		ts.lag += p.lag()
		if since.Before(ts.since) {
			ts.since = since
		}
	}
	for k := range d.parts {
		if !seen[k] {
			delete(d.parts, k)
		}
	}
	for t, ts := range found {
		sort.Ints(ts.partitions)
		old := d.topics[t]
		if old == nil {
			ts.started, ts.logged = now, now
			lines = append(lines, logLine{start: true, topic: t, ts: *ts})
		} else {
			ts.started, ts.logged = old.started, old.logged
			if now.Sub(old.logged) >= logEvery {
				ts.logged = now
				lines = append(lines, logLine{ongoing: true, topic: t, ts: *ts})
			}
		}
		d.topics[t] = ts
	}
	for t, old := range d.topics {
		if found[t] == nil {
			delete(d.topics, t)
			lines = append(lines, logLine{clear: true, topic: t, ts: *old})
		}
	}
	for _, t := range d.o.Topics {
		n := 0
		if ts := d.topics[t]; ts != nil {
			n = len(ts.partitions)
		}
		d.gauge.WithLabelValues(t).Set(float64(n))
	}
	d.mu.Unlock()

	sort.Slice(lines, func(i, j int) bool { return lines[i].topic < lines[j].topic })
	for _, l := range lines {
		attrs := []any{"topic", l.topic, "partitions", join(l.ts.partitions), "lag", l.ts.lag,
			"waiting", now.Sub(l.ts.since).Round(time.Second).String()}
		switch {
		case l.start:
			d.o.Log.Warn("partitions not consumed by any live group member: records wait and the group's commit does not move", attrs...)
		case l.ongoing:
			d.o.Log.Warn("partitions not consumed by any live group member (still)", attrs...)
		case l.clear:
			d.o.Log.Info("recovered: partitions consumed again", "topic", l.topic, "after", now.Sub(l.ts.started).Round(time.Second).String())
		}
	}
}

// unconsumed applies the rules of the package comment to p and returns
// since when its records have waited.
func (d *Detector) unconsumed(p *part, now time.Time) (time.Time, bool) {
	if p.lag() <= 0 {
		return time.Time{}, false
	}
	if !p.grew.IsZero() && now.Sub(p.grew) > d.o.Bound {
		return p.grew, true
	}
	if (p.committed >= 0 || p.fromEarliest) && now.Sub(p.waiting) > d.o.IdleTimeout+d.o.Bound {
		return p.waiting, true
	}
	return time.Time{}, false
}

// lag is the records waiting: above the commit; for a partition never
// committed, above the log start (FromEarliest) or those that arrived
// since it was first seen.
func (p *part) lag() int64 {
	switch {
	case p.committed >= 0:
		return p.high - p.committed
	case p.fromEarliest:
		return p.high - p.low
	}
	return p.high - p.highThen
}

// Reason starts every readiness reason of a Detector (docs/operations.md,
// "Readiness reasons").
const Reason = "partitions not consumed"

// Reasons lists, per topic, the unconsumed partitions for /readyz.
func (d *Detector) Reasons() []string {
	now := d.o.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for t, ts := range d.topics {
		out = append(out, fmt.Sprintf("%s: %s/%s have had records waiting for %s with no commit (lag %d records); no live group member appears to consume them",
			Reason, t, join(ts.partitions), now.Sub(ts.since).Round(time.Second), ts.lag))
	}
	sort.Strings(out)
	return out
}

func join(ps []int) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}
