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
	var k, o []string
	for _, x := range kept {
		k = append(k, x.Path)
	}
	for _, x := range orphans {
		o = append(o, x.Path)
	}
	if want := []string{"a", "c", "d"}; !slices.Equal(k, want) {
		t.Errorf("kept %v, want %v", k, want)
	}
	if want := []string{"b", "e"}; !slices.Equal(o, want) {
		t.Errorf("orphans %v, want %v", o, want)
	}
}
