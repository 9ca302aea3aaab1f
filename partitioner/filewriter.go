package partitioner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// Defaults of FileOptions.
const (
	DefaultRowGroupBytes   = 64 << 20
	DefaultPageBufferBytes = 32 << 10
	DefaultPageMemoryBytes = 1 << 20
)

const (
	batchRows  = 32       // rows handed to parquet-go per WriteRows call
	arenaBytes = 16 << 10 // byte-array bytes copied per batch
	outBuffer  = 64 << 10 // write buffer, held only while a row group is written
)

// FileOptions configure a FileWriter. The zero value is usable.
//
// Memory of one FileWriter with the defaults, measured by
// TestFileWriterMemory (linux/amd64, Go 1.26, parquet-go v0.32.0, the
// 7-column clickstream schema of the benchmark, zstd):
//
//	open, 10 rows                          ~43 KiB (overhead + 16 KiB arena)
//	open, 500 rows                        ~240 KiB
//	open, 60000 rows, row group filling   ~350 KiB
//
// parquet-go's own defaults (256 KiB page buffers, 32 KiB write buffer,
// in-memory page buffers) would hold a busy file's whole encoded row group,
// up to RowGroupBytes, in memory; what bounds it here: PageBufferBytes (32 KiB) caps the unencoded
// values per column, page buffers spill to disk past PageMemoryBytes, and
// the write buffer exists only while a row group is being written.
// BufferedBytes reports the estimate the sink accounts against its memory
// limit.
type FileOptions struct {
	// Compression codec of every column chunk: "zstd" (default when
	// empty), "snappy", "gzip" or "none".
	Compression string
	// RowGroupBytes ends a row group once its encoded pages plus unencoded
	// values reach this size. Default DefaultRowGroupBytes.
	RowGroupBytes int64
	// PageBufferBytes is the unencoded size of a data page: each column
	// holds up to this many bytes of values in memory before encoding and
	// compressing them into a page. Smaller pages mean less memory per open
	// file and slightly larger files. Default DefaultPageBufferBytes.
	PageBufferBytes int
	// PageMemoryBytes bounds the encoded pages of the current row group
	// kept in memory; beyond it they move to an unlinked spool file in
	// SpoolDir until the row group is written. Default
	// DefaultPageMemoryBytes.
	PageMemoryBytes int64
	// SpoolDir holds the page spool file. Default: the data file's folder.
	SpoolDir string
	// Deferred writes the rows to a row log on the spool disk (an unnamed
	// file in SpoolDir, created once the rows outgrow the log's 16 KiB
	// buffer) instead of encoding them as they arrive,
	// and encodes the whole file at Finish. An open deferred writer holds
	// about 17 KiB of memory (its row log buffer) whatever its size and column count, against
	// tens to hundreds of KiB for an encoding one: it is how thousands of
	// files can stay open in a small memory limit without being ended
	// early. The price: the rows cross the spool disk twice, and the
	// encoding work of the whole file is done at Finish. The file's rows
	// are the same; its row groups are cut as an encoding writer would cut
	// them.
	Deferred bool
	// EncodeSlots, when not nil, bounds how many deferred writers that
	// share it encode at once: Finish holds one slot (a buffered channel
	// of capacity N allows N) from encoding the first row to closing the
	// file, so the memory of encoding does not grow with the number of
	// files finishing together.
	EncodeSlots chan struct{}
}

var fastZstd = &zstd.Codec{Level: zstd.SpeedFastest}

func (o FileOptions) withDefaults() (FileOptions, compress.Codec, error) {
	var codec compress.Codec
	switch o.Compression {
	case "", "zstd":
		// zstd's fastest level: at ingest rates it costs about half the CPU
		// of the default level for files 5-10% larger.
		codec = fastZstd
	case "snappy":
		codec = &parquet.Snappy
	case "gzip":
		codec = &parquet.Gzip
	case "none":
		codec = &parquet.Uncompressed
	default:
		return o, nil, fmt.Errorf("unknown compression %q (want zstd, snappy, gzip or none)", o.Compression)
	}
	if o.RowGroupBytes < 0 || o.PageBufferBytes < 0 || o.PageMemoryBytes < 0 {
		return o, nil, errors.New("negative size in file options")
	}
	if o.RowGroupBytes == 0 {
		o.RowGroupBytes = DefaultRowGroupBytes
	}
	if o.PageBufferBytes == 0 {
		o.PageBufferBytes = DefaultPageBufferBytes
	}
	if o.PageMemoryBytes == 0 {
		o.PageMemoryBytes = DefaultPageMemoryBytes
	}
	return o, codec, nil
}

// FileMeta describes the bucket a file belongs to; Finish writes it into the
// Parquet footer's key/value metadata.
type FileMeta struct {
	Stream    string
	Topic     string
	Partition int
	Hour      time.Time
	// Extra key/value pairs, written verbatim. Keys must not be one of the
	// lakesink.* keys that FileWriter writes itself.
	Extra map[string]string
}

// FileInfo describes a finished file, as the manifest lists it.
type FileInfo struct {
	Path         string
	Records      int64
	Bytes        int64 // size of the finished file
	FirstOffset  int64
	LastOffset   int64
	MinEventTime time.Time // UTC
	MaxEventTime time.Time // UTC
}

// Footer key/value metadata keys written by Finish.
const (
	MetaStream       = "lakesink.stream"
	MetaTopic        = "lakesink.topic"
	MetaPartition    = "lakesink.partition"
	MetaFirstOffset  = "lakesink.first_offset"
	MetaLastOffset   = "lakesink.last_offset"
	MetaRecords      = "lakesink.records"
	MetaMinEventTime = "lakesink.min_event_time" // RFC 3339 with nanoseconds, UTC
	MetaMaxEventTime = "lakesink.max_event_time" // RFC 3339 with nanoseconds, UTC
	MetaHour         = "lakesink.hour"           // RFC 3339, in the stream's zone
)

// Footer keys that lakesink's formats add through FileMeta.Extra.
const (
	// MetaSchemaID holds the registry id of the writer schema of an avro,
	// protobuf or json_schema file's records (decimal) when they all have
	// the same one; files written before MetaSchemaIDs have only this key.
	MetaSchemaID = "lakesink.schema_id"
	// MetaSchemaIDs holds the registry ids of the writer schemas of a
	// registry file's records, ascending, comma-separated ("7,9"); see
	// FormatSchemaIDs and SchemaIDs.
	MetaSchemaIDs = "lakesink.schema_ids"
	// MetaInferredSchema holds a schema: infer file's columns as JSON:
	// [{"name":"device.id","type":"string"},...].
	MetaInferredSchema = "lakesink.inferred_schema"
	// MetaSchemaFingerprint identifies the inferred column list
	// ("sha256:..."): files with equal fingerprints have equal columns.
	MetaSchemaFingerprint = "lakesink.schema_fingerprint"
)

var metaKeys = []string{MetaStream, MetaTopic, MetaPartition, MetaFirstOffset, MetaLastOffset,
	MetaRecords, MetaMinEventTime, MetaMaxEventTime, MetaHour}

// ErrWriterClosed is returned by a FileWriter after Finish or Abort.
var ErrWriterClosed = errors.New("file writer is closed")

// FileWriter builds one Parquet data file on the spool disk from the records
// of one (stream, hour, topic partition) bucket, in offset order.
//
// Memory stays bounded whatever the file size: rows are encoded into pages
// as they arrive, row groups go to disk at RowGroupBytes, and encoded pages
// beyond PageMemoryBytes (or all of them, on Flush) wait in a spool file.
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

// openEncoder creates the data file and parquet-go's writer into it: at
// NewFileWriter, or at Finish for a deferred writer.
func (w *FileWriter) openEncoder() error {
	opts, schema := w.opts, w.schema
	pool := newPagePool(opts.SpoolDir)
	config, err := parquet.NewWriterConfig(
		schema.pq,
		parquet.Compression(w.codec),
		parquet.PageBufferSize(opts.PageBufferBytes),
		// Unbuffered: fileOut buffers only while a row group is written,
		// instead of parquet-go's 32 KiB held for the writer's lifetime.
		parquet.WriteBufferSize(-1),
		// Data page v1 and PLAIN byte arrays: what every Spark, Hive,
		// Athena and Trino version reads.
		parquet.DataPageVersion(1),
		parquet.DefaultEncodingFor(parquet.ByteArray, &parquet.Plain),
		parquet.ColumnPageBuffers(pool),
	)
	if err != nil {
		return fmt.Errorf("new file writer %s: %w", w.path, err)
	}
	f, err := os.OpenFile(w.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("new file writer: %w", err)
	}
	w.f, w.pool = f, pool
	w.out = &fileOut{f: f}
	w.pw = parquet.NewGenericWriter[any](w.out, config)
	w.size = w.pw.Size()
	w.batch = make([][]parquet.Value, len(schema.cols))
	values := make([]parquet.Value, batchRows*len(schema.cols))
	for i := range w.batch {
		w.batch[i] = values[i*batchRows : (i+1)*batchRows : (i+1)*batchRows]
	}
	return nil
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

// encodeRow adds a checked row to the pending batch, handing the batch to
// parquet-go when it is full. need is the row's byte-array bytes, size its
// plain size (measure).
func (w *FileWriter) encodeRow(row Row, need int, size int64) error {
	s := w.schema
	if w.nbatch > 0 && (w.nbatch == batchRows || len(w.arena)+need > cap(w.arena)) {
		if err := w.writeBatch(); err != nil {
			return err
		}
	}
	// A row whose strings do not fit the arena is written at once, its
	// values aliasing the caller's buffer (parquet-go copies them).
	direct := need > arenaBytes
	if need > 0 && !direct && w.arena == nil {
		w.arena = make([]byte, 0, arenaBytes)
	}
	r := w.nbatch
	for i, v := range row {
		leaf := s.leaf[i]
		if v.IsNull() {
			w.batch[leaf][r] = parquet.Value{}.Level(0, 0, leaf)
			continue
		}
		def := 1
		if s.cols[i].Required {
			def = 0
		}
		if !direct && v.Kind() == parquet.ByteArray {
			start := len(w.arena)
			w.arena = append(w.arena, v.ByteArray()...)
			v = parquet.ByteArrayValue(w.arena[start:len(w.arena):len(w.arena)])
		}
		w.batch[leaf][r] = v.Level(0, def, leaf)
	}
	w.nbatch++
	w.pending += size
	if direct {
		if err := w.writeBatch(); err != nil {
			return err
		}
	}
	return nil
}

// measure returns a checked row's byte-array bytes and plain size.
func (w *FileWriter) measure(row Row) (need int, size int64) {
	for _, v := range row {
		if v.IsNull() {
			continue
		}
		n, sz := plainSize(v.Kind(), v)
		need += n
		size += sz
	}
	return need, size
}

// plainSize returns the byte-array bytes and the plain-encoded size of a
// non-null value of kind k.
func plainSize(k parquet.Kind, v parquet.Value) (need int, size int64) {
	switch k {
	case parquet.ByteArray:
		n := len(v.ByteArray())
		return n, 4 + int64(n)
	case parquet.Boolean:
		return 0, 1
	case parquet.Int32, parquet.Float:
		return 0, 4
	}
	return 0, 8
}

// writeBatch hands the pending rows to parquet-go, then ends the row group
// if it reached RowGroupBytes and spills pages beyond PageMemoryBytes. It is
// called at points that depend only on the rows, which keeps page and row
// group boundaries deterministic.
func (w *FileWriter) writeBatch() error {
	// Whole rows per call, as WriteRowValues requires: a page never splits
	// a row. The row group's row count comes from the columns.
	var err error
	for leaf, cw := range w.pw.ColumnWriters() {
		if _, err = cw.WriteRowValues(w.batch[leaf][:w.nbatch]); err != nil {
			break
		}
	}
	for _, col := range w.batch {
		clear(col[:w.nbatch]) // drop references to the arena and the caller's buffers
	}
	w.nbatch, w.arena, w.pending = 0, w.arena[:0], 0
	w.size = w.pw.Size()
	if err != nil {
		return w.fail(fmt.Errorf("write rows to %s: %w", w.path, err))
	}
	if w.size-w.out.n >= w.opts.RowGroupBytes {
		err := w.pw.Flush()
		w.size = w.pw.Size()
		if err != nil {
			return w.fail(fmt.Errorf("write row group to %s: %w", w.path, err))
		}
		if err := w.out.release(); err != nil {
			return w.fail(fmt.Errorf("write row group to %s: %w", w.path, err))
		}
	}
	if w.pool.memory > w.opts.PageMemoryBytes {
		if err := w.pool.spill(); err != nil {
			return w.fail(err)
		}
	}
	if w.pool.err != nil {
		return w.fail(w.pool.err)
	}
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

// deferredOverhead is the heap a deferred FileWriter holds besides its
// row log's buffer: the writer, the log and its open file.
const deferredOverhead = 1 << 10

// writerOverhead is the heap a FileWriter holds whatever its content
// (parquet-go's column writers, schema state, metadata), measured by
// TestFileWriterMemory.
const writerOverhead = 24 << 10

// BufferedBytes estimates the heap this writer holds: fixed overhead, the
// pending rows, the unencoded values of each column's current page and the
// capacity the column buffers keep once they have encoded a page, and the
// encoded pages not spilled. TestFileWriterMemory checks it against measured
// heap. Call Flush to release the encoded pages when memory runs short.
func (w *FileWriter) BufferedBytes() int64 {
	if w.closed {
		return 0
	}
	if w.log != nil {
		return deferredOverhead + int64(cap(w.log.buf))
	}
	var pages int64
	for _, b := range w.pool.live {
		pages += b.size
	}
	// Before a column has encoded a page, its buffer holds the values at
	// about 2.25 times their plain size (parquet-go's buffers grow by
	// doubling and keep offsets and levels beside the values). Once pages
	// are encoded, the buffers keep their page-sized capacity, and the row
	// group's page statistics and indexes grow with the values written;
	// capacity plus 1.5 times the plain size of the values being filled
	// matches the measured heap within -7/+34 % before and after Flush and
	// EndRowGroup, with and without -race (TestFileWriterMemory,
	// TestEndRowGroup), where adding 2.25 times the values to the capacity
	// overstated it by up to 63 % after a Flush —
	// and an overstated estimate makes the sink end files early for
	// memory it does not hold.
	raw := max(0, w.size-w.out.n-pages)
	columns := 9 * raw / 4
	if w.pool.maxLive > 0 {
		columns = int64(w.pool.maxLive)*int64(w.opts.PageBufferBytes) + 3*raw/2
	}
	return writerOverhead + int64(cap(w.arena)) + int64(batchRows*len(w.schema.cols))*valueSize +
		columns + w.pool.memory + int64(cap(w.out.buf)) + int64(cap(w.pool.scratch))
}

var valueSize = int64(unsafe.Sizeof(parquet.Value{}))

// Flush moves the encoded pages of the current row group from memory to the
// spool disk. It does not end the row group, so the file's bytes and
// EstimatedBytes are the same as without it; what stays in memory is the
// unencoded page being filled for each column (at most PageBufferBytes each)
// and up to 64 pending rows.
func (w *FileWriter) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrWriterClosed
	}
	if w.log != nil {
		if err := w.log.release(); err != nil {
			return w.fail(fmt.Errorf("write %s: %w", w.log.path, err))
		}
		return nil
	}
	if err := w.pool.spill(); err != nil {
		return w.fail(err)
	}
	return nil
}

// RowGroupBytes is the size of the current row group so far: its encoded
// pages, the values being filled and the pending rows at their plain size.
func (w *FileWriter) RowGroupBytes() int64 {
	if w.closed || w.log != nil {
		return 0
	}
	return w.size - w.out.n + w.pending
}

// EndRowGroup writes the current row group into the file now: the pending
// rows, its encoded pages (from memory and from the page spool) and the
// values of the pages still being filled. What it frees is those unencoded
// values, which Flush cannot move to disk. Unlike Flush it changes the
// file's bytes — one more, smaller row group, the same rows — so the sink
// calls it only under memory pressure, as the alternative to ending the
// file early (more, smaller files). EstimatedBytes stays a function of the
// rows within the bound it has (one page per column). A row group with no
// rows is left alone.
func (w *FileWriter) EndRowGroup() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrWriterClosed
	}
	if w.log != nil {
		return w.Flush() // a deferred writer has no row group yet
	}
	if w.nbatch > 0 {
		if err := w.writeBatch(); err != nil {
			return err
		}
	}
	if w.size == w.out.n {
		return nil
	}
	err := w.pw.Flush()
	w.size = w.pw.Size()
	if err != nil {
		return w.fail(fmt.Errorf("write row group to %s: %w", w.path, err))
	}
	if err := w.out.release(); err != nil {
		return w.fail(fmt.Errorf("write row group to %s: %w", w.path, err))
	}
	return nil
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

// encodeLog encodes a deferred writer's rows into the data file and
// removes the row log.
func (w *FileWriter) encodeLog() error {
	if err := w.openEncoder(); err != nil {
		return w.fail(err)
	}
	log := w.log
	err := log.replay(w.schema, func(row Row) error {
		need, size := w.measure(row)
		return w.encodeRow(row, need, size)
	})
	if err != nil {
		return w.fail(fmt.Errorf("finish %s: %w", w.path, err))
	}
	log.close()
	w.log, w.logged = nil, 0
	return nil
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

// fileOut is the writer's output: it counts bytes and buffers writes only
// while a row group or the footer is being written (release drops the
// buffer), so an idle FileWriter holds no write buffer.
type fileOut struct {
	f   *os.File
	buf []byte
	n   int64
}

func (o *fileOut) Write(p []byte) (int, error) {
	if len(o.buf)+len(p) > outBuffer {
		if err := o.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) >= outBuffer {
		n, err := o.f.Write(p)
		o.n += int64(n)
		return n, err
	}
	if o.buf == nil {
		o.buf = make([]byte, 0, outBuffer)
	}
	o.buf = append(o.buf, p...)
	o.n += int64(len(p))
	return len(p), nil
}

func (o *fileOut) flush() error {
	if len(o.buf) == 0 {
		return nil
	}
	_, err := o.f.Write(o.buf)
	o.buf = o.buf[:0]
	return err
}

func (o *fileOut) release() error {
	err := o.flush()
	o.buf = nil
	return err
}
