// Package factory builds the configured storage backend. Adding a backend:
// implement writers.Writer in writers/<name> with a Config whose Validate
// reports what New rejects, pass writertest.AcceptanceTest against its real
// test server, add its block to package config (with a Backend method that
// config.Validate checks) and a case here.
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
	// Each backend gets the settings config.Validate has checked with the
	// backend's own rules: cfg.S3.Backend() and so on.
	switch cfg.Type {
	case config.StorageLocal:
		lopts := []local.Option{local.WithLogger(logger)}
		if o.readOnly || o.noSetup {
			// local.New creates a missing root and sweeps temporary
			// files of uploads: neither may happen here.
			if _, err := os.Stat(cfg.Local.Root); err != nil {
				return nil, fmt.Errorf("storage %s %s: %w", cfg.Type, cfg.Location(), err)
			}
			lopts = append(lopts, local.WithStartupCleanup(false))
		}
		w, err = local.New(cfg.Local.Root, lopts...)
	case config.StorageS3:
		w, err = s3.New(ctx, cfg.S3.Backend(), logger)
	case config.StorageGCS:
		w, err = gcs.New(ctx, cfg.GCS.Backend(), logger)
	case config.StorageHDFS:
		w, err = hdfs.New(cfg.HDFS.Backend(), logger)
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

type options struct{ readOnly, noSetup bool }

// ReadOnly makes New change nothing in the lake, for tools such as
// `lakesink audit`: a local root must exist (it is not created, and
// temporary files of uploads in flight are not swept), and the Writer
// refuses Put, PutIfAbsent and Delete (writers.ReadOnly).
func ReadOnly() Option { return func(o *options) { o.readOnly = true } }

// NoSetup makes New itself change nothing in the lake, for `lakesink
// validate --connect`, which writes and deletes one probe object and
// nothing else: a local root must exist (it is not created, and temporary
// files of uploads in flight are not swept). Unlike ReadOnly, the Writer
// writes.
func NoSetup() Option { return func(o *options) { o.noSetup = true } }
