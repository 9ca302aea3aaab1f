package worker

import (
	"fmt"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
)

// sampleMaxBytes caps the record bytes one file samples, whatever
// infer_sample (or registrySample) says, and files.max_file_bytes if
// smaller (sampleLimit).
const sampleMaxBytes = 4 << 20

// sampleLimit is the record bytes at which a file's sample is full:
// sampleMaxBytes, or maxFileBytes if smaller — a sample goes into its
// file whole, so it cannot hold more than the file may.
func sampleLimit(maxFileBytes int64) int64 { return min(sampleMaxBytes, maxFileBytes) }

// memCounter is the memory budget samples are counted in (*Budget).
type memCounter interface {
	add(n int64)
	release(n int64)
}

// sampler holds the first records of a file whose columns are not settled
// yet — a registry stream's with derived columns, or schema: infer — until
// it is full (add) or the file is finished sooner. Then the format derives
// the file's columns, and writeTo puts the sample into the file. What it
// holds of each record is the format's own copy (T: the record's value, or
// its row), of a size the format tells add; those bytes count in the
// memory budget from add until release, which writeTo and an abandoned
// file call. Both formats sample through it, so a sample is bounded and
// accounted for the same way. One per sampling file; not safe for
// concurrent use.
type sampler[T any] struct {
	mem      memCounter
	records  int   // full at this many records
	maxBytes int64 // or at this many bytes (sampleLimit)
	recs     []sampled[T]
	bytes    int64 // of recs, counted in mem
}

// sampled is one sampled record: what the format keeps of it, its offset
// and its event time.
type sampled[T any] struct {
	rec    T
	offset int64
	ev     time.Time
}

// newSampler returns an empty sample that is full at records records or
// maxBytes bytes, counted in mem.
func newSampler[T any](mem memCounter, records int, maxBytes int64) sampler[T] {
	return sampler[T]{mem: mem, records: records, maxBytes: maxBytes}
}

// add keeps rec, which holds n bytes, counts them in the budget and
// reports whether the sample is full.
func (s *sampler[T]) add(rec T, n, offset int64, ev time.Time) (full bool) {
	s.recs = append(s.recs, sampled[T]{rec: rec, offset: offset, ev: ev})
	s.bytes += n
	s.mem.add(n)
	return len(s.recs) >= s.records || s.bytes >= s.maxBytes
}

// release forgets the sample and takes its bytes out of the budget.
// Idempotent.
func (s *sampler[T]) release() {
	if s.bytes != 0 {
		s.mem.release(s.bytes)
	}
	s.recs, s.bytes = nil, 0
}

// writeTo replaces f's spool file — a placeholder while it sampled — with
// an empty one of schema opened by open, appends each sampled record to it
// in order as the row rowOf returns (an error from rowOf is returned as
// is), and releases the sample.
func (s *sampler[T]) writeTo(f *openFile, schema *partitioner.Schema, open func(path string, schema *partitioner.Schema) (*partitioner.FileWriter, error), rowOf func(sampled[T]) ([]parquet.Value, error)) error {
	if err := f.fw.Abort(); err != nil {
		return err
	}
	fw, err := open(f.spool, schema)
	if err != nil {
		return fmt.Errorf("open spool file: %w", err)
	}
	f.fw = fw
	for _, r := range s.recs {
		row, err := rowOf(r)
		if err != nil {
			return err
		}
		if err := fw.Append(row, r.offset, r.ev); err != nil {
			return fmt.Errorf("append to %s: %w", f.spool, err)
		}
	}
	s.release()
	return nil
}
