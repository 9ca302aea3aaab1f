package config

import (
	"path/filepath"
	"strings"

	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/gcs"
	"github.com/lakesink/lakesink/writers/hdfs"
	"github.com/lakesink/lakesink/writers/s3"
)

// The storage settings are checked in one place per backend: its
// Config.Validate (writers/s3, writers/gcs, writers/hdfs), which the
// backend's New calls too. validateStorage runs it on what Backend returns
// — exactly what writers/factory passes to New — so `lakesink validate`
// rejects every value a backend would. The config file adds only rules of
// its own: the block of the chosen type must be filled in, prefixes are
// written without a leading '/', endpoints as http(s) URLs.

// Backend returns the settings the s3 backend runs with: the config file's,
// and the backend's defaults for what the file has no key for (retry
// attempts and backoff). writers/factory passes exactly this to s3.New.
func (s S3Storage) Backend() s3.Config {
	return s3.Config{
		Bucket: s.Bucket, Prefix: s.Prefix, Region: s.Region, Endpoint: s.Endpoint, ForcePathStyle: s.ForcePathStyle,
		AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey, SessionToken: s.SessionToken,
		SSE: s.SSE, SSEKMSKeyID: s.SSEKMSKeyID, StorageClass: s.StorageClass,
		PartSize: s.PartSize.Bytes(), Concurrency: s.Concurrency,
		MaxAttempts: s3.DefaultMaxAttempts, MaxBackoff: s3.DefaultMaxBackoff,
	}
}

// Backend returns the settings the gcs backend runs with (retries are
// bounded only by the call's context, the backend's default).
// writers/factory passes exactly this to gcs.New.
func (s GCSStorage) Backend() gcs.Config {
	return gcs.Config{
		Bucket: s.Bucket, Prefix: s.Prefix, Endpoint: s.Endpoint,
		CredentialsFile: s.CredentialsFile, ChunkSize: int(s.ChunkSize),
	}
}

// Backend returns the settings the hdfs backend runs with (its retry and
// timeout defaults for the rest). writers/factory passes exactly this to
// hdfs.New; the Namenodes slice is shared with s.
func (s HDFSStorage) Backend() hdfs.Config {
	return hdfs.Config{Namenodes: s.Namenodes, User: s.User, Root: s.Root}
}

func (c *Config) validateStorage(p *problems) {
	s := c.Storage
	oneOf("storage.type", p, s.Type, StorageLocal, StorageS3, StorageGCS, StorageHDFS)
	p.positiveDuration("storage.timeout", s.Timeout)
	switch s.Type {
	case StorageLocal:
		// local.New creates a missing root; what else fails (permissions,
		// a file in the way) is on the file system, which Validate does
		// not touch.
		if s.Local.Root == "" {
			p.add("storage.local.root", "required when storage.type is local")
		}
	case StorageS3:
		checkPrefix(p, "storage.s3.prefix", s.S3.Prefix)
		checkEndpoint(p, "storage.s3.endpoint", s.S3.Endpoint)
		p.backend(s.S3.Backend().Validate())
	case StorageGCS:
		checkPrefix(p, "storage.gcs.prefix", s.GCS.Prefix)
		checkEndpoint(p, "storage.gcs.endpoint", s.GCS.Endpoint)
		p.backend(s.GCS.Backend().Validate())
	case StorageHDFS:
		p.backend(s.HDFS.Backend().Validate())
	}
}

// backend adds the problems a backend's Config.Validate found, each at the
// YAML path its *writers.SettingError names, except at a path that already
// has a problem: the config file's own rule said it there first (a prefix
// with a leading '/', an endpoint that is no http(s) URL), and the
// backend's would only repeat it.
func (p *problems) backend(err error) {
	if err == nil {
		return
	}
	ses := writers.SettingErrors(err)
	if len(ses) == 0 {
		p.add("storage", "%v", err) // not a backend's Validate; never expected
		return
	}
	for _, e := range ses {
		if !p.has(e.Setting) {
			p.add(e.Setting, "%s", e.Problem)
		}
	}
}

// has reports whether a problem at path was added already.
func (p *problems) has(path string) bool {
	for _, e := range *p {
		if e.Path == path {
			return true
		}
	}
	return false
}

func checkPrefix(p *problems, path, prefix string) {
	if strings.HasPrefix(prefix, "/") {
		p.add(path, "must not start with '/', got %q", prefix)
	}
}

func checkEndpoint(p *problems, path, endpoint string) {
	if endpoint == "" {
		return
	}
	if err := checkURL(endpoint); err != nil {
		p.add(path, "%v", err)
	}
}

// Location describes where the lake is for the configured type, for
// messages: the local root as configured ("./lake"), else URL():
// "s3://bucket/prefix", "gs://bucket/prefix", "hdfs://namenode:8020/lake".
// It holds no credentials.
func (s Storage) Location() string {
	switch s.Type {
	case StorageLocal:
		return s.Local.Root
	case StorageS3, StorageGCS, StorageHDFS:
		return s.URL()
	}
	return ""
}

// URL returns the URL of the lake folder elem (path segments below the
// storage root; none: the root itself). Everything that names lake data by
// URL builds it here: completion events' asset_uri, the Iceberg tables'
// root, Location.
//
//	s3://bucket/prefix/elem
//	gs://bucket/prefix/elem
//	hdfs://namenode:8020/root/elem   (the first NameNode)
//	file:///abs/root/elem            (the local root made absolute)
//
// Slashes around each part are dropped and empty parts skipped, so a
// prefix written "/raw/" names the same folder as "raw". A Storage of no
// known type is taken as local. It holds no credentials.
func (s Storage) URL(elem ...string) string {
	join := func(parts ...string) string {
		var out []string
		for _, p := range append(parts, elem...) {
			if p = strings.Trim(p, "/"); p != "" {
				out = append(out, p)
			}
		}
		return strings.Join(out, "/")
	}
	switch s.Type {
	case StorageS3:
		return "s3://" + join(s.S3.Bucket, s.S3.Prefix)
	case StorageGCS:
		return "gs://" + join(s.GCS.Bucket, s.GCS.Prefix)
	case StorageHDFS:
		nn := ""
		if len(s.HDFS.Namenodes) > 0 {
			nn = s.HDFS.Namenodes[0]
		}
		return "hdfs://" + nn + "/" + join(s.HDFS.Root)
	default:
		root, err := filepath.Abs(s.Local.Root)
		if err != nil {
			root = s.Local.Root
		}
		return "file:///" + join(filepath.ToSlash(root))
	}
}
