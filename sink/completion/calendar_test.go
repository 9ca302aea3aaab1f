package completion

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ledger"
)

// zoned returns a harness whose stream cuts hours in zone.
func zoned(t *testing.T, zone string, now time.Time) *harness {
	t.Helper()
	h := newHarness(t, now)
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	h.st.Loc = loc
	return h
}

// behind is a busy partition (not caught up) with safe watermark wm that
// first wrote hour first.
func behind(partition int, first, wm time.Time, amends ...ledger.Amend) kafkaio.PartitionOffsets {
	return kafkaio.PartitionOffsets{
		Topic: testTopic, Partition: partition, Low: 0, High: 100000, Committed: 50000,
		Metadata: encMeta(ledger.Meta{WM: wm.UnixMilli(), RW: wm.UnixMilli(), FH: first.UnixMilli(), LA: wm.UnixMilli(), AM: amends}),
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestFinalizerFallBackFolder: on the night clocks go back in New York,
// 01:00 EDT (05:00Z) and 01:00 EST (06:00Z) are two buckets rendered into
// one folder, dt=2026-11-01/hour=01, whose files interleave in offsets.
// The folder gets one manifest, written once both buckets are complete,
// listing both buckets' files (nothing deleted) with both ranges; a late
// file of the second bucket makes the folder's revision 2. With one
// manifest per bucket and the bucket-blind orphan rule, the first bucket's
// file was deleted as an orphan of the second's.
func TestFinalizerFallBackFolder(t *testing.T) {
	h := zoned(t, "America/New_York", utc("2026-11-01T05:00:00Z"))
	rw := newRecWriter(h.lake)
	h.reg = prometheus.NewRegistry()
	h.f, h.metrics = h.newFinalizer(rw, h.clock, h.reg)
	loc := h.st.Loc
	b0 := utc("2026-11-01T04:00:00Z").In(loc) // 00:00 EDT
	edt := utc("2026-11-01T05:00:00Z").In(loc)
	est := utc("2026-11-01T06:00:00Z").In(loc)
	b3 := utc("2026-11-01T07:00:00Z").In(loc) // 02:00 EST
	f0 := h.putFile(0, b0, 1, 2)
	fEDT := h.putFile(0, edt, 9918, 9920, 15276)
	fEST := h.putFile(0, est, 9919, 9921, 20000)
	if !strings.HasSuffix(h.st.Path.Render(testStream, edt), "hour=01") || h.st.Path.Render(testStream, edt) != h.st.Path.Render(testStream, est) {
		t.Fatalf("the two 01:00 hours render to %s and %s", h.st.Path.Render(testStream, edt), h.st.Path.Render(testStream, est))
	}

	// The first 01:00 hour is complete, the second is not: the folder waits.
	h.offs.Set(behind(0, b0, edt.Add(time.Hour+testLateness)))
	h.check(edt.Add(time.Hour + testLateness))
	h.wantMarker(b0, 1, 2, f0)
	h.wantNoMarker(edt)
	if got, want := h.cursor(), edt.UTC().Format(time.RFC3339); got != want {
		t.Errorf("cursor %s, want %s (the folder waits at its first bucket)", got, want)
	}

	// Both complete: one manifest for the folder, both files listed.
	h.offs.Set(behind(0, b0, est.Add(time.Hour+testLateness)))
	h.check(est.Add(time.Hour + testLateness))
	m := h.wantMarker(edt, 1, 6, fEDT, fEST)
	if got := h.revisions(est); len(got) != 0 {
		t.Errorf("revisions under the second bucket %v, want none (the folder's are keyed by its first bucket)", got)
	}
	wantRanges := []HourRange{{"2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z"}, {"2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"}}
	if !slices.Equal(m.Ranges, wantRanges) {
		t.Errorf("ranges %v, want %v", m.Ranges, wantRanges)
	}
	if m.Hour != "2026-11-01T01:00:00-04:00" {
		t.Errorf("hour %s, want the first bucket 2026-11-01T01:00:00-04:00", m.Hour)
	}
	for _, f := range m.Files {
		want := map[string]string{fEDT: "2026-11-01T01:00:00-04:00", fEST: "2026-11-01T01:00:00-05:00"}[f.Path]
		if f.Hour != want {
			t.Errorf("file %s: hour %q, want %q", f.Path, f.Hour, want)
		}
	}
	for _, op := range rw.Ops() {
		if strings.HasPrefix(op, "delete ") {
			t.Errorf("unexpected %s", op)
		}
	}
	if got, want := h.cursor(), b3.UTC().Format(time.RFC3339); got != want {
		t.Errorf("cursor %s, want %s", got, want)
	}
	if got := h.hoursCompleted(); got != 2 {
		t.Errorf("HoursCompleted = %v, want 2 (00:00 and the 01:00 folder)", got)
	}

	// A late file of the second bucket: revision 2 of the folder.
	late := h.putFile(0, est, 30000, 30001)
	h.offs.Set(behind(0, b0, b3.Add(time.Hour+testLateness), ledger.Amend{Hour: est.UnixMilli(), First: 30000}))
	h.check(b3.Add(time.Hour + testLateness))
	h.wantMarker(edt, 2, 8, fEDT, fEST, late)
}

// TestFinalizerSpringForward: the hour clocks skip (02:00 EST on
// 2026-03-08 in New York) has no bucket, no folder and no gap: 01:00 EST
// is followed by 03:00 EDT.
func TestFinalizerSpringForward(t *testing.T) {
	h := zoned(t, "America/New_York", utc("2026-03-08T06:00:00Z"))
	loc := h.st.Loc
	b1 := utc("2026-03-08T06:00:00Z").In(loc) // 01:00 EST
	b3 := utc("2026-03-08T07:00:00Z").In(loc) // 03:00 EDT
	f1 := h.putFile(0, b1, 10, 11)
	f3 := h.putFile(0, b3, 12, 13)
	h.offs.Set(behind(0, b1, b3.Add(time.Hour+testLateness)))
	h.check(b3.Add(time.Hour + testLateness))
	h.wantMarker(b1, 1, 2, f1)
	m := h.wantMarker(b3, 1, 2, f3)
	if !strings.HasSuffix(h.st.Path.Render(testStream, b3), "dt=2026-03-08/hour=03") {
		t.Errorf("03:00 EDT renders to %s", h.st.Path.Render(testStream, b3))
	}
	if len(m.Ranges) != 1 || m.Ranges[0] != (HourRange{"2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"}) {
		t.Errorf("ranges %v", m.Ranges)
	}
	if got := h.cursor(); got != "2026-03-08T08:00:00Z" {
		t.Errorf("cursor %s, want 2026-03-08T08:00:00Z", got)
	}
}

// TestFinalizerLordHowe: Australia/Lord_Howe goes back by 30 minutes, so
// its folder hour=01 holds a full bucket (01:00-02:00 +11) and a half one
// (01:30-02:00 +10:30); one manifest covers both. Asia/Kolkata's hours
// start at half past the UTC hour.
func TestFinalizerLordHowe(t *testing.T) {
	h := zoned(t, "Australia/Lord_Howe", utc("2026-04-04T14:00:00Z"))
	loc := h.st.Loc
	full := utc("2026-04-04T14:00:00Z").In(loc)
	half := utc("2026-04-04T15:00:00Z").In(loc)
	next := utc("2026-04-04T15:30:00Z").In(loc) // 02:00 +10:30
	ff := h.putFile(0, full, 5, 7)
	fh := h.putFile(0, half, 6, 8)
	fn := h.putFile(0, next, 9)
	h.offs.Set(behind(0, full, next.Add(time.Hour+testLateness)))
	h.check(next.Add(time.Hour + testLateness))
	m := h.wantMarker(full, 1, 4, ff, fh)
	want := []HourRange{{"2026-04-04T14:00:00Z", "2026-04-04T15:00:00Z"}, {"2026-04-04T15:00:00Z", "2026-04-04T15:30:00Z"}}
	if !slices.Equal(m.Ranges, want) {
		t.Errorf("ranges %v, want %v", m.Ranges, want)
	}
	h.wantMarker(next, 1, 1, fn)

	k := zoned(t, "Asia/Kolkata", utc("2026-12-31T18:30:00Z"))
	ny := utc("2026-12-31T18:30:00Z").In(k.st.Loc) // 00:00 IST, 2027-01-01
	fk := k.putFile(0, ny, 1)
	k.offs.Set(behind(0, ny, ny.Add(time.Hour+testLateness)))
	k.check(ny.Add(time.Hour + testLateness))
	if m := k.wantMarker(ny, 1, 1, fk); m.Hour != "2027-01-01T00:00:00+05:30" {
		t.Errorf("hour %s", m.Hour)
	}
	if !strings.HasSuffix(k.st.Path.Render(testStream, ny), "dt=2027-01-01/hour=00") {
		t.Errorf("renders to %s", k.st.Path.Render(testStream, ny))
	}
}

// recBlocked records what the finalizer reports through Faults.Blocked.
type recBlocked struct {
	recFaults
	blocked []error
}

func (r *recBlocked) Blocked(_ string, err error) { r.blocked = append(r.blocked, err) }

// TestFinalizerUnprovenBlocks: a file that overlaps a kept file but whose
// last records no kept file holds is neither listed nor deleted: the
// marker waits, readiness and lakesink_unproven_files say why. When a
// replay's file covers it, it is deleted as an orphan and the marker goes
// out. The rule before deleted it at once — losing records 401-500 had
// they been committed.
func TestFinalizerUnprovenBlocks(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	faults := &recBlocked{}
	h.f.o.Faults = faults
	kept := h.putFile(0, hourH, 100, 200, 300, 400)
	stray := h.putFile(0, hourH, 250, 450, 500)
	h.offs.Set(busy(0, at(11, 20, 0)))
	h.clock.Set(at(11, 30, 0))
	err := h.f.check(h.ctx, h.st)
	var ue *UnprovenError
	if !errors.As(err, &ue) || len(ue.Files) != 1 || ue.Files[0].Path != stray {
		t.Fatalf("check: %v, want an UnprovenError naming %s", err, stray)
	}
	h.f.settle(h.ctx, h.st, err)
	h.wantNoMarker(hourH)
	if !h.exists(stray) || !h.exists(kept) {
		t.Fatalf("a file was deleted")
	}
	if got := testutil.ToFloat64(h.metrics.UnprovenFiles.WithLabelValues(testStream)); got != 1 {
		t.Errorf("lakesink_unproven_files = %v, want 1", got)
	}
	if len(faults.blocked) != 1 || faults.blocked[0] == nil || !strings.Contains(faults.blocked[0].Error(), stray) {
		t.Errorf("Blocked reports %v, want one naming %s", faults.blocked, stray)
	}

	// The replay writes the records from 401 on into a file that holds
	// offset 500: the stray file is proven superseded.
	replay := h.putFile(0, hourH, 450, 500)
	h.clock.Set(at(11, 31, 0))
	h.f.settle(h.ctx, h.st, h.f.check(h.ctx, h.st))
	h.wantMarker(hourH, 1, 6, kept, replay)
	if h.exists(stray) {
		t.Errorf("superseded %s still in the lake", stray)
	}
	if got := testutil.ToFloat64(h.metrics.UnprovenFiles.WithLabelValues(testStream)); got != 0 {
		t.Errorf("lakesink_unproven_files = %v after the marker, want 0", got)
	}
	if n := len(faults.blocked); n != 2 || faults.blocked[1] != nil {
		t.Errorf("Blocked reports %v, want the fault then its clearing", faults.blocked)
	}
}

// tickingClock advances by step at every reading.
type tickingClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *tickingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

// TestFinalizerAmendDuringCatchUp: a stream that was idle for a long time
// catches up on many empty hours; a late file that arrives meanwhile makes
// its hour's next revision within a check interval, before the remaining
// empty hours, not after the whole catch-up.
func TestFinalizerAmendDuringCatchUp(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	f0 := h.putFile(0, hourH, 0, 1)
	h.offs.Set(busy(0, at(11, 20, 0)))
	h.check(at(11, 30, 0))
	h.wantMarker(hourH, 1, 2, f0)

	// Two days later: the partition was idle, every hour since is complete;
	// a late file of H arrived.
	rw := newRecWriter(h.lake)
	clock := &tickingClock{t: hourH.Add(48 * time.Hour), step: 200 * time.Millisecond}
	h.reg = prometheus.NewRegistry()
	h.f, h.metrics = h.newFinalizer(rw, &fakeClock{}, h.reg)
	h.f.o.Now = clock.Now
	late := h.putFile(0, hourH, 50, 51)
	// The amend entry is committed while the catch-up runs: the first
	// check sees the offsets without it.
	h.offs.Set(busy(0, hourH.Add(47*time.Hour)))
	if err := h.f.check(h.ctx, h.st); err != nil {
		t.Fatal(err)
	}
	h.offs.Set(busy(0, hourH.Add(47*time.Hour), ledger.Amend{Hour: hourH.UnixMilli(), First: 50}))
	for range 100 {
		if err := h.f.check(h.ctx, h.st); err != nil {
			t.Fatal(err)
		}
	}
	h.wantMarker(hourH, 2, 4, f0, late)
	ops := rw.Ops()
	rev2 := slices.Index(ops, "putifabsent "+revKey(hourH, 2))
	lastHour := slices.Index(ops, "putifabsent "+revKey(hourH.Add(45*time.Hour), 1))
	if rev2 < 0 || lastHour < 0 || rev2 > lastHour {
		t.Errorf("revision 2 of H at op %d, the catch-up's hour H+45 at op %d: want the amendment first", rev2, lastHour)
	}
}
