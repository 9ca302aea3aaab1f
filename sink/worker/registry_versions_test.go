package worker

import (
	"bytes"
	"context"
	"fmt"
	"maps"
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
	"github.com/lakesink/lakesink/sink/completion"
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
func registryVersionsWorker(t testing.TB, cols []config.SchemaColumn) (*Worker, *writers.Memory, [3]int) {
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
	w.fx.drain = make(chan struct{})
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

func (o order) encode(t testing.TB, ids [3]int, at time.Time) []byte {
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
			if len(w.dead.queue) > 0 {
				t.Fatalf("%d records dead-lettered", len(w.dead.queue))
			}
			files := finishAndRead(t, w, lake)
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
	b := lakeBytes(t, lake, key)
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

// famOrder is record i of two incompatible families interleaved: v1 at
// even offsets, v3 at odd ones; its id is its offset.
func famOrder(i int) order {
	if i%2 == 0 {
		return order{v: 1, id: int64(i), status: "NEW", amount: int32(i)}
	}
	return order{v: 3, id: int64(i), amount: fmt.Sprint(i)}
}

// TestRegistryFamiliesFinishTogether: the files of one hour's families
// finish together whatever asks for one of them — the hour's close,
// max_file_bytes, a roll within one family — and a replay after a crash
// writes every record exactly once: the hour's done mark covers both
// families' files, and the hour holds the commit at its smaller first
// offset.
func TestRegistryFamiliesFinishTogether(t *testing.T) {
	ctx := context.Background()
	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	type rec struct {
		o  order
		at time.Time
	}
	feed := func(t *testing.T, w *Worker, ids [3]int, recs []rec, from, to int) {
		t.Helper()
		for off := from; off < to; off++ {
			r := recs[off]
			m := kafka.Message{Topic: "events", Offset: int64(off), Value: r.o.encode(t, ids, r.at), Time: r.at, HighWaterMark: int64(len(recs))}
			if err := w.process(ctx, m); err != nil {
				t.Fatalf("process offset %d: %v", off, err)
			}
		}
		if len(w.dead.queue) > 0 {
			t.Fatalf("%d records dead-lettered", len(w.dead.queue))
		}
	}
	finishAll := func(t *testing.T, w *Worker) {
		t.Helper()
		for k := range w.files.byKey {
			if err := w.finish(ctx, k.hour, finishHourClosed); err != nil {
				t.Fatal(err)
			}
		}
	}
	// exactlyOnce checks that the lake, after the orphan rule, holds
	// record 0..n-1 once each, and that each file's group lists files
	// that are there.
	exactlyOnce := func(t *testing.T, lake *writers.Memory, n int) []lakeFile {
		t.Helper()
		files := readLake(t, lake)
		var mf []completion.ManifestFile
		byKey := map[string]lakeFile{}
		for _, f := range files {
			_, _, first, ok := partitioner.ParseFileName(f.key[strings.LastIndex(f.key, "/")+1:])
			if !ok {
				t.Fatalf("file name %s", f.key)
			}
			last := first
			for _, r := range f.rows {
				last = max(last, r["id"].(int64))
			}
			mf = append(mf, completion.ManifestFile{Path: f.key, Topic: "events", FirstOffset: first, LastOffset: last, Group: partitioner.FileGroup(f.meta)})
			byKey[f.key] = f
		}
		kept, orphans, unproven := completion.SplitOrphans(mf)
		for _, o := range append(orphans, unproven...) {
			t.Errorf("orphan %s (offsets %d..%d, group %v)", o.Path, o.FirstOffset, o.LastOffset, o.Group)
		}
		seen := map[int64]int{}
		for _, k := range kept {
			for _, r := range byKey[k.Path].rows {
				seen[r["id"].(int64)]++
			}
		}
		for o := range int64(n) {
			if seen[o] != 1 {
				t.Errorf("record %d in the lake %d times", o, seen[o])
			}
		}
		if len(seen) != n {
			t.Errorf("%d distinct records in the lake, want %d", len(seen), n)
		}
		return files
	}

	t.Run("the hour's close finishes both families' files", func(t *testing.T) {
		w, lake, ids := registryVersionsWorker(t, nil)
		var recs []rec
		for i := range 20 {
			recs = append(recs, rec{famOrder(i), hour.Add(time.Duration(i) * time.Second)})
		}
		// A record past the hour's end plus the allowed lateness closes it.
		recs = append(recs, rec{famOrder(20), hour.Add(time.Hour + w.st.Lateness + time.Second)})
		feed(t, w, ids, recs, 0, len(recs))
		files := readLake(t, lake)
		if len(files) != 2 {
			t.Fatalf("%d files after the hour closed, want 2 (one per family)", len(files))
		}
		for _, f := range files {
			if g := f.meta.Extra[partitioner.MetaFileGroup]; g != "0,1" || len(f.rows) != 10 {
				t.Errorf("%s: group %q, %d records; want \"0,1\", 10", f.key, g, len(f.rows))
			}
		}
		if len(w.files.byKey) != 1 || w.files.byKey[fileKey{hour: hour.Add(time.Hour).UnixMilli()}] == nil {
			t.Errorf("open files %v, want the next hour's only", slices.Collect(maps.Keys(w.files.byKey)))
		}
		if c, _ := w.led.CommitPoint(); c != 20 {
			t.Errorf("commit point %d, want 20 (the next hour's file)", c)
		}
		finishAll(t, w)
		exactlyOnce(t, lake, len(recs))
	})

	t.Run("max_file_bytes finishes both families' files", func(t *testing.T) {
		w, lake, ids := registryVersionsWorker(t, nil)
		w.format.(*registryFormat).sample = 2
		w.env.MaxFileBytes = 2 << 10
		var recs []rec
		for i := range 400 {
			recs = append(recs, rec{famOrder(i), hour.Add(time.Duration(i) * time.Second)})
		}
		feed(t, w, ids, recs, 0, len(recs))
		finishAll(t, w)
		files := exactlyOnce(t, lake, len(recs))
		// Files come in groups of two, one per family, each listing both.
		groups := map[string]int{}
		for _, f := range files {
			g := f.meta.Extra[partitioner.MetaFileGroup]
			if strings.Count(g, ",") != 1 {
				t.Fatalf("%s: group %q, want two files", f.key, g)
			}
			groups[g]++
		}
		if len(groups) < 3 {
			t.Fatalf("%d groups of files, want the size cap to cut several", len(groups))
		}
		for g, n := range groups {
			if n != 2 {
				t.Errorf("group %s: %d files, want 2", g, n)
			}
		}
	})

	t.Run("a roll within one family finishes the other's file too", func(t *testing.T) {
		w, lake, ids := registryVersionsWorker(t, nil)
		w.format.(*registryFormat).sample = 2
		var recs []rec
		for i := range 6 {
			recs = append(recs, rec{famOrder(i), hour.Add(time.Duration(i) * time.Second)})
		}
		// v2 after v1's file sealed with v1's columns: a wider file.
		recs = append(recs, rec{order{v: 2, id: 6, status: "SHIPPED", amount: int64(6)}, hour.Add(6 * time.Second)},
			rec{famOrder(7), hour.Add(7 * time.Second)})
		feed(t, w, ids, recs, 0, len(recs))
		if files := readLake(t, lake); len(files) != 2 {
			t.Fatalf("%d files after the roll, want 2", len(files))
		}
		finishAll(t, w)
		files := exactlyOnce(t, lake, len(recs))
		var firsts []string
		for _, f := range files {
			_, _, first, _ := partitioner.ParseFileName(f.key[strings.LastIndex(f.key, "/")+1:])
			firsts = append(firsts, fmt.Sprintf("%d/%s", first, f.meta.Extra[partitioner.MetaFileGroup]))
		}
		slices.Sort(firsts)
		if want := []string{"0/0,1", "1/0,1", "6/6,7", "7/6,7"}; !slices.Equal(firsts, want) {
			t.Errorf("files (first offset/group) %v, want %v", firsts, want)
		}
	})

	for _, tc := range []struct {
		name string
		// prev: record 0 is of the hour before, whose open file holds the
		// commit below the hour's records (so the hour's done mark is in
		// the commit); else the hour's own files hold it.
		prev bool
	}{{"the done mark covers both families", true}, {"the hour holds the commit at its smaller first offset", false}} {
		t.Run("replay after a crash: "+tc.name, func(t *testing.T) {
			w, lake, ids := registryVersionsWorker(t, nil)
			var recs []rec
			for i := range 30 {
				recs = append(recs, rec{famOrder(i), hour.Add(time.Duration(i) * time.Second)})
			}
			if tc.prev {
				recs[0].at = hour.Add(-30 * time.Minute)
			}
			feed(t, w, ids, recs, 0, 20)
			// Something finishes the hour's files (idleness, memory, …):
			// both families' files, in one step.
			if err := w.finish(ctx, hour.UnixMilli(), finishHourClosed); err != nil {
				t.Fatal(err)
			}
			feed(t, w, ids, recs, 20, 25)
			c, meta := w.led.CommitPoint()
			if want := int64(20); tc.prev && c != 0 || !tc.prev && c != want {
				t.Fatalf("commit point %d", c)
			}
			if tc.prev && !slices.Equal(meta.Done, []ledger.DoneMark{{Hour: hour.UnixMilli(), To: 20}}) {
				t.Fatalf("done marks %+v, want the hour's up to 20", meta.Done)
			}
			// Crash: the open files are lost; a new owner resumes from the
			// commit, its format inferring afresh.
			w.abandonAll()
			w.led = ledger.New(c, meta, w.st.Lateness.Milliseconds())
			f, err := newFormat(w.fx)
			if err != nil {
				t.Fatal(err)
			}
			w.format = f
			w.files.clean()
			feed(t, w, ids, recs, int(c), len(recs))
			finishAll(t, w)
			if got := w.env.Budget.Used(); got != 0 {
				t.Errorf("memory budget holds %d bytes after the files finished, want 0", got)
			}
			exactlyOnce(t, lake, len(recs))
		})
	}
}
