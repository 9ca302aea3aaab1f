package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// Leaders caches where the partitions of a process's topics lead, for the
// Fetchers that share it (FetcherConfig.Leaders): the first Fetcher of a
// topic asks the cluster for the topic's metadata, and the others dial
// their leaders from that answer.
//
// Why: kafka-go's DialLeader, per partition, opens a connection to a
// bootstrap broker, asks for the metadata of the whole topic and closes
// it, then dials the leader. An instance that is assigned 512 partitions
// made 512 extra connections and 512 metadata requests of 512 partitions
// each (0.3-0.6 CPU-s of the sink in the memory benchmark, and the
// broker's work to answer them).
//
// Staleness: a Fetcher whose dial or fetch fails asks again with the
// version of the answer it used (Partition's stale argument), and gets a
// newer one — read from the cluster once for all the Fetchers that failed
// on the same old answer, which is what happens when a leader moves.
//
// Safe for concurrent use. Holds no connection between calls.
type Leaders struct {
	dialer  *kafka.Dialer
	brokers []string
	// timeout bounds one metadata read: a broker that accepts and never
	// answers must not hold every Fetcher's dial.
	timeout time.Duration

	mu     sync.Mutex // guards topics; never held while reading
	topics map[string]*leaderTopic
}

// leaderTopic is the cached answer for one topic.
type leaderTopic struct {
	lock  chan struct{} // held while reading metadata; a channel so waiting can be cancelled
	reads atomic.Uint64 // metadata reads started

	// Guarded by lock.
	version uint64 // of parts: 1, 2, ...
	parts   map[int]kafka.Partition
	err     error // of the last read, nil if it succeeded
}

// NewLeaders returns a cache that reads metadata from brokers with dialer.
func NewLeaders(dialer *kafka.Dialer, brokers []string) *Leaders {
	return &Leaders{dialer: dialer, brokers: brokers, timeout: 10 * time.Second, topics: map[string]*leaderTopic{}}
}

func (l *Leaders) topic(name string) *leaderTopic {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.topics[name]
	if t == nil {
		t = &leaderTopic{lock: make(chan struct{}, 1)}
		l.topics[name] = t
	}
	return t
}

// Partition returns the descriptor (leader included) of topic's partition
// and the version of the answer it comes from. stale is 0, or the version
// a caller found wrong: an answer of that version or older is read again —
// once for all the callers waiting meanwhile: if a read made while a
// caller waited failed, the caller gets its error instead of reading
// again (it retries on its own backoff), so an unreachable cluster sees
// one request at a time, not one per partition.
func (l *Leaders) Partition(ctx context.Context, topic string, partition int, stale uint64) (kafka.Partition, uint64, error) {
	t := l.topic(topic)
	seen := t.reads.Load()
	select {
	case t.lock <- struct{}{}:
	case <-ctx.Done():
		return kafka.Partition{}, 0, ctx.Err()
	}
	defer func() { <-t.lock }()
	if t.parts == nil || t.version <= stale {
		if t.reads.Load() != seen && t.err != nil {
			return kafka.Partition{}, t.version, t.err
		}
		t.reads.Add(1)
		rctx, cancel := context.WithTimeout(ctx, l.timeout)
		parts, err := l.read(rctx, topic)
		cancel()
		t.err = err
		if err != nil {
			return kafka.Partition{}, t.version, err
		}
		t.version++
		t.parts = make(map[int]kafka.Partition, len(parts))
		for _, p := range parts {
			t.parts[p.ID] = p
		}
	}
	p, ok := t.parts[partition]
	if !ok {
		return kafka.Partition{}, t.version, fmt.Errorf("partition %d of topic %s is not in the cluster's metadata", partition, topic)
	}
	return p, t.version, nil
}

// read asks the brokers in turn for topic's partitions.
func (l *Leaders) read(ctx context.Context, topic string) ([]kafka.Partition, error) {
	var errs []error
	for _, b := range l.brokers {
		parts, err := l.dialer.LookupPartitions(ctx, "tcp", b, topic)
		if err == nil {
			return parts, nil
		}
		errs = append(errs, fmt.Errorf("metadata of topic %s from %s: %w", topic, b, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}
