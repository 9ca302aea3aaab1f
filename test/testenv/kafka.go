package testenv

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Kafka is a broker process (test/kafkabroker, franz-go's kfake).
type Kafka struct {
	Addr    string
	DataDir string
	t       testing.TB
	port    int
	proc    *Process
	bin     string
}

// StartKafka starts a single-broker Kafka-protocol cluster on 127.0.0.1 that
// persists into a temporary data folder (so Restart keeps topics, records and
// committed offsets).
func StartKafka(t testing.TB) *Kafka {
	t.Helper()
	k := &Kafka{t: t, bin: Build(t, "./test/kafkabroker"), DataDir: t.TempDir(), port: FreePort(t)}
	k.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(k.port))
	k.start()
	return k
}

func (k *Kafka) start() {
	k.t.Helper()
	k.proc = Start(k.t, "kafkabroker", k.bin, Options{}, "-port", strconv.Itoa(k.port), "-data-dir", k.DataDir)
	if _, err := k.proc.WaitLine("listening", 30*time.Second); err != nil {
		k.t.Fatalf("kafkabroker: %v\n%s", err, k.proc.Tail(30))
	}
}

// Restart stops the broker (SIGTERM) and starts it again on the same port and
// data folder.
func (k *Kafka) Restart() {
	k.t.Helper()
	k.proc.Stop(10 * time.Second)
	k.start()
}

// Stop stops the broker.
func (k *Kafka) Stop() { k.proc.Stop(10 * time.Second) }

// Client returns a kafka-go admin client for the broker.
func (k *Kafka) Client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(k.Addr), Timeout: 10 * time.Second}
}

// CreateTopic creates topic with the given partition count.
func (k *Kafka) CreateTopic(t testing.TB, topic string, partitions int) {
	t.Helper()
	resp, err := k.Client().CreateTopics(context.Background(), &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if e := resp.Errors[topic]; e != nil {
		t.Fatalf("create topic %s: %v", topic, e)
	}
}

// HighWatermarks returns the end offset of every partition of topic.
func (k *Kafka) HighWatermarks(t testing.TB, topic string, partitions int) map[int]int64 {
	t.Helper()
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := 0; p < partitions; p++ {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := k.Client().ListOffsets(context.Background(), req)
	if err != nil {
		t.Fatalf("list offsets %s: %v", topic, err)
	}
	out := map[int]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("list offsets %s/%d: %v", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return out
}

// CommittedOffsets returns the group's committed offset (and metadata) per
// partition of topic; -1 where none is committed. It fails the test on error.
func (k *Kafka) CommittedOffsets(t testing.TB, group, topic string, partitions int) (map[int]int64, map[int]string) {
	t.Helper()
	offs, meta, err := k.TryCommittedOffsets(group, topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	return offs, meta
}

// TryCommittedOffsets is CommittedOffsets returning the error, for polling
// (the group does not exist until a member has joined).
func (k *Kafka) TryCommittedOffsets(group, topic string, partitions int) (map[int]int64, map[int]string, error) {
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	resp, err := k.Client().OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{
		GroupID: group, Topics: map[string][]int{topic: ps},
	})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		return nil, nil, fmt.Errorf("offset fetch %s: %w", topic, err)
	}
	offs, meta := map[int]int64{}, map[int]string{}
	for _, p := range resp.Topics[topic] {
		offs[p.Partition] = p.CommittedOffset
		meta[p.Partition] = p.Metadata
	}
	return offs, meta, nil
}

// String describes the broker for logs.
func (k *Kafka) String() string { return fmt.Sprintf("kafka(%s)", k.Addr) }
