// Package factory builds the configured storage backend. Adding a backend:
// implement writers.Writer in writers/<name>, pass writertest.AcceptanceTest
// against its real test server, and add a case here.
package factory

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/gcs"
	"github.com/lakesink/lakesink/writers/hdfs"
	"github.com/lakesink/lakesink/writers/local"
	"github.com/lakesink/lakesink/writers/s3"
)

// New connects to the backend named by cfg.Type and wraps it with metrics
// (registered on reg when it is not nil). Start-up problems — a missing
// bucket, bad credentials, an unreachable NameNode — are returned as errors
// naming the backend and location. The caller closes the returned Writer.
func New(ctx context.Context, cfg config.Storage, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (writers.Writer, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("backend", string(cfg.Type))
	var (
		w   writers.Writer
		err error
	)
	switch cfg.Type {
	case config.StorageLocal:
		if o.readOnly {
			// local.New creates a missing root and sweeps temporary
			// files of uploads: neither may happen here.
			if _, err := os.Stat(cfg.Local.Root); err != nil {
				return nil, fmt.Errorf("storage %s %s: %w", cfg.Type, cfg.Location(), err)
			}
			w, err = local.New(cfg.Local.Root, local.WithStartupCleanup(false))
			break
		}
		w, err = local.New(cfg.Local.Root)
	case config.StorageS3:
		c := cfg.S3
		w, err = s3.New(ctx, s3.Config{
			Bucket: c.Bucket, Prefix: c.Prefix, Region: c.Region, Endpoint: c.Endpoint, ForcePathStyle: c.ForcePathStyle,
			AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
			SSE: c.SSE, SSEKMSKeyID: c.SSEKMSKeyID, StorageClass: c.StorageClass,
			PartSize: int64(c.PartSize), Concurrency: c.Concurrency,
		}, logger)
	case config.StorageGCS:
		c := cfg.GCS
		w, err = gcs.New(ctx, gcs.Config{
			Bucket: c.Bucket, Prefix: c.Prefix, Endpoint: c.Endpoint,
			CredentialsFile: c.CredentialsFile, ChunkSize: int(c.ChunkSize),
		}, logger)
	case config.StorageHDFS:
		c := cfg.HDFS
		w, err = hdfs.New(hdfs.Config{Namenodes: c.Namenodes, User: c.User, Root: c.Root}, logger)
	default:
		return nil, fmt.Errorf("storage.type %q: unknown backend", cfg.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("storage %s %s: %w", cfg.Type, cfg.Location(), err)
	}
	if reg != nil {
		w = writers.WithMetrics(w, writers.NewMetrics(reg))
	}
	if o.readOnly {
		w = writers.ReadOnly(w)
	}
	// Every call gets a deadline (storage.timeout; uploads more by size),
	// so a storage server that stops answering cannot stall the sink.
	return writers.WithDeadline(w, time.Duration(cfg.Timeout), 1<<20), nil
}

// Option configures New.
type Option func(*options)

type options struct{ readOnly bool }

// ReadOnly makes New change nothing in the lake, for tools such as
// `lakesink audit`: a local root must exist (it is not created, and
// temporary files of uploads in flight are not swept), and the Writer
// refuses Put, PutIfAbsent and Delete (writers.ReadOnly).
func ReadOnly() Option { return func(o *options) { o.readOnly = true } }
