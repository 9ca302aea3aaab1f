package completion

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

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

// TestWMHistory: the history keeps each partition's watermarks as first
// seen, rising only, at most maxWMObs of them; completedAt takes the
// latest of the bound and each partition's moment of qualifying.
func TestWMHistory(t *testing.T) {
	p0, p1 := topicPart{"t", 0}, topicPart{"t", 1}
	t0 := at(11, 0, 0)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	// wmAt is the watermark n minutes after 11:00, unix ms.
	wmAt := func(n int) int64 { return t0.Add(time.Duration(n) * time.Minute).UnixMilli() }

	t.Run("first sightings only", func(t *testing.T) {
		h := wmHistory{}
		h.observe([]partState{{tp: p0, wm: wmAt(10)}, {tp: p1, wm: wmAt(5)}}, sec(1))
		h.observe([]partState{{tp: p0, wm: wmAt(10)}, {tp: p1, wm: wmAt(4)}}, sec(2)) // same, lower: not new
		h.observe([]partState{{tp: p0, wm: wmAt(20)}}, sec(3))
		want := map[topicPart][]wmObs{
			p0: {{wmAt(10), sec(1)}, {wmAt(20), sec(3)}},
			p1: {{wmAt(5), sec(1)}},
		}
		if !reflect.DeepEqual(map[topicPart][]wmObs(h), want) {
			t.Errorf("history %v, want %v", h, want)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		h := wmHistory{}
		for i := range maxWMObs + 44 {
			h.observePart(p0, int64(i), sec(i))
		}
		obs := h[p0]
		if len(obs) != maxWMObs || obs[0].wm != 44 || obs[len(obs)-1].wm != maxWMObs+43 {
			t.Fatalf("%d entries from wm %d to %d, want %d from 44 to %d", len(obs), obs[0].wm, obs[len(obs)-1].wm, maxWMObs, maxWMObs+43)
		}
		// A bound older than the history counts from its oldest entry.
		if got := h.completedAt(streamState{parts: []partState{{tp: p0, wm: maxWMObs + 43}}}, 3); !got.Equal(sec(44)) {
			t.Errorf("completedAt of a bound below the history = %v, want %v", got, sec(44))
		}
	})

	// Watermarks (event time) and when they were first seen (wall clock):
	// partition 0 at 11:05 seen 11:06, 11:15 seen 11:20, 11:30 seen 11:31;
	// partition 2, whose producers' clocks run ahead, at 12:00 seen 11:02.
	mins := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	p2 := topicPart{"t", 2}
	h := wmHistory{}
	h.observe([]partState{{tp: p2, wm: wmAt(60)}}, mins(2))
	h.observe([]partState{{tp: p0, wm: wmAt(5)}}, mins(6))
	h.observe([]partState{{tp: p0, wm: wmAt(15)}}, mins(20))
	h.observe([]partState{{tp: p0, wm: wmAt(30)}}, mins(31))
	for _, tc := range []struct {
		name  string
		parts []partState
		bound int64
		want  time.Time
	}{
		{"no partition: the bound", nil, wmAt(10), mins(10)},
		{"watermark first seen past the bound", []partState{{tp: p0, wm: wmAt(30)}}, wmAt(10), mins(20)},
		{"the first sighting at the bound, not the latest", []partState{{tp: p0, wm: wmAt(30)}}, wmAt(15), mins(20)},
		{"a later bound, a later sighting", []partState{{tp: p0, wm: wmAt(30)}}, wmAt(25), mins(31)},
		{"seen before the wall clock reached the bound: the bound", []partState{{tp: p2, wm: wmAt(60)}}, wmAt(10), mins(10)},
		{"behind the bound and not idle: the bound", []partState{{tp: p0, wm: wmAt(30)}}, wmAt(40), mins(40)},
		{"idle partition qualifies last", []partState{{tp: p0, wm: wmAt(30)}, {tp: p1, wm: wmAt(2), idleSince: mins(45)}}, wmAt(10), mins(45)},
		{"idle partition qualified first", []partState{{tp: p0, wm: wmAt(30)}, {tp: p1, wm: wmAt(2), idleSince: mins(12)}}, wmAt(10), mins(20)},
		{"the latest partition counts", []partState{{tp: p0, wm: wmAt(30)}, {tp: p2, wm: wmAt(60)}}, wmAt(10), mins(20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := h.completedAt(streamState{parts: tc.parts}, tc.bound); !got.Equal(tc.want) {
				t.Errorf("completedAt = %v, want %v", got, tc.want)
			}
		})
	}
}
