package tables

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/ledger"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// database/sql's connection opener and the SQLite driver's pool
		// outlive a closed catalog briefly.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

var hour10 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// fixture is a stream with a table in an SQLite catalog over a local lake.
type fixture struct {
	t      *testing.T
	dir    string
	stream config.Stream
	store  config.Storage
	cols   []partitioner.Column
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	sc := config.DefaultStream()
	sc.Name = "clicks"
	sc.Topics = []string{"clicks"}
	sc.Time = config.StreamTime{Field: "ts", Format: config.TimeUnixMillis, Timezone: "UTC"}
	sc.Schema = []config.SchemaColumn{{Name: "id", Type: "string", Required: true}, {Name: "ts", Type: "timestamp_ms", Required: true}, {Name: "n", Type: "int32"}}
	sc.Table = &config.Table{Format: config.TableIceberg, Namespace: "lake",
		Catalog: config.Catalog{Type: config.CatalogSQL, URI: filepath.Join(dir, "catalog.db")}}
	cols, err := sc.Columns()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, dir: dir, stream: sc, cols: cols,
		store: config.Storage{Type: config.StorageLocal, Local: config.LocalStorage{Root: filepath.Join(dir, "lake")}}}
}

func (f *fixture) open(reg prometheus.Registerer) *Table {
	f.t.Helper()
	tb, err := Open(context.Background(), Options{Stream: f.stream, Storage: f.store, Group: "g", Columns: f.cols, Metrics: NewMetrics(reg)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { tb.Close() })
	return tb
}

// write writes a data file of n records of hour h for partition p starting
// at offset first, into the lake, and returns its prepared entry.
func (f *fixture) write(tb *Table, p int, first int64, n int, h time.Time) File {
	f.t.Helper()
	return f.writeRows(tb, p, first, n, h, func(i int) []parquet.Value {
		at := h.Add(time.Duration(i) * time.Second)
		return []parquet.Value{parquet.ByteArrayValue(fmt.Appendf(nil, "%d-%d", p, first+int64(i))), parquet.Int64Value(at.UnixMilli()), parquet.Int32Value(int32(i))}
	})
}

// writeRows is write with the rows from row, in tb.Columns() order.
func (f *fixture) writeRows(tb *Table, p int, first int64, n int, h time.Time, row func(i int) []parquet.Value) File {
	f.t.Helper()
	s, err := partitioner.NewSchema("clicks", tb.Columns())
	if err != nil {
		f.t.Fatal(err)
	}
	key := fmt.Sprintf("clicks/%s/clicks+%d+%020d.parquet", h.Format("2006010215"), p, first)
	path := filepath.Join(f.dir, "lake", key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	w, err := partitioner.NewFileWriter(path, s, partitioner.FileOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	for i := range n {
		at := h.Add(time.Duration(i) * time.Second)
		if err := w.Append(row(i), first+int64(i), at); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := w.Finish(partitioner.FileMeta{Stream: "clicks", Topic: "clicks", Partition: p, Hour: h}); err != nil {
		f.t.Fatal(err)
	}
	file, err := tb.Prepare(context.Background(), path, key)
	if err != nil {
		f.t.Fatal(err)
	}
	return file
}

// rows reads the table back through iceberg-go's scan: id -> count.
func rows(t *testing.T, tb *Table, opts ...table.ScanOption) map[string]int {
	t.Helper()
	ctx := context.Background()
	fresh, err := tb.cat.LoadTable(ctx, tb.ident)
	if err != nil {
		t.Fatal(err)
	}
	at, err := fresh.Scan(opts...).ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	out := map[string]int{}
	idx := at.Schema().FieldIndices("id")[0]
	for _, chunk := range at.Column(idx).Data().Chunks() {
		for i := 0; i < chunk.Len(); i++ {
			out[chunk.ValueStr(i)]++
		}
	}
	return out
}

func TestOpenCreatesTable(t *testing.T) {
	f := newFixture(t)
	tb := f.open(prometheus.NewRegistry())
	if got := tb.Ident(); got != "lake.clicks" {
		t.Errorf("Ident() = %q", got)
	}
	if tb.PartitionField() != "ts_hour" {
		t.Errorf("PartitionField() = %q", tb.PartitionField())
	}
	for _, c := range tb.Columns() {
		if c.FieldID <= 0 {
			t.Errorf("column %s: no field id", c.Name)
		}
		if c.MillisAsMicros != (c.Name == "ts") {
			t.Errorf("column %s: MillisAsMicros %v", c.Name, c.MillisAsMicros)
		}
	}
	spec := tb.tbl.Spec()
	if spec.NumFields() != 1 || spec.Field(0).Transform.String() != "hour" {
		t.Errorf("spec %s, want hour(ts)", spec.String())
	}
	tb.Close()

	// Reopening with a new column adds it, optional, keeping the ids.
	ids := map[string]int{}
	for _, c := range tb.Columns() {
		ids[c.Name] = c.FieldID
	}
	f.stream.Schema = append(f.stream.Schema, config.SchemaColumn{Name: "extra", Type: "double", Required: true})
	f.cols, _ = f.stream.Columns()
	tb2 := f.open(prometheus.NewRegistry())
	for _, c := range tb2.Columns() {
		if old, ok := ids[c.Name]; ok && old != c.FieldID {
			t.Errorf("column %s: field id %d, was %d", c.Name, c.FieldID, old)
		}
	}
	if fld, ok := tb2.tbl.Schema().FindFieldByName("extra"); !ok || fld.Required {
		t.Errorf("column extra: %+v, %v; want added as optional", fld, ok)
	}
	tb2.Close()

	// A type the table can't read is a clear error.
	f.stream.Schema[2].Type = "string"
	f.cols, _ = f.stream.Columns()
	_, err := Open(context.Background(), Options{Stream: f.stream, Storage: f.store, Group: "g", Columns: f.cols})
	if err == nil || !strings.Contains(err.Error(), `column "n" is int in the table, the stream writes string`) {
		t.Errorf("Open with n as string: %v", err)
	}

	// A schema list widens no column (Evolve would, for a writer schema):
	// n as int64 is an error too, and the table keeps its int.
	f.stream.Schema[2].Type = "int64"
	f.cols, _ = f.stream.Columns()
	_, err = Open(context.Background(), Options{Stream: f.stream, Storage: f.store, Group: "g", Columns: f.cols})
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), `column "n" is int in the table, the stream writes long (int64)`) {
		t.Errorf("Open with n as int64: %v", err)
	}
	r, err := OpenReader(context.Background(), f.stream, f.store)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if fld, _ := r.tbl.Schema().FindFieldByName("n"); !fld.Type.Equals(iceberg.PrimitiveTypes.Int32) {
		t.Errorf("n is %s after a refused Open, want int", fld.Type)
	}
}

func TestClaimCommitFence(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	tb := f.open(reg)
	ctx := context.Background()
	a := Owner{Topic: "clicks", Partition: 0, Generation: 1, Member: "a"}
	if _, found, err := tb.Claim(ctx, a); err != nil || found {
		t.Fatalf("first claim: found %v, err %v", found, err)
	}
	f1 := f.write(tb, 0, 0, 10, hour10)
	meta := ledger.Meta{V: 1, WM: 5, RW: 7, Done: []ledger.DoneMark{{Hour: hour10.UnixMilli(), To: 10}}}
	if err := tb.Commit(ctx, a, []File{f1}, 0, meta); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, tb); len(got) != 10 {
		t.Fatalf("table holds %d ids after one file, want 10", len(got))
	}
	// The data file entry: partition value and record count from the footer.
	if f1.Records() != 10 || f1.df.Partition()[1000] != int32(hour10.Unix()/3600) {
		t.Errorf("entry: %d records, partition %v", f1.Records(), f1.df.Partition())
	}

	// A new owner's claim returns a's progress; a is fenced from then on.
	b := Owner{Topic: "clicks", Partition: 0, Generation: 2, Member: "b"}
	e, found, err := tb.Claim(ctx, b)
	if err != nil || !found {
		t.Fatalf("claim by b: found %v, err %v", found, err)
	}
	if e.Generation != 1 || e.Member != "a" || e.Offset != 0 || len(e.Meta.Done) != 1 || e.Meta.Done[0].To != 10 {
		t.Errorf("progress returned to b: %+v", e)
	}
	f2 := f.write(tb, 0, 10, 5, hour10)
	if err := tb.Commit(ctx, a, []File{f2}, 15, meta); !errors.Is(err, ErrFenced) {
		t.Fatalf("commit by fenced a: %v, want ErrFenced", err)
	}
	if err := tb.Commit(ctx, b, []File{f2}, 15, ledger.Meta{V: 1}); err != nil {
		t.Fatal(err)
	}
	// The same commit again — its answer was lost, so the worker resends
	// it — is found in the table and not applied twice.
	if err := tb.Commit(ctx, b, []File{f2}, 15, ledger.Meta{V: 1}); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, tb); len(got) != 15 {
		t.Errorf("table holds %d ids, want 15", len(got))
	}
	for id, n := range rows(t, tb) {
		if n != 1 {
			t.Errorf("id %s %d times after a resent commit", id, n)
		}
	}
	if n := testutil.ToFloat64(tb.m.Fenced.WithLabelValues("clicks")); n != 1 {
		t.Errorf("fenced commits %v, want 1", n)
	}

	// Progress survives a restart: another process reads it from the
	// snapshot summaries.
	tb.Close()
	tb2 := f.open(prometheus.NewRegistry())
	c := Owner{Topic: "clicks", Partition: 0, Generation: 3, Member: "c"}
	e, found, err = tb2.Claim(ctx, c)
	if err != nil || !found || e.Member != "b" || e.Offset != 15 {
		t.Errorf("claim after restart: %+v found %v err %v", e, found, err)
	}
	if _, found, _ := tb2.Claim(ctx, Owner{Topic: "clicks", Partition: 1, Generation: 3, Member: "c"}); found {
		t.Error("partition 1 has progress it never committed")
	}
}

// TestConcurrentWriters runs two processes' tables on one catalog, each
// committing its own partitions at once: every file lands once, through
// conflicts and retries.
func TestConcurrentWriters(t *testing.T) {
	f := newFixture(t)
	t1, t2 := f.open(prometheus.NewRegistry()), f.open(prometheus.NewRegistry())
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for p := range 8 {
		tb := t1
		if p%2 == 1 {
			tb = t2
		}
		o := Owner{Topic: "clicks", Partition: p, Generation: 1, Member: fmt.Sprint("m", p%2)}
		if _, _, err := tb.Claim(ctx, o); err != nil {
			t.Fatal(err)
		}
		files := []File{f.write(tb, p, 0, 3, hour10), f.write(tb, p, 3, 3, hour10.Add(time.Hour))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, file := range files {
				if err := tb.Commit(ctx, o, []File{file}, int64(3*(i+1)), ledger.Meta{V: 1}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := rows(t, t1)
	if len(got) != 48 {
		t.Errorf("table holds %d ids, want 48", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("id %s %d times", id, n)
		}
	}
	conflicts := testutil.ToFloat64(t1.m.Conflicts.WithLabelValues("clicks")) + testutil.ToFloat64(t2.m.Conflicts.WithLabelValues("clicks"))
	t.Logf("conflicts retried: %v", conflicts)
	// One hour's rows through a partition filter on the hidden partition.
	hourRows := rows(t, t1, table.WithRowFilter(iceberg.NewAnd(
		iceberg.GreaterThanEqual(iceberg.Reference("ts"), iceberg.Timestamp(hour10.UnixMicro())),
		iceberg.LessThan(iceberg.Reference("ts"), iceberg.Timestamp(hour10.Add(time.Hour).UnixMicro())))))
	if len(hourRows) != 24 {
		t.Errorf("hour 10 holds %d ids, want 24", len(hourRows))
	}
}

func TestComplete(t *testing.T) {
	f := newFixture(t)
	tb := f.open(prometheus.NewRegistry())
	ctx := context.Background()
	s1, err := tb.Complete(ctx, hour10.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cur := tb.tbl.CurrentSnapshot()
	if cur.SnapshotID != s1 || cur.Summary.Properties[PropCompleteThrough] != "2026-12-01T11:00:00Z" {
		t.Errorf("snapshot %d (want %d) summary %v", cur.SnapshotID, s1, cur.Summary.Properties)
	}
	// Not moving backwards; the same answer again.
	for _, at := range []time.Time{hour10, hour10.Add(time.Hour)} {
		if s, err := tb.Complete(ctx, at); err != nil || s != s1 {
			t.Errorf("Complete(%s) = %d, %v; want %d", at, s, err, s1)
		}
	}
	s2, err := tb.Complete(ctx, hour10.Add(2*time.Hour))
	if err != nil || s2 == s1 {
		t.Errorf("Complete(12:00) = %d, %v", s2, err)
	}
	// Another process sees it: it answers with the snapshot that recorded
	// it, adding none.
	tb2 := f.open(prometheus.NewRegistry())
	for _, at := range []time.Time{hour10.Add(time.Hour), hour10.Add(2 * time.Hour)} {
		if s, err := tb2.Complete(ctx, at); err != nil || s != s2 {
			t.Errorf("another process: Complete(%s) = %d, %v; want %d", at, s, err, s2)
		}
	}
	if cur, err := tb2.Current(ctx); err != nil || cur != s2 {
		t.Errorf("current snapshot %d, %v; want %d", cur, err, s2)
	}
}

// TestEvolve grows a table with derived columns through writer schema
// versions: added columns, a widened type, and the changes it refuses.
func TestEvolve(t *testing.T) {
	f := newFixture(t)
	f.stream.Schema = nil
	f.stream.Format = config.FormatAvro
	f.cols = nil
	tb := f.open(prometheus.NewRegistry())
	ctx := context.Background()
	if sc := tb.tbl.Schema(); len(sc.Fields()) != 1 || sc.Field(0).Name != "ts" {
		t.Fatalf("new derived table: schema %s, want ts alone", sc)
	}
	v1 := []partitioner.Column{{Name: "id", Type: partitioner.TypeString, Required: true}, {Name: "ts", Type: partitioner.TypeTimestampMillis}, {Name: "n", Type: partitioner.TypeInt32}}
	c1, err := tb.Evolve(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, c := range c1 {
		if c.FieldID <= 0 {
			t.Errorf("v1 column %s: no field id", c.Name)
		}
		ids[c.Name] = c.FieldID
	}
	// A file of v1 goes in and reads back.
	a := Owner{Topic: "clicks", Partition: 0, Generation: 1, Member: "a"}
	if _, _, err := tb.Claim(ctx, a); err != nil {
		t.Fatal(err)
	}
	tbFile := func(cols []partitioner.Column, first int64) File {
		t.Helper()
		saved := tb.cols
		tb.cols = cols
		defer func() { tb.cols = saved }()
		row := func(i int) []parquet.Value {
			out := make([]parquet.Value, len(cols))
			for j, c := range cols {
				switch c.Name {
				case "id":
					out[j] = parquet.ByteArrayValue(fmt.Appendf(nil, "0-%d", first+int64(i)))
				case "ts":
					out[j] = parquet.Int64Value(hour10.Add(time.Duration(i) * time.Second).UnixMilli())
				case "n":
					if c.Type == partitioner.TypeInt64 {
						out[j] = parquet.Int64Value(int64(i) << 40)
					} else {
						out[j] = parquet.Int32Value(int32(i))
					}
				default:
					out[j] = parquet.DoubleValue(1.5)
				}
			}
			return out
		}
		return f.writeRows(tb, 0, first, 3, hour10, row)
	}
	if err := tb.Commit(ctx, a, []File{tbFile(c1, 0)}, 3, ledger.Meta{V: 1}); err != nil {
		t.Fatal(err)
	}

	// v2 widens n to long and adds extra: the table follows, ids stay.
	v2 := []partitioner.Column{{Name: "id", Type: partitioner.TypeString, Required: true}, {Name: "ts", Type: partitioner.TypeTimestampMillis}, {Name: "n", Type: partitioner.TypeInt64}, {Name: "extra", Type: partitioner.TypeDouble}}
	c2, err := tb.Evolve(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range c2 {
		if old, ok := ids[c.Name]; ok && old != c.FieldID {
			t.Errorf("column %s: id %d, was %d", c.Name, c.FieldID, old)
		}
	}
	if fld, _ := tb.tbl.Schema().FindFieldByName("n"); !fld.Type.Equals(iceberg.PrimitiveTypes.Int64) {
		t.Errorf("n is %s after v2, want long", fld.Type)
	}
	if fld, ok := tb.tbl.Schema().FindFieldByName("extra"); !ok || fld.Required {
		t.Errorf("extra: %+v %v, want an optional column", fld, ok)
	}
	if err := tb.Commit(ctx, a, []File{tbFile(c2, 3)}, 6, ledger.Meta{V: 1, RW: 1}); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, tb); len(got) != 6 {
		t.Errorf("table holds %d ids after v1 and v2 files, want 6", len(got))
	}
	// v1 again (an old producer still running) needs nothing new.
	if _, err := tb.Evolve(ctx, v1); err != nil {
		t.Errorf("v1 after v2: %v", err)
	}

	// What Iceberg cannot read as one column is refused, naming it.
	for name, cols := range map[string][]partitioner.Column{
		`column "id" is string in the table, the writer schema writes long`: {{Name: "id", Type: partitioner.TypeInt64}, {Name: "ts", Type: partitioner.TypeTimestampMillis}},
		`the writer schema's ts is int64, not a timestamp`:                  {{Name: "ts", Type: partitioner.TypeInt64}},
		// n as int reads as the table's long; extra does not.
		`column "extra" is double in the table, the writer schema writes string`: {{Name: "ts", Type: partitioner.TypeTimestampMicros}, {Name: "n", Type: partitioner.TypeInt32}, {Name: "extra", Type: partitioner.TypeString}},
	} {
		_, err := tb.Evolve(ctx, cols)
		if !errors.Is(err, ErrIncompatible) || Retryable(err) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err %v, want ErrIncompatible saying so", name, err)
		}
	}
}

// TestReader reads the data files of the current snapshot without
// changing the table, and refuses a table or catalog that is not there.
func TestReader(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := OpenReader(ctx, f.stream, f.store); err == nil || !strings.Contains(err.Error(), "open sql catalog") {
		t.Fatalf("OpenReader without a catalog file: %v", err)
	}
	if _, err := os.Stat(f.stream.Table.Catalog.URI); !os.IsNotExist(err) {
		t.Fatalf("OpenReader created the catalog: %v", err)
	}
	tb := f.open(prometheus.NewRegistry())
	r, err := OpenReader(ctx, f.stream, f.store)
	if err != nil {
		t.Fatal(err)
	}
	if files, err := r.DataFiles(ctx); err != nil || len(files) != 0 || r.Ident() != "lake.clicks" {
		t.Fatalf("empty table: %v, %v, %s", files, err, r.Ident())
	}
	r.Close()
	a := Owner{Topic: "clicks", Partition: 0, Generation: 1, Member: "a"}
	if _, _, err := tb.Claim(ctx, a); err != nil {
		t.Fatal(err)
	}
	f1, f2 := f.write(tb, 0, 0, 10, hour10), f.write(tb, 0, 10, 5, hour10.Add(time.Hour))
	if err := tb.Commit(ctx, a, []File{f1, f2}, 15, ledger.Meta{V: 1}); err != nil {
		t.Fatal(err)
	}
	r, err = OpenReader(ctx, f.stream, f.store)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	files, err := r.DataFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	want := []string{r.Location("clicks/2026120110/clicks+0+00000000000000000000.parquet"), r.Location("clicks/2026120111/clicks+0+00000000000000000010.parquet")}
	if !slices.Equal(files, want) {
		t.Fatalf("data files %v, want %v", files, want)
	}
	other := f.stream
	other.Table = &config.Table{Format: config.TableIceberg, Namespace: "lake", Name: "nope", Catalog: f.stream.Table.Catalog}
	if _, err := OpenReader(ctx, other, f.store); err == nil || !strings.Contains(err.Error(), "load table lake.nope") {
		t.Fatalf("OpenReader of a missing table: %v", err)
	}
}
