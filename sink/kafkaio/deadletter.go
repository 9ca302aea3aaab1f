package kafkaio

import (
	"strconv"

	"github.com/segmentio/kafka-go"
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
	HeaderKey       = "lakesink.key"       // source record key, when it had one
)

// DeadLetter returns the dead-letter record of m, which could not be
// written to the lake for reason (detail: the human-readable error). It
// keeps m's value, timestamp and headers, after the lakesink.* headers that
// name the reason and the record's origin.
//
// Its key is the record's origin, "<topic>/<partition>/<offset>", and the
// source key moves to the lakesink.key header. Why: after a crash the
// records since the last commit are read again and their dead letters sent
// again; with the origin as key, a consumer deduplicates on the key, and a
// compacted dead-letter topic keeps one copy.
func DeadLetter(m kafka.Message, stream, reason, detail string) kafka.Message {
	hs := make([]kafka.Header, 0, 8+len(m.Headers))
	hs = append(hs,
		kafka.Header{Key: HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderError, Value: []byte(detail)},
		kafka.Header{Key: HeaderStream, Value: []byte(stream)},
		kafka.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		kafka.Header{Key: HeaderTimestamp, Value: []byte(m.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"))},
	)
	if m.Key != nil {
		hs = append(hs, kafka.Header{Key: HeaderKey, Value: m.Key})
	}
	hs = append(hs, m.Headers...)
	key := m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10)
	return kafka.Message{Key: []byte(key), Value: m.Value, Headers: hs, Time: m.Time}
}
