package completion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/writers"
)

// Compaction of completed hours (docs/compaction.md).
//
// Once every bucket of a folder is complete, and before its first marker,
// the folder's small files (below half of target_file_bytes) are merged
// into few large ones, the merged inputs removed, and only then is the
// marker written: from the marker on, the folder holds exactly the files
// its manifest lists. The steps, each safe to repeat and to take over
// from an instance that died in the middle:
//
//  1. Plan. The first instance to get there lists the settled folder,
//     chooses the bins (partitioner.PlanCompaction: whole input files,
//     per bucket and schema) and writes the plan next to the folder's
//     marker revisions with create-if-absent: one plan per folder, which
//     every instance then follows. So only one set of compacted files is
//     ever made for a folder, whoever makes them, and the compacted files
//     of one folder never overlap.
//  2. Merge. For each output the plan names: unless the output is in the
//     folder already, its inputs are copied to the spool disk, merged
//     (partitioner.Compact) and the result uploaded under the plan's
//     deterministic name with create-if-absent.
//  3. Table. A table stream swaps the inputs for the output in one
//     snapshot (Table.Replace), before any input is removed: the table
//     never references a file that is gone.
//  4. Remove the inputs. Only now, with the output durable in the lake (and
//     in the table), and its footer naming every input as a source: the
//     proof that deleting them loses nothing (SplitOrphans would delete
//     them on the same proof; keepCompacted explains it).
//
// A late file that arrives meanwhile is not in the plan: it stays as it
// is and the manifest lists it (revision 1 when it is there in time, the
// next revision otherwise). Later revisions are not compacted again.
//
// What cannot be carried out: an output missing while one of its inputs is
// gone — no step deletes an input before its output exists, so only a
// hand in the lake gets there. Then the folder's marker waits, and the
// error names the plan (the finalizer's faults report it).

// Compaction is a stream's compaction settings as the finalizer uses them.
type Compaction struct {
	// TargetBytes is streams[].compaction.target_file_bytes; MinFiles
	// min_files; SortBy sort_by.
	TargetBytes int64
	MinFiles    int
	SortBy      []string
	// File configures the compacted files as the stream's own (files.*).
	File partitioner.FileOptions
	// MemoryLimit bounds one merge's buffers and sort runs.
	MemoryLimit int64
	// SpoolDir is where inputs are copied and merged files built; each
	// merge works in its own temporary folder under it, removed after.
	SpoolDir string
}

// compactionPlan is the plan object of a folder:
// _lakesink/markers/<stream>/<hour>/compaction.json (markerStore).
type compactionPlan struct {
	Version int          `json:"version"`
	Stream  string       `json:"stream"`
	Folder  string       `json:"folder"`
	Outputs []planOutput `json:"outputs"`
}

// planOutput is one compacted file of a plan: its key, bucket and inputs,
// in row order.
type planOutput struct {
	Key    string      `json:"key"`
	Bucket time.Time   `json:"bucket"`
	Inputs []planInput `json:"inputs"`
}

// planInput is an input of a compacted file as the plan saw it: its key
// and sources (the one source of a worker's file, the sources of a
// compacted one).
type planInput struct {
	Key     string               `json:"key"`
	Sources []partitioner.Source `json:"sources"`
}

// sources are the sources the output's footer lists: its inputs', in order.
func (o planOutput) sources() []partitioner.Source {
	var s []partitioner.Source
	for _, in := range o.Inputs {
		s = append(s, in.Sources...)
	}
	return s
}

// keys are the output's input keys.
func (o planOutput) keys() []string {
	k := make([]string, len(o.Inputs))
	for i, in := range o.Inputs {
		k[i] = in.Key
	}
	return k
}

const planVersion = 1

// CompactionPlanName is the name of a folder's compaction plan object in
// the marker directory of the folder's first hour,
// _lakesink/markers/<stream>/<hour UTC>/, beside its marker revisions.
const CompactionPlanName = "compaction.json"

func (s markerStore) planKey(hour time.Time) string { return s.dir(hour) + CompactionPlanName }

// PlannedOutput is one compacted file of a folder's compaction plan as
// readers other than the finalizer see it: the key of the output and its
// inputs, in row order.
type PlannedOutput struct {
	Key    string
	Inputs []PlannedInput
}

// PlannedInput is an input of a PlannedOutput: its key and the sources it
// held when the plan was made (the one source of a worker's file).
type PlannedInput struct {
	Key     string
	Sources []partitioner.Source
}

// DecodeCompactionPlan decodes a compaction plan object and returns the
// folder it is for and its outputs. It is the one decoder of the format
// besides the finalizer's own (lakesink audit reads plans with it, to tell
// a compaction a hand cut short: an output missing while its inputs are
// gone). It checks the JSON and the version, not what the plan names.
func DecodeCompactionPlan(b []byte) (folder string, outputs []PlannedOutput, err error) {
	p, err := decodePlan(b)
	if err != nil {
		return "", nil, err
	}
	for _, o := range p.Outputs {
		out := PlannedOutput{Key: o.Key}
		for _, in := range o.Inputs {
			out.Inputs = append(out.Inputs, PlannedInput(in))
		}
		outputs = append(outputs, out)
	}
	return p.Folder, outputs, nil
}

// decodePlan decodes a plan object and checks its version.
func decodePlan(b []byte) (compactionPlan, error) {
	var p compactionPlan
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode compaction plan: %w", err)
	}
	if p.Version != planVersion {
		return p, fmt.Errorf("compaction plan version %d, want %d", p.Version, planVersion)
	}
	return p, nil
}

// compact carries out the compaction plan of a folder holding the
// buckets hours, making one first when there is none. It is called before
// revision 1 is built, every bucket of the folder being complete.
// Idempotent; safe to run on several instances at once.
func (f *Finalizer) compact(ctx context.Context, st *Stream, folder string, hours []time.Time) error {
	ms := markerStore{w: f.o.Writer, stream: st.Name}
	key := ms.planKey(hours[0])
	plan, found, err := f.readPlan(ctx, key)
	if err != nil {
		return err
	}
	won := false
	if !found {
		m, _, unproven, err := buildManifest(ctx, f.o.Writer, st.Name, folder, hours, st.Loc, 1, f.o.Now())
		if err != nil || len(unproven) > 0 {
			return err // unproven files: settleFolder reports them
		}
		if plan = f.planFolder(st, folder, m); len(plan.Outputs) == 0 {
			return nil
		}
		b, err := json.MarshalIndent(plan, "", "  ")
		if err != nil {
			return fmt.Errorf("encode compaction plan: %w", err)
		}
		switch err := f.o.Writer.PutIfAbsent(ctx, key, bytes.NewReader(b), int64(len(b))); {
		case errors.Is(err, writers.ErrExists):
			if plan, _, err = f.readPlan(ctx, key); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("put %s: %w", key, err)
		default:
			won = true
		}
	}
	start := f.o.Now()
	objs, err := f.o.Writer.List(ctx, folder+"/")
	if err != nil {
		return fmt.Errorf("list %s: %w", folder, err)
	}
	sizes := make(map[string]int64, len(objs))
	for _, o := range objs {
		sizes[o.Key] = o.Size
	}
	for _, out := range plan.Outputs {
		if err := f.compactOutput(ctx, st, key, out, sizes); err != nil {
			return err
		}
	}
	if won {
		mt := f.o.Metrics
		mt.HoursCompacted.WithLabelValues(st.Name).Inc()
		mt.CompactionDuration.WithLabelValues(st.Name).Observe(max(f.o.Now().Sub(start).Seconds(), 0))
		f.o.Log.Info("hour compacted", "stream", st.Name, "folder", folder, "outputs", len(plan.Outputs),
			"seconds", f.o.Now().Sub(start).Seconds())
	}
	return nil
}

// readPlan reads the plan object at key; found is false without one.
func (f *Finalizer) readPlan(ctx context.Context, key string) (p compactionPlan, found bool, err error) {
	rc, err := f.o.Writer.Get(ctx, key)
	if errors.Is(err, writers.ErrNotFound) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return p, false, fmt.Errorf("read %s: %w", key, err)
	}
	if p, err = decodePlan(b); err != nil {
		return p, false, fmt.Errorf("%s: %w", key, err)
	}
	return p, true, nil
}

// planFolder chooses the compacted files of a settled folder whose
// manifest is m: its small files, per bucket and schema, packed whole into
// files of about the target size (partitioner.PlanCompaction).
func (f *Finalizer) planFolder(st *Stream, folder string, m Manifest) compactionPlan {
	c := st.Compaction
	plan := compactionPlan{Version: planVersion, Stream: st.Name, Folder: folder}
	files := slices.Clone(m.Files)
	// Row order in a compacted file: bucket, topic, partition, offsets.
	slices.SortStableFunc(files, func(a, b ManifestFile) int {
		if d := a.Bucket.Compare(b.Bucket); d != 0 {
			return d
		}
		ka, kb := sourcesOf(a)[0], sourcesOf(b)[0]
		if ka.Topic != kb.Topic {
			if ka.Topic < kb.Topic {
				return -1
			}
			return 1
		}
		if ka.Partition != kb.Partition {
			return ka.Partition - kb.Partition
		}
		return int(min(max(ka.FirstOffset-kb.FirstOffset, -1), 1))
	})
	var cands []partitioner.CompactCandidate
	var idx []int
	for i, mf := range files {
		if mf.Bytes >= c.TargetBytes/2 {
			continue // near the target already: stays as it is
		}
		cands = append(cands, partitioner.CompactCandidate{Bytes: mf.Bytes, Key: mf.Path, Hour: mf.Bucket, Group: mf.Compat})
		idx = append(idx, i)
	}
	for _, bin := range partitioner.PlanCompaction(cands, c.TargetBytes, c.MinFiles) {
		out := planOutput{Bucket: files[idx[bin[0]]].Bucket}
		for _, j := range bin {
			mf := files[idx[j]]
			out.Inputs = append(out.Inputs, planInput{Key: mf.Path, Sources: sourcesOf(mf)})
		}
		out.Key = folder + "/" + partitioner.CompactedFileName(out.sources())
		plan.Outputs = append(plan.Outputs, out)
	}
	return plan
}

// sourcesOf returns the sources of a manifest entry: a compacted file's
// own, or the one source a plain file is.
func sourcesOf(mf ManifestFile) []partitioner.Source {
	if mf.Sources != nil {
		return mf.Sources
	}
	return []partitioner.Source{{Topic: mf.Topic, Partition: mf.Partition, FirstOffset: mf.FirstOffset,
		LastOffset: mf.LastOffset, Records: mf.Records}}
}

// compactOutput makes out durable (merge and upload unless it is in the
// folder, whose objects and sizes are sizes), swaps it into the table and
// removes its inputs: steps 2 to 4 of the package comment on compaction.
func (f *Finalizer) compactOutput(ctx context.Context, st *Stream, planKey string, out planOutput, sizes map[string]int64) error {
	c, w := st.Compaction, f.o.Writer
	if err := os.MkdirAll(c.SpoolDir, 0o750); err != nil {
		return fmt.Errorf("compaction spool: %w", err)
	}
	dir, err := os.MkdirTemp(c.SpoolDir, "compact-")
	if err != nil {
		return fmt.Errorf("compaction spool: %w", err)
	}
	defer os.RemoveAll(dir)
	spool := ""
	outBytes, made := sizes[out.Key]
	if !made {
		var ins []partitioner.CompactInput
		var inBytes int64
		for i, pin := range out.Inputs {
			in := pin.Key
			if _, ok := sizes[in]; !ok {
				return fmt.Errorf("compaction plan %s: input %s is gone but its output %s was never written; the folder's marker waits (docs/compaction.md)", planKey, in, out.Key)
			}
			local := filepath.Join(dir, fmt.Sprintf("in-%06d.parquet", i))
			if err := download(ctx, w, in, local); err != nil {
				return err
			}
			fh, err := os.Open(local)
			if err != nil {
				return fmt.Errorf("open %s: %w", local, err)
			}
			defer fh.Close()
			fi, err := fh.Stat()
			if err != nil {
				return fmt.Errorf("stat %s: %w", local, err)
			}
			size := fi.Size()
			info, meta, err := partitioner.ReadFileInfo(fh, size)
			if err != nil {
				return fmt.Errorf("read footer of %s: %w", in, err)
			}
			ins = append(ins, partitioner.CompactInput{Key: in, R: fh, Size: size, Info: info, Meta: meta})
			inBytes += size
		}
		path, info, meta, err := partitioner.Compact(ctx, ins, partitioner.CompactOptions{
			Stream: st.Name, Hour: out.Bucket, File: c.File, SortBy: c.SortBy,
			MemoryLimit: c.MemoryLimit, SpoolDir: dir,
		})
		if err != nil {
			return fmt.Errorf("compact %s: %w", out.Key, err)
		}
		if !slices.Equal(meta.Sources, out.sources()) {
			return fmt.Errorf("compact %s: the merged file's sources differ from the plan's (an input changed since the plan)", out.Key)
		}
		if err := putFile(ctx, w, out.Key, path, info.Bytes); err != nil {
			return err
		}
		spool, outBytes = path, info.Bytes
		mt := f.o.Metrics
		mt.CompactedFilesIn.WithLabelValues(st.Name).Add(float64(len(out.Inputs)))
		mt.CompactedBytesIn.WithLabelValues(st.Name).Add(float64(inBytes))
		mt.CompactedFilesOut.WithLabelValues(st.Name).Inc()
		mt.CompactedBytesOut.WithLabelValues(st.Name).Add(float64(info.Bytes))
		f.o.Log.Info("files compacted", "stream", st.Name, "key", out.Key, "inputs", len(out.Inputs),
			"records", info.Records, "bytes_in", inBytes, "bytes", info.Bytes)
	}
	if st.Table != nil {
		if spool == "" {
			// Made by another instance (or this one before a crash): the
			// table's data file is built from a local copy.
			spool = filepath.Join(dir, "out.parquet")
			if err := download(ctx, w, out.Key, spool); err != nil {
				return err
			}
		}
		if _, err := st.Table.ReplaceFiles(ctx, out.keys(), spool, out.Key); err != nil {
			return fmt.Errorf("replace files of %s in the table: %w", out.Key, err)
		}
	}
	// The proof for the deletes: the output in the lake names the plan's
	// sources, and each input still is the file the plan merged (a replay
	// may have written a file of the same name, cut elsewhere: that one
	// stays, and SplitOrphans decides about it).
	_, meta, err := partitioner.ReadFileInfo(writers.ReaderAt(ctx, w, out.Key), outBytes)
	if err != nil {
		return fmt.Errorf("read footer of %s: %w", out.Key, err)
	}
	if !slices.Equal(meta.Sources, out.sources()) {
		return fmt.Errorf("compaction plan %s: %s in the lake lists other sources than the plan; its inputs stay", planKey, out.Key)
	}
	for _, pin := range out.Inputs {
		in := pin.Key
		obj, err := w.Stat(ctx, in)
		if errors.Is(err, writers.ErrNotFound) {
			continue // removed already
		}
		if err != nil {
			return fmt.Errorf("stat %s: %w", in, err)
		}
		info, meta, err := partitioner.ReadFileInfo(writers.ReaderAt(ctx, w, in), obj.Size)
		if err != nil {
			return fmt.Errorf("read footer of %s: %w", in, err)
		}
		src := sourcesOf(ManifestFile{Topic: meta.Topic, Partition: meta.Partition, FirstOffset: info.FirstOffset,
			LastOffset: info.LastOffset, Records: info.Records, Sources: meta.Sources})
		if !slices.Equal(src, pin.Sources) {
			f.o.Log.Warn("compacted input changed since the plan; kept", "key", in, "plan", planKey)
			continue
		}
		if err := w.Delete(ctx, in); err != nil {
			return fmt.Errorf("delete compacted input %s: %w", in, err)
		}
	}
	return nil
}

// download copies the object at key to the local file path.
func download(ctx context.Context, w writers.Writer, key, path string) error {
	rc, err := w.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := io.Copy(fh, rc); err != nil {
		fh.Close()
		return fmt.Errorf("get %s: %w", key, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// putFile uploads the local file path (size bytes) to key, create-if-
// absent: another instance following the same plan may have uploaded the
// same output first, which is then kept as it is.
func putFile(ctx context.Context, w writers.Writer, key, path string, size int64) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer fh.Close()
	if err := w.PutIfAbsent(ctx, key, fh, size); err != nil && !errors.Is(err, writers.ErrExists) {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}
