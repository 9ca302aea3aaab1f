package completion

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/writers"
)

// ManifestVersion is the version of the _SUCCESS manifest format.
const ManifestVersion = 1

// Manifest is the content of an hour's _SUCCESS marker (docs/design.md,
// "Hour markers", documents the format). It lists exactly the data files of the hour.
type Manifest struct {
	Version int    `json:"version"`
	Stream  string `json:"stream"`
	Hour    string `json:"hour"` // start of the folder's first hour bucket, RFC 3339 in the stream's time zone
	// Ranges are the hour buckets rendered into the folder, oldest first:
	// one for almost every hour, two on the night clocks go back (both
	// 01:00 hours of America/New_York render to hour=01) or a half bucket
	// beside a full one in zones that shift by 30 minutes
	// (partitioner.FolderHours). The manifest covers all of them.
	Ranges      []HourRange    `json:"ranges"`
	Revision    int            `json:"revision"`
	CompletedAt string         `json:"completed_at"`
	Records     int64          `json:"records"`
	Files       []ManifestFile `json:"files"`
	// Table is the stream's Iceberg table, "namespace.name"; absent
	// without one. SnapshotID is the table's snapshot that made the hour
	// complete (revision 1: the one recording lakesink.complete-through;
	// later revisions: the current one, which references the late files),
	// and TablePartition the hour's partition value (hours since 1970).
	Table          string           `json:"table,omitempty"`
	SnapshotID     int64            `json:"snapshot_id,omitempty"`
	TablePartition map[string]int64 `json:"table_partition,omitempty"`
}

// HourRange is one hour bucket of a folder as a UTC interval [Start, End),
// RFC 3339.
type HourRange struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// ManifestFile is one data file of an hour.
type ManifestFile struct {
	Path         string `json:"path"` // key relative to the storage root
	Records      int64  `json:"records"`
	Bytes        int64  `json:"bytes"`
	Topic        string `json:"topic"`
	Partition    int    `json:"partition"`
	FirstOffset  int64  `json:"first_offset"`
	LastOffset   int64  `json:"last_offset"`
	MinEventTime string `json:"min_event_time"`
	MaxEventTime string `json:"max_event_time"`
	// Hour is the start of the file's hour bucket (its footer's
	// lakesink.hour, RFC 3339 in the stream's zone), given only when the
	// folder holds more than one bucket (len(Manifest.Ranges) > 1).
	Hour string `json:"hour,omitempty"`
	// SchemaIDs are the schema registry ids of the writer schemas of the
	// file's records, ascending (avro, protobuf and json_schema streams;
	// absent for json). A file holds several when producers of different
	// schema versions wrote to its partition-hour (docs/formats.md).
	SchemaIDs []int `json:"schema_ids,omitempty"`
	// SchemaID is the one id of SchemaIDs when there is exactly one, for
	// readers written before schema_ids; absent otherwise.
	SchemaID int `json:"schema_id,omitempty"`
	// Sources are, for a compacted file (docs/compaction.md), the files
	// merged into it: topic, partition, first and last offset and records
	// of each, in the order their rows are in the file unless sort_by
	// reordered them. A compacted file's entry has no topic, partition or
	// offsets of its own (MarshalJSON leaves them out); nil for a file
	// written by a worker.
	Sources []partitioner.Source `json:"sources,omitempty"`
	// Group is the first offsets of the files of its partition-hour that
	// finished together with this one (partitioner.MetaFileGroup: one per
	// writer schema family), itself included, ascending; nil for a file
	// that finished alone. Only the orphan rule uses it.
	Group []int64 `json:"-"`
	// Bucket is the start of the file's hour bucket (its footer's
	// lakesink.hour). Only the orphan rule uses it: files supersede each
	// other only within one bucket.
	Bucket time.Time `json:"-"`
	// Compat is the file's compatibility key (partitioner.CompatKey):
	// compaction merges only files with equal keys.
	Compat string `json:"-"`
}

// buildManifest lists the data files in a folder and reads each one's
// footer (lakesink writes its offsets, count, event-time range and hour
// bucket there), so that any instance can write the marker, not only the
// one that wrote the files. hours are the buckets rendered into the folder
// (partitioner.FolderHours), oldest first; the manifest covers all of them.
// It returns the manifest (listing the kept files), the orphans proven
// superseded and the unproven files (SplitOrphans).
func buildManifest(ctx context.Context, w writers.Writer, stream, folder string, hours []time.Time, loc *time.Location, revision int, now time.Time) (m Manifest, orphans, unproven []ManifestFile, err error) {
	m = Manifest{
		Version: ManifestVersion, Stream: stream, Hour: hours[0].Format(time.RFC3339),
		Revision: revision, CompletedAt: now.UTC().Format(time.RFC3339), Files: []ManifestFile{},
	}
	for _, h := range hours {
		m.Ranges = append(m.Ranges, HourRange{
			Start: h.UTC().Format(time.RFC3339),
			End:   partitioner.NextHour(h, loc).UTC().Format(time.RFC3339),
		})
	}
	objs, err := w.List(ctx, folder+"/")
	if err != nil {
		return m, nil, nil, fmt.Errorf("list %s: %w", folder, err)
	}
	var files []ManifestFile
	for _, o := range objs {
		name := o.Key[len(folder)+1:]
		if strings.Contains(name, "/") || !strings.HasSuffix(name, ".parquet") {
			continue
		}
		topic, partition, first, ok := partitioner.ParseFileName(name)
		compacted := !ok && partitioner.ParseCompactedFileName(name)
		if !ok && !compacted {
			continue
		}
		info, meta, err := partitioner.ReadFileInfo(writers.ReaderAt(ctx, w, o.Key), o.Size)
		if err != nil {
			return m, nil, nil, fmt.Errorf("read footer of %s: %w", o.Key, err)
		}
		if compacted != (meta.Sources != nil) {
			return m, nil, nil, fmt.Errorf("read footer of %s: the name and the footer disagree on whether it is a compacted file", o.Key)
		}
		f := ManifestFile{
			Path: o.Key, Records: info.Records, Bytes: o.Size, Topic: topic, Partition: partition,
			FirstOffset: first, LastOffset: info.LastOffset,
			MinEventTime: info.MinEventTime.UTC().Format(time.RFC3339Nano),
			MaxEventTime: info.MaxEventTime.UTC().Format(time.RFC3339Nano),
			Group:        partitioner.FileGroup(meta),
			Bucket:       meta.Hour,
			Sources:      meta.Sources,
			Compat:       partitioner.CompatKey(meta),
		}
		if len(hours) > 1 {
			f.Hour = meta.Hour.In(loc).Format(time.RFC3339)
		}
		if f.SchemaIDs = partitioner.SchemaIDs(meta); len(f.SchemaIDs) == 1 {
			f.SchemaID = f.SchemaIDs[0]
		}
		files = append(files, f)
	}
	m.Files, orphans, unproven = SplitOrphans(files)
	if m.Files == nil {
		m.Files = []ManifestFile{}
	}
	for _, f := range m.Files {
		m.Records += f.Records
	}
	return m, orphans, unproven, nil
}

// SplitOrphans separates the data files of one folder into the ones that
// belong in the manifest (kept), the ones proven superseded that may be
// deleted (orphans), and the rest (unproven): files that no manifest may
// list, because they overlap kept files, and that nothing proves redundant.
// An unproven file is never deleted: it blocks the folder's marker and is
// reported (docs/design.md, "Orphans").
//
// It works on units: a file that finished alone, or a group of files that
// finished together (ManifestFile.Group: the files of an hour's writer
// schema families, whose offset ranges overlap). A unit starts at its
// smallest first offset and ends at its largest last offset. A group is a
// unit only if every file it names is there and names the same group;
// otherwise each of its files is a candidate on its own — a group of a
// crashed attempt cut short in its upload, or one some of whose files a
// replay overwrote.
//
// Everything is decided per bucket: topic, partition and hour bucket
// (ManifestFile.Bucket, the instant the file's footer names, not its
// folder). Two buckets rendered into one folder (the two 01:00 hours of a
// fall-back night) interleave in offsets and never supersede each other.
//
// Per bucket, in order of first offset (longest first on a tie), a unit
// that starts after the last offset of every unit kept before it is kept;
// any other is a candidate. A candidate is an orphan only with a proof:
// its first and its last offset each lie within a kept unit of the same
// bucket. Why that suffices: a file holds every record its attempt filed
// under its bucket between its first and last offset (one open file per
// bucket and family; a group holds all families). The candidate's first and
// last records are records of the bucket that kept units hold too; the
// attempt that wrote the kept units read every offset between them and
// filed each record of the bucket into a kept unit. So every record of the
// candidate is in a kept unit, and deleting it loses nothing.
//
// Compacted files (docs/compaction.md) come first (keepCompacted): each
// of their sources is a kept unit before any plain unit is looked at, so
// the inputs a compaction merged, when still there, are candidates proven
// by the compacted file, and a compacted file is never deleted.
//
// A committed file is never a candidate in a consistent lake: every unit
// uploaded before a commit belongs to the committed history, and replayed
// records of its bucket start above its last offset. A file that is a
// candidate without a proof — records that perhaps no kept file holds —
// stays where it is.
func SplitOrphans(files []ManifestFile) (kept, orphans, unproven []ManifestFile) {
	type unit struct {
		key         bucketKey
		first, last int64
		files       []ManifestFile
	}
	keyOf := func(f ManifestFile) bucketKey {
		return bucketKey{f.Topic, f.Partition, f.Bucket.Unix()} // bucket starts are whole seconds
	}
	// Compacted files first: each source is a unit of its bucket that the
	// compacted file holds whole, kept before any plain unit.
	keptUnits, kept, unproven := keepCompacted(files)
	plain := slices.DeleteFunc(slices.Clone(files), func(f ManifestFile) bool { return f.Sources != nil })
	files = plain
	byName := map[bucketKey]map[int64]ManifestFile{}
	for _, f := range files {
		k := keyOf(f)
		if byName[k] == nil {
			byName[k] = map[int64]ManifestFile{}
		}
		byName[k][f.FirstOffset] = f
	}
	var units, loose []unit
	inUnit := map[string]bool{}
	for _, f := range files {
		k := keyOf(f)
		if len(f.Group) <= 1 {
			units = append(units, unit{k, f.FirstOffset, f.LastOffset, []ManifestFile{f}})
			inUnit[f.Path] = true
			continue
		}
		if f.FirstOffset != f.Group[0] {
			continue // its group is the unit of the file its group starts with
		}
		u := unit{key: k, first: f.FirstOffset, last: f.LastOffset}
		for _, o := range f.Group {
			m, ok := byName[k][o]
			if !ok || !slices.Equal(m.Group, f.Group) {
				u.files = nil
				break
			}
			u.files = append(u.files, m)
			u.last = max(u.last, m.LastOffset)
		}
		if u.files != nil {
			units = append(units, u)
			for _, m := range u.files {
				inUnit[m.Path] = true
			}
		}
	}
	for _, f := range files {
		if !inUnit[f.Path] {
			// A file of a broken group: a candidate on its own.
			loose = append(loose, unit{keyOf(f), f.FirstOffset, f.LastOffset, []ManifestFile{f}})
		}
	}
	sort.Slice(units, func(i, j int) bool {
		a, b := units[i], units[j]
		if a.key != b.key {
			return a.key.less(b.key)
		}
		if a.first != b.first {
			return a.first < b.first
		}
		return a.last > b.last
	})
	candidates := loose
	for _, u := range units {
		ks := keptUnits[u.key]
		// The first kept unit ending at or after u's start overlaps u
		// when it starts at or before u's end. Without compacted files
		// units come in ascending order and this is the last kept one.
		i := sort.Search(len(ks), func(i int) bool { return ks[i].last >= u.first })
		if i < len(ks) && ks[i].first <= u.last {
			candidates = append(candidates, u)
			continue
		}
		keptUnits[u.key] = slices.Insert(ks, i, span{u.first, u.last})
		kept = append(kept, u.files...)
	}
	within := func(k bucketKey, o int64) bool {
		ks := keptUnits[k]
		i := sort.Search(len(ks), func(i int) bool { return ks[i].last >= o })
		return i < len(ks) && ks[i].first <= o
	}
	for _, c := range candidates {
		if within(c.key, c.first) && within(c.key, c.last) {
			orphans = append(orphans, c.files...)
		} else {
			unproven = append(unproven, c.files...)
		}
	}
	byPath := func(fs []ManifestFile) {
		sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path })
	}
	byPath(kept)
	byPath(orphans)
	byPath(unproven)
	return kept, orphans, unproven
}

// bucketKey is one topic-partition's hour bucket (start, unix seconds).
type bucketKey struct {
	topic     string
	partition int
	bucket    int64
}

// less orders bucket keys by topic, partition and bucket.
func (k bucketKey) less(o bucketKey) bool {
	if k.topic != o.topic {
		return k.topic < o.topic
	}
	if k.partition != o.partition {
		return k.partition < o.partition
	}
	return k.bucket < o.bucket
}

// span is a kept unit's offsets, first to last.
type span struct{ first, last int64 }

// keepCompacted is SplitOrphans' rule for compacted files: every source of
// a compacted file is a unit of its bucket (topic, partition, the file's
// hour bucket) that the file holds whole, its offsets first to last; the
// units of all compacted files are kept — a compacted file is never an
// orphan, a revision may list it — unless two of them overlap, which no
// compaction makes (one plan per folder, its outputs disjoint): then
// every compacted file involved is unproven and nothing is deleted on
// its account. It returns the kept units per bucket (ascending and
// disjoint), the kept compacted files and the unproven ones.
//
// Why a source unit proves what a worker's unit proves: the compaction
// merged whole input files, each a kept unit of its bucket when the plan
// was made, and the compacted file holds each input's records (its
// footer's record count is the sum of its sources', checked when the
// footer is read). So a plain file whose first and last offsets lie
// within a source unit holds records the compacted file holds too — the
// input itself, left behind by a compaction cut short, or a crashed
// attempt's copy of part of it.
func keepCompacted(files []ManifestFile) (units map[bucketKey][]span, kept, unproven []ManifestFile) {
	type vunit struct {
		key bucketKey
		span
		owner int // index into files
	}
	var vs []vunit
	for i, f := range files {
		for _, s := range f.Sources {
			vs = append(vs, vunit{bucketKey{s.Topic, s.Partition, f.Bucket.Unix()}, span{s.FirstOffset, s.LastOffset}, i})
		}
	}
	sort.Slice(vs, func(i, j int) bool {
		a, b := vs[i], vs[j]
		if a.key != b.key {
			return a.key.less(b.key)
		}
		return a.first < b.first
	})
	bad := map[int]bool{}
	for i := 1; i < len(vs); i++ {
		if p := vs[i-1]; p.key == vs[i].key && vs[i].first <= p.last {
			bad[p.owner], bad[vs[i].owner] = true, true
		}
	}
	units = map[bucketKey][]span{}
	for _, v := range vs {
		if !bad[v.owner] {
			units[v.key] = append(units[v.key], v.span) // ascending: vs is sorted
		}
	}
	for i, f := range files {
		switch {
		case f.Sources == nil:
		case bad[i]:
			unproven = append(unproven, f)
		default:
			kept = append(kept, f)
		}
	}
	return units, kept, unproven
}

// Encode renders the manifest as indented JSON with a trailing newline.
func (m Manifest) Encode() []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // plain data
	}
	return append(b, '\n')
}

// DecodeManifest decodes the content of an hour's _SUCCESS marker or of
// one of its revision objects (the JSON Manifest.Encode writes). It is the
// one decoder of the format: the finalizer reads its revisions with it,
// the status page (sink/ops) and lakesink audit (sink/audit) the hours'
// markers. It checks the JSON only,
// not the version or what the manifest lists. On an error the fields
// decoded before it are set.
func DecodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	err := json.Unmarshal(b, &m)
	return m, err
}

// Lists reports whether m lists the file of topic/partition starting at first.
// A file merged into a compacted file counts as listed: the compacted
// file's sources name it.
func (m Manifest) Lists(topic string, partition int, first int64) bool {
	for _, f := range m.Files {
		if f.Sources == nil && f.Topic == topic && f.Partition == partition && f.FirstOffset == first {
			return true
		}
		for _, s := range f.Sources {
			if s.Topic == topic && s.Partition == partition && s.FirstOffset == first {
				return true
			}
		}
	}
	return false
}

// MarshalJSON renders a file's entry: a compacted file's without topic,
// partition and offsets (its sources say where its records come from).
func (f ManifestFile) MarshalJSON() ([]byte, error) {
	type plain ManifestFile // without the method
	if f.Sources == nil {
		return json.Marshal(plain(f))
	}
	return json.Marshal(struct {
		Path         string               `json:"path"`
		Records      int64                `json:"records"`
		Bytes        int64                `json:"bytes"`
		MinEventTime string               `json:"min_event_time"`
		MaxEventTime string               `json:"max_event_time"`
		Hour         string               `json:"hour,omitempty"`
		SchemaIDs    []int                `json:"schema_ids,omitempty"`
		SchemaID     int                  `json:"schema_id,omitempty"`
		Sources      []partitioner.Source `json:"sources"`
	}{f.Path, f.Records, f.Bytes, f.MinEventTime, f.MaxEventTime, f.Hour, f.SchemaIDs, f.SchemaID, f.Sources})
}

// sameFiles reports whether a and b list the same data files.
func sameFiles(a, b Manifest) bool {
	if len(a.Files) != len(b.Files) {
		return false
	}
	for i := range a.Files {
		if a.Files[i].Path != b.Files[i].Path || a.Files[i].LastOffset != b.Files[i].LastOffset {
			return false
		}
	}
	return true
}
