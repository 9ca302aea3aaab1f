package worker

import (
	"cmp"
	"context"
	"maps"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lakesink/lakesink/partitioner"
)

// memCheckEvery is how many appended records a worker goes between memory
// checks (besides every housekeeping tick): 8192 records per member spread
// over its partitions, at least 64. Why per member: with hundreds of
// partitions each worker sees few records per tick, and the workers
// together would overshoot the limit by the records of a whole tick.
func memCheckEvery(partitions int) int {
	return max(64, 8192/max(partitions, 1))
}

// Budget is files.memory_limit shared by all workers of a process: each
// worker adds what its open files hold in memory and takes it away again.
// It is advisory and lock-free; workers shed load on their own when the sum
// is over the limit (see Worker.boundMemory). Safe for concurrent use.
type Budget struct {
	limit int64
	used  atomic.Int64
	// extra is the live heap the estimates miss, as measured after the
	// last garbage collection (refresh).
	extra atomic.Int64

	// encodeSlots bounds the deferred files being encoded at once
	// (partitioner.FileOptions.EncodeSlots), so the memory of encoding
	// does not grow with the files that finish together when an hour
	// closes on every partition. Two per core: encoding is mostly CPU,
	// but it also reads the row log and writes the file, and with one
	// per core the cores were not kept busy; measured with 512 partitions × 4
	// hours closing at once, 1 per core gave 101-123k records/s (4 runs),
	// 2 per core 106-143k (6 runs), 4 per core 114-126k (3 runs): within
	// the noise of each other, 2 per core the best.
	encodeSlots chan struct{}

	mu      sync.Mutex // guards the fields below; refresh only
	samples []metrics.Sample
	cycles  uint64
	recent  [4]int64 // the last measurements of extra, newest at recent[cycles%4]
	seen    int
}

// NewBudget returns the budget of files.memory_limit, limit bytes.
func NewBudget(limit int64) *Budget {
	return &Budget{limit: limit, encodeSlots: make(chan struct{}, 2*runtime.GOMAXPROCS(0))}
}

// Used is the memory the workers count against the limit, in bytes.
func (m *Budget) Used() int64 { return m.used.Load() }

func (m *Budget) add(d int64)     { m.used.Add(d) }
func (m *Budget) release(n int64) { m.used.Add(-n) }
func (m *Budget) over() bool {
	return m.used.Load()+max(m.extra.Load(), m.limit*reservePercent/100) > m.target()
}

// target is the live heap the workers aim for: seven eighths of
// files.memory_limit. Why not all of it: cmd/lakesink puts the Go runtime's
// soft limit at 1.3 × memory_limit, and the collector needs room between the
// live heap and that limit for the garbage of a busy process. With the live
// heap at the whole limit (30 % room) the collector fell behind under load —
// its CPU cap lets the heap pass the soft limit — and peak RSS varied from
// 377 to 414 MiB for a 256 MiB limit; at seven eighths (49 % room) it stayed
// at 366-374 MiB in nine runs (512 partitions × 4 open hours, `make bench
// BENCH_ARGS='-scenario memory'`).
func (m *Budget) target() int64 { return m.limit - m.limit/8 }

// reservePercent of files.memory_limit is kept for memory the estimates do
// not see until the collector has measured it (extra): at start-up, when
// hundreds of partitions open their files at once, the first collections
// come too late to stop the overshoot. Measured with 512 partitions × 4
// open hours, the unseen part settled at 25-45 % of a 256 MiB limit.
const reservePercent = 30

// refresh re-measures extra once per garbage collection: the live heap the
// collector found, minus what the workers account for. Safe for concurrent
// use; cheap when no collection happened since the last call.
//
// Why measure: the per-file estimates (FileWriter.BufferedBytes) are
// checked against a test, but the process holds memory they cannot see —
// parquet-go keeps its column buffers in pooled size classes (4 KiB
// upwards, doubling) and returns them to process-wide pools, and there are
// fetched records, goroutine stacks and connection buffers. With 512
// partitions × 4 open hours the live heap was 1.7 times the estimate.
// Counting the measured difference makes memory_limit bound the live heap
// of the whole process; setMemoryLimit in cmd/lakesink puts the Go
// runtime's soft limit a margin above it for garbage between collections.
func (m *Budget) refresh() {
	if !m.mu.TryLock() {
		return // another worker is at it
	}
	defer m.mu.Unlock()
	if m.samples == nil {
		m.samples = []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	}
	metrics.Read(m.samples)
	if m.samples[0].Value.Kind() != metrics.KindUint64 || m.samples[1].Value.Kind() != metrics.KindUint64 {
		return // not supported by this runtime: estimates only
	}
	cycles := m.samples[0].Value.Uint64()
	if cycles == m.cycles {
		return
	}
	m.cycles = cycles
	live := int64(m.samples[1].Value.Uint64())
	// The minimum of the last few collections: objects allocated while a
	// collection marks count as live in that collection, so on a busy
	// machine (long mark phases, heavy allocation) single measurements run
	// high, and acting on them would finish files for nothing.
	m.recent[m.seen%len(m.recent)] = max(0, live-m.used.Load())
	m.seen++
	extra := m.recent[0]
	for _, e := range m.recent[1:min(m.seen, len(m.recent))] {
		extra = min(extra, e)
	}
	m.extra.Store(extra)
}

// FetchBytes sizes one partition reader's fetch so that all readers of this
// member together stay within an eighth of the memory limit (between 32 KiB
// and 4 MiB each): the fetched but not yet processed records are memory too.
// Larger fetches gain nothing: measured with the benchmark broker, 10 MiB
// fetches cost it more CPU than 4 MiB ones (1.5 vs 2.2 CPU-s per million
// records), the response being built in one growing buffer.
func (m *Budget) FetchBytes(partitions int) int {
	b := m.limit / 8 / int64(max(partitions, 1))
	return int(min(max(b, 32<<10), 4<<20))
}

// queueCapacity sizes a partition reader's queue of fetched records the
// same way: 1024 records with few partitions, down to 32 with hundreds.
// The floors (32 KiB fetches, 32 records) matter with hundreds of
// partitions: each reader's share is memory no open file can use.
func queueCapacity(partitions int) int {
	return min(max(16384/max(partitions, 1), 32), 1024)
}

// readerBytes is what one partition reader may hold: its fetch buffer and
// its queue of decoded records (counted at 1 KiB each). Workers count it
// against the budget so that files are shed when readers take the room.
func (w *Worker) readerBytes() int64 {
	return int64(w.env.Budget.FetchBytes(w.nparts)) + int64(queueCapacity(w.nparts))<<10
}

// pageBytes sizes the data pages of a file this worker opens with ncols
// columns: the configured size (32 KiB by default) while the memory limit
// leaves room for it, smaller — down to 4 KiB — when this member's
// partitions times this worker's open hours would need more. Why: an open
// file holds its current page of unencoded values for every column (about
// 2.25 times the page size: parquet-go's buffers grow by doubling), and
// encoded pages can be spilled to the spool disk but unencoded ones cannot.
// With 512 partitions × 4 open hours and 11 columns in 256 MiB, 32 KiB
// pages need several times the limit, and files were finished early —
// more, smaller files per partition and hour (5.7k instead of 8-9k files
// for 2,048 partition-hours with smaller pages). Smaller pages compress a
// little worse; the rows are the same.
func (w *Worker) pageBytes(ncols int) int {
	def := w.env.FileOptions.PageBufferBytes
	if def <= 0 {
		def = partitioner.DefaultPageBufferBytes
	}
	share := w.env.Budget.target() / int64(w.nparts) / int64(len(w.files)+1)
	want := share / int64(3*max(ncols, 1))
	p := min(def, minPageBytes)
	for p*2 <= def && int64(p*2) <= want {
		p *= 2
	}
	return p
}

// fileOptions are the options of a new file of schema: the sink's, with
// the page size from pageBytes, or deferred (deferFiles).
func (w *Worker) fileOptions(schema *partitioner.Schema) partitioner.FileOptions {
	opts := w.env.FileOptions
	if w.deferFiles() {
		// Encoded one at a time at Finish: the configured page size.
		opts.Deferred, opts.EncodeSlots = true, w.env.Budget.encodeSlots
		w.env.Metrics.DeferredFiles.Inc()
		return opts
	}
	opts.PageBufferBytes = w.pageBytes(len(schema.Columns()))
	return opts
}

// deferShare is the share of the memory target per partition below which
// a worker opens its files deferred.
const deferShare = 8 << 20

// deferFiles reports whether this worker's new files should be deferred
// (partitioner.FileOptions.Deferred: rows in a row log on the spool disk,
// encoded at finish, about 17 KiB of memory per open file): when its
// partition's share of the memory target is below deferShare, or the
// process is over the budget now.
//
// Why: an encoding file holds its pages being filled (tens to hundreds of
// KiB); with hundreds of partitions × open hours in a small limit the sink
// used to end files early to give memory back — 2-3 files per
// partition-hour (512 partitions × 4 open hours in 256 MiB), 17-18 for a
// backlog on 40 busy partitions before row groups could be ended. A
// deferred file stays open at no cost and becomes one file. An encoding
// file is better where memory allows: its rows cross the spool disk once,
// and its encoding is spread over the hour instead of done at its end.
// 8 MiB per partition leaves an encoding file of every open hour its full
// pages and more; below it pages shrink (pageBytes) and files end early.
func (w *Worker) deferFiles() bool {
	b := w.env.Budget
	return b.target()/int64(max(w.nparts, 1)) < deferShare || b.over()
}

// minRowGroupBytes is the smallest row group boundMemory ends early: below
// it, finishing the file (one more file) frees more than a tiny row group.
const minRowGroupBytes = 256 << 10

// minPageBytes is the smallest page pageBytes chooses.
const minPageBytes = 4 << 10

// boundMemory keeps the process under files.memory_limit (docs/design.md,
// "Bounded memory"). It updates this worker's share of the budget; when the
// process is over the limit it first spills encoded pages of its open files
// to the spool disk (Flush), then ends the current row groups of its open
// files, largest first (EndRowGroup: the values being filled go into the
// file, which stays open — one more row group, not one more file), and
// only if that is not enough does it finish its largest open file early —
// an extra, smaller file for that hour, uploaded and committed like any
// other. Each worker sheds at most one file per call, so the load spreads
// over the workers that hold the memory.
func (w *Worker) boundMemory(ctx context.Context) error {
	w.appended = 0
	b := w.env.Budget
	b.refresh()
	w.account()
	w.env.Metrics.MemoryHeld.Set(float64(b.Used()))
	if !b.over() || len(w.files) == 0 {
		return nil
	}
	for _, f := range w.files {
		if err := f.fw.Flush(); err != nil {
			return err
		}
	}
	w.account()
	if !b.over() {
		return nil
	}
	// End row groups, largest file first: the values being filled go into
	// the file and the file stays open. Only row groups of some size, so
	// that constant pressure does not make files of tiny row groups.
	hours := slices.Collect(maps.Keys(w.files))
	slices.SortFunc(hours, func(a, b fileKey) int {
		return cmp.Compare(w.files[b].fw.BufferedBytes(), w.files[a].fw.BufferedBytes())
	})
	for _, h := range hours {
		f := w.files[h]
		if f.fw.RowGroupBytes() < minRowGroupBytes {
			continue
		}
		if err := f.fw.EndRowGroup(); err != nil {
			return w.spoolFailed(err)
		}
		w.env.Metrics.RowGroupEnds.Inc()
		w.account()
		if !b.over() {
			return nil
		}
	}
	largest := fileKey{fam: -1}
	var size int64
	for h, f := range w.files {
		if b := f.fw.BufferedBytes(); b > size {
			largest, size = h, b
		}
	}
	if largest.fam < 0 {
		return nil
	}
	w.env.Metrics.MemoryFlushes.Inc()
	if err := w.finish(ctx, largest.hour); err != nil { // with the hour's other files
		return err
	}
	w.account()
	return nil
}

// account brings this worker's share of the budget up to date.
func (w *Worker) account() {
	held := w.heldBytes()
	w.env.Budget.add(held - w.memHeld)
	w.memHeld = held
}

func (w *Worker) heldBytes() int64 {
	n := w.readerBytes()
	for _, f := range w.files {
		n += f.fw.BufferedBytes()
	}
	return n
}
