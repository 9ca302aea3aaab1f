package completion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ledger"
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
//  1. build the manifest from the hour folder, delete orphans;
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
// commit metadata (see late.go): for an entry of an hour before the cursor
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
type Finalizer struct {
	o      Options
	notify *Notifier
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
	cursor  int64                  // start of the next hour to finalize, unix ms; 0: not read yet
	empty   map[topicPart]emptyObs // partitions seen with nothing ever committed
	wmSeen  map[topicPart][]wmObs  // committed watermarks seen, oldest first
	waiting map[string]time.Time   // revision key -> since when its events are awaited from another instance
	blocked bool                   // markers wait for unproven files
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

// Faults receives the finalizer's failures (ops.Health implements it): it
// logs a lasting fault rarely and decides what readiness says.
type Faults interface {
	Kafka(err error)
	// Storage reports a check that failed on the lake (err), or a round of
	// checks that reached the lake without a failure (nil), which clears
	// the finalizer's own storage fault.
	Storage(err error)
	// Events reports delivery of stream's completion events to dependency
	// ("completion_topic" or "webhook"): err nil once delivered.
	Events(stream, dependency string, err error)
	// Blocked reports that stream's markers wait for files that no
	// manifest may list and nothing proves superseded (*UnprovenError);
	// err nil once a marker of the stream was published again.
	Blocked(stream string, err error)
}

// UnprovenError is the error of a folder whose marker waits: Files overlap
// files the manifest lists, so they cannot be listed, and are not proven
// superseded (SplitOrphans), so they are not deleted. A replay that covers
// them, or an operator, resolves it (docs/operations.md).
type UnprovenError struct {
	Folder string
	Files  []ManifestFile
}

func (e *UnprovenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "folder %s: %d file(s) hold records no manifest lists and are not proven superseded, kept; the marker waits:", e.Folder, len(e.Files))
	for i, f := range e.Files {
		if i == 5 {
			fmt.Fprintf(&b, " and %d more", len(e.Files)-i)
			break
		}
		fmt.Fprintf(&b, " %s (offsets %d-%d)", f.Path, f.FirstOffset, f.LastOffset)
	}
	return b.String()
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
}

// GroupOffsets is the group-wide view of the stream's partitions that the
// rule is decided on (kafkaio.Admin implements it).
type GroupOffsets interface {
	GroupOffsets(ctx context.Context, topics []string) ([]kafkaio.PartitionOffsets, error)
}

// wmObs is a committed watermark first seen at a moment.
type wmObs struct {
	wm int64
	at time.Time
}

// maxWMObs bounds the watermark history kept per partition.
const maxWMObs = 256

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

// cursorState is persisted in the lake so a restarted group resumes where
// markers stopped.
type cursorState struct {
	NextHour string `json:"next_hour"`
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

// NewFinalizer returns the finalizer of o.Streams. It does not start.
func NewFinalizer(o Options) *Finalizer {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f := &Finalizer{o: o, notify: o.Notifier, runs: map[string]*streamRun{}, storageFailing: map[string]bool{}}
	for _, st := range o.Streams {
		f.runs[st.Name] = &streamRun{empty: map[topicPart]emptyObs{}, wmSeen: map[topicPart][]wmObs{}, waiting: map[string]time.Time{}}
	}
	return f
}

// sendGrace is how long an instance waits for the winner of a revision to
// deliver its events before it delivers them itself.
func (f *Finalizer) sendGrace() time.Duration {
	return 5*f.o.CheckInterval + 2*f.o.WebhookTimeout
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

// settle reports the outcome of one check of st: markers blocked by
// unproven files (cleared only by a check that met none), a failure of
// Kafka or the lake, or success.
func (f *Finalizer) settle(ctx context.Context, st *Stream, err error) {
	var ue *UnprovenError
	storageOK, storageFailed := false, false // the check reached the lake / failed on it
	switch {
	case errors.Is(err, errAwaitEvents):
		f.o.Log.Debug("finalizer", "stream", st.Name, "wait", err)
		storageOK = true
		f.unblock(st)
	case errors.As(err, &ue):
		f.block(st, ue)
		storageOK = true
	case err == nil:
		storageOK = true
		f.unblock(st)
	case ctx.Err() == nil:
		f.o.Metrics.FinalizerErrors.Inc()
		storageFailed = f.fault(st, err)
	}
	f.storageState(ctx, st, storageOK, storageFailed)
}

// storageState records whether st's last check failed on the lake and,
// once no stream's last check did, clears the finalizer's own storage
// fault (readiness follows each source of storage calls separately; the
// streams' goroutines share this one).
func (f *Finalizer) storageState(ctx context.Context, st *Stream, ok, failed bool) {
	f.storageMu.Lock()
	defer f.storageMu.Unlock()
	switch {
	case failed:
		f.storageFailing[st.Name] = true
	case ok:
		delete(f.storageFailing, st.Name)
	}
	if ok && len(f.storageFailing) == 0 && f.o.Faults != nil && ctx.Err() == nil {
		f.o.Faults.Storage(nil)
	}
}

// fault reports a failed check: to Faults (which logs a lasting fault
// rarely) when set, else as a warning. It returns whether the error was
// the lake's (reported as a storage fault).
func (f *Finalizer) fault(st *Stream, err error) (storage bool) {
	if f.o.Faults == nil {
		f.o.Log.Warn("finalizer", "stream", st.Name, "err", err)
		return false
	}
	f.o.Log.Debug("finalizer", "stream", st.Name, "err", err)
	var ke kafkaError
	if errors.As(err, &ke) {
		f.o.Faults.Kafka(fmt.Errorf("finalizer of stream %s: %w", st.Name, err))
		return false
	}
	f.o.Faults.Storage(fmt.Errorf("finalizer of stream %s: %w", st.Name, err))
	return true
}

// block reports a stream whose markers wait for unproven files: to Faults
// (readiness, a log line when it starts and rarely while it lasts) or as a
// warning, and in lakesink_unproven_files.
func (f *Finalizer) block(st *Stream, ue *UnprovenError) {
	f.o.Metrics.UnprovenFiles.WithLabelValues(st.Name).Set(float64(len(ue.Files)))
	f.runs[st.Name].blocked = true
	if f.o.Faults == nil {
		f.o.Log.Warn("markers blocked", "stream", st.Name, "err", ue)
		return
	}
	f.o.Faults.Blocked(st.Name, ue)
}

// unblock clears what block reported once a check of st met no unproven
// file.
func (f *Finalizer) unblock(st *Stream) {
	if r := f.runs[st.Name]; !r.blocked {
		return
	} else {
		r.blocked = false
	}
	f.o.Metrics.UnprovenFiles.WithLabelValues(st.Name).Set(0)
	if f.o.Faults != nil {
		f.o.Faults.Blocked(st.Name, nil)
	}
}

// kafkaError marks an error of the group-wide Kafka view.
type kafkaError struct{ err error }

func (e kafkaError) Error() string { return e.err.Error() }
func (e kafkaError) Unwrap() error { return e.err }

// streamWatermark computes the group-wide completion bound of a stream, in
// unix ms, the earliest hour any partition has written and the partitions'
// amend entries.
func (f *Finalizer) streamWatermark(ctx context.Context, st *Stream) (ss streamState, err error) {
	parts, err := f.o.Offsets.GroupOffsets(ctx, st.Topics)
	if err != nil {
		return ss, kafkaError{err}
	}
	now := f.o.Now()
	idle := f.o.IdleTimeout
	r := f.runs[st.Name]
	wm := int64(math.MaxInt64)
	for _, p := range parts {
		{
			tp := topicPart{p.Topic, p.Partition}
			meta, _, _ := ledger.Parse(p.Metadata)
			if meta.FH > 0 && (ss.firstHour == 0 || meta.FH < ss.firstHour) {
				ss.firstHour = meta.FH
			}
			for _, a := range meta.AM {
				ss.amends = append(ss.amends, partAmend{topicPart: tp, Amend: a})
			}
			r.observeWM(tp, meta.WM, now)
			ps := partState{tp: tp, wm: meta.WM}
			eff := meta.WM
			caughtUp := p.Committed >= p.High || (p.Committed < 0 && p.Low == p.High)
			if caughtUp {
				quietSince := time.UnixMilli(meta.LA)
				if meta.LA == 0 {
					o, seen := r.empty[tp]
					if !seen || o.high != p.High {
						o = emptyObs{high: p.High, since: now}
						r.empty[tp] = o
					}
					quietSince = o.since
				}
				if now.Sub(quietSince) >= idle && now.UnixMilli() > eff {
					eff = now.UnixMilli()
					ps.idleSince = quietSince.Add(idle)
				}
			} else {
				delete(r.empty, tp)
			}
			wm = min(wm, eff)
			ss.parts = append(ss.parts, ps)
		}
	}
	if len(parts) == 0 {
		ss.wm = math.MinInt64
		return ss, nil
	}
	ss.wm = wm
	return ss, nil
}

// observeWM records a partition's committed watermark the first time it is
// seen.
func (r *streamRun) observeWM(tp topicPart, wm int64, now time.Time) {
	obs := r.wmSeen[tp]
	if len(obs) > 0 && obs[len(obs)-1].wm >= wm {
		return
	}
	obs = append(obs, wmObs{wm: wm, at: now})
	if len(obs) > maxWMObs {
		obs = obs[len(obs)-maxWMObs:]
	}
	r.wmSeen[tp] = obs
}

// completedAt estimates when the hour ending (with lateness) at bound became
// complete by the rule (see the finalizer doc).
func (r *streamRun) completedAt(ss streamState, bound int64) time.Time {
	at := time.UnixMilli(bound)
	for _, p := range ss.parts {
		var t time.Time
		if p.wm >= bound {
			obs := r.wmSeen[p.tp]
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

// check publishes amended revisions of finalized hours of st, then finalizes
// every hour of st that is complete, oldest first.
func (f *Finalizer) check(ctx context.Context, st *Stream) error {
	ss, err := f.streamWatermark(ctx, st)
	if err != nil {
		return err
	}
	cursor, err := f.cursor(ctx, st, ss.firstHour)
	if err != nil || cursor == 0 {
		return err
	}
	f.o.Metrics.OldestOpenHour.WithLabelValues(st.Name).Set(float64(cursor) / 1000)
	// Amendments of hours already finalized, oldest first. An hour's
	// marker is its folder's: the folder's first bucket keys it, and the
	// folder is finalized once the cursor has passed that bucket.
	sort.Slice(ss.amends, func(i, j int) bool { return ss.amends[i].Hour < ss.amends[j].Hour })
	for _, a := range ss.amends {
		hour := time.UnixMilli(a.Hour).In(st.Loc)
		if partitioner.FolderHours(hour, st.Loc)[0].UnixMilli() >= cursor {
			continue // its first marker lists the file
		}
		if err := f.publish(ctx, st, hour, &a, time.Time{}); err != nil {
			return err
		}
	}
	now := f.o.Now()
	bound := min(ss.wm, now.UnixMilli())
	lat := st.Lateness.Milliseconds()
	for {
		hour := time.UnixMilli(cursor).In(st.Loc)
		// One folder, one manifest: a folder that several buckets render
		// into (the two 01:00 hours of a fall-back night) is finalized at
		// its first bucket, once its last bucket is complete too; its
		// later buckets are passed over. Bucket ends count as start + 1h
		// like the workers' and the ledger's (a bucket cut short by a
		// transition closes late, never early).
		hours := partitioner.FolderHours(hour, st.Loc)
		first := hours[0].Equal(hour)
		if end := hours[len(hours)-1].UnixMilli() + ledger.HourMs + lat; first && end > bound {
			break
		}
		if first {
			if err := f.publish(ctx, st, hour, nil, f.runs[st.Name].completedAt(ss, hours[len(hours)-1].UnixMilli()+ledger.HourMs+lat)); err != nil {
				return err
			}
		}
		next := partitioner.NextHour(hour, st.Loc).UnixMilli()
		if err := f.saveCursor(ctx, st, next); err != nil {
			return err
		}
		cursor = next
		f.runs[st.Name].cursor = cursor
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

// errAwaitEvents stops a stream's check while another instance is expected
// to deliver the events of a revision it published.
var errAwaitEvents = errors.New("awaiting another instance's completion events")

func cursorKey(stream string) string { return "_lakesink/finalizer/" + stream + ".json" }

// cursor returns the next hour to finalize: from memory, from the lake, or
// else the earliest hour any partition wrote (0 when nothing was written).
func (f *Finalizer) cursor(ctx context.Context, st *Stream, firstHour int64) (int64, error) {
	r := f.runs[st.Name]
	if c := r.cursor; c != 0 {
		return c, nil
	}
	rc, err := f.o.Writer.Get(ctx, cursorKey(st.Name))
	switch {
	case err == nil:
		defer rc.Close()
		var cs cursorState
		b, err := io.ReadAll(rc)
		if err == nil {
			err = json.Unmarshal(b, &cs)
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", cursorKey(st.Name), err)
		}
		t, err := time.Parse(time.RFC3339, cs.NextHour)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", cursorKey(st.Name), err)
		}
		r.cursor = t.UnixMilli()
	case errors.Is(err, writers.ErrNotFound):
		r.cursor = firstHour
	default:
		return 0, fmt.Errorf("get %s: %w", cursorKey(st.Name), err)
	}
	return r.cursor, nil
}

func (f *Finalizer) saveCursor(ctx context.Context, st *Stream, next int64) error {
	b, _ := json.Marshal(cursorState{NextHour: time.UnixMilli(next).UTC().Format(time.RFC3339)})
	if err := f.o.Writer.Put(ctx, cursorKey(st.Name), bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("put %s: %w", cursorKey(st.Name), err)
	}
	return nil
}

// publish brings the marker of hour up to date and delivers its events:
// revision 1 when it has none; revision N+1 when need (an amend entry) names
// a file the latest revision N does not list. It returns when the latest
// revision's events are delivered (or errAwaitEvents while another
// instance, which published it, is expected to deliver them). Idempotent.
func (f *Finalizer) publish(ctx context.Context, st *Stream, bucket time.Time, need *partAmend, completeAt time.Time) error {
	ms := markerStore{w: f.o.Writer, stream: st.Name}
	hours := partitioner.FolderHours(bucket, st.Loc)
	hour := hours[0] // the folder's marker is keyed by its first bucket
	folder := st.Path.Render(st.Name, hour)
	key := st.Path.MarkerKey(st.Name, hour)
	n, cur, err := ms.latest(ctx, hour)
	if err != nil {
		return err
	}
	won := false
	rebuild := n == 0 || (need != nil && !cur.Lists(need.topic, need.partition, need.First))
	for rebuild {
		m, err := f.buildAndClean(ctx, st, folder, hours, n+1)
		if err != nil {
			return err
		}
		if n > 0 && sameFiles(m, cur) {
			// Nothing new in the folder (the entry's file is listed under
			// a replaced name, or an orphan was cleaned): no revision.
			f.o.Log.Warn("amend entry names no new file", "stream", st.Name, "hour", cur.Hour, "revision", n)
			break
		}
		b := m.Encode()
		err = f.o.Writer.PutIfAbsent(ctx, ms.revKey(hour, n+1), bytes.NewReader(b), int64(len(b)))
		switch {
		case errors.Is(err, writers.ErrExists):
			// Another instance published this revision first.
			if cur, err = readManifestKey(ctx, f.o.Writer, ms.revKey(hour, n+1)); err != nil {
				return err
			}
			n, won = n+1, false
		case err != nil:
			return fmt.Errorf("put %s: %w", ms.revKey(hour, n+1), err)
		default:
			n, cur, won = n+1, m, true
			if n == 1 {
				f.o.Metrics.HoursCompleted.WithLabelValues(st.Name).Inc()
				if !completeAt.IsZero() {
					f.o.Metrics.MarkerDelay.Observe(max(f.o.Now().Sub(completeAt).Seconds(), 0))
				}
			}
			f.o.Log.Info("hour complete", "stream", st.Name, "hour", m.Hour, "revision", n, "marker", key,
				"files", len(m.Files), "records", m.Records)
		}
		if err := f.putSuccess(ctx, ms, hour, key, n, cur); err != nil {
			return err
		}
		// A file uploaded while the first revision was being built (its
		// worker may have looked for the marker before it existed) makes
		// the next revision right away.
		rebuild = false
		if won && n == 1 {
			if rebuild, err = f.newFiles(ctx, folder, cur); err != nil {
				return err
			}
		}
	}
	if n == 0 {
		return nil
	}
	if !won {
		// Make sure _SUCCESS is not behind (its writer may have died).
		if err := f.ensureSuccess(ctx, ms, hour, key, n, cur); err != nil {
			return err
		}
	}
	return f.deliver(ctx, ms, st, hour, key, n, cur, won)
}

// buildAndClean builds revision rev of the manifest of a folder holding
// the buckets hours and deletes the orphans it proved superseded. Orphans
// go before the marker, so a reader listing the folder after the marker
// sees exactly the manifest's files. Files that are neither listable nor
// proven superseded are kept and stop the revision (*UnprovenError):
// deleting is the one irreversible act of the daemon and needs a proof.
func (f *Finalizer) buildAndClean(ctx context.Context, st *Stream, folder string, hours []time.Time, rev int) (Manifest, error) {
	hour, last := hours[0], hours[len(hours)-1]
	m, orphans, unproven, err := buildManifest(ctx, f.o.Writer, st.Name, folder, hours, st.Loc, rev, f.o.Now())
	if err != nil {
		return m, err
	}
	if len(unproven) > 0 {
		return m, &UnprovenError{Folder: folder, Files: unproven}
	}
	for _, o := range orphans {
		if err := f.o.Writer.Delete(ctx, o.Path); err != nil {
			return m, fmt.Errorf("delete orphan %s: %w", o.Path, err)
		}
		f.o.Log.Info("orphan removed", "key", o.Path, "first_offset", o.FirstOffset, "last_offset", o.LastOffset,
			"superseded_by", coveringFiles(m.Files, o))
	}
	if st.Table != nil {
		// The hour's files are in the table: workers add them before
		// their commits let the watermark pass the hour.
		var snap int64
		if rev == 1 {
			snap, err = st.Table.Complete(ctx, partitioner.NextHour(last, st.Loc))
		} else {
			snap, err = st.Table.Current(ctx)
		}
		if err != nil {
			return m, err
		}
		m.Table, m.SnapshotID = st.Table.Ident(), snap
		m.TablePartition = map[string]int64{st.Table.PartitionField(): hour.Unix() / 3600}
	}
	return m, nil
}

// coveringFiles names the kept files of o's bucket whose ranges hold o's
// first or last offset: the proof that o may go, for the log.
func coveringFiles(kept []ManifestFile, o ManifestFile) []string {
	var out []string
	for _, k := range kept {
		if k.Topic == o.Topic && k.Partition == o.Partition && k.Bucket.Equal(o.Bucket) &&
			((k.FirstOffset <= o.FirstOffset && o.FirstOffset <= k.LastOffset) || (k.FirstOffset <= o.LastOffset && o.LastOffset <= k.LastOffset)) {
			out = append(out, k.Path)
		}
	}
	return out
}

// newFiles reports whether the folder holds a data file m does not list.
func (f *Finalizer) newFiles(ctx context.Context, folder string, m Manifest) (bool, error) {
	objs, err := f.o.Writer.List(ctx, folder+"/")
	if err != nil {
		return false, fmt.Errorf("list %s: %w", folder, err)
	}
	listed := map[string]bool{}
	for _, mf := range m.Files {
		listed[mf.Path] = true
	}
	for _, o := range objs {
		name := o.Key[len(folder)+1:]
		if _, _, _, ok := partitioner.ParseFileName(name); ok && !strings.Contains(name, "/") && !listed[o.Key] {
			return true, nil
		}
	}
	return false, nil
}

// putSuccess writes revision n as _SUCCESS, then again the latest revision
// if a newer one was published meanwhile.
func (f *Finalizer) putSuccess(ctx context.Context, ms markerStore, hour time.Time, key string, n int, m Manifest) error {
	for {
		b := m.Encode()
		if err := f.o.Writer.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		latest, lm, err := ms.latest(ctx, hour)
		if err != nil {
			return err
		}
		if latest <= n {
			return nil
		}
		n, m = latest, lm
	}
}

// ensureSuccess puts revision n as _SUCCESS unless _SUCCESS already has it
// or a later one.
func (f *Finalizer) ensureSuccess(ctx context.Context, ms markerStore, hour time.Time, key string, n int, m Manifest) error {
	cur, err := readManifestKey(ctx, f.o.Writer, key)
	if err == nil && cur.Revision >= n {
		return nil
	}
	if err != nil && !errors.Is(err, writers.ErrNotFound) {
		return err
	}
	return f.putSuccess(ctx, ms, hour, key, n, m)
}

// deliver sends the events of revision n unless they were sent, and marks
// them sent. Revisions before n are not sent: n supersedes them.
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
