package local_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/lakesink/lakesink/writers/local"
	"github.com/lakesink/lakesink/writers/writertest"
)

// BenchmarkPut measures an atomic, fsynced upload; the disk's fsync latency
// dominates small sizes. Compare changes with
//
//	go test -run XXX -bench Put -count 10 ./writers/local/ > new.txt
//	benchstat old.txt new.txt
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{64 << 10, 8 << 20} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			w, err := local.New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			content := writertest.RandomBytes(1, size)
			r := bytes.NewReader(content)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r.Reset(content)
				if err := w.Put(b.Context(), fmt.Sprintf("s/dt=2026-11-25/hour=13/f-%d.parquet", i%8), r, int64(size)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
