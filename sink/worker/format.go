package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
)

// format is how one worker turns its stream's records into rows of hour
// files. There are three:
//
//   - fixedFormat: JSON with a configured column list (this file);
//   - registryFormat: Avro, Protobuf and JSON Schema in the Confluent wire
//     format, columns from the list or from each writer schema (registry.go);
//   - inferFormat: schemaless JSON whose columns are inferred per file
//     (infer.go).
//
// The worker calls decode for every record, then fit with the open file of
// the record's hour; when fit says the file cannot take the record
// (fitRoll), the worker finishes the hour's files and calls fit again with
// none. A registry stream with derived columns can have several files of
// an hour open, one per family of compatible writer schemas: fit says
// fitOther for a record of another family, and the worker asks the hour's
// next file, or none for a new family (Worker.process, fileKey). A new
// file gets its schema and state from newFile. A format belongs to one
// worker and is not safe for concurrent use; what it may use of the worker
// is its formatEnv.
type format interface {
	// decode checks m and returns its event time and, for formats whose
	// columns do not depend on the file, its row. An error sends the
	// record to the dead-letter topic (its reason from a *decode.Error),
	// except errDraining and, once ctx has ended, errors that are not
	// *decode.Error: those stop the worker and the record is replayed.
	decode(ctx context.Context, m kafka.Message) ([]parquet.Value, time.Time, error)
	// fit returns the row of m for f, an open file of its hour (nil:
	// none), and whether f takes it. An error sends the record to the
	// dead-letter topic. With f nil, it is fitOK. Otherwise out is row:
	// the worker passes it on to another file or to fit(nil).
	fit(f *openFile, m kafka.Message, row []parquet.Value) (out []parquet.Value, fit fitted, err error)
	// newFile returns the Parquet schema of a new file for the record just
	// fitted, and sets the format's state on f.
	newFile(f *openFile) *partitioner.Schema
	// append adds the fitted row to f.
	append(f *openFile, row []parquet.Value, m kafka.Message, ev time.Time) error
	// seal makes f ready to be finished (a sampling file gets its columns).
	seal(f *openFile) error
	// footer is f's footer metadata beyond partitioner's.
	footer(f *openFile) map[string]string
	// drop releases what f holds besides its FileWriter (abandoned files).
	drop(f *openFile)
}

// fitted is what fit says about a record and an open file.
type fitted int

const (
	// fitOK: the file takes the row fit returned.
	fitOK fitted = iota
	// fitRoll: it does not; the hour's files finish and a new one starts.
	fitRoll
	// fitOther: the record's writer schema is of another family than the
	// file's (incompatible columns): another file of the hour takes it.
	fitOther
)

// formatEnv is what a format may use of its worker, and all of it: the
// stream, the worker's logger, readiness reports, the memory budget its
// samples count in, how to open a spool file, and the drain. It points at
// nothing of the worker; the worker and its format share one (New).
type formatEnv struct {
	st     *Stream
	log    *slog.Logger // the worker's: it names the topic and partition
	health formatHealth
	mem    memCounter // samples count in it (sampler)
	// sampleBytes is where a file's sample is full at the latest:
	// sampleLimit(files.max_file_bytes).
	sampleBytes int64
	// newWriter opens a spool file of schema at path with the options the
	// worker's memory share gives a file opened now (fileSet.newWriter):
	// for a file whose sample settled its columns.
	newWriter func(path string, schema *partitioner.Schema) (*partitioner.FileWriter, error)
	// drain is Run's: closed when the sink shuts down, it ends a wait for
	// the schema registry (errDraining). The worker sets it before each
	// run.
	drain <-chan struct{}
}

// formatHealth is what formats report for readiness (Health has it):
// registry waits, and table schema evolution as the catalog's state.
type formatHealth interface {
	RegistryWait(err error) (update func(error), end func())
	Catalog(stream string, err error)
}

// newFormat builds the format of fx's stream.
func newFormat(fx *formatEnv) (format, error) {
	st := fx.st
	switch {
	case st.Format.UsesRegistry():
		return newRegistryFormat(fx)
	case st.infer != nil:
		d, err := decode.New(st.spec)
		if err != nil {
			return nil, err
		}
		return &inferFormat{fx: fx, check: d}, nil
	}
	d, err := decode.New(st.spec)
	if err != nil {
		return nil, err
	}
	return &fixedFormat{dec: d, schema: st.schema}, nil
}

// isRecordError reports whether err is about the record itself rather than
// the schema registry being unreachable.
func isRecordError(err error) bool {
	var de *decode.Error
	return errors.As(err, &de)
}

// recordDecoder turns one record value into a row in column order and its
// event time. *decode.Decoder and *confluent.Decoder implement it.
type recordDecoder interface {
	Decode(value []byte, recordTime time.Time) ([]parquet.Value, time.Time, error)
}

// fixedFormat is JSON decoded into the configured columns: every record of
// an hour fits its file.
type fixedFormat struct {
	dec    recordDecoder
	schema *partitioner.Schema
}

func (x *fixedFormat) decode(_ context.Context, m kafka.Message) ([]parquet.Value, time.Time, error) {
	return x.dec.Decode(m.Value, m.Time)
}

func (x *fixedFormat) fit(_ *openFile, _ kafka.Message, row []parquet.Value) ([]parquet.Value, fitted, error) {
	return row, fitOK, nil
}

func (x *fixedFormat) newFile(*openFile) *partitioner.Schema { return x.schema }

func (x *fixedFormat) append(f *openFile, row []parquet.Value, m kafka.Message, ev time.Time) error {
	return appendRow(f, row, m, ev)
}

func (x *fixedFormat) seal(*openFile) error               { return nil }
func (x *fixedFormat) footer(*openFile) map[string]string { return nil }
func (x *fixedFormat) drop(*openFile)                     {}

// appendRow writes a decoded row to f's Parquet file.
func appendRow(f *openFile, row []parquet.Value, m kafka.Message, ev time.Time) error {
	if err := f.fw.Append(row, m.Offset, ev); err != nil {
		return fmt.Errorf("append to %s: %w", f.spool, err)
	}
	return nil
}
