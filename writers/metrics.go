package writers

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the storage collectors shared by every Writer wrapped with
// WithMetrics. Create it once per registry with NewMetrics.
//
//   - lakesink_upload_duration_seconds{backend,op} (histogram): duration of
//     successful uploads, op "put" or "put_if_absent".
//   - lakesink_storage_bytes_written_total{backend}: bytes of successful
//     uploads.
//   - lakesink_storage_errors_total{backend,op}: failed calls, op one of
//     put, put_if_absent, get, get_range, stat, exists, list, delete. Errors
//     wrapping ErrNotFound or ErrExists are answers, not failures, and are
//     not counted; neither are calls failing with context.Canceled (the
//     caller gave up, e.g. on shutdown). Deadline errors are counted.
//
// Failures while reading a reader returned by Get/GetRange are not seen.
type Metrics struct {
	uploadDuration *prometheus.HistogramVec
	bytesWritten   *prometheus.CounterVec
	errors         *prometheus.CounterVec
}

// NewMetrics creates the storage collectors and registers them with reg
// (nil: not registered). It panics if they are already registered, like
// prometheus.MustRegister: call it once per registry and share the result
// between writers.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		uploadDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lakesink_upload_duration_seconds",
			Help:    "Duration of successful uploads to the storage backend.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16), // 5ms .. ~164s
		}, []string{"backend", "op"}),
		bytesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_storage_bytes_written_total",
			Help: "Bytes of successful uploads to the storage backend.",
		}, []string{"backend"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_storage_errors_total",
			Help: "Failed storage operations (not-found and already-exists answers excluded).",
		}, []string{"backend", "op"}),
	}
	if reg != nil {
		reg.MustRegister(m.uploadDuration, m.bytesWritten, m.errors)
	}
	return m
}

// WithMetrics returns a Writer that records m (not nil) for every call to
// w, labelled backend=w.Name(). Name returns w's name and Close closes w: the wrapper
// owns w. Safe for concurrent use if w is.
func WithMetrics(w Writer, m *Metrics) Writer {
	return &metered{w: w, m: m, backend: w.Name()}
}

type metered struct {
	w       Writer
	m       *Metrics
	backend string
}

func (mw *metered) fail(op string, err error) error {
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExists) && !errors.Is(err, context.Canceled) {
		mw.m.errors.WithLabelValues(mw.backend, op).Inc()
	}
	return err
}

func (mw *metered) upload(op string, size int64, put func() error) error {
	start := time.Now()
	if err := put(); err != nil {
		return mw.fail(op, err)
	}
	mw.m.uploadDuration.WithLabelValues(mw.backend, op).Observe(time.Since(start).Seconds())
	mw.m.bytesWritten.WithLabelValues(mw.backend).Add(float64(size))
	return nil
}

func (mw *metered) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return mw.upload("put", size, func() error { return mw.w.Put(ctx, key, r, size) })
}

func (mw *metered) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	return mw.upload("put_if_absent", size, func() error { return mw.w.PutIfAbsent(ctx, key, r, size) })
}

func (mw *metered) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := mw.w.Get(ctx, key)
	return rc, mw.fail("get", err)
}

func (mw *metered) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := mw.w.GetRange(ctx, key, off, length)
	return rc, mw.fail("get_range", err)
}

func (mw *metered) Stat(ctx context.Context, key string) (Object, error) {
	o, err := mw.w.Stat(ctx, key)
	return o, mw.fail("stat", err)
}

func (mw *metered) Exists(ctx context.Context, key string) (bool, error) {
	ok, err := mw.w.Exists(ctx, key)
	return ok, mw.fail("exists", err)
}

func (mw *metered) List(ctx context.Context, prefix string) ([]Object, error) {
	objs, err := mw.w.List(ctx, prefix)
	return objs, mw.fail("list", err)
}

func (mw *metered) Delete(ctx context.Context, key string) error {
	return mw.fail("delete", mw.w.Delete(ctx, key))
}

func (mw *metered) Name() string { return mw.w.Name() }

func (mw *metered) Close() error { return mw.w.Close() }
