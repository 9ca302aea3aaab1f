// Package retry is the one capped, jittered exponential backoff of lakesink's
// retry loops: uploads, dead letters, completion events, schema registry
// waits and partition fetches all wait with it; Sleep is the one
// context-aware wait, which the storage backends' own retry loops
// (writers/hdfs, writers/s3) use too. It imports only the standard library,
// so that writers, which import nothing else of sink, may use it.
//
// Those loops retry until they succeed or their context ends, because
// giving up would either lose records or let an offset commit pass records
// that are not durable (docs/design.md, "Commit protocol"). The jitter keeps
// hundreds of partitions from retrying in step against a recovering server.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential backoff with jitter: each wait is a random
// duration between half and all of the current step, and the step doubles
// up to the cap. Not safe for concurrent use; each loop has its own.
type Backoff struct{ first, step, max time.Duration }

// NewBackoff returns a Backoff whose steps start at first and double up to
// max.
func NewBackoff(first, max time.Duration) *Backoff {
	return &Backoff{first: first, step: first, max: max}
}

// Next returns the wait before the next attempt and grows the step.
func (b *Backoff) Next() time.Duration {
	d := b.step/2 + rand.N(b.step/2+1)
	b.step = min(b.step*2, b.max)
	return d
}

// Reset starts the steps again from the first (after progress).
func (b *Backoff) Reset() { b.step = b.first }

// Sleep waits d, or until ctx is done, and reports whether the whole d
// passed (false: ctx ended first; ctx.Err() says why). Safe for concurrent
// use; the timer is released either way.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Until calls f until it returns nil or ctx ends, waiting b.Next() between
// attempts. After each failure it calls failed (if not nil) with the
// attempt number, from 1, and the error, unless ctx has ended. It returns
// nil once f succeeded, else ctx's error.
func Until(ctx context.Context, b *Backoff, f func(context.Context) error, failed func(attempt int, err error)) error {
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if failed != nil {
			failed(attempt, err)
		}
		if !Sleep(ctx, b.Next()) {
			return ctx.Err()
		}
	}
}
