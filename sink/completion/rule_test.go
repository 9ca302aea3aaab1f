package completion

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ledger"
)

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

	// An owner keeping a file of the open hour cannot commit everything;
	// it attests its idleness in the commit metadata (ledger.Meta IW, IN),
	// which counts only while no record arrived after it. Without the
	// IN check, records of an already claimed hour that arrive later (a
	// backfill) would let the hour complete before they are in the lake.
	claim := func(iw time.Time, in, high int64) kafkaio.PartitionOffsets {
		p := busy(1, lowWM)
		meta, _, _ := ledger.Parse(p.Metadata)
		meta.IW, meta.IN = iw.UnixMilli(), in
		p.Metadata, p.Committed, p.High = encMeta(meta), 40, high
		return p
	}
	for _, tc := range []struct {
		name string
		p1   kafkaio.PartitionOffsets
		want bool
	}{
		{"idle claim past the bound", claim(boundOf(hourH), 50, 50), true},
		{"idle claim short of the bound", claim(boundOf(hourH).Add(-time.Millisecond), 50, 50), false},
		{"idle claim, records arrived since", claim(boundOf(hourH), 50, 51), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, now)
			f0 := h.putFile(0, hourH, 0, 1, 2)
			h.offs.Set(busy(0, at(12, 0, 0)), tc.p1)
			h.check(now)
			if tc.want {
				h.wantMarker(hourH, 1, 3, f0)
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
