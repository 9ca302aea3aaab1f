package partitioner

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// compactRow is row i of input p: allTypesRow with an id unique per input
// and an i32 that is not in input order, for sorting.
func compactRow(p, i int) Row {
	r := allTypesRow(i)
	r[10] = parquet.ByteArrayValue([]byte(fmt.Sprintf("p%d-%06d", p, i)))
	if !r[1].IsNull() {
		r[1] = parquet.Int32Value(int32((i*7919+p*31)%1000 - 500))
	}
	return r
}

// inputSpec describes an input file for the compaction tests.
type inputSpec struct {
	topic     string
	partition int
	first     int64
	rows      int
	cols      []Column // default allTypes
	hour      time.Time
	stream    string
	extra     map[string]string
	opts      FileOptions
	eventBase time.Time // event time of row 0; row i is i seconds later
}

// writeInput writes spec's file with a FileWriter into dir and opens it as
// a CompactInput. Offsets go up by 2 (a partition's offsets have gaps).
func writeInput(t testing.TB, dir string, spec inputSpec) CompactInput {
	t.Helper()
	cols := spec.cols
	if cols == nil {
		cols = allTypes
	}
	s := mustSchema(t, cols)
	hour := spec.hour
	if hour.IsZero() {
		hour = hour13
	}
	et := spec.eventBase
	if et.IsZero() {
		et = hour.Add(time.Duration(spec.partition) * time.Minute)
	}
	path := filepath.Join(dir, FileName(spec.topic, spec.partition, spec.first))
	w, err := NewFileWriter(path, s, spec.opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range spec.rows {
		row := compactRow(spec.partition, int(spec.first)+i)
		if len(cols) != len(allTypes) {
			row = row[:len(cols)]
		}
		if err := w.Append(row, spec.first+2*int64(i), et.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	stream := cmp.Or(spec.stream, "clickstream")
	if _, err := w.Finish(FileMeta{Stream: stream, Topic: spec.topic, Partition: spec.partition, Hour: hour, Extra: spec.extra}); err != nil {
		t.Fatal(err)
	}
	return openInput(t, path)
}

// openInput opens the file at path as a CompactInput, closed at the end of
// the test.
func openInput(t testing.TB, path string) CompactInput {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	info, meta, err := ReadFileInfo(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return CompactInput{Key: filepath.Base(path), R: f, Size: st.Size(), Info: info, Meta: meta}
}

// rowKey is a row's identity for multiset comparisons.
func rowKey(r Row) string {
	var b strings.Builder
	for _, v := range r {
		if v.IsNull() {
			b.WriteString("null|")
			continue
		}
		fmt.Fprintf(&b, "%v:%v|", v.Kind(), v)
	}
	return b.String()
}

func multiset(rows []Row) map[string]int {
	m := map[string]int{}
	for _, r := range rows {
		m[rowKey(r)]++
	}
	return m
}

// inputRows reads back the rows of every input.
func inputRows(t testing.TB, in []CompactInput) []Row {
	t.Helper()
	s := mustSchema(t, allTypes)
	var rows []Row
	for _, x := range in {
		_, r := readBackAt(t, x.R, x.Size, s)
		rows = append(rows, r...)
	}
	return rows
}

// readBackAt is readBack for an io.ReaderAt.
func readBackAt(t testing.TB, r io.ReaderAt, size int64, s *Schema) (*parquet.File, []Row) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.parquet")
	b := make([]byte, size)
	if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return readBack(t, path, s)
}

// unsortedAt returns the first row out of order by i32 (nulls first), then
// by id (byID) or else by position in the input (pos, by id): the sort is
// stable. -1 if none.
func unsortedAt(rows []Row, byID bool, pos map[string]int) int {
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1], rows[i]
		c := 0
		switch an, bn := a[1].IsNull(), b[1].IsNull(); {
		case an && !bn:
			c = -1
		case !an && bn:
			c = 1
		case !an && !bn:
			c = int(a[1].Int32()) - int(b[1].Int32())
		}
		if c == 0 {
			if byID {
				c = bytes.Compare(a[10].ByteArray(), b[10].ByteArray())
			} else {
				c = pos[string(a[10].ByteArray())] - pos[string(b[10].ByteArray())]
			}
		}
		if c > 0 {
			return i
		}
	}
	return -1
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// standardInputs are four inputs of three partitions, one of a single row,
// with event times that make the second input hold the minimum and the
// fourth the maximum.
func standardInputs(t testing.TB, dir string) []CompactInput {
	return []CompactInput{
		writeInput(t, dir, inputSpec{topic: "clicks", partition: 0, first: 100, rows: 300, eventBase: hour13.Add(10 * time.Minute)}),
		writeInput(t, dir, inputSpec{topic: "clicks", partition: 1, first: 0, rows: 500, eventBase: hour13.Add(time.Minute)}),
		writeInput(t, dir, inputSpec{topic: "clicks", partition: 2, first: 7, rows: 1, eventBase: hour13.Add(20 * time.Minute)}),
		writeInput(t, dir, inputSpec{topic: "clicks", partition: 0, first: 700, rows: 250, eventBase: hour13.Add(50 * time.Minute)}),
	}
}

func sourcesOf(in []CompactInput) []Source {
	var s []Source
	for _, x := range in {
		if x.Meta.Sources != nil {
			s = append(s, x.Meta.Sources...)
			continue
		}
		s = append(s, Source{Topic: x.Meta.Topic, Partition: x.Meta.Partition,
			FirstOffset: x.Info.FirstOffset, LastOffset: x.Info.LastOffset, Records: x.Info.Records})
	}
	return s
}

// checkCompacted checks the output of compacting in: footer, rows, schema.
func checkCompacted(t *testing.T, in []CompactInput, path string, info FileInfo, meta FileMeta) []Row {
	t.Helper()
	var records int64
	minT, maxT := in[0].Info.MinEventTime, in[0].Info.MaxEventTime
	for _, x := range in {
		records += x.Info.Records
		if x.Info.MinEventTime.Before(minT) {
			minT = x.Info.MinEventTime
		}
		if x.Info.MaxEventTime.After(maxT) {
			maxT = x.Info.MaxEventTime
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Path != path || info.Records != records || info.Bytes != st.Size() || info.FirstOffset != 0 || info.LastOffset != 0 ||
		!info.MinEventTime.Equal(minT) || !info.MaxEventTime.Equal(maxT) {
		t.Errorf("info = %+v, want %d records, events %v..%v, offsets 0", info, records, minT, maxT)
	}
	if want := sourcesOf(in); !slices.Equal(meta.Sources, want) {
		t.Errorf("sources = %+v, want %+v", meta.Sources, want)
	}
	if meta.Stream != in[0].Meta.Stream || !meta.Hour.Equal(in[0].Meta.Hour) || meta.Topic != "" || meta.Partition != 0 {
		t.Errorf("meta = %+v", meta)
	}
	if meta.SchemaKey != in[0].Meta.SchemaKey || CompatKey(meta) != CompatKey(in[0].Meta) {
		t.Errorf("output schema key %s, compat key %s; inputs' %s, %s", meta.SchemaKey, CompatKey(meta), in[0].Meta.SchemaKey, CompatKey(in[0].Meta))
	}
	if _, ok := meta.Extra[MetaFileGroup]; ok {
		t.Errorf("output has %s", MetaFileGroup)
	}
	_, got := readBack(t, path, mustSchema(t, allTypes))
	want := inputRows(t, in)
	if len(got) != len(want) {
		t.Fatalf("read %d rows, want %d", len(got), len(want))
	}
	gm, wm := multiset(got), multiset(want)
	for k, n := range wm {
		if gm[k] != n {
			t.Fatalf("row %s: %d in the output, %d in the inputs", k, gm[k], n)
		}
	}
	return got
}

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	in := standardInputs(t, dir)
	inputRowGroups := 0
	for _, x := range in {
		pf, err := parquet.OpenFile(x.R, x.Size)
		if err != nil {
			t.Fatal(err)
		}
		inputRowGroups += len(pf.RowGroups())
	}
	tests := []struct {
		name       string
		opts       CompactOptions
		rowGroups  int // 0: more than one
		copied     int
		minRuns    int
		sorted     int // SortBy: 1 i32, 2 i32 and id
		codec      format.CompressionCodec
		sameAs     string // the output must be byte-identical to that case's
		verbatimRG bool   // row groups are the inputs' bytes
	}{
		{name: "reencode", rowGroups: 1, codec: format.Zstd},
		{name: "reencode small row groups", opts: CompactOptions{File: FileOptions{RowGroupBytes: 16 << 10}}, codec: format.Zstd},
		{name: "reencode tiny page memory", opts: CompactOptions{File: FileOptions{PageMemoryBytes: 1 << 10}}, rowGroups: 1, codec: format.Zstd, sameAs: "reencode"},
		{name: "copy", opts: CompactOptions{CopyRowGroupBytes: 1}, rowGroups: inputRowGroups, copied: inputRowGroups, codec: format.Zstd, verbatimRG: true},
		{name: "copy other codec", opts: CompactOptions{CopyRowGroupBytes: 1, File: FileOptions{Compression: "snappy"}}, rowGroups: inputRowGroups, copied: inputRowGroups, codec: format.Snappy},
		{name: "snappy", opts: CompactOptions{File: FileOptions{Compression: "snappy"}}, rowGroups: 1, codec: format.Snappy},
		{name: "sorted", opts: CompactOptions{SortBy: []string{"i32", "id"}}, rowGroups: 1, sorted: 2, codec: format.Zstd},
		{name: "sorted spilled", opts: CompactOptions{SortBy: []string{"i32", "id"}, MemoryLimit: 64 << 10}, rowGroups: 1, sorted: 2, minRuns: 3, codec: format.Zstd, sameAs: "sorted"},
		{name: "sorted spilled small row groups", opts: CompactOptions{SortBy: []string{"i32", "id"}, MemoryLimit: 64 << 10, File: FileOptions{RowGroupBytes: 16 << 10}}, sorted: 2, minRuns: 3, codec: format.Zstd},
		// Ties (a third of the rows have a null i32) keep the input order,
		// however the rows were split into runs.
		{name: "sorted with ties", opts: CompactOptions{SortBy: []string{"i32"}}, rowGroups: 1, sorted: 1, codec: format.Zstd},
		{name: "sorted with ties spilled", opts: CompactOptions{SortBy: []string{"i32"}, MemoryLimit: 64 << 10}, rowGroups: 1, sorted: 1, minRuns: 3, codec: format.Zstd, sameAs: "sorted with ties"},
	}
	pos := map[string]int{}
	for i, r := range inputRows(t, in) {
		pos[string(r[10].ByteArray())] = i
	}
	outputs := map[string][]byte{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spool := t.TempDir()
			o := tt.opts
			o.Stream, o.Hour, o.SpoolDir = "clickstream", hour13, spool
			path, info, meta, st, err := compact(context.Background(), in, o)
			if err != nil {
				t.Fatal(err)
			}
			if names := dirNames(t, spool); len(names) != 1 || names[0] != filepath.Base(path) {
				t.Errorf("spool dir holds %v, want only %s", names, filepath.Base(path))
			}
			rows := checkCompacted(t, in, path, info, meta)
			if tt.sorted > 0 {
				if i := unsortedAt(rows, tt.sorted == 2, pos); i >= 0 {
					t.Errorf("row %d is out of order: %v after %v", i, rows[i], rows[i-1])
				}
			}
			if (tt.rowGroups > 0 && st.rowGroups != tt.rowGroups) || (tt.rowGroups == 0 && st.rowGroups < 2) ||
				st.copiedRowGroups != tt.copied || st.runs < tt.minRuns || (tt.minRuns == 0 && st.runs != 0) {
				t.Errorf("stats %+v; want %d row groups (0: several), %d copied, >= %d runs", st, tt.rowGroups, tt.copied, tt.minRuns)
			}
			if tt.minRuns > 0 && st.mergePasses == 0 {
				t.Errorf("stats %+v: no merge pass with a tiny memory limit", st)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			md := pf.Metadata()
			if len(md.RowGroups) != st.rowGroups {
				t.Errorf("file has %d row groups, stats say %d", len(md.RowGroups), st.rowGroups)
			}
			for i, rg := range md.RowGroups {
				for _, col := range rg.Columns {
					if col.MetaData.Codec != tt.codec {
						t.Fatalf("row group %d column %v has codec %v, want %v", i, col.MetaData.PathInSchema, col.MetaData.Codec, tt.codec)
					}
				}
				wantSorting := tt.sorted
				if len(rg.SortingColumns) != wantSorting || (wantSorting > 0 && (!rg.SortingColumns[0].NullsFirst || rg.SortingColumns[0].Descending)) {
					t.Errorf("row group %d sorting columns %+v, want %d ascending nulls first", i, rg.SortingColumns, wantSorting)
				}
			}
			if tt.verbatimRG {
				var want []int64
				for _, x := range in {
					ipf, _ := parquet.OpenFile(x.R, x.Size)
					for _, rg := range ipf.Metadata().RowGroups {
						want = append(want, chunkBytes(rg))
					}
				}
				var got []int64
				for _, rg := range md.RowGroups {
					got = append(got, chunkBytes(rg))
				}
				if !slices.Equal(got, want) {
					t.Errorf("row group chunk bytes %v, inputs' %v: not copied verbatim", got, want)
				}
			}
			// Same inputs, same options: the same bytes.
			path2, _, _, err := Compact(context.Background(), in, o)
			if err != nil {
				t.Fatal(err)
			}
			data2, err := os.ReadFile(path2)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, data2) {
				t.Errorf("two compactions of the same inputs differ")
			}
			outputs[tt.name] = data
			if tt.sameAs != "" && !bytes.Equal(data, outputs[tt.sameAs]) {
				t.Errorf("output differs from %q's", tt.sameAs)
			}
		})
	}
}

func TestCompactCarriesSources(t *testing.T) {
	dir := t.TempDir()
	spool := t.TempDir()
	in := standardInputs(t, dir)
	in[0] = writeInput(t, dir, inputSpec{topic: "clicks", partition: 0, first: 100, rows: 300,
		extra: merge(FormatSchemaIDs([]int{7}), FormatFileGroup([]int64{100, 150}))})
	in[1] = writeInput(t, dir, inputSpec{topic: "clicks", partition: 1, first: 0, rows: 500, extra: FormatSchemaIDs([]int{9, 7})})
	o := CompactOptions{Stream: "clickstream", Hour: hour13, SpoolDir: spool}
	pathA, _, metaA, err := Compact(context.Background(), in[:2], o)
	if err != nil {
		t.Fatal(err)
	}
	if got := metaA.Extra[MetaSchemaIDs]; got != "7,9" || metaA.Extra[MetaSchemaID] != "" {
		t.Errorf("schema ids %q (single %q), want 7,9", got, metaA.Extra[MetaSchemaID])
	}
	a := openInput(t, pathA)
	if a.Meta.Sources == nil || a.Info.FirstOffset != 0 {
		t.Fatalf("compacted input read as %+v %+v", a.Info, a.Meta)
	}
	// A compacted input between plain ones, sorted and not.
	mixed := []CompactInput{in[2], a, in[3]}
	for _, sortBy := range [][]string{nil, {"id"}} {
		o.SortBy = sortBy
		path, info, meta, err := Compact(context.Background(), mixed, o)
		if err != nil {
			t.Fatal(err)
		}
		checkCompacted(t, mixed, path, info, meta)
		if len(meta.Sources) != 4 || meta.Sources[1].Partition != 0 || meta.Sources[2].Partition != 1 {
			t.Errorf("sources %+v: want in[2], in[0], in[1], in[3]'s", meta.Sources)
		}
		if got := meta.Extra[MetaSchemaIDs]; got != "7,9" {
			t.Errorf("schema ids %q, want the compacted input's 7,9", got)
		}
	}
	// A single registry id gives the single-id key too.
	one := []CompactInput{
		writeInput(t, t.TempDir(), inputSpec{topic: "t", partition: 0, rows: 5, extra: FormatSchemaIDs([]int{7})}),
		writeInput(t, t.TempDir(), inputSpec{topic: "t", partition: 1, rows: 5, extra: FormatSchemaIDs([]int{7})}),
	}
	_, _, meta, err := Compact(context.Background(), one, CompactOptions{Stream: "clickstream", Hour: hour13, SpoolDir: spool})
	if err != nil {
		t.Fatal(err)
	}
	if meta.Extra[MetaSchemaIDs] != "7" || meta.Extra[MetaSchemaID] != "7" {
		t.Errorf("extra %v, want schema id 7", meta.Extra)
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestCompactInferredSchema(t *testing.T) {
	inferred := map[string]string{MetaInferredSchema: `[{"name":"s","type":"string"}]`, MetaSchemaFingerprint: "sha256:ab"}
	dir := t.TempDir()
	in := []CompactInput{
		writeInput(t, dir, inputSpec{topic: "t", partition: 0, rows: 5, extra: inferred}),
		writeInput(t, dir, inputSpec{topic: "t", partition: 1, rows: 5, extra: inferred}),
	}
	if CompatKey(in[0].Meta) != CompatKey(in[1].Meta) {
		t.Fatal("equal inferred schemas give different compat keys")
	}
	_, _, meta, err := Compact(context.Background(), in, CompactOptions{Stream: "clickstream", Hour: hour13, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range inferred {
		if meta.Extra[k] != v {
			t.Errorf("%s = %q, want %q", k, meta.Extra[k], v)
		}
	}
}

func TestCompatKey(t *testing.T) {
	dir := t.TempDir()
	base := writeInput(t, dir, inputSpec{topic: "t", partition: 0, rows: 3})
	same := writeInput(t, dir, inputSpec{topic: "u", partition: 9, first: 50, rows: 30, opts: FileOptions{Compression: "snappy"},
		extra: FormatSchemaIDs([]int{4})})
	other := writeInput(t, dir, inputSpec{topic: "t", partition: 1, rows: 3, cols: allTypes[:11]})
	inferred := writeInput(t, dir, inputSpec{topic: "t", partition: 2, rows: 3, extra: map[string]string{MetaInferredSchema: "[]"}})
	fp := writeInput(t, dir, inputSpec{topic: "t", partition: 3, rows: 3, extra: map[string]string{MetaSchemaFingerprint: "[]"}})
	if base.Meta.SchemaKey == "" || base.Meta.SchemaKey != same.Meta.SchemaKey || base.Meta.SchemaKey == other.Meta.SchemaKey {
		t.Errorf("schema keys %q %q %q: want the first two equal and the third different", base.Meta.SchemaKey, same.Meta.SchemaKey, other.Meta.SchemaKey)
	}
	keys := map[string]string{}
	for name, m := range map[string]FileMeta{"base": base.Meta, "other schema": other.Meta, "inferred": inferred.Meta, "fingerprint": fp.Meta} {
		k := CompatKey(m)
		if prev, dup := keys[k]; dup {
			t.Errorf("%s and %s have the same compat key", name, prev)
		}
		keys[k] = name
	}
	if CompatKey(base.Meta) != CompatKey(same.Meta) {
		t.Error("compat key depends on more than the schemas")
	}
}

func TestCompactRefuses(t *testing.T) {
	dir := t.TempDir()
	in := standardInputs(t, dir)
	otherHour := writeInput(t, dir, inputSpec{topic: "clicks", partition: 5, rows: 3, hour: hour13.Add(time.Hour)})
	otherStream := writeInput(t, dir, inputSpec{topic: "clicks", partition: 6, rows: 3, stream: "other"})
	otherSchema := writeInput(t, dir, inputSpec{topic: "clicks", partition: 7, rows: 3, cols: allTypes[:11]})
	unkeyed := otherSchema
	unkeyed.Meta.SchemaKey = ""
	inferred := writeInput(t, dir, inputSpec{topic: "clicks", partition: 8, rows: 3, extra: map[string]string{MetaInferredSchema: "[]"}})
	wrongCount := in[1]
	wrongCount.Info.Records--
	wrongCount.Meta.Sources = []Source{{Topic: "clicks", Partition: 1, FirstOffset: 0, LastOffset: 998, Records: wrongCount.Info.Records}}
	badSource := in[1]
	badSource.Meta.Topic = ""
	tests := []struct {
		name string
		in   []CompactInput
		opts CompactOptions
		want string
	}{
		{"no inputs", nil, CompactOptions{}, "no inputs"},
		{"other bucket", []CompactInput{in[0], otherHour}, CompactOptions{}, "bucket"},
		{"other stream", []CompactInput{in[0], otherStream}, CompactOptions{}, "stream"},
		{"other schema", []CompactInput{in[0], otherSchema}, CompactOptions{}, "parquet schema differs"},
		{"other schema found on open", []CompactInput{in[0], in[1], unkeyed}, CompactOptions{}, "parquet schema differs"},
		{"other inferred schema", []CompactInput{in[0], inferred}, CompactOptions{}, MetaInferredSchema},
		{"duplicate source", []CompactInput{in[0], in[1], in[0]}, CompactOptions{}, "from offset 100"},
		{"row count", []CompactInput{in[0], wrongCount}, CompactOptions{}, "records"},
		{"bad source", []CompactInput{in[0], badSource}, CompactOptions{}, "empty topic"},
		{"unknown sort column", in, CompactOptions{SortBy: []string{"i32", "nope.x"}}, `"nope.x"`},
		{"bad compression", in, CompactOptions{File: FileOptions{Compression: "lz5"}}, "lz5"},
		{"no hour", in, CompactOptions{Hour: time.Time{}}, "hour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spool := t.TempDir()
			o := tt.opts
			o.Stream, o.SpoolDir = "clickstream", spool
			if tt.name != "no hour" {
				o.Hour = hour13
			}
			path, _, _, err := Compact(context.Background(), tt.in, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compact = %q, %v; want an error with %q", path, err, tt.want)
			}
			if path != "" {
				t.Errorf("path %q on error", path)
			}
			if names := dirNames(t, spool); len(names) > 0 {
				t.Errorf("spool dir holds %v after an error", names)
			}
		})
	}
}

// hookReaderAt calls hook before its first read.
type hookReaderAt struct {
	r    io.ReaderAt
	once sync.Once
	hook func()
}

func (h *hookReaderAt) ReadAt(p []byte, off int64) (int, error) {
	h.once.Do(h.hook)
	return h.r.ReadAt(p, off)
}

func TestCompactCancel(t *testing.T) {
	dir := t.TempDir()
	in := standardInputs(t, dir)
	for _, tt := range []struct {
		name string
		at   int // input whose first read cancels; -1: cancelled before
		opts CompactOptions
	}{
		{"before", -1, CompactOptions{}},
		{"copying", 3, CompactOptions{}},
		{"sorting runs", 3, CompactOptions{SortBy: []string{"i32"}, MemoryLimit: 64 << 10}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spool := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			in := slices.Clone(in)
			if tt.at < 0 {
				cancel()
			} else {
				in[tt.at].R = &hookReaderAt{r: in[tt.at].R, hook: cancel}
			}
			o := tt.opts
			o.Stream, o.Hour, o.SpoolDir = "clickstream", hour13, spool
			path, _, _, st, err := compact(ctx, in, o)
			if !errors.Is(err, context.Canceled) || path != "" {
				t.Fatalf("compact = %q, %v; want context.Canceled", path, err)
			}
			// The sort runs are unnamed files: nothing of them can be
			// in the directory, only a leftover output could.
			_ = st
			if names := dirNames(t, spool); len(names) > 0 {
				t.Errorf("spool dir holds %v after cancelling", names)
			}
		})
	}
}

// orderReaderAt records which input each read was of.
type orderReaderAt struct {
	r     io.ReaderAt
	i     int
	log   *[]int
	first func(i int)
}

func (o *orderReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if n := len(*o.log); n == 0 || (*o.log)[n-1] != o.i {
		*o.log = append(*o.log, o.i)
		if o.first != nil {
			o.first(o.i)
		}
	}
	return o.r.ReadAt(p, off)
}

// TestCompactMemory merges 200 inputs and checks that they are read one
// after the other and that the live heap does not grow with the inputs
// merged: all their rows held at once would take several times the bound.
func TestCompactMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 files")
	}
	dir := t.TempDir()
	s := mustSchema(t, clickstreamCols)
	const files, rows = 200, 500
	var g clickGen
	in := make([]CompactInput, files)
	var plain int64
	for p := range files {
		path := filepath.Join(dir, FileName("clicks", p, 0))
		w, err := NewFileWriter(path, s, FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			row := g.next(p*rows + i)
			for _, v := range row {
				if !v.IsNull() {
					_, n := plainSize(v.Kind(), v)
					plain += n
				}
			}
			if err := w.Append(row, int64(i), hour13); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Finish(FileMeta{Stream: "clickstream", Topic: "clicks", Partition: p, Hour: hour13}); err != nil {
			t.Fatal(err)
		}
		in[p] = openInput(t, path)
	}
	var order []int
	var heap []uint64
	for i := range in {
		in[i].R = &orderReaderAt{r: in[i].R, i: i, log: &order, first: func(i int) {
			if i%20 == 0 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				heap = append(heap, ms.HeapAlloc)
			}
		}}
	}
	const limit = 8 << 20
	path, info, _, err := Compact(context.Background(), in, CompactOptions{Stream: "clickstream", Hour: hour13, SpoolDir: t.TempDir(), MemoryLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	if info.Records != files*rows {
		t.Fatalf("%d records, want %d", info.Records, files*rows)
	}
	if want := slices.Sorted(slices.Values(order)); !slices.Equal(order, want) || len(order) != files {
		t.Errorf("inputs read in the order %v, want each once, in order", order)
	}
	// Rows held in memory cost at least their plain size plus a
	// parquet.Value per column.
	held := plain + files*rows*int64(len(clickstreamCols))*valueSize
	const bound = limit
	for i, h := range heap {
		if grew := int64(h) - int64(heap[0]); grew > bound {
			t.Errorf("live heap at input %d is %d MiB above input 0's (bound %d MiB; all rows: %d MiB)", i*20, grew>>20, bound>>20, held>>20)
		}
	}
	if held < 3*bound {
		t.Errorf("the rows (%d MiB) are too few for the bound to mean anything", held>>20)
	}
	t.Logf("live heap at every 20th input (MiB): %v; all rows would hold %d MiB; output %s", func() []uint64 {
		out := make([]uint64, len(heap))
		for i, h := range heap {
			out[i] = h >> 20
		}
		return out
	}(), held>>20, path)
}

func TestPlanCompaction(t *testing.T) {
	h := hour13
	kolkata := time.FixedZone("IST", 5*3600+1800)
	c := func(bytes int64, group string) CompactCandidate {
		return CompactCandidate{Bytes: bytes, Hour: h, Group: group}
	}
	tests := []struct {
		name     string
		files    []CompactCandidate
		target   int64
		minFiles int
		want     [][]int
	}{
		{"small and near-target", []CompactCandidate{c(10, ""), c(60, ""), c(20, ""), c(49, "")}, 100, 2, [][]int{{0, 2, 3}}},
		{"half the target is not small", []CompactCandidate{c(50, ""), c(50, ""), c(10, "")}, 100, 2, nil},
		{"minFiles not reached", []CompactCandidate{c(10, ""), c(60, ""), c(20, ""), c(49, "")}, 100, 4, nil},
		{"minFiles reached", []CompactCandidate{c(10, ""), c(20, ""), c(30, "")}, 100, 3, [][]int{{0, 1, 2}}},
		{"minFiles below 2", []CompactCandidate{c(10, "")}, 100, 0, nil},
		{"groups never mix", []CompactCandidate{c(10, "a"), c(10, "b"), c(10, "a"), c(10, "b"), c(10, "c")}, 100, 2, [][]int{{0, 2}, {1, 3}}},
		{"hours never mix", []CompactCandidate{c(10, ""), {Bytes: 10, Hour: h.Add(time.Hour)}, c(10, ""), {Bytes: 10, Hour: h.Add(time.Hour)}}, 100, 2, [][]int{{0, 2}, {1, 3}}},
		{"an hour is an instant", []CompactCandidate{c(10, ""), {Bytes: 10, Hour: h.In(kolkata)}}, 100, 2, [][]int{{0, 1}}},
		{"bins up to the target", []CompactCandidate{c(40, ""), c(40, ""), c(40, ""), c(40, ""), c(40, ""), c(40, "")}, 100, 2, [][]int{{0, 1}, {2, 3}, {4, 5}}},
		{"exactly the target", []CompactCandidate{c(30, ""), c(30, ""), c(40, ""), c(1, "")}, 100, 2, [][]int{{0, 1, 2}}},
		{"single-file bins dropped", []CompactCandidate{c(45, ""), c(45, ""), c(45, "")}, 100, 2, [][]int{{0, 1}}},
		{"order kept around big files", []CompactCandidate{c(10, ""), c(80, ""), c(10, ""), c(90, ""), c(10, "")}, 100, 2, [][]int{{0, 2, 4}}},
		{"no target", []CompactCandidate{c(10, ""), c(10, "")}, 0, 2, nil},
		{"no files", nil, 100, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PlanCompaction(tt.files, tt.target, tt.minFiles)
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("PlanCompaction = %v, want %v", got, tt.want)
			}
			if again := PlanCompaction(tt.files, tt.target, tt.minFiles); !slices.EqualFunc(got, again, slices.Equal) {
				t.Errorf("PlanCompaction not deterministic: %v, then %v", got, again)
			}
		})
	}
}

// nestedRec is a record of a schema with a nested optional group, written
// by parquet-go directly (lakesink's own schemas are flat). Fields are in
// name order, as parquet.Group orders them.
type nestedRec struct {
	A   string `parquet:"a"`
	Dev *struct {
		ID    *string `parquet:"id,optional"`
		Model string  `parquet:"model"`
	} `parquet:"dev,optional"`
	N int64 `parquet:"n"`
}

func writeNested(t *testing.T, dir string, partition int, recs []nestedRec) CompactInput {
	t.Helper()
	path := filepath.Join(dir, FileName("nested", partition, 0))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[nestedRec](f, parquet.Compression(&parquet.Zstd))
	if _, err := w.Write(recs); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		MetaStream: "clickstream", MetaTopic: "nested", MetaPartition: strconv.Itoa(partition),
		MetaFirstOffset: "0", MetaLastOffset: strconv.Itoa(len(recs) - 1), MetaRecords: strconv.Itoa(len(recs)),
		MetaMinEventTime: "2026-11-25T13:00:00Z", MetaMaxEventTime: "2026-11-25T13:10:00Z", MetaHour: "2026-11-25T13:00:00Z",
	} {
		w.SetKeyValueMetadata(k, v)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return openInput(t, path)
}

// TestCompactSortByPaths sorts by a column of a nested group ("dev.id") and
// by a top-level column whose name has a dot ("device.id"), and checks that
// field ids and MillisAsMicros columns come through the schema rebuild.
func TestCompactSortByPaths(t *testing.T) {
	t.Run("nested", func(t *testing.T) {
		dir := t.TempDir()
		var in []CompactInput
		var want []string
		key := func(r nestedRec) string {
			id := "<null>"
			if r.Dev != nil && r.Dev.ID != nil {
				id = *r.Dev.ID
			}
			return id + "/" + r.A
		}
		for p := range 3 {
			var recs []nestedRec
			for i := range 40 {
				r := nestedRec{A: fmt.Sprintf("a%d-%02d", p, i), N: int64(i)}
				if i%5 != 0 {
					r.Dev = &struct {
						ID    *string `parquet:"id,optional"`
						Model string  `parquet:"model"`
					}{Model: "m"}
					if i%3 != 0 {
						id := fmt.Sprintf("d%02d", (i*7+p)%13)
						r.Dev.ID = &id
					}
				}
				recs = append(recs, r)
				want = append(want, key(r))
			}
			in = append(in, writeNested(t, dir, p, recs))
		}
		path, _, _, err := Compact(context.Background(), in, CompactOptions{Stream: "clickstream", Hour: hour13, SpoolDir: t.TempDir(),
			SortBy: []string{"dev.id", "a"}, MemoryLimit: 32 << 10})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r := parquet.NewGenericReader[nestedRec](f)
		got := make([]nestedRec, 200)
		n, err := r.Read(got)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		var keys []string
		for _, g := range got[:n] {
			keys = append(keys, key(g))
		}
		nullsFirst := func(a, b string) int {
			an, bn := strings.HasPrefix(a, "<null>/"), strings.HasPrefix(b, "<null>/")
			if an != bn {
				if an {
					return -1
				}
				return 1
			}
			return strings.Compare(a, b)
		}
		slices.SortFunc(want, nullsFirst)
		if !slices.Equal(keys, want) {
			t.Errorf("rows by dev.id, a:\n got %v\nwant %v", keys, want)
		}
	})
	t.Run("dotted name", func(t *testing.T) {
		cols := []Column{
			{Name: "device", Type: TypeString, FieldID: 1},
			{Name: "device.id", Type: TypeString, FieldID: 2},
			{Name: "n", Type: TypeInt64, Required: true, FieldID: 3},
			{Name: "ts", Type: TypeTimestampMillis, MillisAsMicros: true, FieldID: 4},
		}
		s := mustSchema(t, cols)
		dir := t.TempDir()
		var in []CompactInput
		for p := range 2 {
			path := filepath.Join(dir, FileName("t", p, 0))
			w, err := NewFileWriter(path, s, FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				row := Row{parquet.ByteArrayValue([]byte("z")), parquet.ByteArrayValue([]byte(fmt.Sprintf("%02d", (i*17+p)%50))),
					parquet.Int64Value(int64(p*100 + i)), parquet.Int64Value(1795611600000 + int64(i))}
				if err := w.Append(row, int64(i), hour13); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.Finish(FileMeta{Stream: "clickstream", Topic: "t", Partition: p, Hour: hour13}); err != nil {
				t.Fatal(err)
			}
			in = append(in, openInput(t, path))
		}
		path, _, meta, err := Compact(context.Background(), in, CompactOptions{Stream: "clickstream", Hour: hour13, SpoolDir: t.TempDir(),
			SortBy: []string{"device.id"}})
		if err != nil {
			t.Fatal(err)
		}
		if meta.SchemaKey != in[0].Meta.SchemaKey {
			t.Errorf("schema with field ids and micros rewritten differently")
		}
		_, rows := readBack(t, path, s)
		if len(rows) != 100 {
			t.Fatalf("%d rows, want 100", len(rows))
		}
		for i := 1; i < len(rows); i++ {
			if bytes.Compare(rows[i-1][1].ByteArray(), rows[i][1].ByteArray()) > 0 {
				t.Fatalf("row %d: device.id %s after %s", i, rows[i][1], rows[i-1][1])
			}
		}
		if ts := rows[0][3].Int64(); ts < 1795611600000000 {
			t.Errorf("ts %d: micros lost", ts)
		}
	})
}
