package completion

import (
	"math"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ledger"
)

// The completion rule (docs/design.md, "Hour markers" and "Idle
// partitions"): hour H of a stream is complete when, for every partition
// of the stream's topics, either its committed safe watermark has reached
// H.end + allowed_lateness, or it is idle — everything up to its high
// watermark is committed and it has been quiet for idle_partition_timeout —
// in which case it counts as caught up to the wall clock. A partition
// whose owner keeps files of the open hour cannot be all committed; its
// owner attests its idleness in the commit metadata instead (ledger.Meta
// IW and IN: caught up to a bucket threshold the wall clock has passed,
// as long as its high watermark has not moved since). Hours are
// finalized oldest first, and never before the wall clock has passed
// H.end + lateness. completionRule turns one reading of the partitions into
// the stream's completion bound; folderAt and folderBound say which folder
// the bound must pass.

type topicPart struct {
	topic     string
	partition int
}

// emptyObs remembers since when a never-committed partition has been seen
// empty at the same high watermark.
type emptyObs struct {
	high  int64
	since time.Time
}

// partAmend is an amend entry of one partition.
type partAmend struct {
	topicPart
	ledger.Amend
}

// partState is what one check learned about a partition.
type partState struct {
	tp        topicPart
	wm        int64     // committed safe watermark
	idleSince time.Time // non-zero: counts as caught up since then
}

// streamState is what one check learned about a stream.
type streamState struct {
	wm        int64 // completion bound, unix ms
	firstHour int64 // earliest hour any partition wrote, 0: none
	amends    []partAmend
	parts     []partState
}

// bound is the completion bound at wall-clock time now, unix ms: the
// partitions' bound, but never past the wall clock (an hour closes only
// once the wall clock has passed its end plus lateness).
func (ss streamState) bound(now time.Time) int64 { return min(ss.wm, now.UnixMilli()) }

// completionRule applies the rule to readings of one stream's partitions.
// Its state is the one thing the rule needs from earlier readings: a
// partition never committed has no last-read time in commit metadata, so
// its quiet time counts from the first reading that saw it empty at its
// current high watermark. Used by its stream's goroutine only.
type completionRule struct {
	empty map[topicPart]emptyObs // partitions seen with nothing ever committed
}

func newCompletionRule() completionRule {
	return completionRule{empty: map[topicPart]emptyObs{}}
}

// apply computes, from the group-wide offsets of a stream's partitions
// read at now, the stream's completion bound in unix ms (the least of the
// partitions' effective watermarks; math.MinInt64 without partitions), the
// earliest hour any partition wrote and the partitions' amend entries.
func (c completionRule) apply(parts []kafkaio.PartitionOffsets, now time.Time, idle time.Duration) (ss streamState) {
	wm := int64(math.MaxInt64)
	for _, p := range parts {
		tp := topicPart{p.Topic, p.Partition}
		meta, _, _ := ledger.Parse(p.Metadata)
		if meta.FH > 0 && (ss.firstHour == 0 || meta.FH < ss.firstHour) {
			ss.firstHour = meta.FH
		}
		for _, a := range meta.AM {
			ss.amends = append(ss.amends, partAmend{topicPart: tp, Amend: a})
		}
		ps := partState{tp: tp, wm: meta.WM}
		eff := meta.WM
		if meta.IN > 0 && p.High <= meta.IN && meta.IW > eff {
			// Its owner saw it idle and attests IW (ledger.Ledger.Idle),
			// and no record arrived since: the idle clause, from the
			// owner's reading, for a partition that holds open files.
			eff = meta.IW
		}
		caughtUp := p.Committed >= p.High || (p.Committed < 0 && p.Low == p.High)
		if caughtUp {
			quietSince := time.UnixMilli(meta.LA)
			if meta.LA == 0 {
				o, seen := c.empty[tp]
				if !seen || o.high != p.High {
					o = emptyObs{high: p.High, since: now}
					c.empty[tp] = o
				}
				quietSince = o.since
			}
			if now.Sub(quietSince) >= idle && now.UnixMilli() > eff {
				eff = now.UnixMilli()
				ps.idleSince = quietSince.Add(idle)
			}
		} else {
			delete(c.empty, tp)
		}
		wm = min(wm, eff)
		ss.parts = append(ss.parts, ps)
	}
	if len(parts) == 0 {
		ss.wm = math.MinInt64
		return ss
	}
	ss.wm = wm
	return ss
}

// folderAt returns the buckets of the folder that the bucket starting at
// cursor (unix ms) renders into, oldest first (partitioner.FolderHours),
// that bucket, and whether it is the folder's first. One folder, one
// manifest: a folder that several buckets render into (the two 01:00 hours
// of a fall-back night) is finalized at its first bucket, once its last
// bucket is complete too; its later buckets are passed over.
func folderAt(st *Stream, cursor int64) (hour time.Time, hours []time.Time, first bool) {
	hour = time.UnixMilli(cursor).In(st.Loc)
	hours = partitioner.FolderHours(hour, st.Loc)
	return hour, hours, hours[0].Equal(hour)
}

// folderBound is the completion bound that a folder holding the buckets
// hours waits for, unix ms: its last bucket's end plus the allowed
// lateness. Bucket ends count as start + 1h like the workers' and the
// ledger's (a bucket cut short by a transition closes late, never early).
func folderBound(st *Stream, hours []time.Time) int64 {
	return hours[len(hours)-1].UnixMilli() + ledger.HourMs + st.Lateness.Milliseconds()
}

// finalized reports whether the folder of the bucket hour has its first
// marker: an hour's marker is its folder's, keyed by the folder's first
// bucket, and the folder is finalized once the cursor has passed that
// bucket. Amend entries of a folder not finalized yet are left to its first
// marker, which lists their files.
func finalized(st *Stream, hour time.Time, cursor int64) bool {
	return partitioner.FolderHours(hour, st.Loc)[0].UnixMilli() < cursor
}
