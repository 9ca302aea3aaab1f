package completion

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestSplitOrphans(t *testing.T) {
	f := func(path string, p int, first, last int64) ManifestFile {
		return ManifestFile{Path: path, Topic: "t", Partition: p, FirstOffset: first, LastOffset: last}
	}
	files := []ManifestFile{
		f("a", 0, 100, 400), // rebuilt by a replay, covers b
		f("b", 0, 250, 300), // left by the crashed attempt
		f("c", 0, 401, 500),
		f("d", 1, 100, 200), // another partition: independent
		f("e", 0, 500, 600), // starts at c's last offset, but no kept file holds 501-600: unproven
	}
	kept, orphans, unproven := SplitOrphans(files)
	k, o, u := paths(kept), paths(orphans), paths(unproven)
	if want := []string{"a", "c", "d"}; !slices.Equal(k, want) {
		t.Errorf("kept %v, want %v", k, want)
	}
	if want := []string{"b"}; !slices.Equal(o, want) {
		t.Errorf("orphans %v, want %v", o, want)
	}
	if want := []string{"e"}; !slices.Equal(u, want) {
		t.Errorf("unproven %v, want %v", u, want)
	}
}

// TestSplitOrphansNeedsProof: a file overlapping a kept one is deleted
// only when kept files of its bucket hold both its first and its last
// offset; otherwise it is kept back as unproven (never deleted, never
// listed). The rule before this one deleted every file that started within
// a kept one.
func TestSplitOrphansNeedsProof(t *testing.T) {
	f := func(path string, first, last int64) ManifestFile {
		return ManifestFile{Path: path, Topic: "t", FirstOffset: first, LastOffset: last}
	}
	files := []ManifestFile{
		f("a", 100, 200),
		f("b", 150, 300), // 201-300: no kept file holds them
		f("c", 400, 500),
		f("d", 450, 500), // inside c
	}
	kept, orphans, unproven := SplitOrphans(files)
	if k, o, u := paths(kept), paths(orphans), paths(unproven); !slices.Equal(k, []string{"a", "c"}) ||
		!slices.Equal(o, []string{"d"}) || !slices.Equal(u, []string{"b"}) {
		t.Errorf("kept %v orphans %v unproven %v, want [a c] [d] [b]", k, o, u)
	}
}

// TestSplitOrphansBuckets: two hour buckets rendered into one folder (the
// two 01:00 hours of America/New_York on the night clocks go back) hold
// files of one partition whose offset ranges interleave. They are
// different buckets, so neither is an orphan of the other; within a
// bucket the rule applies as before. The rule before this one deleted the
// second bucket's file.
func TestSplitOrphansBuckets(t *testing.T) {
	edt := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC) // 01:00 EDT
	est := time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC) // 01:00 EST
	f := func(path string, bucket time.Time, first, last int64) ManifestFile {
		return ManifestFile{Path: path, Topic: "t", FirstOffset: first, LastOffset: last, Bucket: bucket}
	}
	files := []ManifestFile{
		f("edt", edt, 9918, 15276),
		f("est", est, 9920, 20000), // interleaved with edt's offsets
		f("est-orphan", est, 12000, 13000),
	}
	kept, orphans, unproven := SplitOrphans(files)
	if k, o, u := paths(kept), paths(orphans), paths(unproven); !slices.Equal(k, []string{"edt", "est"}) ||
		!slices.Equal(o, []string{"est-orphan"}) || len(u) != 0 {
		t.Errorf("kept %v orphans %v unproven %v, want [edt est] [est-orphan] []", k, o, u)
	}
}

// TestSplitOrphansGroups: files that finished together (one per writer
// schema family, their ranges overlapping) are one unit when all of them
// are there and agree on the group; a group cut short or broken up by a
// replay is orphaned, and a unit is orphaned like a file when it starts
// within one kept before it.
func TestSplitOrphansGroups(t *testing.T) {
	f := func(path string, first, last int64, group ...int64) ManifestFile {
		return ManifestFile{Path: path, Topic: "t", FirstOffset: first, LastOffset: last, Group: group}
	}
	files := []ManifestFile{
		f("a", 10, 20, 10, 11), // families A and B of one hour, interleaved
		f("b", 11, 19, 10, 11),
		f("c", 21, 30),         // the hour's next file, alone
		f("d", 41, 49, 40, 41), // a crashed attempt uploaded half of its group only, no kept file covers it: unproven
		f("e", 50, 60),         // the replay of a group {50, 52}: one file
		f("g", 52, 58, 50, 52), // left by the crashed attempt: its group's first file is e's now
		f("h", 61, 90),
		f("i", 70, 80, 70, 72), // a crashed attempt's group within h
		f("j", 72, 79, 70, 72),
		f("k", 91, 99, 91, 93, 95), // three families
		f("l", 93, 98, 91, 93, 95),
		f("m", 95, 97, 91, 93, 95),
	}
	kept, orphans, unproven := SplitOrphans(files)
	k, o, u := paths(kept), paths(orphans), paths(unproven)
	if want := []string{"a", "b", "c", "e", "h", "k", "l", "m"}; !slices.Equal(k, want) {
		t.Errorf("kept %v, want %v", k, want)
	}
	if want := []string{"g", "i", "j"}; !slices.Equal(o, want) {
		t.Errorf("orphans %v, want %v", o, want)
	}
	if want := []string{"d"}; !slices.Equal(u, want) {
		t.Errorf("unproven %v, want %v", u, want)
	}
}

// paths returns the files' paths, in order.
func paths(files []ManifestFile) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Path)
	}
	return out
}

// TestSplitOrphansEdgeCases covers what TestSplitOrphans does not: empty
// input, identical first offsets, several topics, chains of orphans,
// unsorted input, and that the input is left alone.
func TestSplitOrphansEdgeCases(t *testing.T) {
	f := func(path, topic string, p int, first, last int64) ManifestFile {
		return ManifestFile{Path: path, Topic: topic, Partition: p, FirstOffset: first, LastOffset: last}
	}
	for _, tc := range []struct {
		name                  string
		files                 []ManifestFile
		kept, orphs, unproven []string // nil: expect none
	}{
		{name: "nil input", files: nil},
		{name: "empty input", files: []ManifestFile{}},
		{name: "single file", files: []ManifestFile{f("a", "t", 0, 5, 9)}, kept: []string{"a"}},
		{
			name:  "identical first offsets: the longer is kept",
			files: []ManifestFile{f("b", "t", 0, 100, 150), f("a", "t", 0, 100, 200)},
			kept:  []string{"a"}, orphs: []string{"b"},
		},
		{
			name: "same partition number in two topics",
			files: []ManifestFile{
				f("x1", "x", 0, 100, 400),
				f("y1", "y", 0, 250, 300), // would be an orphan of x1 in the same topic
				f("x2", "x", 0, 250, 300), // orphan of x1
				f("y2", "y", 0, 260, 270), // orphan of y1
			},
			kept: []string{"x1", "y1"}, orphs: []string{"x2", "y2"},
		},
		{
			name: "candidates do not move the bound",
			files: []ManifestFile{
				f("a", "t", 0, 100, 400),
				f("b", "t", 0, 300, 900), // reaching past a, 461-900 in no kept file: unproven
				f("c", "t", 0, 450, 460), // above a's last: kept
				f("d", "t", 0, 455, 460), // inside c: orphan
			},
			kept: []string{"a", "c"}, orphs: []string{"d"}, unproven: []string{"b"},
		},
		{
			name: "contained file does not lower the bound",
			files: []ManifestFile{
				f("a", "t", 0, 100, 400),
				f("b", "t", 0, 150, 200), // orphan
				f("c", "t", 0, 350, 360), // still below a's last: orphan
				f("d", "t", 0, 401, 410),
			},
			kept: []string{"a", "d"}, orphs: []string{"b", "c"},
		},
		{
			name: "unsorted input, kept sorted by path",
			files: []ManifestFile{
				f("z", "t", 1, 10, 20),
				f("m", "t", 0, 30, 40),
				f("b", "t", 0, 35, 36),
				f("a", "t", 0, 0, 29),
			},
			kept: []string{"a", "m", "z"}, orphs: []string{"b"},
		},
		{
			name: "last offset equal to next first",
			files: []ManifestFile{
				f("a", "t", 2, 10, 10),
				f("b", "t", 2, 11, 12),
				f("c", "t", 2, 12, 12),
			},
			kept: []string{"a", "b"}, orphs: []string{"c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.files)
			kept, orphans, unproven := SplitOrphans(tc.files)
			if !slices.EqualFunc(in, tc.files, func(a, b ManifestFile) bool { return reflect.DeepEqual(a, b) }) {
				t.Errorf("SplitOrphans changed its input: %v, was %v", tc.files, in)
			}
			paths := func(fs []ManifestFile) []string {
				var out []string
				for _, x := range fs {
					out = append(out, x.Path)
				}
				return out
			}
			k, o, u := paths(kept), paths(orphans), paths(unproven)
			if len(k)+len(o)+len(u) != len(tc.files) {
				t.Errorf("kept %v + orphans %v + unproven %v: %d files, want %d", k, o, u, len(k)+len(o)+len(u), len(tc.files))
			}
			if !slices.Equal(u, tc.unproven) {
				t.Errorf("unproven %v, want %v", u, tc.unproven)
			}
			if !slices.Equal(k, tc.kept) {
				t.Errorf("kept %v, want %v", k, tc.kept)
			}
			if !slices.Equal(o, tc.orphs) {
				t.Errorf("orphans %v, want %v", o, tc.orphs)
			}
		})
	}
}

func TestDecodeManifest(t *testing.T) {
	m := Manifest{
		Version: ManifestVersion, Stream: "clicks", Hour: "2026-11-25T13:00:00Z", Revision: 2,
		Ranges:      []HourRange{{Start: "2026-11-25T13:00:00Z", End: "2026-11-25T14:00:00Z"}},
		CompletedAt: "2026-11-25T14:11:00Z", Records: 3,
		Files: []ManifestFile{{Path: "clicks/dt=2026-11-25/hour=13/clicks+0+7.parquet", Records: 3, Bytes: 100,
			Topic: "clicks", FirstOffset: 7, LastOffset: 9, SchemaIDs: []int{4}, SchemaID: 4}},
	}
	got, err := DecodeManifest(m.Encode())
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("DecodeManifest(Encode()) = %+v, %v; want %+v", got, err, m)
	}
	if _, err := DecodeManifest([]byte(`{"revision": "two"}`)); err == nil {
		t.Error("DecodeManifest of a mistyped field succeeded")
	}
}
