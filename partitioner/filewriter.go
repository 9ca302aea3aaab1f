package partitioner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

// ErrWriterClosed is returned by a FileWriter after Finish or Abort.
var ErrWriterClosed = errors.New("file writer is closed")

// FileWriter builds one Parquet data file on the spool disk from the records
// of one (stream, hour, topic partition) bucket, in offset order.
//
// Memory stays bounded whatever the file size: rows are encoded into pages
// as they arrive, row groups go to disk at RowGroupBytes, and encoded pages
// beyond PageMemoryBytes (or all of them, on Flush) wait in a spool file. A
// deferred writer (FileOptions.Deferred) logs its rows to the spool disk
// instead and encodes them at Finish.
//
// The bytes of the file, and EstimatedBytes at every step, depend only on the
// rows appended and the options, never on when Flush was called. Errors
// from Append that describe a bad row (wrong arity, kind or null in a
// required column, offset out of order) leave the writer unchanged; any I/O
// error is sticky, after which the caller must Abort.
//
// A FileWriter is not safe for concurrent use. The caller owns the file:
// after Finish it is complete and closed, and the caller uploads and removes
// it; Abort removes it.
type FileWriter struct {
	path   string
	schema *Schema
	opts   FileOptions
	f      *os.File
	out    *fileOut
	pool   *pagePool
	pw     *parquet.GenericWriter[any]
	codec  compress.Codec

	// log holds the rows of a deferred writer until Finish encodes them
	// (FileOptions.Deferred); nil otherwise, and once encoding starts.
	log    *rowLog
	logged int64 // plain size of the rows in log

	// batch holds the pending rows column by column (leaf order), nbatch
	// values each: they go to parquet-go's column writers directly, which
	// skips WriteRows' row-to-column transposition.
	batch   [][]parquet.Value
	nbatch  int
	arena   []byte // copies of the pending rows' byte arrays
	pending int64  // plain size of the pending rows
	// size is pw.Size(), kept from the last change of parquet-go's writer
	// (writeBatch, EndRowGroup): EstimatedBytes is asked after every
	// record, and Size sums every column's buffers each time (3 % of the
	// one-core pipeline's CPU).
	size int64

	records     int64
	first, last int64
	minT, maxT  time.Time

	err    error // sticky I/O error
	closed bool
}

// NewFileWriter creates (or truncates) the spool file at path and returns a
// writer of schema's rows into it.
func NewFileWriter(path string, schema *Schema, opts FileOptions) (*FileWriter, error) {
	if schema == nil {
		return nil, errors.New("new file writer: nil schema")
	}
	opts, codec, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new file writer %s: %w", path, err)
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = filepath.Dir(path)
	}
	w := &FileWriter{
		path:   path,
		schema: schema,
		opts:   opts,
		codec:  codec,
		first:  -1,
		last:   -1,
	}
	if opts.Deferred {
		w.log = newRowLog(opts.SpoolDir, path)
		return w, nil
	}
	if err := w.openEncoder(); err != nil {
		return nil, err
	}
	return w, nil
}

// Deferred reports whether the rows wait in a row log until Finish
// (FileOptions.Deferred).
func (w *FileWriter) Deferred() bool { return w.log != nil }

// Path returns the spool file's path.
func (w *FileWriter) Path() string { return w.path }

// Append adds the record at offset with event time eventTime. Offsets must
// increase strictly. Byte slices in row may be reused by the caller once
// Append returns. Append does not allocate in steady state. Values of
// MillisAsMicros columns are scaled to microseconds in row itself.
func (w *FileWriter) Append(row Row, offset int64, eventTime time.Time) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrWriterClosed
	}
	s := w.schema
	if len(row) != len(s.cols) {
		return fmt.Errorf("append offset %d: row has %d values, schema has %d columns", offset, len(row), len(s.cols))
	}
	if offset < 0 || (w.records > 0 && offset <= w.last) {
		return fmt.Errorf("append offset %d: offsets must increase (last %d)", offset, w.last)
	}
	for _, i := range s.scale {
		// Values are milliseconds; the column is TIMESTAMP(MICROS).
		if !row[i].IsNull() && row[i].Kind() == parquet.Int64 {
			row[i] = parquet.Int64Value(row[i].Int64() * 1000)
		}
	}
	need, size := 0, int64(0)
	for i, v := range row {
		if v.IsNull() {
			if s.cols[i].Required {
				return fmt.Errorf("append offset %d: column %q is required", offset, s.cols[i].Name)
			}
			continue
		}
		k := v.Kind()
		if k != s.kind[i] {
			return fmt.Errorf("append offset %d: column %q is %v, got a %v value", offset, s.cols[i].Name, s.kind[i], k)
		}
		n, sz := plainSize(k, v)
		need += n
		size += sz
	}
	if w.log != nil {
		if err := w.log.append(s, row); err != nil {
			return w.fail(fmt.Errorf("append to %s: %w", w.log.path, err))
		}
		w.logged += size
	} else if err := w.encodeRow(row, need, size); err != nil {
		return err
	}
	if w.records == 0 {
		w.first = offset
		w.minT, w.maxT = eventTime.UTC(), eventTime.UTC()
	} else {
		if eventTime.Before(w.minT) {
			w.minT = eventTime.UTC()
		}
		if eventTime.After(w.maxT) {
			w.maxT = eventTime.UTC()
		}
	}
	w.last = offset
	w.records++
	return nil
}

func (w *FileWriter) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Records returns the number of records appended.
func (w *FileWriter) Records() int64 { return w.records }

// FirstOffset returns the offset of the first record, -1 before any.
func (w *FileWriter) FirstOffset() int64 { return w.first }

// LastOffset returns the offset of the last record, -1 before any.
func (w *FileWriter) LastOffset() int64 { return w.last }

// MinEventTime returns the earliest event time appended (UTC), zero before
// any record.
func (w *FileWriter) MinEventTime() time.Time { return w.minT }

// MaxEventTime returns the latest event time appended (UTC), zero before
// any record.
func (w *FileWriter) MaxEventTime() time.Time { return w.maxT }

// EstimatedBytes estimates the size of the file if it were finished now:
// bytes already in the file, plus the encoded pages and unencoded values of
// the current row group, plus the plain size of rows not yet handed to the
// encoder; the footer (a few KiB) is not counted. Unencoded values count at
// their plain size, so the estimate runs ahead of the final size by at most
// one page per column. It is a deterministic function of the rows appended
// (Flush does not change it), so file boundaries that compare it with
// files.max_file_bytes are the same on every replay.
func (w *FileWriter) EstimatedBytes() int64 {
	if w.closed {
		return w.out.n
	}
	if w.log != nil {
		return w.logged
	}
	return w.size + w.pending
}

// Finish writes the last row group and the footer, with meta and the
// file's offsets, record count and event-time range as key/value metadata
// (keys Meta*) and closes the file. It does not fsync: the spool copy is
// scratch — what makes a file durable is its upload (the local writer
// fsyncs its own copy), and after a crash the records are replayed from
// Kafka, not read from the spool. With thousands of files finishing when
// an hour closes on every partition, an fsync per spool file was a third
// of the time from the last record consumed to the last commit (512
// partitions × 4 hours). A writer without records cannot be finished
// (Abort it). If Finish fails, call Abort.
func (w *FileWriter) Finish(meta FileMeta) (FileInfo, error) {
	if w.err != nil {
		return FileInfo{}, w.err
	}
	if w.closed {
		return FileInfo{}, ErrWriterClosed
	}
	if w.records == 0 {
		return FileInfo{}, fmt.Errorf("finish %s: no records", w.path)
	}
	kv := map[string]string{
		MetaStream:       meta.Stream,
		MetaTopic:        meta.Topic,
		MetaPartition:    strconv.Itoa(meta.Partition),
		MetaFirstOffset:  strconv.FormatInt(w.first, 10),
		MetaLastOffset:   strconv.FormatInt(w.last, 10),
		MetaRecords:      strconv.FormatInt(w.records, 10),
		MetaMinEventTime: w.minT.Format(time.RFC3339Nano),
		MetaMaxEventTime: w.maxT.Format(time.RFC3339Nano),
		MetaHour:         meta.Hour.Format(time.RFC3339),
	}
	for k, v := range meta.Extra {
		if _, reserved := kv[k]; reserved {
			return FileInfo{}, fmt.Errorf("finish %s: extra metadata key %q is reserved", w.path, k)
		}
		kv[k] = v
	}
	if w.log != nil {
		// The slot is held until the file is closed: the encoded pages
		// and the values being filled are in memory until then.
		if slots := w.opts.EncodeSlots; slots != nil {
			slots <- struct{}{}
			defer func() { <-slots }()
		}
		if err := w.encodeLog(); err != nil {
			return FileInfo{}, err
		}
	}
	if w.nbatch > 0 {
		if err := w.writeBatch(); err != nil {
			return FileInfo{}, err
		}
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w.pw.SetKeyValueMetadata(k, kv[k])
	}
	if err := w.pw.Close(); err != nil {
		return FileInfo{}, w.fail(fmt.Errorf("finish %s: %w", w.path, err))
	}
	if err := w.out.release(); err != nil {
		return FileInfo{}, w.fail(fmt.Errorf("finish %s: %w", w.path, err))
	}
	if w.pool.err != nil {
		return FileInfo{}, w.fail(w.pool.err)
	}
	if err := w.f.Close(); err != nil {
		return FileInfo{}, w.fail(fmt.Errorf("finish %s: close: %w", w.path, err))
	}
	w.closed = true
	_ = w.pool.close()
	return FileInfo{
		Path:         w.path,
		Records:      w.records,
		Bytes:        w.out.n,
		FirstOffset:  w.first,
		LastOffset:   w.last,
		MinEventTime: w.minT,
		MaxEventTime: w.maxT,
	}, nil
}

// Abort closes and removes an unfinished file. It is idempotent, and a
// no-op after a successful Finish (the finished file is the caller's).
func (w *FileWriter) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.err == nil {
		w.err = ErrWriterClosed
	}
	if w.log != nil {
		w.log.close()
	}
	if w.pool != nil {
		_ = w.pool.close()
		_ = w.f.Close() // may already be closed by a failed Finish
	}
	w.batch, w.arena = nil, nil
	if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("abort %s: %w", w.path, err)
	}
	return nil
}
