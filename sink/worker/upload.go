package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/lakesink/lakesink/sink/retry"
)

// upload puts the finished spool file at path, size bytes, into the lake
// (Env.Writer) under key, retrying with capped exponential backoff and
// jitter until it succeeds or ctx ends. The partition waits meanwhile:
// nothing is committed past records that are not durable.
//
// Every attempt's outcome goes to Env.Health (which logs a fault
// rate-limited): readiness follows the real uploads, so it stays "storage
// unreachable" from the first failed attempt until an upload succeeds.
func upload(ctx context.Context, env *Env, log *slog.Logger, key, path string, size int64) error {
	report, end := env.Health.Upload()
	defer end()
	err := retry.Until(ctx, retry.NewBackoff(100*time.Millisecond, 10*time.Second), func(ctx context.Context) error {
		return putFile(ctx, env, key, path, size)
	}, func(attempt int, err error) {
		env.Metrics.UploadRetries.Inc()
		report(err)
		log.Debug("upload failed, retrying", "key", key, "attempt", attempt, "err", err)
	})
	if err == nil {
		report(nil)
	}
	return err
}

func putFile(ctx context.Context, env *Env, key, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open spool file: %w", err)
	}
	defer f.Close()
	if err := env.Writer.Put(ctx, key, f, size); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}
