package sink

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/sink/decode"
)

// Dead-letter headers. The record's key and value are kept as they were; its
// own headers follow these.
const (
	HeaderReason    = "lakesink.reason"    // stable code: bad_json, missing_field, wrong_type, ...
	HeaderError     = "lakesink.error"     // human-readable detail
	HeaderStream    = "lakesink.stream"    // configured stream name
	HeaderTopic     = "lakesink.topic"     // source topic
	HeaderPartition = "lakesink.partition" // source partition (decimal)
	HeaderOffset    = "lakesink.offset"    // source offset (decimal)
	HeaderTimestamp = "lakesink.timestamp" // source record timestamp, RFC 3339 (ms)
)

// deadLetter queues a record that cannot be decoded. Queued records are sent
// before the next offset commit, so a commit never passes a record that is
// neither in the lake nor on the dead-letter topic.
func (w *worker) deadLetter(m kafka.Message, err error) {
	reason := "bad_record"
	var de *decode.Error
	if errors.As(err, &de) {
		reason = string(de.Reason)
	}
	w.s.metrics.DeadLetters.WithLabelValues(reason).Inc()
	hs := make([]kafka.Header, 0, 7+len(m.Headers))
	hs = append(hs,
		kafka.Header{Key: HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderError, Value: []byte(err.Error())},
		kafka.Header{Key: HeaderStream, Value: []byte(w.st.name)},
		kafka.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		kafka.Header{Key: HeaderTimestamp, Value: []byte(m.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"))},
	)
	hs = append(hs, m.Headers...)
	w.dlq = append(w.dlq, kafka.Message{Key: m.Key, Value: m.Value, Headers: hs, Time: m.Time})
}

// flushDeadLetters sends the queued dead letters, retrying until they are
// accepted: a partition whose dead-letter topic is unavailable pauses (and
// readiness says why) rather than dropping records.
func (w *worker) flushDeadLetters(ctx context.Context) error {
	if len(w.dlq) == 0 {
		return nil
	}
	wait := newBackoff(100*time.Millisecond, 10*time.Second)
	for {
		err := w.s.dlqW.WriteMessages(ctx, w.dlq...)
		if err == nil {
			w.s.health.setDLQ(true, "")
			clear(w.dlq)
			w.dlq = w.dlq[:0]
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.s.metrics.DeadLetterFailures.Inc()
		w.s.health.setDLQ(false, err.Error())
		w.log.Warn("dead-letter write failed, partition paused", "topic", w.s.cfg.DeadLetter.Topic, "err", err)
		if !sleepCtx(ctx, wait.next()) {
			return ctx.Err()
		}
	}
}
