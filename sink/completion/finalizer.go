package completion

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/writers"
)

// Finalizer writes hour markers and sends completion events. Every instance
// of the group runs one; they agree because they read the same group-wide
// state (committed offsets and their watermark metadata, high watermarks)
// and publish markers with create-if-absent puts, so each revision of a
// marker is written once whoever gets there first.
//
// The rule: hour H of a stream is complete when, for every partition of the
// stream's topics, either its committed safe watermark has reached
// H.end + allowed_lateness, or it is idle — everything up to its high
// watermark is committed and it has been quiet for idle_partition_timeout — in
// which case it counts as caught up to the wall clock. Hours are finalized
// oldest first, and never before the wall clock has passed H.end + lateness.
//
// Publishing revision N of an hour (markerStore has the layout):
//
//  1. build the manifest from the hour folder and delete the orphans proven
//     superseded (a file without that proof stops here), then name the
//     table snapshot that completes the hour; compaction will go between
//     the two (prepare);
//  2. PutIfAbsent _lakesink/markers/<stream>/<hour>/r<N>.json: exactly one
//     instance wins revision N; a loser adopts the winner's object;
//  3. Put _SUCCESS with the revision's manifest, then list the revisions
//     again and put the latest if a newer one appeared meanwhile, so
//     _SUCCESS never stays behind the latest revision;
//  4. for revision 1, list the folder again: a data file uploaded between
//     step 1 and the marker becomes revision 2 at once (the worker that
//     uploaded it may have looked for the marker before step 2);
//  5. deliver the completion events (Kafka topic, webhook), then put
//     r<N>.sent. Only then does the cursor (_lakesink/finalizer/<stream>.json)
//     move past the hour, so a crash re-sends undelivered events (at least
//     once; events carry stream, hour and revision to deduplicate). The
//     instance that won revision N sends its events; another instance sends
//     them only if r<N>.sent has not appeared for sendGrace, which covers a
//     winner that died between steps 2 and 5.
//
// Revisions after the first come from amend entries in the partitions'
// commit metadata (sink/worker, late.go): for an entry of an hour before the cursor
// whose file the latest revision does not list, revision N+1 is published.
// Amendments of a stream are handled before its next new hours, in hour
// order; events of one stream are sent from one goroutine in that order.
//
// Marker delay (lakesink_marker_delay_seconds, observed by the instance that
// wins revision 1): marker time minus the moment the hour became complete,
// which is the latest of H.end + lateness on the wall clock and, per
// partition, the moment it qualified: for a partition counted as idle,
// quiet-since + idle_partition_timeout; for one whose committed watermark
// passed the bound, the first check of this instance that saw a watermark
// at or past the bound (so it is late by up to one check interval, and
// hours already complete when the instance started count from its first
// check).
//
// A check of a stream runs the parts in order: the completion rule
// (completionRule, folderAt, folderBound) over the group-wide offsets; the
// cursor (cursorStore); publish for each amended folder, then for each
// newly complete one, with deliver for the events as its last step. The
// marker delay has a history of its own (wmHistory), and settle reports
// each check's outcome (Faults).
type Finalizer struct {
	o       Options
	notify  *Notifier
	cursors cursorStore
	// runs is each stream's state, keyed by stream name; the map is not
	// changed after NewFinalizer, and each streamRun is used only by its
	// stream's goroutine (Run checks every stream in a goroutine of its
	// own, so one stream's refusing webhook holds back no other stream).
	runs map[string]*streamRun

	storageMu      sync.Mutex
	storageFailing map[string]bool // streams whose last check failed on the lake
}

// streamRun is what the finalizer remembers of one stream between checks.
type streamRun struct {
	cursor  int64                // start of the next hour to finalize, unix ms; 0: not read yet
	rule    completionRule       // the completion rule's memory of empty partitions
	wm      wmHistory            // committed watermarks seen, for the marker delay
	waiting map[string]time.Time // revision key -> since when its events are awaited from another instance
	blocked bool                 // markers wait for unproven files
}

// Options are a Finalizer's dependencies and settings.
type Options struct {
	Streams []*Stream
	// Writer is the lake; the Finalizer does not close it.
	Writer  writers.Writer
	Offsets GroupOffsets
	// Notifier delivers completion events; nil: none. Run closes it.
	Notifier *Notifier
	// CheckInterval is how often the streams are checked
	// (markers.check_interval); IdleTimeout is
	// markers.idle_partition_timeout; WebhookTimeout is
	// markers.webhook.timeout, part of how long another instance's events
	// are waited for.
	CheckInterval, IdleTimeout, WebhookTimeout time.Duration
	Log                                        *slog.Logger
	// Now is the wall clock: when hours may close, idle partitions,
	// marker times. Event time comes from the committed watermarks.
	Now     func() time.Time
	Metrics *Metrics
	// Faults is told about failing checks and event deliveries; nil: the
	// finalizer logs each failed check itself.
	Faults Faults
}

// Stream is what the finalizer knows of a configured stream.
type Stream struct {
	Name     string
	Topics   []string
	Loc      *time.Location // hours are in this zone
	Lateness time.Duration  // allowed_lateness
	Path     *partitioner.PathTemplate
	// Table is the stream's Iceberg table; nil without one. Set before
	// the finalizer runs.
	Table Table
	// Compaction merges each folder's small files before its first
	// marker (compact.go); nil: off.
	Compaction *Compaction
}

// Table is a stream's Iceberg table as the finalizer uses it
// (tables.Table implements it).
type Table interface {
	Ident() string
	// PartitionField names the table's hour partition field.
	PartitionField() string
	// Complete records that the stream is complete through the given
	// time and returns the snapshot that did (idempotent).
	Complete(ctx context.Context, through time.Time) (int64, error)
	// Current reloads the table and returns its current snapshot id.
	Current(ctx context.Context) (int64, error)
	// ReplaceFiles swaps the data files at the lake keys removed for the
	// compacted file at key (a copy of it at spool) in one snapshot, and
	// returns that snapshot (idempotent: a table that already references
	// key and none of removed is left as it is).
	ReplaceFiles(ctx context.Context, removed []string, spool, key string) (int64, error)
}

// GroupOffsets is the group-wide view of the stream's partitions that the
// rule is decided on (kafkaio.Admin implements it).
type GroupOffsets interface {
	GroupOffsets(ctx context.Context, topics []string) ([]kafkaio.PartitionOffsets, error)
}

// NewFinalizer returns the finalizer of o.Streams. It does not start.
func NewFinalizer(o Options) *Finalizer {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f := &Finalizer{o: o, notify: o.Notifier, cursors: cursorStore{w: o.Writer}, runs: map[string]*streamRun{}, storageFailing: map[string]bool{}}
	for _, st := range o.Streams {
		f.runs[st.Name] = &streamRun{rule: newCompletionRule(), wm: wmHistory{}, waiting: map[string]time.Time{}}
	}
	return f
}

// Run checks every stream each check interval until ctx ends, each stream
// in a goroutine of its own: delivering a stream's completion events waits
// until they are accepted, and a webhook that refuses one stream must not
// hold back another stream's markers and events. Errors are logged and
// counted, and the check is tried again at the next interval. It returns
// when every stream's goroutine has, and closes the Notifier then.
func (f *Finalizer) Run(ctx context.Context) {
	defer f.notify.Close()
	var wg sync.WaitGroup
	for _, st := range f.o.Streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.runStream(ctx, st)
		}()
	}
	wg.Wait()
}

// runStream checks st every check interval until ctx ends.
func (f *Finalizer) runStream(ctx context.Context, st *Stream) {
	t := time.NewTicker(f.o.CheckInterval)
	defer t.Stop()
	for {
		f.settle(ctx, st, f.check(ctx, st))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check publishes amended revisions of finalized hours of st, then finalizes
// every hour of st that is complete, oldest first.
func (f *Finalizer) check(ctx context.Context, st *Stream) error {
	ss, err := f.observe(ctx, st)
	if err != nil {
		return err
	}
	cursor, err := f.cursor(ctx, st, ss.firstHour)
	if err != nil || cursor == 0 {
		return err
	}
	f.o.Metrics.OldestOpenHour.WithLabelValues(st.Name).Set(float64(cursor) / 1000)
	if err := f.amend(ctx, st, ss.amends, cursor); err != nil {
		return err
	}
	return f.advance(ctx, st, ss, cursor)
}

// observe reads the group-wide offsets of st's partitions, applies the
// completion rule to them and records their watermarks for the marker
// delay.
func (f *Finalizer) observe(ctx context.Context, st *Stream) (streamState, error) {
	parts, err := f.o.Offsets.GroupOffsets(ctx, st.Topics)
	if err != nil {
		return streamState{}, kafkaError{err}
	}
	now := f.o.Now()
	r := f.runs[st.Name]
	ss := r.rule.apply(parts, now, f.o.IdleTimeout)
	r.wm.observe(ss.parts, now)
	return ss, nil
}

// amend publishes the next revision of each finalized folder that an amend
// entry names a file of, oldest hour first (amendments of a stream are
// handled before its next new hours).
func (f *Finalizer) amend(ctx context.Context, st *Stream, amends []partAmend, cursor int64) error {
	sort.Slice(amends, func(i, j int) bool { return amends[i].Hour < amends[j].Hour })
	for _, a := range amends {
		hour := time.UnixMilli(a.Hour).In(st.Loc)
		if !finalized(st, hour, cursor) {
			continue // its first marker lists the file
		}
		if err := f.publish(ctx, st, hour, &a, time.Time{}); err != nil {
			return err
		}
	}
	return nil
}

// advance finalizes the folders of st from cursor on, oldest first, while
// they are complete by the rule (ss), moving the cursor past each one
// once its marker is published and its events are delivered.
func (f *Finalizer) advance(ctx context.Context, st *Stream, ss streamState, cursor int64) error {
	r := f.runs[st.Name]
	now := f.o.Now()
	bound := ss.bound(now)
	for {
		hour, hours, first := folderAt(st, cursor)
		// A folder is published at its first bucket once its last bucket
		// is complete; its later buckets are passed over.
		if first {
			end := folderBound(st, hours)
			if end > bound {
				break
			}
			if err := f.publish(ctx, st, hour, nil, r.wm.completedAt(ss, end)); err != nil {
				return err
			}
		}
		next := partitioner.NextHour(hour, st.Loc).UnixMilli()
		if err := f.cursors.save(ctx, st.Name, next); err != nil {
			return err
		}
		cursor = next
		r.cursor = cursor
		f.o.Metrics.OldestOpenHour.WithLabelValues(st.Name).Set(float64(cursor) / 1000)
		if f.o.Now().Sub(now) >= f.o.CheckInterval {
			// A long catch-up (weeks of empty hours after an idle
			// stream, a table commit for each) yields after a check
			// interval: the next check reads the offsets again and
			// publishes the amendments that arrived meanwhile first.
			return nil
		}
	}
	return nil
}
