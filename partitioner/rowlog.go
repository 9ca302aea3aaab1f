package partitioner

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"

	"github.com/parquet-go/parquet-go"
)

// rowLog is a deferred FileWriter's rows on the spool disk, in a compact
// row-oriented form that costs no more memory than its write buffer:
// per value a tag byte (0 null, 1 present; booleans 1 false, 2 true), then
// 4 or 8 little-endian bytes for numbers, or a uvarint length and the bytes
// for byte arrays. The schema gives each value's kind, so the log holds no
// types, offsets or times (the writer tracked those at Append). Written
// once, read once at Finish, removed after.
type rowLog struct {
	path string // of the data file it is for, in messages
	dir  string // where f is created
	f    *os.File
	buf  []byte // pending bytes, written at logBuffer; nil after Flush
	n    int64  // bytes written to f
	done bool   // closed
}

// logBuffer is the row log's write buffer: small, because a deferred
// writer exists to hold little memory, but not so small that the writes
// cost (4 KiB: 4 % of the sink's CPU in write calls with 512 partitions).
const logBuffer = 16 << 10

// newRowLog returns the row log of the data file at path. Its unnamed
// file in dir is created when the rows first leave the buffer: a log whose
// rows fit in the buffer until Finish — a partition-hour of a few dozen
// records, common with many quiet partitions — never creates one.
// Creating a file is the most expensive thing a row log does (one inode;
// 0.2-0.8 ms of kernel CPU on the benchmark machine's disk).
func newRowLog(dir, path string) *rowLog {
	return &rowLog{path: path + " (row log)", dir: dir}
}

// append encodes row (already checked against s) into the buffer, writing
// the buffer out when it is full.
func (l *rowLog) append(s *Schema, row Row) error {
	if l.buf == nil {
		l.buf = make([]byte, 0, logBuffer)
	}
	b := l.buf
	for i, v := range row {
		if v.IsNull() {
			b = append(b, 0)
			continue
		}
		switch s.kind[i] {
		case parquet.Boolean:
			if v.Boolean() {
				b = append(b, 2)
			} else {
				b = append(b, 1)
			}
		case parquet.Int32:
			b = binary.LittleEndian.AppendUint32(append(b, 1), uint32(v.Int32()))
		case parquet.Float:
			b = binary.LittleEndian.AppendUint32(append(b, 1), math.Float32bits(v.Float()))
		case parquet.Int64:
			b = binary.LittleEndian.AppendUint64(append(b, 1), uint64(v.Int64()))
		case parquet.Double:
			b = binary.LittleEndian.AppendUint64(append(b, 1), math.Float64bits(v.Double()))
		case parquet.ByteArray:
			ba := v.ByteArray()
			b = binary.AppendUvarint(append(b, 1), uint64(len(ba)))
			if len(b)+len(ba) > logBuffer {
				// Large values go straight to the file instead of growing
				// the buffer.
				l.buf = b
				if err := l.flush(); err != nil {
					return err
				}
				if err := l.write(ba); err != nil {
					return err
				}
				b = l.buf
				continue
			}
			b = append(b, ba...)
		default:
			return fmt.Errorf("row log: column %q has unsupported kind %v", s.cols[i].Name, s.kind[i])
		}
	}
	l.buf = b
	if len(b) >= logBuffer {
		return l.flush()
	}
	return nil
}

func (l *rowLog) write(p []byte) error {
	if l.f == nil {
		f, err := createScratch(l.dir, ".lakesink-rows-*")
		if err != nil {
			return fmt.Errorf("create row log: %w", err)
		}
		l.f = f
	}
	n, err := l.f.Write(p)
	l.n += int64(n)
	return err
}

// flush writes the buffered bytes to the file and keeps the buffer.
func (l *rowLog) flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	err := l.write(l.buf)
	l.buf = l.buf[:0]
	return err
}

// release writes the buffered bytes and drops the buffer (an idle writer
// holds none).
func (l *rowLog) release() error {
	err := l.flush()
	l.buf = nil
	return err
}

// readers are the 64 KiB read buffers of replay, shared: thousands of
// small deferred files finish when an hour closes, and a buffer each was
// most of what encoding them allocated.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// replay reads the rows back in order and calls fn with each; the row and
// its byte arrays are valid only during the call.
func (l *rowLog) replay(s *Schema, fn func(Row) error) error {
	var src io.Reader
	if l.f == nil {
		// Every row is still in the buffer.
		src = bytes.NewReader(l.buf)
	} else {
		if err := l.release(); err != nil {
			return err
		}
		if _, err := l.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		src = io.LimitReader(l.f, l.n)
	}
	size := l.n + int64(len(l.buf))
	r := readers.Get().(*bufio.Reader)
	defer readers.Put(r)
	r.Reset(src)
	defer r.Reset(nil)
	row := make(Row, len(s.cols))
	var scratch []byte
	var spans [][2]int // column, start in scratch
	var num [8]byte
	for {
		// Byte arrays of one row live in scratch; offsets first, slices
		// after, as appending may move it.
		scratch, spans = scratch[:0], spans[:0]
		for i := range row {
			tag, err := r.ReadByte()
			if err != nil {
				if i == 0 && errors.Is(err, io.EOF) {
					return nil
				}
				return fmt.Errorf("row log %s: %w", l.path, unexpected(err))
			}
			if tag == 0 {
				row[i] = parquet.Value{}
				continue
			}
			k := s.kind[i]
			switch k {
			case parquet.Boolean:
				row[i] = parquet.BooleanValue(tag == 2)
			case parquet.Int32, parquet.Float:
				if _, err := io.ReadFull(r, num[:4]); err != nil {
					return fmt.Errorf("row log %s: %w", l.path, unexpected(err))
				}
				u := binary.LittleEndian.Uint32(num[:4])
				if k == parquet.Int32 {
					row[i] = parquet.Int32Value(int32(u))
				} else {
					row[i] = parquet.FloatValue(math.Float32frombits(u))
				}
			case parquet.Int64, parquet.Double:
				if _, err := io.ReadFull(r, num[:8]); err != nil {
					return fmt.Errorf("row log %s: %w", l.path, unexpected(err))
				}
				u := binary.LittleEndian.Uint64(num[:8])
				if k == parquet.Int64 {
					row[i] = parquet.Int64Value(int64(u))
				} else {
					row[i] = parquet.DoubleValue(math.Float64frombits(u))
				}
			case parquet.ByteArray:
				n, err := binary.ReadUvarint(r)
				if err != nil {
					return fmt.Errorf("row log %s: %w", l.path, unexpected(err))
				}
				if n > uint64(size) {
					return fmt.Errorf("row log %s: value of %d bytes in a log of %d", l.path, n, size)
				}
				start := len(scratch)
				scratch = append(scratch, make([]byte, n)...)
				if _, err := io.ReadFull(r, scratch[start:]); err != nil {
					return fmt.Errorf("row log %s: %w", l.path, unexpected(err))
				}
				spans = append(spans, [2]int{i, start})
			default:
				return fmt.Errorf("row log: column %q has unsupported kind %v", s.cols[i].Name, k)
			}
		}
		for j, sp := range spans {
			end := len(scratch)
			if j+1 < len(spans) {
				end = spans[j+1][1]
			}
			row[sp[0]] = parquet.ByteArrayValue(scratch[sp[1]:end:end])
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// close closes the log, which frees its space (it has no name).
// Idempotent.
func (l *rowLog) close() {
	if l.done {
		return
	}
	if l.f != nil {
		_ = l.f.Close()
	}
	l.f, l.buf, l.done = nil, nil, true
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
