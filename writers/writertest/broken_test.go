package writertest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/writertest"
)

// broken is the memory backend with one contract violation, to show that
// the suite notices it.
type broken struct {
	*writers.Memory
	mode string
}

func (b *broken) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	switch b.mode {
	case "torn put": // publishes every chunk as it arrives
		var buf []byte
		chunk := make([]byte, 1<<20)
		for {
			n, err := r.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if perr := b.Memory.Put(context.Background(), key, bytes.NewReader(buf), int64(len(buf))); perr != nil {
				return perr
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		if int64(len(buf)) != size {
			return errors.New("size mismatch")
		}
		return nil
	case "trusts reader": // stores whatever the reader yields
		buf, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		return b.Memory.Put(ctx, key, bytes.NewReader(buf), int64(len(buf)))
	case "ignores context":
		return b.Memory.Put(context.Background(), key, r, size)
	}
	return b.Memory.Put(ctx, key, r, size)
}

func (b *broken) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if b.mode == "check then put" {
		ok, err := b.Exists(ctx, key)
		if err != nil {
			return err
		}
		if ok {
			return writers.ErrExists
		}
		time.Sleep(time.Millisecond) // widen the race window
		return b.Put(ctx, key, r, size)
	}
	return b.Memory.PutIfAbsent(ctx, key, r, size)
}

func (b *broken) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := b.Memory.Get(ctx, key)
	if b.mode == "unwrapped not found" && errors.Is(err, writers.ErrNotFound) {
		return nil, errors.New("no such key")
	}
	return rc, err
}

func (b *broken) List(ctx context.Context, prefix string) ([]writers.Object, error) {
	objs, err := b.Memory.List(ctx, prefix)
	if b.mode == "unsorted list" {
		slices.Reverse(objs)
	}
	return objs, err
}

func (b *broken) Delete(ctx context.Context, key string) error {
	if b.mode == "delete of missing key fails" {
		if _, err := b.Stat(ctx, key); err != nil {
			return err
		}
	}
	return b.Memory.Delete(ctx, key)
}

const brokenEnv = "WRITERTEST_BROKEN_MODE"

// TestBrokenBackendHelper is run by TestSuiteCatchesBrokenBackends in a
// child process, where its failures are the expected result.
func TestBrokenBackendHelper(t *testing.T) {
	mode := os.Getenv(brokenEnv)
	if mode == "" {
		t.Skip("helper process of TestSuiteCatchesBrokenBackends")
	}
	writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
		return &broken{Memory: writers.NewMemory(), mode: mode}
	})
}

func TestSuiteCatchesBrokenBackends(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		subtest string // the subtest that must fail
	}{
		{"torn put", "InFlight"},
		{"torn put", "FailedPut"},
		{"trusts reader", "FailedPut"},
		{"ignores context", "Cancel"},
		{"check then put", "PutIfAbsent"},
		{"unwrapped not found", "NotFound"},
		{"unsorted list", "List"},
		{"delete of missing key fails", "NotFound"},
	} {
		t.Run(tc.mode+"/"+tc.subtest, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0],
				"-test.run=^TestBrokenBackendHelper$/^"+tc.subtest+"$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), brokenEnv+"="+tc.mode)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("suite passed a backend with %q (err %v), want a failure in %s:\n%s", tc.mode, err, tc.subtest, out)
			}
			if want := "--- FAIL: TestBrokenBackendHelper/" + tc.subtest; !strings.Contains(string(out), want) {
				t.Fatalf("output lacks %q:\n%s", want, out)
			}
		})
	}
}
