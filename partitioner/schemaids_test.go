package partitioner

import (
	"maps"
	"slices"
	"testing"
)

func TestSchemaIDsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		ids  []int
		want map[string]string
	}{
		{nil, nil},
		{[]int{7}, map[string]string{MetaSchemaIDs: "7", MetaSchemaID: "7"}},
		{[]int{9, 7}, map[string]string{MetaSchemaIDs: "7,9"}},
	} {
		got := FormatSchemaIDs(tc.ids)
		if !maps.Equal(got, tc.want) {
			t.Errorf("FormatSchemaIDs(%v) = %v, want %v", tc.ids, got, tc.want)
		}
		if back := SchemaIDs(FileMeta{Extra: got}); !slices.Equal(back, slices.Sorted(slices.Values(tc.ids))) {
			t.Errorf("SchemaIDs(FormatSchemaIDs(%v)) = %v", tc.ids, back)
		}
	}
}

func TestSchemaIDsFooter(t *testing.T) {
	for _, tc := range []struct {
		extra map[string]string
		want  []int
	}{
		{nil, nil},
		{map[string]string{MetaSchemaID: "123456"}, []int{123456}}, // a file written before schema_ids
		{map[string]string{MetaSchemaID: "x"}, nil},
		{map[string]string{MetaSchemaID: "-3"}, nil},
		{map[string]string{MetaSchemaIDs: "9,7", MetaSchemaID: "1"}, []int{7, 9}},
		{map[string]string{MetaSchemaIDs: "7,x"}, nil},
		{map[string]string{MetaSchemaIDs: ""}, nil},
	} {
		if got := SchemaIDs(FileMeta{Extra: tc.extra}); !slices.Equal(got, tc.want) {
			t.Errorf("SchemaIDs(%v) = %v, want %v", tc.extra, got, tc.want)
		}
	}
}
