// Package lakecheck reads a lake back for tests: manifests, and data files
// with parquet-go's reader, independently of the sink's own code paths.
package lakecheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/writers"
)

// ReadManifest reads and decodes an hour's _SUCCESS.
func ReadManifest(t testing.TB, w writers.Writer, key string) completion.Manifest {
	t.Helper()
	rc, err := w.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	var m completion.Manifest
	dec := json.NewDecoder(rc)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode manifest %s: %v", key, err)
	}
	return m
}

// ReadParquet reads every row of a data file as column name -> Go value
// (nil for null), and returns the file's schema for type checks.
func ReadParquet(t testing.TB, w writers.Writer, key string) ([]map[string]any, *parquet.Schema) {
	t.Helper()
	f := OpenParquet(t, w, key)
	schema := f.Schema()
	names := map[int]string{}
	for _, path := range schema.Columns() {
		leaf, _ := schema.Lookup(path...)
		names[leaf.ColumnIndex] = strings.Join(path, ".")
	}
	r := parquet.NewReader(f)
	defer r.Close()
	var out []map[string]any
	buf := make([]parquet.Row, 128)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			m := map[string]any{}
			for _, v := range row {
				name := names[v.Column()]
				if v.IsNull() {
					m[name] = nil
					continue
				}
				switch v.Kind() {
				case parquet.ByteArray:
					m[name] = string(v.ByteArray())
				case parquet.Int32:
					m[name] = v.Int32()
				case parquet.Int64:
					m[name] = v.Int64()
				case parquet.Double:
					m[name] = v.Double()
				case parquet.Float:
					m[name] = v.Float()
				case parquet.Boolean:
					m[name] = v.Boolean()
				default:
					m[name] = fmt.Sprint(v)
				}
			}
			out = append(out, m)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read rows of %s: %v", key, err)
		}
	}
	return out, schema
}

// OpenParquet reads a data file of the lake and opens it with parquet-go
// (its footer: Lookup).
func OpenParquet(t testing.TB, w writers.Writer, key string) *parquet.File {
	t.Helper()
	rc, err := w.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("open parquet %s: %v", key, err)
	}
	return f
}
