package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers/factory"
	"github.com/lakesink/lakesink/writers/local"
)

// backends lists every storage backend the end-to-end test runs against,
// each backed by its real test server.
var backends = []struct {
	name string
	open func(*testing.T) backend
}{{"local", localBackend}, {"s3", s3Backend}, {"gcs", gcsBackend}, {"hdfs", hdfsBackend}}

func localBackend(t *testing.T) backend {
	return localBackendAt(t, filepath.Join(t.TempDir(), "lake"))
}

// localBackendAt is a local lake at root.
func localBackendAt(t *testing.T, root string) backend {
	w, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return backend{name: "local", storage: fmt.Sprintf("storage:\n  type: local\n  local: {root: %q}\n", root), lake: w}
}

// openLake opens the same lake the sink writes, through the same factory.
func openLake(t *testing.T, s config.Storage) backend {
	t.Helper()
	w, err := factory.New(context.Background(), s, nil, nil)
	if err != nil {
		t.Fatalf("open %s lake: %v", s.Type, err)
	}
	t.Cleanup(func() { w.Close() })
	return backend{name: string(s.Type), lake: w}
}

func s3Backend(t *testing.T) backend {
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "lake")
	c := config.Default().Storage
	c.Type = config.StorageS3
	c.S3.Bucket, c.S3.Prefix, c.S3.Region, c.S3.Endpoint, c.S3.ForcePathStyle = "lake", "events", srv.Region, srv.Endpoint, true
	c.S3.AccessKeyID, c.S3.SecretAccessKey = srv.AccessKey, srv.SecretKey
	b := openLake(t, c)
	// The secret comes from the environment, as in production.
	b.storage = fmt.Sprintf("storage:\n  type: s3\n  s3: {bucket: lake, prefix: events, region: %s, endpoint: %q, force_path_style: true,\n       access_key_id: %s, secret_access_key: \"${E2E_S3_SECRET}\", part_size: 5MiB}\n",
		srv.Region, srv.Endpoint, srv.AccessKey)
	b.env = []string{"E2E_S3_SECRET=" + srv.SecretKey}
	b.stop, b.restart = srv.Stop, srv.Restart
	b.s3 = srv
	b.check = func(t *testing.T) {
		if n := srv.ListMultipartUploads(t, "lake"); n != 0 {
			t.Errorf("%d multipart uploads left in the S3 server", n)
		}
	}
	return b
}

func gcsBackend(t *testing.T) backend {
	srv := testenv.StartGCS(t)
	srv.CreateBucket(t, "lake")
	c := config.Default().Storage
	c.Type = config.StorageGCS
	c.GCS.Bucket, c.GCS.Prefix, c.GCS.Endpoint = "lake", "events", srv.Endpoint
	b := openLake(t, c)
	b.storage = fmt.Sprintf("storage:\n  type: gcs\n  gcs: {bucket: lake, prefix: events, endpoint: %q}\n", srv.Endpoint)
	b.stop, b.restart = srv.Stop, srv.Restart
	b.gcsEndpoint = srv.Endpoint
	return b
}

func hdfsBackend(t *testing.T) backend {
	srv := testenv.StartHDFS(t)
	c := config.Default().Storage
	c.Type = config.StorageHDFS
	c.HDFS.Namenodes, c.HDFS.User, c.HDFS.Root = []string{srv.Addr}, "lakesink", "/lake"
	b := openLake(t, c)
	b.storage = fmt.Sprintf("storage:\n  type: hdfs\n  hdfs: {namenodes: [%q], user: lakesink, root: /lake}\n", srv.Addr)
	b.stop, b.restart = srv.Stop, srv.Restart
	return b
}
