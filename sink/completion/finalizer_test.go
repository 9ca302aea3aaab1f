package completion

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
		if strings.HasSuffix(o.Key, ".json") && !strings.HasSuffix(o.Key, "/compaction.json") {
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
