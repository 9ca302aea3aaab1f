package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

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
}

// lakeCounts walks a local lake and reads every Parquet file's footer.
func lakeCounts(root string) (st lakeStats, err error) {
	st.perPartition = map[int]int64{}
	perBucket := map[string]int{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == root {
				return nil // nothing written at all; the counts say so
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
		info, meta, err := partitioner.ReadFileInfo(f, fi.Size())
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		st.files++
		st.records += info.Records
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
// from on, then checks that the manifests' record counts per partition equal
// the produced ones and that every listed file exists. It returns the
// records the manifests list.
func waitManifests(ctx context.Context, lake, stream string, from time.Time, hours int, want map[int]int64, exited <-chan struct{}) (int64, error) {
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
			case <-time.After(250 * time.Millisecond):
			}
		}
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
			got[f.Partition] += f.Records
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
	} `json:"files"`
}
