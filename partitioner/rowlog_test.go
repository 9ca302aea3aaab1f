package partitioner

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// TestFileWriterDeferred: a deferred writer's file is byte for byte the
// file an encoding writer makes of the same rows — with row groups cut, the
// direct path for large rows, values larger than the log's buffer, nulls,
// every type and millisecond columns scaled — with the same EstimatedBytes
// before Finish ± the encoding (plain size), and it holds only the log's
// buffer while open.
func TestFileWriterDeferred(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts FileOptions
		n    int
	}{
		{"one row", FileOptions{}, 1},
		{"defaults", FileOptions{}, 3000},
		{"many row groups", FileOptions{RowGroupBytes: 16 << 10, PageBufferBytes: 4 << 10}, 5000},
		{"snappy", FileOptions{Compression: "snappy"}, 2000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			never := func(int) bool { return false }
			ref, _, _ := writeAll(t, dir, tt.n, tt.opts, never)
			opts := tt.opts
			opts.Deferred = true
			rng := rand.New(rand.NewPCG(3, 4))
			got, est, w := writeAll(t, dir, tt.n, opts, func(int) bool { return rng.IntN(40) == 0 })
			if !bytes.Equal(ref, got) {
				t.Fatalf("deferred file differs: %d bytes, encoding writer %d", len(got), len(ref))
			}
			if w.log != nil {
				t.Fatal("row log still set after Finish")
			}
			// The footer (a few KiB) is not in the estimate.
			if tt.n >= 1000 && est[len(est)-1] < int64(len(ref)) {
				t.Errorf("deferred EstimatedBytes %d below the file's size %d: max_file_bytes would be passed", est[len(est)-1], len(ref))
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if filepath.Ext(e.Name()) != ".parquet" {
					t.Errorf("%s left in the spool folder after Finish", e.Name())
				}
			}
		})
	}
	t.Run("large values", func(t *testing.T) {
		s := mustSchema(t, []Column{{Name: "k", Type: TypeString}, {Name: "v", Type: TypeString}, {Name: "n", Type: TypeInt64}})
		row := func(i int) Row {
			// 100 B, 6 KiB (over the log buffer) and 40 KiB (over the
			// arena: the direct path) values, some null.
			size := []int{100, 6 << 10, 40 << 10}[i%3]
			r := Row{parquet.ByteArrayValue([]byte(fmt.Sprint("k", i))), parquet.ByteArrayValue(bytes.Repeat([]byte{byte('a' + i%26)}, size)), parquet.Int64Value(int64(i))}
			if i%4 == 3 {
				r[1] = parquet.Value{}
			}
			return r
		}
		files := map[bool][]byte{}
		for _, deferred := range []bool{false, true} {
			path := filepath.Join(t.TempDir(), "f.parquet")
			w, err := NewFileWriter(path, s, FileOptions{Deferred: deferred})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				if err := w.Append(row(i), int64(i), hour13); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13}); err != nil {
				t.Fatal(err)
			}
			_, rows := readBack(t, path, s)
			checkRows(t, rows, row, 50)
			if files[deferred], err = os.ReadFile(path); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(files[false], files[true]) {
			t.Fatal("deferred file differs from the encoding writer's")
		}
	})
	t.Run("row log file only when the rows leave the buffer", func(t *testing.T) {
		// A few rows stay in the log's buffer until Finish: no scratch
		// file is created, even in a folder that does not exist.
		s := mustSchema(t, allTypes)
		small, err := NewFileWriter(filepath.Join(t.TempDir(), "small.parquet"), s, FileOptions{Deferred: true, SpoolDir: filepath.Join(t.TempDir(), "missing")})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if err := small.Append(allTypesRow(i), int64(i), hour13); err != nil {
				t.Fatal(err)
			}
		}
		if small.log.f != nil {
			t.Fatal("row log file created for rows that fit the buffer")
		}
		// Encoding needs the spool folder for the page spool only past
		// PageMemoryBytes: the data file is at its own path.
		info, err := small.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13})
		if err != nil {
			t.Fatal(err)
		}
		_, rows := readBack(t, info.Path, s)
		checkRows(t, rows, allTypesRow, 20)

		// More rows than the buffer holds: the file is created on the way,
		// and where it cannot be, Append says so and the error sticks.
		w, err := NewFileWriter(filepath.Join(t.TempDir(), "big.parquet"), s, FileOptions{Deferred: true, SpoolDir: filepath.Join(t.TempDir(), "missing")})
		if err != nil {
			t.Fatal(err)
		}
		var appendErr error
		for i := 0; i < 2000 && appendErr == nil; i++ {
			appendErr = w.Append(allTypesRow(i), int64(i), hour13)
		}
		if appendErr == nil || !strings.Contains(appendErr.Error(), "create row log") {
			t.Fatalf("append past the buffer into a missing spool folder: %v, want a create row log error", appendErr)
		}
		if err := w.Append(allTypesRow(5000), 5000, hour13); err == nil {
			t.Fatal("error not sticky")
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}

		// Flush moves a small log's rows out of memory: that creates it.
		f, err := NewFileWriter(filepath.Join(t.TempDir(), "flushed.parquet"), s, FileOptions{Deferred: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Append(allTypesRow(0), 0, hour13); err != nil {
			t.Fatal(err)
		}
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
		if f.log.f == nil || f.log.buf != nil {
			t.Fatal("Flush kept a deferred writer's rows in memory")
		}
		info, err = f.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13})
		if err != nil {
			t.Fatal(err)
		}
		_, rows = readBack(t, info.Path, s)
		checkRows(t, rows, allTypesRow, 1)
	})
	t.Run("abort", func(t *testing.T) {
		dir := t.TempDir()
		w, err := NewFileWriter(filepath.Join(dir, "f.parquet"), mustSchema(t, allTypes), FileOptions{Deferred: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			if err := w.Append(allTypesRow(i), int64(i), hour13); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("files left after Abort: %v", left)
		}
	})
	t.Run("encode slots", func(t *testing.T) {
		// Finish waits for a slot: with the only one taken, it blocks.
		slots := make(chan struct{}, 1)
		slots <- struct{}{}
		w, err := NewFileWriter(filepath.Join(t.TempDir(), "f.parquet"), mustSchema(t, allTypes), FileOptions{Deferred: true, EncodeSlots: slots})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(allTypesRow(0), 0, hour13); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := w.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13})
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("Finish returned (%v) without a free slot", err)
		case <-time.After(50 * time.Millisecond):
		}
		<-slots
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(slots) != 0 {
			t.Fatal("Finish kept its slot")
		}
	})
}
