package completion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/writers"
)

// compacting makes the harness's stream compact its hours.
func (h *harness) compacting(target int64) {
	h.st.Compaction = &Compaction{TargetBytes: target, MinFiles: 2, SpoolDir: h.t.TempDir()}
}

// folderFiles lists the data files in hour's folder.
func (h *harness) folderFiles(hour time.Time) []string {
	h.t.Helper()
	folder := h.st.Path.Render(testStream, hour)
	objs, err := h.lake.List(h.ctx, folder+"/")
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".parquet") {
			out = append(out, o.Key)
		}
	}
	return out
}

// rows reads the id column of every file m lists: id -> times seen.
func (h *harness) rows(m Manifest) map[string]int {
	h.t.Helper()
	type row struct {
		ID string `parquet:"id"`
	}
	seen := map[string]int{}
	for _, f := range m.Files {
		b, ok := h.get(f.Path)
		if !ok {
			h.t.Fatalf("listed file %s is not in the lake", f.Path)
		}
		rs, err := parquet.Read[row](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			h.t.Fatalf("read %s: %v", f.Path, err)
		}
		if int64(len(rs)) != f.Records {
			h.t.Errorf("%s has %d rows, the manifest says %d", f.Path, len(rs), f.Records)
		}
		for _, r := range rs {
			seen[r.ID]++
		}
	}
	return seen
}

// wantRows checks that seen holds each id of want (partition -> offsets)
// exactly once and nothing else.
func (h *harness) wantRows(seen map[string]int, want map[int][]int64) {
	h.t.Helper()
	n := 0
	for p, offs := range want {
		for _, o := range offs {
			id := fmt.Sprintf("id-%d-%d", p, o)
			if seen[id] != 1 {
				h.t.Errorf("record %s seen %d times, want once", id, seen[id])
			}
			n++
		}
	}
	if len(seen) != n {
		h.t.Errorf("%d distinct records, want %d", len(seen), n)
	}
}

// compactedHour puts the files of TestCompactionBeforeMarker's hour: four
// small files of three partitions. It returns their keys and records.
func (h *harness) compactedHour() ([]string, map[int][]int64) {
	want := map[int][]int64{0: {0, 1, 2, 3, 4}, 1: {0, 1}, 2: {5, 6, 7}}
	keys := []string{
		h.putFile(0, hourH, 0, 1, 2),
		h.putFile(0, hourH, 3, 4),
		h.putFile(1, hourH, 0, 1),
		h.putFile(2, hourH, 5, 6, 7),
	}
	h.offs.Set(busy(0, at(11, 20, 0)), busy(1, at(11, 20, 0)), busy(2, at(11, 20, 0)))
	return keys, want
}

// TestCompactionBeforeMarker: with compaction on, a complete hour's small
// files are merged into one file, the inputs removed once it is in the
// lake, and only then the marker written; the manifest lists the one file
// with its sources, and the folder holds exactly that file.
func TestCompactionBeforeMarker(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	h.compacting(64 << 20)
	rw := newRecWriter(h.lake)
	h.f, h.metrics = h.newFinalizer(rw, h.clock, prometheus.NewRegistry())
	inputs, want := h.compactedHour()
	h.check(at(11, 30, 0))

	m := h.success(hourH)
	if len(m.Files) != 1 || m.Records != 10 {
		t.Fatalf("marker lists %d files, %d records; want 1 compacted file of 10", len(m.Files), m.Records)
	}
	c := m.Files[0]
	if !partitioner.ParseCompactedFileName(c.Path[strings.LastIndexByte(c.Path, '/')+1:]) {
		t.Errorf("listed file %s is not a compacted file", c.Path)
	}
	wantSources := []partitioner.Source{
		{Topic: testTopic, Partition: 0, FirstOffset: 0, LastOffset: 2, Records: 3},
		{Topic: testTopic, Partition: 0, FirstOffset: 3, LastOffset: 4, Records: 2},
		{Topic: testTopic, Partition: 1, FirstOffset: 0, LastOffset: 1, Records: 2},
		{Topic: testTopic, Partition: 2, FirstOffset: 5, LastOffset: 7, Records: 3},
	}
	if !slices.Equal(c.Sources, wantSources) {
		t.Errorf("sources %+v, want %+v", c.Sources, wantSources)
	}
	if got := h.folderFiles(hourH); !slices.Equal(got, []string{c.Path}) {
		t.Errorf("folder holds %v, want only %s", got, c.Path)
	}
	h.wantRows(h.rows(m), want)

	// Order: the compacted file is durable before any input goes, and
	// every input is gone before the revision is published.
	ops := rw.Ops()
	put := slices.Index(ops, "putifabsent "+c.Path)
	rev := slices.Index(ops, "putifabsent "+revKey(hourH, 1))
	for _, in := range inputs {
		del := slices.Index(ops, "delete "+in)
		if put < 0 || del < put || rev < del {
			t.Errorf("upload at op %d, delete of %s at %d, revision 1 at %d; want upload < delete < revision:\n%s",
				put, in, del, rev, strings.Join(ops, "\n"))
		}
	}
	for name, want := range map[string]float64{"hours": 1, "files in": 4, "files out": 1} {
		var got float64
		switch name {
		case "hours":
			got = testutil.ToFloat64(h.metrics.HoursCompacted.WithLabelValues(testStream))
		case "files in":
			got = testutil.ToFloat64(h.metrics.CompactedFilesIn.WithLabelValues(testStream))
		case "files out":
			got = testutil.ToFloat64(h.metrics.CompactedFilesOut.WithLabelValues(testStream))
		}
		if got != want {
			t.Errorf("compaction %s = %v, want %v", name, got, want)
		}
	}

	// The manifest entry of a compacted file has sources, no offsets.
	b, _ := h.get(h.successKey(hourH))
	if bytes.Contains(b, []byte(`"first_offset": 0,`+"\n"+`      "last_offset"`)) || !bytes.Contains(b, []byte(`"sources"`)) {
		t.Errorf("marker JSON:\n%s", b)
	}
	if !m.Lists(testTopic, 2, 5) || m.Lists(testTopic, 2, 6) {
		t.Errorf("Lists: a merged file must count as listed by its first offset only")
	}
}

// faultWriter fails the first operation fail accepts, like a process
// killed at that point: nothing after it happens.
type faultWriter struct {
	writers.Writer
	mu    sync.Mutex
	fail  func(op, key string) bool
	fired bool
}

var errKilled = errors.New("killed")

func (w *faultWriter) hit(op, key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fired || !w.fail(op, key) {
		return w.fired
	}
	w.fired = true
	return true
}

func (w *faultWriter) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if w.hit("put", key) {
		return errKilled
	}
	return w.Writer.Put(ctx, key, r, size)
}

func (w *faultWriter) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if w.hit("putifabsent", key) {
		return errKilled
	}
	return w.Writer.PutIfAbsent(ctx, key, r, size)
}

func (w *faultWriter) Delete(ctx context.Context, key string) error {
	if w.hit("delete", key) {
		return errKilled
	}
	return w.Writer.Delete(ctx, key)
}

// TestCompactionKilled: an instance killed at any step of a compaction —
// before the plan, mid-merge (the upload of the merged file fails), after
// the upload, after removing some inputs, before the marker — leaves a
// lake from which another instance finishes the hour: one compacted
// file, every record once, the inputs gone.
func TestCompactionKilled(t *testing.T) {
	isParquet := func(key string) bool { return strings.HasSuffix(key, ".parquet") }
	compacted := func(key string) bool {
		return isParquet(key) && partitioner.ParseCompactedFileName(key[strings.LastIndexByte(key, '/')+1:])
	}
	deletes := 0
	tests := []struct {
		name string
		fail func(op, key string) bool
	}{
		{"before the plan", func(op, key string) bool { return op == "putifabsent" && strings.HasSuffix(key, "compaction.json") }},
		{"mid-merge", func(op, key string) bool { return op == "putifabsent" && compacted(key) }},
		{"after the upload", func(op, key string) bool { return op == "delete" && isParquet(key) }},
		{"after removing some inputs", func(op, key string) bool {
			if op == "delete" && isParquet(key) {
				deletes++
				return deletes == 3
			}
			return false
		}},
		{"before the marker", func(op, key string) bool { return op == "putifabsent" && strings.Contains(key, "/r000001.json") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deletes = 0
			h := newHarness(t, at(11, 30, 0))
			h.compacting(64 << 20)
			_, want := h.compactedHour()
			fw := &faultWriter{Writer: h.lake, fail: tt.fail}
			a, _ := h.newFinalizer(fw, h.clock, prometheus.NewRegistry())
			if err := a.check(h.ctx, h.st); !errors.Is(err, errKilled) {
				t.Fatalf("instance A: %v, want it killed", err)
			}
			// Nothing in the lake says the hour is complete, and no record
			// is gone: every record is in a data file of the folder.
			h.wantNoMarker(hourH)

			h.check(at(11, 31, 0)) // instance B
			m := h.success(hourH)
			if len(m.Files) != 1 || len(m.Files[0].Sources) != 4 {
				t.Fatalf("marker lists %+v, want one compacted file of 4 sources", m.Files)
			}
			if got := h.folderFiles(hourH); !slices.Equal(got, []string{m.Files[0].Path}) {
				t.Errorf("folder holds %v, want only %s", got, m.Files[0].Path)
			}
			h.wantRows(h.rows(m), want)
		})
	}
}

// TestCompactionConcurrent: two instances compact the same hour at the
// same time: one plan, one compacted file, every record once.
func TestCompactionConcurrent(t *testing.T) {
	for i := range 10 {
		h := newHarness(t, at(11, 30, 0))
		h.compacting(64 << 20)
		_, want := h.compactedHour()
		b, _ := h.newFinalizer(h.lake, &fakeClock{t: at(11, 30, 0)}, prometheus.NewRegistry())
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, f := range []*Finalizer{h.f, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[j] = f.check(h.ctx, h.st)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil && !errors.Is(err, errAwaitEvents) {
				// The loser may find an input gone between its listing
				// and its merge; it finishes at its next check.
				t.Logf("run %d: %v", i, err)
			}
		}
		h.check(at(11, 31, 0))
		m := h.success(hourH)
		if len(m.Files) != 1 {
			t.Fatalf("run %d: marker lists %d files, want 1", i, len(m.Files))
		}
		if got := h.folderFiles(hourH); !slices.Equal(got, []string{m.Files[0].Path}) {
			t.Fatalf("run %d: folder holds %v", i, got)
		}
		h.wantRows(h.rows(m), want)
	}
}

// TestCompactionLeavesLargeAndLate: a file of at least half the target
// stays as it is, and a late file that arrives after the plan was made
// is not merged: the marker lists the compacted file, the large one and
// the late one.
func TestCompactionLeavesLargeAndLate(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	var offs []int64
	for o := int64(100); o < 3000; o++ {
		offs = append(offs, o)
	}
	large := h.putFile(3, hourH, offs...)
	size, err := h.lake.Stat(h.ctx, large)
	if err != nil {
		t.Fatal(err)
	}
	h.compacting(2 * size.Size)
	h.compactedHour()
	h.offs.Set(busy(0, at(11, 20, 0)), busy(1, at(11, 20, 0)), busy(2, at(11, 20, 0)), busy(3, at(11, 20, 0)))
	rw := newRecWriter(h.lake)
	var late string
	rw.beforePutIfAbsent = func(key string) {
		if partitioner.ParseCompactedFileName(key[strings.LastIndexByte(key, '/')+1:]) {
			late = h.putFile(4, hourH, 9)
		}
	}
	h.f, h.metrics = h.newFinalizer(rw, h.clock, prometheus.NewRegistry())
	h.check(at(11, 30, 0))
	m := h.success(hourH)
	var got []string
	compacted := 0
	for _, f := range m.Files {
		if f.Sources != nil {
			compacted++
			continue
		}
		got = append(got, f.Path)
	}
	if compacted != 1 || !slices.Equal(got, []string{large, late}) {
		t.Errorf("marker lists %d compacted files and %v; want 1 and [%s %s]", compacted, got, large, late)
	}
	if m.Records != 10+int64(len(offs))+1 {
		t.Errorf("marker has %d records, want %d", m.Records, 10+len(offs)+1)
	}
}

// TestCompactionNeedsMinFiles: one small file is not compacted.
func TestCompactionNeedsMinFiles(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	h.compacting(64 << 20)
	f0 := h.putFile(0, hourH, 0, 1, 2)
	h.offs.Set(busy(0, at(11, 20, 0)))
	h.check(at(11, 30, 0))
	h.wantMarker(hourH, 1, 3, f0)
	if h.exists(markerStore{stream: testStream}.planKey(hourH)) {
		t.Errorf("a plan was written for a folder with nothing to merge")
	}
}

// TestSplitOrphansCompacted: a compacted file's sources are kept units:
// inputs still there (a compaction cut short) and crashed attempts'
// copies inside them are orphans; a file overlapping a source without a
// proof is unproven; two compacted files that overlap are both unproven.
func TestSplitOrphansCompacted(t *testing.T) {
	src := func(p int, first, last, n int64) partitioner.Source {
		return partitioner.Source{Topic: "t", Partition: p, FirstOffset: first, LastOffset: last, Records: n}
	}
	f := func(path string, p int, first, last int64) ManifestFile {
		return ManifestFile{Path: path, Topic: "t", Partition: p, FirstOffset: first, LastOffset: last, Records: last - first + 1}
	}
	c := func(path string, s ...partitioner.Source) ManifestFile {
		return ManifestFile{Path: path, Sources: s}
	}
	tests := []struct {
		name                    string
		files                   []ManifestFile
		kept, orphans, unproven []string
	}{
		{"inputs left behind", []ManifestFile{
			c("C", src(0, 0, 9, 10), src(1, 0, 4, 5)), f("a", 0, 0, 9), f("b", 1, 0, 4), f("d", 1, 5, 8),
		}, []string{"C", "d"}, []string{"a", "b"}, nil},
		{"a crashed copy inside a source", []ManifestFile{
			c("C", src(0, 0, 9, 10)), f("a", 0, 3, 6),
		}, []string{"C"}, []string{"a"}, nil},
		{"a replay past a source", []ManifestFile{
			c("C", src(0, 0, 9, 10)), f("a", 0, 0, 12),
		}, []string{"C"}, nil, []string{"a"}},
		{"a file before a source", []ManifestFile{
			c("C", src(0, 10, 19, 10)), f("a", 0, 0, 9), f("b", 0, 5, 15),
		}, []string{"C", "a"}, []string{"b"}, nil},
		{"overlapping compacted files", []ManifestFile{
			c("C", src(0, 0, 9, 10)), c("D", src(0, 5, 14, 10)), c("E", src(1, 0, 9, 10)),
		}, []string{"E"}, nil, []string{"C", "D"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, orphans, unproven := SplitOrphans(tt.files)
			if k, o, u := paths(kept), paths(orphans), paths(unproven); !slices.Equal(k, tt.kept) ||
				!slices.Equal(o, tt.orphans) || !slices.Equal(u, tt.unproven) {
				t.Errorf("kept %v orphans %v unproven %v; want %v %v %v", k, o, u, tt.kept, tt.orphans, tt.unproven)
			}
		})
	}
}

// TestCompactionInputChanged: an input that a replay rewrote under the
// same name with more records after the plan was made is not the file the
// plan merged: it is not removed, the folder's marker waits (the file
// reaches beyond the compacted file's source: unproven), and no record is
// lost.
func TestCompactionInputChanged(t *testing.T) {
	h := newHarness(t, at(11, 30, 0))
	h.compacting(64 << 20)
	h.compactedHour()
	rw := newRecWriter(h.lake)
	var rewritten string
	rw.beforePutIfAbsent = func(key string) {
		if partitioner.ParseCompactedFileName(key[strings.LastIndexByte(key, '/')+1:]) {
			rewritten = h.putFile(2, hourH, 5, 6, 7, 8) // same name, one record more
		}
	}
	f, _ := h.newFinalizer(rw, h.clock, prometheus.NewRegistry())
	var unproven *UnprovenError
	if err := f.check(h.ctx, h.st); !errors.As(err, &unproven) {
		t.Fatalf("check: %v, want the rewritten input unproven", err)
	}
	h.wantNoMarker(hourH)
	if !h.exists(rewritten) {
		t.Fatalf("the rewritten input %s was deleted: record 8 of partition 2 is lost", rewritten)
	}
	for _, op := range rw.Ops() {
		if op == "delete "+rewritten {
			t.Errorf("the rewritten input was deleted")
		}
	}
}

// TestDecodeCompactionPlan: DecodeCompactionPlan reads the plan object the
// finalizer writes (its folder, outputs and their inputs' keys in order)
// and refuses what readPlan refuses.
func TestDecodeCompactionPlan(t *testing.T) {
	folder := "clicks/dt=2026-12-01/hour=11"
	p := compactionPlan{Version: planVersion, Stream: testStream, Folder: folder, Outputs: []planOutput{{
		Key: folder + "/compacted+0123456789abcdef.parquet", Bucket: hourH,
		Inputs: []planInput{
			{Key: folder + "/clicks+1+00000000000000000000.parquet", Sources: []partitioner.Source{{Topic: "clicks", Partition: 1, LastOffset: 1, Records: 2}}},
			{Key: folder + "/clicks+0+00000000000000000000.parquet", Sources: []partitioner.Source{{Topic: "clicks", Partition: 0, LastOffset: 4, Records: 5}}},
		},
	}}}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	gotFolder, outs, err := DecodeCompactionPlan(b)
	want := []PlannedOutput{{Key: p.Outputs[0].Key, Inputs: []PlannedInput{PlannedInput(p.Outputs[0].Inputs[0]), PlannedInput(p.Outputs[0].Inputs[1])}}}
	if err != nil || gotFolder != folder || !reflect.DeepEqual(outs, want) {
		t.Fatalf("decoded %q %+v, %v; want %q %+v", gotFolder, outs, err, folder, want)
	}
	for _, bad := range []string{`{`, `{"version":2,"outputs":[]}`, `null`} {
		if _, _, err := DecodeCompactionPlan([]byte(bad)); err == nil {
			t.Errorf("plan %s decoded without error", bad)
		}
	}
}

// TestCompactionCalendars: compaction merges per bucket, and the orphan
// rule keys compacted sources by bucket. On New York's fall-back night the
// two 01:00 hours (05:00Z and 06:00Z) render into one folder and a
// partition's files of the two interleave in offsets; each bucket's files
// become one compacted file, both are kept, every record once — also when
// the first instance is killed after the upload. Lord Howe's folder of a
// full and a half bucket likewise. With sources keyed by folder instead
// of bucket, the two compacted files of one folder would overlap and
// block the marker.
func TestCompactionCalendars(t *testing.T) {
	type file struct {
		partition int
		bucket    time.Time
		offsets   []int64
	}
	tests := []struct {
		name    string
		zone    string
		buckets []time.Time // the folder's, first first
		files   []file
	}{
		{"America/New_York fall back", "America/New_York", []time.Time{utc("2026-11-01T05:00:00Z"), utc("2026-11-01T06:00:00Z")}, []file{
			{0, utc("2026-11-01T05:00:00Z"), []int64{10, 12, 14}}, {0, utc("2026-11-01T06:00:00Z"), []int64{11, 13, 15}},
			{1, utc("2026-11-01T05:00:00Z"), []int64{0, 2}}, {1, utc("2026-11-01T06:00:00Z"), []int64{1, 3}},
		}},
		{"Australia/Lord_Howe half bucket", "Australia/Lord_Howe", []time.Time{utc("2026-04-04T14:00:00Z"), utc("2026-04-04T15:00:00Z")}, []file{
			{0, utc("2026-04-04T14:00:00Z"), []int64{5, 7}}, {0, utc("2026-04-04T15:00:00Z"), []int64{6, 8}},
			{1, utc("2026-04-04T14:00:00Z"), []int64{1}}, {1, utc("2026-04-04T15:00:00Z"), []int64{2, 3}},
		}},
	}
	for _, tt := range tests {
		for _, kill := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/killed %v", tt.name, kill), func(t *testing.T) {
				first, last := tt.buckets[0], tt.buckets[len(tt.buckets)-1]
				h := zoned(t, tt.zone, last.Add(time.Hour+testLateness))
				h.compacting(64 << 20)
				loc := h.st.Loc
				want := map[int][]int64{}
				for _, f := range tt.files {
					h.putFile(f.partition, f.bucket.In(loc), f.offsets...)
					want[f.partition] = append(want[f.partition], f.offsets...)
				}
				wm := last.Add(time.Hour + testLateness)
				h.offs.Set(behind(0, first.In(loc), wm), behind(1, first.In(loc), wm))
				if kill {
					deletes := 0
					fw := &faultWriter{Writer: h.lake, fail: func(op, key string) bool {
						if op == "delete" && strings.HasSuffix(key, ".parquet") {
							deletes++
							return deletes == 2
						}
						return false
					}}
					a, _ := h.newFinalizer(fw, h.clock, prometheus.NewRegistry())
					if err := a.check(h.ctx, h.st); !errors.Is(err, errKilled) {
						t.Fatalf("instance A: %v, want it killed", err)
					}
				}
				h.check(wm)
				m := h.success(first.In(loc))
				if len(m.Files) != len(tt.buckets) || len(m.Ranges) != len(tt.buckets) {
					t.Fatalf("marker lists %d files over %d ranges, want one compacted file per bucket (%d)", len(m.Files), len(m.Ranges), len(tt.buckets))
				}
				buckets := map[string]bool{}
				for _, f := range m.Files {
					if f.Sources == nil || f.Hour == "" {
						t.Errorf("entry %+v: want a compacted file with its bucket", f)
					}
					buckets[f.Hour] = true
				}
				if len(buckets) != len(tt.buckets) {
					t.Errorf("compacted files of buckets %v, want one per bucket", buckets)
				}
				if got := h.folderFiles(first.In(loc)); len(got) != len(tt.buckets) {
					t.Errorf("folder holds %v, want only the compacted files", got)
				}
				h.wantRows(h.rows(m), want)
			})
		}
	}
}
