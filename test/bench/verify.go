package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
)

// lakeStats is what lakeCounts found.
type lakeStats struct {
	files        int
	records      int64
	perPartition map[int]int64
	// maxPerBucket is the largest number of files of one (partition,
	// hour): 1 unless files were split (max_file_bytes, idle flushes,
	// memory pressure).
	maxPerBucket int
	buckets      int
	// compacted counts the compacted files (partitioner.Compact), whose
	// records count for their sources' partitions and which belong to no
	// partition-hour.
	compacted int
}

// walkParquet calls fn with every Parquet file under root, open, and its
// size; a root that does not exist (nothing written) has none.
func walkParquet(root string, fn func(path string, f *os.File, size int64) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == root {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		return fn(path, f, fi.Size())
	})
}

// lakeCounts walks a local lake and reads every Parquet file's footer.
func lakeCounts(root string) (st lakeStats, err error) {
	st.perPartition = map[int]int64{}
	perBucket := map[string]int{}
	err = walkParquet(root, func(path string, f *os.File, size int64) error {
		info, meta, err := partitioner.ReadFileInfo(f, size)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		st.files++
		st.records += info.Records
		if meta.Sources != nil {
			st.compacted++
			for _, src := range meta.Sources {
				st.perPartition[src.Partition] += src.Records
			}
			return nil
		}
		st.perPartition[meta.Partition] += info.Records
		k := fmt.Sprintf("%s/%d/%s", meta.Topic, meta.Partition, meta.Hour.UTC().Format(time.RFC3339))
		perBucket[k]++
		st.maxPerBucket = max(st.maxPerBucket, perBucket[k])
		return nil
	})
	st.buckets = len(perBucket)
	return st, err
}

// markerPath is the _SUCCESS key of an hour under the default path template.
func markerPath(lake, stream string, h time.Time) string {
	return filepath.Join(lake, stream, "dt="+h.Format("2006-01-02"), "hour="+h.Format("15"), "_SUCCESS")
}

// waitManifests waits for the _SUCCESS manifest of each of the hours from
// from on, calls atMarkers (if not nil) as soon as they are all there, then
// checks that the manifests' record counts per partition equal the produced
// ones and that every listed file exists. It returns the records the
// manifests list.
func waitManifests(ctx context.Context, lake, stream string, from time.Time, hours int, want map[int]int64, exited <-chan struct{}, atMarkers func()) (int64, error) {
	for h := 0; h < hours; h++ {
		p := markerPath(lake, stream, from.Add(time.Duration(h)*time.Hour))
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return -1, fmt.Errorf("no marker %s: %w", p, ctx.Err())
			case <-exited:
				return -1, fmt.Errorf("lakesink exited before writing %s", p)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if atMarkers != nil {
		atMarkers()
	}
	var total int64
	got := map[int]int64{}
	var errs []error
	for h := 0; h < hours; h++ {
		p := markerPath(lake, stream, from.Add(time.Duration(h)*time.Hour))
		b, err := os.ReadFile(p)
		if err != nil {
			return -1, err
		}
		var m manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return -1, fmt.Errorf("%s: %w", p, err)
		}
		var sum int64
		for _, f := range m.Files {
			sum += f.Records
			if f.Sources != nil {
				var n int64
				for _, src := range f.Sources {
					got[src.Partition] += src.Records
					n += src.Records
				}
				if n != f.Records {
					errs = append(errs, fmt.Errorf("%s: %s has %d records, its sources %d", p, f.Path, f.Records, n))
				}
			} else {
				got[f.Partition] += f.Records
			}
			if _, err := os.Stat(filepath.Join(lake, filepath.FromSlash(f.Path))); err != nil {
				errs = append(errs, fmt.Errorf("%s lists %s: %w", p, f.Path, err))
			}
		}
		if sum != m.Records {
			errs = append(errs, fmt.Errorf("%s: records %d, files sum to %d", p, m.Records, sum))
		}
		total += sum
	}
	for p, n := range want {
		if got[p] != n {
			errs = append(errs, fmt.Errorf("manifests: partition %d has %d records, %d produced", p, got[p], n))
		}
	}
	return total, errors.Join(errs...)
}

// manifest is the part of the _SUCCESS format (docs/design.md, completion.Manifest) that
// the harness checks; declared here so the harness reads the documented
// JSON, not the sink's Go type.
type manifest struct {
	Version int    `json:"version"`
	Stream  string `json:"stream"`
	Hour    string `json:"hour"`
	Records int64  `json:"records"`
	Files   []struct {
		Path      string `json:"path"`
		Records   int64  `json:"records"`
		Partition int    `json:"partition"`
		// Sources: a compacted file's inputs (docs/compaction.md); it
		// has no partition of its own.
		Sources []struct {
			Partition int   `json:"partition"`
			Records   int64 `json:"records"`
		} `json:"sources"`
	} `json:"files"`
}

// folderFiles checks an hour folder against its manifest: every Parquet
// file in the folder is listed and every listed file is there. It returns
// the folder's data files and how many of them are compacted files.
func folderFiles(lake, stream string, h time.Time) (files, compacted int, err error) {
	p := markerPath(lake, stream, h)
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, 0, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", p, err)
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[filepath.Base(filepath.FromSlash(f.Path))] = true
		if f.Sources != nil {
			compacted++
		}
	}
	ents, err := os.ReadDir(filepath.Dir(p))
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".parquet") {
			continue
		}
		files++
		if !listed[e.Name()] {
			errs = append(errs, fmt.Errorf("%s: %s is in the folder but not in the manifest", p, e.Name()))
		}
		delete(listed, e.Name())
	}
	for n := range listed {
		errs = append(errs, fmt.Errorf("%s lists %s, which is not in the folder", p, n))
	}
	return files, compacted, errors.Join(errs...)
}

// seqColumn is the column that carries a record's sequence number: the
// producer's seq, unique over a run (the last 8 hex digits of the
// clickstream event_id, the iot seq field).
func seqColumn(schema string) string {
	if schema == SchemaIoT {
		return "seq"
	}
	return "event_id"
}

// seqOf parses a record's sequence number from a value of seqColumn.
func seqOf(schema string, v parquet.Value) (int64, error) {
	if schema == SchemaIoT {
		return v.Int64(), nil
	}
	s := v.String()
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return 0, fmt.Errorf("event_id %q: no sequence number", s)
	}
	n, err := strconv.ParseUint(s[i+1:], 16, 32)
	if err != nil {
		return 0, fmt.Errorf("event_id %q: %w", s, err)
	}
	return int64(n), nil
}

// readOnce reads the sequence number of every row of every Parquet file in
// the lake and checks that each of the records 0..records-1 is there
// exactly once, and that the rows of a plain file are records of its
// partition (partitionOf; a compacted file holds several partitions). It
// returns the rows read.
func readOnce(root, schema string, records int64, partitionOf func(seq int64) int) (int64, error) {
	seen := make([]uint8, records)
	var rows int64
	var errs []error
	addErr := func(err error) {
		if len(errs) < 10 {
			errs = append(errs, err)
		}
	}
	err := walkParquet(root, func(path string, f *os.File, size int64) error {
		_, meta, err := partitioner.ReadFileInfo(f, size)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		pf, err := parquet.OpenFile(f, size)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		leaf, ok := pf.Schema().Lookup(seqColumn(schema))
		if !ok {
			return fmt.Errorf("%s: no column %s", path, seqColumn(schema))
		}
		vals := make([]parquet.Value, 1024)
		for _, rg := range pf.RowGroups() {
			r := parquet.NewColumnChunkValueReader(rg.ColumnChunks()[leaf.ColumnIndex])
			for {
				n, err := r.ReadValues(vals)
				for _, v := range vals[:n] {
					seq, err := seqOf(schema, v)
					switch {
					case err != nil:
						addErr(fmt.Errorf("%s: %w", path, err))
						continue
					case seq < 0 || seq >= records:
						addErr(fmt.Errorf("%s: record %d was never produced", path, seq))
						continue
					case meta.Sources == nil && partitionOf(seq) != meta.Partition:
						addErr(fmt.Errorf("%s: record %d of partition %d in a file of partition %d", path, seq, partitionOf(seq), meta.Partition))
					}
					if seen[seq] < 255 {
						seen[seq]++
					}
					rows++
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					_ = r.Close()
					return fmt.Errorf("%s: read %s: %w", path, seqColumn(schema), err)
				}
			}
			if err := r.Close(); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		return nil
	})
	if err != nil {
		return rows, err
	}
	missing, doubled := 0, 0
	for seq, n := range seen {
		switch {
		case n == 0:
			if missing == 0 {
				addErr(fmt.Errorf("record %d is not in the lake", seq))
			}
			missing++
		case n > 1:
			if doubled == 0 {
				addErr(fmt.Errorf("record %d is in the lake %d times", seq, n))
			}
			doubled++
		}
	}
	if missing > 0 || doubled > 0 {
		addErr(fmt.Errorf("reading the lake's rows: %d records missing, %d more than once", missing, doubled))
	}
	return rows, errors.Join(errs...)
}
