package worker

import (
	"cmp"
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
// is over the limit (memShare.bound). Safe for concurrent use.
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

// memShare is one worker's side of the memory budget: what its reader and
// its open files hold (account), the options of the files it opens
// (fileOptions: page size or deferred), and what it sheds when the process
// is over the limit (bound). It reads Env at each use. Not safe for
// concurrent use; the budget it counts in is.
type memShare struct {
	env *Env
	// nparts is how many partitions this member owns: a worker's share of
	// the budget is 1/nparts of it.
	nparts   int
	held     int64 // bytes this worker has counted in env.Budget
	appended int   // records since the last check
	every    int   // memCheckEvery(nparts), on the hot path
}

func newMemShare(env *Env, partitions int) *memShare {
	return &memShare{env: env, nparts: max(partitions, 1), every: memCheckEvery(partitions)}
}

// resize sets how many partitions the member owns (a new generation of a
// worker that kept its files): what it holds stays counted.
func (m *memShare) resize(partitions int) {
	m.nparts, m.every = max(partitions, 1), memCheckEvery(partitions)
}

// due counts an appended record and reports whether a memory check is due
// (every memCheckEvery records; bound resets the count).
func (m *memShare) due() bool {
	m.appended++
	return m.appended >= m.every
}

// fetchBytes and queue size this worker's partition reader (Budget.FetchBytes,
// queueCapacity).
func (m *memShare) fetchBytes() int { return m.env.Budget.FetchBytes(m.nparts) }
func (m *memShare) queue() int      { return queueCapacity(m.nparts) }

// readerBytes is what one partition reader may hold: its fetch buffer and
// its queue of decoded records (counted at 1 KiB each). Workers count it
// against the budget so that files are shed when readers take the room.
func (m *memShare) readerBytes() int64 {
	return int64(m.fetchBytes()) + int64(m.queue())<<10
}

// pageBytes sizes the data pages of a file this worker opens with ncols
// columns while it has open other files: the configured size (32 KiB by
// default) while the memory limit leaves room for it, smaller — down to 4
// KiB — when this member's partitions times this worker's open hours would
// need more. Why: an open file holds its current page of unencoded values
// for every column (about 2.25 times the page size: parquet-go's buffers
// grow by doubling), and encoded pages can be spilled to the spool disk but
// unencoded ones cannot. With 512 partitions × 4 open hours and 11 columns
// in 256 MiB, 32 KiB pages need several times the limit, and files were
// finished early — more, smaller files per partition and hour (5.7k instead
// of 8-9k files for 2,048 partition-hours with smaller pages). Smaller
// pages compress a little worse; the rows are the same.
func (m *memShare) pageBytes(ncols, open int) int {
	def := m.env.FileOptions.PageBufferBytes
	if def <= 0 {
		def = partitioner.DefaultPageBufferBytes
	}
	share := m.env.Budget.target() / int64(m.nparts) / int64(open+1)
	want := share / int64(3*max(ncols, 1))
	p := min(def, minPageBytes)
	for p*2 <= def && int64(p*2) <= want {
		p *= 2
	}
	return p
}

// fileOptions are the options of a new file of schema while the worker
// has open other files: the sink's, with the page size from pageBytes, or
// deferred (deferFiles).
func (m *memShare) fileOptions(schema *partitioner.Schema, open int) partitioner.FileOptions {
	opts := m.env.FileOptions
	if m.deferFiles() {
		// Encoded one at a time at Finish: the configured page size.
		opts.Deferred, opts.EncodeSlots = true, m.env.Budget.encodeSlots
		m.env.Metrics.DeferredFiles.Inc()
		return opts
	}
	opts.PageBufferBytes = m.pageBytes(len(schema.Columns()), open)
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
func (m *memShare) deferFiles() bool {
	b := m.env.Budget
	return b.target()/int64(max(m.nparts, 1)) < deferShare || b.over()
}

// minRowGroupBytes is the smallest row group bound ends early: below it,
// finishing the file (one more file) frees more than a tiny row group.
const minRowGroupBytes = 256 << 10

// minPageBytes is the smallest page pageBytes chooses.
const minPageBytes = 4 << 10

// bound keeps the process under files.memory_limit (docs/design.md,
// "Bounded memory"). It updates this worker's share of the budget; when the
// process is over the limit it first spills encoded pages of the open
// files to the spool disk (Flush), then ends the current row groups of the
// open files, largest first (EndRowGroup: the values being filled go into
// the file, which stays open — one more row group, not one more file), and
// only if that is not enough does it return the key of the largest open
// file (ok true), which the worker finishes early — an extra, smaller file
// for that hour, uploaded and committed like any other — and accounts
// again. Each worker sheds at most one file per call, so the load spreads
// over the workers that hold the memory.
func (m *memShare) bound(files *fileSet) (largest fileKey, ok bool, err error) {
	m.appended = 0
	b := m.env.Budget
	b.refresh()
	m.account(files)
	m.env.Metrics.MemoryHeld.Set(float64(b.Used()))
	if !b.over() || len(files.byKey) == 0 {
		return fileKey{}, false, nil
	}
	for _, f := range files.byKey {
		if err := f.fw.Flush(); err != nil {
			return fileKey{}, false, err
		}
	}
	m.account(files)
	if !b.over() {
		return fileKey{}, false, nil
	}
	// End row groups, largest file first: the values being filled go into
	// the file and the file stays open. Only row groups of some size, so
	// that constant pressure does not make files of tiny row groups.
	hours := slices.Collect(maps.Keys(files.byKey))
	slices.SortFunc(hours, func(a, b fileKey) int {
		return cmp.Compare(files.byKey[b].fw.BufferedBytes(), files.byKey[a].fw.BufferedBytes())
	})
	for _, h := range hours {
		f := files.byKey[h]
		if f.fw.RowGroupBytes() < minRowGroupBytes {
			continue
		}
		if err := f.fw.EndRowGroup(); err != nil {
			return fileKey{}, false, files.failed(err)
		}
		m.env.Metrics.RowGroupEnds.Inc()
		m.account(files)
		if !b.over() {
			return fileKey{}, false, nil
		}
	}
	largest = fileKey{fam: -1}
	var size int64
	for h, f := range files.byKey {
		if b := f.fw.BufferedBytes(); b > size {
			largest, size = h, b
		}
	}
	if largest.fam < 0 {
		return fileKey{}, false, nil
	}
	m.env.Metrics.MemoryFlushes.Inc()
	return largest, true, nil
}

// account brings this worker's share of the budget up to date with files.
func (m *memShare) account(files *fileSet) {
	held := m.heldBytes(files)
	m.env.Budget.add(held - m.held)
	m.held = held
}

// heldBytes is what this worker's reader and open files hold.
func (m *memShare) heldBytes(files *fileSet) int64 {
	n := m.readerBytes()
	for _, f := range files.byKey {
		n += f.fw.BufferedBytes()
	}
	return n
}

// release takes this worker's share out of the budget: the end of a run,
// whose reader and files are gone. A run that follows (Run's restart after
// a failure) counts its share from zero.
func (m *memShare) release() {
	m.env.Budget.release(m.held)
	m.held = 0
}
