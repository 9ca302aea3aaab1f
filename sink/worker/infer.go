package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode/infer"
)

// inferFormat is schemaless JSON (`schema: infer`; package infer has the
// rules).
//
//   - Sampling: each new file of a partition-hour first buffers its records
//     (raw values, counted in files.memory_limit; a sampler, sample.go)
//     until it has infer_sample of them, or sampleLimit's bytes of values,
//     or the file is finished sooner
//     (hour closed, idle, shutdown, memory). Then its columns are fixed:
//     the join of everything this worker has sampled since it was assigned
//     the partition, so a worker's schemas only widen. The buffered records
//     are written and later ones decoded straight into the file.
//   - Rolling: a later record that does not fit the file's columns (a new
//     field, a value its column cannot hold losslessly) finishes the file,
//     as a new writer schema id does for avro (registry.go), and starts a
//     new file whose sample begins with that record. Widening is bounded
//     (infer.MaxColumns, a finite kind lattice), so rolls are too.
//   - Every record of the stream is first checked by the stream's
//     decode.Decoder with no columns (syntax, UTF-8, size, event time): bad
//     records go to the dead-letter topic as for any json stream, and so
//     do records infer cannot hold (bad_key, too_many_columns).
//   - Replays: a worker resuming from a commit infers afresh from there, so
//     a replayed file may get other columns and roll at other records than
//     the first attempt. Like a time-based file end, that only changes where
//     files are cut: names stay deterministic and the finalizer's orphan
//     rule (docs/design.md, "Orphans") keeps every record exactly once.
//   - The footer of each file carries its columns
//     (partitioner.MetaInferredSchema) and their fingerprint
//     (partitioner.MetaSchemaFingerprint).
type inferFormat struct {
	fx    *formatEnv
	check recordDecoder // validates records and reads their event time
	shape *infer.Shape  // the join of every record this worker sampled
	// version and dec: the decoder of the schema last compiled from shape.
	version uint64
	dec     *infer.Decoder
}

// inferSpec is the compiled schema: infer of a stream.
type inferSpec struct {
	sample int // records sampled per file
}

// inferFile is an open file's inference state.
type inferFile struct {
	sampling bool
	sample   sampler[[]byte] // copies of the records' values
	dec      *infer.Decoder  // the file's columns, once sampled
}

func (x *inferFormat) decode(_ context.Context, m kafka.Message) ([]parquet.Value, time.Time, error) {
	return x.check.Decode(m.Value, m.Time)
}

// compiled returns the decoder of the schema of everything sampled so far.
func (x *inferFormat) compiled() (*infer.Decoder, error) {
	if x.shape == nil {
		x.shape = infer.NewShape()
	}
	if x.dec != nil && x.version == x.shape.Version() {
		return x.dec, nil
	}
	s, err := x.shape.Compile(x.fx.st.Name)
	if err != nil {
		return nil, err
	}
	x.dec, x.version = s.NewDecoder(), x.shape.Version()
	return x.dec, nil
}

// fit handles a record before it is added to f, the open file of its hour
// (nil if none). For a file past its sample it decodes the record into the
// file's columns; a record that does not fit means a new file (fitRoll).
// For a file that samples (or will) it joins the record into the worker's
// shape. A record infer cannot hold is an error (dead-lettered).
func (x *inferFormat) fit(f *openFile, m kafka.Message, _ []parquet.Value) ([]parquet.Value, fitted, error) {
	if x.shape == nil {
		x.shape = infer.NewShape()
	}
	if f != nil && !f.inf.sampling {
		row, fits, err := f.inf.dec.Decode(m.Value)
		if err == nil && fits {
			return row, fitOK, nil
		}
		if err == nil {
			err = x.shape.Check(m.Value)
		}
		if err != nil {
			return nil, fitRoll, err
		}
		x.fx.log.Info("record does not fit the inferred columns: new file", "offset", m.Offset,
			"hour", f.hour.Format(time.RFC3339), "fingerprint", f.inf.dec.Schema().Fingerprint())
		return nil, fitRoll, nil
	}
	if err := x.shape.Observe(m.Value); err != nil {
		return nil, fitRoll, err
	}
	return nil, fitOK, nil
}

// newFile starts a file that samples; its spool file has a placeholder
// schema until the sample ends.
func (x *inferFormat) newFile(f *openFile) *partitioner.Schema {
	fx := x.fx
	f.inf = &inferFile{sampling: true, sample: newSampler[[]byte](fx.mem, fx.st.infer.sample, fx.sampleBytes)}
	return fx.st.schema
}

// append adds a record to f: to its sample while it samples (ending the
// sample when it is full), else the decoded row to the file.
func (x *inferFormat) append(f *openFile, row []parquet.Value, m kafka.Message, ev time.Time) error {
	fi := f.inf
	if !fi.sampling {
		return appendRow(f, row, m, ev)
	}
	v := append([]byte(nil), m.Value...)
	if fi.sample.add(v, int64(len(v)), m.Offset, ev) {
		return x.seal(f)
	}
	return nil
}

// seal fixes the columns of a sampling file: it replaces the placeholder
// spool file with one of the worker's current inferred schema and writes
// the sample into it. No-op for other files.
func (x *inferFormat) seal(f *openFile) error {
	fi := f.inf
	if fi == nil || !fi.sampling {
		return nil
	}
	dec, err := x.compiled()
	if err != nil {
		return fmt.Errorf("stream %s: %w", x.fx.st.Name, err)
	}
	err = fi.sample.writeTo(f, dec.Schema().Parquet(), x.fx.newWriter, func(r sampled[[]byte]) ([]parquet.Value, error) {
		row, fits, err := dec.Decode(r.rec)
		if err != nil || !fits {
			// The schema is the join of the sample: this is a bug.
			return nil, fmt.Errorf("inferred schema %s does not hold sampled record at offset %d (fits %v, err %v)", dec.Schema().Fingerprint(), r.offset, fits, err)
		}
		return row, nil
	})
	if err != nil {
		return err
	}
	fi.sampling, fi.dec = false, dec
	return nil
}

// drop releases a file's sample from memory.
func (x *inferFormat) drop(f *openFile) {
	if f.inf != nil {
		f.inf.sample.release()
	}
}

// footer is the inferred columns and their fingerprint.
func (x *inferFormat) footer(f *openFile) map[string]string {
	if f.inf == nil || f.inf.dec == nil {
		return nil
	}
	s := f.inf.dec.Schema()
	return map[string]string{partitioner.MetaInferredSchema: s.Description(), partitioner.MetaSchemaFingerprint: s.Fingerprint()}
}
