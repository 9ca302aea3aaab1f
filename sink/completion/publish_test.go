package completion

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakesink/lakesink/sink/ledger"
)

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
