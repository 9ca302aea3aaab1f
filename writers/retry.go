package writers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"
)

// RetryPolicy configures WithRetry.
type RetryPolicy struct {
	// Attempts is the total number of attempts per call, the first included.
	// Values below 2 mean no retry.
	Attempts int
	// Initial is the backoff cap before the second attempt; it doubles for
	// every further attempt up to Max. Full jitter: the actual sleep is
	// Jitter(cap), uniform in [0, cap] by default. Max below Initial is
	// taken as Initial (constant backoff).
	Initial, Max time.Duration
	// IsTransient reports whether a failed attempt is worth retrying. It is
	// only asked about errors that are not excluded anyway (see WithRetry).
	// nil: every such error is transient.
	IsTransient func(error) bool
	// Sleep waits for d or until ctx is done, returning ctx's error then.
	// nil: a timer honouring ctx. Tests inject a fake.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns the sleep for a backoff cap, in [0, limit]. nil: uniform
	// random (full jitter). Tests inject a deterministic one.
	Jitter func(limit time.Duration) time.Duration
}

// DefaultRetryPolicy returns the policy lakesink uses for storage calls:
// 5 attempts, backoff caps 200ms, 400ms, 800ms, 1.6s (max 10s), every
// non-excluded error transient.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{Attempts: 5, Initial: 200 * time.Millisecond, Max: 10 * time.Second}
}

// WithRetry returns a Writer that retries w's failed calls with exponential
// backoff and full jitter (sleep uniform in [0, min(Max, Initial·2^n)]),
// logging each retry at warn level on logger (nil: discarded).
//
// Never retried: errors wrapping ErrNotFound, ErrExists, ErrInvalidKey or
// ErrSizeMismatch, context.Canceled or context.DeadlineExceeded, any error
// once ctx is done, and errors IsTransient rejects. When the retries run out
// the last error is returned, wrapped; when ctx ends during a backoff the
// error wraps both the last error and ctx's error.
//
// Uploads. A retried Put or PutIfAbsent must send the content again from
// its start, so only a reader that implements io.Seeker is retried: its
// position when the call starts is remembered and restored before every
// retry. Any other reader gets exactly one attempt (wrap the content in a
// bytes.Reader or pass an *os.File to get retries). Errors from reading the
// reader are retried like any other, which suits a file on local disk.
//
// PutIfAbsent after an unknown outcome. An attempt can fail after the
// backend stored the object (say the response to a successful upload was
// lost to a timeout). The retry then finds the key present and returns an
// error wrapping ErrExists although the object may be this caller's own
// write; the message then says that earlier attempts failed. Callers must
// not take ErrExists as "somebody else won" blindly: the hour marker writer
// reads the existing marker and treats identical content as its own success.
//
// Reads. Get and GetRange are retried until they return a reader; errors
// while reading from it are the caller's to handle.
//
// Name returns w's name and Close closes w: the wrapper owns w.
func WithRetry(w Writer, policy RetryPolicy, logger *slog.Logger) Writer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if policy.Sleep == nil {
		policy.Sleep = SleepContext
	}
	if policy.Jitter == nil {
		policy.Jitter = fullJitter
	}
	policy.Initial = max(policy.Initial, 0)
	policy.Max = max(policy.Max, policy.Initial)
	return &retrying{w: w, p: policy, log: logger}
}

type retrying struct {
	w   Writer
	p   RetryPolicy
	log *slog.Logger
}

// SleepContext waits d, or until ctx is done (then it returns ctx.Err()).
// It is RetryPolicy's default Sleep, and what backends with retry loops of
// their own (hdfs) use.
func SleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func fullJitter(limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(limit) + 1))
}

// retryable reports whether a failed attempt may be retried.
func (rw *retrying) retryable(ctx context.Context, err error) bool {
	switch {
	case ctx.Err() != nil,
		errors.Is(err, ErrNotFound), errors.Is(err, ErrExists),
		errors.Is(err, ErrInvalidKey), errors.Is(err, ErrSizeMismatch),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case rw.p.IsTransient != nil:
		return rw.p.IsTransient(err)
	}
	return true
}

// backoff returns the cap of the sleep before attempt number next (2, 3, ...).
func (rw *retrying) backoff(next int) time.Duration {
	d := rw.p.Initial
	for i := 2; i < next; i++ {
		if d >= rw.p.Max/2 {
			return rw.p.Max
		}
		d *= 2
	}
	return min(d, rw.p.Max)
}

// do runs attempt until it succeeds, fails for good or the attempts run out.
// rewind, if not nil, runs before every retry.
func (rw *retrying) do(ctx context.Context, op, key string, rewind func() error, attempt func() error) error {
	var err error
	for n := 1; ; n++ {
		err = attempt()
		if err == nil {
			return nil
		}
		if n >= rw.p.Attempts || !rw.retryable(ctx, err) {
			if n > 1 {
				return fmt.Errorf("%s %s: attempt %d of %d, earlier attempts failed: %w", op, key, n, rw.p.Attempts, err)
			}
			return err
		}
		d := rw.p.Jitter(rw.backoff(n + 1))
		rw.log.Warn("storage call failed, retrying", "backend", rw.w.Name(), "op", op, "key", key,
			"attempt", n, "max_attempts", rw.p.Attempts, "backoff", d, "err", err)
		if serr := rw.p.Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%s %s: retry aborted after attempt %d: %w (last error: %w)", op, key, n, serr, err)
		}
		if rewind != nil {
			if rerr := rewind(); rerr != nil {
				return fmt.Errorf("%s %s: rewind reader for retry: %w (last error: %w)", op, key, rerr, err)
			}
		}
	}
}

func (rw *retrying) upload(ctx context.Context, op, key string, r io.Reader, put func() error) error {
	s, ok := r.(io.Seeker)
	if !ok || rw.p.Attempts < 2 {
		return put()
	}
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		// Not really seekable (a pipe behind an *os.File, say): one attempt.
		return put()
	}
	rewind := func() error {
		_, err := s.Seek(start, io.SeekStart)
		return err
	}
	return rw.do(ctx, op, key, rewind, put)
}

func (rw *retrying) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return rw.upload(ctx, "put", key, r, func() error { return rw.w.Put(ctx, key, r, size) })
}

func (rw *retrying) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	return rw.upload(ctx, "put if absent", key, r, func() error { return rw.w.PutIfAbsent(ctx, key, r, size) })
}

func (rw *retrying) Get(ctx context.Context, key string) (rc io.ReadCloser, err error) {
	err = rw.do(ctx, "get", key, nil, func() (err error) {
		rc, err = rw.w.Get(ctx, key)
		return err
	})
	return rc, err
}

func (rw *retrying) GetRange(ctx context.Context, key string, off, length int64) (rc io.ReadCloser, err error) {
	err = rw.do(ctx, "get range", key, nil, func() (err error) {
		rc, err = rw.w.GetRange(ctx, key, off, length)
		return err
	})
	return rc, err
}

func (rw *retrying) Stat(ctx context.Context, key string) (o Object, err error) {
	err = rw.do(ctx, "stat", key, nil, func() (err error) {
		o, err = rw.w.Stat(ctx, key)
		return err
	})
	return o, err
}

func (rw *retrying) Exists(ctx context.Context, key string) (ok bool, err error) {
	err = rw.do(ctx, "exists", key, nil, func() (err error) {
		ok, err = rw.w.Exists(ctx, key)
		return err
	})
	return ok, err
}

func (rw *retrying) List(ctx context.Context, prefix string) (objs []Object, err error) {
	err = rw.do(ctx, "list", prefix, nil, func() (err error) {
		objs, err = rw.w.List(ctx, prefix)
		return err
	})
	return objs, err
}

func (rw *retrying) Delete(ctx context.Context, key string) error {
	return rw.do(ctx, "delete", key, nil, func() error { return rw.w.Delete(ctx, key) })
}

func (rw *retrying) Name() string { return rw.w.Name() }

func (rw *retrying) Close() error { return rw.w.Close() }
