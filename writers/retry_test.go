package writers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/writertest"
)

var errTransient = errors.New("503 slow down")

// flaky wraps Memory: the first fails[op] calls of op fail with errs (or
// errTransient). Uploads that fail read part of the content first, so a
// retry that does not rewind stores a truncated object.
type flaky struct {
	*writers.Memory
	mu    sync.Mutex
	fails map[string]int
	errs  map[string]error
	calls map[string]int
	// storeThenFail makes failing PutIfAbsent calls store the object first:
	// the outcome the caller sees is unknown.
	storeThenFail bool
}

func newFlaky(fails map[string]int) *flaky {
	return &flaky{Memory: writers.NewMemory(), fails: fails, errs: map[string]error{}, calls: map[string]int{}}
}

func (f *flaky) fail(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if f.fails[op] > 0 {
		f.fails[op]--
		if err := f.errs[op]; err != nil {
			return err
		}
		return fmt.Errorf("%s: %w", op, errTransient)
	}
	return nil
}

func (f *flaky) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := f.fail("put"); err != nil {
		_, _ = io.CopyN(io.Discard, r, size/2)
		return err
	}
	return f.Memory.Put(ctx, key, r, size)
}

func (f *flaky) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := f.fail("put_if_absent"); err != nil {
		if f.storeThenFail {
			if perr := f.Memory.PutIfAbsent(ctx, key, r, size); perr != nil {
				return perr
			}
		} else {
			_, _ = io.CopyN(io.Discard, r, size/2)
		}
		return err
	}
	return f.Memory.PutIfAbsent(ctx, key, r, size)
}

func (f *flaky) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := f.fail("get"); err != nil {
		return nil, err
	}
	return f.Memory.Get(ctx, key)
}

func (f *flaky) List(ctx context.Context, prefix string) ([]writers.Object, error) {
	if err := f.fail("list"); err != nil {
		return nil, err
	}
	return f.Memory.List(ctx, prefix)
}

func (f *flaky) Delete(ctx context.Context, key string) error {
	if err := f.fail("delete"); err != nil {
		return err
	}
	return f.Memory.Delete(ctx, key)
}

func (f *flaky) callsOf(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// sleeps records the injected sleeps.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
	// err, if set, is returned by the sleep (as if ctx ended).
	err error
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return s.err
}

func fastRetry() writers.RetryPolicy {
	return writers.RetryPolicy{Attempts: 3, Initial: time.Microsecond, Max: time.Millisecond}
}

// maxJitter makes full jitter deterministic: always the cap.
func maxJitter(d time.Duration) time.Duration { return d }

func TestRetryBackoff(t *testing.T) {
	inner := newFlaky(map[string]int{"put": 5})
	s := &sleeps{}
	w := writers.WithRetry(inner, writers.RetryPolicy{
		Attempts: 6, Initial: 100 * time.Millisecond, Max: time.Second,
		Sleep: s.sleep, Jitter: maxJitter,
	}, slog.New(slog.DiscardHandler))
	content := writertest.RandomBytes(1, 10_000)
	writertest.MustPut(t, w, "k", content)
	writertest.RequireContent(t, inner, "k", content) // rewound before every retry
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	if fmt.Sprint(s.d) != fmt.Sprint(want) {
		t.Fatalf("sleeps = %v, want %v", s.d, want)
	}
	if n := inner.callsOf("put"); n != 6 {
		t.Fatalf("Put attempts = %d, want 6", n)
	}
}

func TestRetryFullJitterStaysBelowCap(t *testing.T) {
	inner := newFlaky(map[string]int{"list": 7})
	s := &sleeps{}
	w := writers.WithRetry(inner, writers.RetryPolicy{
		Attempts: 8, Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Sleep: s.sleep,
	}, nil)
	if _, err := w.List(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	caps := []time.Duration{10, 20, 40, 50, 50, 50, 50}
	if len(s.d) != len(caps) {
		t.Fatalf("sleeps = %v, want %d", s.d, len(caps))
	}
	for i, d := range s.d {
		if d < 0 || d > caps[i]*time.Millisecond {
			t.Errorf("sleep %d = %v, want within [0, %v]", i, d, caps[i]*time.Millisecond)
		}
	}
}

func TestRetryGivesUp(t *testing.T) {
	inner := newFlaky(map[string]int{"put": 10})
	s := &sleeps{}
	p := fastRetry()
	p.Sleep = s.sleep
	w := writers.WithRetry(inner, p, nil)
	err := w.Put(t.Context(), "k", strings.NewReader("abc"), 3)
	if !errors.Is(err, errTransient) {
		t.Fatalf("Put = %v, want the last error wrapped", err)
	}
	if n := inner.callsOf("put"); n != 3 {
		t.Fatalf("attempts = %d, want 3", n)
	}
	if len(s.d) != 2 {
		t.Fatalf("sleeps = %v, want 2", s.d)
	}
	writertest.RequireAbsent(t, inner, "k")
}

func TestRetryNeverRetries(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"not found", fmt.Errorf("get: %w", writers.ErrNotFound)},
		{"exists", fmt.Errorf("x: %w", writers.ErrExists)},
		{"invalid key", fmt.Errorf("x: %w", writers.ErrInvalidKey)},
		{"size mismatch", fmt.Errorf("x: %w", writers.ErrSizeMismatch)},
		{"canceled", fmt.Errorf("x: %w", context.Canceled)},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded)},
		{"permanent", errors.New("403 access denied")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := newFlaky(map[string]int{"get": 1})
			inner.errs["get"] = tc.err
			s := &sleeps{}
			p := fastRetry()
			p.Sleep = s.sleep
			p.IsTransient = func(err error) bool { return errors.Is(err, errTransient) }
			w := writers.WithRetry(inner, p, nil)
			if _, err := w.Get(t.Context(), "k"); !errors.Is(err, tc.err) {
				t.Fatalf("Get = %v, want %v", err, tc.err)
			}
			if n := inner.callsOf("get"); n != 1 || len(s.d) != 0 {
				t.Fatalf("attempts = %d, sleeps = %v; want 1 attempt, no sleep", n, s.d)
			}
		})
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	t.Run("during backoff", func(t *testing.T) {
		inner := newFlaky(map[string]int{"delete": 10})
		s := &sleeps{err: context.Canceled}
		p := fastRetry()
		p.Sleep = s.sleep
		err := writers.WithRetry(inner, p, nil).Delete(t.Context(), "k")
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errTransient) {
			t.Fatalf("Delete = %v, want both the sleep's and the last error", err)
		}
		if n := inner.callsOf("delete"); n != 1 {
			t.Fatalf("attempts = %d, want 1", n)
		}
	})
	t.Run("real sleep", func(t *testing.T) {
		inner := newFlaky(map[string]int{"delete": 10})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := writers.WithRetry(inner, writers.RetryPolicy{Attempts: 5, Initial: time.Hour, Max: time.Hour, Jitter: maxJitter}, nil).Delete(ctx, "k")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Delete = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("backoff ignored the context: took %v", d)
		}
	})
}

// nonSeeker hides Seek.
type nonSeeker struct{ io.Reader }

func TestRetryUploadsNeedASeeker(t *testing.T) {
	inner := newFlaky(map[string]int{"put": 1})
	w := writers.WithRetry(inner, fastRetry(), nil)
	err := w.Put(t.Context(), "k", nonSeeker{strings.NewReader("abcdef")}, 6)
	if !errors.Is(err, errTransient) || inner.callsOf("put") != 1 {
		t.Fatalf("Put with a plain reader = %v after %d attempts, want the error after 1", err, inner.callsOf("put"))
	}
	writertest.RequireAbsent(t, inner, "k")
}

func TestRetryRewindsToStartPosition(t *testing.T) {
	inner := newFlaky(map[string]int{"put": 2})
	w := writers.WithRetry(inner, fastRetry(), nil)
	r := bytes.NewReader([]byte("headerPAYLOAD"))
	if _, err := r.Seek(6, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(t.Context(), "k", r, 7); err != nil {
		t.Fatal(err)
	}
	writertest.RequireContent(t, inner, "k", []byte("PAYLOAD"))
}

func TestRetryPutIfAbsentUnknownOutcome(t *testing.T) {
	inner := newFlaky(map[string]int{"put_if_absent": 1})
	inner.storeThenFail = true // stored, but the caller sees a timeout
	w := writers.WithRetry(inner, fastRetry(), nil)
	marker := []byte(`{"revision":1}`)
	err := w.PutIfAbsent(t.Context(), "_SUCCESS", bytes.NewReader(marker), int64(len(marker)))
	if !errors.Is(err, writers.ErrExists) {
		t.Fatalf("PutIfAbsent = %v, want ErrExists (our own earlier write)", err)
	}
	if !strings.Contains(err.Error(), "earlier attempts failed") {
		t.Errorf("error %q does not say that earlier attempts failed", err)
	}
	writertest.RequireContent(t, inner, "_SUCCESS", marker)
}

func TestRetryReadsSucceedAfterTransientErrors(t *testing.T) {
	inner := newFlaky(map[string]int{"get": 2, "list": 2})
	writertest.MustPut(t, inner, "k", []byte("v"))
	w := writers.WithRetry(inner, fastRetry(), nil)
	if got := writertest.MustGet(t, w, "k"); string(got) != "v" {
		t.Fatalf("Get = %q", got)
	}
	writertest.RequireObjects(t, w, "", []writers.Object{{Key: "k", Size: 1}})
}

func TestRetryLogs(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	inner := newFlaky(map[string]int{"put": 1})
	p := fastRetry()
	p.Sleep = (&sleeps{}).sleep
	writertest.MustPut(t, writers.WithRetry(inner, p, logger), "hour=13/x.parquet", []byte("x"))
	for _, want := range []string{"level=WARN", "op=put", `key="hour=13/x.parquet"`, "attempt=1", "503 slow down"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
}

func TestRetryNoRetryPolicy(t *testing.T) {
	inner := newFlaky(map[string]int{"put": 1})
	w := writers.WithRetry(inner, writers.RetryPolicy{}, nil)
	if err := w.Put(t.Context(), "k", strings.NewReader("x"), 1); !errors.Is(err, errTransient) {
		t.Fatalf("Put = %v, want the first error", err)
	}
	if n := inner.callsOf("put"); n != 1 {
		t.Fatalf("attempts = %d, want 1", n)
	}
}

func TestDefaultRetryPolicy(t *testing.T) {
	p := writers.DefaultRetryPolicy()
	if p.Attempts < 2 || p.Initial <= 0 || p.Max < p.Initial {
		t.Fatalf("DefaultRetryPolicy() = %+v", p)
	}
}
