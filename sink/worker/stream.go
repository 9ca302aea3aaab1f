package worker

import (
	"fmt"
	"time"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/registry"
)

// Stream is a configured stream compiled for the hot path. Built once per
// process by Compile; read-only afterwards, shared by the stream's workers.
type Stream struct {
	Name     string
	Topics   []string
	Loc      *time.Location
	Lateness time.Duration
	Late     config.LatePolicy
	Path     *partitioner.PathTemplate
	// Format is json, avro, protobuf or json_schema.
	Format config.StreamFormat

	// Table is the stream's Iceberg table; nil without one (SetTable).
	Table Table

	schema *partitioner.Schema // nil when columns come from each writer schema
	spec   decode.Spec         // json and schema: infer
	cspec  confluent.Spec      // registry formats
	infer  *inferSpec          // schema: infer; else nil
}

// Fixed reports whether the stream's columns are fixed by its config (a
// schema list); false for columns derived from writer schemas or inferred.
func (st *Stream) Fixed() bool { return st.schema != nil && st.infer == nil }

// Compile compiles the config of one stream: its decoder spec (fixed
// columns, a registry format, or schema: infer) and its Parquet schema.
// schemas is the registry client, needed by registry formats (else nil);
// maxBytes is kafka.max_record_bytes. Errors name the config key.
func Compile(sc config.Stream, tmpl *partitioner.PathTemplate, maxBytes int, schemas *registry.Client) (*Stream, error) {
	st := &Stream{
		Name:     sc.Name,
		Topics:   sc.Topics,
		Loc:      sc.Location(),
		Lateness: time.Duration(sc.AllowedLateness),
		Late:     sc.LatePolicy,
		Path:     tmpl,
		Format:   sc.Format,
	}
	switch {
	case sc.Format.UsesRegistry():
		return st, st.compileRegistry(sc, maxBytes, schemas)
	case sc.InferSchema:
		return st, st.compileInfer(sc, maxBytes)
	}
	cols, err := sc.Columns()
	if err != nil {
		return nil, err
	}
	if st.schema, err = partitioner.NewSchema(sc.Name, cols); err != nil {
		return nil, err
	}
	st.spec = decode.Spec{TimePath: sc.Time.Field, MaxBytes: maxBytes}
	if sc.Time.Field != "" {
		if st.spec.TimeFormat, err = decode.ParseTimeFormat(string(sc.Time.Format)); err != nil {
			return nil, fmt.Errorf("time.format: %w", err)
		}
	}
	for i, f := range sc.Schema {
		st.spec.Fields = append(st.spec.Fields, decode.Field{Column: cols[i], Path: f.Path})
	}
	return st, nil
}

// SetTable makes t the stream's table: its files are committed to it, and
// their columns carry the table's field ids (and timestamps in micros).
// Called once, before the stream's workers start; streams with a schema
// list or a registry format can have a table (config validation).
func (st *Stream) SetTable(t Table) error {
	if st.infer != nil {
		return fmt.Errorf("stream %s: a table needs the stream's schema list or a registry format", st.Name)
	}
	if !st.Fixed() {
		// Columns from each writer schema: the registry format evolves the
		// table per writer schema (registry_table.go).
		st.Table = t
		return nil
	}
	cols := t.Columns()
	schema, err := partitioner.NewSchema(st.Name, cols)
	if err != nil {
		return err
	}
	fields := st.spec.Fields
	if st.Format.UsesRegistry() {
		fields = st.cspec.Fields
	}
	if len(fields) != len(cols) {
		return fmt.Errorf("stream %s: table columns %d, stream columns %d", st.Name, len(cols), len(fields))
	}
	for i := range fields {
		fields[i].Column = cols[i]
	}
	st.schema, st.Table = schema, t
	return nil
}

// compileRegistry compiles an avro, protobuf or json_schema stream. Its
// columns come from the schema list if any (st.schema fixed), else from each
// writer schema (st.schema nil).
func (st *Stream) compileRegistry(sc config.Stream, maxBytes int, schemas *registry.Client) error {
	format, err := confluent.ParseFormat(string(sc.Format))
	if err != nil {
		return fmt.Errorf("format: %w", err)
	}
	if schemas == nil {
		return fmt.Errorf("format %s: schema_registry.url is required", sc.Format)
	}
	spec := confluent.Spec{
		Stream: sc.Name, Format: format, Registry: schemas,
		TimePath: sc.Time.Field, TimeFormat: decode.UnixMillis, MaxBytes: maxBytes,
	}
	if sc.Time.Format != "" {
		if spec.TimeFormat, err = decode.ParseTimeFormat(string(sc.Time.Format)); err != nil {
			return fmt.Errorf("time.format: %w", err)
		}
	}
	if sc.Subject != "" {
		// One pin per stream: every partition reads plain JSON values
		// with the same version of the subject.
		spec.Subject = confluent.NewSubject(sc.Subject)
	}
	if len(sc.Schema) > 0 {
		cols, err := sc.Columns()
		if err != nil {
			return err
		}
		if st.schema, err = partitioner.NewSchema(sc.Name, cols); err != nil {
			return err
		}
		for i, f := range sc.Schema {
			spec.Fields = append(spec.Fields, decode.Field{Column: cols[i], Path: f.Path})
		}
	}
	// Fail at start-up rather than in the first worker.
	if _, err := confluent.New(spec); err != nil {
		return err
	}
	st.cspec = spec
	return nil
}

// compileInfer compiles a schema: infer stream. Its decode spec has no
// columns: it validates records and reads their event time. Its schema is
// a placeholder for the spool file of a file still sampling.
func (st *Stream) compileInfer(sc config.Stream, maxBytes int) error {
	spec := decode.Spec{TimePath: sc.Time.Field, MaxBytes: maxBytes}
	if sc.Time.Field != "" {
		var err error
		if spec.TimeFormat, err = decode.ParseTimeFormat(string(sc.Time.Format)); err != nil {
			return fmt.Errorf("time.format: %w", err)
		}
	}
	if _, err := decode.New(spec); err != nil {
		return err
	}
	placeholder, err := partitioner.NewSchema(sc.Name, []partitioner.Column{{Name: "sampling", Type: partitioner.TypeString}})
	if err != nil {
		return err
	}
	n := sc.InferSample
	if n <= 0 {
		n = config.DefaultInferSample
	}
	st.schema, st.spec, st.infer = placeholder, spec, &inferSpec{sample: n}
	return nil
}
