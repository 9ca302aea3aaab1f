package partitioner

import (
	"fmt"
	"os"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

const (
	// batchRows is how many checked rows wait, column by column, before
	// writeBatch hands them to parquet-go's column writers (one
	// WriteRowValues call per column); a batch is handed over earlier when
	// the next row's byte arrays would overflow the arena.
	batchRows = 32
	// arenaBytes is the capacity of the arena holding copies of the
	// pending rows' byte arrays. A row whose byte arrays alone exceed it is
	// handed over at once, its values aliasing the caller's buffer.
	arenaBytes = 16 << 10
)

// openEncoder creates the data file and parquet-go's writer into it: at
// NewFileWriter, or at Finish for a deferred writer.
func (w *FileWriter) openEncoder() error {
	opts, schema := w.opts, w.schema
	pool := newPagePool(opts.SpoolDir)
	config, err := parquet.NewWriterConfig(writerOptions(schema.pq, w.codec, opts, pool)...)
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

// writerOptions is the parquet-go configuration of every file lakesink
// writes: a FileWriter's, and Compact's, whose re-encoded column chunks must
// come out as a FileWriter would write them and whose verbatim copies
// parquet-go makes only when the configuration matches the source's.
func writerOptions(schema *parquet.Schema, codec compress.Codec, opts FileOptions, pool parquet.BufferPool) []parquet.WriterOption {
	return []parquet.WriterOption{
		schema,
		parquet.Compression(codec),
		parquet.PageBufferSize(opts.PageBufferBytes),
		// Unbuffered: fileOut buffers only while a row group is written,
		// instead of parquet-go's 32 KiB held for the writer's lifetime.
		parquet.WriteBufferSize(-1),
		// Data page v1 and PLAIN byte arrays: what every Spark, Hive,
		// Athena and Trino version reads.
		parquet.DataPageVersion(1),
		parquet.DefaultEncodingFor(parquet.ByteArray, &parquet.Plain),
		parquet.ColumnPageBuffers(pool),
	}
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
		if err := w.flushRowGroup(); err != nil {
			return err
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

// flushRowGroup ends the row group being written: parquet-go writes it to
// the output, whose buffer is then released (fileout). An error fails the
// writer.
func (w *FileWriter) flushRowGroup() error {
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
