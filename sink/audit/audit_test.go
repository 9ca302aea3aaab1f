package audit

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
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/writers"
)

const (
	testStream   = "clicks"
	testTopic    = "clicks"
	testLateness = 10 * time.Minute
)

// lake builds a stream's lake by hand: real Parquet data files with
// lakesink's footers, manifests, marker revisions and the cursor.
type lake struct {
	t      testing.TB
	ctx    context.Context
	w      *writers.Memory
	st     Stream
	schema *partitioner.Schema
	table  *fakeTable
}

func newLake(t testing.TB, loc *time.Location) *lake {
	t.Helper()
	tmpl, err := partitioner.ParsePathTemplate(config.DefaultPartitionPath)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := partitioner.NewSchema("event", []partitioner.Column{{Name: "id", Type: partitioner.TypeString, Required: true}})
	if err != nil {
		t.Fatal(err)
	}
	return &lake{t: t, ctx: context.Background(), w: writers.NewMemory(), schema: schema,
		st: Stream{Name: testStream, Loc: loc, Lateness: testLateness, Path: tmpl}}
}

// file writes a data file of partition in bucket with records at offsets
// first and last (one if equal), named after name (first when negative),
// in the folder of bucket; group, when given, goes into its footer. It
// returns the manifest entry of the file.
func (l *lake) file(bucket time.Time, partition int, first, last int64, name int64, group ...int64) completion.ManifestFile {
	l.t.Helper()
	spool := filepath.Join(l.t.TempDir(), "f.parquet")
	fw, err := partitioner.NewFileWriter(spool, l.schema, partitioner.FileOptions{})
	if err != nil {
		l.t.Fatal(err)
	}
	offs := []int64{first}
	if last != first {
		offs = append(offs, last)
	}
	for i, o := range offs {
		if err := fw.Append(partitioner.Row{parquet.ByteArrayValue(fmt.Appendf(nil, "%d", o))}, o, bucket.Add(time.Duration(i+1)*time.Second)); err != nil {
			l.t.Fatal(err)
		}
	}
	meta := partitioner.FileMeta{Stream: testStream, Topic: testTopic, Partition: partition, Hour: bucket}
	if len(group) > 0 {
		meta.Extra = partitioner.FormatFileGroup(group)
	}
	info, err := fw.Finish(meta)
	if err != nil {
		l.t.Fatal(err)
	}
	if name < 0 {
		name = first
	}
	b, err := os.ReadFile(spool)
	if err != nil {
		l.t.Fatal(err)
	}
	key := l.st.Path.FileKey(testStream, bucket, testTopic, partition, name)
	l.put(key, b)
	e := completion.ManifestFile{Path: key, Records: info.Records, Bytes: int64(len(b)), Topic: testTopic, Partition: partition,
		FirstOffset: first, LastOffset: last,
		MinEventTime: info.MinEventTime.Format(time.RFC3339Nano), MaxEventTime: info.MaxEventTime.Format(time.RFC3339Nano)}
	if len(partitioner.FolderHours(bucket, l.st.Loc)) > 1 {
		e.Hour = bucket.Format(time.RFC3339)
	}
	return e
}

func (l *lake) put(key string, b []byte) {
	l.t.Helper()
	if err := l.w.Put(l.ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lake) del(key string) {
	l.t.Helper()
	if err := l.w.Delete(l.ctx, key); err != nil {
		l.t.Fatal(err)
	}
}

// manifest publishes the manifest of the folder of bucket listing files:
// revision 1 and _SUCCESS, as the finalizer does.
func (l *lake) manifest(bucket time.Time, files ...completion.ManifestFile) completion.Manifest {
	l.t.Helper()
	buckets := partitioner.FolderHours(bucket, l.st.Loc)
	m := completion.Manifest{Version: completion.ManifestVersion, Stream: testStream, Hour: buckets[0].Format(time.RFC3339),
		Revision: 1, CompletedAt: "2026-12-01T00:00:00Z", Files: append([]completion.ManifestFile{}, files...)}
	for _, b := range buckets {
		m.Ranges = append(m.Ranges, completion.HourRange{Start: b.UTC().Format(time.RFC3339),
			End: partitioner.NextHour(b, l.st.Loc).UTC().Format(time.RFC3339)})
	}
	for _, f := range files {
		m.Records += f.Records
	}
	l.put(fmt.Sprintf("_lakesink/markers/%s/%s/r000001.json", testStream, buckets[0].UTC().Format("2006-01-02T15Z")), m.Encode())
	l.put(l.marker(bucket), m.Encode())
	return m
}

func (l *lake) marker(bucket time.Time) string { return l.st.Path.MarkerKey(testStream, bucket) }

func (l *lake) cursor(next time.Time) {
	l.put("_lakesink/finalizer/"+testStream+".json", fmt.Appendf(nil, `{"next_hour":%q}`, next.UTC().Format(time.RFC3339)))
}

// run audits the lake over [from, to) at now.
func (l *lake) run(from, to, now time.Time) Report {
	l.t.Helper()
	st := l.st
	if l.table != nil {
		st.Table = l.table
	}
	r, err := Run(l.ctx, Options{Writer: l.w, Streams: []Stream{st}, From: from, To: to, Now: now})
	if err != nil {
		l.t.Fatalf("audit: %v", err)
	}
	return r
}

// inTable adds a reference to the file of e to the table.
func (l *lake) inTable(e completion.ManifestFile) {
	l.table.refs = append(l.table.refs, l.table.Location(e.Path))
}

// fakeTable is a table whose snapshot references refs.
type fakeTable struct {
	refs []string
	err  error
}

const tableRoot = "s3://lake/events"

func (f *fakeTable) Ident() string              { return "lake.clicks" }
func (f *fakeTable) Location(key string) string { return tableRoot + "/" + key }
func (f *fakeTable) DataFiles(context.Context) ([]string, error) {
	return slices.Clone(f.refs), f.err
}

var h0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func hr(n int) time.Time { return h0.Add(time.Duration(n) * time.Hour) }

// cleanLake is a stream of four finalized hours in UTC: interleaved
// offsets across hours, a file group whose two files overlap by design,
// an empty hour with its "files": [] marker, the cursor at hour 4, and a
// table referencing every listed file once. It returns the entries by
// name.
func cleanLake(t testing.TB) (*lake, map[string]completion.ManifestFile) {
	l := newLake(t, time.UTC)
	f := map[string]completion.ManifestFile{
		"a": l.file(hr(0), 0, 0, 9, -1),
		"b": l.file(hr(0), 1, 0, 4, -1),
		"c": l.file(hr(1), 0, 5, 15, -1), // interleaves with a: another bucket
		"d": l.file(hr(1), 1, 20, 30, -1, 20, 22),
		"e": l.file(hr(1), 1, 22, 28, -1, 20, 22), // d's group: overlaps d by design
		"g": l.file(hr(3), 0, 16, 20, -1),
	}
	l.manifest(hr(0), f["a"], f["b"])
	l.manifest(hr(1), f["c"], f["d"], f["e"])
	l.manifest(hr(2)) // empty hour
	l.manifest(hr(3), f["g"])
	l.cursor(hr(4))
	l.table = &fakeTable{}
	for _, e := range f {
		l.table.refs = append(l.table.refs, tableRoot+"/"+e.Path)
	}
	return l, f
}

func TestAudit(t *testing.T) {
	now := hr(5) // hour 4 is not due until 05:10
	cases := []struct {
		name   string
		damage func(l *lake, f map[string]completion.ManifestFile)
		kind   Kind
		key    func(l *lake, f map[string]completion.ManifestFile) string
	}{
		{"clean", func(*lake, map[string]completion.ManifestFile) {}, "", nil},
		{"file in no manifest", func(l *lake, f map[string]completion.ManifestFile) {
			l.file(hr(1), 0, 40, 41, -1)
		}, UnlistedFile, func(l *lake, _ map[string]completion.ManifestFile) string {
			return l.st.Path.FileKey(testStream, hr(1), testTopic, 0, 40)
		}},
		{"listed file missing", func(l *lake, f map[string]completion.ManifestFile) {
			l.del(f["c"].Path)
		}, MissingFile, keyOf("c")},
		{"file listed twice in one manifest", func(l *lake, f map[string]completion.ManifestFile) {
			l.manifest(hr(0), f["a"], f["b"], f["a"])
		}, ListedTwice, keyOf("a")},
		{"file listed by two manifests", func(l *lake, f map[string]completion.ManifestFile) {
			l.manifest(hr(3), f["g"], f["a"])
		}, ListedTwice, keyOf("a")},
		{"overlapping offsets in one bucket", func(l *lake, f map[string]completion.ManifestFile) {
			x := l.file(hr(0), 0, 5, 12, -1)
			l.manifest(hr(0), f["a"], f["b"], x)
			l.inTable(x)
		}, OverlappingOffsets, func(l *lake, _ map[string]completion.ManifestFile) string {
			return l.st.Path.FileKey(testStream, hr(0), testTopic, 0, 5)
		}},
		{"a copy under another name", func(l *lake, f map[string]completion.ManifestFile) {
			x := l.file(hr(3), 0, 16, 20, 17) // g's records, named +17
			x.FirstOffset = 17                // as the name says: the footer disagrees too
			l.manifest(hr(3), f["g"], x)
			l.inTable(x)
		}, "", nil}, // checked below: overlap and mismatch
		{"file overlapping a group", func(l *lake, f map[string]completion.ManifestFile) {
			x := l.file(hr(1), 1, 29, 35, -1)
			l.manifest(hr(1), f["c"], f["d"], f["e"], x)
			l.inTable(x)
		}, OverlappingOffsets, func(l *lake, _ map[string]completion.ManifestFile) string {
			return l.st.Path.FileKey(testStream, hr(1), testTopic, 1, 29)
		}},
		{"manifest entry disagrees with the footer", func(l *lake, f map[string]completion.ManifestFile) {
			b := f["b"]
			b.LastOffset = 7
			l.manifest(hr(0), f["a"], b)
		}, ManifestMismatch, keyOf("b")},
		{"manifest does not decode", func(l *lake, _ map[string]completion.ManifestFile) {
			l.put(l.marker(hr(3)), []byte("{"))
		}, BadManifest, func(l *lake, _ map[string]completion.ManifestFile) string { return l.marker(hr(3)) }},
		{"manifest of another hour", func(l *lake, f map[string]completion.ManifestFile) {
			m := l.manifest(hr(3), f["g"])
			m.Hour = hr(2).Format(time.RFC3339)
			l.put(l.marker(hr(3)), m.Encode())
		}, BadManifest, func(l *lake, _ map[string]completion.ManifestFile) string { return l.marker(hr(3)) }},
		{"manifest names an invalid key", func(l *lake, f map[string]completion.ManifestFile) {
			x := f["g"]
			x.Path = "../etc/passwd"
			l.manifest(hr(3), f["g"], x)
		}, BadManifest, func(l *lake, _ map[string]completion.ManifestFile) string { return l.marker(hr(3)) }},
		{"listed file is not parquet", func(l *lake, f map[string]completion.ManifestFile) {
			l.put(f["g"].Path, []byte("not a parquet file at all"))
		}, BadFile, keyOf("g")},
		{"marker deleted before the cursor", func(l *lake, _ map[string]completion.ManifestFile) {
			l.del(l.marker(hr(1)))
		}, MarkerMissing, func(l *lake, _ map[string]completion.ManifestFile) string { return l.marker(hr(1)) }},
		{"empty hour's marker deleted", func(l *lake, _ map[string]completion.ManifestFile) {
			l.del(l.marker(hr(2)))
		}, MarkerMissing, func(l *lake, _ map[string]completion.ManifestFile) string { return l.marker(hr(2)) }},
		{"hour due, finalizer behind", func(l *lake, _ map[string]completion.ManifestFile) {
			l.del(l.marker(hr(3)))
			l.cursor(hr(3))
		}, MarkerPending, func(l *lake, _ map[string]completion.ManifestFile) string { return l.marker(hr(3)) }},
		{"hour due, no cursor yet", func(l *lake, _ map[string]completion.ManifestFile) {
			l.del(l.marker(hr(3)))
			l.del("_lakesink/finalizer/" + testStream + ".json")
		}, MarkerPending, func(l *lake, _ map[string]completion.ManifestFile) string { return l.marker(hr(3)) }},
		{"table references a file twice", func(l *lake, f map[string]completion.ManifestFile) {
			l.table.refs = append(l.table.refs, tableRoot+"/"+f["d"].Path)
		}, TableFileTwice, keyOf("d")},
		{"table references a file in no manifest", func(l *lake, _ map[string]completion.ManifestFile) {
			l.table.refs = append(l.table.refs, l.table.Location(l.st.Path.FileKey(testStream, hr(3), testTopic, 2, 0)))
		}, TableFileUnlisted, func(l *lake, _ map[string]completion.ManifestFile) string {
			return l.st.Path.FileKey(testStream, hr(3), testTopic, 2, 0)
		}},
		{"manifest file not in the table", func(l *lake, f map[string]completion.ManifestFile) {
			l.table.refs = slices.DeleteFunc(l.table.refs, func(r string) bool { return strings.HasSuffix(r, f["a"].Path) })
		}, TableFileMissing, keyOf("a")},
		{"table files outside the range and the lake are not judged", func(l *lake, _ map[string]completion.ManifestFile) {
			l.table.refs = append(l.table.refs, l.table.Location(l.st.Path.FileKey(testStream, hr(-30), testTopic, 0, 0)),
				"s3://elsewhere/x.parquet")
		}, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, f := cleanLake(t)
			c.damage(l, f)
			r := l.run(hr(0), hr(5), now)
			if c.name == "a copy under another name" {
				kinds := map[Kind]bool{}
				for _, fd := range r.Findings {
					kinds[fd.Kind] = true
				}
				if len(r.Findings) != 2 || !kinds[OverlappingOffsets] || !kinds[ManifestMismatch] {
					t.Fatalf("findings %+v, want overlapping_offsets and manifest_mismatch", r.Findings)
				}
				return
			}
			if c.kind == "" {
				if !r.Clean() {
					t.Fatalf("findings on a clean lake: %+v", r.Findings)
				}
				return
			}
			if len(r.Findings) != 1 {
				t.Fatalf("want exactly one %s finding, got %+v", c.kind, r.Findings)
			}
			got, key := r.Findings[0], c.key(l, f)
			if got.Kind != c.kind || got.Key != key || got.Stream != testStream || got.Hour == "" || got.Message == "" {
				t.Fatalf("finding %+v, want kind %s key %s", got, c.kind, key)
			}
		})
	}
}

func keyOf(name string) func(*lake, map[string]completion.ManifestFile) string {
	return func(_ *lake, f map[string]completion.ManifestFile) string { return f[name].Path }
}

func TestAuditSummaryAndRange(t *testing.T) {
	l, _ := cleanLake(t)
	r := l.run(hr(0).Add(30*time.Minute), hr(4), hr(5))
	want := StreamSummary{Name: testStream, Folders: 4, Marked: 4, Files: 6, Records: 12, Table: "lake.clicks", TableFiles: 6}
	if len(r.Streams) != 1 || r.Streams[0] != want {
		t.Fatalf("summary %+v, want %+v", r.Streams, want)
	}
	if r.From != "2026-12-01T10:30:00Z" || r.To != "2026-12-01T14:00:00Z" {
		t.Fatalf("range %s .. %s", r.From, r.To)
	}
	// Only the range's folders are looked at: a damaged hour outside it is not reported.
	l.del(l.marker(hr(3)))
	if r := l.run(hr(0), hr(3), hr(5)); !r.Clean() {
		t.Fatalf("findings outside the range: %+v", r.Findings)
	}
	// Hours before the stream's first marker need none; an hour not yet
	// due needs none either.
	if r := l.run(hr(-5), hr(3), hr(5)); !r.Clean() {
		t.Fatalf("findings before the stream began: %+v", r.Findings)
	}
	if r := l.run(hr(0), hr(4), hr(4).Add(testLateness)); !r.Clean() {
		t.Fatalf("hour 3 reported at its due time: %+v", r.Findings)
	}
	if r := l.run(hr(0), hr(4), hr(4).Add(testLateness+time.Second)); len(r.Findings) != 1 || r.Findings[0].Kind != MarkerMissing {
		t.Fatalf("hour 3 after its due time: %+v", r.Findings)
	}
}

func TestAuditAccessErrors(t *testing.T) {
	l, _ := cleanLake(t)
	l.table.err = errors.New("catalog down")
	if _, err := Run(l.ctx, Options{Writer: l.w, Streams: []Stream{{Name: testStream, Loc: time.UTC, Path: l.st.Path, Table: l.table}},
		From: hr(0), To: hr(4), Now: hr(5)}); err == nil || !strings.Contains(err.Error(), "catalog down") {
		t.Fatalf("table error: %v", err)
	}
	l.table.err = nil
	fw := &failingWriter{Writer: l.w, failRange: true}
	if _, err := Run(l.ctx, Options{Writer: fw, Streams: []Stream{l.st}, From: hr(0), To: hr(4), Now: hr(5)}); err == nil || !strings.Contains(err.Error(), "storage down") {
		t.Fatalf("footer read error: %v (want an error, not a bad_file finding)", err)
	}
	fw = &failingWriter{Writer: l.w, failList: true}
	if _, err := Run(l.ctx, Options{Writer: fw, Streams: []Stream{l.st}, From: hr(0), To: hr(4), Now: hr(5)}); err == nil || !strings.Contains(err.Error(), "storage down") {
		t.Fatalf("list error: %v", err)
	}
	l.cursor(hr(4))
	l.put("_lakesink/finalizer/"+testStream+".json", []byte("{"))
	if _, err := Run(l.ctx, Options{Writer: l.w, Streams: []Stream{l.st}, From: hr(0), To: hr(4), Now: hr(5)}); err == nil {
		t.Fatal("a cursor that does not decode is no error")
	}
}

// failingWriter fails ranged reads or listings.
type failingWriter struct {
	writers.Writer
	failRange, failList bool
}

var errDown = errors.New("storage down")

func (w *failingWriter) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if w.failRange {
		return nil, errDown
	}
	return w.Writer.GetRange(ctx, key, off, n)
}

func (w *failingWriter) List(ctx context.Context, prefix string) ([]writers.Object, error) {
	if w.failList {
		return nil, errDown
	}
	return w.Writer.List(ctx, prefix)
}

// TestAuditReadOnly: an audit calls no method that changes the lake.
func TestAuditReadOnly(t *testing.T) {
	l, f := cleanLake(t)
	l.file(hr(1), 0, 40, 41, -1)
	l.del(f["c"].Path)
	l.del(l.marker(hr(2)))
	ro := &readOnly{Writer: l.w, t: t}
	r, err := Run(l.ctx, Options{Writer: ro, Streams: []Stream{l.st}, From: hr(0), To: hr(5), Now: hr(5)})
	if err != nil || r.Clean() {
		t.Fatalf("audit: %v, %+v", err, r)
	}
}

type readOnly struct {
	writers.Writer
	t *testing.T
}

func (w *readOnly) Put(context.Context, string, io.Reader, int64) error {
	w.t.Error("audit called Put")
	return nil
}

func (w *readOnly) PutIfAbsent(context.Context, string, io.Reader, int64) error {
	w.t.Error("audit called PutIfAbsent")
	return nil
}

func (w *readOnly) Delete(context.Context, string) error {
	w.t.Error("audit called Delete")
	return nil
}

// TestAuditFolderOfTwoBuckets: America/New_York's night clocks go back
// renders 01:00 EDT and 01:00 EST into one folder with one manifest, and
// Australia/Lord_Howe's a full bucket and a half one.
func TestAuditFolderOfTwoBuckets(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	lh, err := time.LoadLocation("Australia/Lord_Howe")
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range []struct {
		loc   *time.Location
		local time.Time // a time in the first bucket of the two-bucket folder
	}{{ny, time.Date(2026, 11, 1, 1, 0, 0, 0, ny)}, {lh, time.Date(2026, 4, 5, 1, 0, 0, 0, lh)}} {
		t.Run(z.loc.String(), func(t *testing.T) {
			first := partitioner.HourOf(z.local, z.loc)
			buckets := partitioner.FolderHours(first, z.loc)
			if len(buckets) != 2 {
				t.Fatalf("folder of %s has buckets %v, want two", first, buckets)
			}
			second := buckets[1]
			before := partitioner.HourOf(first.Add(-time.Minute), z.loc)
			after := partitioner.NextHour(second, z.loc)
			end := partitioner.NextHour(after, z.loc)
			build := func(overlapInBucket bool) *lake {
				l := newLake(t, z.loc)
				l.manifest(before, l.file(before, 0, 0, 4, -1))
				a := l.file(first, 0, 5, 9, -1)
				b := l.file(second, 0, 7, 12, -1) // overlaps a, in another bucket of the folder
				if overlapInBucket {
					b = l.file(first, 0, 7, 12, -1)
				}
				l.manifest(first, a, b)
				l.manifest(after, l.file(after, 0, 13, 14, -1))
				l.cursor(end)
				return l
			}
			now := end.Add(time.Hour)
			l := build(false)
			if r := l.run(before, end, now); !r.Clean() || r.Streams[0].Folders != 3 || r.Streams[0].Files != 4 {
				t.Fatalf("clean lake: %+v", r)
			}
			if r := l.run(second, second.Add(time.Second), now); r.Streams[0].Folders != 1 || r.Streams[0].Files != 2 {
				t.Fatalf("a range holding the second bucket audits the whole folder: %+v", r.Streams)
			}
			if r := build(true).run(before, end, now); len(r.Findings) != 1 || r.Findings[0].Kind != OverlappingOffsets {
				t.Fatalf("overlap in one bucket: %+v", r.Findings)
			}

			// One marker for the folder: one finding, at the first bucket,
			// and only once the last bucket is due.
			l.del(l.marker(first))
			l.cursor(first)
			r := l.run(before, end, now)
			if len(r.Findings) != 1 || r.Findings[0].Kind != MarkerPending || r.Findings[0].Hour != first.Format(time.RFC3339) {
				t.Fatalf("folder without marker: %+v", r.Findings)
			}
			firstDue := partitioner.NextHour(first, z.loc).Add(testLateness)
			if r := l.run(before, end, firstDue.Add(time.Second)); !r.Clean() {
				t.Fatalf("folder reported when only its first bucket is due: %+v", r.Findings)
			}
			l.cursor(end)
			if r := l.run(before, end, now); len(r.Findings) != 1 || r.Findings[0].Kind != MarkerMissing {
				t.Fatalf("folder without marker before the cursor: %+v", r.Findings)
			}
		})
	}
}

func TestReportRendering(t *testing.T) {
	l, f := cleanLake(t)
	l.del(f["c"].Path)
	r := l.run(hr(0), hr(5), hr(5))
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"audit 2026-12-01T10:00:00Z .. 2026-12-01T15:00:00Z",
		"clicks: 5 hour folders, 4 with a marker, 6 files and 12 records listed, table lake.clicks references 6 of their files",
		"1 findings:", "clicks 2026-12-01T11:00:00Z missing_file " + f["c"].Path + ": listed by the manifest, not in the lake"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	var back Report
	if err := json.Unmarshal(r.JSON(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Findings) != 1 || back.Findings[0] != r.Findings[0] || back.Streams[0] != r.Streams[0] {
		t.Fatalf("JSON round trip: %+v", back)
	}
	text.Reset()
	clean, _ := cleanLake(t)
	if err := clean.run(hr(0), hr(5), hr(5)).WriteText(&text); err != nil || !strings.Contains(text.String(), "clean: no findings") {
		t.Fatalf("clean report: %v\n%s", err, text.String())
	}
}

// FuzzAuditManifest: whatever a _SUCCESS holds, the audit reports
// findings and never fails or panics; a listed key that is not a valid
// key is a finding, not an access error.
func FuzzAuditManifest(f *testing.F) {
	f.Add([]byte(`{"version":1,"stream":"clicks","hour":"2026-12-01T13:00:00Z","files":[]}`))
	f.Add([]byte(`{"version":1,"stream":"clicks","hour":"2026-12-01T13:00:00Z","files":[{"path":"../x"},{"path":"clicks/dt=2026-12-01/hour=13/clicks+0+00000000000000000016.parquet"}]}`))
	f.Add([]byte(`{"version":1,"files":[{"path":"clicks/dt=2026-12-01/hour=10/clicks+0+00000000000000000000.parquet"},{"path":"/abs"},{"path":""}]}`))
	f.Add([]byte(`{"version":1,"stream":"clicks","hour":"2026-12-01T13:00:00Z","files":[{"path":"clicks/dt=2026-12-01/hour=13/clicks+0+00000000000000000016.parquet","topic":"clicks","sources":[{"topic":"clicks","last_offset":-1}]},{"path":"clicks/dt=2026-12-01/hour=13/compacted+0123456789abcdef.parquet","sources":[]}]}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	l, _ := cleanLake(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		w := &overlay{Writer: l.w, key: l.marker(hr(3)), data: b}
		if _, err := Run(context.Background(), Options{Writer: w, Streams: []Stream{l.st}, From: hr(0), To: hr(5), Now: hr(5)}); err != nil {
			t.Fatalf("audit error for manifest %q: %v", b, err)
		}
	})
}

// overlay is a lake whose object key holds data; audits only read.
type overlay struct {
	writers.Writer
	key  string
	data []byte
}

func (o *overlay) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if key == o.key {
		return io.NopCloser(bytes.NewReader(o.data)), nil
	}
	return o.Writer.Get(ctx, key)
}

// get returns the object at key.
func (l *lake) get(key string) []byte {
	l.t.Helper()
	b, err := readAll(l.ctx, l.w, key)
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

// compact merges the files of inputs (in the lake, of bucket) in that
// order with partitioner.Compact, as the finalizer does, puts the result in
// their folder under its name (partitioner.CompactedFileName) and removes
// the inputs. It returns the compacted file's manifest entry, with the
// footer's sources.
func (l *lake) compact(bucket time.Time, inputs ...completion.ManifestFile) completion.ManifestFile {
	l.t.Helper()
	var ins []partitioner.CompactInput
	for _, e := range inputs {
		b := l.get(e.Path)
		info, meta, err := partitioner.ReadFileInfo(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			l.t.Fatal(err)
		}
		ins = append(ins, partitioner.CompactInput{Key: e.Path, R: bytes.NewReader(b), Size: int64(len(b)), Info: info, Meta: meta})
	}
	spool, info, meta, err := partitioner.Compact(l.ctx, ins, partitioner.CompactOptions{Stream: testStream, Hour: bucket, SpoolDir: l.t.TempDir()})
	if err != nil {
		l.t.Fatal(err)
	}
	b, err := os.ReadFile(spool)
	if err != nil {
		l.t.Fatal(err)
	}
	key := l.st.Path.Render(testStream, bucket) + "/" + partitioner.CompactedFileName(meta.Sources)
	l.put(key, b)
	for _, e := range inputs {
		l.del(e.Path)
	}
	e := completion.ManifestFile{Path: key, Records: info.Records, Bytes: int64(len(b)), Sources: meta.Sources,
		MinEventTime: info.MinEventTime.Format(time.RFC3339Nano), MaxEventTime: info.MaxEventTime.Format(time.RFC3339Nano)}
	if len(partitioner.FolderHours(bucket, l.st.Loc)) > 1 {
		e.Hour = bucket.Format(time.RFC3339)
	}
	return e
}

// plan writes the compaction plan of the folder of bucket: one output,
// out, of inputs, in the format the finalizer writes (sink/completion
// compactionPlan).
func (l *lake) plan(bucket time.Time, out string, inputs ...completion.ManifestFile) {
	l.t.Helper()
	type input struct {
		Key     string               `json:"key"`
		Sources []partitioner.Source `json:"sources"`
	}
	var ins []input
	for _, e := range inputs {
		ins = append(ins, input{e.Path, []partitioner.Source{{Topic: e.Topic, Partition: e.Partition,
			FirstOffset: e.FirstOffset, LastOffset: e.LastOffset, Records: e.Records}}})
	}
	b, err := json.Marshal(map[string]any{"version": 1, "stream": testStream, "folder": l.st.Path.Render(testStream, bucket),
		"outputs": []any{map[string]any{"key": out, "bucket": bucket, "inputs": ins}}})
	if err != nil {
		l.t.Fatal(err)
	}
	l.put(fmt.Sprintf("_lakesink/markers/%s/%s/%s", testStream, bucket.UTC().Format("2006-01-02T15Z"), completion.CompactionPlanName), b)
}

// compactedLake is a stream of two finalized, compacted hours in UTC, as
// the finalizer leaves them with compaction on: hour 0 holds "C", the
// files "a" (partition 0) and "b" (partition 1) merged, beside "x"
// (partition 2), left alone; hour 1 holds "D", two files of partition 0
// merged. The inputs are gone, each hour has its plan, the cursor is at
// hour 2 and the table references the listed files. It returns the
// entries by name, the inputs' included.
func compactedLake(t testing.TB) (*lake, map[string]completion.ManifestFile) {
	l := newLake(t, time.UTC)
	f := map[string]completion.ManifestFile{
		"a":  l.file(hr(0), 0, 0, 9, -1),
		"b":  l.file(hr(0), 1, 0, 4, -1),
		"x":  l.file(hr(0), 2, 0, 2, -1),
		"d1": l.file(hr(1), 0, 10, 12, -1),
		"d2": l.file(hr(1), 0, 13, 15, -1),
	}
	f["C"] = l.compact(hr(0), f["a"], f["b"])
	f["D"] = l.compact(hr(1), f["d1"], f["d2"])
	l.plan(hr(0), f["C"].Path, f["a"], f["b"])
	l.plan(hr(1), f["D"].Path, f["d1"], f["d2"])
	l.manifest(hr(0), f["C"], f["x"])
	l.manifest(hr(1), f["D"])
	l.cursor(hr(2))
	l.table = &fakeTable{}
	for _, e := range []completion.ManifestFile{f["C"], f["x"], f["D"]} {
		l.inTable(e)
	}
	return l, f
}

// TestAuditCompacted: a lake of compacted hours is clean, and each damage
// to one is exactly its finding.
func TestAuditCompacted(t *testing.T) {
	type entries = map[string]completion.ManifestFile
	// restore puts an input of the lake back, as a compaction cut short
	// before removing it leaves it.
	restore := func(l *lake, e completion.ManifestFile) completion.ManifestFile {
		return l.file(hr(0), e.Partition, e.FirstOffset, e.LastOffset, -1)
	}
	cases := []struct {
		name   string
		damage func(l *lake, f entries)
		kind   Kind
		key    func(l *lake, f entries) string
	}{
		{"clean", func(*lake, entries) {}, "", nil},
		{"compacted file in no manifest", func(l *lake, f entries) {
			l.compact(hr(0), l.file(hr(0), 3, 0, 1, -1), l.file(hr(0), 3, 2, 3, -1))
		}, UnlistedFile, func(l *lake, _ entries) string {
			return l.st.Path.Render(testStream, hr(0)) + "/" + partitioner.CompactedFileName([]partitioner.Source{
				{Topic: testTopic, Partition: 3, FirstOffset: 0, LastOffset: 1, Records: 2},
				{Topic: testTopic, Partition: 3, FirstOffset: 2, LastOffset: 3, Records: 2}})
		}},
		{"listed compacted file missing", func(l *lake, f entries) {
			l.del(f["C"].Path)
		}, MissingFile, keyOf("C")},
		{"entry's sources in another order than the footer's", func(l *lake, f entries) {
			c := f["C"]
			c.Sources = []partitioner.Source{c.Sources[1], c.Sources[0]}
			l.manifest(hr(0), c, f["x"])
		}, ManifestMismatch, keyOf("C")},
		{"entry's source with other offsets than the footer's", func(l *lake, f entries) {
			c := f["C"]
			c.Sources = slices.Clone(c.Sources)
			c.Sources[1].LastOffset = 5
			l.manifest(hr(0), c, f["x"])
		}, ManifestMismatch, keyOf("C")},
		{"compacted file's entry without sources", func(l *lake, f entries) {
			c := f["C"]
			c.Sources = nil
			l.manifest(hr(0), c, f["x"])
		}, ManifestMismatch, keyOf("C")},
		{"compacted file's entry with offsets of its own", func(l *lake, f entries) {
			// Manifest.Encode leaves them out of an entry with sources: by hand.
			c := f["C"]
			b := l.manifest(hr(0), c, f["x"]).Encode()
			path := fmt.Sprintf("%q: %q,", "path", c.Path)
			if !bytes.Contains(b, []byte(path)) {
				l.t.Fatalf("no %s in %s", path, b)
			}
			b = bytes.Replace(b, []byte(path), []byte(path+` "topic": "clicks", "partition": 0, "first_offset": 0, "last_offset": 9,`), 1)
			l.put(l.marker(hr(0)), b)
		}, ManifestMismatch, keyOf("C")},
		{"plain file's entry with sources", func(l *lake, f entries) {
			x := f["x"]
			x.Sources = []partitioner.Source{{Topic: testTopic, Partition: 2, FirstOffset: 0, LastOffset: 2, Records: 2}}
			l.manifest(hr(0), f["C"], x)
		}, ManifestMismatch, keyOf("x")},
		{"compacted file under another compacted name", func(l *lake, f entries) {
			c := f["C"]
			c.Path = l.st.Path.Render(testStream, hr(0)) + "/compacted+0123456789abcdef.parquet"
			l.put(c.Path, l.get(f["C"].Path))
			l.del(f["C"].Path)
			l.manifest(hr(0), c, f["x"])
			l.table.refs = slices.DeleteFunc(l.table.refs, func(r string) bool { return strings.HasSuffix(r, f["C"].Path) })
			l.inTable(c)
			f["copy"] = c
		}, ManifestMismatch, keyOf("copy")},
		{"compacted file's entry with other bytes", func(l *lake, f entries) {
			c := f["C"]
			c.Bytes++
			l.manifest(hr(0), c, f["x"])
		}, ManifestMismatch, keyOf("C")},
		{"compacted file's entry with another event time", func(l *lake, f entries) {
			c := f["C"]
			c.MaxEventTime = hr(0).Add(time.Minute).Format(time.RFC3339Nano)
			l.manifest(hr(0), c, f["x"])
		}, ManifestMismatch, keyOf("C")},
		{"compacted file's entry with schema ids its footer lacks", func(l *lake, f entries) {
			c := f["C"]
			c.SchemaIDs, c.SchemaID = []int{7}, 7
			l.manifest(hr(0), c, f["x"])
		}, ManifestMismatch, keyOf("C")},
		{"input left in the folder and listed", func(l *lake, f entries) {
			a := restore(l, f["a"])
			l.manifest(hr(0), f["C"], f["x"], a)
			l.inTable(a)
		}, OverlappingOffsets, keyOf("a")},
		{"input left in the folder, unlisted", func(l *lake, f entries) {
			restore(l, f["b"])
		}, UnlistedFile, keyOf("b")},
		{"listed plain file overlapping a compacted source", func(l *lake, f entries) {
			y := l.file(hr(0), 1, 3, 7, -1) // b was 0-4
			l.manifest(hr(0), f["C"], f["x"], y)
			l.inTable(y)
		}, OverlappingOffsets, func(l *lake, _ entries) string {
			return l.st.Path.FileKey(testStream, hr(0), testTopic, 1, 3)
		}},
		{"two compacted files with overlapping sources", func(l *lake, f entries) {
			// A second compaction of d2 (put back) with another file.
			e := l.compact(hr(1), l.file(hr(1), 0, 13, 15, -1), l.file(hr(1), 1, 0, 3, -1))
			l.manifest(hr(1), f["D"], e)
			l.inTable(e)
			f["E"] = e
		}, OverlappingOffsets, func(_ *lake, f entries) string { return max(f["D"].Path, f["E"].Path) }},
		{"compaction under way is no finding", func(l *lake, f entries) {
			// Hour 2, not due: its plan's output is still to be made.
			ins := []completion.ManifestFile{l.file(hr(2), 0, 16, 17, -1), l.file(hr(2), 0, 18, 19, -1)}
			l.plan(hr(2), l.st.Path.Render(testStream, hr(2))+"/compacted+0123456789abcdef.parquet", ins...)
		}, "", nil},
		{"compaction output missing, inputs gone", func(l *lake, f entries) {
			l.del(f["C"].Path)
			l.manifest(hr(0), f["x"])
			l.table.refs = slices.DeleteFunc(l.table.refs, func(r string) bool { return strings.HasSuffix(r, f["C"].Path) })
		}, CompactionOutputMissing, keyOf("C")},
	}
	// What the message says where another check would report the damage
	// too, in other words.
	msgs := map[string]string{
		"compacted file's entry without sources": "manifest entry without sources",
		"plain file's entry with sources":        "the file is not compacted",
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, f := compactedLake(t)
			c.damage(l, f)
			r := l.run(hr(0), hr(3), hr(3))
			if c.kind == "" {
				want := StreamSummary{Name: testStream, Folders: 3, Marked: 2, Files: 3, Records: 10, Table: "lake.clicks", TableFiles: 3}
				if !r.Clean() || r.Streams[0] != want {
					t.Fatalf("clean compacted lake: findings %+v, summary %+v, want %+v", r.Findings, r.Streams[0], want)
				}
				return
			}
			if len(r.Findings) != 1 {
				t.Fatalf("want exactly one %s finding, got %+v", c.kind, r.Findings)
			}
			got, key := r.Findings[0], c.key(l, f)
			if got.Kind != c.kind || got.Key != key || got.Stream != testStream || got.Hour == "" || !strings.Contains(got.Message, msgs[c.name]) {
				t.Fatalf("finding %+v, want kind %s key %s message with %q", got, c.kind, key, msgs[c.name])
			}
			t.Logf("%s: %s", got.Kind, got.Message)
		})
	}
}
