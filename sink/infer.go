package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/infer"
)

// Schemaless JSON streams (`schema: infer`; package infer has the rules).
//
//   - Sampling: each new file of a partition-hour first buffers its records
//     (raw values, counted in files.memory_limit) until it has infer_sample
//     of them, or sampleMaxBytes of values, or the file is finished sooner
//     (hour closed, idle, shutdown, memory). Then its columns are fixed:
//     the join of everything this worker has sampled since it was assigned
//     the partition, so a worker's schemas only widen. The buffered records
//     are written and later ones decoded straight into the file.
//   - Rolling: a later record that does not fit the file's columns (a new
//     field, a value its column cannot hold losslessly) finishes the file,
//     as a new writer schema id does for avro (formats.go), and starts a
//     new file whose sample begins with that record. Widening is bounded
//     (infer.MaxColumns, a finite kind lattice), so rolls are too.
//   - Every record of the stream is first checked by the stream's
//     decode.Decoder with no columns (syntax, UTF-8, size, event time): bad
//     records go to the dead-letter topic as for any json stream, and so
//     do records infer cannot hold (bad_key, too_many_columns).
//   - The footer of each file carries its columns (MetaInferredSchema) and
//     their fingerprint (MetaSchemaFingerprint).
//   - Replays: a worker resuming from a commit infers afresh from there, so
//     a replayed file may get other columns and roll at other records than
//     the first attempt. Like a time-based file end, that only changes where
//     files are cut: names stay deterministic and the finalizer's orphan
//     rule (sink/doc.go) keeps every record exactly once.

// Footer keys of files of schema: infer streams.
const (
	// MetaInferredSchema holds the file's inferred columns as JSON:
	// [{"name":"device.id","type":"string"},...].
	MetaInferredSchema = "lakesink.inferred_schema"
	// MetaSchemaFingerprint identifies the column list ("sha256:..."):
	// files with equal fingerprints have equal columns.
	MetaSchemaFingerprint = "lakesink.schema_fingerprint"
)

// sampleMaxBytes caps the record bytes one file samples, whatever
// infer_sample says (and files.max_file_bytes, if smaller).
const sampleMaxBytes = 4 << 20

// inferSpec is the compiled schema: infer of a stream.
type inferSpec struct {
	sample int // records sampled per file
}

// compileInferStream compiles a schema: infer stream. Its decode spec has no
// columns: it validates records and reads their event time. Its schema is
// a placeholder for the spool file of a file still sampling.
func compileInferStream(sc config.Stream, tmpl *partitioner.PathTemplate, maxBytes int) (*stream, error) {
	spec := decode.Spec{TimePath: sc.Time.Field, MaxBytes: maxBytes}
	if sc.Time.Field != "" {
		var err error
		if spec.TimeFormat, err = decode.ParseTimeFormat(string(sc.Time.Format)); err != nil {
			return nil, fmt.Errorf("time.format: %w", err)
		}
	}
	if _, err := decode.New(spec); err != nil {
		return nil, err
	}
	placeholder, err := partitioner.NewSchema(sc.Name, []partitioner.Column{{Name: "sampling", Type: partitioner.TypeString}})
	if err != nil {
		return nil, err
	}
	n := sc.InferSample
	if n <= 0 {
		n = config.DefaultInferSample
	}
	st := newStream(sc, tmpl)
	st.schema, st.spec, st.infer = placeholder, spec, &inferSpec{sample: n}
	return st, nil
}

// inferWorker is a worker's inference state: the join of every record it
// sampled, and the schema last compiled from it.
type inferWorker struct {
	shape   *infer.Shape
	version uint64
	dec     *infer.Decoder // of the last compiled schema; nil before the first
}

// inferFile is an open file's inference state.
type inferFile struct {
	sampling bool
	recs     []sampled
	bytes    int64          // of recs, counted in the memory budget
	dec      *infer.Decoder // the file's columns, once sampled
}

type sampled struct {
	value  []byte
	offset int64
	ev     time.Time
}

func (w *worker) inferState() *inferWorker {
	if w.inf == nil {
		w.inf = &inferWorker{shape: infer.NewShape()}
	}
	return w.inf
}

// compiled returns the decoder of the schema of everything sampled so far.
func (iw *inferWorker) compiled(name string) (*infer.Decoder, error) {
	if iw.dec != nil && iw.version == iw.shape.Version() {
		return iw.dec, nil
	}
	s, err := iw.shape.Compile(name)
	if err != nil {
		return nil, err
	}
	iw.dec, iw.version = s.NewDecoder(), iw.shape.Version()
	return iw.dec, nil
}

// inferRow handles a record of a schema: infer stream before it is added to
// f, the open file of its hour (nil if none). For a file past its sample it
// decodes the record into the file's columns; a record that does not fit
// finishes the file (f becomes nil: the caller opens a new one, which
// samples). For a file that samples (or will) it joins the record into the
// worker's shape. A record infer cannot hold goes to the dead-letter topic
// and done is true.
func (w *worker) inferRow(ctx context.Context, f *openFile, hms int64, m kafka.Message) (_ *openFile, row []parquet.Value, done bool, err error) {
	iw := w.inferState()
	if f != nil && !f.inf.sampling {
		row, fits, err := f.inf.dec.Decode(m.Value)
		if err == nil && fits {
			return f, row, false, nil
		}
		if err == nil {
			err = iw.shape.Check(m.Value)
		}
		if err != nil {
			w.deadLetter(m, err)
			w.led.skipped(m.Offset, w.nowMs)
			return f, nil, true, nil
		}
		w.log.Info("record does not fit the inferred columns: new file", "offset", m.Offset,
			"hour", f.hour.Format(time.RFC3339), "fingerprint", f.inf.dec.Schema().Fingerprint())
		if err := w.finish(ctx, hms); err != nil {
			return nil, nil, false, err
		}
		f = nil
	}
	if err := iw.shape.Observe(m.Value); err != nil {
		w.deadLetter(m, err)
		w.led.skipped(m.Offset, w.nowMs)
		return f, nil, true, nil
	}
	return f, nil, false, nil
}

// newInferFile is the state of a file just opened: it samples.
func newInferFile() *inferFile { return &inferFile{sampling: true} }

// inferAppend adds a record to f: to its sample while it samples (ending
// the sample when it is full), else the decoded row to the file.
func (w *worker) inferAppend(f *openFile, row []parquet.Value, m kafka.Message, ev time.Time) error {
	fi := f.inf
	if !fi.sampling {
		if err := f.fw.Append(row, m.Offset, ev); err != nil {
			return fmt.Errorf("append to %s: %w", f.spool, err)
		}
		return nil
	}
	v := append([]byte(nil), m.Value...)
	fi.recs = append(fi.recs, sampled{value: v, offset: m.Offset, ev: ev})
	fi.bytes += int64(len(v))
	w.s.mem.add(int64(len(v)))
	if len(fi.recs) >= w.st.infer.sample || fi.bytes >= min(sampleMaxBytes, w.s.maxFileBytes) {
		return w.endSample(f)
	}
	return nil
}

// endSample fixes the columns of a sampling file: it replaces the
// placeholder spool file with one of the worker's current inferred schema
// and writes the sample into it. No-op for other files.
func (w *worker) endSample(f *openFile) error {
	fi := f.inf
	if fi == nil || !fi.sampling {
		return nil
	}
	dec, err := w.inferState().compiled(w.st.name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", w.st.name, err)
	}
	if err := f.fw.Abort(); err != nil {
		return err
	}
	schema := dec.Schema().Parquet()
	fw, err := partitioner.NewFileWriter(f.spool, schema, w.fileOptions(schema))
	if err != nil {
		return fmt.Errorf("open spool file: %w", err)
	}
	f.fw = fw
	for _, r := range fi.recs {
		row, fits, err := dec.Decode(r.value)
		if err != nil || !fits {
			// The schema is the join of the sample: this is a bug.
			return fmt.Errorf("inferred schema %s does not hold sampled record at offset %d (fits %v, err %v)", dec.Schema().Fingerprint(), r.offset, fits, err)
		}
		if err := fw.Append(row, r.offset, r.ev); err != nil {
			return fmt.Errorf("append to %s: %w", f.spool, err)
		}
	}
	w.dropSample(f)
	fi.sampling, fi.dec = false, dec
	return nil
}

// dropSample releases a file's sample from memory.
func (w *worker) dropSample(f *openFile) {
	if f.inf == nil {
		return
	}
	w.s.mem.release(f.inf.bytes)
	f.inf.recs, f.inf.bytes = nil, 0
}

// footerExtra is the footer metadata of f beyond partitioner's: the writer
// schema id (avro, protobuf) or the inferred columns (schema: infer).
func (w *worker) footerExtra(f *openFile) map[string]string {
	if f.inf == nil || f.inf.dec == nil {
		return schemaExtra(f.schemaID)
	}
	s := f.inf.dec.Schema()
	return map[string]string{MetaInferredSchema: s.Description(), MetaSchemaFingerprint: s.Fingerprint()}
}
