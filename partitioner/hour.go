package partitioner

import "time"

// HourOf returns the start of the wall-clock hour in loc that contains t,
// expressed in loc.
//
// An hour bucket is a wall-clock hour at one UTC offset, so it works for zones
// whose offset is not a whole number of hours (Asia/Kolkata +05:30,
// Asia/Kathmandu +05:45) and across daylight-saving changes: on the night
// clocks go back, 01:30 EDT and 01:30 EST fall in two distinct buckets whose
// starts are two distinct instants (01:00 EDT and 01:00 EST). When a
// transition happens inside an hour (zones that shift by 30 minutes), the
// bucket starts at the transition, the first instant that shows t's hour at
// t's offset.
//
// HourOf is pure: the result depends only on t and loc. A nil loc means UTC.
func HourOf(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	_, off := lt.Zone()
	into := time.Duration(lt.Minute())*time.Minute +
		time.Duration(lt.Second())*time.Second +
		time.Duration(lt.Nanosecond())
	start := lt.Add(-into)
	if _, startOff := start.Zone(); startOff == off {
		return start
	}
	// The offset changed inside (start, t]: the bucket begins at the
	// transition. Zone transitions happen on whole seconds, so search the
	// first whole second at t's offset; lo is known to be at another offset.
	lo, hi := start.Unix(), lt.Unix()
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if _, o := time.Unix(mid, 0).In(loc).Zone(); o == off {
			hi = mid
		} else {
			lo = mid
		}
	}
	return time.Unix(hi, 0).In(loc)
}
