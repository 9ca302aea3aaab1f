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

// NextHour returns the start of the hour bucket that follows the one
// starting at hour: the bucket's end. Buckets are at most an hour long (a
// wall-clock hour at one offset, cut short by a transition inside it), so
// the bucket holding hour + 1h is the next one. Pure, like HourOf.
func NextHour(hour time.Time, loc *time.Location) time.Time {
	return HourOf(hour.Add(time.Hour), loc)
}

// folderReach bounds how far apart in UTC two buckets with the same wall
// clock date and hour can be: the largest jump of a zone's offset in the
// tz database is a day (Pacific/Apia, December 2011), plus the hour itself.
const folderReach = 27 * time.Hour

// FolderHours returns the starts of every hour bucket whose wall-clock date
// and hour at its start (what PathTemplate.Render prints) equal those of
// hour, a bucket start as HourOf returns it; ascending, in loc, hour among
// them. For almost every hour that is hour alone. On the night clocks go
// back it is two buckets (America/New_York: 01:00 EDT and 01:00 EST render
// to hour=01); a zone that shifts by 30 minutes gives a full and a half
// bucket (Australia/Lord_Howe), and a rule change that turns clocks back by
// more than an hour can give buckets that are not adjacent. Pure.
func FolderHours(hour time.Time, loc *time.Location) []time.Time {
	if loc == nil {
		loc = time.UTC
	}
	hour = hour.In(loc)
	zs, ze := hour.ZoneBounds()
	if (zs.IsZero() || zs.Before(hour.Add(-folderReach))) && (ze.IsZero() || ze.After(hour.Add(folderReach))) {
		return []time.Time{hour} // no transition near: one bucket per label
	}
	y, m, d := hour.Date()
	h := hour.Hour()
	var out []time.Time
	end := hour.Add(folderReach)
	for b := HourOf(hour.Add(-folderReach), loc); b.Before(end); b = NextHour(b, loc) {
		if by, bm, bd := b.Date(); by == y && bm == m && bd == d && b.Hour() == h {
			out = append(out, b)
		}
	}
	return out
}
