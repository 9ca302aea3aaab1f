package worker

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
)

// TestSchemaIDFooter: a registry file's footer carries its writer schema
// ids, and the single id under the old key when there is one.
func TestSchemaIDFooter(t *testing.T) {
	schema, err := partitioner.NewSchema("s", []partitioner.Column{{Name: "id", Type: partitioner.TypeInt64, Required: true}})
	if err != nil {
		t.Fatal(err)
	}
	x := &registryFormat{}
	for _, tc := range []struct {
		ids      []int
		one, all string
	}{
		{nil, "", ""},
		{[]int{123456}, "123456", "123456"},
		{[]int{9, 7}, "", "7,9"},
	} {
		p := filepath.Join(t.TempDir(), "f.parquet")
		fw, err := partitioner.NewFileWriter(p, schema, partitioner.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := fw.Append([]parquet.Value{parquet.Int64Value(7)}, 10, time.UnixMilli(1000)); err != nil {
			t.Fatal(err)
		}
		f := &openFile{fw: fw, spool: p, reg: &registryFile{ids: tc.ids}}
		if _, err := fw.Finish(partitioner.FileMeta{Stream: "s", Topic: "t", Hour: time.UnixMilli(0).UTC(), Extra: x.footer(f)}); err != nil {
			t.Fatal(err)
		}
		r, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := r.Stat()
		_, meta, err := partitioner.ReadFileInfo(r, fi.Size())
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := meta.Extra[partitioner.MetaSchemaID]; got != tc.one {
			t.Errorf("ids %v: %s = %q, want %q", tc.ids, partitioner.MetaSchemaID, got, tc.one)
		}
		if got := meta.Extra[partitioner.MetaSchemaIDs]; got != tc.all {
			t.Errorf("ids %v: %s = %q, want %q", tc.ids, partitioner.MetaSchemaIDs, got, tc.all)
		}
	}
}
