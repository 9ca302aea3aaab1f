package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ops"
	"github.com/lakesink/lakesink/sink/retry"
)

// waitKafka checks the brokers until one answers (kafkaio.CheckKafka, each
// attempt bounded by the dialer's timeout), waiting with jittered backoff
// between attempts: a Kafka maintenance window during a rollout must not
// become a crash loop. The problem is logged as a Kafka fault (when it
// starts, at most once a minute while it lasts, when it clears); readiness says "waiting for kafka" with the
// error and lakesink_dependency_errors_total counts each failed attempt. It
// returns nil when Kafka answered or ctx ended (SIGTERM while waiting), and
// an error once kafka.startup_timeout (when set) has passed.
func (s *Sink) waitKafka(ctx context.Context) error {
	cfg, d, health := s.cfg.Kafka, s.dialer, s.ops.Health
	start := time.Now()
	limit := time.Duration(cfg.StartupTimeout)
	wait := retry.NewBackoff(500*time.Millisecond, 15*time.Second)
	timeout := 500 * time.Millisecond
	for {
		// Attempts start short (a broker that answers does so in
		// milliseconds; a silent one is noticed, counted and shown at
		// once) and grow to the dialer's timeout; each ends by the
		// start-up timeout too.
		timeout = min(timeout*2, max(d.Timeout, time.Second))
		if limit > 0 {
			timeout = max(min(timeout, limit-time.Since(start)), 100*time.Millisecond)
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := kafkaio.CheckKafka(actx, d, cfg.Brokers)
		cancel()
		if err == nil {
			health.Kafka(nil)
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if limit > 0 && time.Since(start) >= limit {
			return fmt.Errorf("kafka not reachable within kafka.startup_timeout (%s): %w", limit, err)
		}
		health.SetJoined(false, ops.JoinWaitingKafka+": "+err.Error())
		health.Kafka(err) // counted, and logged as a Kafka fault
		next := wait.Next()
		if limit > 0 {
			next = min(next, max(limit-time.Since(start), 0))
		}
		if !retry.Sleep(ctx, next) {
			return nil
		}
	}
}
