package completion

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/writers"
)

// The hours of the tests: H is 2026-11-25T10:00Z, the stream's allowed
// lateness is 10 minutes, so H is complete by the rule once every
// partition's watermark and the wall clock reach 11:10.
var (
	hourH  = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	hourH1 = hourH.Add(time.Hour)
	hourH2 = hourH.Add(2 * time.Hour)
)

const (
	testStream   = "events"
	testTopic    = "events"
	testLateness = 10 * time.Minute
	testIdle     = 5 * time.Minute
)

// boundOf is the moment hour is complete by the rule: its end plus the
// allowed lateness.
func boundOf(hour time.Time) time.Time { return hour.Add(time.Hour + testLateness) }

// at returns 2026-11-25 hh:mm:ss UTC.
func at(hh, mm, ss int) time.Time { return time.Date(2026, 11, 25, hh, mm, ss, 0, time.UTC) }

// fakeClock is the finalizer's wall clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// fakeOffsets is the group-wide view of the partitions: settable.
type fakeOffsets struct {
	mu    sync.Mutex
	parts []kafkaio.PartitionOffsets
}

func (o *fakeOffsets) GroupOffsets(_ context.Context, topics []string) ([]kafkaio.PartitionOffsets, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []kafkaio.PartitionOffsets
	for _, p := range o.parts {
		if slices.Contains(topics, p.Topic) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (o *fakeOffsets) Set(parts ...kafkaio.PartitionOffsets) {
	o.mu.Lock()
	o.parts = slices.Clone(parts)
	o.mu.Unlock()
}

// encMeta renders commit metadata of the current format.
func encMeta(m ledger.Meta) string {
	m.V = ledger.Version
	return m.Encode()
}

// busy is a partition that is not caught up (committed below the high
// watermark) whose committed safe watermark is wm and that first wrote hour
// H; amends are its amend entries.
func busy(partition int, wm time.Time, amends ...ledger.Amend) kafkaio.PartitionOffsets {
	return kafkaio.PartitionOffsets{
		Topic: testTopic, Partition: partition, Low: 0, High: 1000, Committed: 500,
		Metadata: encMeta(ledger.Meta{WM: wm.UnixMilli(), RW: wm.UnixMilli(), FH: hourH.UnixMilli(), LA: wm.UnixMilli(), AM: amends}),
	}
}

// caughtUp is a partition whose commit reached its high watermark, with
// safe watermark wm, that last read a record at lastRead.
func caughtUp(partition int, wm, lastRead time.Time) kafkaio.PartitionOffsets {
	return kafkaio.PartitionOffsets{
		Topic: testTopic, Partition: partition, Low: 0, High: 500, Committed: 500,
		Metadata: encMeta(ledger.Meta{WM: wm.UnixMilli(), RW: wm.UnixMilli(), FH: hourH.UnixMilli(), LA: lastRead.UnixMilli()}),
	}
}

// neverCommitted is a partition the group never committed on, whose log
// range is low..high.
func neverCommitted(partition int, low, high int64) kafkaio.PartitionOffsets {
	return kafkaio.PartitionOffsets{Topic: testTopic, Partition: partition, Low: low, High: high, Committed: -1}
}

// recWriter records the lake operations of a finalizer, in order, and can
// run a hook before a PutIfAbsent.
type recWriter struct {
	writers.Writer
	mu  sync.Mutex
	ops []string
	// beforePutIfAbsent, if set, runs (once per key) before the
	// PutIfAbsent of that key reaches the lake.
	beforePutIfAbsent func(key string)
	hooked            map[string]bool
}

func newRecWriter(w writers.Writer) *recWriter {
	return &recWriter{Writer: w, hooked: map[string]bool{}}
}

func (r *recWriter) record(op string) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recWriter) Ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

func (r *recWriter) Put(ctx context.Context, key string, rd io.Reader, size int64) error {
	if key == cursorKey(testStream) {
		b, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		r.record("put " + key + " " + string(b))
		return r.Writer.Put(ctx, key, bytes.NewReader(b), size)
	}
	r.record("put " + key)
	return r.Writer.Put(ctx, key, rd, size)
}

func (r *recWriter) PutIfAbsent(ctx context.Context, key string, rd io.Reader, size int64) error {
	r.mu.Lock()
	hook := r.beforePutIfAbsent != nil && !r.hooked[key]
	r.hooked[key] = true
	r.mu.Unlock()
	if hook {
		r.beforePutIfAbsent(key)
	}
	r.record("putifabsent " + key)
	return r.Writer.PutIfAbsent(ctx, key, rd, size)
}

func (r *recWriter) Delete(ctx context.Context, key string) error {
	r.record("delete " + key)
	return r.Writer.Delete(ctx, key)
}

// harness is a finalizer over an in-memory lake with a fake clock and fake
// group offsets.
type harness struct {
	t       *testing.T
	ctx     context.Context
	lake    *writers.Memory
	clock   *fakeClock
	offs    *fakeOffsets
	st      *Stream
	reg     *prometheus.Registry
	metrics *Metrics
	f       *Finalizer
	schema  *partitioner.Schema
}

func newHarness(t *testing.T, now time.Time) *harness {
	t.Helper()
	tmpl, err := partitioner.ParsePathTemplate(config.DefaultPartitionPath)
	if err != nil {
		t.Fatalf("ParsePathTemplate: %v", err)
	}
	schema, err := partitioner.NewSchema("event", []partitioner.Column{
		{Name: "id", Type: partitioner.TypeString, Required: true},
		{Name: "n", Type: partitioner.TypeInt64},
	})
	if err != nil {
		t.Fatalf("NewSchema: %v", err)
	}
	h := &harness{
		t: t, ctx: context.Background(), lake: writers.NewMemory(), clock: &fakeClock{t: now}, offs: &fakeOffsets{},
		st:     &Stream{Name: testStream, Topics: []string{testTopic}, Loc: time.UTC, Lateness: testLateness, Path: tmpl},
		schema: schema,
	}
	h.reg = prometheus.NewRegistry()
	h.f, h.metrics = h.newFinalizer(h.lake, h.clock, h.reg)
	return h
}

// newFinalizer returns another finalizer of the harness's stream and
// offsets over w, with its own clock and metrics registry.
func (h *harness) newFinalizer(w writers.Writer, clock *fakeClock, reg *prometheus.Registry) (*Finalizer, *Metrics) {
	m := NewMetrics(reg)
	return NewFinalizer(Options{
		Streams: []*Stream{h.st}, Writer: w, Offsets: h.offs,
		CheckInterval: time.Second, IdleTimeout: testIdle, WebhookTimeout: time.Second,
		Now: clock.Now, Metrics: m, Log: slog.New(slog.DiscardHandler),
	}), m
}

// check runs one check of the stream at the given wall-clock time.
func (h *harness) check(now time.Time) {
	h.t.Helper()
	h.clock.Set(now)
	if err := h.f.check(h.ctx, h.st); err != nil {
		h.t.Fatalf("check at %s: %v", now.Format(time.RFC3339), err)
	}
}

// putFile writes a real Parquet data file of partition for hour holding
// one record per offset (event times one minute apart from the hour start)
// and puts it into the lake under its key, which it returns.
func (h *harness) putFile(partition int, hour time.Time, offsets ...int64) string {
	h.t.Helper()
	path := filepath.Join(h.t.TempDir(), "spool.parquet")
	w, err := partitioner.NewFileWriter(path, h.schema, partitioner.FileOptions{})
	if err != nil {
		h.t.Fatalf("NewFileWriter: %v", err)
	}
	for i, off := range offsets {
		row := partitioner.Row{
			parquet.ByteArrayValue([]byte(fmt.Sprintf("id-%d-%d", partition, off))),
			parquet.Int64Value(off),
		}
		if err := w.Append(row, off, hour.Add(time.Duration(i+1)*time.Minute)); err != nil {
			h.t.Fatalf("Append offset %d: %v", off, err)
		}
	}
	if _, err := w.Finish(partitioner.FileMeta{Stream: testStream, Topic: testTopic, Partition: partition, Hour: hour}); err != nil {
		h.t.Fatalf("Finish: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		h.t.Fatalf("read data file: %v", err)
	}
	key := h.st.Path.FileKey(testStream, hour, testTopic, partition, offsets[0])
	if err := h.lake.Put(h.ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		h.t.Fatalf("put %s: %v", key, err)
	}
	return key
}

// get returns the object under key and whether it exists.
func (h *harness) get(key string) ([]byte, bool) {
	h.t.Helper()
	rc, err := h.lake.Get(h.ctx, key)
	if err != nil {
		return nil, false
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		h.t.Fatalf("read %s: %v", key, err)
	}
	return b, true
}

func (h *harness) exists(key string) bool {
	h.t.Helper()
	ok, err := h.lake.Exists(h.ctx, key)
	if err != nil {
		h.t.Fatalf("exists %s: %v", key, err)
	}
	return ok
}

func (h *harness) successKey(hour time.Time) string { return h.st.Path.MarkerKey(testStream, hour) }

// revKey spells out the revision layout the workers and operators rely on.
func revKey(hour time.Time, n int) string {
	return fmt.Sprintf("_lakesink/markers/%s/%s/r%06d.json", testStream, hour.UTC().Format("2006-01-02T15Z"), n)
}

// success returns the decoded _SUCCESS of hour; it fails the test when
// there is none.
func (h *harness) success(hour time.Time) Manifest {
	h.t.Helper()
	b, ok := h.get(h.successKey(hour))
	if !ok {
		h.t.Fatalf("no %s", h.successKey(hour))
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		h.t.Fatalf("decode %s: %v", h.successKey(hour), err)
	}
	return m
}

// revisions lists the revision objects (r*.json) of hour.
func (h *harness) revisions(hour time.Time) []string {
	h.t.Helper()
	dir := fmt.Sprintf("_lakesink/markers/%s/%s/", testStream, hour.UTC().Format("2006-01-02T15Z"))
	objs, err := h.lake.List(h.ctx, dir)
	if err != nil {
		h.t.Fatalf("list %s: %v", dir, err)
	}
	var out []string
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".json") {
			out = append(out, o.Key)
		}
	}
	return out
}

// cursor returns the persisted next hour ("" when there is no cursor
// object).
func (h *harness) cursor() string {
	h.t.Helper()
	b, ok := h.get(cursorKey(testStream))
	if !ok {
		return ""
	}
	var cs struct {
		NextHour string `json:"next_hour"`
	}
	if err := json.Unmarshal(b, &cs); err != nil {
		h.t.Fatalf("decode cursor %s: %v", b, err)
	}
	return cs.NextHour
}

func (h *harness) hoursCompleted() float64 {
	return testutil.ToFloat64(h.metrics.HoursCompleted.WithLabelValues(testStream))
}

// wantMarker checks that hour has exactly revision rev, that _SUCCESS is
// that revision's object, and that it lists exactly files (keys) with
// records records in all.
func (h *harness) wantMarker(hour time.Time, rev int, records int64, files ...string) Manifest {
	h.t.Helper()
	var wantRevs []string
	for n := 1; n <= rev; n++ {
		wantRevs = append(wantRevs, revKey(hour, n))
	}
	if got := h.revisions(hour); !slices.Equal(got, wantRevs) {
		h.t.Errorf("hour %s: revision objects %v, want %v", hour.Format(time.RFC3339), got, wantRevs)
	}
	succ, _ := h.get(h.successKey(hour))
	last, _ := h.get(revKey(hour, rev))
	if !bytes.Equal(succ, last) {
		h.t.Errorf("hour %s: _SUCCESS is not revision %d's object:\n_SUCCESS: %s\nr%06d: %s", hour.Format(time.RFC3339), rev, succ, rev, last)
	}
	m := h.success(hour)
	if m.Revision != rev {
		h.t.Errorf("hour %s: _SUCCESS revision %d, want %d", hour.Format(time.RFC3339), m.Revision, rev)
	}
	if m.Stream != testStream || m.Hour != hour.Format(time.RFC3339) || m.Version != ManifestVersion {
		h.t.Errorf("hour %s: _SUCCESS stream/hour/version %q/%q/%d, want %q/%q/%d", hour.Format(time.RFC3339),
			m.Stream, m.Hour, m.Version, testStream, hour.Format(time.RFC3339), ManifestVersion)
	}
	var got []string
	for _, f := range m.Files {
		got = append(got, f.Path)
	}
	want := slices.Sorted(slices.Values(files))
	if !slices.Equal(got, want) {
		h.t.Errorf("hour %s: _SUCCESS lists %v, want %v", hour.Format(time.RFC3339), got, want)
	}
	if m.Records != records {
		h.t.Errorf("hour %s: _SUCCESS records %d, want %d", hour.Format(time.RFC3339), m.Records, records)
	}
	return m
}

// wantNoMarker checks that hour has neither _SUCCESS nor a revision.
func (h *harness) wantNoMarker(hour time.Time) {
	h.t.Helper()
	if h.exists(h.successKey(hour)) {
		h.t.Errorf("hour %s: _SUCCESS exists, want none", hour.Format(time.RFC3339))
	}
	if got := h.revisions(hour); len(got) != 0 {
		h.t.Errorf("hour %s: revision objects %v, want none", hour.Format(time.RFC3339), got)
	}
}

// TestFinalizerWatermarks: hour H is finalized only when both partitions'
// committed watermarks and the wall clock have reached H.end + lateness.
func TestFinalizerWatermarks(t *testing.T) {
	bound := boundOf(hourH) // 11:10
	ms := time.Millisecond
	for _, tc := range []struct {
		name     string
		wm0, wm1 time.Time
		now      time.Time
		want     bool
	}{
		{"both at bound, clock past bound", bound, bound, bound.Add(ms), true},
		{"both past bound, clock well past", bound.Add(20 * time.Minute), bound.Add(5 * time.Minute), at(11, 45, 0), true},
		{"partition 1 one ms behind", bound, bound.Add(-ms), at(12, 30, 0), false},
		{"partition 0 behind", hourH.Add(30 * time.Minute), bound.Add(time.Hour), at(12, 30, 0), false},
		{"both before hour end", hourH.Add(59 * time.Minute), hourH.Add(59 * time.Minute), at(12, 30, 0), false},
		{"past hour end but within lateness", hourH1.Add(5 * time.Minute), hourH1.Add(5 * time.Minute), at(12, 30, 0), false},
		{"watermarks ahead, clock before bound", bound.Add(time.Hour), bound.Add(time.Hour), bound.Add(-ms), false},
		{"watermarks ahead, clock within lateness", bound.Add(time.Hour), bound.Add(time.Hour), hourH1.Add(time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.now)
			f0 := h.putFile(0, hourH, 0, 1, 2)
			f1 := h.putFile(1, hourH, 7, 8)
			h.putFile(0, hourH1, 3, 4) // next hour: never in H's marker
			h.offs.Set(busy(0, tc.wm0), busy(1, tc.wm1))
			h.check(tc.now)
			if !tc.want {
				h.wantNoMarker(hourH)
				if c := h.cursor(); c != "" {
					t.Errorf("cursor object says next hour %s, want no cursor object", c)
				}
				if got := h.hoursCompleted(); got != 0 {
					t.Errorf("HoursCompleted = %v, want 0", got)
				}
				if got, want := testutil.ToFloat64(h.metrics.OldestOpenHour.WithLabelValues(testStream)), float64(hourH.Unix()); got != want {
					t.Errorf("OldestOpenHour = %v, want %v", got, want)
				}
				return
			}
			m := h.wantMarker(hourH, 1, 5, f0, f1)
			for _, f := range m.Files {
				want := map[string][2]int64{f0: {0, 2}, f1: {7, 8}}[f.Path]
				if f.Topic != testTopic || f.FirstOffset != want[0] || f.LastOffset != want[1] {
					t.Errorf("manifest file %s: topic %q offsets %d-%d, want %q %d-%d", f.Path, f.Topic, f.FirstOffset, f.LastOffset, testTopic, want[0], want[1])
				}
			}
			if want := tc.now.UTC().Format(time.RFC3339); m.CompletedAt != want {
				t.Errorf("completed_at %s, want %s (the fake clock)", m.CompletedAt, want)
			}
			h.wantNoMarker(hourH1)
			if got, want := h.cursor(), "2026-11-25T11:00:00Z"; got != want {
				t.Errorf("cursor next_hour %q, want %q", got, want)
			}
			if got := h.hoursCompleted(); got != 1 {
				t.Errorf("HoursCompleted = %v, want 1", got)
			}
			if got, want := testutil.ToFloat64(h.metrics.OldestOpenHour.WithLabelValues(testStream)), float64(hourH1.Unix()); got != want {
				t.Errorf("OldestOpenHour = %v, want %v", got, want)
			}
		})
	}
}

// TestFinalizerWaitsForSlowPartition: the marker of H appears at the first
// check after the lagging partition's watermark reached the bound, not
// before, and only once.
func TestFinalizerWaitsForSlowPartition(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	f0 := h.putFile(0, hourH, 0, 1, 2)
	f1 := h.putFile(1, hourH, 0, 1)
	bound := boundOf(hourH)
	for i, wm1 := range []time.Time{at(10, 30, 0), at(11, 0, 0), bound.Add(-time.Millisecond)} {
		h.offs.Set(busy(0, at(11, 40, 0)), busy(1, wm1))
		h.check(at(11, 30, i))
		h.wantNoMarker(hourH)
	}
	h.offs.Set(busy(0, at(11, 40, 0)), busy(1, bound))
	h.check(at(11, 31, 0))
	h.wantMarker(hourH, 1, 5, f0, f1)
	h.check(at(11, 32, 0))
	h.wantMarker(hourH, 1, 5, f0, f1)
	if got := h.hoursCompleted(); got != 1 {
		t.Errorf("HoursCompleted = %v after two checks past the bound, want 1", got)
	}
}

// TestFinalizerOldestFirst: hours are finalized oldest first, each marker
// before the cursor moves past its hour, and the cursor object advances
// hour by hour.
func TestFinalizerOldestFirst(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	rw := newRecWriter(h.lake)
	h.f, h.metrics = h.newFinalizer(rw, h.clock, prometheus.NewRegistry())
	fa := h.putFile(0, hourH, 0, 1)
	fb := h.putFile(0, hourH1, 2, 3, 4)
	fc := h.putFile(1, hourH2, 0)
	fd := h.putFile(0, hourH2, 5)

	// Only H is complete.
	h.offs.Set(busy(0, at(12, 0, 0)), busy(1, at(11, 50, 0)))
	h.check(at(12, 0, 0))
	h.wantMarker(hourH, 1, 2, fa)
	h.wantNoMarker(hourH1)
	if got, want := h.cursor(), "2026-11-25T11:00:00Z"; got != want {
		t.Errorf("cursor next_hour %q, want %q", got, want)
	}
	if got := h.hoursCompleted(); got != 1 {
		t.Errorf("HoursCompleted = %v, want 1", got)
	}

	// H+1 and H+2 complete at once.
	h.offs.Set(busy(0, at(14, 0, 0)), busy(1, boundOf(hourH2)))
	h.check(at(14, 0, 0))
	h.wantMarker(hourH1, 1, 3, fb)
	h.wantMarker(hourH2, 1, 2, fc, fd)
	if got, want := h.cursor(), "2026-11-25T13:00:00Z"; got != want {
		t.Errorf("cursor next_hour %q, want %q", got, want)
	}
	if got := h.hoursCompleted(); got != 3 {
		t.Errorf("HoursCompleted = %v, want 3", got)
	}
	var seq []string
	for _, op := range rw.Ops() {
		if strings.HasPrefix(op, "putifabsent ") || strings.HasPrefix(op, "put "+cursorKey(testStream)) {
			seq = append(seq, op)
		}
	}
	cur := func(next string) string {
		return "put " + cursorKey(testStream) + ` {"next_hour":"` + next + `"}`
	}
	want := []string{
		"putifabsent " + revKey(hourH, 1), cur("2026-11-25T11:00:00Z"),
		"putifabsent " + revKey(hourH1, 1), cur("2026-11-25T12:00:00Z"),
		"putifabsent " + revKey(hourH2, 1), cur("2026-11-25T13:00:00Z"),
	}
	if !slices.Equal(seq, want) {
		t.Errorf("marker and cursor writes:\n%s\nwant:\n%s", strings.Join(seq, "\n"), strings.Join(want, "\n"))
	}
}

// TestFinalizerResumesFromLakeCursor: a new instance (a restarted group)
// starts at the persisted cursor, not at the partitions' first hour, so it
// does not revisit finalized hours: even with H's revision object gone (a
// lifecycle rule on _lakesink/markers), H gets no new revision 1.
func TestFinalizerResumesFromLakeCursor(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	fa := h.putFile(0, hourH, 0, 1)
	h.offs.Set(busy(0, at(11, 50, 0)))
	h.check(at(11, 30, 0))
	h.wantMarker(hourH, 1, 2, fa)
	before, _ := h.get(h.successKey(hourH))
	r1, _ := h.get(revKey(hourH, 1))
	if err := h.lake.Delete(h.ctx, revKey(hourH, 1)); err != nil {
		t.Fatal(err)
	}

	// Restart: a fresh finalizer over the same lake. The partitions still
	// say FH = H.
	fb := h.putFile(0, hourH1, 2)
	h.f, h.metrics = h.newFinalizer(h.lake, h.clock, prometheus.NewRegistry())
	h.offs.Set(busy(0, at(12, 20, 0)))
	h.check(at(12, 30, 0))
	if got := h.revisions(hourH); len(got) != 0 {
		t.Errorf("restarted instance published %v for H, want nothing (the cursor is past H)", got)
	}
	if err := h.lake.Put(h.ctx, revKey(hourH, 1), bytes.NewReader(r1), int64(len(r1))); err != nil {
		t.Fatal(err)
	}
	h.wantMarker(hourH, 1, 2, fa)
	if after, _ := h.get(h.successKey(hourH)); !bytes.Equal(before, after) {
		t.Errorf("H's _SUCCESS rewritten after restart:\nbefore %s\nafter %s", before, after)
	}
	h.wantMarker(hourH1, 1, 1, fb)
	if got := h.hoursCompleted(); got != 1 {
		t.Errorf("HoursCompleted of the restarted instance = %v, want 1 (only H+1)", got)
	}
	if got, want := h.cursor(), "2026-11-25T12:00:00Z"; got != want {
		t.Errorf("cursor next_hour %q, want %q", got, want)
	}
}

// TestFinalizerNothingWritten: with no partition that ever wrote (FH 0),
// the finalizer writes nothing, whatever the watermarks.
func TestFinalizerNothingWritten(t *testing.T) {
	h := newHarness(t, at(12, 0, 0))
	p := busy(0, at(13, 0, 0))
	p.Metadata = encMeta(ledger.Meta{WM: at(13, 0, 0).UnixMilli(), RW: at(13, 0, 0).UnixMilli()})
	h.offs.Set(p)
	h.check(at(14, 0, 0))
	objs, err := h.lake.List(h.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 0 {
		t.Errorf("lake holds %v, want nothing", objs)
	}
}

// TestFinalizerIdlePartitions: a caught-up partition quiet for at least
// IdleTimeout counts as caught up to the wall clock; one quiet for less, or
// one not caught up, blocks.
func TestFinalizerIdlePartitions(t *testing.T) {
	now := at(11, 30, 0)
	lowWM := at(10, 50, 0) // partition 1's own watermark is before H's bound
	for _, tc := range []struct {
		name string
		p1   kafkaio.PartitionOffsets
		want bool
	}{
		{"caught up, quiet 10m", caughtUp(1, lowWM, now.Add(-10*time.Minute)), true},
		{"caught up, quiet 5m1s", caughtUp(1, lowWM, now.Add(-testIdle-time.Second)), true},
		{"caught up, quiet 3m", caughtUp(1, lowWM, now.Add(-3*time.Minute)), false},
		{"caught up, quiet 4m59s", caughtUp(1, lowWM, now.Add(-testIdle+time.Second)), false},
		{"not caught up, quiet 1h", func() kafkaio.PartitionOffsets {
			p := caughtUp(1, lowWM, now.Add(-time.Hour))
			p.Committed = p.High - 1
			return p
		}(), false},
		{"committed beyond high (truncated log), quiet 10m", func() kafkaio.PartitionOffsets {
			p := caughtUp(1, lowWM, now.Add(-10*time.Minute))
			p.High = p.Committed - 10
			return p
		}(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, now)
			f0 := h.putFile(0, hourH, 0, 1, 2)
			h.offs.Set(busy(0, at(12, 0, 0)), tc.p1)
			h.check(now)
			if tc.want {
				h.wantMarker(hourH, 1, 3, f0)
				if got, want := h.cursor(), "2026-11-25T11:00:00Z"; got != want {
					t.Errorf("cursor next_hour %q, want %q", got, want)
				}
			} else {
				h.wantNoMarker(hourH)
			}
		})
	}

	t.Run("becomes idle later", func(t *testing.T) {
		h := newHarness(t, now)
		f0 := h.putFile(0, hourH, 0, 1, 2)
		lastRead := at(11, 27, 0)
		h.offs.Set(busy(0, at(12, 0, 0)), caughtUp(1, lowWM, lastRead))
		h.check(now)
		h.wantNoMarker(hourH)
		h.check(lastRead.Add(testIdle - time.Second))
		h.wantNoMarker(hourH)
		h.check(lastRead.Add(testIdle + time.Second))
		h.wantMarker(hourH, 1, 3, f0)
	})

	t.Run("idle partition is caught up to the wall clock only", func(t *testing.T) {
		// Both partitions idle since 11:00: the bound is the wall clock,
		// which at 12:05 covers H but not H+1 (its bound is 12:10).
		h := newHarness(t, now)
		f0 := h.putFile(0, hourH, 0, 1, 2)
		h.putFile(0, hourH1, 3)
		h.offs.Set(caughtUp(0, at(10, 55, 0), at(11, 0, 0)), caughtUp(1, lowWM, at(11, 0, 0)))
		h.check(at(12, 5, 0))
		h.wantMarker(hourH, 1, 3, f0)
		h.wantNoMarker(hourH1)
		if got, want := h.cursor(), "2026-11-25T11:00:00Z"; got != want {
			t.Errorf("cursor next_hour %q, want %q", got, want)
		}
	})
}

// TestFinalizerNeverCommittedPartition: a partition without any commit and
// an empty log blocks until IdleTimeout has passed since the finalizer first
// saw it; one with records it never committed keeps blocking.
func TestFinalizerNeverCommittedPartition(t *testing.T) {
	first := at(11, 30, 0)

	t.Run("empty log", func(t *testing.T) {
		h := newHarness(t, first)
		f0 := h.putFile(0, hourH, 0, 1, 2)
		h.offs.Set(busy(0, at(12, 0, 0)), neverCommitted(1, 0, 0))
		h.check(first)
		h.wantNoMarker(hourH)
		h.check(first.Add(testIdle - time.Second))
		h.wantNoMarker(hourH)
		h.check(first.Add(testIdle + time.Second))
		h.wantMarker(hourH, 1, 3, f0)
	})

	t.Run("high watermark moves", func(t *testing.T) {
		// Seen empty at high 0, then empty at high 3 (records came and
		// were deleted by retention): quiet counts from the second sight.
		h := newHarness(t, first)
		f0 := h.putFile(0, hourH, 0, 1, 2)
		h.offs.Set(busy(0, at(12, 0, 0)), neverCommitted(1, 0, 0))
		h.check(first)
		moved := first.Add(4 * time.Minute)
		h.offs.Set(busy(0, at(12, 0, 0)), neverCommitted(1, 3, 3))
		h.check(moved)
		h.check(first.Add(testIdle + time.Second))
		h.wantNoMarker(hourH)
		h.check(moved.Add(testIdle + time.Second))
		h.wantMarker(hourH, 1, 3, f0)
	})

	t.Run("records never committed", func(t *testing.T) {
		h := newHarness(t, first)
		h.putFile(0, hourH, 0, 1, 2)
		h.offs.Set(busy(0, at(12, 0, 0)), neverCommitted(1, 0, 10))
		h.check(first)
		h.check(first.Add(time.Hour))
		h.wantNoMarker(hourH)
	})
}

// TestFinalizerEmptyHour: an hour without files between two data hours gets
// a marker with an empty files list ("files": [], not null) and 0 records.
func TestFinalizerEmptyHour(t *testing.T) {
	h := newHarness(t, at(13, 30, 0))
	fa := h.putFile(0, hourH, 0, 1)
	fc := h.putFile(0, hourH2, 2, 3, 4)
	h.offs.Set(busy(0, at(13, 20, 0)), busy(1, at(13, 15, 0)))
	h.check(at(13, 30, 0))
	h.wantMarker(hourH, 1, 2, fa)
	m := h.wantMarker(hourH1, 1, 0)
	h.wantMarker(hourH2, 1, 3, fc)
	if m.Files == nil || len(m.Files) != 0 {
		t.Errorf("empty hour's files %#v, want an empty list", m.Files)
	}
	b, _ := h.get(h.successKey(hourH1))
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("decode empty hour's _SUCCESS: %v", err)
	}
	if got := string(raw["files"]); got != "[]" {
		t.Errorf(`empty hour's _SUCCESS "files": %s, want []`, got)
	}
	if got := string(raw["records"]); got != "0" {
		t.Errorf(`empty hour's _SUCCESS "records": %s, want 0`, got)
	}
	if got, want := h.cursor(), "2026-11-25T13:00:00Z"; got != want {
		t.Errorf("cursor next_hour %q, want %q", got, want)
	}
}

// TestFinalizerAmendRevision: a late file of a finalized hour named by an
// amend entry makes revision 2, once.
func TestFinalizerAmendRevision(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	f0 := h.putFile(0, hourH, 0, 1, 2)
	f1 := h.putFile(1, hourH, 0, 1)
	h.offs.Set(busy(0, at(11, 20, 0)), busy(1, at(11, 20, 0)))
	h.check(at(11, 30, 0))
	h.wantMarker(hourH, 1, 5, f0, f1)
	r1, _ := h.get(revKey(hourH, 1))

	late := h.putFile(1, hourH, 50, 51, 52)
	h.offs.Set(busy(0, at(11, 40, 0)), busy(1, at(11, 40, 0), ledger.Amend{Hour: hourH.UnixMilli(), First: 50}))
	h.check(at(11, 40, 0))
	m := h.wantMarker(hourH, 2, 8, f0, f1, late)
	if !m.Lists(testTopic, 1, 50) {
		t.Errorf("revision 2 does not list the late file of partition 1 at offset 50: %+v", m.Files)
	}
	if got, _ := h.get(revKey(hourH, 1)); !bytes.Equal(got, r1) {
		t.Errorf("revision 1 changed:\nbefore %s\nafter %s", r1, got)
	}
	if got := h.hoursCompleted(); got != 1 {
		t.Errorf("HoursCompleted = %v, want 1 (revisions do not count)", got)
	}
	h.wantNoMarker(hourH1)

	// The amend entry stays in the commit metadata until the worker sees
	// the marker list its file: further checks publish nothing.
	h.check(at(11, 41, 0))
	h.check(at(11, 42, 0))
	h.wantMarker(hourH, 2, 8, f0, f1, late)
	if h.exists(revKey(hourH, 3)) {
		t.Errorf("%s exists after repeated checks, want no revision 3", revKey(hourH, 3))
	}
}

// TestFinalizerAmendNoNewFile: an amend entry whose file is already listed,
// or whose file is not in the folder, makes no new revision.
func TestFinalizerAmendNoNewFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first int64
	}{
		{"file already listed", 0},
		{"file not in the folder", 70},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, at(11, 30, 0))
			f0 := h.putFile(0, hourH, 0, 1, 2)
			h.offs.Set(busy(0, at(11, 20, 0)))
			h.check(at(11, 30, 0))
			h.wantMarker(hourH, 1, 3, f0)
			succ, _ := h.get(h.successKey(hourH))
			h.offs.Set(busy(0, at(11, 40, 0), ledger.Amend{Hour: hourH.UnixMilli(), First: tc.first}))
			h.check(at(11, 40, 0))
			h.check(at(11, 41, 0))
			h.wantMarker(hourH, 1, 3, f0)
			if got, _ := h.get(h.successKey(hourH)); !bytes.Equal(got, succ) {
				t.Errorf("_SUCCESS rewritten:\nbefore %s\nafter %s", succ, got)
			}
		})
	}
}

// TestFinalizerAmendOfOpenHour: an amend entry of an hour the cursor has
// not passed yet is left to that hour's first marker.
func TestFinalizerAmendOfOpenHour(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	f0 := h.putFile(0, hourH, 0, 1, 2)
	late := h.putFile(0, hourH, 9)
	h.offs.Set(busy(0, at(10, 50, 0), ledger.Amend{Hour: hourH.UnixMilli(), First: 9}))
	h.check(at(11, 30, 0))
	h.wantNoMarker(hourH)
	h.offs.Set(busy(0, at(11, 20, 0), ledger.Amend{Hour: hourH.UnixMilli(), First: 9}))
	h.check(at(11, 31, 0))
	h.wantMarker(hourH, 1, 4, f0, late)
}

// TestFinalizerFileDuringFirstRevision: a data file uploaded after revision
// 1 was built but before it was published becomes revision 2 in the same
// check.
func TestFinalizerFileDuringFirstRevision(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	rw := newRecWriter(h.lake)
	h.f, h.metrics = h.newFinalizer(rw, h.clock, prometheus.NewRegistry())
	f0 := h.putFile(0, hourH, 0, 1, 2)
	var late string
	rw.beforePutIfAbsent = func(key string) {
		if key == revKey(hourH, 1) {
			late = h.putFile(1, hourH, 4, 5)
		}
	}
	h.offs.Set(busy(0, at(11, 20, 0)), busy(1, at(11, 20, 0)))
	h.check(at(11, 30, 0))
	r1 := func() Manifest {
		m, err := readManifestKey(h.ctx, h.lake, revKey(hourH, 1))
		if err != nil {
			t.Fatalf("read revision 1: %v", err)
		}
		return m
	}()
	if len(r1.Files) != 1 || r1.Files[0].Path != f0 {
		t.Errorf("revision 1 lists %+v, want only %s", r1.Files, f0)
	}
	h.wantMarker(hourH, 2, 5, f0, late)
}

// TestFinalizerOrphans: an orphan (a file of the same partition starting
// inside a kept file's range) is left out of the marker and deleted from
// the lake before the marker is published.
func TestFinalizerOrphans(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	rw := newRecWriter(h.lake)
	h.f, h.metrics = h.newFinalizer(rw, h.clock, prometheus.NewRegistry())
	kept := h.putFile(0, hourH, 100, 200, 300, 400)
	orphan := h.putFile(0, hourH, 250, 300)
	other := h.putFile(1, hourH, 250, 260) // same offsets, other partition
	h.offs.Set(busy(0, at(11, 20, 0)), busy(1, at(11, 20, 0)))
	h.check(at(11, 30, 0))

	m := h.wantMarker(hourH, 1, 6, kept, other)
	for _, f := range m.Files {
		if f.Path == kept && (f.FirstOffset != 100 || f.LastOffset != 400 || f.Records != 4) {
			t.Errorf("kept file listed with offsets %d-%d, %d records; want 100-400, 4", f.FirstOffset, f.LastOffset, f.Records)
		}
	}
	if h.exists(orphan) {
		t.Errorf("orphan %s still in the lake", orphan)
	}
	if !h.exists(kept) || !h.exists(other) {
		t.Errorf("a listed file was deleted")
	}
	ops := rw.Ops()
	del := slices.Index(ops, "delete "+orphan)
	pub := slices.Index(ops, "putifabsent "+revKey(hourH, 1))
	succ := slices.Index(ops, "put "+h.successKey(hourH))
	if del < 0 || pub < 0 || succ < 0 || del > pub || del > succ {
		t.Errorf("orphan delete at op %d, revision 1 at %d, _SUCCESS at %d; want the delete first:\n%s", del, pub, succ, strings.Join(ops, "\n"))
	}
	for _, op := range ops {
		if strings.HasPrefix(op, "delete ") && op != "delete "+orphan {
			t.Errorf("unexpected %s", op)
		}
	}
}

// TestSplitOrphansEdgeCases covers what TestSplitOrphans does not: empty
// input, identical first offsets, several topics, chains of orphans,
// unsorted input, and that the input is left alone.
func TestSplitOrphansEdgeCases(t *testing.T) {
	f := func(path, topic string, p int, first, last int64) ManifestFile {
		return ManifestFile{Path: path, Topic: topic, Partition: p, FirstOffset: first, LastOffset: last}
	}
	for _, tc := range []struct {
		name                  string
		files                 []ManifestFile
		kept, orphs, unproven []string // nil: expect none
	}{
		{name: "nil input", files: nil},
		{name: "empty input", files: []ManifestFile{}},
		{name: "single file", files: []ManifestFile{f("a", "t", 0, 5, 9)}, kept: []string{"a"}},
		{
			name:  "identical first offsets: the longer is kept",
			files: []ManifestFile{f("b", "t", 0, 100, 150), f("a", "t", 0, 100, 200)},
			kept:  []string{"a"}, orphs: []string{"b"},
		},
		{
			name: "same partition number in two topics",
			files: []ManifestFile{
				f("x1", "x", 0, 100, 400),
				f("y1", "y", 0, 250, 300), // would be an orphan of x1 in the same topic
				f("x2", "x", 0, 250, 300), // orphan of x1
				f("y2", "y", 0, 260, 270), // orphan of y1
			},
			kept: []string{"x1", "y1"}, orphs: []string{"x2", "y2"},
		},
		{
			name: "candidates do not move the bound",
			files: []ManifestFile{
				f("a", "t", 0, 100, 400),
				f("b", "t", 0, 300, 900), // reaching past a, 461-900 in no kept file: unproven
				f("c", "t", 0, 450, 460), // above a's last: kept
				f("d", "t", 0, 455, 460), // inside c: orphan
			},
			kept: []string{"a", "c"}, orphs: []string{"d"}, unproven: []string{"b"},
		},
		{
			name: "contained file does not lower the bound",
			files: []ManifestFile{
				f("a", "t", 0, 100, 400),
				f("b", "t", 0, 150, 200), // orphan
				f("c", "t", 0, 350, 360), // still below a's last: orphan
				f("d", "t", 0, 401, 410),
			},
			kept: []string{"a", "d"}, orphs: []string{"b", "c"},
		},
		{
			name: "unsorted input, kept sorted by path",
			files: []ManifestFile{
				f("z", "t", 1, 10, 20),
				f("m", "t", 0, 30, 40),
				f("b", "t", 0, 35, 36),
				f("a", "t", 0, 0, 29),
			},
			kept: []string{"a", "m", "z"}, orphs: []string{"b"},
		},
		{
			name: "last offset equal to next first",
			files: []ManifestFile{
				f("a", "t", 2, 10, 10),
				f("b", "t", 2, 11, 12),
				f("c", "t", 2, 12, 12),
			},
			kept: []string{"a", "b"}, orphs: []string{"c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.files)
			kept, orphans, unproven := SplitOrphans(tc.files)
			if !slices.EqualFunc(in, tc.files, func(a, b ManifestFile) bool { return reflect.DeepEqual(a, b) }) {
				t.Errorf("SplitOrphans changed its input: %v, was %v", tc.files, in)
			}
			paths := func(fs []ManifestFile) []string {
				var out []string
				for _, x := range fs {
					out = append(out, x.Path)
				}
				return out
			}
			k, o, u := paths(kept), paths(orphans), paths(unproven)
			if len(k)+len(o)+len(u) != len(tc.files) {
				t.Errorf("kept %v + orphans %v + unproven %v: %d files, want %d", k, o, u, len(k)+len(o)+len(u), len(tc.files))
			}
			if !slices.Equal(u, tc.unproven) {
				t.Errorf("unproven %v, want %v", u, tc.unproven)
			}
			if !slices.Equal(k, tc.kept) {
				t.Errorf("kept %v, want %v", k, tc.kept)
			}
			if !slices.Equal(o, tc.orphs) {
				t.Errorf("orphans %v, want %v", o, tc.orphs)
			}
		})
	}
}

// TestFinalizerTwoInstancesRace: the second instance builds revision 1 but
// the first publishes it before the second's create-if-absent put: the
// second adopts the winner's object, so exactly one revision 1 exists and
// _SUCCESS is the winner's.
func TestFinalizerTwoInstancesRace(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	f0 := h.putFile(0, hourH, 0, 1, 2)
	f1 := h.putFile(1, hourH, 0, 1)
	h.offs.Set(busy(0, at(11, 20, 0)), busy(1, at(11, 20, 0)))

	// Instance B has a later clock, so its manifest would differ
	// (completed_at) from A's.
	clockB := &fakeClock{t: at(11, 31, 0)}
	rw := newRecWriter(h.lake)
	fB, mB := h.newFinalizer(rw, clockB, prometheus.NewRegistry())
	var hookErr error
	rw.beforePutIfAbsent = func(key string) {
		if key == revKey(hourH, 1) {
			h.clock.Set(at(11, 30, 0))
			hookErr = h.f.check(h.ctx, h.st) // instance A wins revision 1
		}
	}
	if err := fB.check(h.ctx, h.st); err != nil {
		t.Fatalf("instance B check: %v", err)
	}
	if hookErr != nil {
		t.Fatalf("instance A check: %v", hookErr)
	}
	m := h.wantMarker(hourH, 1, 5, f0, f1)
	if want := at(11, 30, 0).Format(time.RFC3339); m.CompletedAt != want {
		t.Errorf("_SUCCESS completed_at %s, want the winner's %s", m.CompletedAt, want)
	}
	if got := h.hoursCompleted(); got != 1 {
		t.Errorf("winner's HoursCompleted = %v, want 1", got)
	}
	if got := testutil.ToFloat64(mB.HoursCompleted.WithLabelValues(testStream)); got != 0 {
		t.Errorf("loser's HoursCompleted = %v, want 0", got)
	}
	if got, want := h.cursor(), "2026-11-25T11:00:00Z"; got != want {
		t.Errorf("cursor next_hour %q, want %q", got, want)
	}

	// Both go on checking: nothing changes.
	h.check(at(11, 40, 0))
	clockB.Set(at(11, 40, 0))
	if err := fB.check(h.ctx, h.st); err != nil {
		t.Fatalf("instance B check: %v", err)
	}
	h.wantMarker(hourH, 1, 5, f0, f1)
}

// TestFinalizerTwoInstancesConcurrent: two instances check the same lake at
// the same time; exactly one revision 1 exists and _SUCCESS is it.
func TestFinalizerTwoInstancesConcurrent(t *testing.T) {
	for i := range 20 {
		h := newHarness(t, at(11, 30, 0))
		f0 := h.putFile(0, hourH, 0, 1, 2)
		f1 := h.putFile(1, hourH, 0, 1)
		h.offs.Set(busy(0, at(11, 20, 0)), busy(1, at(11, 20, 0)))
		clockB := &fakeClock{t: at(11, 30, 1)}
		fB, mB := h.newFinalizer(h.lake, clockB, prometheus.NewRegistry())
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, f := range []*Finalizer{h.f, fB} {
			wg.Go(func() { errs[j] = f.check(h.ctx, h.st) })
		}
		wg.Wait()
		for j, err := range errs {
			if err != nil {
				t.Fatalf("round %d: instance %d: %v", i, j, err)
			}
		}
		h.wantMarker(hourH, 1, 5, f0, f1)
		if got := h.hoursCompleted() + testutil.ToFloat64(mB.HoursCompleted.WithLabelValues(testStream)); got != 1 {
			t.Errorf("round %d: HoursCompleted of both instances = %v, want 1", i, got)
		}
		if t.Failed() {
			return
		}
	}
}

// markerDelay returns the sample count and sum of the marker delay
// histogram in reg.
func markerDelay(t *testing.T, reg *prometheus.Registry) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "lakesink_marker_delay_seconds" {
			hist := mf.GetMetric()[0].GetHistogram()
			return hist.GetSampleCount(), hist.GetSampleSum()
		}
	}
	t.Fatalf("no lakesink_marker_delay_seconds in the registry")
	return 0, 0
}

// TestFinalizerMarkerDelay: the delay runs from the moment the hour became
// complete: the latest of the wall-clock bound, when each watermark was
// first seen at the bound, and when an idle partition qualified.
func TestFinalizerMarkerDelay(t *testing.T) {
	t.Run("wall clock is last", func(t *testing.T) {
		// Watermarks past the bound already seen at 11:09; the hour closes
		// at 11:10 on the wall clock; the marker is written at 11:12.
		h := newHarness(t, at(11, 9, 0))
		h.putFile(0, hourH, 0)
		h.offs.Set(busy(0, at(11, 15, 0)), busy(1, at(11, 15, 0)))
		h.check(at(11, 9, 0))
		h.wantNoMarker(hourH)
		h.check(at(11, 12, 0))
		h.wantMarker(hourH, 1, 1, h.st.Path.FileKey(testStream, hourH, testTopic, 0, 0))
		if n, sum := markerDelay(t, h.reg); n != 1 || math.Abs(sum-120) > 1e-9 {
			t.Errorf("marker delay: %d samples, sum %v s; want 1 sample of 120 s", n, sum)
		}
	})
	t.Run("idle partition is last", func(t *testing.T) {
		// Partition 0 seen at the bound at 11:12; partition 1 caught up,
		// last read at 11:14, idle from 11:19; the marker at 11:30.
		h := newHarness(t, at(11, 12, 0))
		h.putFile(0, hourH, 0)
		h.offs.Set(busy(0, boundOf(hourH)), busy(1, at(10, 50, 0)))
		h.check(at(11, 12, 0))
		h.wantNoMarker(hourH)
		h.offs.Set(busy(0, boundOf(hourH)), caughtUp(1, at(10, 50, 0), at(11, 14, 0)))
		h.check(at(11, 30, 0))
		h.wantMarker(hourH, 1, 1, h.st.Path.FileKey(testStream, hourH, testTopic, 0, 0))
		if n, sum := markerDelay(t, h.reg); n != 1 || math.Abs(sum-660) > 1e-9 {
			t.Errorf("marker delay: %d samples, sum %v s; want 1 sample of 660 s", n, sum)
		}
	})
	t.Run("watermark is last", func(t *testing.T) {
		// Partition 1's watermark reaches the bound, first seen at 11:25.
		h := newHarness(t, at(11, 20, 0))
		h.putFile(0, hourH, 0)
		h.offs.Set(busy(0, at(11, 30, 0)), busy(1, at(11, 0, 0)))
		h.check(at(11, 20, 0))
		h.offs.Set(busy(0, at(11, 30, 0)), busy(1, at(11, 11, 0)))
		h.check(at(11, 25, 0))
		h.wantMarker(hourH, 1, 1, h.st.Path.FileKey(testStream, hourH, testTopic, 0, 0))
		if n, sum := markerDelay(t, h.reg); n != 1 || sum != 0 {
			t.Errorf("marker delay: %d samples, sum %v s; want 1 sample of 0 s", n, sum)
		}
	})
}
