package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/lakesink/lakesink/writers"
)

// validStorageConfig is a Config that passes Validate, with storage of type
// typ filled in with values every backend accepts.
func validStorageConfig(typ StorageType) *Config {
	c := Default()
	c.Kafka.Brokers = []string{"localhost:9092"}
	s := DefaultStream()
	s.Name, s.Topics, s.Schema = "a", []string{"a"}, []SchemaColumn{{Name: "id", Type: "string"}}
	c.Streams = []Stream{s}
	c.Storage.Type = typ
	c.Storage.S3.Bucket = "lake"
	c.Storage.GCS.Bucket = "lake"
	c.Storage.HDFS.Namenodes = []string{"nn:8020"}
	return c
}

// backendProblems returns the problems the backend of s's type reports on
// the settings writers/factory would pass to its New.
func backendProblems(s Storage) []*writers.SettingError {
	switch s.Type {
	case StorageS3:
		return writers.SettingErrors(s.S3.Backend().Validate())
	case StorageGCS:
		return writers.SettingErrors(s.GCS.Backend().Validate())
	case StorageHDFS:
		return writers.SettingErrors(s.HDFS.Backend().Validate())
	}
	return nil
}

// storageKeyRows has rows for every key of storage.local, storage.s3,
// storage.gcs and storage.hdfs (TestStorageKeysCovered checks that): values
// the backend's New rejects, which Validate must reject at the key's YAML
// path, or, for a key the backend takes as it comes, why. Rows marked
// config are rules of the config file only (the backend accepts the
// value); the others are the backend's own rule, which TestStorageKeys
// checks the backend reports too.
var storageKeyRows = []struct {
	key     string // YAML path
	edit    func(*Storage)
	want    string // the problem Validate reports at key
	config  bool   // a rule of the config file only
	backend string // the backend's problem when it differs from want (the config file's rule reports first)
	why     string // for a key without a rule: why not
}{
	{key: "storage.local.root", edit: func(s *Storage) { s.Local.Root = "" }, want: "required when storage.type is local", config: true},

	{key: "storage.s3.bucket", edit: func(s *Storage) { s.S3.Bucket = "" }, want: "required when storage.type is s3"},
	{key: "storage.s3.prefix", edit: func(s *Storage) { s.S3.Prefix = "raw//events" }, want: `invalid key "raw//events": empty path segment`},
	{key: "storage.s3.prefix", edit: func(s *Storage) { s.S3.Prefix = "raw/../x" }, want: `invalid key "raw/../x": ".." path segment`},
	{key: "storage.s3.prefix", edit: func(s *Storage) { s.S3.Prefix = "/raw" }, want: `must not start with '/', got "/raw"`, config: true},
	{key: "storage.s3.region", why: "any name: the SDK signs for it, and a wrong one fails New's bucket check"},
	{key: "storage.s3.endpoint", edit: func(s *Storage) { s.S3.Endpoint = "localhost:7070" }, want: `want an http:// or https:// URL with a host, got "localhost:7070"`, config: true},
	{key: "storage.s3.force_path_style", why: "a bool"},
	{key: "storage.s3.access_key_id", why: "checked together with secret_access_key, where a problem is reported (next rows)"},
	{key: "storage.s3.secret_access_key", edit: func(s *Storage) { s.S3.AccessKeyID = "AKIA" }, want: "access_key_id and secret_access_key go together: set both or neither"},
	{key: "storage.s3.secret_access_key", edit: func(s *Storage) { s.S3.SecretAccessKey = "s" }, want: "access_key_id and secret_access_key go together: set both or neither"},
	{key: "storage.s3.session_token", edit: func(s *Storage) { s.S3.SessionToken = "t" }, want: "needs access_key_id and secret_access_key"},
	{key: "storage.s3.sse", edit: func(s *Storage) { s.S3.SSE = "aes" }, want: `unknown value "aes" (want one of "", AES256, aws:kms)`},
	{key: "storage.s3.sse_kms_key_id", edit: func(s *Storage) { s.S3.SSE, s.S3.SSEKMSKeyID = "AES256", "k" }, want: `only with sse "aws:kms"`},
	{key: "storage.s3.storage_class", edit: func(s *Storage) { s.S3.StorageClass = "COLD" }, want: `unknown value "COLD" (want "" for the bucket's default or one of STANDARD, `},
	{key: "storage.s3.storage_class", edit: func(s *Storage) { s.S3.StorageClass = "standard" }, want: `unknown value "standard"`},
	{key: "storage.s3.part_size", edit: func(s *Storage) { s.S3.PartSize = 5*MiB - 1 }, want: "must be between 5MiB and 5GiB, got 5242879"},
	{key: "storage.s3.part_size", edit: func(s *Storage) { s.S3.PartSize = 6 * GiB }, want: "must be between 5MiB and 5GiB, got 6GiB"},
	{key: "storage.s3.part_size", edit: func(s *Storage) { s.S3.PartSize = 0 }, want: "must be between 5MiB and 5GiB, got 0"},
	{key: "storage.s3.concurrency", edit: func(s *Storage) { s.S3.Concurrency = 0 }, want: "must be at least 1, got 0"},
	{key: "storage.s3.concurrency", edit: func(s *Storage) { s.S3.Concurrency = -3 }, want: "must be at least 1, got -3"},

	{key: "storage.gcs.bucket", edit: func(s *Storage) { s.GCS.Bucket = "" }, want: "required when storage.type is gcs"},
	{key: "storage.gcs.prefix", edit: func(s *Storage) { s.GCS.Prefix = `raw\events` }, want: `invalid key "raw\\events": backslash`},
	{key: "storage.gcs.prefix", edit: func(s *Storage) { s.GCS.Prefix = "/raw" }, want: `must not start with '/', got "/raw"`, config: true},
	{key: "storage.gcs.endpoint", edit: func(s *Storage) { s.GCS.Endpoint = "ftp://x" }, want: `want an http:// or https:// URL with a host, got "ftp://x"`,
		backend: `"ftp://x": scheme must be http or https`},
	{key: "storage.gcs.endpoint", edit: func(s *Storage) { s.GCS.Endpoint = "localhost:4443" }, want: `want an http:// or https:// URL with a host, got "localhost:4443"`, config: true},
	{key: "storage.gcs.credentials_file", why: "read by New: Validate does not touch the file system"},
	{key: "storage.gcs.chunk_size", edit: func(s *Storage) { s.GCS.ChunkSize = 255 * KiB }, want: "must be at least 256KiB, got 255KiB"},
	{key: "storage.gcs.chunk_size", edit: func(s *Storage) { s.GCS.ChunkSize = 0 }, want: "must be at least 256KiB, got 0"},

	{key: "storage.hdfs.namenodes", edit: func(s *Storage) { s.HDFS.Namenodes = nil }, want: "at least one namenode required when storage.type is hdfs"},
	{key: "storage.hdfs.namenodes[1]", edit: func(s *Storage) { s.HDFS.Namenodes = []string{"nn:8020", "nn"} }, want: `want host:port, got "nn"`},
	{key: "storage.hdfs.namenodes[0]", edit: func(s *Storage) { s.HDFS.Namenodes = []string{"nn:0"} }, want: `invalid port in "nn:0"`},
	{key: "storage.hdfs.user", why: "any name (simple authentication)"},
	{key: "storage.hdfs.root", edit: func(s *Storage) { s.HDFS.Root = "lake" }, want: `must be an absolute path, got "lake"`},
	{key: "storage.hdfs.root", edit: func(s *Storage) { s.HDFS.Root = "/lake/" }, want: `must be a clean absolute path ("/lake"), got "/lake/"`},
	{key: "storage.hdfs.root", edit: func(s *Storage) { s.HDFS.Root = "/a/./b" }, want: `must be a clean absolute path ("/a/b"), got "/a/./b"`},
}

// TestStorageKeys: Validate rejects every value a storage backend rejects,
// at the key's YAML path, and the backend's Validate (which its New calls
// on what writers/factory passes) reports the same problem.
func TestStorageKeys(t *testing.T) {
	for _, row := range storageKeyRows {
		if row.edit == nil {
			continue
		}
		typ := StorageType(strings.Split(row.key, ".")[1])
		t.Run(row.key+"/"+row.want, func(t *testing.T) {
			c := validStorageConfig(typ)
			if err := c.Validate(); err != nil {
				t.Fatalf("base config: %v", err)
			}
			row.edit(&c.Storage)
			var got []string
			for _, p := range Problems(c.Validate()) {
				got = append(got, p.Error())
			}
			want := row.key + ": " + row.want
			if len(got) != 1 || !strings.HasPrefix(got[0], want) {
				t.Fatalf("Validate = %q, want one problem starting %q", got, want)
			}
			var backend []string
			for _, p := range backendProblems(c.Storage) {
				backend = append(backend, p.Error())
			}
			if row.backend != "" {
				want = row.key + ": " + row.backend
			}
			switch {
			case row.config && len(backend) > 0:
				t.Errorf("backend reports %q for a rule of the config file only", backend)
			case !row.config && (len(backend) != 1 || !strings.HasPrefix(backend[0], want)):
				t.Errorf("backend reports %q, want %q", backend, want)
			}
		})
	}
}

// TestStorageKeysCovered: every key of the storage blocks has a row in
// storageKeyRows, so a new key cannot be added without deciding what the
// backend rejects.
func TestStorageKeysCovered(t *testing.T) {
	rows := map[string]bool{}
	for _, r := range storageKeyRows {
		key, _, _ := strings.Cut(r.key, "[")
		rows[key] = true
		if r.edit == nil && r.why == "" {
			t.Errorf("row %s has neither a value nor a reason", r.key)
		}
	}
	for _, block := range []struct {
		name string
		v    any
	}{{"local", LocalStorage{}}, {"s3", S3Storage{}}, {"gcs", GCSStorage{}}, {"hdfs", HDFSStorage{}}} {
		typ := reflect.TypeOf(block.v)
		for i := range typ.NumField() {
			key := "storage." + block.name + "." + typ.Field(i).Tag.Get("yaml")
			if !rows[key] {
				t.Errorf("%s (%s.%s) has no row in storageKeyRows", key, typ.Name(), typ.Field(i).Name)
			}
		}
	}
}

// TestStorageURL pins the storage URLs and locations every user builds
// from Storage.URL: completion events' asset_uri, Iceberg table roots, the
// `lakesink validate` summary.
func TestStorageURL(t *testing.T) {
	for _, tc := range []struct {
		s         Storage
		elem      []string
		want, loc string
	}{
		{Storage{Type: StorageS3, S3: S3Storage{Bucket: "b"}}, nil, "s3://b", "s3://b"},
		{Storage{Type: StorageS3, S3: S3Storage{Bucket: "b", Prefix: "/raw/events/"}}, []string{"clicks"}, "s3://b/raw/events/clicks", "s3://b/raw/events"},
		{Storage{Type: StorageGCS, GCS: GCSStorage{Bucket: "b", Prefix: "p/"}}, nil, "gs://b/p", "gs://b/p"},
		{Storage{Type: StorageGCS, GCS: GCSStorage{Bucket: "b"}}, []string{"iot", "dt=2026-11-25"}, "gs://b/iot/dt=2026-11-25", "gs://b"},
		{Storage{Type: StorageHDFS, HDFS: HDFSStorage{Namenodes: []string{"nn:8020", "nn2:8020"}, Root: "/lake"}}, nil, "hdfs://nn:8020/lake", "hdfs://nn:8020/lake"},
		{Storage{Type: StorageHDFS, HDFS: HDFSStorage{Namenodes: []string{"nn:8020"}, Root: "/"}}, []string{"clicks"}, "hdfs://nn:8020/clicks", "hdfs://nn:8020/"},
		{Storage{Type: StorageLocal, Local: LocalStorage{Root: "/data/lake"}}, []string{"clicks"}, "file:///data/lake/clicks", "/data/lake"},
		{Storage{Type: StorageLocal, Local: LocalStorage{Root: "/data/lake/"}}, nil, "file:///data/lake", "/data/lake/"},
	} {
		if got := tc.s.URL(tc.elem...); got != tc.want {
			t.Errorf("%+v.URL(%q) = %q, want %q", tc.s, tc.elem, got, tc.want)
		}
		if got := tc.s.Location(); got != tc.loc {
			t.Errorf("%+v.Location() = %q, want %q", tc.s, got, tc.loc)
		}
	}
	// A relative local root is made absolute.
	s := Storage{Type: StorageLocal, Local: LocalStorage{Root: "lake"}}
	if got := s.URL("a"); !strings.HasPrefix(got, "file:///") || !strings.HasSuffix(got, "/lake/a") || strings.Contains(got, "//lake") {
		t.Errorf("URL of a relative root = %q, want file:///<cwd>/lake/a", got)
	}
}
