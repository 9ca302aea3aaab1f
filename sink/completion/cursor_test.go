package completion

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/writers"
)

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

// TestCursorStore: the cursor object round-trips an instant (written in
// UTC, whatever the stream's zone), a missing one is no cursor, and a
// broken one or a failing lake is an error naming the key.
func TestCursorStore(t *testing.T) {
	ctx := t.Context()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	key := cursorKey(testStream)

	lake := writers.NewMemory()
	s := cursorStore{w: lake}
	if c, found, err := s.load(ctx, testStream); err != nil || found || c != 0 {
		t.Fatalf("load without a cursor object: %d, %v, %v; want 0, false, nil", c, found, err)
	}
	next := time.Date(2026, 11, 1, 1, 0, 0, 0, ny).Add(time.Hour) // the second 01:00, EST
	if err := s.save(ctx, testStream, next.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	b, err := readAll(ctx, lake, key)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"next_hour":"2026-11-01T06:00:00Z"}`; string(b) != want {
		t.Errorf("cursor object %s, want %s", b, want)
	}
	if c, found, err := s.load(ctx, testStream); err != nil || !found || c != next.UnixMilli() {
		t.Errorf("load: %d, %v, %v; want %d, true, nil", c, found, err, next.UnixMilli())
	}

	for _, tc := range []struct{ name, body, want string }{
		{"not JSON", `next_hour: 2026-11-01`, "read " + key},
		{"not a time", `{"next_hour":"tomorrow"}`, "read " + key},
		{"no time", `{}`, "read " + key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lake := writers.NewMemory()
			if err := lake.Put(ctx, key, strings.NewReader(tc.body), int64(len(tc.body))); err != nil {
				t.Fatal(err)
			}
			if _, _, err := (cursorStore{w: lake}).load(ctx, testStream); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("load: %v, want an error with %q", err, tc.want)
			}
		})
	}

	down := &downLake{Writer: writers.NewMemory()}
	down.down.Store(true)
	if _, _, err := (cursorStore{w: down}).load(ctx, testStream); err == nil || !strings.Contains(err.Error(), "get "+key) {
		t.Errorf("load from a failing lake: %v, want an error with %q", err, "get "+key)
	}
}

// readAll returns the object under key.
func readAll(ctx context.Context, w writers.Writer, key string) ([]byte, error) {
	rc, err := w.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
