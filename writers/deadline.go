package writers

import (
	"context"
	"io"
	"time"
)

// WithDeadline returns a Writer whose calls each run under a deadline:
// timeout, and for Put and PutIfAbsent timeout plus the time to send size
// bytes at minRate bytes per second. Why: a storage server that accepts a
// connection and never answers must not stall a partition (or shutdown)
// forever; a call past its deadline fails with context.DeadlineExceeded
// and the caller retries it like any other failure. A reader returned by
// Get or GetRange stays bound to its call's deadline until it is closed.
// Name returns w's name and Close closes w: the wrapper owns w.
func WithDeadline(w Writer, timeout time.Duration, minRate int64) Writer {
	if timeout <= 0 {
		return w
	}
	return &deadlined{w: w, timeout: timeout, rate: max(minRate, 1)}
}

type deadlined struct {
	w       Writer
	timeout time.Duration
	rate    int64
}

func (d *deadlined) ctx(ctx context.Context, size int64) (context.Context, context.CancelFunc) {
	t := d.timeout + time.Duration(max(size, 0)/d.rate)*time.Second
	return context.WithTimeout(ctx, t)
}

func (d *deadlined) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	ctx, cancel := d.ctx(ctx, size)
	defer cancel()
	return d.w.Put(ctx, key, r, size)
}

func (d *deadlined) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	ctx, cancel := d.ctx(ctx, size)
	defer cancel()
	return d.w.PutIfAbsent(ctx, key, r, size)
}

func (d *deadlined) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	ctx, cancel := d.ctx(ctx, 0)
	rc, err := d.w.Get(ctx, key)
	if err != nil {
		cancel()
		return nil, err
	}
	return &cancelOnClose{ReadCloser: rc, cancel: cancel}, nil
}

func (d *deadlined) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	ctx, cancel := d.ctx(ctx, 0)
	rc, err := d.w.GetRange(ctx, key, off, length)
	if err != nil {
		cancel()
		return nil, err
	}
	return &cancelOnClose{ReadCloser: rc, cancel: cancel}, nil
}

func (d *deadlined) Stat(ctx context.Context, key string) (Object, error) {
	ctx, cancel := d.ctx(ctx, 0)
	defer cancel()
	return d.w.Stat(ctx, key)
}

func (d *deadlined) Exists(ctx context.Context, key string) (bool, error) {
	ctx, cancel := d.ctx(ctx, 0)
	defer cancel()
	return d.w.Exists(ctx, key)
}

func (d *deadlined) List(ctx context.Context, prefix string) ([]Object, error) {
	ctx, cancel := d.ctx(ctx, 0)
	defer cancel()
	return d.w.List(ctx, prefix)
}

func (d *deadlined) Delete(ctx context.Context, key string) error {
	ctx, cancel := d.ctx(ctx, 0)
	defer cancel()
	return d.w.Delete(ctx, key)
}

func (d *deadlined) Name() string { return d.w.Name() }
func (d *deadlined) Close() error { return d.w.Close() }

// cancelOnClose releases a call's context when its reader is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
