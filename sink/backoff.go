package sink

import (
	"math/rand/v2"
	"time"
)

// backoff is the sink's capped exponential backoff with jitter, shared by
// every loop that retries until it succeeds (uploads, completion events,
// schema registry lookups, fetches, dead letters): each wait is a random
// duration between half and all of the current step, and the step doubles
// up to max. The
// jitter keeps hundreds of partitions from retrying in step. Not safe for
// concurrent use; each loop has its own.
type backoff struct{ step, max time.Duration }

func newBackoff(first, max time.Duration) backoff { return backoff{step: first, max: max} }

// next returns the wait before the next attempt and grows the step.
func (b *backoff) next() time.Duration {
	d := b.step/2 + rand.N(b.step/2+1)
	b.step = min(b.step*2, b.max)
	return d
}

// reset starts the steps again from first (after progress).
func (b *backoff) reset(first time.Duration) { b.step = first }
