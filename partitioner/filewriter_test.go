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
