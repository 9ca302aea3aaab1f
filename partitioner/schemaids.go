package partitioner

import (
	"slices"
	"strconv"
	"strings"
)

// FormatSchemaIDs returns the footer metadata of a registry file holding
// records of the writer schema ids ids (in any order, without duplicates):
// MetaSchemaIDs always, and MetaSchemaID as well when there is exactly one
// id, so that readers of files written before MetaSchemaIDs keep working.
// Nil for no ids.
func FormatSchemaIDs(ids []int) map[string]string {
	if len(ids) == 0 {
		return nil
	}
	s := slices.Sorted(slices.Values(ids))
	parts := make([]string, len(s))
	for i, id := range s {
		parts[i] = strconv.Itoa(id)
	}
	m := map[string]string{MetaSchemaIDs: strings.Join(parts, ",")}
	if len(s) == 1 {
		m[MetaSchemaID] = parts[0]
	}
	return m
}

// SchemaIDs returns the writer schema ids of a file from its footer
// metadata, ascending: MetaSchemaIDs, else (files written before it) the
// single MetaSchemaID. Nil when neither holds positive decimal ids.
func SchemaIDs(meta FileMeta) []int {
	if v, ok := meta.Extra[MetaSchemaIDs]; ok {
		var ids []int
		for p := range strings.SplitSeq(v, ",") {
			id, err := strconv.Atoi(p)
			if err != nil || id <= 0 {
				return nil
			}
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return slices.Compact(ids)
	}
	id, err := strconv.Atoi(meta.Extra[MetaSchemaID])
	if err != nil || id <= 0 {
		return nil
	}
	return []int{id}
}
