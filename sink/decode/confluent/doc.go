// Package confluent decodes Kafka record values written in the Confluent
// wire format — Avro, Protobuf or JSON Schema with a Schema Registry id
// (JSON Schema streams also take plain JSON read with a subject's latest
// schema; its mapping rules are at the top of jsonschema.go) — into rows of
// Parquet values, the same output as package decode gives for JSON: a row
// in column order, the event time, and a *decode.Error with a stable Reason
// for records that go to the dead-letter topic.
//
// # Wire format
//
//	byte 0      magic, always 0                      else ReasonBadMagic
//	bytes 1..4  schema id, big-endian int32           ReasonUnknownSchema if the registry does not know it
//	Protobuf:   message indexes: zig-zag varint count, then that many zig-zag
//	            varint indexes (a single 0 byte means [0], the first message)
//	rest        the Avro binary datum / Protobuf message / JSON text of that schema
//
// A value shorter than its header, or an Avro datum that ends early, is
// ReasonTruncated. A body that does not decode with its writer schema
// (bad union or enum index, negative length, Protobuf syntax error, trailing
// bytes after an Avro datum) is ReasonBadPayload.
//
// # Columns
//
// A stream's columns come from one of two places:
//
//   - The stream's schema list (Spec.Fields): fixed columns, the same for
//     every file. Each column's dotted path ("device.id") is looked up in
//     the record's writer schema. A field that the writer schema lacks is
//     null (ReasonIncompatible if the column is required); a writer type that
//     cannot convert to the column type is ReasonIncompatible for every record
//     of that schema id. Fields of the writer schema that no column names are
//     skipped.
//   - Derived from each writer schema (no schema list): every leaf field
//     becomes a column named by its dotted path, in schema order. Nested
//     records / messages are flattened ("device.id"); arrays, maps and
//     unions other than [null, T] become json columns (JSON text). Files
//     then carry the columns of their writer schema: a new schema id starts
//     a new file (see Decoder.SchemaID).
//
// Type mapping (writer type → column type):
//
//	Avro boolean / Protobuf bool                  bool
//	Avro int / Protobuf int32, sint32, sfixed32   int32
//	Avro long / Protobuf int64, sint64, sfixed64,
//	  uint32, uint64 (> MaxInt64: out_of_range)   int64
//	float, double                                 float, double
//	string, Avro enum and uuid, Protobuf enum     string (enum symbol name)
//	Avro bytes and fixed, Protobuf bytes          string, standard base64
//	Avro decimal (bytes or fixed)                 string, exact decimal text ("-12.50")
//	Avro date                                     date
//	Avro timestamp-millis, local-timestamp-millis timestamp_ms
//	Avro timestamp-micros, local-timestamp-micros timestamp_us
//	Avro time-millis / time-micros                int32 ms / int64 µs of the day
//	google.protobuf.Timestamp                     timestamp_us
//	google.protobuf wrappers (Int64Value, ...)    the wrapped type, nullable
//	record / message                              flattened, or json when a column names it
//	array, map, repeated, other unions            json
//
// Columns from nullable fields ([null, T] unions, Protobuf fields with
// presence: messages, oneof members, proto3 optional) are optional; the
// others are required. Proto3 scalars without presence are never null: an
// absent one is its default value, as Protobuf defines.
//
// JSON text renders Avro unions as the plain value of their branch (not the
// Avro JSON {"type": value} wrapping), bytes as base64 strings, logical
// types as in the table above (timestamps as RFC 3339 strings), and
// Protobuf messages as protojson does.
//
// Numeric conversions in fixed mode: int32 → int64, float, double;
// int64 → double; float → double; timestamp_ms ↔ timestamp_us; timestamps
// → int64; date → int32; anything → json.
//
// # Event time
//
// Spec.TimePath names a field by its dotted path. Avro timestamp and date
// logical types and google.protobuf.Timestamp are used as they are; other
// integer and floating-point fields are read by Spec.TimeFormat (unix_ms
// or unix_s), strings as RFC 3339. A writer schema without the time field is
// ReasonIncompatible; a null time is ReasonBadTime, as is a time outside the
// range package decode accepts. An empty TimePath uses the Kafka record
// timestamp.
//
// # Contract
//
// A Decoder is not safe for concurrent use: use one per partition worker.
// Returned rows alias the Decoder's buffers until the next Decode call.
// Schemas come from Spec.Registry (concurrent-safe and caching, see package
// registry); each Decoder compiles each schema id once. When the registry
// cannot be reached, Decode returns an error that is not a *decode.Error:
// the record is fine, retry it later rather than dead-lettering it.
package confluent
