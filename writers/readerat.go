package writers

import (
	"context"
	"io"
)

// ReaderAt returns an io.ReaderAt over the object key of w: each ReadAt is
// one GetRange, so reading a Parquet footer costs one or two ranged reads.
// A read that reaches the end of the object returns io.EOF with the bytes
// there were, as io.ReaderAt requires.
func ReaderAt(ctx context.Context, w Writer, key string) io.ReaderAt {
	return &rangeReaderAt{ctx: ctx, w: w, key: key}
}

// rangeReaderAt adapts Writer.GetRange to io.ReaderAt.
type rangeReaderAt struct {
	ctx context.Context
	w   Writer
	key string
}

func (r *rangeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rc, err := r.w.GetRange(r.ctx, r.key, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}
