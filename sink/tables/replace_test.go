package tables

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/ledger"
)

// merge writes the rows of inputs (lake files) into one file under key, with
// the footer a compaction writes — stream, hour, records, event time range
// and sources, but no topic, partition or offsets — and prepares it.
func (f *fixture) merge(tb *Table, key string, hour time.Time, inputs ...File) File {
	f.t.Helper()
	var rows []parquet.Row
	var sch *parquet.Schema
	for _, in := range inputs {
		fh, err := os.Open(in.Path())
		if err != nil {
			f.t.Fatal(err)
		}
		r := parquet.NewReader(fh)
		sch = r.Schema()
		buf := make([]parquet.Row, 16)
		for {
			n, err := r.ReadRows(buf)
			for _, row := range buf[:n] {
				rows = append(rows, row.Clone())
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.t.Fatal(err)
			}
		}
		r.Close()
		fh.Close()
	}
	sources, _ := json.Marshal([]map[string]any{{"topic": "clicks", "partition": 0, "first_offset": 0, "last_offset": 1, "records": len(rows)}})
	path := filepath.Join(f.dir, "lake", key)
	out, err := os.Create(path)
	if err != nil {
		f.t.Fatal(err)
	}
	w := parquet.NewWriter(out, sch,
		parquet.KeyValueMetadata(partitioner.MetaStream, "clicks"),
		parquet.KeyValueMetadata(partitioner.MetaHour, hour.Format(time.RFC3339)),
		parquet.KeyValueMetadata(partitioner.MetaRecords, strconv.Itoa(len(rows))),
		parquet.KeyValueMetadata(partitioner.MetaMinEventTime, hour.Format(time.RFC3339Nano)),
		parquet.KeyValueMetadata(partitioner.MetaMaxEventTime, hour.Add(time.Hour-time.Second).Format(time.RFC3339Nano)),
		parquet.KeyValueMetadata("lakesink.sources", string(sources)))
	if _, err := w.WriteRows(rows); err != nil {
		f.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		f.t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		f.t.Fatal(err)
	}
	file, err := tb.Prepare(context.Background(), path, key)
	if err != nil {
		f.t.Fatal(err)
	}
	return file
}

// key is the lake key of a file written by fixture.write.
func key(tb *Table, f File) string { return strings.TrimPrefix(f.Path(), tb.Location("")) }

func keys(tb *Table, files ...File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = key(tb, f)
	}
	return out
}

// dataFiles plans a scan of the table as the catalog has it now: the paths
// of the data files, sorted, and the number of snapshots.
func dataFiles(t *testing.T, tb *Table, opts ...table.ScanOption) ([]string, int) {
	t.Helper()
	ctx := context.Background()
	fresh, err := tb.cat.LoadTable(ctx, tb.ident)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := fresh.Scan(opts...).PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, task := range tasks {
		out = append(out, task.File.FilePath())
	}
	slices.Sort(out)
	return out, len(fresh.Metadata().Snapshots())
}

func paths(files ...File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path()
	}
	slices.Sort(out)
	return out
}

// TestReplace compacts 4 of an hour's 5 files into one: the table switches
// in one snapshot, a second Replace (this process or another) commits
// nothing, and progress and completion work on after it.
func TestReplace(t *testing.T) {
	f := newFixture(t)
	tb := f.open(prometheus.NewRegistry())
	ctx := context.Background()
	a, in := claimFiveFiles(t, f, tb)
	meta := ledger.Meta{V: 1, WM: 9, Done: []ledger.DoneMark{{Hour: hour10.UnixMilli(), To: 50}}}
	if err := tb.Commit(ctx, a, in[:3], 30, ledger.Meta{V: 1}); err != nil {
		t.Fatal(err)
	}
	if err := tb.Commit(ctx, a, in[3:], 50, meta); err != nil {
		t.Fatal(err)
	}

	merged := f.merge(tb, "clicks/2026120110/clicks+compacted-0.parquet", hour10, in[:4]...)
	// The premise: Prepare reads a compacted file, whose footer has no
	// topic, partition or offsets.
	fh, err := os.Open(merged.Path())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := fh.Stat()
	pf, err := parquet.OpenFile(fh, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pf.Lookup(partitioner.MetaTopic); ok {
		t.Fatal("the compacted file has lakesink.topic")
	}
	if v, ok := pf.Lookup("lakesink.sources"); !ok || !strings.Contains(v, `"topic":"clicks"`) {
		t.Fatalf("the compacted file's lakesink.sources: %q", v)
	}
	fh.Close()
	if merged.Records() != 40 || merged.df.Partition()[1000] != in[0].df.Partition()[1000] {
		t.Fatalf("compacted file: %d records, partition %v", merged.Records(), merged.df.Partition())
	}

	_, before := dataFiles(t, tb)
	s1, err := tb.Replace(ctx, keys(tb, in[:4]...), []File{merged})
	if err != nil {
		t.Fatal(err)
	}
	got, n := dataFiles(t, tb)
	if want := paths(merged, in[4]); !slices.Equal(got, want) || n != before+1 {
		t.Fatalf("after Replace: files %v in %d snapshots, want %v in %d", got, n, want, before+1)
	}
	ids := rows(t, tb)
	if len(ids) != 50 {
		t.Errorf("table holds %d ids, want 50", len(ids))
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("id %s %d times", id, c)
		}
	}
	cur := tb.tbl.CurrentSnapshot()
	if cur.SnapshotID != s1 || cur.Summary.Operation != table.OpOverwrite {
		t.Errorf("current snapshot %d %s, want %d overwrite", cur.SnapshotID, cur.Summary.Operation, s1)
	}
	if p := cur.Summary.Properties; p[PropProgress] != "" || p[PropCompleteThrough] != "" || p[PropGroup] != "g" {
		t.Errorf("replace snapshot summary %v: want the group, no progress or completion", p)
	}

	// The same Replace again, here and from another process: nothing new.
	if s, err := tb.Replace(ctx, keys(tb, in[:4]...), []File{merged}); err != nil || s != s1 {
		t.Errorf("Replace again: %d, %v; want %d", s, err, s1)
	}
	tb2 := f.open(prometheus.NewRegistry())
	if s, err := tb2.Replace(ctx, keys(tb, in[:4]...), []File{merged}); err != nil || s != s1 {
		t.Errorf("Replace again in another process: %d, %v; want %d", s, err, s1)
	}
	if _, n := dataFiles(t, tb); n != before+1 {
		t.Errorf("%d snapshots after repeated Replace, want %d", n, before+1)
	}

	// Progress read afresh through the replace snapshot: the owner's
	// commits are not fenced, a new owner's claim gets the last commit's.
	f6 := f.write(tb2, 0, 50, 5, hour10.Add(time.Hour))
	if err := tb2.Commit(ctx, a, []File{f6}, 55, meta); err != nil {
		t.Fatalf("commit by the owner after Replace, in another process: %v", err)
	}
	tb3 := f.open(prometheus.NewRegistry())
	e, found, err := tb3.Claim(ctx, Owner{Topic: "clicks", Partition: 0, Generation: 2, Member: "b"})
	if err != nil || !found || e.Member != "a" || e.Offset != 55 || len(e.Meta.Done) != 1 {
		t.Errorf("claim after Replace: %+v found %v err %v", e, found, err)
	}

	// Completion after the replace: its snapshot references the merged
	// file and none of the inputs.
	sc, err := tb.Complete(ctx, hour10.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = dataFiles(t, tb, table.WithSnapshotID(sc))
	if want := paths(merged, in[4], f6); !slices.Equal(got, want) {
		t.Errorf("completion snapshot %d: files %v, want %v", sc, got, want)
	}
}

// TestReplaceConcurrent runs the same Replace from two processes at once:
// one commits, the other, after its conflict, finds it done.
func TestReplaceConcurrent(t *testing.T) {
	f := newFixture(t)
	t1, t2 := f.open(prometheus.NewRegistry()), f.open(prometheus.NewRegistry())
	ctx := context.Background()
	a := Owner{Topic: "clicks", Partition: 0, Generation: 1, Member: "a"}
	if _, _, err := t1.Claim(ctx, a); err != nil {
		t.Fatal(err)
	}
	in := []File{f.write(t1, 0, 0, 7, hour10), f.write(t1, 0, 7, 7, hour10), f.write(t1, 0, 14, 7, hour10)}
	if err := t1.Commit(ctx, a, in, 21, ledger.Meta{V: 1}); err != nil {
		t.Fatal(err)
	}
	merged := f.merge(t1, "clicks/2026120110/clicks+compacted-0.parquet", hour10, in...)
	_, before := dataFiles(t, t1)
	var wg sync.WaitGroup
	var snaps [2]int64
	var errs [2]error
	for i, tb := range []*Table{t1, t2} {
		wg.Go(func() { snaps[i], errs[i] = tb.Replace(ctx, keys(tb, in...), []File{merged}) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || snaps[0] != snaps[1] {
		t.Fatalf("concurrent Replace: %v, %v; snapshots %d, %d", errs[0], errs[1], snaps[0], snaps[1])
	}
	if got, n := dataFiles(t, t1); !slices.Equal(got, paths(merged)) || n != before+1 {
		t.Errorf("files %v in %d snapshots, want the merged file in %d", got, n, before+1)
	}
	t.Logf("conflicts retried: %v", testutil.ToFloat64(t1.m.Conflicts.WithLabelValues("clicks"))+testutil.ToFloat64(t2.m.Conflicts.WithLabelValues("clicks")))
}

// TestReplaceErrors: a replace that does not fit the table commits
// nothing.
func TestReplaceErrors(t *testing.T) {
	f := newFixture(t)
	tb := f.open(prometheus.NewRegistry())
	ctx := context.Background()
	a := Owner{Topic: "clicks", Partition: 0, Generation: 1, Member: "a"}
	if _, _, err := tb.Claim(ctx, a); err != nil {
		t.Fatal(err)
	}
	fa, fb, fc := f.write(tb, 0, 0, 10, hour10), f.write(tb, 0, 10, 10, hour10), f.write(tb, 0, 20, 10, hour10)
	if err := tb.Commit(ctx, a, []File{fa, fb, fc}, 30, ledger.Meta{V: 1}); err != nil {
		t.Fatal(err)
	}
	never := f.write(tb, 0, 30, 10, hour10) // in the lake, not in the table
	other := f.write(tb, 1, 0, 10, hour10.Add(time.Hour))
	mab := f.merge(tb, "clicks/2026120110/m-ab.parquet", hour10, fa, fb)
	mab2 := f.merge(tb, "clicks/2026120110/m-ab2.parquet", hour10, fa, fb)
	ma := f.merge(tb, "clicks/2026120110/m-a.parquet", hour10, fa)
	mac := f.merge(tb, "clicks/2026120110/m-ac.parquet", hour10, fa, fc)

	for _, c := range []struct {
		name    string
		removed []string
		added   []File
		want    string // in the error
		inconst bool   // ErrReplaceInconsistent
		done    bool   // the replace that succeeds, for the cases after it
	}{
		{name: "nothing to remove", added: []File{mab}, want: "a replace needs both"},
		{name: "nothing to add", removed: keys(tb, fa), want: "a replace needs both"},
		{name: "removed twice", removed: keys(tb, fa, fa), added: []File{ma}, want: "removed twice"},
		{name: "removed and added", removed: keys(tb, fa), added: []File{fa}, want: "removed and added"},
		{name: "unprepared file", removed: keys(tb, fa), added: []File{{}}, want: "not prepared"},
		{name: "a removed file never in the table", removed: keys(tb, fa, never), added: []File{mab}, want: "lacks 1 of the 2 files to remove", inconst: true},
		{name: "an added file already in the table", removed: keys(tb, fa), added: []File{fb}, want: "holds 1 of the 1 files to add", inconst: true},
		{name: "records lost", removed: keys(tb, fa, fb), added: []File{ma}, want: "the removed files hold 20 records, the added files 10"},
		{name: "another hour", removed: keys(tb, fa), added: []File{other}, want: "not in one of the removed files'"},
		{name: "ok", removed: keys(tb, fa, fb), added: []File{mab}, done: true},
		{name: "same inputs, other output", removed: keys(tb, fa, fb), added: []File{mab2}, want: "lacks 2 of the 2 files to remove", inconst: true},
		{name: "some inputs gone", removed: keys(tb, fa, fc), added: []File{mac}, want: "lacks 1 of the 2 files to remove", inconst: true},
		{name: "output in, input still in", removed: keys(tb, fc), added: []File{mab}, want: "holds 1 of the 1 files to add", inconst: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, before := dataFiles(t, tb)
			_, err := tb.Replace(ctx, c.removed, c.added)
			_, after := dataFiles(t, tb)
			if c.done {
				if err != nil || after != before+1 {
					t.Fatalf("Replace: %v, %d snapshots after %d", err, after, before)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, ErrReplaceInconsistent) != c.inconst ||
				!strings.HasPrefix(err.Error(), "replace files of lake.clicks: ") {
				t.Errorf("Replace: %v; want %q (inconsistent %v)", err, c.want, c.inconst)
			}
			if after != before {
				t.Errorf("%d snapshots after a refused Replace, %d before", after, before)
			}
		})
	}
	if got, _ := dataFiles(t, tb); !slices.Equal(got, paths(mab, fc)) {
		t.Errorf("files %v, want %v", got, paths(mab, fc))
	}
}

// claimFiveFiles claims partition clicks/0 for owner "a" and writes five
// files of ten records each into hour10, offsets 0-49: the hour a
// compaction replaces.
func claimFiveFiles(t *testing.T, f *fixture, tb *Table) (Owner, []File) {
	t.Helper()
	a := Owner{Topic: "clicks", Partition: 0, Generation: 1, Member: "a"}
	if _, _, err := tb.Claim(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	var in []File
	for i := range 5 {
		in = append(in, f.write(tb, 0, int64(10*i), 10, hour10))
	}
	return a, in
}
