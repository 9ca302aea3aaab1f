// Package config is lakesink's configuration: the YAML schema (the types in
// this package, whose yaml tags are the file's keys), the defaults, strict
// decoding, and validation that reports every problem at once.
//
// # Loading order
//
// Load reads a file and calls Parse with os.LookupEnv. Parse then:
//
//  1. Expands environment references: ${VAR}, ${VAR:-default} and $$.
//  2. Decodes the YAML strictly over Default(): unknown keys, duplicate
//     keys, wrong shapes (a value where a list belongs) and wrong types are
//     errors naming the key's YAML path and line. Each element of streams
//     starts from DefaultStream().
//  3. Runs Validate, which checks values and their combinations.
//
// All problems of steps 1–3 are returned together, joined with errors.Join;
// each is an *Error ("line 12: streams[1].time.field: required when format
// is set"; Load prefixes the file name instead: "lakesink.yaml:12: ...").
// Problems returns them as a slice. They are sorted by line (those without
// one last), exact repeats (found again through an alias) are dropped, and
// after 100 the rest are only counted. A validation problem at or below a
// path that already failed to decode is left out, as it would only repeat it.
// An empty file (or one holding only comments) is an error, as are several
// YAML documents in one file.
//
// # Environment expansion
//
// References are resolved inside YAML values after the YAML has been parsed
// (the raw text is first scanned, and each reference replaced by a token that
// is valid anywhere in YAML; after parsing, the tokens in each value are
// replaced). So:
//
//   - An expanded value never changes the document's structure and needs no
//     quoting or escaping: a password with ": ", "#", quotes or backslashes
//     works in plain, single-quoted and double-quoted values alike, and
//     `brokers: [${A}, ${B}]` works in flow style.
//   - A variable is always one scalar: BROKERS="a:9092,b:9092" in
//     `brokers: [${BROKERS}]` is one (invalid) broker, not two.
//   - An unquoted value is typed after expansion: `enabled: ${TLS}` with
//     TLS=true is a bool, and an unquoted value that expands to nothing is
//     null, so the key keeps its default. Quote it ("${X}") to force a string.
//   - ${VAR:-default} uses default when VAR is unset or empty (as in the
//     shell). ${VAR} of an unset VAR is an error naming VAR; of a set but
//     empty VAR it is "".
//   - $$ is a literal $. Any other $ (not followed by { or $) is kept as is.
//     Values and defaults are used verbatim: no nested or recursive
//     expansion. A reference must not span lines.
//   - References in comments are ignored. Keys are expanded too.
//
// # Units
//
// Durations (type Duration) are Go durations: "500ms", "10m", "1h30m"; a
// bare number has no unit and is an error. Sizes (type Size) are a plain
// integer number of bytes or a number with a unit: B; KB, MB, GB, TB (powers
// of 1000); KiB, MiB, GiB, TiB (powers of 1024), case-insensitive, e.g.
// "64MiB". A decimal fraction is accepted when the result is a whole number
// of bytes ("1.5GiB" yes, "0.1KiB" no). String on both round-trips.
//
// # Decisions
//
//   - kafka.brokers has no default: a daemon that quietly talks to
//     localhost is a worse surprise than an error.
//   - A key with an empty value (`key:` or `key: null`) keeps its default;
//     an empty list or mapping ([] or {}) sets it empty.
//   - YAML anchors, aliases and merge keys (<<) are supported; explicitly
//     written keys override merged ones. Alias expansion is bounded (about
//     ten node visits per input byte), so an alias bomb is an error.
//   - Only the storage block named by storage.type is validated; the others
//     may hold anything well-typed.
//   - time.field is a dot-separated JSON path in the record (like a column's
//     path). If it is set, time.format is required, and vice versa; with
//     neither, the Kafka record timestamp is the event time. When a schema
//     column reads the same JSON path (its path, or its name when path is
//     empty), its type must be able to hold the value: unix_ms → int64,
//     double or timestamp_ms; unix_s → int32, int64 or double; rfc3339 →
//     string, timestamp_ms or timestamp_us (the decoder parses the string).
//     The time field need not be a column.
//   - timezone must be an IANA name that loads (the tz database is embedded
//     with time/tzdata, so this does not depend on the host); "Local" is
//     rejected as host-dependent.
//   - partitioning.path may use {stream} {yyyy} {MM} {dd} {HH}; it must use
//     all of {yyyy} {MM} {dd} {HH} so every hour has its own folder, and
//     {stream} when there is more than one stream. It is relative, with no
//     empty, "." or ".." segments.
//   - Stream names are letters, digits, '.', '_' and '-', starting with a
//     letter or digit (they are folder names and metric labels). Topics are
//     legal Kafka names, each consumed by one stream only, and none of them
//     is dead_letter.topic or markers.kafka_topic. Every stream needs at
//     least one topic and one column. Column names are unique, compared
//     case-insensitively (Hive and Spark do), and contain no '.'.
//   - Sizes and durations must be positive, except allowed_lateness, which
//     may be zero. files.row_group_bytes ≤ files.max_file_bytes, and
//     files.memory_limit ≥ kafka.max_record_bytes (one record must fit).
//   - SASL: a mechanism needs username and password; a username or password
//     without a mechanism is an error. TLS: cert_file and key_file come as a
//     pair. Files are not opened by Validate (it does no I/O).
//   - Formats: a stream's format is json (default), avro or protobuf. For
//     avro and protobuf the schema list and time.format are optional
//     (columns and timestamp types come from the writer schema) and
//     schema_registry.url is required.
//   - Secrets (kafka.sasl.password, schema_registry.password,
//     markers.webhook.headers values) never
//     appear in Summary or error messages; Redacted returns a copy that is
//     safe to log.
//
// The package starts no goroutines; Parse, Load and Validate are safe for
// concurrent use.
package config
