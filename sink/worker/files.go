package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lakesink/lakesink/partitioner"
)

// openFile is a data file being written for one hour of one partition.
type openFile struct {
	hour   time.Time // in the stream's location
	first  int64
	opened time.Time // wall clock (the tick's) when it was opened: files.max_file_age
	// records are the records filed into it, sampled ones included:
	// what progress reports as held in open files.
	records int64
	fw      *partitioner.FileWriter
	spool   string
	reg     *registryFile // avro, protobuf, json_schema (registry.go); else nil
	inf     *inferFile    // schema: infer streams (infer.go); else nil
}

// fileKey is an open file's key: its hour start, unix ms, and its family.
// Records of registry streams with derived columns whose writer schemas
// are incompatible (docs/formats.md) go to different files of one hour:
// families 0, 1, … in the order they opened, at most maxFamilies; other
// formats have family 0 only. The families of an hour are always 0..n-1:
// the hour's files finish together (Worker.finish).
type fileKey struct {
	hour int64
	fam  int
}

// maxFamilies bounds the files open at once for one hour. A record of a
// further incompatible family finishes the hour's files and starts over
// with family 0: rolls then, as without families, but memory stays bounded.
const maxFamilies = 4

// fileSet is a worker's open files by key, and the partition's folder on
// the spool disk that holds them. It opens files and forgets them;
// finishing one (upload, commit) is the worker's. It reports the spool
// disk's state to Env.Health. Not safe for concurrent use.
type fileSet struct {
	env       *Env // read at each use: SpoolDir, Health
	mem       *memShare
	topic     string
	partition int
	byKey     map[fileKey]*openFile
}

func newFileSet(env *Env, mem *memShare, topic string, partition int) *fileSet {
	return &fileSet{env: env, mem: mem, topic: topic, partition: partition, byKey: map[fileKey]*openFile{}}
}

// held returns the records in open files per hour start (unix ms), for
// progress reports; nil without open files.
func (s *fileSet) held() map[int64]int64 {
	var m map[int64]int64
	for k, f := range s.byKey {
		if m == nil {
			m = map[int64]int64{}
		}
		m[k.hour] += f.records
	}
	return m
}

// dir is the partition's spool folder.
func (s *fileSet) dir() string {
	return filepath.Join(s.env.SpoolDir, fmt.Sprintf("%s-%d", s.topic, s.partition))
}

// clean removes spool files left by an earlier owner of this partition in
// this process; their records are replayed. (Those of other processes are
// in their own folders: package spool.)
func (s *fileSet) clean() {
	_ = os.RemoveAll(s.dir())
}

// failed reports an error writing the spool disk and returns it.
func (s *fileSet) failed(err error) error {
	s.env.Health.Spool(err)
	return err
}

// schemaSource gives a new file its schema and per-format state (format).
type schemaSource interface {
	newFile(f *openFile) *partitioner.Schema
}

// open starts the spool file key of hour whose first record is at offset
// first, with the schema src gives it. Errors are the spool disk's,
// reported.
func (s *fileSet) open(key fileKey, hour time.Time, first int64, src schemaSource) (*openFile, error) {
	dir := s.dir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, s.failed(fmt.Errorf("spool dir %s: %w", dir, err))
	}
	of := &openFile{hour: hour, first: first, spool: filepath.Join(dir, fmt.Sprintf("%d-%020d.parquet", hour.Unix(), first))}
	schema := src.newFile(of)
	fw, err := s.newWriter(of.spool, schema)
	if err != nil {
		return nil, s.failed(fmt.Errorf("open spool file: %w", err))
	}
	s.env.Health.Spool(nil)
	of.fw = fw
	s.byKey[key] = of
	return of, nil
}

// newWriter opens a spool file of schema at path with the options this
// worker's memory share gives a file opened now (memShare.fileOptions):
// a new file, or one whose columns a sample just settled.
func (s *fileSet) newWriter(path string, schema *partitioner.Schema) (*partitioner.FileWriter, error) {
	return partitioner.NewFileWriter(path, schema, s.mem.fileOptions(schema, len(s.byKey)))
}

// hour returns how many files of hour hms are open (its families
// 0..n-1) and, when there are several, their first offsets in family
// order: the group they finish in (partitioner.MetaFileGroup).
func (s *fileSet) hour(hms int64) (n int, group []int64) {
	for s.byKey[fileKey{hms, n}] != nil {
		n++
	}
	if n > 1 {
		for fam := range n {
			group = append(group, s.byKey[fileKey{hms, fam}].first)
		}
	}
	return n, group
}
