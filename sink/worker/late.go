package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
)

// Late data.
//
// A record is late for its partition when the partition's own watermark has
// already passed its hour's end plus allowed_lateness (ledger.Ledger.IsClosed). What
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

// reasonLate is the dead-letter reason of late records under late_policy
// dead_letter.
const reasonLate decode.Reason = "late"

// applyLatePolicy handles a record late for its partition. It returns the
// hour to file it under, and drop true when the record went to the
// dead-letter topic instead.
func (w *Worker) applyLatePolicy(m kafka.Message, hour time.Time) (time.Time, int64, bool) {
	switch w.st.Late {
	case config.LateDeadLetter:
		w.deadLetter(m, &decode.Error{Reason: reasonLate,
			Detail: fmt.Sprintf("hour %s already closed (watermark %s)", hour.UTC().Format(time.RFC3339), fmtMs(w.led.RawWM()))})
		return hour, hour.UnixMilli(), true
	case config.LateCurrentHour:
		cur := partitioner.HourOf(time.UnixMilli(w.led.RawWM()), w.st.Loc)
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
func (w *Worker) noteAmend(ctx context.Context, hour time.Time, first int64) {
	if w.env.Markers == nil {
		return
	}
	if w.env.Now().Add(clockSkew).Before(hour.Add(time.Hour + w.st.Lateness)) {
		return // no marker can be out yet
	}
	n, listed, err := w.env.Markers.Lists(ctx, w.st.Name, hour, w.topic, w.partition, first)
	if err == nil && (n == 0 || listed) {
		return
	}
	if err != nil {
		w.log.Warn("check marker of late file", "hour", hour, "err", err)
	}
	w.log.Info("late file after the hour's marker", "hour", hour.Format(time.RFC3339), "first_offset", first, "marker_revision", n)
	w.led.Amended(hour.UnixMilli(), first)
}

// pruneAmends drops amend entries whose file the latest marker revision
// lists and whose events were delivered. Each entry is looked at once per
// check interval.
func (w *Worker) pruneAmends(ctx context.Context) {
	if w.env.Markers == nil {
		return
	}
	for _, a := range w.led.AmendsDue(w.env.Now().UnixMilli(), w.env.CheckInterval.Milliseconds()) {
		hour := time.UnixMilli(a.Hour).In(w.st.Loc)
		n, listed, err := w.env.Markers.Lists(ctx, w.st.Name, hour, w.topic, w.partition, a.First)
		if err != nil || n == 0 || !listed {
			continue
		}
		if sent, err := w.env.Markers.Sent(ctx, w.st.Name, hour, n); err != nil || !sent {
			continue
		}
		w.led.AmendDone(a.Hour, a.First)
	}
}
