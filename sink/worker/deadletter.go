package worker

import (
	"context"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/retry"
)

// deadLetter queues a record that cannot go to the lake, with err's reason,
// and notes it in the ledger as needing no file. Queued records are sent
// before the next offset commit (commit), so a commit never passes a record
// that is neither in the lake nor on the dead-letter topic.
func (w *Worker) deadLetter(m kafka.Message, err error) {
	reason := "bad_record"
	var de *decode.Error
	if errors.As(err, &de) {
		reason = string(de.Reason)
	}
	w.env.Metrics.DeadLetters.WithLabelValues(reason).Inc()
	w.dlq = append(w.dlq, kafkaio.DeadLetter(m, w.st.Name, reason, err.Error()))
	w.led.Skipped(m.Offset, w.nowMs)
}

// flushDeadLetters sends the queued dead letters, retrying until they are
// accepted: a partition whose dead-letter topic is unavailable pauses (and
// readiness says why) rather than dropping records.
func (w *Worker) flushDeadLetters(ctx context.Context) error {
	if len(w.dlq) == 0 {
		return nil
	}
	err := retry.Until(ctx, retry.NewBackoff(100*time.Millisecond, 10*time.Second), func(ctx context.Context) error {
		return w.env.DeadLetters.WriteMessages(ctx, w.dlq...)
	}, func(_ int, err error) {
		w.env.Metrics.DeadLetterFailures.Inc()
		w.env.Health.DeadLetters(err)
		w.log.Debug("dead-letter write failed, partition paused", "topic", w.env.DeadLetterTopic, "err", err)
	})
	if err != nil {
		return err
	}
	w.env.Health.DeadLetters(nil)
	clear(w.dlq)
	w.dlq = w.dlq[:0]
	return nil
}
