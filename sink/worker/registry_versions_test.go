package worker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/sink/registry"
	"github.com/lakesink/lakesink/test/schemaregistry"
	"github.com/lakesink/lakesink/writers"
)

// The writer schema versions of TestRegistryVersionsShareFiles: v2 adds an
// optional field and an enum symbol and widens amount from int to long; v3
// changes amount to a string, which does not widen.
const (
	orderV1 = `{"type":"record","name":"Order","fields":[
  {"name":"id","type":"long"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
  {"name":"amount","type":"int"}]}`
	orderV2 = `{"type":"record","name":"Order","fields":[
  {"name":"id","type":"long"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED"]}},
  {"name":"amount","type":"long"},
  {"name":"note","type":["null","string"],"default":null}]}`
	orderV3 = `{"type":"record","name":"Order","fields":[
  {"name":"id","type":"long"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"amount","type":"string"}]}`
)

// registryVersionsWorker is a worker of an avro stream over a memory lake,
// its registry holding orderV1..3 (ids returned in that order); cols is
// the stream's column list (nil: derived).
func registryVersionsWorker(t *testing.T, cols []config.SchemaColumn) (*Worker, *writers.Memory, [3]int) {
	t.Helper()
	sr := schemaregistry.New(schemaregistry.Options{})
	hs := httptest.NewServer(sr)
	t.Cleanup(hs.Close)
	var ids [3]int
	for i, s := range []string{orderV1, orderV2, orderV3} {
		ids[i] = sr.Register(fmt.Sprintf("orders-v%d-value", i+1), "AVRO", s)
	}
	client, err := registry.New(registry.Config{URL: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.SchemaRegistry.URL = hs.URL
	sc := &cfg.Streams[0]
	sc.Format = config.FormatAvro
	sc.Time = config.StreamTime{Field: "ts", Timezone: "UTC"}
	sc.Schema = cols
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tmpl, err := partitioner.ParsePathTemplate(cfg.Partitioning.Path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Compile(cfg.Streams[0], tmpl, int(cfg.Kafka.MaxRecordBytes), client)
	if err != nil {
		t.Fatal(err)
	}
	lake := writers.NewMemory()
	w, err := New(testEnv(t, cfg, lake), st, "events", 0, Generation{ID: 1, Member: "m", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.drain = make(chan struct{})
	w.led = ledger.New(-1, ledger.Empty(), st.Lateness.Milliseconds())
	return w, lake, ids
}

// order is one record to produce: its writer schema version (1..3) and
// fields.
type order struct {
	v      int
	id     int64
	status string
	amount any
	note   *string
}

func (o order) encode(t *testing.T, ids [3]int, at time.Time) []byte {
	t.Helper()
	rec := map[string]any{"id": o.id, "ts": at}
	switch o.v {
	case 1:
		rec["status"], rec["amount"] = o.status, o.amount
	case 2:
		rec["status"], rec["amount"] = o.status, o.amount
		if o.note != nil {
			rec["note"] = *o.note
		} else {
			rec["note"] = nil
		}
	case 3:
		rec["amount"] = o.amount
	}
	s := avro.MustParse([]string{orderV1, orderV2, orderV3}[o.v-1])
	body, err := avro.Marshal(s, rec)
	if err != nil {
		t.Fatalf("encode %+v: %v", o, err)
	}
	return append(confluent.Header(ids[o.v-1]), body...)
}

// TestRegistryVersionsShareFiles: records of interleaved writer schema
// versions share the hour's file, with a column list and without; an
// incompatible version starts a new file; every record is in the lake once
// with its values, and each file's footer lists its writer schema ids.
func TestRegistryVersionsShareFiles(t *testing.T) {
	note := func(s string) *string { return &s }
	interleaved := []order{
		{v: 1, id: 0, status: "NEW", amount: int32(10)},
		{v: 2, id: 1, status: "SHIPPED", amount: int64(1) << 40, note: note("gift")},
		{v: 1, id: 2, status: "PAID", amount: int32(-5)},
		{v: 2, id: 3, status: "NEW", amount: int64(7)},
		{v: 2, id: 4, status: "PAID", amount: int64(8), note: note("x")},
		{v: 1, id: 5, status: "NEW", amount: int32(6)},
		{v: 1, id: 6, status: "PAID", amount: int32(7)},
		{v: 2, id: 7, status: "SHIPPED", amount: int64(9)},
	}
	wantInterleaved := []string{
		"id=0 status=NEW amount=10 note=<nil>", "id=1 status=SHIPPED amount=1099511627776 note=gift",
		"id=2 status=PAID amount=-5 note=<nil>", "id=3 status=NEW amount=7 note=<nil>",
		"id=4 status=PAID amount=8 note=x", "id=5 status=NEW amount=6 note=<nil>",
		"id=6 status=PAID amount=7 note=<nil>", "id=7 status=SHIPPED amount=9 note=<nil>",
	}
	type file struct {
		first int64
		ids   []int  // versions, 1..3
		cols  string // by name, as fileColumns
		group string // partitioner.MetaFileGroup: the files it finished with
	}
	derivedCols := "amount:int64! id:int64! note:string status:string! ts:timestamp_ms!"
	for _, tc := range []struct {
		name   string
		cols   []config.SchemaColumn
		sample int
		orders []order
		files  []file
		rows   []string
	}{{
		name: "column list",
		cols: []config.SchemaColumn{{Name: "id", Type: "int64", Required: true}, {Name: "ts", Type: "timestamp_ms"},
			{Name: "status", Type: "string"}, {Name: "amount", Type: "int64"}, {Name: "note", Type: "string"}},
		orders: interleaved,
		files:  []file{{0, []int{1, 2}, "amount:int64 id:int64! note:string status:string ts:timestamp_ms", ""}},
		rows:   wantInterleaved,
	}, {
		name:   "derived, both versions in the sample",
		orders: interleaved,
		files:  []file{{0, []int{1, 2}, derivedCols, ""}},
		rows:   wantInterleaved,
	}, {
		name:   "derived, v2 after the sample: one wider file",
		sample: 3,
		orders: interleaved[:1:1],
		files: []file{
			{0, []int{1}, "amount:int32! id:int64! status:string! ts:timestamp_ms!", ""},
			{3, []int{1, 2}, derivedCols, ""},
		},
		rows: []string{
			"id=0 status=NEW amount=10 note=<nil>", "id=2 status=PAID amount=-5 note=<nil>", "id=5 status=NEW amount=6 note=<nil>",
			"id=1 status=SHIPPED amount=1099511627776 note=gift", "id=3 status=NEW amount=7 note=<nil>",
			"id=4 status=PAID amount=8 note=x", "id=6 status=PAID amount=7 note=<nil>", "id=7 status=SHIPPED amount=9 note=<nil>",
		},
	}, {
		name: "derived, incompatible version in the middle of the hour",
		orders: []order{
			{v: 1, id: 0, status: "NEW", amount: int32(10)},
			{v: 2, id: 1, status: "SHIPPED", amount: int64(11), note: note("n")},
			{v: 3, id: 2, amount: "twelve"},
			{v: 3, id: 3, amount: "thirteen"},
			{v: 1, id: 4, status: "PAID", amount: int32(14)},
			{v: 2, id: 5, status: "NEW", amount: int64(15)},
		},
		// v3 is another family: a file beside the first, which takes v1
		// and v2 again after it.
		files: []file{
			{0, []int{1, 2}, derivedCols, "0,2"},
			{2, []int{3}, "amount:string! id:int64! ts:timestamp_ms!", "0,2"},
		},
		rows: []string{
			"id=0 status=NEW amount=10 note=<nil>", "id=1 status=SHIPPED amount=11 note=n",
			"id=4 status=PAID amount=14 note=<nil>", "id=5 status=NEW amount=15 note=<nil>",
			"id=2 status=<nil> amount=twelve note=<nil>", "id=3 status=<nil> amount=thirteen note=<nil>",
		},
	}, {
		name: "derived, incompatible families interleaved (a rolling deploy)",
		orders: []order{
			{v: 1, id: 0, status: "NEW", amount: int32(10)},
			{v: 3, id: 1, amount: "eleven"},
			{v: 1, id: 2, status: "PAID", amount: int32(12)},
			{v: 3, id: 3, amount: "thirteen"},
			{v: 2, id: 4, status: "SHIPPED", amount: int64(14), note: note("v2 joins v1's file")},
			{v: 3, id: 5, amount: "fifteen"},
			{v: 1, id: 6, status: "NEW", amount: int32(16)},
			{v: 3, id: 7, amount: "seventeen"},
			{v: 1, id: 8, status: "PAID", amount: int32(18)},
			{v: 3, id: 9, amount: "nineteen"},
		},
		files: []file{
			{0, []int{1, 2}, derivedCols, "0,1"},
			{1, []int{3}, "amount:string! id:int64! ts:timestamp_ms!", "0,1"},
		},
		rows: []string{
			"id=0 status=NEW amount=10 note=<nil>", "id=2 status=PAID amount=12 note=<nil>",
			"id=4 status=SHIPPED amount=14 note=v2 joins v1's file", "id=6 status=NEW amount=16 note=<nil>",
			"id=8 status=PAID amount=18 note=<nil>",
			"id=1 status=<nil> amount=eleven note=<nil>", "id=3 status=<nil> amount=thirteen note=<nil>",
			"id=5 status=<nil> amount=fifteen note=<nil>", "id=7 status=<nil> amount=seventeen note=<nil>",
			"id=9 status=<nil> amount=nineteen note=<nil>",
		},
	}, {
		name:   "derived, interleaved families after the sample",
		sample: 2,
		orders: []order{
			{v: 1, id: 0, status: "NEW", amount: int32(10)},
			{v: 1, id: 1, status: "NEW", amount: int32(11)},
			{v: 3, id: 2, amount: "twelve"},
			{v: 1, id: 3, status: "PAID", amount: int32(13)},
			{v: 3, id: 4, amount: "fourteen"},
			{v: 3, id: 5, amount: "fifteen"},
			{v: 1, id: 6, status: "NEW", amount: int32(16)},
			{v: 3, id: 7, amount: "seventeen"},
		},
		files: []file{
			{0, []int{1}, "amount:int32! id:int64! status:string! ts:timestamp_ms!", "0,2"},
			{2, []int{3}, "amount:string! id:int64! ts:timestamp_ms!", "0,2"},
		},
		rows: []string{
			"id=0 status=NEW amount=10 note=<nil>", "id=1 status=NEW amount=11 note=<nil>",
			"id=3 status=PAID amount=13 note=<nil>", "id=6 status=NEW amount=16 note=<nil>",
			"id=2 status=<nil> amount=twelve note=<nil>", "id=4 status=<nil> amount=fourteen note=<nil>",
			"id=5 status=<nil> amount=fifteen note=<nil>", "id=7 status=<nil> amount=seventeen note=<nil>",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w, lake, ids := registryVersionsWorker(t, tc.cols)
			if tc.sample > 0 {
				w.format.(*registryFormat).sample = tc.sample
			}
			orders := tc.orders
			if len(orders) == 1 { // the sample case: v1 only until the sample ends, then interleaved
				orders = []order{interleaved[0], interleaved[2], interleaved[5], interleaved[1], interleaved[3], interleaved[4], interleaved[6], interleaved[7]}
			}
			ctx := context.Background()
			hour := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
			for off, o := range orders {
				at := hour.Add(time.Duration(off) * time.Second)
				m := kafka.Message{Topic: "events", Offset: int64(off), Value: o.encode(t, ids, at), Time: at, HighWaterMark: int64(len(orders))}
				if err := w.process(ctx, m); err != nil {
					t.Fatalf("process offset %d: %v", off, err)
				}
			}
			if len(w.dlq) > 0 {
				t.Fatalf("%d records dead-lettered", len(w.dlq))
			}
			for h := range w.files {
				if err := w.finish(ctx, h.hour); err != nil {
					t.Fatal(err)
				}
			}
			if got := w.env.Budget.Used(); got != 0 {
				t.Errorf("memory budget holds %d bytes after the files finished, want 0", got)
			}
			files := readLake(t, lake)
			slices.SortFunc(files, func(a, b lakeFile) int { return strings.Compare(a.key, b.key) })
			if len(files) != len(tc.files) {
				t.Fatalf("%d files, want %d", len(files), len(tc.files))
			}
			var rows []string
			for i, f := range files {
				want := tc.files[i]
				if !strings.HasSuffix(f.key, partitioner.FileName("events", 0, want.first)) {
					t.Errorf("file %d is %s, want first offset %d", i, f.key, want.first)
				}
				var wantIDs []int
				for _, v := range want.ids {
					wantIDs = append(wantIDs, ids[v-1])
				}
				if got := partitioner.SchemaIDs(f.meta); !slices.Equal(got, wantIDs) {
					t.Errorf("file %d: schema ids %v, want %v", i, got, wantIDs)
				}
				if got := fileColumns(t, lake, f.key); got != want.cols {
					t.Errorf("file %d: columns %s, want %s", i, got, want.cols)
				}
				if got := f.meta.Extra[partitioner.MetaFileGroup]; got != want.group {
					t.Errorf("file %d: group %q, want %q", i, got, want.group)
				}
				for _, r := range f.rows {
					rows = append(rows, fmt.Sprintf("id=%v status=%v amount=%v note=%v", r["id"], r["status"], r["amount"], r["note"]))
				}
			}
			if !slices.Equal(rows, tc.rows) {
				t.Errorf("rows:\n got %q\nwant %q", rows, tc.rows)
			}
		})
	}
}

// fileColumns describes the columns of the lake file at key by name:
// "name:type" in config spelling, "!" for required.
func fileColumns(t *testing.T, lake *writers.Memory, key string) string {
	t.Helper()
	rc, err := lake.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, path := range f.Schema().Columns() {
		leaf, _ := f.Schema().Lookup(path...)
		n := leaf.Node
		lt := ""
		if l := n.Type().LogicalType(); l != nil {
			lt = l.String()
		}
		typ := n.Type().Kind().String()
		switch k := n.Type().Kind(); {
		case k == parquet.ByteArray:
			typ = "string"
		case k == parquet.Int32 && lt == "DATE":
			typ = "date"
		case k == parquet.Int64 && strings.HasPrefix(lt, "TIMESTAMP") && strings.Contains(lt, "MILLIS"):
			typ = "timestamp_ms"
		case k == parquet.Int64 && strings.HasPrefix(lt, "TIMESTAMP"):
			typ = "timestamp_us"
		}
		c := strings.Join(path, ".") + ":" + strings.ToLower(typ)
		if n.Required() {
			c += "!"
		}
		out = append(out, c)
	}
	return strings.Join(out, " ")
}
