package worker

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/writers"
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
			m := NewBudget(tc.limit)
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
	m := NewBudget(1 << 40)
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

// TestPageBytes: files get the configured page size while the limit has
// room for it, and smaller pages (never below 4 KiB) when partitions ×
// open hours × columns would not fit.
func TestPageBytes(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name         string
		limit        int64
		configured   int
		nparts, open int
		ncols        int
		want         int
	}{
		{"few partitions: the default", 512 * mib, 0, 6, 0, 11, 32 << 10},
		{"few partitions: a configured size", 512 * mib, 64 << 10, 6, 1, 11, 64 << 10},
		{"configured below the floor is kept", 512 * mib, 2 << 10, 6, 0, 11, 2 << 10},
		// 224 MiB target / 512 partitions = 448 KiB a partition; / 33 = 13.6 KiB.
		{"512 partitions, first hour", 256 * mib, 0, 512, 0, 11, 8 << 10},
		// 448 KiB / 4 / 33 = 3.4 KiB: the floor.
		{"512 partitions, fourth hour", 256 * mib, 0, 512, 3, 11, 4 << 10},
		{"one column", 256 * mib, 0, 512, 0, 1, 32 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &Env{Budget: NewBudget(tc.limit), FileOptions: partitioner.FileOptions{PageBufferBytes: tc.configured}}
			m := &memShare{env: env, nparts: tc.nparts}
			if got := m.pageBytes(tc.ncols, tc.open); got != tc.want {
				t.Fatalf("pageBytes(%d) = %d, want %d", tc.ncols, got, tc.want)
			}
		})
	}
}

// TestMemShareRelease: a worker whose run ends takes its whole share out
// of the budget, and a run that follows (Run restarts a worker after a
// failure) counts what it holds from zero: the budget holds exactly its
// reader and files again, not that less what the first run held.
func TestMemShareRelease(t *testing.T) {
	cfg := testConfig()
	cfg.Streams[0].AllowedLateness = config.Duration(6 * time.Hour) // no hour closes
	w, _ := testWorker(t, cfg, writers.NewMemory())
	b := w.env.Budget
	h0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	for off := range int64(100) {
		m := kafka.Message{Topic: "events", Offset: off, HighWaterMark: 100, Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, off, h0.UnixMilli()+off)}
		if err := w.process(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	w.mem.account(w.files)
	if got, want := b.Used(), w.mem.heldBytes(w.files); got != want || got <= w.mem.readerBytes() {
		t.Fatalf("first run: budget %d bytes, want %d (reader and an open file)", got, want)
	}
	// The run ends: its files are abandoned and its share released.
	w.abandonAll()
	w.mem.release()
	if got := b.Used(); got != 0 {
		t.Fatalf("after the run: budget %d bytes, want 0", got)
	}
	// The next run: its reader alone.
	w.mem.account(w.files)
	if got, want := b.Used(), w.mem.readerBytes(); got != want {
		t.Errorf("next run: budget %d bytes, want %d (its reader)", got, want)
	}
}

// TestBoundMemoryFinishesLargestFile (docs/design.md, "Bounded memory"): over the
// limit, a worker spills and then finishes its largest open file early —
// one file per call, uploaded with all its records — and gives its memory
// back; under the limit it leaves its files alone.
func TestBoundMemoryFinishesLargestFile(t *testing.T) {
	cfg := testConfig()
	cfg.Streams[0].AllowedLateness = config.Duration(6 * time.Hour) // no hour closes
	lake := writers.NewMemory()
	w, _ := testWorker(t, cfg, lake)
	ctx := context.Background()

	// Three open hours holding 300, 100 and 50 records, interleaved.
	h0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	counts := []int{300, 100, 50}
	const total = 450
	// Round-robin over the hours that still have records to get.
	left := slices.Clone(counts)
	for off := 0; off < total; {
		for h := range left {
			if left[h] == 0 {
				continue
			}
			left[h]--
			ts := h0.Add(time.Duration(h)*time.Hour + time.Minute).UnixMilli()
			m := kafka.Message{Topic: "events", Offset: int64(off), HighWaterMark: total, Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, off, ts)}
			if err := w.process(ctx, m); err != nil {
				t.Fatalf("process offset %d: %v", off, err)
			}
			off++
		}
	}
	if len(w.files.byKey) != 3 {
		t.Fatalf("%d open files, want 3", len(w.files.byKey))
	}

	w.env.Budget.limit = 1 << 40 // far under the limit: nothing happens
	if err := w.boundMemory(ctx); err != nil {
		t.Fatal(err)
	}
	if len(w.files.byKey) != 3 || testutil.ToFloat64(w.env.Metrics.MemoryFlushes) != 0 {
		t.Fatalf("under the limit: %d open files, %v memory flushes; want 3, 0", len(w.files.byKey), testutil.ToFloat64(w.env.Metrics.MemoryFlushes))
	}

	held := w.mem.held
	w.env.Budget.limit = 1 // over
	if err := w.boundMemory(ctx); err != nil {
		t.Fatal(err)
	}
	if len(w.files.byKey) != 2 || testutil.ToFloat64(w.env.Metrics.MemoryFlushes) != 1 {
		t.Fatalf("over the limit: %d open files, %v memory flushes; want 2, 1", len(w.files.byKey), testutil.ToFloat64(w.env.Metrics.MemoryFlushes))
	}
	if _, open := w.files.byKey[fileKey{hour: h0.UnixMilli()}]; open {
		t.Error("the largest file (first hour, 300 records) is still open")
	}
	if w.mem.held >= held {
		t.Errorf("worker holds %d bytes after finishing a file, %d before", w.mem.held, held)
	}
	objs, err := lake.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var records int64
	for _, f := range readLake(t, lake) {
		records += int64(len(f.rows))
	}
	if len(objs) != 1 || records != 300 {
		t.Fatalf("lake has %d objects with %d records, want the one file of 300", len(objs), records)
	}
}

// TestBoundMemoryEndsRowGroupsFirst: over the limit, a worker ends the
// current row group of its largest open file, and when that is enough the
// file stays open: one file with two row groups, not two files.
func TestBoundMemoryEndsRowGroupsFirst(t *testing.T) {
	cfg := testConfig()
	cfg.Streams[0].AllowedLateness = config.Duration(6 * time.Hour)
	lake := writers.NewMemory()
	w, _ := testWorker(t, cfg, lake)
	ctx := context.Background()
	h0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	const n = 40000 // 16 B per record, random, so past minRowGroupBytes compressed
	r := rand.New(rand.NewPCG(1, 2))
	for off := range int64(n) {
		ts := h0.UnixMilli() + r.Int64N(ledger.HourMs)
		m := kafka.Message{Topic: "events", Offset: off, HighWaterMark: n, Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, r.Int64()>>1, ts)}
		if err := w.process(ctx, m); err != nil {
			t.Fatalf("process offset %d: %v", off, err)
		}
	}
	f := w.files.byKey[fileKey{hour: h0.UnixMilli()}]
	if f == nil || f.fw.RowGroupBytes() < minRowGroupBytes {
		t.Fatalf("open file's row group too small for the test: %v", f)
	}
	// No collection during the test: the budget's measured extra stays
	// what we set, so the limit below is exact.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	b := w.env.Budget
	b.limit = 1 << 40
	if err := w.boundMemory(ctx); err != nil {
		t.Fatal(err)
	}
	if testutil.ToFloat64(w.env.Metrics.RowGroupEnds) != 0 {
		t.Fatal("under the limit: a row group was ended")
	}
	for _, f := range w.files.byKey {
		if err := f.fw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	w.mem.account(w.files)
	b.extra.Store(0)
	// Just over: used + 30 % reserve > 7/8 of the limit. The readers'
	// share depends on the limit, so settle it.
	// With one partition a reader holds limit/8 plus its queue, so over
	// means files + queue + limit/8 > 0.575 × limit.
	fixed := w.mem.heldBytes(w.files) - w.mem.readerBytes() + int64(w.mem.queue())<<10
	b.limit = fixed*100/45 - 4096
	w.mem.account(w.files)
	if !b.over() {
		t.Fatalf("calibration: used %d, limit %d: not over", b.Used(), b.limit)
	}
	if err := w.boundMemory(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(w.env.Metrics.RowGroupEnds); got != 1 {
		t.Errorf("%v row groups ended early, want 1", got)
	}
	if got := testutil.ToFloat64(w.env.Metrics.MemoryFlushes); got != 0 {
		t.Errorf("%v files finished early, want none: ending the row group was enough", got)
	}
	if len(w.files.byKey) != 1 || b.over() {
		t.Fatalf("%d open files (want 1), over %v", len(w.files.byKey), b.over())
	}
	// More records, then the file ends for real: two row groups.
	for off := int64(n); off < n+100; off++ {
		m := kafka.Message{Topic: "events", Offset: off, HighWaterMark: n + 100, Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, off, h0.UnixMilli()+off)}
		if err := w.process(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.finish(ctx, h0.UnixMilli(), finishHourClosed); err != nil {
		t.Fatal(err)
	}
	files := readLake(t, lake)
	if len(files) != 1 || len(files[0].rows) != n+100 {
		t.Fatalf("lake: %d files, want the one with %d records", len(files), n+100)
	}
	objs, _ := lake.List(ctx, "")
	data := lakeBytes(t, lake, objs[0].Key)
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.RowGroups()) != 2 {
		t.Errorf("the file has %d row groups, want 2 (ended early, then at the finish)", len(pf.RowGroups()))
	}
}

// TestDeferredFilesStayOpen: with hundreds of partitions in a small memory
// limit, a worker opens its files deferred — a few KiB each, so four open
// hours fit without pressure — and each hour becomes one file holding
// exactly its records.
func TestDeferredFilesStayOpen(t *testing.T) {
	cfg := testConfig()
	cfg.Streams[0].AllowedLateness = config.Duration(6 * time.Hour) // no hour closes
	cfg.Files.MemoryLimit = 256 << 20
	lake := writers.NewMemory()
	w, _ := testWorker(t, cfg, lake)
	w.mem.nparts = 512 // this member's share: 256 MiB × 7/8 / 512 < deferShare
	ctx := context.Background()
	h0 := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	const hours, total = 4, 4000
	for off := range int64(total) {
		ts := h0.Add(time.Duration(off%hours)*time.Hour + time.Duration(off)*time.Millisecond).UnixMilli()
		m := kafka.Message{Topic: "events", Offset: off, HighWaterMark: total, Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, off, ts)}
		if err := w.process(ctx, m); err != nil {
			t.Fatalf("process offset %d: %v", off, err)
		}
	}
	if len(w.files.byKey) != hours {
		t.Fatalf("%d open files, want %d", len(w.files.byKey), hours)
	}
	for _, f := range w.files.byKey {
		if !f.fw.Deferred() {
			t.Fatalf("file of %s is not deferred", f.hour)
		}
	}
	if got := testutil.ToFloat64(w.env.Metrics.DeferredFiles); got != hours {
		t.Errorf("lakesink_deferred_files_total %v, want %d", got, hours)
	}
	if held := w.mem.heldBytes(w.files) - w.mem.readerBytes(); held > hours*24<<10 {
		t.Errorf("%d open deferred files hold %d KiB, want ≤ 24 KiB each", hours, held>>10)
	}
	if err := w.boundMemory(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(w.env.Metrics.MemoryFlushes) + testutil.ToFloat64(w.env.Metrics.RowGroupEnds); got != 0 {
		t.Fatalf("%v files or row groups ended early", got)
	}
	for h := range hours {
		if err := w.finish(ctx, h0.Add(time.Duration(h)*time.Hour).UnixMilli(), finishHourClosed); err != nil {
			t.Fatal(err)
		}
	}
	files := readLake(t, lake)
	if len(files) != hours {
		t.Fatalf("lake has %d files, want one per hour (%d)", len(files), hours)
	}
	seen := map[int64]bool{}
	for _, f := range files {
		for i, r := range f.rows {
			id := r["id"].(int64)
			if seen[id] {
				t.Fatalf("record %d twice", id)
			}
			seen[id] = true
			if h := f.meta.Hour; !h.Equal(h0.Add(time.Duration(id%hours) * time.Hour)) {
				t.Fatalf("record %d in the file of %s", id, h)
			}
			if i > 0 && f.rows[i-1]["id"].(int64) >= id {
				t.Fatalf("%s: rows out of offset order at %d", f.key, i)
			}
		}
	}
	if len(seen) != total {
		t.Fatalf("lake holds %d records, want %d", len(seen), total)
	}
}
