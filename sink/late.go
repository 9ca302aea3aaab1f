package sink

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
)

// Late data.
//
// A record is late for its partition when the partition's own watermark has
// already passed its hour's end plus allowed_lateness (ledger.isClosed). What
// happens to it is the stream's late_policy:
//
//   - amend (default): it goes into its hour as a new data file (a file name
//     never seen in that folder, since names carry the first offset).
//   - dead_letter: it goes to the dead-letter topic with reason "late".
//   - current_hour: it is filed under the hour the partition's watermark is in
//     now (the hour of the largest event time read), keeping its own event
//     time; the file's min/max event time in the manifest then reach outside
//     the folder's hour.
//
// Under every policy a data file can still reach an hour whose marker is
// out: a partition that was idle counts as caught up to the wall clock, so
// its next record may belong to an hour the finalizer already closed without
// being late for the partition. Such files are amendments too.
//
// How the finalizer learns about an amendment, exactly: after a file is
// uploaded, the worker looks at the hour's latest marker revision (only for
// hours the wall clock has closed, the only ones that can have a marker). If
// there is one and it does not list the file, the worker records an amend
// entry {hour, first offset} in its commit metadata. The finalizer reads the
// committed metadata of every partition, and for each entry publishes the
// next revision of that hour (and sends its events) unless the latest
// revision already lists the file. The worker drops the entry once the latest
// revision lists the file and its events were delivered. If the marker did
// not exist yet when the worker looked, the finalizer writing it lists the
// folder again after publishing and publishes a further revision if a file
// appeared meanwhile, so no file slips between the two.

// amend is a late file that the hour's marker must list: the file of this
// partition for Hour whose first offset is First. One entry per hour; a
// later file of the same hour replaces the entry (a revision listing the
// later file, built from a folder listing, lists the earlier ones too).
type amend struct {
	Hour  int64 `json:"h"` // unix ms
	First int64 `json:"o"`
	// checked is when the worker last looked whether the marker lists the
	// file (wall ms); not persisted.
	checked int64
}

// maxAmends bounds the amend list in the commit metadata (Kafka's 4 KiB).
// Beyond it the oldest hours' entries are dropped, and those hours may miss a
// revision; with one entry per hour that takes late data for more than 16
// distinct closed hours within one check interval.
const maxAmends = 16

// amended notes a late file of hour starting at first.
func (l *ledger) amended(hour, first int64) {
	for i := range l.am {
		if l.am[i].Hour == hour {
			if first > l.am[i].First {
				l.am[i] = amend{Hour: hour, First: first}
			}
			return
		}
	}
	l.am = append(l.am, amend{Hour: hour, First: first})
	slices.SortFunc(l.am, func(a, b amend) int { return cmpInt64(a.Hour, b.Hour) })
	if len(l.am) > maxAmends {
		l.am = slices.Delete(l.am, 0, len(l.am)-maxAmends)
	}
}

// amendDone drops the entry of hour if it is still for first.
func (l *ledger) amendDone(hour, first int64) {
	l.am = slices.DeleteFunc(l.am, func(a amend) bool { return a.Hour == hour && a.First == first })
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// reasonLate is the dead-letter reason of late records under late_policy
// dead_letter.
const reasonLate decode.Reason = "late"

// applyLatePolicy handles a record late for its partition. It returns the
// hour to file it under, and drop true when the record went to the
// dead-letter topic instead.
func (w *worker) applyLatePolicy(m kafka.Message, hour time.Time) (time.Time, int64, bool) {
	switch w.st.late {
	case config.LateDeadLetter:
		w.deadLetter(m, &decode.Error{Reason: reasonLate,
			Detail: fmt.Sprintf("hour %s already closed (watermark %s)", hour.UTC().Format(time.RFC3339), fmtMs(w.led.rawWM))})
		return hour, hour.UnixMilli(), true
	case config.LateCurrentHour:
		cur := partitioner.HourOf(time.UnixMilli(w.led.rawWM), w.st.loc)
		return cur, cur.UnixMilli(), false
	}
	return hour, hour.UnixMilli(), false
}

// clockSkew is how far instances' clocks may disagree; a file of an hour
// that closes within it of now is checked against the marker too.
const clockSkew = time.Minute

// noteAmend runs after a file of hour starting at first was uploaded: if the
// hour's marker is out and does not list the file, the file is an amendment.
// On a storage error the entry is recorded anyway; the finalizer checks it.
func (w *worker) noteAmend(ctx context.Context, hour time.Time, first int64) {
	if !w.s.cfg.Markers.Enabled {
		return
	}
	if w.s.now().Add(clockSkew).Before(hour.Add(time.Hour + w.st.lateness)) {
		return // no marker can be out yet
	}
	ms := markerStore{w: w.s.writer, stream: w.st.name}
	n, m, err := ms.latest(ctx, hour)
	if err == nil && (n == 0 || m.lists(w.topic, w.partition, first)) {
		return
	}
	if err != nil {
		w.log.Warn("check marker of late file", "hour", hour, "err", err)
	}
	w.log.Info("late file after the hour's marker", "hour", hour.Format(time.RFC3339), "first_offset", first, "marker_revision", n)
	w.led.amended(hour.UnixMilli(), first)
}

// pruneAmends drops amend entries whose file the latest marker revision
// lists and whose events were delivered. Each entry is looked at once per
// check interval.
func (w *worker) pruneAmends(ctx context.Context) {
	if len(w.led.am) == 0 {
		return
	}
	now := w.s.now().UnixMilli()
	every := time.Duration(w.s.cfg.Markers.CheckInterval).Milliseconds()
	ms := markerStore{w: w.s.writer, stream: w.st.name}
	for _, a := range slices.Clone(w.led.am) {
		if now-a.checked < every {
			continue
		}
		for i := range w.led.am {
			if w.led.am[i] == a {
				w.led.am[i].checked = now
			}
		}
		hour := time.UnixMilli(a.Hour).In(w.st.loc)
		n, m, err := ms.latest(ctx, hour)
		if err != nil || n == 0 || !m.lists(w.topic, w.partition, a.First) {
			continue
		}
		if sent, err := ms.sent(ctx, hour, n); err != nil || !sent {
			continue
		}
		w.led.amendDone(a.Hour, a.First)
	}
}
