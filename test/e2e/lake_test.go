package e2e

import (
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/sink"
	"github.com/lakesink/lakesink/test/lakecheck"
	"github.com/lakesink/lakesink/writers"
)

func readManifest(t *testing.T, w writers.Writer, key string) sink.Manifest {
	t.Helper()
	return lakecheck.ReadManifest(t, w, key)
}

func readParquet(t *testing.T, w writers.Writer, key string) ([]map[string]any, *parquet.Schema) {
	t.Helper()
	return lakecheck.ReadParquet(t, w, key)
}
