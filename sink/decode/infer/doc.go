// Package infer infers a best-effort table schema from schemaless JSON
// records (a stream with `schema: infer`) and decodes records into it.
//
// A [Shape] is the join of the records observed: nested objects are
// flattened into columns named by their dotted path ("device.id"); booleans
// are bool, integer literals that fit are int64, other finite numbers are
// double (int64 and double join to double), strings are string; arrays,
// numbers that fit neither (an integer beyond int64), objects nested more
// than [MaxNesting] levels, objects with keys that cannot name a column
// (empty, control characters, over 255 bytes) and every other mix of kinds
// (a string here and a number there, an object here and a scalar there) are
// json columns holding the value's JSON text. A field only ever null gets
// no column. Every column is nullable; columns are sorted by name, so the
// same shape always compiles to the same [Schema] and the same
// [Schema.Fingerprint].
//
// A shape only widens, and the widening is bounded: at most [MaxColumns]
// columns (beyond that the top-level object with the most columns becomes
// one json column, and a record that would add more top-level fields is
// rejected with ReasonTooManyColumns), each of which can only move up the
// kind lattice. Column names that collide (a top-level key "a.b" and the
// path a → b) turn the nested side into a json column.
//
// A [Decoder] decodes a record into a Schema's row and says whether the
// record fits: if it does, joining it into the shape would not change the
// columns, so nothing of it is lost; if it does not, the caller widens the
// shape and starts a new file (package sink). Decode never converts lossily
// and never panics, whatever the input; records are expected to have been
// validated by the stream's decode.Decoder first, which owns syntax, UTF-8,
// size and event-time errors.
package infer
