package partitioner

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
)

func TestFileWriterFlushReleasesMemory(t *testing.T) {
	s := mustSchema(t, allTypes)
	w, err := NewFileWriter(filepath.Join(t.TempDir(), "f.parquet"), s, FileOptions{PageBufferBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for i := range 20000 {
		if err := w.Append(allTypesRow(i), int64(i), hour13); err != nil {
			t.Fatal(err)
		}
	}
	before := w.BufferedBytes()
	if w.pool.memory == 0 {
		t.Fatal("no encoded pages in memory before Flush")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	after := w.BufferedBytes()
	if after >= before || w.pool.memory != 0 {
		t.Fatalf("BufferedBytes %d -> %d, pages in memory %d after Flush", before, after, w.pool.memory)
	}
	limit := writerOverhead + arenaBytes + int64(batchRows*len(allTypes))*valueSize + int64(2*len(allTypes)*(4<<10))
	if after > limit {
		t.Fatalf("BufferedBytes after Flush = %d, want <= %d", after, limit)
	}
}

// TestFileWriterMemory measures the heap that open FileWriters hold with
// the default options: idle writers with 10 clickstream rows must stay well
// under 1 MiB apiece, and busy writers (a row group filling, pages spilling
// past PageMemoryBytes) near PageMemoryBytes plus a page per column.
func TestFileWriterMemory(t *testing.T) {
	s := mustSchema(t, clickstreamCols)
	for _, tt := range []struct {
		name     string
		writers  int
		rows     int
		limit    int64
		deferred bool
	}{
		{"idle", 50, 10, 256 << 10, false},
		{"few", 50, 500, 512 << 10, false},
		{"some", 20, 3000, 1 << 20, false},
		{"busy", 2, 60000, DefaultPageMemoryBytes + int64(len(clickstreamCols))*DefaultPageBufferBytes*2 + 256<<10, false},
		{"deferred few", 200, 500, 24 << 10, true},
		{"deferred busy", 50, 20000, 24 << 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ws := make([]*FileWriter, tt.writers)
			var g clickGen
			var before, after runtime.MemStats
			// Two GCs empty sync.Pools (parquet-go pools codecs and page
			// buffers): count what the writers hold, not the shared pools.
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&before)
			for k := range ws {
				w, err := NewFileWriter(filepath.Join(dir, fmt.Sprintf("f%d.parquet", k)), s, FileOptions{Deferred: tt.deferred})
				if err != nil {
					t.Fatal(err)
				}
				for i := range tt.rows {
					if err := w.Append(g.next(i), int64(i), hour13); err != nil {
						t.Fatal(err)
					}
				}
				ws[k] = w
			}
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&after)
			perWriter := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(tt.writers)
			t.Logf("heap held per open FileWriter with %d rows: %d KiB; BufferedBytes %d KiB; EstimatedBytes %d KiB",
				tt.rows, perWriter>>10, ws[0].BufferedBytes()>>10, ws[0].EstimatedBytes()>>10)
			if b := ws[0].BufferedBytes(); b < perWriter*85/100 || b > perWriter*3/2 {
				t.Errorf("BufferedBytes %d KiB is not within -15%%/+50%% of the measured %d KiB", b>>10, perWriter>>10)
			}
			if perWriter > tt.limit {
				t.Errorf("an open FileWriter with %d rows holds %d KiB, want < %d KiB", tt.rows, perWriter>>10, tt.limit>>10)
			}
			for _, w := range ws {
				if err := w.Abort(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestEndRowGroup ends row groups of an open file under way: the file
// reads back with every row in order, in more row groups, and the writer
// holds less memory afterwards than with Flush alone.
func TestEndRowGroup(t *testing.T) {
	s := mustSchema(t, clickstreamCols)
	dir := t.TempDir()
	var g clickGen
	const writers, rows = 8, 4000
	var estimates [2]int64
	held := func(end bool) int64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		ws := make([]*FileWriter, writers)
		for k := range ws {
			w, err := NewFileWriter(filepath.Join(dir, fmt.Sprintf("m%v%d.parquet", end, k)), s, FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				if err := w.Append(g.next(i), int64(i), hour13); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if end {
				if err := w.EndRowGroup(); err != nil {
					t.Fatal(err)
				}
			}
			ws[k] = w
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if end {
			estimates[1] = ws[0].BufferedBytes()
		} else {
			estimates[0] = ws[0].BufferedBytes()
		}
		for _, w := range ws {
			_ = w.Abort()
		}
		return (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / writers
	}
	flushed, ended := held(false), held(true)
	t.Logf("heap per open writer with %d rows: %d KiB after Flush, %d KiB after EndRowGroup; BufferedBytes %d and %d KiB",
		rows, flushed>>10, ended>>10, estimates[0]>>10, estimates[1]>>10)
	for i, m := range []int64{flushed, ended} {
		if b := estimates[i]; b < m*85/100 || b > m*3/2 {
			t.Errorf("BufferedBytes %d KiB is not within -15%%/+50%% of the measured %d KiB", b>>10, m>>10)
		}
	}
	if ended >= flushed*3/4 {
		t.Errorf("EndRowGroup frees too little: %d KiB held, %d KiB after Flush alone", ended>>10, flushed>>10)
	}

	// The rows are all there, in order, in three row groups.
	path := filepath.Join(dir, "f.parquet")
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if err := w.Append(g.next(i), int64(i), hour13); err != nil {
			t.Fatal(err)
		}
		if i == 999 || i == 1999 {
			if err := w.EndRowGroup(); err != nil {
				t.Fatal(err)
			}
			if err := w.EndRowGroup(); err != nil { // nothing new: no empty row group
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Finish(FileMeta{Stream: "clicks", Topic: "clicks", Hour: hour13}); err != nil {
		t.Fatal(err)
	}
	pf, got := readBack(t, path, s)
	if n := len(pf.RowGroups()); n != 3 {
		t.Errorf("%d row groups, want 3", n)
	}
	if len(got) != 3000 {
		t.Errorf("%d rows, want 3000", len(got))
	}
}
