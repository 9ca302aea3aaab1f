package writers

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrSizeMismatch is returned (wrapped) when a Put's reader yields fewer or
// more bytes than the size the caller announced. Retrying never helps.
var ErrSizeMismatch = errors.New("content size differs from announced size")

// ExactReader returns a reader that yields exactly the first size bytes of r
// and then io.EOF, and that fails instead when the contract of Put is
// broken:
//
//   - r ends before size bytes: error wrapping ErrSizeMismatch;
//   - r has more than size bytes (checked by reading one byte past size when
//     the caller asks for more): error wrapping ErrSizeMismatch;
//   - ctx is done: ctx.Err(), checked before every read of r;
//   - r fails: r's error.
//
// Backends wrap the caller's reader with it so that an upload is either the
// complete announced content or an error, never a truncated object: a
// backend that streams the reader into a request body gets an error from
// the body instead of an early EOF, which aborts the request. Errors are
// sticky. Not safe for concurrent use (no reader is).
func ExactReader(ctx context.Context, r io.Reader, size int64) io.Reader {
	e := &exactReader{ctx: ctx, r: r, left: size, size: size}
	if size < 0 {
		e.err = fmt.Errorf("%w: negative size %d", ErrSizeMismatch, size)
	}
	return e
}

type exactReader struct {
	ctx        context.Context
	r          io.Reader
	left, size int64
	err        error // sticky; io.EOF once the content is complete and checked
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if err := e.ctx.Err(); err != nil {
		e.err = err
		return 0, err
	}
	if e.left == 0 {
		var one [1]byte
		n, err := io.ReadFull(e.r, one[:])
		switch {
		case n > 0:
			e.err = fmt.Errorf("%w: reader has more than %d bytes", ErrSizeMismatch, e.size)
		case err == io.EOF:
			e.err = io.EOF
		default:
			e.err = err
		}
		return 0, e.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = fmt.Errorf("%w: reader ended after %d of %d bytes", ErrSizeMismatch, e.size-e.left, e.size)
		return n, e.err
	case err == io.EOF:
		// Complete; the next Read checks that nothing follows.
		return n, nil
	case err != nil:
		e.err = err
		return n, err
	}
	return n, nil
}

// readExactly reads all of ExactReader(ctx, r, size) into memory.
func readExactly(ctx context.Context, r io.Reader, size int64) ([]byte, error) {
	const maxPrealloc = 64 << 20 // don't trust a huge announced size blindly
	buf := make([]byte, 0, min(max(size, 0), maxPrealloc))
	er := ExactReader(ctx, r, size)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := er.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// ExistsFromStat turns the error of a Stat (or lookup) of key into Exists'
// answer: nil is true, an error wrapping ErrNotFound is false with no error,
// anything else is returned, prefixed with the operation.
func ExistsFromStat(key string, statErr error) (bool, error) {
	switch {
	case statErr == nil:
		return true, nil
	case errors.Is(statErr, ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("exists %s: %w", key, statErr)
	}
}
