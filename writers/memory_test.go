package writers_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/writertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The bare memory backend runs the suite in writertest's own tests; here it
// runs below the decorators that pass writes through, stacked as
// writers/factory stacks them.
func TestAcceptanceMemoryDecorated(t *testing.T) {
	m := writers.NewMetrics(nil)
	writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
		return writers.WithDeadline(writers.WithMetrics(writers.NewMemory(), m), time.Minute, 1<<20)
	})
}

func TestMemoryGetAfterOverwriteAndDelete(t *testing.T) {
	w := writers.NewMemory()
	writertest.MustPut(t, w, "k", []byte("first"))
	rc, err := w.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	writertest.MustPut(t, w, "k", []byte("second"))
	if err := w.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, _ := rc.Read(buf)
	if got := string(buf[:n]); got != "first" {
		t.Fatalf("reader opened before the overwrite yields %q, want %q", got, "first")
	}
}
