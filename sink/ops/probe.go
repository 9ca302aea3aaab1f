package ops

import (
	"context"
	"time"
)

// probeKey is looked up (not written) to check that storage answers.
const probeKey = "_lakesink/probe"

// RunHealthChecks probes storage and the dead-letter topic every
// http.health_check_interval until ctx ends, feeding Readiness: storage is
// unreachable while a lookup of a key fails, and the dead-letter topic
// unavailable while the brokers report it missing or without a leader.
// Uploads feed the same storage state. Run it in its own goroutine; it
// returns when ctx ends.
func (ops *Ops) RunHealthChecks(ctx context.Context) {
	every := ops.o.HealthCheckInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ops.checkOnce(ctx, every)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (ops *Ops) checkOnce(ctx context.Context, timeout time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := ops.o.Writer.Exists(pctx, probeKey)
	if ctx.Err() != nil {
		return
	}
	ops.Health.Storage(err)
	if err := ops.o.Topics.CheckTopic(pctx, ops.o.DeadLetterTopic); ctx.Err() == nil {
		ops.Health.DeadLetters(err)
	}
}
