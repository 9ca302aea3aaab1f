package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/retry"
)

// deadLetters is a worker's queue of records that cannot go to the lake,
// each with its reason, for the dead-letter topic. The worker sends them
// (flush) before each offset commit, so that a commit never passes a
// record that is neither in the lake nor on the dead-letter topic. It
// reads Env at each use. Not safe for concurrent use.
type deadLetters struct {
	env    *Env
	stream string
	log    *slog.Logger
	queue  []kafka.Message
}

// add queues m with err's reason (a *decode.Error's, else bad_record).
func (d *deadLetters) add(m kafka.Message, err error) {
	reason := "bad_record"
	var de *decode.Error
	if errors.As(err, &de) {
		reason = string(de.Reason)
	}
	d.env.Metrics.DeadLetters.WithLabelValues(reason).Inc()
	d.queue = append(d.queue, kafkaio.DeadLetter(m, d.stream, reason, err.Error()))
}

// flush sends the queued dead letters, retrying until they are accepted or
// ctx ends: a partition whose dead-letter topic is unavailable pauses (and
// readiness says why) rather than dropping records.
func (d *deadLetters) flush(ctx context.Context) error {
	if len(d.queue) == 0 {
		return nil
	}
	err := retry.Until(ctx, retry.NewBackoff(100*time.Millisecond, 10*time.Second), func(ctx context.Context) error {
		return d.env.DeadLetters.WriteMessages(ctx, d.queue...)
	}, func(_ int, err error) {
		d.env.Metrics.DeadLetterFailures.Inc()
		d.env.Health.DeadLetters(err)
		d.log.Debug("dead-letter write failed, partition paused", "topic", d.env.DeadLetterTopic, "err", err)
	})
	if err != nil {
		return err
	}
	d.env.Health.DeadLetters(nil)
	d.reset()
	return nil
}

// reset forgets the queue: sent, or to be read again (a restart).
func (d *deadLetters) reset() {
	clear(d.queue)
	d.queue = d.queue[:0]
}
