package completion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// errAwaitEvents stops a stream's check while another instance is expected
// to deliver the events of a revision it published.
var errAwaitEvents = errors.New("awaiting another instance's completion events")

// sendGrace is how long an instance waits for the winner of a revision to
// deliver its events before it delivers them itself.
func (f *Finalizer) sendGrace() time.Duration {
	return 5*f.o.CheckInterval + 2*f.o.WebhookTimeout
}

// deliver sends the events of revision n unless they were sent, and marks
// them sent. Revisions before n are not sent: n supersedes them.
//
// The last step of publishing: the cursor moves past an hour only once
// its latest revision's events are delivered and r<N>.sent is in the lake,
// so a crash re-sends undelivered events (at least once; events carry
// stream, hour and revision to deduplicate). The instance that won
// revision n (won) sends them; another one waits for r<N>.sent
// (errAwaitEvents) and sends them itself only after sendGrace, which
// covers a winner that died between writing the revision and delivering.
func (f *Finalizer) deliver(ctx context.Context, ms markerStore, st *Stream, hour time.Time, key string, n int, m Manifest, won bool) error {
	if !f.notify.Enabled() {
		return nil
	}
	sk := ms.sentKey(hour, n)
	waiting := f.runs[st.Name].waiting
	sent, err := ms.sent(ctx, hour, n)
	if err != nil || sent {
		delete(waiting, sk)
		return err
	}
	if !won {
		since, ok := waiting[sk]
		if !ok {
			waiting[sk] = f.o.Now()
			return errAwaitEvents
		}
		if f.o.Now().Sub(since) < f.sendGrace() {
			return errAwaitEvents
		}
		f.o.Log.Warn("revision published by another instance not notified in time, sending its events",
			"stream", st.Name, "hour", m.Hour, "revision", n)
	}
	if err := f.notify.Deliver(ctx, newEvent(m, hour, f.notify.AssetURI(st.Name), key)); err != nil {
		return err
	}
	if err := f.o.Writer.Put(ctx, sk, bytes.NewReader(nil), 0); err != nil {
		return fmt.Errorf("put %s: %w", sk, err)
	}
	delete(waiting, sk)
	f.o.Metrics.EventsSent.WithLabelValues(st.Name).Inc()
	f.o.Log.Info("completion events sent", "stream", st.Name, "hour", m.Hour, "revision", n)
	return nil
}
