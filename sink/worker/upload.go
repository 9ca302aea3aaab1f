package worker

import (
	"context"
	"fmt"
	"io"
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
//
// The spool file is opened once, before the first attempt: a file that
// cannot be opened is a spool fault, reported as one and returned at once
// (the worker restarts from its commit and replays the records), since no
// number of attempts at the storage would bring it back. Retrying it as a
// storage fault would also hold a shutdown's drain until its timeout.
func upload(ctx context.Context, env *Env, log *slog.Logger, key, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		err = fmt.Errorf("open spool file: %w", err)
		env.Health.Spool(err)
		return err
	}
	defer f.Close()
	report, end := env.Health.Upload()
	defer end()
	err = retry.Until(ctx, retry.NewBackoff(100*time.Millisecond, 10*time.Second), func(ctx context.Context) error {
		// A reader of its own per attempt: each starts at the first byte.
		if err := env.Writer.Put(ctx, key, io.NewSectionReader(f, 0, size), size); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return nil
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
