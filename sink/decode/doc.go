// Package decode turns one Kafka record value, a JSON object, into a row of
// Parquet values in schema order plus the record's event time.
//
// It is the hot path of lakesink (docs/performance.md: "JSON decoding is the first
// bottleneck"), so it does not use encoding/json. A hand-written validating
// scanner walks the object once, descends only into the objects that lead to
// a configured path, validates and skips everything else, and performs no
// heap allocation per successfully decoded record once its scratch buffers
// (unescaped strings, unescaped keys, the container stack of skipped values)
// have grown; each is bounded by the largest record seen, so set
// Spec.MaxBytes to bound the Decoder's memory. Failed records allocate their
// *Error.
//
// # Contract
//
// A [Decoder] is built once per stream schema with [New] and is NOT safe for
// concurrent use: use one per partition worker. [Decoder.Decode] returns a row
// whose slice and whose byte-array values alias the Decoder's buffers and the
// input value; they are valid until the next Decode call on the same Decoder.
// A caller that keeps them longer must copy (parquet.Value.Clone). Row values
// carry no repetition/definition level or column index: the partitioner sets
// those. A failed Decode returns a nil row and an [*Error] whose [Reason] is
// one of a small fixed set, fit for a metric label and a dead-letter header.
//
// # Rules
//
// Syntax. The value must be exactly one JSON object (RFC 8259), optionally
// surrounded by JSON whitespace. The scanner accepts exactly what
// encoding/json.Valid accepts, including its nesting limit of 10000 arrays or
// objects; anything else is ReasonBadJSON, as is valid JSON that is not an
// object. Syntax is checked on the whole record, including fields that are
// not in the schema.
//
// UTF-8. Unlike encoding/json, which silently replaces invalid UTF-8 and
// unpaired UTF-16 surrogate escapes (\ud800) with U+FFFD, the decoder
// rejects the record with ReasonBadUTF8 when any string anywhere in it
// (keys and unselected fields included) holds invalid UTF-8 or an unpaired
// surrogate escape. The lake never receives replacement characters that the
// producer did not send.
//
// Paths. A [Field] is found by its dot-separated Path ("device.id"); an empty
// Path means the column name. Keys containing a dot cannot be addressed.
// Keys are compared after unescaping, so "dev\u0069ce" matches "device".
// When a key appears twice in an object, the last occurrence wins, as with
// encoding/json: a later "device" object replaces everything an earlier one
// supplied. An intermediate value that is null or absent makes the field
// absent; any other non-object intermediate value (string, number, array...)
// is ReasonWrongType for every field below it.
//
// Missing and null. An absent field and a JSON null are the same: a null
// Value for an optional column and ReasonMissingField for a required one.
// This holds for json columns too (null is not kept as the text "null").
//
// Errors. The first problem found, in this order, is reported: oversized
// (checked before parsing), bad_json, bad_utf8, then the columns in schema
// order, then the event time. Error.Field is the column name (or the time
// path for the event time); it is empty for whole-record problems.
// Error.Detail gives the byte offset for bad_json and bad_utf8 and quotes up
// to 64 bytes of the offending value for field errors.
//
// # Value mapping
//
//   - string: a JSON string, unescaped, as a ByteArray value. Any other JSON
//     type is ReasonWrongType; numbers are not stringified.
//   - int32, int64: a JSON number whose exact decimal value is an integer, so
//     "10", "1e3", "1.0", "1.50e1" and "-0" are accepted and "1.5" is not.
//     A non-integer or a value outside the column's range is
//     ReasonOutOfRange. Numeric strings ("12") are ReasonWrongType.
//   - double, float: a JSON number, parsed by strconv.ParseFloat from the
//     exact literal with bitSize 64 or 32. A literal beyond the type's range
//     is ReasonOutOfRange; one too small to represent becomes 0 (ParseFloat
//     rounding).
//   - bool: true or false.
//   - timestamp_ms, timestamp_us: an integer JSON number (same integer rule as
//     int64) of epoch milliseconds or microseconds, or an RFC 3339 string
//     (see below), converted to an Int64 of ms or µs since the epoch,
//     rounding sub-unit fractions of a string towards the past. Unparseable
//     strings are ReasonBadTime; other JSON types are ReasonWrongType.
//   - date: a "YYYY-MM-DD" string, or an RFC 3339 timestamp string of which
//     the UTC date is taken, as an Int32 of days since 1970-01-01. Numbers and
//     other types are ReasonWrongType; unparseable strings ReasonBadTime.
//   - json: any non-null JSON value, kept as its raw bytes exactly as they
//     appear in the record (internal whitespace and escapes preserved; no
//     surrounding whitespace). Keeping the raw text is the cheapest choice and
//     it is valid JSON and valid UTF-8 because the whole record was checked.
//
// RFC 3339 strings follow the strict form that time.Parse(time.RFC3339Nano)
// handles on its fast path: "2006-01-02T15:04:05[.fraction](Z|+hh:mm|-hh:mm)"
// with an upper-case T and Z, two-digit fields in range (no leap second,
// offsets up to 23:59) and any number of fraction digits (beyond nine are
// truncated). The lenient forms time.Parse also accepts ("T3:04:05",
// ",5" fractions, "+24:00") are rejected.
//
// # Event time
//
// Spec.TimePath selects the event time in the same scan (it may also be a
// column). With UnixMillis it is a JSON number of milliseconds, with
// UnixSeconds a number of seconds; both may be fractional and are floored to
// millisecond precision, computed exactly from the decimal literal (no
// float rounding). With RFC3339 it is a string in the form above, kept to the
// nanosecond. An empty TimePath uses the Kafka record timestamp. A missing,
// null, mistyped or unparseable time is ReasonBadTime, and so is any event
// time, the record timestamp included, outside [MinEventTimeMillis, MaxEventTimeMillis):
// 1970-01-01T00:00:00Z inclusive up to 2200-01-01T00:00:00Z exclusive.
// The range catches milliseconds sent as seconds, microseconds sent as
// milliseconds and other garbage before it makes a folder in the lake (it
// cannot catch seconds sent as milliseconds: those land in January 1970).
// The returned event time is in UTC.
package decode
