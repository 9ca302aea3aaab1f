package confluent_test

import (
	"errors"
	"math/big"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/registry"
	"github.com/lakesink/lakesink/test/schemaregistry"
)

const clickV1 = `{"type":"record","name":"Click","namespace":"shop","fields":[
 {"name":"event_id","type":"string"},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"price","type":["null","double"],"default":null},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
 {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["VIEW","BUY"]}},
 {"name":"device","type":{"type":"record","name":"Device","fields":[{"name":"id","type":"string"},{"name":"os","type":["null","string"],"default":null}]}},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":"long"}},
 {"name":"raw","type":"bytes"},
 {"name":"us","type":{"type":"long","logicalType":"timestamp-micros"}}
]}`

const clickV2 = `{"type":"record","name":"Click","namespace":"shop","fields":[
 {"name":"event_id","type":"string"},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"user","type":"string","default":"anon"}
]}`

type env struct {
	srv *schemaregistry.Server
	reg *registry.Client
}

func newEnv(t testing.TB) *env {
	srv := schemaregistry.New(schemaregistry.Options{})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	c, err := registry.New(registry.Config{URL: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return &env{srv: srv, reg: c}
}

func avroRecord(t testing.TB, id int, schema string, v any) []byte {
	t.Helper()
	s, err := avro.ParseWithCache(schema, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatal(err)
	}
	return append(confluent.Header(id), b...)
}

var ts = time.Date(2026, 11, 25, 13, 4, 5, 123_000_000, time.UTC)

func clickV1Value() map[string]any {
	return map[string]any{
		"event_id": "e1", "ts": ts, "day": time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		"price": map[string]any{"double": 9.5}, "amount": big.NewRat(-1250, 100), "kind": "BUY",
		"device": map[string]any{"id": "d1", "os": nil}, "tags": []any{"a", "b\"c"},
		"attrs": map[string]any{"n": int64(3)}, "raw": []byte{0, 1, 2}, "us": ts.Add(456 * time.Microsecond),
	}
}

func newDecoder(t testing.TB, e *env, f confluent.Format, spec confluent.Spec) *confluent.Decoder {
	t.Helper()
	spec.Stream, spec.Format, spec.Registry = "s", f, e.reg
	d, err := confluent.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// colVal is a column a decoder should produce and its value (as show
// renders it) for the record under test.
type colVal struct {
	col partitioner.Column
	val string
}

// requireColumns checks a decoder's columns and a decoded row against want.
func requireColumns(t *testing.T, cols []partitioner.Column, row []parquet.Value, want []colVal) {
	t.Helper()
	if len(cols) != len(want) || len(row) != len(want) {
		t.Fatalf("got %d columns, %d values; want %d: %+v", len(cols), len(row), len(want), cols)
	}
	for i, w := range want {
		if cols[i] != w.col {
			t.Errorf("column %d: got %+v, want %+v", i, cols[i], w.col)
		}
		if got := show(row[i]); got != w.val {
			t.Errorf("%s: got %s, want %s", w.col.Name, got, w.val)
		}
	}
}

func show(v parquet.Value) string {
	if v.IsNull() {
		return "<null>"
	}
	return v.String()
}

func TestAvroDerived(t *testing.T) {
	e := newEnv(t)
	id := e.srv.Register("click-value", "AVRO", clickV1)
	d := newDecoder(t, e, confluent.Avro, confluent.Spec{TimePath: "ts", TimeFormat: decode.UnixMillis})
	row, ev, err := d.Decode(avroRecord(t, id, clickV1, clickV1Value()), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Equal(ts) {
		t.Errorf("event time %v, want %v", ev, ts)
	}
	if d.SchemaID() != id {
		t.Errorf("schema id %d, want %d", d.SchemaID(), id)
	}
	want := []colVal{
		{partitioner.Column{Name: "event_id", Type: partitioner.TypeString, Required: true}, "e1"},
		{partitioner.Column{Name: "ts", Type: partitioner.TypeTimestampMillis, Required: true}, strconv.FormatInt(ts.UnixMilli(), 10)},
		{partitioner.Column{Name: "day", Type: partitioner.TypeDate, Required: true}, strconv.FormatInt(ts.Unix()/86400, 10)},
		{partitioner.Column{Name: "price", Type: partitioner.TypeDouble}, "9.5"},
		{partitioner.Column{Name: "amount", Type: partitioner.TypeString, Required: true}, "-12.50"},
		{partitioner.Column{Name: "kind", Type: partitioner.TypeString, Required: true}, "BUY"},
		{partitioner.Column{Name: "device.id", Type: partitioner.TypeString, Required: true}, "d1"},
		{partitioner.Column{Name: "device.os", Type: partitioner.TypeString}, "<null>"},
		{partitioner.Column{Name: "tags", Type: partitioner.TypeJSON}, `["a","b\"c"]`},
		{partitioner.Column{Name: "attrs", Type: partitioner.TypeJSON}, `{"n":3}`},
		{partitioner.Column{Name: "raw", Type: partitioner.TypeString, Required: true}, "AAEC"},
		{partitioner.Column{Name: "us", Type: partitioner.TypeTimestampMicros, Required: true}, strconv.FormatInt(ts.UnixMicro()+456, 10)},
	}
	requireColumns(t, d.Schema().Columns(), row, want)
}

func TestAvroFixedColumnsAndEvolution(t *testing.T) {
	e := newEnv(t)
	id1 := e.srv.Register("click-value", "AVRO", clickV1)
	id2 := e.srv.Register("click-value", "AVRO", clickV2)
	fields := []decode.Field{
		{Column: partitioner.Column{Name: "event_id", Type: partitioner.TypeString, Required: true}},
		{Column: partitioner.Column{Name: "ts", Type: partitioner.TypeTimestampMicros}},
		{Column: partitioner.Column{Name: "device_id", Type: partitioner.TypeString}, Path: "device.id"},
		{Column: partitioner.Column{Name: "attrs", Type: partitioner.TypeJSON}},
		{Column: partitioner.Column{Name: "user", Type: partitioner.TypeString}},
	}
	d := newDecoder(t, e, confluent.Avro, confluent.Spec{Fields: fields, TimePath: "ts", TimeFormat: decode.UnixMillis})
	row, _, err := d.Decode(avroRecord(t, id1, clickV1, clickV1Value()), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{show(row[0]), show(row[1]), show(row[2]), show(row[3]), show(row[4])}
	want := []string{"e1", strconv.FormatInt(ts.UnixMicro(), 10), "d1", `{"n":3}`, "<null>"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("column %d: got %s, want %s", i, got[i], want[i])
		}
	}
	fixed := d.Schema()
	row, _, err = d.Decode(avroRecord(t, id2, clickV2, map[string]any{"event_id": "e2", "ts": ts, "user": "u9"}), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if d.SchemaID() != id2 || d.Schema() != fixed {
		t.Errorf("after v2: id %d schema changed %v", d.SchemaID(), d.Schema() != fixed)
	}
	if show(row[0]) != "e2" || show(row[2]) != "<null>" || show(row[4]) != "u9" {
		t.Errorf("v2 row: %v", row)
	}

	// A writer schema without a required column is incompatible.
	id3 := e.srv.Register("click-value", "AVRO", `{"type":"record","name":"Click","namespace":"shop","fields":[{"name":"ts","type":"long"}]}`)
	_, _, err = d.Decode(avroRecord(t, id3, `{"type":"record","name":"Click","fields":[{"name":"ts","type":"long"}]}`, map[string]any{"ts": int64(1)}), time.Time{})
	wantReason(t, err, confluent.ReasonIncompatible)
	// A type that does not convert is incompatible too.
	id4 := e.srv.Register("click-value", "AVRO", `{"type":"record","name":"Click","fields":[{"name":"event_id","type":"long"},{"name":"ts","type":"long"}]}`)
	_, _, err = d.Decode(avroRecord(t, id4, `{"type":"record","name":"Click","fields":[{"name":"event_id","type":"long"},{"name":"ts","type":"long"}]}`, map[string]any{"event_id": int64(1), "ts": int64(1)}), time.Time{})
	wantReason(t, err, confluent.ReasonIncompatible)
}

func wantReason(t *testing.T, err error, r decode.Reason) {
	t.Helper()
	var de *decode.Error
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a *decode.Error with reason %s", err, r)
	}
	if de.Reason != r {
		t.Fatalf("got reason %s (%v), want %s", de.Reason, de, r)
	}
}

func TestAvroBadRecords(t *testing.T) {
	e := newEnv(t)
	id := e.srv.Register("click-value", "AVRO", clickV1)
	good := avroRecord(t, id, clickV1, clickV1Value())
	nullTime := `{"type":"record","name":"N","fields":[{"name":"ts","type":["null","long"]}]}`
	nid := e.srv.Register("n-value", "AVRO", nullTime)
	badUTF8 := append(confluent.Header(id), good[5:]...)
	badUTF8[6] = 0xff // inside "e1"
	cases := []struct {
		name  string
		value []byte
		want  decode.Reason
	}{
		{"empty", nil, confluent.ReasonTruncated},
		{"bad magic", append([]byte{1}, good[1:]...), confluent.ReasonBadMagic},
		{"json", []byte(`{"a":1}`), confluent.ReasonBadMagic},
		{"short header", good[:3], confluent.ReasonTruncated},
		{"unknown id", append(confluent.Header(999), good[5:]...), confluent.ReasonUnknownSchema},
		{"truncated body", good[:len(good)-3], confluent.ReasonTruncated},
		{"trailing bytes", append(append([]byte(nil), good...), 7), confluent.ReasonBadPayload},
		{"bad utf8", badUTF8, decode.ReasonBadUTF8},
		{"null time", avroRecord(t, nid, nullTime, map[string]any{"ts": nil}), decode.ReasonBadTime},
		{"time out of range", avroRecord(t, nid, nullTime, map[string]any{"ts": map[string]any{"long": int64(-5)}}), decode.ReasonBadTime},
		{"oversized", append(confluent.Header(id), make([]byte, 5000)...), decode.ReasonOversized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDecoder(t, e, confluent.Avro, confluent.Spec{TimePath: "ts", TimeFormat: decode.UnixMillis, MaxBytes: 4096})
			row, _, err := d.Decode(c.value, time.Time{})
			if row != nil {
				t.Errorf("got a row with an error")
			}
			wantReason(t, err, c.want)
		})
	}
}

func TestProtobufStreamRejectsAvroSchema(t *testing.T) {
	e := newEnv(t)
	id := e.srv.Register("click-value", "AVRO", clickV1)
	d := newDecoder(t, e, confluent.Protobuf, confluent.Spec{})
	_, _, err := d.Decode(append(confluent.Header(id), 0, 1), time.Time{})
	wantReason(t, err, confluent.ReasonIncompatible)
}

func TestRegistryDownIsNotADeadLetter(t *testing.T) {
	c, err := registry.New(registry.Config{URL: "http://127.0.0.1:1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d, err := confluent.New(confluent.Spec{Stream: "s", Format: confluent.Avro, Registry: c})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = d.Decode(append(confluent.Header(1), 2), time.Time{})
	var de *decode.Error
	if err == nil || errors.As(err, &de) {
		t.Fatalf("got %v, want a retryable error", err)
	}
}
