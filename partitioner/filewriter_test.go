package partitioner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// allTypes has one optional column of every type, plus required ones.
var allTypes = []Column{
	{Name: "s", Type: TypeString},
	{Name: "i32", Type: TypeInt32},
	{Name: "i64", Type: TypeInt64},
	{Name: "d", Type: TypeDouble},
	{Name: "f", Type: TypeFloat},
	{Name: "b", Type: TypeBool},
	{Name: "ts_ms", Type: TypeTimestampMillis},
	{Name: "ts_us", Type: TypeTimestampMicros},
	{Name: "day", Type: TypeDate},
	{Name: "j", Type: TypeJSON},
	{Name: "id", Type: TypeString, Required: true},
	{Name: "at", Type: TypeTimestampMillis, Required: true},
}

// allTypesRow makes row i of allTypes; every 3rd row has its optional
// columns null.
func allTypesRow(i int) Row {
	id := parquet.ByteArrayValue([]byte(fmt.Sprintf("id-%06d", i)))
	at := parquet.Int64Value(1795611600000 + int64(i))
	if i%3 == 2 {
		r := make(Row, len(allTypes))
		r[10], r[11] = id, at
		return r
	}
	return Row{
		parquet.ByteArrayValue([]byte(fmt.Sprintf("str-%d-%s", i, strings.Repeat("x", i%17)))),
		parquet.Int32Value(int32(-i)),
		parquet.Int64Value(int64(i) << 33),
		parquet.DoubleValue(float64(i) / 7),
		parquet.FloatValue(float32(i) * 1.5),
		parquet.BooleanValue(i%2 == 0),
		parquet.Int64Value(1795611600000 + int64(i)*1000),
		parquet.Int64Value(1795611600000000 + int64(i)),
		parquet.Int32Value(int32(20417 + i%30)),
		parquet.ByteArrayValue([]byte(fmt.Sprintf(`{"k":%d}`, i))),
		id, at,
	}
}

// readBack reads every row of the file at path with parquet-go's generic
// reader and returns them in config column order. It finds each column by
// name in the file's own schema, not through s, so a round trip also checks
// that Append put every value under its column's name.
func readBack(t testing.TB, path string, s *Schema) (*parquet.File, []Row) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("open parquet %s: %v", path, err)
	}
	leaf := make([]int, len(s.cols))
	for i, c := range s.cols {
		l, ok := pf.Schema().Lookup(c.Name)
		if !ok {
			t.Fatalf("column %q not in the file's schema", c.Name)
		}
		leaf[i] = l.ColumnIndex
	}
	r := parquet.NewReader(pf)
	defer r.Close()
	var out []Row
	buf := make([]parquet.Row, 100)
	for {
		n, err := r.ReadRows(buf)
		for _, pr := range buf[:n] {
			row := make(Row, len(s.cols))
			for i := range s.cols {
				v := pr[leaf[i]]
				if v.Column() != leaf[i] {
					t.Fatalf("value %d of row has column %d, want %d", leaf[i], v.Column(), leaf[i])
				}
				row[i] = v.Clone()
			}
			out = append(out, row)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read rows: %v", err)
		}
	}
	return pf, out
}

func sameValue(a, b parquet.Value) bool {
	if a.IsNull() || b.IsNull() {
		return a.IsNull() == b.IsNull()
	}
	if a.Kind() != b.Kind() {
		return false
	}
	switch a.Kind() {
	case parquet.ByteArray:
		return bytes.Equal(a.ByteArray(), b.ByteArray())
	case parquet.Double:
		return math.Float64bits(a.Double()) == math.Float64bits(b.Double())
	case parquet.Float:
		return math.Float32bits(a.Float()) == math.Float32bits(b.Float())
	case parquet.Boolean:
		return a.Boolean() == b.Boolean()
	case parquet.Int32:
		return a.Int32() == b.Int32()
	case parquet.Int64:
		return a.Int64() == b.Int64()
	}
	return false
}

func checkRows(t testing.TB, got []Row, want func(i int) Row, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("read %d rows, want %d", len(got), n)
	}
	for i, row := range got {
		w := want(i)
		for c := range row {
			if !sameValue(row[c], w[c]) {
				t.Fatalf("row %d column %d = %v, want %v", i, c, row[c], w[c])
			}
		}
	}
}

func mustSchema(t testing.TB, cols []Column) *Schema {
	t.Helper()
	s, err := NewSchema("test", cols)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var hour13 = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)

func TestFileWriterRoundTrip(t *testing.T) {
	codecs := map[string]format.CompressionCodec{
		"zstd": format.Zstd, "snappy": format.Snappy, "gzip": format.Gzip, "none": format.Uncompressed, "": format.Zstd,
	}
	for name, codec := range codecs {
		t.Run("compression="+name, func(t *testing.T) {
			s := mustSchema(t, allTypes)
			path := filepath.Join(t.TempDir(), FileName("clicks", 3, 1000))
			w, err := NewFileWriter(path, s, FileOptions{Compression: name})
			if err != nil {
				t.Fatal(err)
			}
			const n = 500
			base := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
			for i := range n {
				et := base.Add(time.Duration((i*37)%n) * time.Second)
				if err := w.Append(allTypesRow(i), int64(1000+2*i), et); err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
			}
			if w.Records() != n || w.FirstOffset() != 1000 || w.LastOffset() != 1000+2*(n-1) {
				t.Fatalf("records/first/last = %d/%d/%d", w.Records(), w.FirstOffset(), w.LastOffset())
			}
			if !w.MinEventTime().Equal(base) || !w.MaxEventTime().Equal(base.Add((n-1)*time.Second)) {
				t.Fatalf("event time range = %s..%s", w.MinEventTime(), w.MaxEventTime())
			}
			info, err := w.Finish(FileMeta{Stream: "clickstream", Topic: "clicks", Partition: 3, Hour: base,
				Extra: map[string]string{"schema_hash": "abc"}})
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			want := FileInfo{Path: path, Records: n, Bytes: st.Size(), FirstOffset: 1000, LastOffset: 1000 + 2*(n-1),
				MinEventTime: base, MaxEventTime: base.Add((n - 1) * time.Second)}
			if info != want {
				t.Fatalf("FileInfo = %+v, want %+v", info, want)
			}

			pf, rows := readBack(t, path, s)
			checkRows(t, rows, allTypesRow, n)

			// The file's schema carries the logical types and repetitions.
			elems := map[string]format.SchemaElement{}
			for _, e := range pf.Metadata().Schema[1:] {
				elems[e.Name] = e
			}
			checkTimestamp := func(col string, unit string) {
				lt, ok := elems[col].LogicalType.Value.(*format.TimestampType)
				if !ok {
					t.Fatalf("column %s logical type = %v, want TIMESTAMP", col, elems[col].LogicalType)
				}
				if !lt.IsAdjustedToUTC {
					t.Errorf("column %s: isAdjustedToUTC = false", col)
				}
				var got string
				switch lt.Unit.Value.(type) {
				case *format.MilliSeconds:
					got = "MILLIS"
				case *format.MicroSeconds:
					got = "MICROS"
				}
				if got != unit {
					t.Errorf("column %s: unit %s, want %s", col, got, unit)
				}
				if typ, _ := elems[col].Type.Get(); typ != format.Int64 {
					t.Errorf("column %s physical type %v, want INT64", col, typ)
				}
			}
			checkTimestamp("ts_ms", "MILLIS")
			checkTimestamp("ts_us", "MICROS")
			checkTimestamp("at", "MILLIS")
			if _, ok := elems["day"].LogicalType.Value.(*format.DateType); !ok {
				t.Errorf("column day logical type = %v, want DATE", elems["day"].LogicalType)
			}
			if typ, _ := elems["day"].Type.Get(); typ != format.Int32 {
				t.Errorf("column day physical type %v, want INT32", typ)
			}
			for _, col := range []string{"s", "j", "id"} {
				if _, ok := elems[col].LogicalType.Value.(*format.StringType); !ok {
					t.Errorf("column %s logical type = %v, want STRING", col, elems[col].LogicalType)
				}
			}
			physical := map[string]format.Type{"i32": format.Int32, "i64": format.Int64, "d": format.Double, "f": format.Float, "b": format.Boolean, "s": format.ByteArray}
			for col, typ := range physical {
				if got, _ := elems[col].Type.Get(); got != typ {
					t.Errorf("column %s physical type %v, want %v", col, got, typ)
				}
			}
			for _, c := range allTypes {
				rep, _ := elems[c.Name].RepetitionType.Get()
				want := format.Optional
				if c.Required {
					want = format.Required
				}
				if rep != want {
					t.Errorf("column %s repetition %v, want %v", c.Name, rep, want)
				}
			}
			for _, rg := range pf.Metadata().RowGroups {
				for _, cc := range rg.Columns {
					if cc.MetaData.Codec != codec {
						t.Errorf("column %v codec %v, want %v", cc.MetaData.PathInSchema, cc.MetaData.Codec, codec)
					}
				}
			}
			if v, ok := pf.Lookup("schema_hash"); !ok || v != "abc" {
				t.Errorf("extra metadata schema_hash = %q, %v", v, ok)
			}
		})
	}
}

func TestNewSchemaErrors(t *testing.T) {
	for _, tt := range []struct {
		cols []Column
		want string
	}{
		{nil, "no columns"},
		{[]Column{{Name: "", Type: TypeString}}, "empty name"},
		{[]Column{{Name: "a", Type: TypeString}, {Name: "a", Type: TypeInt32}}, "duplicate"},
		{[]Column{{Name: "a", Type: ColumnType(99)}}, "unsupported"},
		{[]Column{{Name: "a", Type: TypeString, FieldID: -1}}, "negative field id -1"},
		{[]Column{{Name: "a", Type: TypeString, FieldID: 3}, {Name: "b", Type: TypeInt32, FieldID: 3}}, `field id 3 already used by "a"`},
	} {
		if _, err := NewSchema("x", tt.cols); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewSchema(%v) error = %v, want %q", tt.cols, err, tt.want)
		}
	}
	s := mustSchema(t, allTypes)
	seen := map[int]bool{}
	for i, c := range s.Columns() {
		leaf, ok := s.Parquet().Lookup(c.Name)
		if !ok || leaf.ColumnIndex != s.leaf[i] || seen[s.leaf[i]] {
			t.Errorf("column %s: leaf index %d, schema says %d", c.Name, s.leaf[i], leaf.ColumnIndex)
		}
		seen[s.leaf[i]] = true
	}
}

func TestFileWriterRejectsBadRows(t *testing.T) {
	s := mustSchema(t, allTypes)
	path := filepath.Join(t.TempDir(), "f.parquet")
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.Append(allTypesRow(0), 10, hour13); err != nil {
		t.Fatal(err)
	}
	est := w.EstimatedBytes()
	nullRequired := allTypesRow(1)
	nullRequired[10] = parquet.Value{}
	wrongKind := allTypesRow(1)
	wrongKind[2] = parquet.Int32Value(1)
	for _, tt := range []struct {
		name   string
		row    Row
		offset int64
		want   string
	}{
		{"short row", allTypesRow(1)[:5], 11, "has 5 values"},
		{"null required", nullRequired, 11, `"id" is required`},
		{"wrong kind", wrongKind, 11, `"i64" is INT64`},
		{"same offset", allTypesRow(1), 10, "offsets must increase"},
		{"older offset", allTypesRow(1), 9, "offsets must increase"},
		{"negative offset", allTypesRow(1), -1, "offsets must increase"},
	} {
		if err := w.Append(tt.row, tt.offset, hour13); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.want)
		}
	}
	if w.Records() != 1 || w.LastOffset() != 10 || w.EstimatedBytes() != est {
		t.Fatalf("rejected rows changed the writer: records %d, last %d", w.Records(), w.LastOffset())
	}
	if err := w.Append(allTypesRow(1), 11, hour13); err != nil {
		t.Fatalf("good row after rejected ones: %v", err)
	}
	if _, err := w.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13}); err != nil {
		t.Fatal(err)
	}
	_, rows := readBack(t, path, s)
	checkRows(t, rows, allTypesRow, 2)
}

// TestFileWriterCopiesCallerBytes reuses one buffer for every row, as the
// decoder does, and checks no row sees a later row's bytes.
func TestFileWriterCopiesCallerBytes(t *testing.T) {
	s := mustSchema(t, []Column{{Name: "v", Type: TypeString, Required: true}, {Name: "n", Type: TypeInt64}})
	path := filepath.Join(t.TempDir(), "f.parquet")
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 64<<10)
	want := func(i int) Row {
		size := 10 + i%50
		if i%97 == 0 {
			size = arenaBytes + 1000 // takes the direct path
		}
		return Row{parquet.ByteArrayValue(bytes.Repeat([]byte{byte('a' + i%26)}, size)), parquet.Int64Value(int64(i))}
	}
	const n = 1000
	for i := range n {
		r := want(i)
		buf = append(buf[:0], r[0].ByteArray()...)
		if err := w.Append(Row{parquet.ByteArrayValue(buf), r[1]}, int64(i), hour13); err != nil {
			t.Fatal(err)
		}
		for j := range buf {
			buf[j] = '#'
		}
	}
	if _, err := w.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13}); err != nil {
		t.Fatal(err)
	}
	_, rows := readBack(t, path, s)
	checkRows(t, rows, want, n)
}

// writeAll writes rows 0..n-1 of allTypes with the given options, calling
// Flush wherever flushAt says, and returns the file's bytes and the
// EstimatedBytes after every Append.
func writeAll(t *testing.T, dir string, n int, opts FileOptions, flushAt func(i int) bool) ([]byte, []int64, *FileWriter) {
	t.Helper()
	s := mustSchema(t, allTypes)
	path := filepath.Join(dir, fmt.Sprintf("f%d.parquet", rand.Int()))
	w, err := NewFileWriter(path, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	est := make([]int64, 0, n)
	for i := range n {
		if err := w.Append(allTypesRow(i), int64(i), hour13.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		est = append(est, w.EstimatedBytes())
		if w.pw != nil && w.size != w.pw.Size() {
			t.Fatalf("row %d: kept size %d, parquet-go's writer has %d", i, w.size, w.pw.Size())
		}
		if flushAt(i) {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if w.pool != nil && w.pool.memory != 0 {
				t.Fatalf("after Flush %d bytes of pages stay in memory", w.pool.memory)
			}
		}
	}
	if _, err := w.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, rows := readBack(t, path, s)
	checkRows(t, rows, allTypesRow, n)
	return data, est, w
}

func TestFileWriterManyRowGroups(t *testing.T) {
	opts := FileOptions{RowGroupBytes: 16 << 10, PageBufferBytes: 4 << 10}
	data, _, _ := writeAll(t, t.TempDir(), 5000, opts, func(int) bool { return false })
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pf.Metadata().RowGroups); n < 5 {
		t.Fatalf("%d row groups, want many with RowGroupBytes=16KiB", n)
	}
	var rows int64
	for _, rg := range pf.Metadata().RowGroups {
		rows += rg.NumRows
	}
	if rows != 5000 {
		t.Fatalf("row groups hold %d rows, want 5000", rows)
	}
}

// TestFileWriterFlushIsInvisible is the determinism guarantee: calling Flush
// (memory pressure) at arbitrary points, or spilling pages early, changes
// neither the file's bytes nor any EstimatedBytes reading.
func TestFileWriterFlushIsInvisible(t *testing.T) {
	dir := t.TempDir()
	opts := FileOptions{RowGroupBytes: 64 << 10, PageBufferBytes: 4 << 10}
	const n = 6000
	ref, refEst, _ := writeAll(t, dir, n, opts, func(int) bool { return false })
	rng := rand.New(rand.NewPCG(1, 2))
	flushed, flushedEst, w := writeAll(t, dir, n, opts, func(int) bool { return rng.IntN(50) == 0 })
	if w.pool.spillTotal == 0 {
		t.Fatalf("Flush never moved pages to the spool file; the test proves nothing")
	}
	if w.pool.fileEnd != 0 || w.pool.file != nil {
		t.Fatalf("page spool not released after Finish")
	}
	spillOpts := opts
	spillOpts.PageMemoryBytes = 1 // spill every batch
	spilled, spilledEst, _ := writeAll(t, dir, n, spillOpts, func(int) bool { return false })
	if !bytes.Equal(ref, flushed) || !bytes.Equal(ref, spilled) {
		t.Fatalf("file bytes differ with Flush: %d vs %d vs %d bytes", len(ref), len(flushed), len(spilled))
	}
	for i := range refEst {
		if refEst[i] != flushedEst[i] || refEst[i] != spilledEst[i] {
			t.Fatalf("EstimatedBytes after row %d: %d without Flush, %d with, %d spilled", i, refEst[i], flushedEst[i], spilledEst[i])
		}
	}
	if last := refEst[n-1]; last < int64(len(ref))/2 || last > 2*int64(len(ref)) {
		t.Errorf("final EstimatedBytes %d is far from the file size %d", last, len(ref))
	}
}

// TestFileWriterDeferred: a deferred writer's file is byte for byte the
// file an encoding writer makes of the same rows — with row groups cut, the
// direct path for large rows, values larger than the log's buffer, nulls,
// every type and millisecond columns scaled — with the same EstimatedBytes
// before Finish ± the encoding (plain size), and it holds only the log's
// buffer while open.
func TestFileWriterDeferred(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts FileOptions
		n    int
	}{
		{"one row", FileOptions{}, 1},
		{"defaults", FileOptions{}, 3000},
		{"many row groups", FileOptions{RowGroupBytes: 16 << 10, PageBufferBytes: 4 << 10}, 5000},
		{"snappy", FileOptions{Compression: "snappy"}, 2000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			never := func(int) bool { return false }
			ref, _, _ := writeAll(t, dir, tt.n, tt.opts, never)
			opts := tt.opts
			opts.Deferred = true
			rng := rand.New(rand.NewPCG(3, 4))
			got, est, w := writeAll(t, dir, tt.n, opts, func(int) bool { return rng.IntN(40) == 0 })
			if !bytes.Equal(ref, got) {
				t.Fatalf("deferred file differs: %d bytes, encoding writer %d", len(got), len(ref))
			}
			if w.log != nil {
				t.Fatal("row log still set after Finish")
			}
			// The footer (a few KiB) is not in the estimate.
			if tt.n >= 1000 && est[len(est)-1] < int64(len(ref)) {
				t.Errorf("deferred EstimatedBytes %d below the file's size %d: max_file_bytes would be passed", est[len(est)-1], len(ref))
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if filepath.Ext(e.Name()) != ".parquet" {
					t.Errorf("%s left in the spool folder after Finish", e.Name())
				}
			}
		})
	}
	t.Run("large values", func(t *testing.T) {
		s := mustSchema(t, []Column{{Name: "k", Type: TypeString}, {Name: "v", Type: TypeString}, {Name: "n", Type: TypeInt64}})
		row := func(i int) Row {
			// 100 B, 6 KiB (over the log buffer) and 40 KiB (over the
			// arena: the direct path) values, some null.
			size := []int{100, 6 << 10, 40 << 10}[i%3]
			r := Row{parquet.ByteArrayValue([]byte(fmt.Sprint("k", i))), parquet.ByteArrayValue(bytes.Repeat([]byte{byte('a' + i%26)}, size)), parquet.Int64Value(int64(i))}
			if i%4 == 3 {
				r[1] = parquet.Value{}
			}
			return r
		}
		files := map[bool][]byte{}
		for _, deferred := range []bool{false, true} {
			path := filepath.Join(t.TempDir(), "f.parquet")
			w, err := NewFileWriter(path, s, FileOptions{Deferred: deferred})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				if err := w.Append(row(i), int64(i), hour13); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13}); err != nil {
				t.Fatal(err)
			}
			_, rows := readBack(t, path, s)
			checkRows(t, rows, row, 50)
			if files[deferred], err = os.ReadFile(path); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(files[false], files[true]) {
			t.Fatal("deferred file differs from the encoding writer's")
		}
	})
	t.Run("row log file only when the rows leave the buffer", func(t *testing.T) {
		// A few rows stay in the log's buffer until Finish: no scratch
		// file is created, even in a folder that does not exist.
		s := mustSchema(t, allTypes)
		small, err := NewFileWriter(filepath.Join(t.TempDir(), "small.parquet"), s, FileOptions{Deferred: true, SpoolDir: filepath.Join(t.TempDir(), "missing")})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if err := small.Append(allTypesRow(i), int64(i), hour13); err != nil {
				t.Fatal(err)
			}
		}
		if small.log.f != nil {
			t.Fatal("row log file created for rows that fit the buffer")
		}
		// Encoding needs the spool folder for the page spool only past
		// PageMemoryBytes: the data file is at its own path.
		info, err := small.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13})
		if err != nil {
			t.Fatal(err)
		}
		_, rows := readBack(t, info.Path, s)
		checkRows(t, rows, allTypesRow, 20)

		// More rows than the buffer holds: the file is created on the way,
		// and where it cannot be, Append says so and the error sticks.
		w, err := NewFileWriter(filepath.Join(t.TempDir(), "big.parquet"), s, FileOptions{Deferred: true, SpoolDir: filepath.Join(t.TempDir(), "missing")})
		if err != nil {
			t.Fatal(err)
		}
		var appendErr error
		for i := 0; i < 2000 && appendErr == nil; i++ {
			appendErr = w.Append(allTypesRow(i), int64(i), hour13)
		}
		if appendErr == nil || !strings.Contains(appendErr.Error(), "create row log") {
			t.Fatalf("append past the buffer into a missing spool folder: %v, want a create row log error", appendErr)
		}
		if err := w.Append(allTypesRow(5000), 5000, hour13); err == nil {
			t.Fatal("error not sticky")
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}

		// Flush moves a small log's rows out of memory: that creates it.
		f, err := NewFileWriter(filepath.Join(t.TempDir(), "flushed.parquet"), s, FileOptions{Deferred: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Append(allTypesRow(0), 0, hour13); err != nil {
			t.Fatal(err)
		}
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
		if f.log.f == nil || f.log.buf != nil {
			t.Fatal("Flush kept a deferred writer's rows in memory")
		}
		info, err = f.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13})
		if err != nil {
			t.Fatal(err)
		}
		_, rows = readBack(t, info.Path, s)
		checkRows(t, rows, allTypesRow, 1)
	})
	t.Run("abort", func(t *testing.T) {
		dir := t.TempDir()
		w, err := NewFileWriter(filepath.Join(dir, "f.parquet"), mustSchema(t, allTypes), FileOptions{Deferred: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			if err := w.Append(allTypesRow(i), int64(i), hour13); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("files left after Abort: %v", left)
		}
	})
	t.Run("encode slots", func(t *testing.T) {
		// Finish waits for a slot: with the only one taken, it blocks.
		slots := make(chan struct{}, 1)
		slots <- struct{}{}
		w, err := NewFileWriter(filepath.Join(t.TempDir(), "f.parquet"), mustSchema(t, allTypes), FileOptions{Deferred: true, EncodeSlots: slots})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(allTypesRow(0), 0, hour13); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := w.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13})
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("Finish returned (%v) without a free slot", err)
		case <-time.After(50 * time.Millisecond):
		}
		<-slots
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(slots) != 0 {
			t.Fatal("Finish kept its slot")
		}
	})
}

func TestFileWriterFlushReleasesMemory(t *testing.T) {
	s := mustSchema(t, allTypes)
	w, err := NewFileWriter(filepath.Join(t.TempDir(), "f.parquet"), s, FileOptions{PageBufferBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for i := range 20000 {
		if err := w.Append(allTypesRow(i), int64(i), hour13); err != nil {
			t.Fatal(err)
		}
	}
	before := w.BufferedBytes()
	if w.pool.memory == 0 {
		t.Fatal("no encoded pages in memory before Flush")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	after := w.BufferedBytes()
	if after >= before || w.pool.memory != 0 {
		t.Fatalf("BufferedBytes %d -> %d, pages in memory %d after Flush", before, after, w.pool.memory)
	}
	limit := writerOverhead + arenaBytes + int64(batchRows*len(allTypes))*valueSize + int64(2*len(allTypes)*(4<<10))
	if after > limit {
		t.Fatalf("BufferedBytes after Flush = %d, want <= %d", after, limit)
	}
}

func TestFileWriterAbort(t *testing.T) {
	s := mustSchema(t, allTypes)
	dir := t.TempDir()
	path := filepath.Join(dir, "f.parquet")
	w, err := NewFileWriter(path, s, FileOptions{PageBufferBytes: 4 << 10, RowGroupBytes: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if err := w.Append(allTypesRow(i), int64(i), hour13); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spool file still there after Abort: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("Abort left %d entries in the spool dir", len(ents))
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	if err := w.Append(allTypesRow(0), 5000, hour13); !errors.Is(err, ErrWriterClosed) {
		t.Fatalf("Append after Abort = %v, want ErrWriterClosed", err)
	}
	if _, err := w.Finish(FileMeta{}); !errors.Is(err, ErrWriterClosed) {
		t.Fatalf("Finish after Abort = %v, want ErrWriterClosed", err)
	}
}

func TestFileWriterFinishRules(t *testing.T) {
	s := mustSchema(t, allTypes)
	dir := t.TempDir()
	path := filepath.Join(dir, "f.parquet")
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Finish(FileMeta{}); err == nil || !strings.Contains(err.Error(), "no records") {
		t.Fatalf("Finish without records = %v", err)
	}
	if err := w.Append(allTypesRow(0), 1, hour13); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Finish(FileMeta{Extra: map[string]string{MetaRecords: "7"}}); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("Finish with reserved extra key = %v", err)
	}
	if _, err := w.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13}); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Abort after Finish removed the finished file: %v", err)
	}
	if _, err := NewFileWriter(filepath.Join(dir, "g.parquet"), s, FileOptions{Compression: "lzo"}); err == nil {
		t.Fatal("NewFileWriter accepted compression lzo")
	}
	if _, err := NewFileWriter(filepath.Join(dir, "missing", "g.parquet"), s, FileOptions{}); err == nil {
		t.Fatal("NewFileWriter in a missing folder succeeded")
	}
}

func TestReadFileInfo(t *testing.T) {
	s := mustSchema(t, allTypes)
	dir := t.TempDir()
	path := filepath.Join(dir, "f.parquet")
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kolkata := mustLoad(t, "Asia/Kolkata")
	hour := time.Date(2026, 11, 25, 18, 0, 0, 0, kolkata)
	for i := range 300 {
		et := hour.Add(time.Duration(i)*time.Second + 123456789)
		if err := w.Append(allTypesRow(i), int64(77+i), et); err != nil {
			t.Fatal(err)
		}
	}
	meta := FileMeta{Stream: "clickstream", Topic: "clicks", Partition: 4, Hour: hour, Extra: map[string]string{"k": "v"}}
	info, err := w.Finish(meta)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	counter := &countingReaderAt{r: bytes.NewReader(data)}
	gotInfo, gotMeta, err := ReadFileInfo(counter, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	want := info
	want.Path = ""
	if gotInfo != want {
		t.Errorf("ReadFileInfo info = %+v, want %+v", gotInfo, want)
	}
	if gotMeta.Stream != meta.Stream || gotMeta.Topic != meta.Topic || gotMeta.Partition != meta.Partition ||
		!gotMeta.Hour.Equal(hour) || gotMeta.Hour.Format(time.RFC3339) != "2026-11-25T18:00:00+05:30" ||
		len(gotMeta.Extra) != 1 || gotMeta.Extra["k"] != "v" {
		t.Errorf("ReadFileInfo meta = %+v, want %+v", gotMeta, meta)
	}
	if counter.reads != 1 || counter.minOff < int64(len(data))-footerTail {
		t.Errorf("ReadFileInfo made %d reads down to offset %d; want one read of the tail", counter.reads, counter.minOff)
	}

	// Truncated copies.
	for _, cut := range []int{0, 4, 11, 12, 100, len(data) / 2, len(data) - 9, len(data) - 1} {
		if _, _, err := ReadFileInfo(bytes.NewReader(data[:cut]), int64(cut)); err == nil {
			t.Errorf("ReadFileInfo of the first %d bytes succeeded", cut)
		}
	}
	// Corrupt footers: a too-large length, and flipped bytes inside.
	bad := bytes.Clone(data)
	bad[len(bad)-8], bad[len(bad)-7], bad[len(bad)-6], bad[len(bad)-5] = 0xff, 0xff, 0xff, 0x7f
	if _, _, err := ReadFileInfo(bytes.NewReader(bad), int64(len(bad))); err == nil || !strings.Contains(err.Error(), "footer length") {
		t.Errorf("ReadFileInfo with a bad footer length = %v", err)
	}
	footerLen := int(uint32(data[len(data)-8]) | uint32(data[len(data)-7])<<8 | uint32(data[len(data)-6])<<16 | uint32(data[len(data)-5])<<24)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		bad := bytes.Clone(data)
		i := len(data) - 8 - footerLen + rng.IntN(footerLen)
		bad[i] ^= byte(1 + rng.IntN(255))
		_, _, _ = ReadFileInfo(bytes.NewReader(bad), int64(len(bad))) // must not panic
	}
	bad = bytes.Clone(data)
	bad[len(bad)-8-footerLen] = 0xff // garbage where the thrift struct starts
	if _, _, err := ReadFileInfo(bytes.NewReader(bad), int64(len(bad))); err == nil {
		t.Errorf("ReadFileInfo of a corrupt footer succeeded")
	}
}

func TestReadFileInfoForeignFile(t *testing.T) {
	type rec struct {
		A string `parquet:"a"`
	}
	var buf bytes.Buffer
	pw := parquet.NewGenericWriter[rec](&buf)
	if _, err := pw.Write([]rec{{"x"}}); err != nil {
		t.Fatal(err)
	}
	pw.SetKeyValueMetadata(MetaStream, "s")
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err := ReadFileInfo(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if !errors.Is(err, ErrNotLakesinkFile) || !strings.Contains(err.Error(), MetaTopic) {
		t.Fatalf("ReadFileInfo of a foreign file = %v, want ErrNotLakesinkFile naming %s", err, MetaTopic)
	}
	if _, _, err := ReadFileInfo(strings.NewReader("PAR1 not really parquet PAR1"), 28); err == nil {
		t.Fatal("ReadFileInfo of garbage succeeded")
	}
}

func FuzzReadFileInfo(f *testing.F) {
	s := mustSchema(f, allTypes)
	path := filepath.Join(f.TempDir(), "f.parquet")
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 5 {
		if err := w.Append(allTypesRow(i), int64(i), hour13); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := w.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13}); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, _, err := ReadFileInfo(bytes.NewReader(b), int64(len(b)))
		if err == nil && info.Bytes != int64(len(b)) {
			t.Fatalf("Bytes = %d for a %d-byte file", info.Bytes, len(b))
		}
	})
}

type countingReaderAt struct {
	r      io.ReaderAt
	reads  int
	minOff int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if c.reads == 0 || off < c.minOff {
		c.minOff = off
	}
	c.reads++
	return c.r.ReadAt(p, off)
}

// clickstreamCols is the 7-column clickstream schema of the README's example.
var clickstreamCols = []Column{
	{Name: "event_id", Type: TypeString, Required: true},
	{Name: "user_id", Type: TypeString},
	{Name: "ts", Type: TypeTimestampMillis},
	{Name: "url", Type: TypeString},
	{Name: "device_id", Type: TypeString},
	{Name: "price", Type: TypeDouble},
	{Name: "attrs", Type: TypeJSON},
}

// clickGen makes clickstream rows into reused buffers, as the decoder does.
type clickGen struct {
	buf []byte
	row Row
}

func (g *clickGen) next(i int) Row {
	if g.row == nil {
		g.row = make(Row, len(clickstreamCols))
		g.buf = make([]byte, 0, 512)
	}
	b := g.buf[:0]
	field := func(f func([]byte) []byte) []byte {
		start := len(b)
		b = f(b)
		return b[start:len(b):len(b)]
	}
	// strconv rather than fmt: the generator must not allocate, so that
	// allocs/op measures the writer.
	id := field(func(b []byte) []byte {
		return strconv.AppendUint(append(b, "evt-"...), uint64(i)*0x9e3779b97f4a7c15, 16)
	})
	user := field(func(b []byte) []byte { return strconv.AppendInt(append(b, "user-"...), int64(i%5000), 10) })
	url := field(func(b []byte) []byte {
		b = strconv.AppendInt(append(b, "https://shop.example.com/p/"...), int64(i%800), 10)
		return strconv.AppendInt(append(b, "?ref="...), int64(i%7), 10)
	})
	dev := field(func(b []byte) []byte { return strconv.AppendInt(append(b, "dev-"...), int64(i%20000), 16) })
	attrs := field(func(b []byte) []byte {
		b = strconv.AppendInt(append(b, `{"ab":"v`...), int64(i%3), 10)
		b = strconv.AppendInt(append(b, `","campaign":"c`...), int64(i%40), 10)
		b = strconv.AppendInt(append(b, `","n":`...), int64(i), 10)
		return append(b, '}')
	})
	g.buf = b
	g.row[0] = parquet.ByteArrayValue(id)
	g.row[1] = parquet.ByteArrayValue(user)
	g.row[2] = parquet.Int64Value(1795611600000 + int64(i)*3)
	g.row[3] = parquet.ByteArrayValue(url)
	if i%10 == 0 {
		g.row[4] = parquet.Value{}
	} else {
		g.row[4] = parquet.ByteArrayValue(dev)
	}
	g.row[5] = parquet.DoubleValue(float64(i%10000) / 100)
	g.row[6] = parquet.ByteArrayValue(attrs)
	return g.row
}

// TestFileWriterMemory measures the heap that open FileWriters hold with
// the default options: idle writers with 10 clickstream rows must stay well
// under 1 MiB apiece, and busy writers (a row group filling, pages spilling
// past PageMemoryBytes) near PageMemoryBytes plus a page per column.
func TestFileWriterMemory(t *testing.T) {
	s := mustSchema(t, clickstreamCols)
	for _, tt := range []struct {
		name     string
		writers  int
		rows     int
		limit    int64
		deferred bool
	}{
		{"idle", 50, 10, 256 << 10, false},
		{"few", 50, 500, 512 << 10, false},
		{"some", 20, 3000, 1 << 20, false},
		{"busy", 2, 60000, DefaultPageMemoryBytes + int64(len(clickstreamCols))*DefaultPageBufferBytes*2 + 256<<10, false},
		{"deferred few", 200, 500, 24 << 10, true},
		{"deferred busy", 50, 20000, 24 << 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ws := make([]*FileWriter, tt.writers)
			var g clickGen
			var before, after runtime.MemStats
			// Two GCs empty sync.Pools (parquet-go pools codecs and page
			// buffers): count what the writers hold, not the shared pools.
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&before)
			for k := range ws {
				w, err := NewFileWriter(filepath.Join(dir, fmt.Sprintf("f%d.parquet", k)), s, FileOptions{Deferred: tt.deferred})
				if err != nil {
					t.Fatal(err)
				}
				for i := range tt.rows {
					if err := w.Append(g.next(i), int64(i), hour13); err != nil {
						t.Fatal(err)
					}
				}
				ws[k] = w
			}
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&after)
			perWriter := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(tt.writers)
			t.Logf("heap held per open FileWriter with %d rows: %d KiB; BufferedBytes %d KiB; EstimatedBytes %d KiB",
				tt.rows, perWriter>>10, ws[0].BufferedBytes()>>10, ws[0].EstimatedBytes()>>10)
			if b := ws[0].BufferedBytes(); b < perWriter*85/100 || b > perWriter*3/2 {
				t.Errorf("BufferedBytes %d KiB is not within -15%%/+50%% of the measured %d KiB", b>>10, perWriter>>10)
			}
			if perWriter > tt.limit {
				t.Errorf("an open FileWriter with %d rows holds %d KiB, want < %d KiB", tt.rows, perWriter>>10, tt.limit>>10)
			}
			for _, w := range ws {
				if err := w.Abort(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFileWriterAppend appends clickstream rows (7 columns, ~200 bytes
// of strings) to one file, cutting files at 64 MiB, with zstd, snappy and
// no compression (what encoding alone costs).
//
// Compare two versions with benchstat:
//
//	go test -run '^$' -bench FileWriterAppend -count 10 ./partitioner > old.txt
//	(change the code)
//	go test -run '^$' -bench FileWriterAppend -count 10 ./partitioner > new.txt
//	benchstat old.txt new.txt
func BenchmarkFileWriterAppend(b *testing.B) {
	for _, codec := range []string{"zstd", "snappy", "none"} {
		b.Run(codec, func(b *testing.B) {
			s := mustSchema(b, clickstreamCols)
			dir := b.TempDir()
			var g clickGen
			newWriter := func() *FileWriter {
				w, err := NewFileWriter(filepath.Join(dir, "bench.parquet"), s, FileOptions{Compression: codec})
				if err != nil {
					b.Fatal(err)
				}
				return w
			}
			w := newWriter()
			var bytesOut, records int64
			finish := func() {
				info, err := w.Finish(FileMeta{Stream: "clickstream", Topic: "clicks", Hour: hour13})
				if err != nil {
					b.Fatal(err)
				}
				bytesOut += info.Bytes
				records += info.Records
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := w.Append(g.next(i), int64(i), hour13); err != nil {
					b.Fatal(err)
				}
				i++
				if w.EstimatedBytes() >= 64<<20 {
					finish()
					w = newWriter()
				}
			}
			if w.Records() > 0 {
				finish()
			}
			if records > 0 {
				b.ReportMetric(float64(bytesOut)/float64(records), "bytes/record")
			}
		})
	}
}

// TestFieldIDs: field ids given to the columns are in the written file's
// Parquet schema (Iceberg reads columns by id), required and optional
// alike; columns without one have none.
func TestFieldIDs(t *testing.T) {
	cols := []Column{
		{Name: "event_id", Type: TypeString, Required: true, FieldID: 1},
		{Name: "ts", Type: TypeTimestampMicros, FieldID: 2},
		{Name: "price", Type: TypeDouble, FieldID: 7},
		{Name: "note", Type: TypeString},
	}
	s := mustSchema(t, cols)
	path := filepath.Join(t.TempDir(), FileName("clicks", 0, 0))
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	row := []parquet.Value{parquet.ByteArrayValue([]byte("e1")), parquet.Int64Value(at.UnixMicro()), parquet.DoubleValue(1.5), parquet.NullValue()}
	if err := w.Append(row, 0, at); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Finish(FileMeta{Stream: "clicks", Topic: "clicks", Hour: at}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	pf, err := parquet.OpenFile(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"event_id": 1, "ts": 2, "price": 7, "note": 0}
	for name, id := range want {
		leaf, ok := pf.Schema().Lookup(name)
		if !ok {
			t.Fatalf("column %s not in the file", name)
		}
		if got := leaf.Node.ID(); got != id {
			t.Errorf("column %s: field id %d in the file, want %d", name, got, id)
		}
	}
}

func TestMillisAsMicros(t *testing.T) {
	if _, err := NewSchema("x", []Column{{Name: "n", Type: TypeInt64, MillisAsMicros: true}}); err == nil {
		t.Error("MillisAsMicros on an int64 column: no error")
	}
	s := mustSchema(t, []Column{{Name: "ts", Type: TypeTimestampMillis, Required: true, MillisAsMicros: true}, {Name: "at", Type: TypeTimestampMillis, MillisAsMicros: true}})
	path := filepath.Join(t.TempDir(), FileName("clicks", 0, 0))
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 13, 0, 0, 5e6, time.UTC)
	for i, second := range []parquet.Value{parquet.NullValue(), parquet.Int64Value(at.UnixMilli() + 1)} {
		if err := w.Append([]parquet.Value{parquet.Int64Value(at.UnixMilli()), second}, int64(i), at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Finish(FileMeta{Stream: "clicks", Topic: "clicks", Hour: at}); err != nil {
		t.Fatal(err)
	}
	pf, rows := readBack(t, path, s)
	leaf, _ := pf.Schema().Lookup("ts")
	if lt := leaf.Node.Type().LogicalType(); lt == nil || !strings.Contains(lt.String(), "MICROS") {
		t.Fatalf("ts logical type %v, want TIMESTAMP(MICROS)", lt)
	}
	if len(rows) != 2 {
		t.Fatalf("read %d rows", len(rows))
	}
	if got := rows[0][0].Int64(); got != at.UnixMicro() || !rows[0][1].IsNull() {
		t.Errorf("row 0: ts %d, at %v; want %d, null", got, rows[0][1], at.UnixMicro())
	}
	if ts, a := rows[1][0].Int64(), rows[1][1].Int64(); ts != at.UnixMicro() || a != at.UnixMicro()+1000 {
		t.Errorf("row 1: ts, at = %d, %d; want %d, %d", ts, a, at.UnixMicro(), at.UnixMicro()+1000)
	}
}

// TestEndRowGroup ends row groups of an open file under way: the file
// reads back with every row in order, in more row groups, and the writer
// holds less memory afterwards than with Flush alone.
func TestEndRowGroup(t *testing.T) {
	s := mustSchema(t, clickstreamCols)
	dir := t.TempDir()
	var g clickGen
	const writers, rows = 8, 4000
	var estimates [2]int64
	held := func(end bool) int64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		ws := make([]*FileWriter, writers)
		for k := range ws {
			w, err := NewFileWriter(filepath.Join(dir, fmt.Sprintf("m%v%d.parquet", end, k)), s, FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				if err := w.Append(g.next(i), int64(i), hour13); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if end {
				if err := w.EndRowGroup(); err != nil {
					t.Fatal(err)
				}
			}
			ws[k] = w
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if end {
			estimates[1] = ws[0].BufferedBytes()
		} else {
			estimates[0] = ws[0].BufferedBytes()
		}
		for _, w := range ws {
			_ = w.Abort()
		}
		return (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / writers
	}
	flushed, ended := held(false), held(true)
	t.Logf("heap per open writer with %d rows: %d KiB after Flush, %d KiB after EndRowGroup; BufferedBytes %d and %d KiB",
		rows, flushed>>10, ended>>10, estimates[0]>>10, estimates[1]>>10)
	for i, m := range []int64{flushed, ended} {
		if b := estimates[i]; b < m*85/100 || b > m*3/2 {
			t.Errorf("BufferedBytes %d KiB is not within -15%%/+50%% of the measured %d KiB", b>>10, m>>10)
		}
	}
	if ended >= flushed*3/4 {
		t.Errorf("EndRowGroup frees too little: %d KiB held, %d KiB after Flush alone", ended>>10, flushed>>10)
	}

	// The rows are all there, in order, in three row groups.
	path := filepath.Join(dir, "f.parquet")
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if err := w.Append(g.next(i), int64(i), hour13); err != nil {
			t.Fatal(err)
		}
		if i == 999 || i == 1999 {
			if err := w.EndRowGroup(); err != nil {
				t.Fatal(err)
			}
			if err := w.EndRowGroup(); err != nil { // nothing new: no empty row group
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Finish(FileMeta{Stream: "clicks", Topic: "clicks", Hour: hour13}); err != nil {
		t.Fatal(err)
	}
	pf, got := readBack(t, path, s)
	if n := len(pf.RowGroups()); n != 3 {
		t.Errorf("%d row groups, want 3", n)
	}
	if len(got) != 3000 {
		t.Errorf("%d rows, want 3000", len(got))
	}
}
