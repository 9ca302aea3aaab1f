package writers_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/writertest"
)

// failing is a Writer whose calls fail with err (nil: delegates to Memory).
type failing struct {
	*writers.Memory
	err error
}

func (f *failing) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if f.err != nil {
		return f.err
	}
	return f.Memory.Put(ctx, key, r, size)
}

func (f *failing) List(ctx context.Context, prefix string) ([]writers.Object, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.Memory.List(ctx, prefix)
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := writers.NewMetrics(reg)
	mem := writers.WithMetrics(writers.NewMemory(), m)
	flaky := &failing{Memory: writers.NewMemory()}
	other := writers.WithMetrics(flaky, m) // shares the collectors
	ctx := t.Context()

	writertest.MustPut(t, mem, "a", []byte("12345"))
	writertest.MustPut(t, mem, "b", []byte("678"))
	if err := mem.PutIfAbsent(ctx, "c", strings.NewReader("xy"), 2); err != nil {
		t.Fatal(err)
	}
	// Answers, not failures.
	if err := mem.PutIfAbsent(ctx, "c", strings.NewReader("xy"), 2); !errors.Is(err, writers.ErrExists) {
		t.Fatal(err)
	}
	if _, err := mem.Get(ctx, "missing"); !errors.Is(err, writers.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := mem.Stat(ctx, "missing"); !errors.Is(err, writers.ErrNotFound) {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := mem.Put(cancelled, "d", strings.NewReader("x"), 1); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	// Failures.
	if err := mem.Put(ctx, "short", strings.NewReader("x"), 2); err == nil {
		t.Fatal("short Put succeeded")
	}
	if _, err := mem.Get(ctx, "../bad"); err == nil {
		t.Fatal("Get of an invalid key succeeded")
	}
	flaky.err = errors.New("503 slow down")
	if err := other.Put(ctx, "e", strings.NewReader("x"), 1); err == nil {
		t.Fatal("flaky Put succeeded")
	}
	if _, err := other.List(ctx, ""); err == nil {
		t.Fatal("flaky List succeeded")
	}
	flaky.err = nil
	writertest.MustPut(t, other, "e", []byte("x"))

	const (
		bytesWritten = `
# HELP lakesink_storage_bytes_written_total Bytes of successful uploads to the storage backend.
# TYPE lakesink_storage_bytes_written_total counter
lakesink_storage_bytes_written_total{backend="memory"} 11
`
		failures = `
# HELP lakesink_storage_errors_total Failed storage operations (not-found and already-exists answers excluded).
# TYPE lakesink_storage_errors_total counter
lakesink_storage_errors_total{backend="memory",op="get"} 1
lakesink_storage_errors_total{backend="memory",op="list"} 1
lakesink_storage_errors_total{backend="memory",op="put"} 2
`
	)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(bytesWritten), "lakesink_storage_bytes_written_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(failures), "lakesink_storage_errors_total"); err != nil {
		t.Error(err)
	}
	// Successful uploads only: 3 puts (a, b, e) and 1 put_if_absent.
	counts := histogramCounts(t, reg, "lakesink_upload_duration_seconds")
	if want := map[string]uint64{"memory/put": 3, "memory/put_if_absent": 1}; !equalCounts(counts, want) {
		t.Errorf("upload duration sample counts = %v, want %v", counts, want)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 1+3+2 {
		t.Errorf("series = %d, %v; want 6 (1 bytes, 3 errors, 2 histograms)", n, err)
	}
	if mem.Name() != "memory" {
		t.Errorf("Name() = %q", mem.Name())
	}
}

func TestNewMetricsTwiceOnOneRegistryPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	writers.NewMetrics(reg)
	defer func() {
		if recover() == nil {
			t.Fatal("second NewMetrics on the same registry did not panic")
		}
	}()
	writers.NewMetrics(reg)
}

func histogramCounts(t *testing.T, reg prometheus.Gatherer, name string) map[string]uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[labels["backend"]+"/"+labels["op"]] = m.GetHistogram().GetSampleCount()
		}
	}
	return out
}

func equalCounts(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
