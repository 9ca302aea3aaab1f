package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/writers"
)

// finalizer writes hour markers. Every instance of the group runs one; they
// agree because they read the same group-wide state (committed offsets and
// their watermark metadata, high watermarks) and publish markers with a
// create-if-absent put, so a marker is written once whoever gets there first.
//
// The rule: hour H of a stream is complete when, for every partition of the
// stream's topics, either its committed safe watermark has reached
// H.end + allowed_lateness, or it is idle — everything up to its high
// watermark is committed and it has been quiet for idle_partition_timeout — in
// which case it counts as caught up to the wall clock. Hours are finalized
// oldest first, and never before the wall clock has passed H.end + lateness.
type finalizer struct {
	s       *Sink
	cursors map[string]int64       // stream -> start of the next hour to finalize, unix ms
	empty   map[topicPart]emptyObs // partitions seen with nothing ever committed
}

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

func newFinalizer(s *Sink) *finalizer {
	return &finalizer{s: s, cursors: map[string]int64{}, empty: map[topicPart]emptyObs{}}
}

func (f *finalizer) run(ctx context.Context) {
	t := time.NewTicker(time.Duration(f.s.cfg.Markers.CheckInterval))
	defer t.Stop()
	for {
		for _, st := range f.s.streams {
			if err := f.check(ctx, st); err != nil && ctx.Err() == nil {
				f.s.metrics.FinalizerErrors.Inc()
				f.s.log.Warn("finalizer", "stream", st.name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// streamWatermark computes the group-wide completion bound of a stream, in
// unix ms, and the earliest hour any partition has written (0: none).
func (f *finalizer) streamWatermark(ctx context.Context, st *stream) (wm, firstHour int64, err error) {
	c := f.s.client
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: st.topics})
	if err != nil {
		return 0, 0, fmt.Errorf("metadata: %w", err)
	}
	parts := map[string][]int{}
	lreq := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		if t.Error != nil {
			return 0, 0, fmt.Errorf("metadata %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
			lreq.Topics[t.Name] = append(lreq.Topics[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	if len(parts) != len(st.topics) {
		return 0, 0, fmt.Errorf("metadata: %d of %d topics found", len(parts), len(st.topics))
	}
	offs, err := c.ListOffsets(ctx, lreq)
	if err != nil {
		return 0, 0, fmt.Errorf("list offsets: %w", err)
	}
	committed, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: f.s.cfg.Kafka.GroupID, Topics: parts})
	if err == nil && committed.Error != nil {
		err = committed.Error
	}
	if err != nil {
		return 0, 0, fmt.Errorf("offset fetch: %w", err)
	}
	type lh struct{ low, high int64 }
	ends := map[topicPart]lh{}
	for t, ps := range offs.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return 0, 0, fmt.Errorf("list offsets %s/%d: %w", t, p.Partition, p.Error)
			}
			ends[topicPart{t, p.Partition}] = lh{p.FirstOffset, p.LastOffset}
		}
	}
	now := f.s.now()
	idle := time.Duration(f.s.cfg.Markers.IdlePartitionTimeout)
	wm = math.MaxInt64
	n := 0
	for t, ps := range committed.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return 0, 0, fmt.Errorf("offset fetch %s/%d: %w", t, p.Partition, p.Error)
			}
			n++
			tp := topicPart{t, p.Partition}
			e, ok := ends[tp]
			if !ok {
				return 0, 0, fmt.Errorf("no offsets for %s/%d", t, p.Partition)
			}
			meta, _, _ := parseCommitMeta(p.Metadata)
			if meta.FH > 0 && (firstHour == 0 || meta.FH < firstHour) {
				firstHour = meta.FH
			}
			eff := meta.WM
			caughtUp := p.CommittedOffset >= e.high || (p.CommittedOffset < 0 && e.low == e.high)
			if caughtUp {
				quietSince := time.UnixMilli(meta.LA)
				if meta.LA == 0 {
					o, seen := f.empty[tp]
					if !seen || o.high != e.high {
						o = emptyObs{high: e.high, since: now}
						f.empty[tp] = o
					}
					quietSince = o.since
				}
				if now.Sub(quietSince) >= idle && now.UnixMilli() > eff {
					eff = now.UnixMilli()
				}
			} else {
				delete(f.empty, tp)
			}
			if meta.WM > 0 {
				f.s.metrics.Watermark.WithLabelValues(st.name, t, fmt.Sprint(p.Partition)).Set(float64(meta.WM) / 1000)
			}
			wm = min(wm, eff)
		}
	}
	if n == 0 {
		return math.MinInt64, 0, nil
	}
	return wm, firstHour, nil
}

// check finalizes every hour of st that is complete.
func (f *finalizer) check(ctx context.Context, st *stream) error {
	wm, firstHour, err := f.streamWatermark(ctx, st)
	if err != nil {
		return err
	}
	cursor, err := f.cursor(ctx, st, firstHour)
	if err != nil || cursor == 0 {
		return err
	}
	now := f.s.now()
	bound := min(wm, now.UnixMilli())
	lat := st.lateness.Milliseconds()
	for cursor+hourMs+lat <= bound {
		hour := time.UnixMilli(cursor).In(st.loc)
		if err := f.writeMarker(ctx, st, hour, now); err != nil {
			return err
		}
		next := partitioner.HourOf(hour.Add(time.Hour), st.loc).UnixMilli()
		if err := f.saveCursor(ctx, st, next); err != nil {
			return err
		}
		cursor = next
		f.cursors[st.name] = cursor
	}
	f.s.metrics.OldestOpenHour.WithLabelValues(st.name).Set(float64(cursor) / 1000)
	return nil
}

func cursorKey(stream string) string { return "_lakesink/finalizer/" + stream + ".json" }

// cursor returns the next hour to finalize: from memory, from the lake, or
// else the earliest hour any partition wrote (0 when nothing was written).
func (f *finalizer) cursor(ctx context.Context, st *stream, firstHour int64) (int64, error) {
	if c := f.cursors[st.name]; c != 0 {
		return c, nil
	}
	rc, err := f.s.writer.Get(ctx, cursorKey(st.name))
	switch {
	case err == nil:
		defer rc.Close()
		var cs cursorState
		b, err := io.ReadAll(rc)
		if err == nil {
			err = json.Unmarshal(b, &cs)
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", cursorKey(st.name), err)
		}
		t, err := time.Parse(time.RFC3339, cs.NextHour)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", cursorKey(st.name), err)
		}
		f.cursors[st.name] = t.UnixMilli()
	case errors.Is(err, writers.ErrNotFound):
		f.cursors[st.name] = firstHour
	default:
		return 0, fmt.Errorf("get %s: %w", cursorKey(st.name), err)
	}
	return f.cursors[st.name], nil
}

func (f *finalizer) saveCursor(ctx context.Context, st *stream, next int64) error {
	b, _ := json.Marshal(cursorState{NextHour: time.UnixMilli(next).UTC().Format(time.RFC3339)})
	if err := f.s.writer.Put(ctx, cursorKey(st.name), bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("put %s: %w", cursorKey(st.name), err)
	}
	return nil
}

// writeMarker builds the hour's manifest from the files in its folder and
// publishes it as _SUCCESS with a create-if-absent put: if another instance
// was first, its marker stands.
func (f *finalizer) writeMarker(ctx context.Context, st *stream, hour, seenComplete time.Time) error {
	folder := st.path.Render(st.name, hour)
	key := folder + "/" + partitioner.MarkerName
	ok, err := f.s.writer.Exists(ctx, key)
	if err != nil {
		return fmt.Errorf("exists %s: %w", key, err)
	}
	if ok {
		return nil
	}
	m, orphans, err := buildManifest(ctx, f.s.writer, st.name, folder, hour, 1, f.s.now())
	if err != nil {
		return err
	}
	// Orphans go before the marker, so a reader listing the folder after the
	// marker sees exactly the manifest's files.
	for _, o := range orphans {
		if err := f.s.writer.Delete(ctx, o.Path); err != nil {
			return fmt.Errorf("delete orphan %s: %w", o.Path, err)
		}
		f.s.log.Info("orphan removed", "key", o.Path, "first_offset", o.FirstOffset, "last_offset", o.LastOffset)
	}
	b := m.Encode()
	err = f.s.writer.PutIfAbsent(ctx, key, bytes.NewReader(b), int64(len(b)))
	if errors.Is(err, writers.ErrExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	f.s.metrics.HoursCompleted.WithLabelValues(st.name).Inc()
	f.s.metrics.MarkerDelay.Observe(f.s.now().Sub(seenComplete).Seconds())
	f.s.log.Info("hour complete", "stream", st.name, "hour", m.Hour, "marker", key,
		"files", len(m.Files), "records", m.Records)
	return nil
}
