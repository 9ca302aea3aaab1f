package factory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/local"
	"github.com/lakesink/lakesink/writers/writertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testStorage returns, for each storage type, settings of a fresh lake on
// that type's test server (its buckets created).
func testStorage(t *testing.T) map[config.StorageType]config.Storage {
	t.Helper()
	def := config.Default().Storage
	out := map[config.StorageType]config.Storage{}

	local := def
	local.Type, local.Local.Root = config.StorageLocal, filepath.Join(t.TempDir(), "lake")
	out[config.StorageLocal] = local

	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "lake")
	s3 := def
	s3.Type = config.StorageS3
	s3.S3.Bucket, s3.S3.Region, s3.S3.Endpoint, s3.S3.ForcePathStyle = "lake", s3srv.Region, s3srv.Endpoint, true
	s3.S3.AccessKeyID, s3.S3.SecretAccessKey = s3srv.AccessKey, s3srv.SecretKey
	out[config.StorageS3] = s3

	gcsSrv := testenv.StartGCS(t)
	gcsSrv.CreateBucket(t, "lake")
	gcs := def
	gcs.Type = config.StorageGCS
	gcs.GCS.Bucket, gcs.GCS.Endpoint = "lake", gcsSrv.Endpoint
	out[config.StorageGCS] = gcs

	h := testenv.StartHDFS(t)
	hdfs := def
	hdfs.Type = config.StorageHDFS
	hdfs.HDFS.Namenodes, hdfs.HDFS.User, hdfs.HDFS.Root = []string{h.Addr}, "lakesink", "/lake"
	out[config.StorageHDFS] = hdfs
	return out
}

// TestEveryTypeBuilds: New builds each storage type from its config block
// as config.Validate checked it; the Writer stores and reads, counts its
// uploads on reg, applies the configured prefix, and read-only mode
// refuses changes.
func TestEveryTypeBuilds(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	for typ, st := range testStorage(t) {
		t.Run(string(typ), func(t *testing.T) {
			cfg := config.Default()
			cfg.Kafka.Brokers = []string{"localhost:9092"}
			s := config.DefaultStream()
			s.Name, s.Topics, s.Schema = "a", []string{"a"}, []config.SchemaColumn{{Name: "id", Type: "string"}}
			cfg.Streams, cfg.Storage = []config.Stream{s}, st
			if err := cfg.Validate(); err != nil {
				t.Fatalf("test settings do not validate: %v", err)
			}
			reg := prometheus.NewRegistry()
			w, err := New(ctx, st, log, reg)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if w.Name() != string(typ) {
				t.Errorf("Name() = %q, want %q", w.Name(), typ)
			}
			writertest.MustPut(t, w, "s/dt=2026-11-25/hour=13/_SUCCESS", []byte("{}"))
			writertest.RequireContent(t, w, "s/dt=2026-11-25/hour=13/_SUCCESS", []byte("{}"))
			if n, err := testutil.GatherAndCount(reg, "lakesink_storage_bytes_written_total"); err != nil || n == 0 {
				t.Errorf("lakesink_storage_bytes_written_total after a Put: %d series, %v; want the Put counted", n, err)
			}

			ro, err := New(ctx, st, log, nil, ReadOnly())
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			if err := ro.Put(ctx, "s/x", bytes.NewReader([]byte("x")), 1); !errors.Is(err, writers.ErrReadOnly) {
				t.Errorf("read-only Put = %v, want ErrReadOnly", err)
			}
			if err := ro.Delete(ctx, "s/dt=2026-11-25/hour=13/_SUCCESS"); !errors.Is(err, writers.ErrReadOnly) {
				t.Errorf("read-only Delete = %v, want ErrReadOnly", err)
			}
			writertest.RequireContent(t, ro, "s/dt=2026-11-25/hour=13/_SUCCESS", []byte("{}"))

			if typ != config.StorageS3 && typ != config.StorageGCS {
				return
			}
			// The prefix reaches the backend: the object lands below it.
			prefixed := st
			prefixed.S3.Prefix, prefixed.GCS.Prefix = "tenant/raw", "tenant/raw"
			pw, err := New(ctx, prefixed, log, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer pw.Close()
			writertest.MustPut(t, pw, "s/k", []byte("p"))
			writertest.RequireContent(t, w, "tenant/raw/s/k", []byte("p"))
			writertest.RequireObjects(t, pw, "", []writers.Object{{Key: "s/k", Size: 1}})
		})
	}
}

// TestNewErrors: an unknown type, and settings a backend rejects (which
// config.Validate rejects too), fail naming the backend, its location and
// the setting.
func TestNewErrors(t *testing.T) {
	ctx := context.Background()
	def := config.Default().Storage
	for _, tc := range []struct {
		edit func(*config.Storage)
		want string
	}{
		{func(s *config.Storage) { s.Type = "azure" }, `storage.type "azure": unknown backend`},
		{func(s *config.Storage) { s.Type, s.S3.Bucket, s.S3.StorageClass = config.StorageS3, "lake", "COLD" },
			`storage s3 s3://lake: s3 config: storage.s3.storage_class: unknown value "COLD"`},
		{func(s *config.Storage) { s.Type, s.GCS.Bucket, s.GCS.ChunkSize = config.StorageGCS, "lake", config.KiB },
			"storage gcs gs://lake: gcs: storage.gcs.chunk_size: must be at least 256KiB, got 1KiB"},
		{func(s *config.Storage) {
			s.Type, s.HDFS.Namenodes, s.HDFS.Root = config.StorageHDFS, []string{"nn:8020"}, "/lake/"
		},
			`storage hdfs hdfs://nn:8020/lake: hdfs config: storage.hdfs.root: must be a clean absolute path ("/lake"), got "/lake/"`},
	} {
		st := def
		tc.edit(&st)
		w, err := New(ctx, st, nil, nil)
		if err == nil {
			w.Close()
			t.Errorf("New(%s) succeeded, want %q", st.Type, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s) = %v, want it to contain %q", st.Type, err, tc.want)
		}
	}
}

// TestSettingsReachBackends: every field of a storage block reaches the
// backend's Config under the same name (what New passes is cfg.S3.Backend()
// and so on), and every other field of the backend's Config is one the
// config file deliberately has no key for. Each field gets a distinct
// value, so a dropped or swapped field fails.
func TestSettingsReachBackends(t *testing.T) {
	for _, tc := range []struct {
		block   any // pointer to the config block, filled in by the test
		backend func(block any) any
		goOnly  []string // backend fields without a config key
	}{
		{new(config.S3Storage), func(b any) any { return b.(*config.S3Storage).Backend() }, []string{"MaxAttempts", "MaxBackoff"}},
		{new(config.GCSStorage), func(b any) any { return b.(*config.GCSStorage).Backend() }, []string{"MaxAttempts"}},
		{new(config.HDFSStorage), func(b any) any { return b.(*config.HDFSStorage).Backend() },
			[]string{"CompleteRetries", "CompleteBackoff", "Attempts", "RetryBackoff", "MaxRetryBackoff", "RPCTimeout"}},
	} {
		src := reflect.ValueOf(tc.block).Elem()
		t.Run(src.Type().Name(), func(t *testing.T) {
			for i := range src.NumField() {
				f := src.Field(i)
				switch f.Kind() {
				case reflect.String:
					f.SetString(fmt.Sprintf("value-%d", i))
				case reflect.Bool:
					f.SetBool(true)
				case reflect.Int, reflect.Int64:
					f.SetInt(int64(1000 + i))
				case reflect.Slice:
					f.Set(reflect.ValueOf([]string{fmt.Sprintf("value-%d-a", i), fmt.Sprintf("value-%d-b", i)}))
				default:
					t.Fatalf("%s.%s: kind %s not handled by this test", src.Type().Name(), src.Type().Field(i).Name, f.Kind())
				}
			}
			dst := reflect.ValueOf(tc.backend(tc.block))
			for i := range src.NumField() {
				name := src.Type().Field(i).Name
				d := dst.FieldByName(name)
				if !d.IsValid() {
					t.Errorf("%s has no field %s", dst.Type(), name)
					continue
				}
				s := src.Field(i)
				var same bool
				switch s.Kind() {
				case reflect.Int, reflect.Int64:
					same = d.CanInt() && d.Int() == s.Int()
				default:
					same = reflect.DeepEqual(d.Interface(), s.Interface())
				}
				if !same {
					t.Errorf("%s.%s = %v, want %v from %s.%s", dst.Type(), name, d.Interface(), s.Interface(), src.Type().Name(), name)
				}
			}
			for i := range dst.NumField() {
				name := dst.Type().Field(i).Name
				if _, ok := src.Type().FieldByName(name); !ok && !slices.Contains(tc.goOnly, name) {
					t.Errorf("%s.%s has no key in %s and is not known to be for Go callers only", dst.Type(), name, src.Type().Name())
				}
			}
		})
	}
}

// TestReadOnlyLocal: a read-only local lake is neither created nor swept
// for temporary files, and refuses writes.
func TestReadOnlyLocal(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default().Storage
	cfg.Type = config.StorageLocal
	cfg.Local.Root = filepath.Join(t.TempDir(), "lake")
	if _, err := New(ctx, cfg, nil, nil, ReadOnly()); err == nil {
		t.Fatal("read-only lake at a missing root opened")
	}
	if _, err := os.Stat(cfg.Local.Root); !os.IsNotExist(err) {
		t.Fatalf("read-only New created the root: %v", err)
	}
	w, err := New(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Put(ctx, "a/b.parquet", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	// A temporary file a crashed upload left: New sweeps it, a read-only
	// New must not.
	tmp := filepath.Join(cfg.Local.Root, "a", local.TempPrefix+"crashed")
	if err := os.WriteFile(tmp, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro, err := New(ctx, cfg, nil, nil, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Put(ctx, "a/c.parquet", bytes.NewReader([]byte("x")), 1); !errors.Is(err, writers.ErrReadOnly) {
		t.Fatalf("Put on a read-only lake: %v", err)
	}
	if err := ro.Delete(ctx, "a/b.parquet"); !errors.Is(err, writers.ErrReadOnly) {
		t.Fatalf("Delete on a read-only lake: %v", err)
	}
	if ok, err := ro.Exists(ctx, "a/b.parquet"); err != nil || !ok {
		t.Fatalf("read through a read-only lake: %v %v", ok, err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("read-only New swept a temporary file: %v", err)
	}
}

// TestNoSetupLocal: with NoSetup a local lake is neither created nor swept
// for temporary files, and takes writes.
func TestNoSetupLocal(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default().Storage
	cfg.Type = config.StorageLocal
	cfg.Local.Root = filepath.Join(t.TempDir(), "lake")
	if _, err := New(ctx, cfg, nil, nil, NoSetup()); err == nil {
		t.Fatal("NoSetup opened a lake at a missing root")
	}
	if _, err := os.Stat(cfg.Local.Root); !os.IsNotExist(err) {
		t.Fatalf("NoSetup created the root: %v", err)
	}
	tmp := filepath.Join(cfg.Local.Root, "a", local.TempPrefix+"crashed")
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := New(ctx, cfg, nil, nil, NoSetup())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Put(ctx, "a/b", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatalf("Put with NoSetup: %v", err)
	}
	if err := w.Delete(ctx, "a/b"); err != nil {
		t.Fatalf("Delete with NoSetup: %v", err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("NoSetup swept a temporary file: %v", err)
	}
}

// TestLocalLogs: the local backend logs to New's logger, as the others do
// (here: the temporary files of crashed uploads it swept).
func TestLocalLogs(t *testing.T) {
	cfg := config.Default().Storage
	cfg.Local.Root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(cfg.Local.Root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Local.Root, "a", local.TempPrefix+"crashed"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&buf, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := buf.String(); !strings.Contains(got, "removed temporary files of interrupted uploads") || !strings.Contains(got, "backend=local") || !strings.Contains(got, "files=1") {
		t.Errorf("log = %q, want the sweep of one file logged with backend=local", got)
	}
}
