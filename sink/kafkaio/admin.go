package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Admin is the process's request/response Kafka client for one consumer
// group: committed offsets and commits, topic creation, the group-wide
// offsets the finalizer reads, topic health, and the producers for the
// dead-letter and completion topics. Every call takes a context and the
// client has a 10 s request timeout. Safe for concurrent use.
type Admin struct {
	brokers   []string
	group     string
	client    *kafka.Client
	transport *kafka.Transport
	dialer    *kafka.Dialer // for CanCreateTopic's connection of its own
}

// NewAdmin returns an Admin for group on brokers, connecting with d (TLS,
// SASL; see NewDialer). It does not connect yet.
func NewAdmin(brokers []string, group, clientID string, d *kafka.Dialer) *Admin {
	t := &kafka.Transport{Dial: d.DialFunc, ClientID: clientID, TLS: d.TLS, SASL: d.SASLMechanism}
	return &Admin{
		brokers:   brokers,
		group:     group,
		client:    &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: t},
		transport: t,
		dialer:    d,
	}
}

// Committed returns the group's committed offset of a partition (-1 if
// none) and its commit metadata as stored.
func (a *Admin) Committed(ctx context.Context, topic string, partition int) (int64, string, error) {
	resp, err := a.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		GroupID: a.group, Topics: map[string][]int{topic: {partition}},
	})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		return -1, "", nil // a group that never committed
	}
	if err != nil {
		return 0, "", fmt.Errorf("offset fetch %s/%d: %w", topic, partition, err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Partition != partition {
			continue
		}
		if p.Error != nil {
			return 0, "", fmt.Errorf("offset fetch %s/%d: %w", topic, partition, p.Error)
		}
		return p.CommittedOffset, p.Metadata, nil
	}
	return -1, "", nil
}

// Commit commits one partition's offset with metadata in a group
// generation. Kafka refuses commits from a stale generation, which is what
// fences off a worker whose partition has been given to another member
// (IsGenerationError tells those refusals apart).
//
// Why not kafka-go's Generation.CommitOffsets or Reader.CommitMessages:
// they overwrite the metadata with "", and the metadata carries the commit
// protocol's state (package ledger).
func (a *Admin) Commit(ctx context.Context, generation int, member, topic string, partition int, offset int64, metadata string) error {
	resp, err := a.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID:      a.group,
		GenerationID: generation,
		MemberID:     member,
		Topics:       map[string][]kafka.OffsetCommit{topic: {{Partition: partition, Offset: offset, Metadata: metadata}}},
	})
	if err != nil {
		return fmt.Errorf("offset commit %s/%d: %w", topic, partition, err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return fmt.Errorf("offset commit %s/%d: %w", topic, partition, p.Error)
		}
	}
	return nil
}

// IsGenerationError reports whether a commit was refused because the
// member's generation is over (the partition may have a new owner).
func IsGenerationError(err error) bool {
	return errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.UnknownMemberId) ||
		errors.Is(err, kafka.RebalanceInProgress) || errors.Is(err, kafka.FencedInstanceID)
}

// ErrCreateRefused wraps the broker's answer when it refused to create a
// topic that does not exist yet (for instance, creation is not allowed to
// this client). The topic may still be managed elsewhere: callers log it and
// go on.
var ErrCreateRefused = errors.New("topic creation refused")

// CreateTopic creates topic with one partition (the broker's default
// replication) unless it exists. Idempotent. The error wraps
// ErrCreateRefused when the broker answered with an error for the topic,
// and is the request's error when the broker could not be asked.
func (a *Admin) CreateTopic(ctx context.Context, topic string) error {
	resp, err := a.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: -1}},
	})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if e := resp.Errors[topic]; e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w: %w", topic, ErrCreateRefused, e)
	}
	return nil
}

// CheckTopic returns an error unless topic exists and every partition of it
// has a leader.
func (a *Admin) CheckTopic(ctx context.Context, topic string) error {
	md, err := a.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("metadata %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return fmt.Errorf("topic %s: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			return fmt.Errorf("topic %s has no partitions", topic)
		}
		for _, p := range t.Partitions {
			if p.Error != nil {
				return fmt.Errorf("topic %s partition %d: %w", topic, p.ID, p.Error)
			}
		}
		return nil
	}
	return fmt.Errorf("topic %s: not found", topic)
}

// TopicInfo is what the brokers say about one topic (DescribeTopics).
type TopicInfo struct {
	// Exists is false when the broker does not know the topic.
	Exists bool
	// Partitions is the partition count.
	Partitions int
	// Leaderless are the partitions whose answer carried an error (no
	// leader, typically), with the first such error in Err.
	Leaderless []int
	// Err is the broker's error for the topic other than "unknown topic"
	// (not authorized, say), or for its first leaderless partition.
	Err error
}

// DescribeTopics reads the metadata of topics without creating any (the
// request does not allow auto-creation, so a broker with
// auto.create.topics.enable still answers "unknown" for a missing one).
// The error is the request's; a topic's own problems are in its TopicInfo.
func (a *Admin) DescribeTopics(ctx context.Context, topics []string) (map[string]TopicInfo, error) {
	md, err := a.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	out := make(map[string]TopicInfo, len(topics))
	for _, t := range topics {
		out[t] = TopicInfo{}
	}
	for _, t := range md.Topics {
		if _, asked := out[t.Name]; !asked {
			continue
		}
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			continue
		}
		info := TopicInfo{Exists: t.Error == nil, Partitions: len(t.Partitions), Err: t.Error}
		for _, p := range t.Partitions {
			if p.Error != nil {
				info.Leaderless = append(info.Leaderless, p.ID)
				if info.Err == nil {
					info.Err = fmt.Errorf("partition %d: %w", p.ID, p.Error)
				}
			}
		}
		out[t.Name] = info
	}
	return out, nil
}

// PartitionOffsets is one partition as the group sees it.
type PartitionOffsets struct {
	Topic     string
	Partition int
	// Low and High are the log start and end offsets.
	Low, High int64
	// Committed is the group's committed offset (-1: none) and Metadata
	// its commit metadata.
	Committed int64
	Metadata  string
}

// GroupOffsets returns every partition of topics with its log range and the
// group's commit. An error if a topic is missing or any partition's answer
// carries an error: the caller must not decide on partial data.
func (a *Admin) GroupOffsets(ctx context.Context, topics []string) ([]PartitionOffsets, error) {
	md, err := a.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	parts := map[string][]int{}
	lreq := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("metadata %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
			lreq.Topics[t.Name] = append(lreq.Topics[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	if len(parts) != len(topics) {
		return nil, fmt.Errorf("metadata: %d of %d topics found", len(parts), len(topics))
	}
	offs, err := a.client.ListOffsets(ctx, lreq)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	committed, err := a.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: a.group, Topics: parts})
	if err == nil && committed.Error != nil {
		err = committed.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		// A group that never committed (a new deployment): nothing is
		// committed, which is no error.
		committed = &kafka.OffsetFetchResponse{Topics: map[string][]kafka.OffsetFetchPartition{}}
		for t, ps := range parts {
			for _, p := range ps {
				committed.Topics[t] = append(committed.Topics[t], kafka.OffsetFetchPartition{Partition: p, CommittedOffset: -1})
			}
		}
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	type key struct {
		topic     string
		partition int
	}
	ends := map[key][2]int64{}
	for t, ps := range offs.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("list offsets %s/%d: %w", t, p.Partition, p.Error)
			}
			ends[key{t, p.Partition}] = [2]int64{p.FirstOffset, p.LastOffset}
		}
	}
	var out []PartitionOffsets
	for t, ps := range committed.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("offset fetch %s/%d: %w", t, p.Partition, p.Error)
			}
			e, ok := ends[key{t, p.Partition}]
			if !ok {
				return nil, fmt.Errorf("no offsets for %s/%d", t, p.Partition)
			}
			out = append(out, PartitionOffsets{Topic: t, Partition: p.Partition, Low: e[0], High: e[1],
				Committed: p.CommittedOffset, Metadata: p.Metadata})
		}
	}
	return out, nil
}

// Producer returns a writer to topic over the Admin's transport, waiting
// for all in-sync replicas, keyed by the hash of the record key. batch
// bounds how long records wait to share a request. The caller closes it.
func (a *Admin) Producer(topic string, batch time.Duration, batchSize int) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(a.brokers...),
		Topic:        topic,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: batch,
		BatchSize:    batchSize,
		Transport:    a.transport,
		Balancer:     &kafka.Hash{},
	}
}
