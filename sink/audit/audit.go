// Package audit checks a stream's lake, and its Iceberg table when it has
// one, against the guarantees of docs/design.md over a range of hours:
// every data file of a marked hour folder is in its manifest and nothing
// else is, no offset of a partition is in two listed files, the table
// references exactly the manifests' files once each, and every hour past
// its lateness has its marker. It is what `lakesink audit` runs
// (docs/operations.md, "Auditing a lake").
//
// Compacted files (docs/compaction.md) are data files like any other: a
// manifest must list them, with their footer's sources, and each source
// is a unit of its partition and bucket in the offset check, so a merged
// input that is still listed beside its compacted file counts twice.
//
// Contract: an audit is read-only. It lists folders, reads manifests, the
// finalizer's cursor, marker revision names, compaction plans and the
// footers of data files (ranged reads), and reads the table's current snapshot; it never writes,
// moves or deletes an object, and never commits to a table. So it is safe
// to run at any time against a lake a sink is writing, at the price of
// reporting what is in flight at that moment: a late file uploaded but not
// yet in a manifest revision shows as an unlisted file until the finalizer
// publishes the next revision.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/writers"
)

// Kind names what a finding is about.
type Kind string

// The kinds of finding. Each one is a broken guarantee, or (MarkerPending)
// a sink that is behind.
const (
	// UnlistedFile: a data file in a folder whose manifest does not list it.
	UnlistedFile Kind = "unlisted_file"
	// MissingFile: a manifest lists a file that is not in the lake.
	MissingFile Kind = "missing_file"
	// ListedTwice: a file listed twice by one manifest or by two.
	ListedTwice Kind = "listed_twice"
	// OverlappingOffsets: two listed files (or file groups) of one topic,
	// partition and hour bucket whose offset ranges overlap: the same
	// record twice.
	OverlappingOffsets Kind = "overlapping_offsets"
	// ManifestMismatch: a manifest's entry of a file disagrees with the
	// file's name or footer (offsets, records, bytes, event times, schema
	// ids, topic, partition, bucket, a compacted file's sources).
	ManifestMismatch Kind = "manifest_mismatch"
	// BadManifest: a _SUCCESS that does not decode, belongs to another
	// stream or hour, or names a key outside its folder.
	BadManifest Kind = "bad_manifest"
	// BadFile: a listed data file whose footer cannot be read.
	BadFile Kind = "bad_file"
	// TableFileUnlisted: the table references a file of a marked folder
	// that no manifest lists.
	TableFileUnlisted Kind = "table_file_unlisted"
	// TableFileTwice: the table references a file more than once.
	TableFileTwice Kind = "table_file_twice"
	// TableFileMissing: a manifest lists a file the table does not
	// reference.
	TableFileMissing Kind = "table_file_missing"
	// MarkerPending: a folder past its lateness without a marker, at or
	// after the finalizer's cursor: the sink is behind (stopped, stuck, a
	// partition not caught up).
	MarkerPending Kind = "marker_pending"
	// MarkerMissing: a folder without a marker before the finalizer's
	// cursor, which the finalizer passed only after writing it: it was
	// deleted.
	MarkerMissing Kind = "marker_missing"
	// CompactionOutputMissing: a folder's compaction plan names an output
	// that is neither in the lake nor listed by a manifest while one of its
	// inputs is gone and no listed file holds that input's sources: its
	// records are lost. No step of a compaction deletes an input before its
	// output is in the lake, so a hand got there (docs/compaction.md).
	CompactionOutputMissing Kind = "compaction_output_missing"
)

// Finding is one thing wrong.
type Finding struct {
	Stream string `json:"stream"`
	Kind   Kind   `json:"kind"`
	// Hour is the start of the first hour bucket of the folder, RFC 3339
	// in the stream's zone (the manifest's hour).
	Hour string `json:"hour,omitempty"`
	// Key is the object concerned: a data file, or the folder's _SUCCESS.
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

// StreamSummary is what was looked at of one stream.
type StreamSummary struct {
	Name    string `json:"name"`
	Folders int    `json:"folders"` // hour folders in the range
	Marked  int    `json:"marked"`  // of them with a _SUCCESS
	Files   int    `json:"files"`   // data files the manifests list
	Records int64  `json:"records"` // records the manifests list
	Table   string `json:"table,omitempty"`
	// TableFiles is how many references to files of the range's folders
	// the table's current snapshot holds.
	TableFiles int `json:"table_files,omitempty"`
}

// Report is the result of an audit.
type Report struct {
	From     string          `json:"from"` // RFC 3339, UTC
	To       string          `json:"to"`
	Streams  []StreamSummary `json:"streams"`
	Findings []Finding       `json:"findings"`
}

// Clean reports whether the audit found nothing.
func (r Report) Clean() bool { return len(r.Findings) == 0 }

// Stream is what the audit needs of a configured stream.
type Stream struct {
	Name     string
	Loc      *time.Location // hours are cut in this zone
	Lateness time.Duration  // allowed_lateness
	Path     *partitioner.PathTemplate
	// Table is the stream's Iceberg table; nil without one.
	Table Table
}

// Table is a stream's Iceberg table as the audit reads it
// (tables.Reader implements it).
type Table interface {
	// Ident is "namespace.name".
	Ident() string
	// Location returns the URL under which the table references lake key.
	Location(key string) string
	// DataFiles returns the location of every data file the current
	// snapshot references, once per reference.
	DataFiles(ctx context.Context) ([]string, error)
}

// Options are an audit's inputs.
type Options struct {
	// Writer is the lake; only its read methods are called.
	Writer  writers.Writer
	Streams []Stream
	// From and To bound the audit: every folder with an hour bucket that
	// starts before To and ends after From.
	From, To time.Time
	// Now is the wall clock that decides which hours are past their
	// lateness.
	Now time.Time
	Log *slog.Logger
}

// Run audits each stream of o and returns the report. An error means the
// lake or a table could not be read (listing, reading an object, the
// catalog): the audit is then incomplete and no report is returned. What is
// wrong in the lake itself, including undecodable manifests and footers, is
// a finding.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	r := Report{From: o.From.UTC().Format(time.RFC3339), To: o.To.UTC().Format(time.RFC3339), Streams: []StreamSummary{}, Findings: []Finding{}}
	for _, st := range o.Streams {
		a := &streamAudit{o: o, st: st, sum: StreamSummary{Name: st.Name}}
		if err := a.run(ctx); err != nil {
			return Report{}, fmt.Errorf("stream %s: %w", st.Name, err)
		}
		sortFindings(a.findings)
		r.Streams = append(r.Streams, a.sum)
		r.Findings = append(r.Findings, a.findings...)
		o.Log.Debug("audited stream", "stream", st.Name, "folders", a.sum.Folders, "findings", len(a.findings))
	}
	return r, nil
}

// folder is one hour folder of the range.
type folder struct {
	key     string      // rendered folder, no trailing '/'
	buckets []time.Time // its hour buckets, ascending, in the stream's zone
	files   map[string]writers.Object
	marker  bool                 // _SUCCESS exists
	man     *completion.Manifest // decoded _SUCCESS; nil if none or bad
}

func (f *folder) hour() string { return f.buckets[0].Format(time.RFC3339) }

// listed is a data file a manifest lists, with its footer.
type listed struct {
	f     *folder
	entry completion.ManifestFile
	topic string
	part  int
	first int64 // from the footer
	last  int64
	hour  time.Time // footer lakesink.hour
	group []int64
	// sources are a compacted file's (footer lakesink.sources); topic,
	// part, first and last are then unset.
	sources []partitioner.Source
}

type streamAudit struct {
	o        Options
	st       Stream
	sum      StreamSummary
	findings []Finding
	folders  []*folder
	byKey    map[string]*folder
	// listings counts, per data file key, how many manifest entries name it.
	listings map[string]int
	jobs     []fileJob  // listed files to read the footers of
	mu       sync.Mutex // guards findings and files while footers are read
	files    []*listed  // one per listed key that exists and reads
}

// fileJob is a listed file whose footer is to be read.
type fileJob struct {
	f *folder
	e completion.ManifestFile
	o writers.Object
}

func (a *streamAudit) add(f *folder, kind Kind, key, format string, args ...any) {
	fd := Finding{Stream: a.st.Name, Kind: kind, Key: key, Message: fmt.Sprintf(format, args...)}
	if f != nil {
		fd.Hour = f.hour()
	}
	a.mu.Lock()
	a.findings = append(a.findings, fd)
	a.mu.Unlock()
}

func (a *streamAudit) run(ctx context.Context) error {
	if a.st.Loc == nil {
		a.st.Loc = time.UTC
	}
	loc := a.st.Loc
	a.byKey = map[string]*folder{}
	a.listings = map[string]int{}
	for b := partitioner.HourOf(a.o.From, loc); b.Before(a.o.To); b = partitioner.NextHour(b, loc) {
		key := a.st.Path.Render(a.st.Name, b)
		if a.byKey[key] != nil {
			continue
		}
		f := &folder{key: key, buckets: partitioner.FolderHours(b, loc)}
		a.byKey[key] = f
		a.folders = append(a.folders, f)
	}
	a.sum.Folders = len(a.folders)
	for _, f := range a.folders {
		if err := a.readFolder(ctx, f); err != nil {
			return err
		}
	}
	if err := a.readFiles(ctx); err != nil {
		return err
	}
	mdir := markerDir(a.st.Name)
	markerObjs, err := a.o.Writer.List(ctx, mdir)
	if err != nil {
		return fmt.Errorf("list %s: %w", mdir, err)
	}
	for _, f := range a.folders {
		if f.man == nil {
			continue
		}
		for _, k := range sortedKeys(f.files) {
			if a.listings[k] == 0 {
				a.add(f, UnlistedFile, k, "in the folder, not in its manifest")
			}
		}
	}
	a.overlaps()
	for k, n := range a.listings {
		if n > 1 {
			a.add(a.byKey[path.Dir(k)], ListedTwice, k, "listed %d times by the manifests", n) // nil folder: no hour
		}
	}
	if err := a.plans(ctx, markerObjs); err != nil {
		return err
	}
	if err := a.markers(ctx, markerObjs); err != nil {
		return err
	}
	if a.st.Table != nil {
		if err := a.table(ctx); err != nil {
			return err
		}
	}
	return nil
}

// readFolder lists f, reads its manifest, checks that the files it lists
// exist and queues them for readFiles.
func (a *streamAudit) readFolder(ctx context.Context, f *folder) error {
	w := a.o.Writer
	objs, err := w.List(ctx, f.key+"/")
	if err != nil {
		return fmt.Errorf("list %s: %w", f.key, err)
	}
	f.files = map[string]writers.Object{}
	for _, o := range objs {
		name := o.Key[len(f.key)+1:]
		if name == partitioner.MarkerName {
			f.marker = true
			continue
		}
		if _, _, _, ok := partitioner.ParseFileName(name); ok || partitioner.ParseCompactedFileName(name) {
			f.files[o.Key] = o
		}
	}
	if !f.marker {
		return nil
	}
	a.sum.Marked++
	mkey := f.key + "/" + partitioner.MarkerName
	m, err := readManifest(ctx, w, mkey)
	if errors.Is(err, errBadManifest) {
		a.add(f, BadManifest, mkey, "%v", err)
		return nil
	}
	if err != nil {
		return err
	}
	f.man = &m
	if m.Stream != a.st.Name {
		a.add(f, BadManifest, mkey, "manifest of stream %q", m.Stream)
	}
	if h, err := time.Parse(time.RFC3339, m.Hour); err != nil || !h.Equal(f.buckets[0]) {
		a.add(f, BadManifest, mkey, "manifest hour %q, want the folder's first bucket %s", m.Hour, f.hour())
	}
	a.sum.Records += m.Records
	for _, e := range m.Files {
		if writers.ValidateKey(e.Path) != nil {
			a.add(f, BadManifest, mkey, "lists %q, not a valid key", e.Path)
			continue
		}
		a.listings[e.Path]++
		if a.listings[e.Path] > 1 {
			continue // listed before: reported once all manifests are read
		}
		a.sum.Files++
		o, ok := f.files[e.Path]
		if path.Dir(e.Path) != f.key {
			// Another folder's file: its footer's bucket is not one of
			// this folder's, which readFile reports.
			if o, err = w.Stat(ctx, e.Path); err == nil {
				ok = true
			} else if !errors.Is(err, writers.ErrNotFound) {
				return fmt.Errorf("stat %s: %w", e.Path, err)
			}
		}
		if !ok {
			a.add(f, MissingFile, e.Path, "listed by the manifest, not in the lake")
			continue
		}
		a.jobs = append(a.jobs, fileJob{f, e, o})
	}
	return nil
}

// footerReads is how many footers an audit reads at once: each is a ranged
// read of up to 64 KiB, mostly waiting on the storage's latency.
const footerReads = 16

// readFiles runs readFile for every job, footerReads at a time; the first
// error stops it.
func (a *streamAudit) readFiles(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan fileJob)
	errs := make(chan error, footerReads)
	var wg sync.WaitGroup
	for range footerReads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := a.readFile(ctx, j.f, j.e, j.o); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, j := range a.jobs {
		select {
		case jobs <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	sort.Slice(a.files, func(i, j int) bool { return a.files[i].entry.Path < a.files[j].entry.Path })
	return nil
}

// readFile reads the footer of a listed file and compares it with the
// manifest's entry and the file's name. The entry must say what the
// finalizer's would (completion.buildManifest reads the same footer): its
// records, bytes, event-time range, schema ids and bucket, and either the
// topic, partition and offsets of a plain file or, for a compacted file,
// exactly the footer's sources, in order, and no topic, partition or
// offsets of its own — a compacted entry that also named a partition's
// offsets would tell a reader of the manifest of records that are not in
// that file alone.
func (a *streamAudit) readFile(ctx context.Context, f *folder, e completion.ManifestFile, o writers.Object) error {
	name := path.Base(e.Path)
	topic, part, first, plainName := partitioner.ParseFileName(name)
	compactedName := !plainName && partitioner.ParseCompactedFileName(name)
	r := &readErrAt{r: writers.ReaderAt(ctx, a.o.Writer, o.Key)}
	info, meta, err := partitioner.ReadFileInfo(r, o.Size)
	if err != nil {
		if r.err != nil {
			return fmt.Errorf("read footer of %s: %w", o.Key, r.err) // storage, not the file
		}
		a.add(f, BadFile, o.Key, "%v", err)
		return nil
	}
	var diffs []string
	diff := func(what string, got, want any) {
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s %v, manifest %v", what, got, want))
		}
	}
	if len(e.Sources) > 0 && (e.Topic != "" || e.Partition != 0 || e.FirstOffset != 0 || e.LastOffset != 0) {
		diffs = append(diffs, fmt.Sprintf("manifest entry has sources and also topic %q, partition %d, offsets %d-%d",
			e.Topic, e.Partition, e.FirstOffset, e.LastOffset))
	}
	switch {
	case meta.Sources != nil: // a compacted file
		if !compactedName {
			diffs = append(diffs, "footer of a compacted file under a name that is not a compacted file's")
		} else if want := partitioner.CompactedFileName(meta.Sources); name != want {
			diffs = append(diffs, fmt.Sprintf("name, footer's sources make it %s", want))
		}
		if len(e.Sources) == 0 {
			diffs = append(diffs, "compacted file, manifest entry without sources")
		} else if d := sourcesDiff(meta.Sources, e.Sources); d != "" {
			diffs = append(diffs, d)
		}
	case compactedName:
		diffs = append(diffs, "name of a compacted file, footer without sources")
	case !plainName:
		diffs = append(diffs, "name is not a data file's")
	default:
		if len(e.Sources) > 0 {
			diffs = append(diffs, fmt.Sprintf("manifest entry has %d sources, the file is not compacted", len(e.Sources)))
		}
		diff("topic", topic, e.Topic)
		diff("partition", part, e.Partition)
		diff("first offset (name)", first, e.FirstOffset)
		diff("first offset (footer)", info.FirstOffset, e.FirstOffset)
		diff("last offset", info.LastOffset, e.LastOffset)
		if meta.Topic != topic || meta.Partition != part {
			diffs = append(diffs, fmt.Sprintf("footer %s/%d, name %s/%d", meta.Topic, meta.Partition, topic, part))
		}
	}
	diff("records", info.Records, e.Records)
	diff("bytes", o.Size, e.Bytes)
	diffs = append(diffs, timeDiff("min event time", info.MinEventTime, e.MinEventTime)...)
	diffs = append(diffs, timeDiff("max event time", info.MaxEventTime, e.MaxEventTime)...)
	diffs = append(diffs, schemaIDsDiff(partitioner.SchemaIDs(meta), e)...)
	if meta.Stream != a.st.Name {
		diffs = append(diffs, fmt.Sprintf("footer stream %q", meta.Stream))
	}
	if !slices.ContainsFunc(f.buckets, meta.Hour.Equal) {
		diffs = append(diffs, fmt.Sprintf("footer hour %s is not a bucket of the folder", meta.Hour.Format(time.RFC3339)))
	}
	if e.Hour != "" {
		if h, err := time.Parse(time.RFC3339, e.Hour); err != nil || !h.Equal(meta.Hour) {
			diffs = append(diffs, fmt.Sprintf("manifest hour %q, footer %s", e.Hour, meta.Hour.Format(time.RFC3339)))
		}
	}
	if len(diffs) > 0 {
		a.add(f, ManifestMismatch, o.Key, "%s", strings.Join(diffs, "; "))
	}
	l := &listed{f: f, entry: e, topic: meta.Topic, part: meta.Partition,
		first: info.FirstOffset, last: info.LastOffset, hour: meta.Hour, group: partitioner.FileGroup(meta),
		sources: meta.Sources}
	a.mu.Lock()
	a.files = append(a.files, l)
	a.mu.Unlock()
	return nil
}

// sourcesDiff describes how a manifest entry's sources differ from the
// footer's, "" when they are equal. Order counts: the footer's is the
// order of the file's rows, which the manifest states.
func sourcesDiff(footer, entry []partitioner.Source) string {
	if slices.Equal(footer, entry) {
		return ""
	}
	if len(footer) != len(entry) {
		return fmt.Sprintf("%d sources, manifest %d", len(footer), len(entry))
	}
	i := 0
	for footer[i] == entry[i] {
		i++
	}
	s, m := footer[i], entry[i]
	return fmt.Sprintf("source %d %s/%d offsets %d-%d (%d records), manifest %s/%d offsets %d-%d (%d records)",
		i, s.Topic, s.Partition, s.FirstOffset, s.LastOffset, s.Records, m.Topic, m.Partition, m.FirstOffset, m.LastOffset, m.Records)
}

// timeDiff describes how a manifest's event time (RFC 3339) differs from
// the footer's; nil when they are the same instant.
func timeDiff(what string, footer time.Time, entry string) []string {
	if t, err := time.Parse(time.RFC3339Nano, entry); err == nil && t.Equal(footer) {
		return nil
	}
	return []string{fmt.Sprintf("%s %s, manifest %q", what, footer.Format(time.RFC3339Nano), entry)}
}

// schemaIDsDiff describes how a manifest entry's schema ids differ from
// the footer's ids. An entry with only schema_id (a manifest written
// before schema_ids) stands for that one id; schema_id beside schema_ids
// must be their one id.
func schemaIDsDiff(footer []int, e completion.ManifestFile) []string {
	ids := e.SchemaIDs
	if len(ids) == 0 && e.SchemaID != 0 {
		ids = []int{e.SchemaID}
	}
	var diffs []string
	if !slices.Equal(ids, footer) {
		diffs = append(diffs, fmt.Sprintf("schema ids %v, manifest %v", footer, ids))
	}
	if e.SchemaID != 0 && !slices.Equal(ids, []int{e.SchemaID}) {
		diffs = append(diffs, fmt.Sprintf("manifest schema_id %d beside schema_ids %v", e.SchemaID, ids))
	}
	return diffs
}

// overlaps reports listed files of one topic, partition and bucket whose
// offset ranges overlap. It works on units, as the orphan rule does
// (completion.SplitOrphans): a plain file is a unit; files of one group
// (finished together, one per writer schema family) overlap by design and
// are one unit spanning their files; and each source of a compacted file
// is a unit of the file's bucket, the compacted file holding its records
// whole. So a merged input still listed beside its compacted file, two
// compacted files naming the same offsets, or a compacted source and a
// plain file holding the same offsets are overlaps: records twice.
func (a *streamAudit) overlaps() {
	type bucketKey struct {
		topic string
		part  int
		hour  int64
	}
	type unit struct {
		files       []*listed
		first, last int64
		compacted   bool
	}
	units := map[bucketKey]map[string]*unit{}
	addUnit := func(bk bucketKey, id string, l *listed, first, last int64) {
		if units[bk] == nil {
			units[bk] = map[string]*unit{}
		}
		u := units[bk][id]
		if u == nil {
			u = &unit{first: first, last: last, compacted: l.sources != nil}
			units[bk][id] = u
		}
		u.files = append(u.files, l)
		u.first, u.last = min(u.first, first), max(u.last, last)
	}
	for _, l := range a.files {
		for i, s := range l.sources {
			addUnit(bucketKey{s.Topic, s.Partition, l.hour.UnixNano()}, fmt.Sprintf("%s#%d", l.entry.Path, i), l, s.FirstOffset, s.LastOffset)
		}
		if l.sources != nil {
			continue
		}
		id := l.entry.Path
		if len(l.group) > 1 {
			id = fmt.Sprint(l.group)
		}
		addUnit(bucketKey{l.topic, l.part, l.hour.UnixNano()}, id, l, l.first, l.last)
	}
	for bk, byID := range units {
		us := make([]*unit, 0, len(byID))
		for _, u := range byID {
			us = append(us, u)
		}
		// On a tie, compacted sources first: the plain file that repeats
		// one (a merged input) is the one reported.
		sort.Slice(us, func(i, j int) bool {
			if us[i].first != us[j].first {
				return us[i].first < us[j].first
			}
			if us[i].compacted != us[j].compacted {
				return us[i].compacted
			}
			return us[i].files[0].entry.Path < us[j].files[0].entry.Path
		})
		var reach *unit // the unit reaching furthest so far
		for _, u := range us {
			if reach != nil && u.first <= reach.last {
				l := u.files[0]
				a.add(l.f, OverlappingOffsets, l.entry.Path,
					"offsets %d-%d of %s/%d (bucket %s) overlap %d-%d of %s",
					u.first, u.last, bk.topic, bk.part, l.hour.Format(time.RFC3339), reach.first, reach.last, reach.files[0].entry.Path)
			}
			if reach == nil || u.last > reach.last {
				reach = u
			}
		}
	}
}

// plans reports the outputs of the folders' compaction plans (the objects
// named completion.CompactionPlanName among the stream's marker objects,
// objs) that are neither in the lake nor listed while one of their inputs
// is gone and no listed file holds that input's sources (a listed copy of
// the output under another name does, which readFile reports). A plan is
// otherwise no finding: it stays beside the marker
// revisions for good, and one whose outputs are still to be made is a
// compaction under way, whose folder has no marker yet (markers judges
// that). A plan that does not decode is not judged either: the finalizer
// reads a plan only before the folder's first marker and then fails on
// it, which leaves the marker pending.
func (a *streamAudit) plans(ctx context.Context, objs []writers.Object) error {
	// held are the offsets of the sources of every listed file.
	type span struct {
		topic       string
		part        int
		first, last int64
	}
	held := map[span]bool{}
	for _, l := range a.files {
		if l.sources == nil {
			held[span{l.topic, l.part, l.first, l.last}] = true
		}
		for _, s := range l.sources {
			held[span{s.Topic, s.Partition, s.FirstOffset, s.LastOffset}] = true
		}
	}
	lost := func(in completion.PlannedInput) bool {
		if present, known := a.inLake(in.Key); !known || present {
			return false
		}
		for _, s := range in.Sources {
			if !held[span{s.Topic, s.Partition, s.FirstOffset, s.LastOffset}] {
				return true
			}
		}
		return len(in.Sources) == 0
	}
	byHour := map[string]*folder{}
	for _, f := range a.folders {
		byHour[f.buckets[0].UTC().Format(markerHour)] = f
	}
	dir := markerDir(a.st.Name)
	for _, o := range objs {
		hour, name, _ := strings.Cut(o.Key[len(dir):], "/")
		f := byHour[hour]
		if f == nil || name != completion.CompactionPlanName {
			continue
		}
		b, err := readAll(ctx, a.o.Writer, o.Key)
		if err != nil {
			return err
		}
		_, outputs, err := completion.DecodeCompactionPlan(b)
		if err != nil {
			continue
		}
		for _, out := range outputs {
			present, known := a.inLake(out.Key)
			if !known || present || a.listings[out.Key] > 0 {
				continue
			}
			var gone []string
			for _, in := range out.Inputs {
				if lost(in) {
					gone = append(gone, in.Key)
				}
			}
			if len(gone) > 0 {
				a.add(f, CompactionOutputMissing, out.Key,
					"compaction plan %s: output missing and inputs gone (%d of %d: %s); no listed file holds their records",
					o.Key, len(gone), len(out.Inputs), strings.Join(gone, ", "))
			}
		}
	}
	return nil
}

// inLake reports whether the data file key is in its folder; known is
// false when its folder is not one of the range's (not listed).
func (a *streamAudit) inLake(key string) (present, known bool) {
	f := a.byKey[path.Dir(key)]
	if f == nil {
		return false, false
	}
	_, present = f.files[key]
	return present, true
}

// markerHour is the layout of an hour in the marker directory's keys.
const markerHour = "2006-01-02T15Z"

// markerDir is the directory of a stream's marker revisions and
// compaction plans: <markerDir>/<hour UTC>/r000001.json, compaction.json.
func markerDir(stream string) string { return "_lakesink/markers/" + stream + "/" }

// markers reports folders past their lateness without a marker; objs are
// the stream's marker objects (markerDir).
func (a *streamAudit) markers(ctx context.Context, objs []writers.Object) error {
	cursor, err := completion.ReadCursor(ctx, a.o.Writer, a.st.Name)
	if err != nil {
		return err
	}
	start, started := a.start(objs)
	for _, f := range a.folders {
		last := f.buckets[len(f.buckets)-1]
		due := partitioner.NextHour(last, a.st.Loc).Add(a.st.Lateness)
		if f.marker || !due.Before(a.o.Now) {
			continue
		}
		if end := partitioner.NextHour(last, a.st.Loc); len(f.files) == 0 && (!started || !end.After(start)) {
			continue // before the stream's first hour: never finalized
		}
		mkey := f.key + "/" + partitioner.MarkerName
		if !cursor.IsZero() && f.buckets[0].Before(cursor) {
			a.add(f, MarkerMissing, mkey, "no marker although the finalizer's cursor (%s) is past it; complete since %s",
				cursor.Format(time.RFC3339), due.UTC().Format(time.RFC3339))
			continue
		}
		next := "no finalizer cursor yet"
		if !cursor.IsZero() {
			next = "finalizer cursor at " + cursor.UTC().Format(time.RFC3339)
		}
		a.add(f, MarkerPending, mkey, "no marker, due since %s (end + allowed_lateness); not finalized yet: %s",
			due.UTC().Format(time.RFC3339), next)
	}
	return nil
}

// start returns an instant at or before the start of the stream's first
// bucket: the earliest hour in the marker directory (objs, the stream's
// marker objects: revisions, and compaction plans, which the finalizer
// writes only for a complete hour), or else the earliest folder of the
// range holding data files (the finalizer starts at the first hour any
// partition wrote). Empty folders ending at or before it are not expected
// to have a marker; ok is false when the stream has neither markers nor
// files, and then no empty folder is.
func (a *streamAudit) start(objs []writers.Object) (start time.Time, ok bool) {
	dir := markerDir(a.st.Name)
	for _, o := range objs {
		seg, _, _ := strings.Cut(o.Key[len(dir):], "/")
		if t, err := time.Parse(markerHour, seg); err == nil {
			return t, true // keys sort by time: the first one is the earliest
		}
	}
	for _, f := range a.folders {
		if len(f.files) > 0 {
			return f.buckets[0], true
		}
	}
	return time.Time{}, false
}

// table checks the table's references against the manifests.
func (a *streamAudit) table(ctx context.Context) error {
	t := a.st.Table
	a.sum.Table = t.Ident()
	refs, err := t.DataFiles(ctx)
	if err != nil {
		return fmt.Errorf("read table %s: %w", t.Ident(), err)
	}
	root := t.Location("")
	count := map[string]int{}
	for _, ref := range refs {
		key, ok := strings.CutPrefix(ref, root)
		if !ok || a.byKey[path.Dir(key)] == nil {
			continue // outside the range (or not lakesink's)
		}
		a.sum.TableFiles++
		count[key]++
	}
	for _, key := range sortedKeys(count) {
		f := a.byKey[path.Dir(key)]
		if n := count[key]; n > 1 {
			a.add(f, TableFileTwice, key, "referenced %d times by table %s", n, t.Ident())
		}
		if f.man != nil && a.listings[key] == 0 {
			a.add(f, TableFileUnlisted, key, "referenced by table %s, in no manifest", t.Ident())
		}
	}
	for _, f := range a.folders {
		if f.man == nil {
			continue
		}
		seen := map[string]bool{}
		for _, e := range f.man.Files {
			if seen[e.Path] || path.Dir(e.Path) != f.key {
				continue
			}
			seen[e.Path] = true
			if count[e.Path] == 0 {
				a.add(f, TableFileMissing, e.Path, "listed by the manifest, not in table %s", t.Ident())
			}
		}
	}
	return nil
}

// readErrAt remembers the first error of its reader other than io.EOF:
// a failed read of the storage, which is no fault of the file.
type readErrAt struct {
	r   io.ReaderAt
	err error
}

func (r *readErrAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.r.ReadAt(p, off)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// errBadManifest marks a manifest that is there but does not decode.
var errBadManifest = errors.New("bad manifest")

func readManifest(ctx context.Context, w writers.Writer, key string) (completion.Manifest, error) {
	var m completion.Manifest
	b, err := readAll(ctx, w, key)
	if err != nil {
		return m, err
	}
	if m, err = completion.DecodeManifest(b); err != nil {
		return m, fmt.Errorf("%w: %v", errBadManifest, err)
	}
	if m.Version != completion.ManifestVersion {
		return m, fmt.Errorf("%w: version %d, want %d", errBadManifest, m.Version, completion.ManifestVersion)
	}
	return m, nil
}

func readAll(ctx context.Context, w writers.Writer, key string) ([]byte, error) {
	rc, err := w.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Hour != b.Hour {
			// RFC 3339 strings of one zone can disagree with time order
			// across an offset change; compare instants.
			ta, _ := time.Parse(time.RFC3339, a.Hour)
			tb, _ := time.Parse(time.RFC3339, b.Hour)
			if !ta.Equal(tb) {
				return ta.Before(tb)
			}
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Key < b.Key
	})
}
