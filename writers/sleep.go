package writers

import (
	"context"
	"time"
)

// SleepContext waits d, or until ctx is done (then it returns ctx.Err()).
// Backends with retry loops of their own (hdfs) use it. Writers do not
// retry whole calls: the sink's callers do, each with the policy its job
// needs (uploads until they succeed, the finalizer at its next check).
func SleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
