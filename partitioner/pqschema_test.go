package partitioner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

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
