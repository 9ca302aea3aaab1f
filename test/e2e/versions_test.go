package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/test/lakecheck"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
)

// The writer schema version cases: registry streams that
// TestFormatsAvroProtobuf and TestJSONSchemaStream run next to their own
// streams, on the same broker, registry and lakesink process, so that every
// registry format is covered with and without a column list, and an
// incompatible change in the middle of an hour.

// versionCase is one such stream: its topic (one partition, named like the
// stream), the records sent to it, all of one hour, and the files that hour
// must have.
type versionCase struct {
	stream string
	format string
	time   string // time.field
	more   string // further keys of the stream entry (a schema list), indented by 4
	msgs   [][]byte
	key    string        // the column whose value (fmt.Sprint) tells rows apart
	files  []versionFile // in offset order
}

// versionFile is a data file a versionCase must have.
type versionFile struct {
	ids  []int    // writer schema ids in the manifest and the footer
	cols []string // leaf columns, "name TYPE", "?" after an optional one's name
	// rows are the file's exact rows (every column, nil for null), by the
	// key column's value.
	rows map[string]map[string]any
}

// yaml is the case's entry under streams.
func (c versionCase) yaml() string {
	return fmt.Sprintf("  - name: %s\n    topics: [%s]\n    format: %s\n    time: {field: %s}\n    allowed_lateness: 1m\n%s",
		c.stream, c.stream, c.format, c.time, c.more)
}

// sendVersionCases creates the cases' topics and sends their records.
func sendVersionCases(t *testing.T, k *testenv.Kafka, cases []versionCase) {
	t.Helper()
	for _, c := range cases {
		k.CreateTopic(t, c.stream, 1)
		sendValues(t, k.Addr, c.stream, c.msgs)
	}
}

// versionCasesYAML is the cases' entries under streams.
func versionCasesYAML(cases []versionCase) string {
	var b strings.Builder
	for _, c := range cases {
		b.WriteString(c.yaml())
	}
	return b.String()
}

// checkVersionCase waits for the case's hour marker and checks the hour's
// files against c: their count, writer schema ids (manifest and footer),
// columns and exact rows, every record exactly once.
func checkVersionCase(t *testing.T, root string, hour time.Time, c versionCase) {
	t.Helper()
	folder := fmt.Sprintf("%s/dt=%s/hour=%s", c.stream, hour.Format("2006-01-02"), hour.Format("15"))
	lake, m := awaitLocalManifest(t, root, folder, 90*time.Second)
	files := slices.Clone(m.Files)
	slices.SortFunc(files, func(a, b completion.ManifestFile) int { return int(a.FirstOffset - b.FirstOffset) })
	if len(files) != len(c.files) {
		t.Errorf("%s: %d files, want %d: %+v", c.stream, len(files), len(c.files), files)
		return
	}
	n := 0
	for _, f := range c.files {
		n += len(f.rows)
	}
	if m.Records != int64(n) {
		t.Errorf("%s: manifest records = %d, want %d", c.stream, m.Records, n)
	}
	seen := map[string]int{}
	for i, f := range files {
		want := c.files[i]
		if !slices.Equal(f.SchemaIDs, want.ids) || (len(want.ids) == 1) != (f.SchemaID == want.ids[0]) {
			t.Errorf("%s file %d: manifest schema_ids %v, schema_id %d; want %v (and schema_id only if one)", c.stream, i, f.SchemaIDs, f.SchemaID, want.ids)
		}
		checkSchemaIDFooter(t, lake, f.Path, want.ids)
		rows, schema := readParquet(t, lake, f.Path)
		if cols, wcols := leafColumns(schema), slices.Sorted(slices.Values(want.cols)); !slices.Equal(cols, wcols) {
			t.Errorf("%s file %d: columns\n%v, want\n%v", c.stream, i, cols, wcols)
		}
		if f.Records != int64(len(want.rows)) || len(rows) != len(want.rows) {
			t.Errorf("%s file %d: %d rows (manifest %d), want %d", c.stream, i, len(rows), f.Records, len(want.rows))
		}
		for _, r := range rows {
			k := fmt.Sprint(r[c.key])
			seen[k]++
			if w, ok := want.rows[k]; !ok {
				t.Errorf("%s file %d: unexpected row %v", c.stream, i, r)
			} else if !maps.Equal(r, w) {
				t.Errorf("%s file %d: row %s = %v, want %v", c.stream, i, k, r, w)
			}
		}
	}
	for _, f := range c.files {
		for k := range f.rows {
			if seen[k] != 1 {
				t.Errorf("%s: row %s is in the lake %d times, want once", c.stream, k, seen[k])
			}
		}
	}
}

// leafColumns describes a file's leaf columns, sorted (parquet-go orders a
// group's fields by name): "name TYPE", "?" after the name of an optional
// one.
func leafColumns(schema *parquet.Schema) []string {
	var out []string
	for _, path := range schema.Columns() {
		leaf, _ := schema.Lookup(path...)
		opt := ""
		if leaf.Node.Optional() {
			opt = "?"
		}
		out = append(out, strings.Join(path, ".")+opt+" "+leaf.Node.Type().String())
	}
	return out
}

// checkSchemaIDFooter checks a data file's footer: lakesink.schema_ids are
// ids, and lakesink.schema_id is there exactly when there is one.
func checkSchemaIDFooter(t *testing.T, lake writers.Writer, key string, ids []int) {
	t.Helper()
	f := lakecheck.OpenParquet(t, lake, key)
	var want []string
	for _, id := range ids {
		want = append(want, strconv.Itoa(id))
	}
	if got, _ := f.Lookup(partitioner.MetaSchemaIDs); got != strings.Join(want, ",") {
		t.Errorf("%s: footer %s = %q, want %q", key, partitioner.MetaSchemaIDs, got, strings.Join(want, ","))
	}
	one, ok := f.Lookup(partitioner.MetaSchemaID)
	if len(ids) == 1 && one != want[0] || len(ids) != 1 && ok {
		t.Errorf("%s: footer %s = %q (present %v), want it only with one id %v", key, partitioner.MetaSchemaID, one, ok, ids)
	}
}

// avroValue is a Confluent-framed Avro value of schema id.
func avroValue(t *testing.T, s avro.Schema, id int, v any) []byte {
	t.Helper()
	body, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatal(err)
	}
	return append(confluent.Header(id), body...)
}

const (
	shipmentV1Schema = `{"type": "record", "name": "Shipment", "namespace": "shop", "fields": [
  {"name": "id", "type": "long"},
  {"name": "shipped_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "SHIPPED"]}},
  {"name": "weight", "type": "float"},
  {"name": "note", "type": "string"}
]}`
	// v2 adds an optional field and an enum symbol and promotes weight
	// to double: compatible changes.
	shipmentV2Schema = `{"type": "record", "name": "Shipment", "namespace": "shop", "fields": [
  {"name": "id", "type": "long"},
  {"name": "shipped_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "SHIPPED", "DELIVERED"]}},
  {"name": "weight", "type": "double"},
  {"name": "note", "type": "string"},
  {"name": "carrier", "type": ["null", "string"], "default": null}
]}`
)

type shipmentV1 struct {
	ID        int64     `avro:"id"`
	ShippedAt time.Time `avro:"shipped_at"`
	Status    string    `avro:"status"`
	Weight    float32   `avro:"weight"`
	Note      string    `avro:"note"`
}

type shipmentV2 struct {
	ID        int64     `avro:"id"`
	ShippedAt time.Time `avro:"shipped_at"`
	Status    string    `avro:"status"`
	Weight    float64   `avro:"weight"`
	Note      string    `avro:"note"`
	Carrier   *string   `avro:"carrier"`
}

// avroListCase: Avro with a column list, v1 and v2 (an added optional
// field, an added enum symbol, float promoted to double) interleaved.
// One file of both ids; the listed columns only (note is not listed), v1
// rows null in carrier.
func avroListCase(t *testing.T, reg *testenv.Registry, base time.Time) versionCase {
	v1 := reg.Register("shipments-value", "AVRO", shipmentV1Schema)
	v2 := reg.Register("shipments-value", "AVRO", shipmentV2Schema)
	s1, s2 := avro.MustParse(shipmentV1Schema), avro.MustParse(shipmentV2Schema)
	c := versionCase{stream: "shipments", format: "avro", time: "shipped_at", key: "id", more: `    schema:
      - {name: id, type: int64, required: true}
      - {name: shipped_at, type: timestamp_ms, required: true}
      - {name: status, type: string}
      - {name: weight, type: double}
      - {name: carrier, type: string}
`}
	f := versionFile{ids: []int{v1, v2}, rows: map[string]map[string]any{},
		cols: []string{"id INT(64,true)", "shipped_at TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)", "status? STRING", "weight? DOUBLE", "carrier? STRING"}}
	for i := range int64(16) {
		at := base.Add(time.Duration(i)*time.Second + 7*time.Millisecond)
		row := map[string]any{"id": i, "shipped_at": at.UnixMilli(), "weight": float64(i) + 0.5, "carrier": nil}
		if i%2 == 0 {
			row["status"] = []string{"NEW", "SHIPPED"}[i/2%2]
			c.msgs = append(c.msgs, avroValue(t, s1, v1, shipmentV1{ID: i, ShippedAt: at, Status: row["status"].(string), Weight: float32(i) + 0.5, Note: "n"}))
		} else {
			row["status"] = []string{"SHIPPED", "DELIVERED"}[i/2%2]
			o := shipmentV2{ID: i, ShippedAt: at, Status: row["status"].(string), Weight: float64(i) + 0.5, Note: "n"}
			if i%4 == 1 {
				carrier := "dhl-" + strconv.FormatInt(i, 10)
				o.Carrier, row["carrier"] = &carrier, carrier
			}
			c.msgs = append(c.msgs, avroValue(t, s2, v2, o))
		}
		f.rows[fmt.Sprint(i)] = row
	}
	c.files = []versionFile{f}
	return c
}

// orderVersions registers orders v1 and v2 under subject.
func orderVersions(reg *testenv.Registry, subject string) orderWriter {
	return orderWriter{v1: reg.Register(subject, "AVRO", orderV1Schema), v2: reg.Register(subject, "AVRO", orderV2Schema),
		s1: avro.MustParse(orderV1Schema), s2: avro.MustParse(orderV2Schema)}
}

// orderWriter writes orders as v1 or v2 values.
type orderWriter struct {
	v1, v2 int
	s1, s2 avro.Schema
}

// orderUnion is the derived columns of orders v1 and v2 in one file.
var orderUnion = []string{"id INT(64,true)", "created_at TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)",
	"seen_us TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", "day DATE", "device.id STRING", "coupon? STRING"}

// value returns order i at as a value of v1 (v2 false) or v2 (with a
// coupon when i%4 == 1), and its row in orderUnion.
func (o orderWriter) value(t *testing.T, i int64, at time.Time, v2 bool) ([]byte, map[string]any) {
	o1 := orderV1{ID: i, CreatedAt: at, SeenUs: at.Add(3 * time.Microsecond), Day: at.Truncate(24 * time.Hour), Device: avroDevice{ID: "dev-" + strconv.FormatInt(i%3, 10)}}
	row := map[string]any{"id": i, "created_at": at.UnixMilli(), "seen_us": at.Add(3 * time.Microsecond).UnixMicro(),
		"day": int32(at.Unix() / 86400), "device.id": o1.Device.ID, "coupon": nil}
	if !v2 {
		return avroValue(t, o.s1, o.v1, o1), row
	}
	o2 := orderV2{ID: o1.ID, CreatedAt: o1.CreatedAt, SeenUs: o1.SeenUs, Day: o1.Day, Device: o1.Device}
	if i%4 == 1 {
		coupon := "c-" + strconv.FormatInt(i, 10)
		o2.Coupon, row["coupon"] = &coupon, coupon
	}
	return avroValue(t, o.s2, o.v2, o2), row
}

// avroIncompatibleCase: Avro with derived columns, on one partition in one
// hour: orders v1 and v2 interleaved, then, from the middle of the hour on,
// v3 (id turns from long to string, which does not widen) interleaved with
// them, as while producers are rolled to an incompatible schema. Each
// family keeps its own file of the hour: two files, [v1 v2] with their
// union and [v3] with its own columns, finished together; nothing
// dead-lettered, every record once.
func avroIncompatibleCase(t *testing.T, reg *testenv.Registry, base time.Time) versionCase {
	o := orderVersions(reg, "orders_evolving-value")
	v3 := reg.Register("orders_evolving-value", "AVRO", orderV3Schema)
	s3 := avro.MustParse(orderV3Schema)
	c := versionCase{stream: "orders_evolving", format: "avro", time: "created_at", key: "id", files: []versionFile{
		{ids: []int{o.v1, o.v2}, cols: orderUnion, rows: map[string]map[string]any{}},
		{ids: []int{v3}, cols: []string{"id STRING", "created_at TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)"}, rows: map[string]map[string]any{}},
	}}
	for i := range int64(30) {
		at := base.Add(time.Duration(i)*time.Second + 250*time.Millisecond)
		if i >= 10 && i%3 != 0 { // v3, interleaved from record 10 on
			id := "x-" + strconv.FormatInt(i, 10)
			c.msgs = append(c.msgs, avroValue(t, s3, v3, map[string]any{"id": id, "created_at": at}))
			c.files[1].rows[id] = map[string]any{"id": id, "created_at": at.UnixMilli()}
			continue
		}
		msg, row := o.value(t, i, at, i%2 == 1)
		c.msgs = append(c.msgs, msg)
		c.files[0].rows[fmt.Sprint(i)] = row
	}
	return c
}

// avroRollCase: Avro with derived columns, a full sample of v1 (1,000
// records) and then v1 and v2 interleaved, in one hour. The first file's
// columns are settled as v1's; the first v2 record is not covered, so it
// finishes the file and starts a wider one of the union, which v1 records
// then share: two files.
func avroRollCase(t *testing.T, reg *testenv.Registry, base time.Time) versionCase {
	o := orderVersions(reg, "orders_rolling-value")
	c := versionCase{stream: "orders_rolling", format: "avro", time: "created_at", key: "id", files: []versionFile{
		{ids: []int{o.v1}, cols: slices.DeleteFunc(slices.Clone(orderUnion), func(c string) bool { return strings.HasPrefix(c, "coupon") }),
			rows: map[string]map[string]any{}},
		{ids: []int{o.v1, o.v2}, cols: orderUnion, rows: map[string]map[string]any{}},
	}}
	const sample = 1000 // the registry sample of a file (sink/worker)
	for i := range int64(sample + 20) {
		msg, row := o.value(t, i, base.Add(time.Duration(i)*100*time.Millisecond), i >= sample && i%2 == 0)
		c.msgs = append(c.msgs, msg)
		f := c.files[1]
		if i < sample {
			f = c.files[0]
			delete(row, "coupon")
		}
		f.rows[fmt.Sprint(i)] = row
	}
	return c
}

// protobufDerivedCase: Protobuf with derived columns, the readings of
// TestFormatsAvroProtobuf (msgs: v1 and v2, which adds firmware,
// interleaved). One file of both ids whose columns are the union,
// firmware optional and null in v1 rows.
func protobufDerivedCase(msgs [][]byte, pid, pid2 int, base time.Time) versionCase {
	f := versionFile{ids: []int{pid, pid2}, rows: map[string]map[string]any{},
		cols: []string{"device STRING", "event_time? TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", "temp DOUBLE", "seq INT(64,true)", "firmware? STRING"}}
	for i := range int64(len(msgs)) {
		var fw any
		if i%2 == 1 {
			fw = "fw-" + strconv.FormatInt(i, 10)
		}
		f.rows[fmt.Sprint(i)] = map[string]any{"device": "sensor-" + strconv.FormatInt(i%4, 10),
			"event_time": base.Add(time.Duration(i)*time.Second + 789*time.Microsecond).UnixMicro(), "temp": 21.0, "seq": i, "firmware": fw}
	}
	return versionCase{stream: "readings_derived", format: "protobuf", time: "event_time", key: "seq", msgs: msgs, files: []versionFile{f}}
}
