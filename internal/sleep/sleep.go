// Package sleep is the one context-aware wait of lakesink: sink/retry's
// backoff loops and the storage backends' own retry loops (writers/hdfs,
// writers/s3) wait with it. It is a leaf package because writers may not
// import anything of sink.
package sleep

import (
	"context"
	"time"
)

// For waits d, or until ctx is done, and reports whether the whole d
// passed (false: ctx ended first; ctx.Err() says why). Safe for concurrent
// use; the timer is released either way.
func For(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
