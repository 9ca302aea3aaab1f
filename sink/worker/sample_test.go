package worker

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
)

// TestSampleLimit: a sample holds at most sampleMaxBytes of records, and
// no more than a file may hold.
func TestSampleLimit(t *testing.T) {
	for _, tc := range []struct {
		maxFileBytes, want int64
	}{
		{256 << 20, sampleMaxBytes},
		{sampleMaxBytes, sampleMaxBytes},
		{2 << 10, 2 << 10},
	} {
		if got := sampleLimit(tc.maxFileBytes); got != tc.want {
			t.Errorf("sampleLimit(%d) = %d, want %d", tc.maxFileBytes, got, tc.want)
		}
	}
}

// TestSamplerFull: a sample is full at its record count or at its byte
// limit, whichever comes first; every byte it holds is counted in the
// memory budget until release, which gives it all back once.
func TestSamplerFull(t *testing.T) {
	for _, tc := range []struct {
		name     string
		records  int
		maxBytes int64
		sizes    []int64 // bytes of the records added in turn
		fullAt   int     // 1-based record at which add reports full; 0: never
	}{
		{"by records", 3, 1 << 20, []int64{10, 10, 10}, 3},
		{"by bytes", 100, 25, []int64{10, 10, 10}, 3},
		{"at exactly the byte limit", 100, 20, []int64{10, 10}, 2},
		{"one large record", 100, 25, []int64{30}, 1},
		{"not yet", 5, 1 << 20, []int64{1, 2, 3}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBudget(1 << 30)
			s := newSampler[int](b, tc.records, tc.maxBytes)
			var total int64
			full := 0
			for i, n := range tc.sizes {
				total += n
				if s.add(i, n, int64(100+i), time.UnixMilli(int64(i))) && full == 0 {
					full = i + 1
				}
				if got := b.Used(); got != total {
					t.Fatalf("after %d records the budget holds %d bytes, want %d", i+1, got, total)
				}
			}
			if full != tc.fullAt {
				t.Errorf("full at record %d, want %d", full, tc.fullAt)
			}
			if len(s.recs) != len(tc.sizes) || s.recs[0].offset != 100 {
				t.Errorf("sample holds %d records from offset %d", len(s.recs), s.recs[0].offset)
			}
			s.release()
			s.release()
			if got := b.Used(); got != 0 || s.recs != nil {
				t.Errorf("after release: budget %d bytes, %d records; want 0, none", got, len(s.recs))
			}
		})
	}
}

// TestSamplerWriteTo: writeTo replaces the placeholder spool file with one
// of the settled schema holding every sampled record in order, with its
// offset and event time, and gives the sample's memory back; a record the
// schema cannot hold is the error.
func TestSamplerWriteTo(t *testing.T) {
	placeholder, err := partitioner.NewSchema("s", []partitioner.Column{{Name: "sampling", Type: partitioner.TypeString}})
	if err != nil {
		t.Fatal(err)
	}
	schema, err := partitioner.NewSchema("s", []partitioner.Column{{Name: "n", Type: partitioner.TypeInt64, Required: true}})
	if err != nil {
		t.Fatal(err)
	}
	open := func(path string, s *partitioner.Schema) (*partitioner.FileWriter, error) {
		return partitioner.NewFileWriter(path, s, partitioner.FileOptions{})
	}
	hour := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	sample := func(t *testing.T, b *Budget) (*openFile, sampler[int64]) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "f.parquet")
		fw, err := open(path, placeholder)
		if err != nil {
			t.Fatal(err)
		}
		s := newSampler[int64](b, 10, 1<<20)
		for i := range int64(4) {
			s.add(i*i, 8, 20+i, hour.Add(time.Duration(i)*time.Minute))
		}
		return &openFile{hour: hour, first: 20, fw: fw, spool: path}, s
	}
	rowOf := func(r sampled[int64]) ([]parquet.Value, error) {
		return []parquet.Value{parquet.Int64Value(r.rec)}, nil
	}

	t.Run("writes the sample", func(t *testing.T) {
		b := NewBudget(1 << 30)
		f, s := sample(t, b)
		if err := s.writeTo(f, schema, open, rowOf); err != nil {
			t.Fatal(err)
		}
		if got := b.Used(); got != 0 || s.recs != nil {
			t.Errorf("after writeTo: budget %d bytes, %d records; want 0, none", got, len(s.recs))
		}
		info, err := f.fw.Finish(partitioner.FileMeta{Stream: "s", Topic: "t", Hour: hour})
		if err != nil {
			t.Fatal(err)
		}
		if info.Records != 4 || info.FirstOffset != 20 || info.LastOffset != 23 {
			t.Errorf("file: %d records, offsets %d..%d; want 4, 20..23", info.Records, info.FirstOffset, info.LastOffset)
		}
		r, err := os.Open(f.spool)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		st, _ := r.Stat()
		pf, err := parquet.OpenFile(r, st.Size())
		if err != nil {
			t.Fatal(err)
		}
		if cols := pf.Schema().Columns(); len(cols) != 1 || cols[0][0] != "n" {
			t.Fatalf("file columns %v, want [n]", cols)
		}
		rows := make([]parquet.Row, 8)
		pr := parquet.NewReader(pf)
		defer pr.Close()
		n, _ := pr.ReadRows(rows)
		var got []int64
		for _, row := range rows[:n] {
			got = append(got, row[0].Int64())
		}
		if want := []int64{0, 1, 4, 9}; !slices.Equal(got, want) {
			t.Errorf("rows %v, want %v", got, want)
		}
	})

	t.Run("a record the schema cannot hold", func(t *testing.T) {
		b := NewBudget(1 << 30)
		f, s := sample(t, b)
		bug := errors.New("not held")
		err := s.writeTo(f, schema, open, func(r sampled[int64]) ([]parquet.Value, error) {
			if r.offset == 22 {
				return nil, bug
			}
			return rowOf(r)
		})
		if !errors.Is(err, bug) {
			t.Fatalf("writeTo = %v, want %v", err, bug)
		}
		// The worker abandons the file, which releases the sample.
		if got := b.Used(); got != 32 {
			t.Errorf("budget %d bytes before the file is abandoned, want 32", got)
		}
		_ = f.fw.Abort()
		s.release()
		if got := b.Used(); got != 0 {
			t.Errorf("budget %d bytes after release, want 0", got)
		}
	})
}
