package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/writers"
)

// This file holds what operators look at: per-partition progress (lag in
// records and seconds, watermark, commit stalls), the periodic storage and
// dead-letter topic probes behind /readyz, the recent warnings and errors,
// and Status, the data of the status page and /api/status.

// ---- recent log records ----

// LogEntry is one recorded warning or error.
type LogEntry struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	// Attrs are the record's attributes as "key=value", in order.
	Attrs []string `json:"attrs,omitempty"`
}

// LogRing keeps the last warnings and errors logged, for the status page.
// Safe for concurrent use. It records what the logger is given: secrets must
// not be logged in the first place (they are not).
type LogRing struct {
	mu   sync.Mutex
	buf  []LogEntry
	next int
	full bool
}

// NewLogRing returns a ring holding the last n entries (n >= 1).
func NewLogRing(n int) *LogRing {
	return &LogRing{buf: make([]LogEntry, max(n, 1))}
}

func (r *LogRing) add(e LogEntry) {
	r.mu.Lock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
}

// Entries returns the recorded entries, newest first.
func (r *LogRing) Entries() []LogEntry {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]LogEntry, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

// Handler wraps next: every record still goes to next, and records at WARN
// or above are also kept in r.
func (r *LogRing) Handler(next slog.Handler) slog.Handler {
	return &ringHandler{ring: r, next: next}
}

type ringHandler struct {
	ring   *LogRing
	next   slog.Handler
	attrs  []string
	groups string
}

func (h *ringHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *ringHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		e := LogEntry{Time: rec.Time, Level: rec.Level.String(), Message: rec.Message}
		e.Attrs = append(e.Attrs, h.attrs...)
		rec.Attrs(func(a slog.Attr) bool {
			e.Attrs = appendAttr(e.Attrs, h.groups, a)
			return true
		})
		h.ring.add(e)
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]string(nil), h.attrs...)
	for _, a := range as {
		c.attrs = appendAttr(c.attrs, h.groups, a)
	}
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.groups = h.groups + name + "."
	c.next = h.next.WithGroup(name)
	return &c
}

func appendAttr(dst []string, prefix string, a slog.Attr) []string {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			dst = appendAttr(dst, prefix+a.Key+".", g)
		}
		return dst
	}
	return append(dst, prefix+a.Key+"="+a.Value.String())
}

// ---- per-partition progress ----

// ownedPart is what this instance knows of a partition it owns.
type ownedPart struct {
	stream, topic string
	partition     int
	gen           int
	committed     int64
	high          int64
	meta          string
	watermark     int64 // safe watermark, unix ms
	raw           int64 // raw watermark (max event time read), unix ms
	reported      time.Time
	advanced      time.Time // last time offset or metadata changed
	lagAtAdvance  int64
}

func (p *ownedPart) lag() int64 { return max(p.high-p.committed, 0) }

// ops is the sink's operational state; the zero value is ready to use.
type ops struct {
	mu    sync.Mutex
	parts map[topicPart]*ownedPart
	gen   int // newest generation a partition was reported in
	logs  *LogRing

	hoursMu sync.Mutex
	hours   map[string]hourCache // by marker key
}

type hourCache struct {
	at time.Time
	h  HourStatus
}

// notePartition is called by a partition worker after every commit attempt
// (each commit interval) with its committed offset, the high watermark it
// last saw and the commit metadata. It sets the lag gauges and feeds stall
// detection and the status page.
func (s *Sink) notePartition(st *stream, topic string, partition, gen int, committed, high int64, meta commitMeta) {
	now := s.now()
	lagSeconds := 0.0
	if high > committed && meta.RW > 0 {
		lagSeconds = max(now.Sub(time.UnixMilli(meta.RW)).Seconds(), 0)
	}
	s.metrics.ConsumerLagSeconds.WithLabelValues(topic, strconv.Itoa(partition)).Set(lagSeconds)

	enc := meta.encode()
	o := &s.ops
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.parts == nil {
		o.parts = map[topicPart]*ownedPart{}
	}
	tp := topicPart{topic, partition}
	p := o.parts[tp]
	if p == nil || p.gen != gen {
		p = &ownedPart{stream: st.name, topic: topic, partition: partition, gen: gen, advanced: now}
		o.parts[tp] = p
	}
	o.gen = max(o.gen, gen)
	if committed != p.committed || enc != p.meta {
		p.advanced = now
		p.lagAtAdvance = max(high-committed, 0)
	}
	p.committed, p.high, p.meta = committed, high, enc
	p.watermark, p.raw = meta.WM, meta.RW
	p.reported = now
}

// stalls lists partitions whose commits have not advanced for the stall
// timeout while they have lag that grew since the last advance, or whose
// worker has not reported for the stall timeout while it had lag (blocked,
// e.g. retrying an upload).
func (s *Sink) stalls() []string {
	timeout := time.Duration(s.cfg.HTTP.CommitStallTimeout)
	if timeout <= 0 {
		return nil
	}
	now := s.now()
	o := &s.ops
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, p := range o.parts {
		if p.gen != o.gen || p.lag() == 0 {
			continue
		}
		switch {
		case now.Sub(p.reported) >= timeout:
			out = append(out, fmt.Sprintf("commits stalled: %s/%d has not reported progress for %s (lag %d records)",
				p.topic, p.partition, now.Sub(p.reported).Truncate(time.Second), p.lag()))
		case now.Sub(p.advanced) >= timeout && p.lag() > p.lagAtAdvance:
			out = append(out, fmt.Sprintf("commits stalled: %s/%d has not committed for %s while its lag grew from %d to %d records",
				p.topic, p.partition, now.Sub(p.advanced).Truncate(time.Second), p.lagAtAdvance, p.lag()))
		}
	}
	sort.Strings(out)
	return out
}

// ---- readiness probes ----

// probeKey is looked up (not written) to check that storage answers.
const probeKey = "_lakesink/probe"

// RunHealthChecks probes storage and the dead-letter topic every
// http.health_check_interval until ctx ends, feeding Readiness: storage is
// unreachable while a lookup of a key fails, and the dead-letter topic
// unavailable while the brokers report it missing or without a leader.
// Uploads feed the same storage state. Run it in its own goroutine next to
// Run; it returns when ctx ends.
func (s *Sink) RunHealthChecks(ctx context.Context) {
	every := time.Duration(s.cfg.HTTP.HealthCheckInterval)
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.checkOnce(ctx, every)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sink) checkOnce(ctx context.Context, timeout time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := s.writer.Exists(pctx, probeKey)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.health.setStorage(false, err.Error())
	} else {
		s.health.setStorage(true, "")
	}
	if err := s.checkDeadLetterTopic(pctx); ctx.Err() == nil {
		if err != nil {
			s.health.setDLQ(false, err.Error())
		} else {
			s.health.setDLQ(true, "")
		}
	}
}

func (s *Sink) checkDeadLetterTopic(ctx context.Context) error {
	topic := s.cfg.DeadLetter.Topic
	md, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("metadata %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return fmt.Errorf("topic %s: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			return fmt.Errorf("topic %s has no partitions", topic)
		}
		for _, p := range t.Partitions {
			if p.Error != nil {
				return fmt.Errorf("topic %s partition %d: %w", topic, p.ID, p.Error)
			}
		}
		return nil
	}
	return fmt.Errorf("topic %s: not found", topic)
}

// ---- status ----

// Hour states on the status page.
const (
	HourComplete = "complete" // marker written, revision 1
	HourAmended  = "amended"  // marker rewritten for late data (revision > 1)
	HourOpen     = "open"     // data files but no marker yet
	HourEmpty    = "empty"    // no data files and no marker
)

// HourStatus is one cell of a stream's hour grid.
type HourStatus struct {
	Hour        time.Time  `json:"hour"`
	State       string     `json:"state"`
	Records     int64      `json:"records"` // from the manifest; 0 for open hours
	Files       int        `json:"files"`
	Bytes       int64      `json:"bytes"`
	Revision    int        `json:"revision,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	Error       string     `json:"error,omitempty"`
}

// StreamStatus is a stream's recent hours, oldest first.
type StreamStatus struct {
	Name   string       `json:"name"`
	Topics []string     `json:"topics"`
	Hours  []HourStatus `json:"hours"`
}

// PartitionStatus is a partition owned by this instance.
type PartitionStatus struct {
	Stream          string     `json:"stream"`
	Topic           string     `json:"topic"`
	Partition       int        `json:"partition"`
	CommittedOffset int64      `json:"committed_offset"`
	HighWatermark   int64      `json:"high_watermark"`
	Lag             int64      `json:"lag"`
	LagSeconds      float64    `json:"lag_seconds"`
	Watermark       *time.Time `json:"watermark,omitempty"`
	LastAdvance     time.Time  `json:"last_commit_advance"`
}

// Status is the status page's data, also served as JSON by /api/status.
type Status struct {
	Time         time.Time         `json:"time"`
	Ready        bool              `json:"ready"`
	Reasons      []string          `json:"reasons,omitempty"`
	Streams      []StreamStatus    `json:"streams"`
	Partitions   []PartitionStatus `json:"partitions"`
	RecentErrors []LogEntry        `json:"recent_errors"`
}

// hourCacheTTL bounds how stale a cell of the hour grid may be; it keeps a
// page refresh from reading every marker again.
const hourCacheTTL = 15 * time.Second

// Status gathers the sink's state: readiness, the last hours of every
// stream (read from the lake: the hour's _SUCCESS manifest, else a listing
// of its folder), the partitions this instance owns and the recent warnings
// and errors. hours is the number of hours per stream, the current one
// included. Safe for concurrent use; it reads storage, so it can take as
// long as a few storage calls.
func (s *Sink) Status(ctx context.Context, hours int) Status {
	now := s.now()
	ready, reasons := s.Readiness()
	st := Status{Time: now.UTC(), Ready: ready, Reasons: reasons, RecentErrors: s.ops.logs.Entries()}
	if st.RecentErrors == nil {
		st.RecentErrors = []LogEntry{}
	}
	for _, str := range s.streams {
		ss := StreamStatus{Name: str.name, Topics: str.topics}
		cur := partitioner.HourOf(now, str.loc)
		for i := hours - 1; i >= 0; i-- {
			h := cur.Add(-time.Duration(i) * time.Hour)
			ss.Hours = append(ss.Hours, s.hourStatus(ctx, str, h, now))
		}
		st.Streams = append(st.Streams, ss)
	}
	st.Partitions = s.partitions(now)
	return st
}

func (s *Sink) partitions(now time.Time) []PartitionStatus {
	o := &s.ops
	o.mu.Lock()
	defer o.mu.Unlock()
	out := []PartitionStatus{}
	for _, p := range o.parts {
		if p.gen != o.gen {
			continue
		}
		ps := PartitionStatus{
			Stream: p.stream, Topic: p.topic, Partition: p.partition,
			CommittedOffset: p.committed, HighWatermark: p.high, Lag: p.lag(),
			LastAdvance: p.advanced.UTC(),
		}
		if p.lag() > 0 && p.raw > 0 {
			ps.LagSeconds = max(now.Sub(time.UnixMilli(p.raw)).Seconds(), 0)
		}
		if p.watermark > 0 {
			w := time.UnixMilli(p.watermark).UTC()
			ps.Watermark = &w
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// markerSummary is the part of a _SUCCESS manifest the status page shows.
type markerSummary struct {
	Revision    int       `json:"revision"`
	Records     int64     `json:"records"`
	CompletedAt time.Time `json:"completed_at"`
	Files       []struct {
		Bytes int64 `json:"bytes"`
	} `json:"files"`
}

func (s *Sink) hourStatus(ctx context.Context, st *stream, hour, now time.Time) HourStatus {
	folder := st.path.Render(st.name, hour)
	key := folder + "/" + partitioner.MarkerName
	o := &s.ops
	o.hoursMu.Lock()
	if c, ok := o.hours[key]; ok && now.Sub(c.at) < hourCacheTTL && now.Sub(c.at) >= 0 {
		o.hoursMu.Unlock()
		return c.h
	}
	o.hoursMu.Unlock()

	h := HourStatus{Hour: hour.UTC()}
	if err := s.readHour(ctx, key, folder, &h); err != nil {
		h.Error = err.Error()
	}
	o.hoursMu.Lock()
	if o.hours == nil {
		o.hours = map[string]hourCache{}
	}
	if h.Error == "" {
		o.hours[key] = hourCache{at: now, h: h}
	}
	// Forget cells that scrolled off the grid.
	for k, c := range o.hours {
		if now.Sub(c.at) > time.Hour {
			delete(o.hours, k)
		}
	}
	o.hoursMu.Unlock()
	return h
}

func (s *Sink) readHour(ctx context.Context, key, folder string, h *HourStatus) error {
	rc, err := s.writer.Get(ctx, key)
	if err == nil {
		b, rerr := io.ReadAll(io.LimitReader(rc, 64<<20))
		rc.Close()
		var m markerSummary
		if rerr == nil {
			rerr = json.Unmarshal(b, &m)
		}
		if rerr != nil {
			h.State = HourComplete
			return fmt.Errorf("read %s: %w", key, rerr)
		}
		h.State, h.Revision, h.Records, h.Files = HourComplete, m.Revision, m.Records, len(m.Files)
		if m.Revision > 1 {
			h.State = HourAmended
		}
		for _, f := range m.Files {
			h.Bytes += f.Bytes
		}
		if !m.CompletedAt.IsZero() {
			c := m.CompletedAt.UTC()
			h.CompletedAt = &c
		}
		return nil
	}
	if !errors.Is(err, writers.ErrNotFound) {
		h.State = HourOpen
		return fmt.Errorf("get %s: %w", key, err)
	}
	objs, err := s.writer.List(ctx, folder+"/")
	if err != nil {
		h.State = HourOpen
		return fmt.Errorf("list %s: %w", folder, err)
	}
	for _, ob := range objs {
		if strings.HasSuffix(ob.Key, ".parquet") {
			h.Files++
			h.Bytes += ob.Size
		}
	}
	h.State = HourEmpty
	if h.Files > 0 {
		h.State = HourOpen
	}
	return nil
}
