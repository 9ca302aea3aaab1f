package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/retry"
	"github.com/lakesink/lakesink/sink/tables"
)

// registryFormat is Avro, Protobuf and JSON Schema in the Confluent wire
// format, schemas from a Schema Registry (package confluent has the
// decoding rules).
//
//   - Columns: the stream's schema list when it has one, else derived from
//     each record's writer schema.
//   - Files: every file holds records of one writer schema id. A record whose
//     schema id differs from that of the open file of its hour finishes that
//     file (uploaded, as at the size cap) and starts a new one with the new
//     Parquet schema. The id is written to the file footer under
//     partitioner.MetaSchemaID and listed per file in the hour manifest
//     (schema_id).
//   - Registry outages: a record whose schema cannot be fetched is not bad
//     data. The partition waits and retries the same record with capped
//     exponential backoff (never skipped, never dead-lettered); /readyz says
//     why meanwhile. Unknown ids, truncated records, wrong magic bytes and
//     writer schemas that do not fit the stream go to the dead-letter topic
//     with their reason.
type registryFormat struct {
	w    *Worker
	dec  recordDecoder      // cdec, or a stand-in in tests
	cdec *confluent.Decoder // knows the schema of the record decoded last
	// tableSchemas, for a stream with a table and derived columns, is the
	// Parquet schema of each writer schema id with the table's field ids
	// (the table evolved to take it); nil otherwise.
	tableSchemas map[int]*partitioner.Schema
}

func newRegistryFormat(w *Worker) (*registryFormat, error) {
	if w.st.cspec.Registry == nil {
		return nil, errors.New("format " + string(w.st.Format) + " needs schema_registry.url")
	}
	d, err := confluent.New(w.st.cspec)
	if err != nil {
		return nil, err
	}
	x := &registryFormat{w: w, dec: d, cdec: d}
	if w.st.Table != nil && !w.st.Fixed() {
		x.tableSchemas = map[int]*partitioner.Schema{}
	}
	return x, nil
}

// errDraining ends a registry wait when the sink shuts down: the worker
// finishes its files and commits below the record, which is replayed.
var errDraining = errors.New("shutting down while waiting for the schema registry")

func (x *registryFormat) decode(ctx context.Context, m kafka.Message) ([]parquet.Value, time.Time, error) {
	row, ev, err := x.dec.Decode(m.Value, m.Time)
	if err != nil && !isRecordError(err) {
		row, ev, err = x.waitRegistry(ctx, m, err)
	}
	if err == nil && x.tableSchemas != nil {
		err = x.evolveTable(ctx, m)
	}
	return row, ev, err
}

// evolveTable makes sure the stream's table can take a file of the writer
// schema of the record just decoded (tables.Table.Evolve), once per schema
// id. A writer schema the table cannot take is the record's error
// (incompatible_schema, to the dead-letter topic, as every record of that
// schema); a catalog that does not answer is waited for, like the registry.
func (x *registryFormat) evolveTable(ctx context.Context, m kafka.Message) error {
	id := x.cdec.SchemaID()
	if _, ok := x.tableSchemas[id]; ok {
		return nil
	}
	w := x.w
	var schema *partitioner.Schema
	var recErr error
	err := retry.Until(ctx, retry.NewBackoff(200*time.Millisecond, 15*time.Second), func(ctx context.Context) error {
		cols, err := w.st.Table.Evolve(ctx, x.cdec.Schema().Columns())
		switch {
		case err == nil:
			schema, err = partitioner.NewSchema(w.st.Name, cols)
			recErr = err
			return nil
		case !tables.Retryable(err):
			recErr = &decode.Error{Reason: confluent.ReasonIncompatible, Detail: fmt.Sprintf("writer schema %d: %v", id, err)}
			return nil
		}
		return err
	}, func(attempt int, err error) {
		w.env.Health.Catalog(w.st.Name, err)
		w.log.Debug("table schema evolution failed, partition waits", "offset", m.Offset, "schema_id", id, "attempt", attempt, "err", err)
	})
	if err != nil {
		return x.stopped(ctx)
	}
	w.env.Health.Catalog(w.st.Name, nil)
	if recErr != nil {
		w.log.Warn("writer schema incompatible with the table: its records go to the dead-letter topic", "schema_id", id, "err", recErr)
		return recErr
	}
	x.tableSchemas[id] = schema
	return nil
}

// waitRegistry handles a record whose schema could not be fetched (err):
// it decodes the same record again with capped exponential backoff and
// jitter until it decodes or turns out bad. It returns errDraining or the
// context's error if the sink shuts down or the partition is revoked
// meanwhile.
func (x *registryFormat) waitRegistry(ctx context.Context, m kafka.Message, err error) ([]parquet.Value, time.Time, error) {
	w := x.w
	update, end := w.env.Health.RegistryWait(err)
	defer end()
	// Draining ends the wait like the end of the generation does.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-w.drain:
			cancel()
		case <-wctx.Done():
		}
	}()
	wait := retry.NewBackoff(100*time.Millisecond, 10*time.Second)
	failed := func(attempt int, err error) {
		update(err) // logs the fault, rate-limited
		w.log.Debug("schema registry unreachable, partition waits", "offset", m.Offset, "attempt", attempt, "err", err)
	}
	w.log.Debug("schema registry unreachable, partition waits", "offset", m.Offset, "attempt", 1, "err", err)
	var row []parquet.Value
	var ev time.Time
	var recErr error
	if !retry.Sleep(wctx, wait.Next()) {
		return nil, time.Time{}, x.stopped(ctx)
	}
	werr := retry.Until(wctx, wait, func(context.Context) error {
		var derr error
		row, ev, derr = x.dec.Decode(m.Value, m.Time)
		if derr == nil || isRecordError(derr) {
			recErr = derr
			return nil
		}
		return derr
	}, func(attempt int, err error) { failed(attempt+1, err) })
	if werr != nil {
		return nil, time.Time{}, x.stopped(ctx)
	}
	return row, ev, recErr
}

// stopped is the error of a registry wait cut short: the generation's end
// or the drain.
func (x *registryFormat) stopped(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errDraining
}

func (x *registryFormat) fit(f *openFile, _ kafka.Message, row []parquet.Value) ([]parquet.Value, bool, error) {
	// A new writer schema starts a new file.
	return row, f == nil || f.schemaID == x.cdec.SchemaID(), nil
}

func (x *registryFormat) newFile(f *openFile) *partitioner.Schema {
	f.schemaID = x.cdec.SchemaID()
	if s := x.tableSchemas[f.schemaID]; s != nil {
		return s
	}
	return x.cdec.Schema()
}

func (x *registryFormat) append(f *openFile, row []parquet.Value, m kafka.Message, ev time.Time) error {
	return appendRow(f, row, m, ev)
}

func (x *registryFormat) seal(*openFile) error { return nil }
func (x *registryFormat) drop(*openFile)       {}

func (x *registryFormat) footer(f *openFile) map[string]string {
	if f.schemaID == 0 {
		return nil
	}
	return map[string]string{partitioner.MetaSchemaID: strconv.Itoa(f.schemaID)}
}
