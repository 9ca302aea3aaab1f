package partitioner

import (
	"fmt"
	"unsafe"

	"github.com/parquet-go/parquet-go"
)

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
// and up to batchRows (32) pending rows. A deferred writer writes its row
// log's buffer to the log's file and drops the buffer.
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
	return w.flushRowGroup()
}
