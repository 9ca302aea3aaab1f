package writertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/lakesink/lakesink/writers"
)

// RandomBytes returns n pseudo-random bytes, the same for the same seed.
func RandomBytes(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b) // never fails
	return b
}

// ErrInjected is the error FailingReader returns.
var ErrInjected = errors.New("writertest: injected reader failure")

// FailingReader returns a reader that yields the first n bytes of r and
// then fails with ErrInjected, like a spool file on a failing disk.
func FailingReader(r io.Reader, n int64) io.Reader {
	return &failingReader{r: io.LimitReader(r, n)}
}

type failingReader struct{ r io.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, ErrInjected
	}
	return n, err
}

// CancelingReader returns a reader that yields r's bytes and calls cancel
// once n bytes have been read, then goes on yielding r's bytes: only the
// cancelled context can make the Put fail.
func CancelingReader(r io.Reader, n int64, cancel context.CancelFunc) io.Reader {
	return &cancelingReader{r: r, left: n, cancel: cancel}
}

type cancelingReader struct {
	r      io.Reader
	left   int64
	cancel context.CancelFunc
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	if c.left > 0 && int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	if c.left > 0 {
		c.left -= int64(n)
		if c.left <= 0 {
			c.cancel()
		}
	}
	return n, err
}

// GatedReader yields the first n bytes of an underlying reader, then blocks
// until Release is called, then yields the rest. Reached is closed when the
// reader blocks, so a test can inspect the storage while a Put is in flight.
// Call Release in every path (defer it): a Put blocked forever leaks its
// goroutine.
type GatedReader struct {
	r        io.Reader
	left     int64
	reached  chan struct{}
	release  chan struct{}
	reachOne sync.Once
	relOne   sync.Once
}

// NewGatedReader returns a reader over r that blocks after n bytes.
func NewGatedReader(r io.Reader, n int64) *GatedReader {
	return &GatedReader{r: r, left: n, reached: make(chan struct{}), release: make(chan struct{})}
}

// Reached is closed once n bytes have been read and the reader blocks.
func (g *GatedReader) Reached() <-chan struct{} { return g.reached }

// Release unblocks the reader. Idempotent.
func (g *GatedReader) Release() { g.relOne.Do(func() { close(g.release) }) }

// Read implements io.Reader.
func (g *GatedReader) Read(p []byte) (int, error) {
	if g.left > 0 {
		if int64(len(p)) > g.left {
			p = p[:g.left]
		}
		n, err := g.r.Read(p)
		g.left -= int64(n)
		return n, err
	}
	g.reachOne.Do(func() { close(g.reached) })
	<-g.release
	return g.r.Read(p)
}

// MustPut stores content under key with Put and fails the test on error.
func MustPut(t testing.TB, w writers.Writer, key string, content []byte) {
	t.Helper()
	if err := w.Put(t.Context(), key, bytes.NewReader(content), int64(len(content))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(content), err)
	}
}

// MustGet returns the content of key and fails the test on error.
func MustGet(t testing.TB, w writers.Writer, key string) []byte {
	t.Helper()
	rc, err := w.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return mustReadClose(t, rc, fmt.Sprintf("Get(%q)", key))
}

// MustGetRange returns the bytes GetRange yields and fails the test on error.
func MustGetRange(t testing.TB, w writers.Writer, key string, off, length int64) []byte {
	t.Helper()
	rc, err := w.GetRange(t.Context(), key, off, length)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): %v", key, off, length, err)
	}
	return mustReadClose(t, rc, fmt.Sprintf("GetRange(%q, %d, %d)", key, off, length))
}

func mustReadClose(t testing.TB, rc io.ReadCloser, what string) []byte {
	t.Helper()
	b, err := io.ReadAll(rc)
	cerr := rc.Close()
	if err != nil {
		t.Fatalf("%s: read: %v", what, err)
	}
	if cerr != nil {
		t.Fatalf("%s: close: %v", what, cerr)
	}
	return b
}

// requireReader checks that rc yields exactly want, then closes it. It
// streams, so large objects cost no extra memory.
func requireReader(t testing.TB, rc io.ReadCloser, want []byte, what string) {
	t.Helper()
	defer func() { _ = rc.Close() }()
	buf := make([]byte, 256*1024)
	var pos int
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if pos+n > len(want) {
				t.Fatalf("%s yields more than the %d bytes expected", what, len(want))
			}
			if !bytes.Equal(buf[:n], want[pos:pos+n]) {
				i := pos
				for j := range n {
					if buf[j] != want[pos+j] {
						i = pos + j
						break
					}
				}
				t.Fatalf("%s differs from the expected %s at byte %d", what, Describe(want), i)
			}
			pos += n
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: read after %d bytes: %v", what, pos, err)
		}
	}
	if pos != len(want) {
		t.Fatalf("%s yields %d bytes, want %s", what, pos, Describe(want))
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("%s: close: %v", what, err)
	}
}

// RequireRange checks that GetRange(key, off, length) yields exactly want.
func RequireRange(t testing.TB, w writers.Writer, key string, off, length int64, want []byte) {
	t.Helper()
	rc, err := w.GetRange(t.Context(), key, off, length)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): %v", key, off, length, err)
	}
	requireReader(t, rc, want, fmt.Sprintf("GetRange(%q, %d, %d)", key, off, length))
}

// MustList returns List(prefix) and fails the test on error.
func MustList(t testing.TB, w writers.Writer, prefix string) []writers.Object {
	t.Helper()
	objs, err := w.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return objs
}

// RequireContent checks that Get returns exactly want and Stat, Exists and
// List agree with it.
func RequireContent(t testing.TB, w writers.Writer, key string, want []byte) {
	t.Helper()
	rc, err := w.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	requireReader(t, rc, want, fmt.Sprintf("Get(%q)", key))
	o, err := w.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	if o.Key != key || o.Size != int64(len(want)) {
		t.Fatalf("Stat(%q) = %+v, want {Key:%s Size:%d}", key, o, key, len(want))
	}
	ok, err := w.Exists(t.Context(), key)
	if err != nil || !ok {
		t.Fatalf("Exists(%q) = %v, %v; want true, nil", key, ok, err)
	}
	found := false
	for _, o := range MustList(t, w, key) {
		if o.Key == key {
			found = true
			if o.Size != int64(len(want)) {
				t.Fatalf("List(%q) reports %q with size %d, want %d", key, key, o.Size, len(want))
			}
		}
	}
	if !found {
		t.Fatalf("List(%q) does not show %q", key, key)
	}
}

// RequireAbsent checks that key does not exist: Exists is false, Get,
// GetRange and Stat fail with an error wrapping writers.ErrNotFound, and
// List(key) does not show it.
func RequireAbsent(t testing.TB, w writers.Writer, key string) {
	t.Helper()
	ctx := t.Context()
	if ok, err := w.Exists(ctx, key); err != nil || ok {
		t.Fatalf("Exists(%q) = %v, %v; want false, nil", key, ok, err)
	}
	if rc, err := w.Get(ctx, key); !errors.Is(err, writers.ErrNotFound) {
		closeIfNotNil(rc)
		t.Fatalf("Get(%q) error = %v, want one wrapping writers.ErrNotFound", key, err)
	}
	if rc, err := w.GetRange(ctx, key, 0, 1); !errors.Is(err, writers.ErrNotFound) {
		closeIfNotNil(rc)
		t.Fatalf("GetRange(%q, 0, 1) error = %v, want one wrapping writers.ErrNotFound", key, err)
	}
	if o, err := w.Stat(ctx, key); !errors.Is(err, writers.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want an error wrapping writers.ErrNotFound", key, o, err)
	}
	for _, o := range MustList(t, w, key) {
		if o.Key == key {
			t.Fatalf("List(%q) shows absent key %q", key, key)
		}
	}
}

func closeIfNotNil(rc io.ReadCloser) {
	if rc != nil {
		_ = rc.Close()
	}
}

// RequireObjects checks that List(prefix) returns exactly want, in order.
func RequireObjects(t testing.TB, w writers.Writer, prefix string, want []writers.Object) {
	t.Helper()
	got := MustList(t, w, prefix)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("List(%q) = %v, want %v", prefix, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("List(%q) = %v, want %v (first difference at index %d)", prefix, got, want, i)
		}
	}
}

// Describe summarises content for failure messages: its length, its
// SHA-256 and, when short, the bytes themselves.
func Describe(b []byte) string {
	sum := sha256.Sum256(b)
	if len(b) <= 32 {
		return fmt.Sprintf("%d bytes %q (sha256 %x)", len(b), b, sum[:8])
	}
	return fmt.Sprintf("%d bytes (sha256 %x)", len(b), sum[:8])
}
