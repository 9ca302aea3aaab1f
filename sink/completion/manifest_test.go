package completion

import (
	"slices"
	"testing"
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
		f("e", 0, 500, 600), // starts at c's last offset: orphan
	}
	kept, orphans := SplitOrphans(files)
	k, o := paths(kept), paths(orphans)
	if want := []string{"a", "c", "d"}; !slices.Equal(k, want) {
		t.Errorf("kept %v, want %v", k, want)
	}
	if want := []string{"b", "e"}; !slices.Equal(o, want) {
		t.Errorf("orphans %v, want %v", o, want)
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
		f("d", 41, 49, 40, 41), // a crashed attempt uploaded b's half of its group only
		f("e", 50, 60),         // the replay of a group {50, 52}: one file
		f("g", 52, 58, 50, 52), // left by the crashed attempt: its group's first file is e's now
		f("h", 61, 90),
		f("i", 70, 80, 70, 72), // a crashed attempt's group within h
		f("j", 72, 79, 70, 72),
		f("k", 91, 99, 91, 93, 95), // three families
		f("l", 93, 98, 91, 93, 95),
		f("m", 95, 97, 91, 93, 95),
	}
	kept, orphans := SplitOrphans(files)
	k, o := paths(kept), paths(orphans)
	slices.Sort(o)
	if want := []string{"a", "b", "c", "e", "h", "k", "l", "m"}; !slices.Equal(k, want) {
		t.Errorf("kept %v, want %v", k, want)
	}
	if want := []string{"d", "g", "i", "j"}; !slices.Equal(o, want) {
		t.Errorf("orphans %v, want %v", o, want)
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
