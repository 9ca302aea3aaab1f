package sink

import (
	"runtime"
	"testing"
)

func TestMemBudgetOver(t *testing.T) {
	for _, tc := range []struct {
		name              string
		limit, used, extr int64
		over              bool
	}{
		// The target is 7/8 of the limit: 875 of 1000.
		{"well under", 1000, 100, 0, false},
		{"reserve applies before any measurement", 1000, 576, 0, true},
		{"at the reserve line", 1000, 575, 0, false},
		{"measured extra larger than the reserve", 1000, 500, 600, true},
		{"measured extra smaller than the reserve", 1000, 550, 100, false},
		{"measured extra, at the target", 1000, 475, 400, false},
		{"measured extra, one byte over the target", 1000, 476, 400, true},
		{"over the target, under the limit", 1000, 600, 300, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &memBudget{limit: tc.limit}
			m.add(tc.used)
			m.extra.Store(tc.extr)
			if got := m.over(); got != tc.over {
				t.Fatalf("over() = %v with used %d extra %d limit %d, want %v", got, tc.used, tc.extr, tc.limit, tc.over)
			}
		})
	}
}

// TestMemBudgetRefresh: after a collection, extra is what the live heap
// holds beyond the accounted bytes, and it takes the minimum of recent
// collections so that one inflated measurement does not count.
func TestMemBudgetRefresh(t *testing.T) {
	m := &memBudget{limit: 1 << 40}
	hold := make([]byte, 64<<20) // live, unaccounted
	runtime.GC()
	m.refresh()
	first := m.extra.Load()
	if first < 64<<20 {
		t.Fatalf("extra %d after holding 64 MiB unaccounted, want >= 64 MiB", first)
	}
	// Account for what is held: the next measurements are lower, and the
	// minimum follows at once.
	m.add(int64(len(hold)))
	runtime.GC()
	m.refresh()
	if got := m.extra.Load(); got > first-60<<20 {
		t.Fatalf("extra %d after accounting 64 MiB, want about %d less than %d", got, 64<<20, first)
	}
	// A single higher measurement does not raise it.
	low := m.extra.Load()
	m.release(int64(len(hold)))
	runtime.GC()
	m.refresh()
	if got := m.extra.Load(); got != low {
		t.Fatalf("extra rose from %d to %d on one measurement", low, got)
	}
	runtime.KeepAlive(hold)
	if memCheckEvery(6) != 1365 || memCheckEvery(512) != 64 || memCheckEvery(0) != 8192 {
		t.Fatalf("memCheckEvery: %d %d %d", memCheckEvery(6), memCheckEvery(512), memCheckEvery(0))
	}
}
