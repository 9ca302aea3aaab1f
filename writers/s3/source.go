package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/lakesink/lakesink/writers"
)

// source hands out the content of a Put as seekable part bodies, so that the
// SDK can compute checksums and resend a body on retry.
//
// With random access (the reader is an io.ReaderAt and io.Seeker), parts are
// io.SectionReaders over it, relative to its position when Put was called,
// and can be read concurrently. Otherwise parts must be taken in order; each
// is read into a buffer, through writers.ExactReader (which checks the size
// and ctx before every read).
type source struct {
	size int64

	// Random access.
	ra     io.ReaderAt
	seeker io.Seeker
	base   int64

	// Sequential.
	r    io.Reader
	next int64 // offset of the next part to read
}

func newSource(ctx context.Context, r io.Reader, size int64) *source {
	s := &source{size: size, r: writers.ExactReader(ctx, r, size)}
	ra, okA := r.(io.ReaderAt)
	sk, okS := r.(io.Seeker)
	if okA && okS {
		base, err := sk.Seek(0, io.SeekCurrent)
		if err == nil {
			s.ra, s.seeker, s.base, s.r = ra, sk, base, nil
		}
	}
	return s
}

// randomAccess reports whether parts may be taken concurrently, in any order.
func (s *source) randomAccess() bool { return s.ra != nil }

// part returns the n bytes at off as a seekable body, and a function to call
// once the request that sent it has returned: after it, the body refuses to
// be read (net/http may still read a request body after RoundTrip returned,
// and the buffer goes back to the pool). Without random access, parts must be
// asked for in order; they are read into buffers taken from pool (*[]byte)
// when one of about the right size is there.
func (s *source) part(off, n int64, pool *sync.Pool) (io.ReadSeeker, func(), error) {
	if s.ra != nil {
		g := &guardedReader{rs: io.NewSectionReader(s.ra, s.base+off, n)}
		return g, g.close, nil
	}
	if off != s.next {
		return nil, nil, fmt.Errorf("internal error: part at %d read out of order (next %d)", off, s.next)
	}
	var buf []byte
	release := func() {}
	if bp, ok := pool.Get().(*[]byte); ok && int64(cap(*bp)) >= n && int64(cap(*bp)) <= 2*n {
		buf = (*bp)[:n]
		release = func() { pool.Put(bp) }
	} else {
		if ok {
			pool.Put(bp)
		}
		buf = make([]byte, n)
		if n > 1<<20 {
			release = func() { pool.Put(&buf) }
		}
	}
	if _, err := io.ReadFull(s.r, buf); err != nil {
		release()
		return nil, nil, readError(err)
	}
	s.next += n
	g := &guardedReader{rs: bytes.NewReader(buf)}
	return g, func() { g.close(); release() }, nil
}

// guardedReader is a request body that can be closed for good, so that
// nothing reads the memory behind it after the request returned.
type guardedReader struct {
	mu     sync.Mutex
	rs     io.ReadSeeker
	closed bool
}

var errBodyReleased = errors.New("request body read after the request returned")

func (g *guardedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errBodyReleased
	}
	return g.rs.Read(p)
}

func (g *guardedReader) Seek(off int64, whence int) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errBodyReleased
	}
	return g.rs.Seek(off, whence)
}

func (g *guardedReader) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// checkEnd verifies that the content is exactly size bytes long: with random
// access, that byte size-1 exists and byte size does not; sequentially (after
// every part was read), that the reader is at EOF.
func (s *source) checkEnd() error {
	var one [1]byte
	if s.ra != nil {
		if s.size > 0 {
			if n, err := s.ra.ReadAt(one[:], s.base+s.size-1); n != 1 {
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("read content: %w", err)
				}
				return fmt.Errorf("%w: reader has fewer than %d bytes", writers.ErrSizeMismatch, s.size)
			}
		}
		n, err := s.ra.ReadAt(one[:], s.base+s.size)
		switch {
		case n == 1:
			return fmt.Errorf("%w: reader has more than %d bytes", writers.ErrSizeMismatch, s.size)
		case err != nil && !errors.Is(err, io.EOF):
			return fmt.Errorf("read content: %w", err)
		}
		return nil
	}
	if s.next != s.size {
		return fmt.Errorf("internal error: %d of %d bytes read", s.next, s.size)
	}
	// ExactReader yields io.EOF only when nothing follows the content.
	if _, err := s.r.Read(one[:]); !errors.Is(err, io.EOF) {
		return readError(err)
	}
	return nil
}

// readError describes an error from reading the content; size mismatches and
// context errors keep their identity for errors.Is.
func readError(err error) error {
	switch {
	case err == nil:
		return errors.New("internal error: content continues past its size")
	case errors.Is(err, writers.ErrSizeMismatch), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	default:
		return fmt.Errorf("read content: %w", err)
	}
}

// finish leaves a random-access reader positioned after the content, as if it
// had been read.
func (s *source) finish() {
	if s.seeker != nil {
		_, _ = s.seeker.Seek(s.base+s.size, io.SeekStart)
	}
}
