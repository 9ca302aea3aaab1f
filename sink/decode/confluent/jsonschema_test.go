package confluent_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/registry"
	"github.com/lakesink/lakesink/test/schemaregistry"
)

const (
	orderJSONv1 = `{"$schema":"http://json-schema.org/draft-07/schema#","title":"Order","type":"object",
 "properties":{
  "id":{"type":"integer"},
  "at":{"type":"string","format":"date-time"},
  "day":{"type":"string","format":"date"},
  "kind":{"type":"string","enum":["VIEW","BUY"]},
  "price":{"type":["number","null"]},
  "device":{"$ref":"#/definitions/Device"},
  "tags":{"type":"array","items":{"type":"string"}}
 },
 "required":["id","at","device"],
 "definitions":{"Device":{"type":"object","properties":{"id":{"type":"string"},"os":{"type":"string"}},"required":["id"]}}}`
	// v2 adds an optional property.
	orderJSONv2 = `{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"Order","type":"object",
 "properties":{
  "id":{"type":"integer"},
  "at":{"type":"string","format":"date-time"},
  "coupon":{"type":"string"}
 },
 "required":["id","at"]}`
	orderJSON = `{"id":7,"at":"2026-11-25T13:04:05.123456Z","day":"2026-11-25","kind":"BUY","price":9.5,
 "device":{"id":"d1","os":null},"tags":["a","b"],"unknown":{"x":1}}`
)

func framed(id int, body string) []byte {
	return append(confluent.Header(id), body...)
}

func TestJSONSchemaDerived(t *testing.T) {
	e := newEnv(t)
	id := e.srv.Register("orders-value", "JSON", orderJSONv1)
	d := newDecoder(t, e, confluent.JSONSchema, confluent.Spec{TimePath: "at", TimeFormat: decode.UnixMillis})
	row, ev, err := d.Decode(framed(id, orderJSON), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 13, 4, 5, 123456000, time.UTC)
	if !ev.Equal(at) {
		t.Errorf("event time %v, want %v", ev, at)
	}
	if d.SchemaID() != id {
		t.Errorf("schema id %d, want %d", d.SchemaID(), id)
	}
	want := []colVal{
		{partitioner.Column{Name: "id", Type: partitioner.TypeInt64, Required: true}, "7"},
		{partitioner.Column{Name: "at", Type: partitioner.TypeTimestampMicros, Required: true}, strconv.FormatInt(at.UnixMicro(), 10)},
		{partitioner.Column{Name: "day", Type: partitioner.TypeDate}, strconv.FormatInt(at.Unix()/86400, 10)},
		{partitioner.Column{Name: "kind", Type: partitioner.TypeString}, "BUY"},
		{partitioner.Column{Name: "price", Type: partitioner.TypeDouble}, "9.5"},
		{partitioner.Column{Name: "device.id", Type: partitioner.TypeString, Required: true}, "d1"},
		{partitioner.Column{Name: "device.os", Type: partitioner.TypeString}, "<null>"},
		{partitioner.Column{Name: "tags", Type: partitioner.TypeJSON}, `["a","b"]`},
	}
	requireColumns(t, d.Schema().Columns(), row, want)
}

func TestJSONSchemaEvolutionAndPlainValues(t *testing.T) {
	e := newEnv(t)
	v1 := e.srv.Register("orders-value", "JSON", orderJSONv1)
	v2 := e.srv.Register("orders-value", "JSON", orderJSONv2)
	subject := confluent.NewSubject("orders-value")
	spec := confluent.Spec{TimePath: "at", TimeFormat: decode.UnixMillis, Subject: subject}
	d := newDecoder(t, e, confluent.JSONSchema, spec)

	if _, _, err := d.Decode(framed(v1, orderJSON), time.Time{}); err != nil {
		t.Fatal(err)
	}
	s1 := d.Schema()
	row, _, err := d.Decode(framed(v2, `{"id":8,"at":"2026-11-25T13:00:00Z","coupon":"c-8"}`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if d.SchemaID() != v2 || d.Schema() == s1 {
		t.Fatalf("after a v2 record: schema id %d (want %d), schema changed %v", d.SchemaID(), v2, d.Schema() != s1)
	}
	if n := len(d.Schema().Columns()); n != 3 || show(row[2]) != "c-8" {
		t.Errorf("v2: %d columns, row %v", n, row)
	}

	// A plain value uses the subject's latest version (v2), pinned by the
	// first plain value: a v3 registered afterwards is not picked up, by
	// this or another decoder of the stream.
	plain := []byte(" \n{\"id\":9,\"at\":\"2026-11-25T13:00:00Z\",\"coupon\":\"c-9\"}")
	if _, _, err := d.Decode(plain, time.Time{}); err != nil || d.SchemaID() != v2 {
		t.Fatalf("first plain value: %v, schema id %d, want %d", err, d.SchemaID(), v2)
	}
	v3 := e.srv.Register("orders-value", "JSON", `{"type":"object","properties":{"id":{"type":"integer"},"at":{"type":"string"}}}`)
	for i, dec := range []*confluent.Decoder{d, newDecoder(t, e, confluent.JSONSchema, spec)} {
		row, _, err = dec.Decode(plain, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if dec.SchemaID() != v2 || show(row[0]) != "9" || show(row[2]) != "c-9" {
			t.Errorf("decoder %d: plain value: schema id %d (want %d, not v3 %d), row %v", i, dec.SchemaID(), v2, v3, row)
		}
	}

	// Without a subject, plain JSON is a bad magic byte.
	d2 := newDecoder(t, e, confluent.JSONSchema, confluent.Spec{})
	_, _, err = d2.Decode([]byte(`{"id":1}`), time.Time{})
	wantReason(t, err, confluent.ReasonBadMagic)
}

func TestJSONSchemaBadRecords(t *testing.T) {
	e := newEnv(t)
	id := e.srv.Register("orders-value", "JSON", orderJSONv1)
	avroID := e.srv.Register("click-value", "AVRO", clickV1)
	intTime := e.srv.Register("n-value", "JSON", `{"type":"object","properties":{"ts":{"type":"integer"}}}`)
	cases := []struct {
		name  string
		value []byte
		want  decode.Reason
	}{
		{"empty", nil, confluent.ReasonTruncated},
		{"bad magic", append([]byte{1}, framed(id, orderJSON)[1:]...), confluent.ReasonBadMagic},
		{"short header", framed(id, "")[:3], confluent.ReasonTruncated},
		{"header only", framed(id, ""), confluent.ReasonTruncated},
		{"unknown id", framed(999, orderJSON), confluent.ReasonUnknownSchema},
		{"avro schema id", framed(avroID, orderJSON), confluent.ReasonIncompatible},
		{"not json", framed(id, `{"id":7,`), decode.ReasonBadJSON},
		{"wrong type", framed(id, `{"id":"7","at":"2026-11-25T13:04:05Z","device":{"id":"d"}}`), decode.ReasonWrongType},
		{"fraction for integer", framed(id, `{"id":7.5,"at":"2026-11-25T13:04:05Z","device":{"id":"d"}}`), decode.ReasonOutOfRange},
		{"missing required", framed(id, `{"id":7,"at":"2026-11-25T13:04:05Z","device":{}}`), decode.ReasonMissingField},
		{"bad time", framed(id, `{"id":7,"at":"yesterday","device":{"id":"d"}}`), decode.ReasonBadTime},
		{"bad utf8", framed(id, "{\"id\":7,\"at\":\"2026-11-25T13:04:05Z\",\"device\":{\"id\":\"\xff\"}}"), decode.ReasonBadUTF8},
		{"schema without the time field", framed(intTime, `{"ts":1}`), confluent.ReasonIncompatible},
		{"oversized", framed(id, `{"pad":"`+string(make([]byte, 5000))+`"}`), decode.ReasonOversized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDecoder(t, e, confluent.JSONSchema, confluent.Spec{TimePath: "at", TimeFormat: decode.UnixMillis, MaxBytes: 4096})
			row, _, err := d.Decode(c.value, time.Time{})
			if row != nil {
				t.Errorf("got a row with an error")
			}
			wantReason(t, err, c.want)
		})
	}
}

func TestJSONSchemaTimeFields(t *testing.T) {
	e := newEnv(t)
	id := e.srv.Register("t-value", "JSON", `{"type":"object","properties":{
		"ms":{"type":"integer"},"s":{"type":"number"},"day":{"type":"string","format":"date"},"any":{},"flag":{"type":"boolean"}}}`)
	at := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	body := `{"ms":` + strconv.FormatInt(at.UnixMilli(), 10) + `,"s":` + strconv.FormatInt(at.Unix(), 10) + `,"day":"2026-11-25","any":"2026-11-25T13:00:00Z","flag":true}`
	cases := []struct {
		path   string
		format decode.TimeFormat
		err    decode.Reason // "" = at
	}{
		{"ms", decode.UnixMillis, ""},
		{"s", decode.UnixSeconds, ""},
		{"any", decode.RFC3339, ""},
		{"ms", decode.RFC3339, confluent.ReasonIncompatible},
		{"day", decode.UnixMillis, confluent.ReasonIncompatible},
		{"flag", decode.UnixMillis, confluent.ReasonIncompatible},
		{"missing", decode.UnixMillis, confluent.ReasonIncompatible},
	}
	for _, c := range cases {
		t.Run(c.path+"/"+c.format.String(), func(t *testing.T) {
			d := newDecoder(t, e, confluent.JSONSchema, confluent.Spec{TimePath: c.path, TimeFormat: c.format})
			_, ev, err := d.Decode(framed(id, body), time.Time{})
			if c.err != "" {
				wantReason(t, err, c.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !ev.Equal(at) {
				t.Errorf("event time %v, want %v", ev, at)
			}
		})
	}
}

func TestJSONSchemaFixedColumns(t *testing.T) {
	e := newEnv(t)
	id := e.srv.Register("orders-value", "JSON", orderJSONv1)
	fields := []decode.Field{
		{Column: partitioner.Column{Name: "id", Type: partitioner.TypeInt64, Required: true}},
		{Column: partitioner.Column{Name: "at", Type: partitioner.TypeTimestampMillis}},
		{Column: partitioner.Column{Name: "device_id", Type: partitioner.TypeString}, Path: "device.id"},
		{Column: partitioner.Column{Name: "device", Type: partitioner.TypeJSON}},
		{Column: partitioner.Column{Name: "coupon", Type: partitioner.TypeString}},
	}
	d := newDecoder(t, e, confluent.JSONSchema, confluent.Spec{Fields: fields, TimePath: "at", TimeFormat: decode.UnixMillis})
	row, _, err := d.Decode(framed(id, orderJSON), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 13, 4, 5, 123000000, time.UTC)
	want := []string{"7", strconv.FormatInt(at.UnixMilli(), 10), "d1", `{"id":"d1","os":null}`, "<null>"}
	for i, w := range want {
		if got := show(row[i]); got != w {
			t.Errorf("column %s: got %s, want %s", fields[i].Column.Name, got, w)
		}
	}
	if d.Schema() != d.FixedSchema() || d.SchemaID() != id {
		t.Errorf("schema %v id %d", d.Schema(), d.SchemaID())
	}

	// A schema whose type cannot fill a column, or that lacks a required
	// column, is incompatible.
	for _, s := range []string{
		`{"type":"object","properties":{"id":{"type":"string"},"at":{"type":"string"}}}`,
		`{"type":"object","properties":{"at":{"type":"string"}}}`,
	} {
		bad := e.srv.Register("orders-value", "JSON", s)
		_, _, err = d.Decode(framed(bad, `{"id":"x","at":"2026-11-25T13:04:05Z"}`), time.Time{})
		wantReason(t, err, confluent.ReasonIncompatible)
	}
}

// TestJSONSchemaReferences: a $ref into a schema registered under another
// subject, named by the schema's references.
func TestJSONSchemaReferences(t *testing.T) {
	e := newEnv(t)
	e.srv.Register("device", "JSON", `{"definitions":{"Device":{"type":"object","properties":{"id":{"type":"string"},"at":{"$ref":"#/definitions/Ts"}}},
		"Ts":{"type":"string","format":"date-time"}}}`)
	id := e.srv.Register("orders-value", "JSON", `{"type":"object","properties":{"n":{"type":"integer"},"dev":{"$ref":"device.json#/definitions/Device"}}}`,
		schemaregistry.Reference{Name: "device.json", Subject: "device", Version: 1})
	d := newDecoder(t, e, confluent.JSONSchema, confluent.Spec{})
	row, _, err := d.Decode(framed(id, `{"n":1,"dev":{"id":"x","at":"1970-01-01T00:00:01Z"}}`), time.Unix(5, 0))
	if err != nil {
		t.Fatal(err)
	}
	cols := d.Schema().Columns()
	if len(cols) != 3 || cols[1].Name != "dev.id" || cols[2].Type != partitioner.TypeTimestampMicros || show(row[2]) != "1000000" {
		t.Errorf("columns %+v row %v", cols, row)
	}
}

// TestJSONSchemaRegistryWaits: an unreachable registry and a subject it
// does not (yet) have are retryable errors, not dead letters; once the
// subject exists the same plain value decodes.
func TestJSONSchemaRegistryWaits(t *testing.T) {
	srv := schemaregistry.New(schemaregistry.Options{})
	var down atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	reg, err := registry.New(registry.Config{URL: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.CloseIdleConnections)
	d, err := confluent.New(confluent.Spec{Stream: "s", Format: confluent.JSONSchema, Registry: reg, Subject: confluent.NewSubject("orders-value"),
		TimePath: "at", TimeFormat: decode.UnixMillis})
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"id":1,"at":"2026-11-25T13:04:05Z","coupon":"c"}`)
	retryable := func(what string, err error) {
		t.Helper()
		var de *decode.Error
		if err == nil || errors.As(err, &de) {
			t.Fatalf("%s: got %v, want a retryable error", what, err)
		}
	}
	_, _, err = d.Decode(plain, time.Time{})
	retryable("subject missing", err)
	down.Store(true)
	id := srv.Register("orders-value", "JSON", orderJSONv2)
	_, _, err = d.Decode(plain, time.Time{})
	retryable("registry down", err)
	_, _, err = d.Decode(framed(id, string(plain)), time.Time{})
	retryable("registry down, framed", err)
	down.Store(false)
	row, _, err := d.Decode(plain, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if d.SchemaID() != id || show(row[2]) != "c" {
		t.Errorf("schema id %d row %v", d.SchemaID(), row)
	}
}

func TestJSONSchemaSubjectOnlyForJSONSchema(t *testing.T) {
	e := newEnv(t)
	_, err := confluent.New(confluent.Spec{Stream: "s", Format: confluent.Avro, Registry: e.reg, Subject: confluent.NewSubject("x")})
	if err == nil {
		t.Fatal("avro spec with a subject accepted")
	}
	if f, err := confluent.ParseFormat("json_schema"); err != nil || f != confluent.JSONSchema || f.String() != "json_schema" {
		t.Errorf("ParseFormat(json_schema) = %v, %v", f, err)
	}
}

// FuzzJSONSchemaDecode: no framed or plain value panics, and accepted
// records have one value per column.
func FuzzJSONSchemaDecode(f *testing.F) {
	e := newEnv(f)
	id := e.srv.Register("orders-value", "JSON", orderJSONv1)
	f.Add([]byte(orderJSON))
	f.Add(framed(id, orderJSON))
	f.Add(framed(id, `{"id":1,"at":"2026-11-25T13:04:05Z","device":{"id":"x"}}`))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte(` {"id":1}`))
	d := newDecoder(f, e, confluent.JSONSchema, confluent.Spec{TimePath: "at", TimeFormat: decode.UnixMillis, MaxBytes: 1 << 16, Subject: confluent.NewSubject("orders-value")})
	f.Fuzz(func(t *testing.T, v []byte) {
		if len(v) > 0 && v[0] == 0 && len(v) >= confluent.HeaderSize && len(v)%2 == 0 {
			v = append(confluent.Header(id), v[confluent.HeaderSize:]...) // mostly a known id
		}
		row, _, err := d.Decode(v, time.Unix(0, 0))
		check(t, d, row, err)
	})
}

// BenchmarkJSONSchemaDecode decodes a framed JSON Schema record (nested
// object, date-time, date, enum, array) into a derived row.
//
//	go test -run '^$' -bench JSONSchemaDecode -count 10 ./sink/decode/confluent | benchstat -
func BenchmarkJSONSchemaDecode(b *testing.B) {
	e := newEnv(b)
	id := e.srv.Register("orders-value", "JSON", orderJSONv1)
	v := framed(id, orderJSON)
	d := newDecoder(b, e, confluent.JSONSchema, confluent.Spec{TimePath: "at", TimeFormat: decode.UnixMillis})
	if _, _, err := d.Decode(v, time.Time{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, _, err := d.Decode(v, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
