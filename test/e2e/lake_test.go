package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/test/lakecheck"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/local"
)

func readManifest(t *testing.T, w writers.Writer, key string) completion.Manifest {
	t.Helper()
	return lakecheck.ReadManifest(t, w, key)
}

func readParquet(t *testing.T, w writers.Writer, key string) ([]map[string]any, *parquet.Schema) {
	t.Helper()
	return lakecheck.ReadParquet(t, w, key)
}

// awaitLocalManifest waits up to timeout for the _SUCCESS marker of folder
// in the local lake at root, then returns the lake and the manifest.
func awaitLocalManifest(t *testing.T, root, folder string, timeout time.Duration) (writers.Writer, completion.Manifest) {
	t.Helper()
	testenv.Eventually(t, timeout, 250*time.Millisecond, fmt.Sprintf("marker of %s", folder), func() error {
		_, err := os.Stat(filepath.Join(root, folder, "_SUCCESS"))
		return err
	})
	lake, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return lake, readManifest(t, lake, folder+"/_SUCCESS")
}
