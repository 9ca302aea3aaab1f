package completion

import "time"

// wmObs is a committed watermark first seen at a moment.
type wmObs struct {
	wm int64
	at time.Time
}

// maxWMObs bounds the watermark history kept per partition.
const maxWMObs = 256

// wmHistory is, per partition, the committed watermarks this instance has
// seen, each with the moment it first saw it, oldest (and lowest) first. It
// serves one metric, lakesink_marker_delay_seconds, and decides nothing:
// commit metadata says what a partition's watermark is, not since when, so
// the moment it passed an hour's bound is known only as the first check
// that saw it there (up to one check interval late). At most maxWMObs are
// kept per partition; a bound below the oldest one kept counts from that
// one. Used by its stream's goroutine only.
type wmHistory map[topicPart][]wmObs

// observe records each partition's committed watermark the first time it
// is seen.
func (h wmHistory) observe(parts []partState, now time.Time) {
	for _, p := range parts {
		h.observePart(p.tp, p.wm, now)
	}
}

// observePart records a partition's committed watermark the first time it
// is seen.
func (h wmHistory) observePart(tp topicPart, wm int64, now time.Time) {
	obs := h[tp]
	if len(obs) > 0 && obs[len(obs)-1].wm >= wm {
		return
	}
	obs = append(obs, wmObs{wm: wm, at: now})
	if len(obs) > maxWMObs {
		obs = obs[len(obs)-maxWMObs:]
	}
	h[tp] = obs
}

// completedAt estimates when the hour ending (with lateness) at bound became
// complete by the rule: the latest of bound itself (the wall clock) and,
// per partition, the moment it qualified — for a partition counted as idle,
// quiet-since + idle_partition_timeout; for one whose committed watermark
// passed the bound, the first check that saw a watermark at or past it.
func (h wmHistory) completedAt(ss streamState, bound int64) time.Time {
	at := time.UnixMilli(bound)
	for _, p := range ss.parts {
		var t time.Time
		if p.wm >= bound {
			obs := h[p.tp]
			for _, o := range obs {
				if o.wm >= bound {
					t = o.at
					break
				}
			}
		} else if !p.idleSince.IsZero() {
			t = p.idleSince
		}
		if t.After(at) {
			at = t
		}
	}
	return at
}
