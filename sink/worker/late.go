package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/ledger"
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

// lateHour applies st's late_policy to a record of hour that is late for
// its partition, whose raw watermark is wm: it returns the hour to file
// the record under, or under dead_letter the record's error (reason late)
// for the dead-letter topic.
func lateHour(st *Stream, hour time.Time, wm int64) (time.Time, error) {
	switch st.Late {
	case config.LateDeadLetter:
		return hour, &decode.Error{Reason: reasonLate,
			Detail: fmt.Sprintf("hour %s already closed (watermark %s)", hour.UTC().Format(time.RFC3339), fmtMs(wm))}
	case config.LateCurrentHour:
		return partitioner.HourOf(time.UnixMilli(wm), st.Loc), nil
	}
	return hour, nil
}

// clockSkew is how far instances' clocks may disagree; a file of an hour
// that closes within it of now is checked against the marker too.
const clockSkew = time.Minute

// amends are a worker's checks of hour markers (Env.Markers, nil when
// markers are disabled) for its amendments, kept in its ledger. It reads
// Env at each use. Not safe for concurrent use.
type amends struct {
	env       *Env
	st        *Stream
	topic     string
	partition int
	log       *slog.Logger
}

// note runs after a file of hour starting at first was uploaded: if the
// hour's marker is out and does not list the file, the file is an
// amendment (led.Amended). On a storage error the entry is recorded
// anyway; the finalizer checks it.
func (a *amends) note(ctx context.Context, led *ledger.Ledger, hour time.Time, first int64) {
	if a.env.Markers == nil {
		return
	}
	if a.env.Now().Add(clockSkew).Before(hour.Add(time.Hour + a.st.Lateness)) {
		return // no marker can be out yet
	}
	n, listed, err := a.env.Markers.Lists(ctx, a.st.Name, hour, a.topic, a.partition, first)
	if err == nil && (n == 0 || listed) {
		return
	}
	if err != nil {
		a.log.Warn("check marker of late file", "hour", hour, "err", err)
	}
	a.log.Info("late file after the hour's marker", "hour", hour.Format(time.RFC3339), "first_offset", first, "marker_revision", n)
	led.Amended(hour.UnixMilli(), first)
}

// prune drops amend entries whose file the latest marker revision lists
// and whose events were delivered. Each entry is looked at once per check
// interval.
func (a *amends) prune(ctx context.Context, led *ledger.Ledger) {
	if a.env.Markers == nil {
		return
	}
	for _, am := range led.AmendsDue(a.env.Now().UnixMilli(), a.env.CheckInterval.Milliseconds()) {
		hour := time.UnixMilli(am.Hour).In(a.st.Loc)
		n, listed, err := a.env.Markers.Lists(ctx, a.st.Name, hour, a.topic, a.partition, am.First)
		if err != nil || n == 0 || !listed {
			continue
		}
		if sent, err := a.env.Markers.Sent(ctx, a.st.Name, hour, n); err != nil || !sent {
			continue
		}
		led.AmendDone(am.Hour, am.First)
	}
}
