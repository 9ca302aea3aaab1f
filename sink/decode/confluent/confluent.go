package confluent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/registry"
)

// Format is the serialization of the record values.
type Format int

// Formats.
const (
	Avro Format = iota + 1
	Protobuf
	JSONSchema // JSON text, framed or (with Spec.Subject) plain; see jsonschema.go
)

// ParseFormat maps a config spelling ("avro", "protobuf", "json_schema")
// to a Format.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "avro":
		return Avro, nil
	case "protobuf":
		return Protobuf, nil
	case "json_schema":
		return JSONSchema, nil
	}
	return 0, fmt.Errorf("unknown format %q (want avro, protobuf or json_schema)", s)
}

func (f Format) String() string {
	switch f {
	case Avro:
		return "avro"
	case Protobuf:
		return "protobuf"
	case JSONSchema:
		return "json_schema"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Reasons of this package, beside those of package decode.
const (
	ReasonBadMagic      decode.Reason = "bad_magic"           // first byte is not the Confluent magic 0
	ReasonUnknownSchema decode.Reason = "unknown_schema"      // the registry has no schema with the id
	ReasonTruncated     decode.Reason = "truncated"           // the value ends inside the header or the datum
	ReasonBadPayload    decode.Reason = "bad_payload"         // the body does not decode with its writer schema
	ReasonIncompatible  decode.Reason = "incompatible_schema" // the writer schema does not fit the stream's columns or time field
)

// Reasons lists this package's reasons, for pre-registering metric labels.
func Reasons() []decode.Reason {
	return []decode.Reason{ReasonBadMagic, ReasonUnknownSchema, ReasonTruncated, ReasonBadPayload, ReasonIncompatible}
}

// Registry is where writer schemas come from; *registry.Client implements it.
type Registry interface {
	SchemaByID(ctx context.Context, id int) (*registry.Schema, error)
	SubjectVersion(ctx context.Context, subject string, version int) (*registry.Schema, error)
}

// Spec is what a Decoder extracts from each record.
type Spec struct {
	Stream   string // names the Parquet schema
	Format   Format
	Registry Registry
	// Fields are fixed columns; empty means columns derived from each writer
	// schema (see the package doc).
	Fields     []decode.Field
	TimePath   string            // dotted path of the event time; "" = Kafka record timestamp
	TimeFormat decode.TimeFormat // for integer, floating-point fields
	MaxBytes   int               // larger values are ReasonOversized; 0 = no limit
	// LookupTimeout bounds one registry lookup (default 10s).
	LookupTimeout time.Duration
	// Subject, for JSONSchema only, reads values without the Confluent
	// header as plain JSON with the subject's latest schema; nil means
	// such values are ReasonBadMagic. Share one Subject between the
	// Decoders of a stream.
	Subject *Subject
}

// HeaderSize is the size of the magic byte and schema id.
const HeaderSize = 5

// Header returns the Confluent header for schema id: magic 0 and the id.
func Header(id int) []byte {
	b := make([]byte, HeaderSize)
	binary.BigEndian.PutUint32(b[1:], uint32(id))
	return b
}

// Decoder decodes the records of one stream. Not safe for concurrent use.
type Decoder struct {
	spec  Spec
	fixed *partitioner.Schema // with Spec.Fields
	plans map[planKey]*plan
	last  *plan
	// pinned is Spec.Subject's schema id once resolved (saves its lock).
	pinned int

	row   []parquet.Value
	arena []byte
	t     timeVal
}

// planKey names a plan: a schema id and, for Protobuf, the message
// indexes as they appear in the header ("" for the first message).
type planKey struct {
	id  int
	msg string
}

// plan is a compiled writer schema.
type plan struct {
	id         int
	msgIndexes []int
	schema     *partitioner.Schema
	cols       []partitioner.Column
	err        *decode.Error // set: every record of this schema is rejected
	avro       *avroPlan
	proto      *protoPlan
	json       *decode.Decoder // JSONSchema: the body's decoder for cols
}

// New validates spec and returns a Decoder. It does not contact the
// registry.
func New(spec Spec) (*Decoder, error) {
	if spec.Format != Avro && spec.Format != Protobuf && spec.Format != JSONSchema {
		return nil, fmt.Errorf("format %d: unknown", int(spec.Format))
	}
	if spec.Subject != nil && spec.Format != JSONSchema {
		return nil, fmt.Errorf("a subject for plain values is only for json_schema, not %v", spec.Format)
	}
	if spec.Registry == nil {
		return nil, errors.New("a schema registry is required")
	}
	if spec.MaxBytes < 0 {
		return nil, fmt.Errorf("max bytes %d: must not be negative", spec.MaxBytes)
	}
	if spec.TimePath != "" {
		switch spec.TimeFormat {
		case decode.UnixMillis, decode.UnixSeconds, decode.RFC3339:
		default:
			return nil, fmt.Errorf("time format %d: unknown", int(spec.TimeFormat))
		}
	}
	if spec.LookupTimeout <= 0 {
		spec.LookupTimeout = 10 * time.Second
	}
	d := &Decoder{spec: spec, plans: map[planKey]*plan{}}
	if len(spec.Fields) > 0 {
		cols := make([]partitioner.Column, len(spec.Fields))
		for i, f := range spec.Fields {
			cols[i] = f.Column
		}
		s, err := partitioner.NewSchema(spec.Stream, cols)
		if err != nil {
			return nil, err
		}
		d.fixed = s
	}
	return d, nil
}

// SchemaID returns the writer schema id of the last record Decode accepted
// (0 before the first). Records of different ids belong in different files.
func (d *Decoder) SchemaID() int {
	if d.last == nil {
		return 0
	}
	return d.last.id
}

// Schema returns the Parquet schema of the last record Decode accepted: the
// fixed schema with Spec.Fields, else the one derived from its writer
// schema; nil before the first record in derived mode.
func (d *Decoder) Schema() *partitioner.Schema {
	if d.fixed != nil {
		return d.fixed
	}
	if d.last == nil {
		return nil
	}
	return d.last.schema
}

// FixedSchema returns the Parquet schema of Spec.Fields, nil in derived mode.
func (d *Decoder) FixedSchema() *partitioner.Schema { return d.fixed }

// Decode decodes one record value: its row in column order and its event
// time in UTC. recordTime is the Kafka record timestamp. On a bad record
// err is a *decode.Error; any other error means the registry could not be
// asked and the record should be retried. The row aliases the Decoder's
// buffers until the next call.
func (d *Decoder) Decode(value []byte, recordTime time.Time) (row []parquet.Value, eventTime time.Time, err error) {
	if d.spec.MaxBytes > 0 && len(value) > d.spec.MaxBytes {
		return nil, time.Time{}, &decode.Error{Reason: decode.ReasonOversized, Detail: fmt.Sprintf("record is %d bytes, limit %d", len(value), d.spec.MaxBytes)}
	}
	if len(value) == 0 {
		return nil, time.Time{}, &decode.Error{Reason: ReasonTruncated, Detail: "empty record"}
	}
	if d.spec.Format == JSONSchema {
		return d.decodeJSON(value, recordTime)
	}
	if value[0] != 0 {
		return nil, time.Time{}, &decode.Error{Reason: ReasonBadMagic, Detail: fmt.Sprintf("magic byte %#02x, want 0x00", value[0])}
	}
	if len(value) < HeaderSize {
		return nil, time.Time{}, &decode.Error{Reason: ReasonTruncated, Detail: fmt.Sprintf("record of %d bytes ends inside the 5-byte header", len(value))}
	}
	id := int(int32(binary.BigEndian.Uint32(value[1:HeaderSize])))
	body := value[HeaderSize:]
	key := planKey{id: id}
	var indexes []int
	if d.spec.Format == Protobuf {
		var n int
		var de *decode.Error
		if len(body) > 0 && body[0] != 0 {
			if indexes, n, de = readMessageIndexes(body); de != nil {
				return nil, time.Time{}, de
			}
			if len(indexes) != 1 || indexes[0] != 0 {
				key.msg = string(body[:n])
			}
		} else if len(body) == 0 {
			return nil, time.Time{}, &decode.Error{Reason: ReasonTruncated, Detail: "record ends before the protobuf message indexes"}
		} else {
			n = 1
		}
		body = body[n:]
	}
	p, err := d.plan(key, indexes)
	if err != nil {
		return nil, time.Time{}, err
	}
	if p.err != nil {
		return nil, time.Time{}, p.err
	}
	d.arena = d.arena[:0]
	d.t = timeVal{}
	if cap(d.row) < len(p.cols) {
		d.row = make([]parquet.Value, len(p.cols))
	}
	d.row = d.row[:len(p.cols)]
	clear(d.row)
	var de *decode.Error
	if p.avro != nil {
		de = d.decodeAvro(p.avro, body)
	} else {
		de = d.decodeProto(p.proto, body)
	}
	if de != nil {
		return nil, time.Time{}, de
	}
	for i, c := range p.cols {
		if c.Required && d.row[i].IsNull() {
			return nil, time.Time{}, &decode.Error{Reason: decode.ReasonMissingField, Field: c.Name, Detail: "required field is null"}
		}
	}
	if d.spec.TimePath == "" {
		eventTime = recordTime.UTC()
	} else {
		if !d.t.set {
			return nil, time.Time{}, &decode.Error{Reason: decode.ReasonBadTime, Field: d.spec.TimePath, Detail: "time field is null"}
		}
		eventTime = d.t.t
	}
	if ms := eventTime.UnixMilli(); ms < decode.MinEventTimeMillis || ms >= decode.MaxEventTimeMillis {
		return nil, time.Time{}, &decode.Error{Reason: decode.ReasonBadTime, Field: d.spec.TimePath, Detail: "event time " + eventTime.Format(time.RFC3339Nano) + " outside [1970, 2200)"}
	}
	d.last = p
	return d.row, eventTime, nil
}

// plan returns the compiled plan of schema id, fetching and compiling it on
// first use. Unknown and uncompilable schemas give a plan with err set, so
// they are not fetched again.
func (d *Decoder) plan(key planKey, indexes []int) (*plan, error) {
	if p, ok := d.plans[key]; ok {
		return p, nil
	}
	id := key.id
	if indexes == nil {
		indexes = []int{0}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.spec.LookupTimeout)
	defer cancel()
	rs, err := d.spec.Registry.SchemaByID(ctx, id)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			// Not cached in d.plans: the registry client remembers misses
			// for a while, and an id may yet appear (registry failover).
			return &plan{id: id, err: &decode.Error{Reason: ReasonUnknownSchema, Detail: fmt.Sprintf("schema id %d: %v", id, err)}}, nil
		}
		return nil, fmt.Errorf("schema id %d: %w", id, err)
	}
	p := &plan{id: id, msgIndexes: indexes}
	var cerr error
	switch d.spec.Format {
	case Avro:
		if t := rs.SchemaType(); t != registry.TypeAvro {
			cerr = fmt.Errorf("schema id %d is %s, the stream reads avro", id, t)
			break
		}
		cerr = d.compileAvro(p, rs)
	case Protobuf:
		if t := rs.SchemaType(); t != registry.TypeProtobuf {
			cerr = fmt.Errorf("schema id %d is %s, the stream reads protobuf", id, t)
			break
		}
		cerr = d.compileProto(ctx, p, rs)
	case JSONSchema:
		if t := rs.SchemaType(); t != registry.TypeJSON {
			cerr = fmt.Errorf("schema id %d is %s, the stream reads json_schema", id, t)
			break
		}
		cerr = d.compileJSONSchema(ctx, p, rs)
	}
	if cerr != nil {
		var transient *transientError
		if errors.As(cerr, &transient) {
			return nil, cerr
		}
		p.err = &decode.Error{Reason: ReasonIncompatible, Detail: fmt.Sprintf("schema id %d: %v", id, cerr)}
	}
	d.plans[key] = p
	return p, nil
}

// transientError marks a compile failure that may go away (a reference
// could not be fetched).
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// timeVal is the event time found in the current record.
type timeVal struct {
	set bool
	t   time.Time
}
