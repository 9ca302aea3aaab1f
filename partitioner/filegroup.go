package partitioner

import (
	"slices"
	"strconv"
	"strings"
)

// MetaFileGroup holds, in the footer of a file that finished together
// with other files of its partition-hour, the first offsets of all of them
// (itself included), ascending and comma-separated. A registry stream
// with derived columns writes one file per family of compatible writer
// schemas of an hour, and the hour's files finish together; their offset
// ranges overlap, which the finalizer's orphan rule must tell from the
// files of a crashed attempt (completion.SplitOrphans). Absent on a file
// that finished alone.
const MetaFileGroup = "lakesink.file_group"

// FormatFileGroup returns the footer metadata of a file of group, the
// first offsets of the files that finish together.
func FormatFileGroup(group []int64) map[string]string {
	g := slices.Sorted(slices.Values(group))
	parts := make([]string, len(g))
	for i, o := range g {
		parts[i] = strconv.FormatInt(o, 10)
	}
	return map[string]string{MetaFileGroup: strings.Join(parts, ",")}
}

// FileGroup returns the group of a file from its footer metadata,
// ascending; nil if it finished alone or the value is malformed.
func FileGroup(meta FileMeta) []int64 {
	v, ok := meta.Extra[MetaFileGroup]
	if !ok || v == "" {
		return nil
	}
	var g []int64
	for p := range strings.SplitSeq(v, ",") {
		o, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil
		}
		g = append(g, o)
	}
	slices.Sort(g)
	return g
}
