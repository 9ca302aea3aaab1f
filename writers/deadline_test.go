package writers_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/writertest"
)

// hanging never answers until its context ends, like a storage server that
// accepts connections and stays silent.
type hanging struct{ writers.Writer }

func (hanging) Put(ctx context.Context, _ string, _ io.Reader, _ int64) error {
	<-ctx.Done()
	return ctx.Err()
}

func (hanging) List(ctx context.Context, _ string) ([]writers.Object, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestDeadline: every call ends by its deadline, an upload's deadline grows
// with its size, and a reader stays usable until closed.
func TestDeadline(t *testing.T) {
	w := writers.WithDeadline(hanging{writers.NewMemory()}, 100*time.Millisecond, 1<<20)
	start := time.Now()
	if _, err := w.List(t.Context(), ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("List on a silent server = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("List took %v, want about 100ms", d)
	}
	start = time.Now()
	if err := w.Put(t.Context(), "k", strings.NewReader("x"), 2<<20); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 2*time.Second || d > 5*time.Second {
		t.Errorf("a 2 MiB upload got %v, want 100ms + 2 s at 1 MiB/s", d)
	}
}

// The decorator passes the conformance suite like a backend.
func TestAcceptanceDeadline(t *testing.T) {
	writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
		return writers.WithDeadline(writers.NewMemory(), time.Second, 1<<20)
	})
}
