package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/test/schemaregistry"
)

// Record value formats accepted by Options.Format.
const (
	FormatJSON = "json"
	// FormatAvro is Avro binary in the Confluent wire format (magic byte,
	// schema id, datum), as Confluent's KafkaAvroSerializer writes it,
	// with the writer schema in a registry the harness runs in-process.
	FormatAvro = "avro"
	// FormatAvro2 is FormatAvro with two writer schema versions
	// interleaved record by record, as during a rolling deploy of the
	// producers: v2 (avroV2SchemaText) adds an optional field, set in
	// every other v2 record. The stream's column list is the same, so the
	// records share files as with one version (docs/formats.md).
	FormatAvro2 = "avro2"
)

// usesRegistry reports whether format runs the in-process registry.
func usesRegistry(format string) bool { return format == FormatAvro || format == FormatAvro2 }

// generator makes the value of record seq at event time t, drawing its
// content from r. Generators of the same schema draw the same numbers from
// r in the same order, so a JSON and an Avro run produce the same records.
type generator func(r *rand.Rand, seq int64, t time.Time) ([]byte, error)

func jsonGenerator(schema string) generator {
	gen := demo.Clickstream
	if schema == SchemaIoT {
		gen = demo.IoT
	}
	return func(r *rand.Rand, seq int64, t time.Time) ([]byte, error) { return gen(r, seq, t), nil }
}

// The Avro writer schemas: field for field the JSON records of
// demo.Clickstream and demo.IoT, with the types a producer would pick —
// timestamp-millis for the event times, [null, T] for the fields only some
// records have, nested records for the nested objects (attrs too: its keys
// are fixed in the generator).
const (
	clickstreamAvroSchema = `{"type": "record", "name": "Click", "namespace": "lakesink.bench", "fields": [
  {"name": "event_id", "type": "string"},
  {"name": "user_id", "type": "string"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "event_type", "type": "string"},
  {"name": "url", "type": "string"},
  {"name": "referrer", "type": "string"},
  {"name": "device", "type": {"type": "record", "name": "Device", "fields": [
    {"name": "id", "type": "string"},
    {"name": "os", "type": "string"},
    {"name": "screen", "type": {"type": "record", "name": "Screen", "fields": [
      {"name": "w", "type": "int"},
      {"name": "h", "type": "int"}
    ]}}
  ]}},
  {"name": "price", "type": ["null", "double"], "default": null},
  {"name": "quantity", "type": ["null", "int"], "default": null},
  {"name": "attrs", "type": {"type": "record", "name": "Attrs", "fields": [
    {"name": "campaign", "type": "string"},
    {"name": "ab", "type": {"type": "array", "items": "string"}},
    {"name": "session_ms", "type": "long"}
  ]}}
]}`
	iotAvroSchema = `{"type": "record", "name": "Reading", "namespace": "lakesink.bench", "fields": [
  {"name": "device_id", "type": "string"},
  {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "temperature", "type": "double"},
  {"name": "humidity", "type": "float"},
  {"name": "battery", "type": "int"},
  {"name": "online", "type": "boolean"},
  {"name": "firmware", "type": "string"},
  {"name": "seq", "type": "long"}
]}`
)

// avroSchemaText returns the Avro writer schema of a benchmark schema.
func avroSchemaText(schema string) string {
	if schema == SchemaIoT {
		return iotAvroSchema
	}
	return clickstreamAvroSchema
}

// avroV2SchemaText returns version 2 of a benchmark schema's Avro writer
// schema: version 1 with an optional string field "coupon" at the end.
func avroV2SchemaText(schema string) string {
	s := avroSchemaText(schema)
	i := strings.LastIndex(s, "]")
	return s[:i] + `,
  {"name": "coupon", "type": ["null", "string"], "default": null}
` + s[i:]
}

// avroV2Generator interleaves two writer schema versions: the records of
// gen (version 1, schema id id1) are re-framed with schema id id2 for every
// odd seq, with the coupon field appended (Avro encodes a record as its
// fields in order, so a v1 body plus the v2 field is a v2 body): null, or
// "c-<seq>" for every other one.
func avroV2Generator(gen generator, id1, id2 int) generator {
	h2 := confluent.Header(id2)
	return func(r *rand.Rand, seq int64, t time.Time) ([]byte, error) {
		v, err := gen(r, seq, t)
		if err != nil || seq%2 == 0 {
			return v, err
		}
		out := append(append(make([]byte, 0, len(v)+16), h2...), v[confluent.HeaderSize:]...)
		if seq%4 == 1 {
			return append(out, 0), nil // union branch 0: null
		}
		c := "c-" + strconv.FormatInt(seq, 10)
		out = append(out, 2) // union branch 1: string
		out = binary.AppendVarint(out, int64(len(c)))
		return append(out, c...), nil
	}
}

// click is a demo.Clickstream record, read from its JSON and written as
// Avro.
type click struct {
	EventID   string      `json:"event_id" avro:"event_id"`
	UserID    string      `json:"user_id" avro:"user_id"`
	TS        int64       `json:"ts" avro:"ts"`
	EventType string      `json:"event_type" avro:"event_type"`
	URL       string      `json:"url" avro:"url"`
	Referrer  string      `json:"referrer" avro:"referrer"`
	Device    clickDevice `json:"device" avro:"device"`
	Price     *float64    `json:"price" avro:"price"`
	Quantity  *int32      `json:"quantity" avro:"quantity"`
	Attrs     clickAttrs  `json:"attrs" avro:"attrs"`
}

type clickDevice struct {
	ID     string `json:"id" avro:"id"`
	OS     string `json:"os" avro:"os"`
	Screen struct {
		W int32 `json:"w" avro:"w"`
		H int32 `json:"h" avro:"h"`
	} `json:"screen" avro:"screen"`
}

type clickAttrs struct {
	Campaign  string   `json:"campaign" avro:"campaign"`
	AB        []string `json:"ab" avro:"ab"`
	SessionMs int64    `json:"session_ms" avro:"session_ms"`
}

// reading is a demo.IoT record. Its JSON event time is RFC 3339 text, its
// Avro one milliseconds (EventTimeMs).
type reading struct {
	DeviceID    string    `json:"device_id" avro:"device_id"`
	EventTime   time.Time `json:"event_time" avro:"-"`
	EventTimeMs int64     `json:"-" avro:"event_time"`
	Temperature float64   `json:"temperature" avro:"temperature"`
	Humidity    float32   `json:"humidity" avro:"humidity"`
	Battery     int32     `json:"battery" avro:"battery"`
	Online      bool      `json:"online" avro:"online"`
	Firmware    string    `json:"firmware" avro:"firmware"`
	Seq         int64     `json:"seq" avro:"seq"`
}

// avroGenerator returns a generator of Confluent-framed Avro values of
// schema id: it makes each record with the JSON generator (so the content,
// and what is drawn from r, is exactly the JSON run's) and re-encodes it.
// The conversion costs a few µs per record; producing is not measured.
func avroGenerator(schema string, id int) (generator, error) {
	s, err := avro.Parse(avroSchemaText(schema))
	if err != nil {
		return nil, fmt.Errorf("parse the %s avro schema: %w", schema, err)
	}
	header := confluent.Header(id)
	frame := func(v any) ([]byte, error) {
		body, err := avro.Marshal(s, v)
		if err != nil {
			return nil, fmt.Errorf("avro encode %s record: %w", schema, err)
		}
		return append(append(make([]byte, 0, len(header)+len(body)), header...), body...), nil
	}
	if schema == SchemaIoT {
		return func(r *rand.Rand, seq int64, t time.Time) ([]byte, error) {
			var rec reading
			if err := json.Unmarshal(demo.IoT(r, seq, t), &rec); err != nil {
				return nil, fmt.Errorf("read generated iot record %d: %w", seq, err)
			}
			rec.EventTimeMs = rec.EventTime.UnixMilli()
			return frame(rec)
		}, nil
	}
	return func(r *rand.Rand, seq int64, t time.Time) ([]byte, error) {
		var rec click
		if err := json.Unmarshal(demo.Clickstream(r, seq, t), &rec); err != nil {
			return nil, fmt.Errorf("read generated clickstream record %d: %w", seq, err)
		}
		return frame(rec)
	}, nil
}

// registryServer is the in-process Schema Registry (test/schemaregistry)
// of an Avro run, serving HTTP on 127.0.0.1.
type registryServer struct {
	*schemaregistry.Server
	URL    string
	hs     *http.Server
	served chan error
}

func startRegistry() (*registryServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the schema registry: %w", err)
	}
	r := &registryServer{Server: schemaregistry.New(schemaregistry.Options{}), URL: "http://" + l.Addr().String(),
		served: make(chan error, 1)}
	r.hs = &http.Server{Handler: r.Server, ReadHeaderTimeout: 10 * time.Second}
	go func() { r.served <- r.hs.Serve(l) }()
	return r, nil
}

// stop closes the listener and every connection, waiting at most 5 s for
// requests in flight.
func (r *registryServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.hs.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, r.hs.Close())
	}
	if serr := <-r.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
