package partitioner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// pagePool is the parquet.BufferPool of one FileWriter. parquet-go encodes
// and compresses each column's pages into a page buffer as the row group
// fills, and copies the buffers into the file when the row group ends.
// pagePool keeps those buffers in memory until spill is called (by
// FileWriter.Flush, or when they exceed FileOptions.PageMemoryBytes); from
// then until the row group ends, all page bytes of the row group live in one
// unlinked spool file.
//
// Spilling changes where the encoded bytes wait, never the bytes themselves
// nor the page and row-group boundaries, so the file written is the same
// whether or not, and whenever, the pool spilled.
//
// A pagePool is used by one FileWriter on one goroutine. parquet-go calls it
// only from the writing goroutine (no concurrent row groups are used), so it
// takes no lock.
type pagePool struct {
	dir        string
	file       *os.File // created on first spill, unlinked at once
	fileEnd    int64
	spilled    bool // live buffers are on file; new bytes go to the file
	memory     int64
	live       []*pageBuffer
	maxLive    int // most buffers live at once: columns that have written pages
	free       []*pageBuffer
	scratch    []byte // for copying spilled bytes out
	spillTotal int64  // bytes ever written to the spool file (for tests)
	err        error  // first I/O error, reported by every later operation
}

type extent struct{ off, len int64 }

// pageBuffer is an append-only io.ReadWriteSeeker. Its content is either
// mem (not spilled) or the concatenation of ext in the pool's spool file.
type pageBuffer struct {
	pool *pagePool
	mem  []byte
	ext  []extent
	size int64
	pos  int64
	// read cursor into ext for sequential reads
	curExt int
	curOff int64 // logical offset of ext[curExt]
}

func newPagePool(dir string) *pagePool { return &pagePool{dir: dir} }

// GetBuffer implements parquet.BufferPool.
func (p *pagePool) GetBuffer() io.ReadWriteSeeker {
	var b *pageBuffer
	if n := len(p.free); n > 0 {
		b, p.free = p.free[n-1], p.free[:n-1]
	} else {
		b = &pageBuffer{pool: p}
	}
	p.live = append(p.live, b)
	p.maxLive = max(p.maxLive, len(p.live))
	return b
}

// PutBuffer implements parquet.BufferPool. When the last buffer of a row
// group comes back the spool file is truncated and the pool returns to
// memory mode.
func (p *pagePool) PutBuffer(rw io.ReadWriteSeeker) {
	b, ok := rw.(*pageBuffer)
	if !ok || b.pool != p {
		return
	}
	if i := slices.Index(p.live, b); i >= 0 {
		p.live = slices.Delete(p.live, i, i+1)
	}
	p.memory -= int64(cap(b.mem))
	b.mem = nil // page data of a finished row group is not worth keeping
	b.ext = b.ext[:0]
	b.size, b.pos, b.curExt, b.curOff = 0, 0, 0, 0
	p.free = append(p.free, b)
	if len(p.live) == 0 && p.spilled {
		p.spilled = false
		p.scratch = nil
		p.fileEnd = 0
		if p.file != nil {
			if err := p.file.Truncate(0); err != nil && p.err == nil {
				p.err = fmt.Errorf("truncate page spool: %w", err)
			}
		}
	}
}

// spill moves the encoded pages held in memory to the spool file.
func (p *pagePool) spill() error {
	if p.err != nil {
		return p.err
	}
	if len(p.live) == 0 {
		return nil
	}
	if p.file == nil {
		// Unnamed: a crash leaves nothing behind to clean up.
		f, err := createScratch(p.dir, ".lakesink-pages-*")
		if err != nil {
			p.err = fmt.Errorf("create page spool: %w", err)
			return p.err
		}
		p.file = f
	}
	for _, b := range p.live {
		if len(b.mem) == 0 {
			b.mem = nil
			continue
		}
		if err := p.appendFile(b, b.mem); err != nil {
			return err
		}
		p.memory -= int64(cap(b.mem))
		b.mem = nil
	}
	p.memory = 0
	p.spilled = true
	return nil
}

func (p *pagePool) appendFile(b *pageBuffer, data []byte) error {
	if _, err := p.file.WriteAt(data, p.fileEnd); err != nil {
		p.err = fmt.Errorf("write page spool: %w", err)
		return p.err
	}
	n := int64(len(data))
	if k := len(b.ext); k > 0 && b.ext[k-1].off+b.ext[k-1].len == p.fileEnd {
		b.ext[k-1].len += n
	} else {
		b.ext = append(b.ext, extent{off: p.fileEnd, len: n})
	}
	p.fileEnd += n
	p.spillTotal += n
	return nil
}

// close releases the spool file.
func (p *pagePool) close() error {
	if p.file == nil {
		return nil
	}
	err := p.file.Close()
	p.file = nil
	return err
}

var errPageBufferWrite = errors.New("page buffer: write not at end")

func (b *pageBuffer) Write(data []byte) (int, error) {
	p := b.pool
	if p.err != nil {
		return 0, p.err
	}
	if b.pos != b.size {
		return 0, errPageBufferWrite
	}
	if p.spilled {
		if err := p.appendFile(b, data); err != nil {
			return 0, err
		}
	} else {
		before := cap(b.mem)
		b.mem = append(b.mem, data...)
		p.memory += int64(cap(b.mem) - before)
	}
	b.size += int64(len(data))
	b.pos = b.size
	return len(data), nil
}

func (b *pageBuffer) Read(dst []byte) (int, error) {
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if len(b.ext) == 0 {
		n := copy(dst, b.mem[b.pos:])
		b.pos += int64(n)
		return n, nil
	}
	// Position the cursor on the extent holding pos.
	if b.curExt >= len(b.ext) || b.pos < b.curOff {
		b.curExt, b.curOff = 0, 0
	}
	for b.pos >= b.curOff+b.ext[b.curExt].len {
		b.curOff += b.ext[b.curExt].len
		b.curExt++
	}
	e := b.ext[b.curExt]
	within := b.pos - b.curOff
	n := min(int64(len(dst)), e.len-within)
	m, err := b.pool.file.ReadAt(dst[:n], e.off+within)
	b.pos += int64(m)
	if err != nil && !(errors.Is(err, io.EOF) && int64(m) == n) {
		return m, fmt.Errorf("read page spool: %w", err)
	}
	return m, nil
}

// WriteTo copies the unread content to w, reusing the pool's scratch buffer
// for spilled bytes.
func (b *pageBuffer) WriteTo(w io.Writer) (int64, error) {
	if b.pos >= b.size {
		return 0, nil
	}
	if len(b.ext) == 0 {
		n, err := w.Write(b.mem[b.pos:])
		b.pos += int64(n)
		return int64(n), err
	}
	if b.pool.scratch == nil {
		b.pool.scratch = make([]byte, 64<<10)
	}
	var total int64
	for b.pos < b.size {
		n, err := b.Read(b.pool.scratch)
		if n > 0 {
			m, werr := w.Write(b.pool.scratch[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (b *pageBuffer) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.pos
	case io.SeekEnd:
		offset += b.size
	default:
		return b.pos, fmt.Errorf("page buffer: bad whence %d", whence)
	}
	if offset < 0 {
		return b.pos, errors.New("page buffer: negative position")
	}
	b.pos = offset
	return offset, nil
}
