package kafkaio

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAdminTopics: CreateTopic creates a one-partition topic and is
// idempotent; a broker's refusal wraps ErrCreateRefused (start-up then
// says the dead-letter topic must be created by hand, rather than failing
// on a transport error); CheckTopic accepts a topic whose partitions all
// have a leader and names a missing one.
func TestAdminTopics(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	a := NewAdmin(cluster.ListenAddrs(), "g", "test", kafka.DefaultDialer)
	ctx := t.Context()

	if err := a.CheckTopic(ctx, "events"); err != nil {
		t.Errorf("CheckTopic(events) = %v", err)
	}
	if err := a.CheckTopic(ctx, "dlq"); err == nil {
		t.Error("CheckTopic of a missing topic = nil")
	}
	for i := range 2 {
		if err := a.CreateTopic(ctx, "dlq"); err != nil {
			t.Fatalf("CreateTopic #%d = %v, want nil (idempotent)", i+1, err)
		}
	}
	if err := a.CheckTopic(ctx, "dlq"); err != nil {
		t.Errorf("CheckTopic after CreateTopic = %v", err)
	}
	parts, err := a.GroupOffsets(ctx, []string{"dlq"})
	if err != nil || len(parts) != 1 {
		t.Errorf("created topic has %d partitions (%v), want 1", len(parts), err)
	}

	denyCreateTopics(cluster, "denied")
	err = a.CreateTopic(ctx, "denied")
	if !errors.Is(err, ErrCreateRefused) || !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Errorf("CreateTopic refused by the broker = %v, want ErrCreateRefused wrapping TopicAuthorizationFailed", err)
	}
}

// TestAdminGroupOffsets: every partition of the topics with its log range
// and the group's commit and metadata, as the finalizer and the
// unconsumed-partition detector read them; a missing topic or a
// partition's error is an error, never partial data.
func TestAdminGroupOffsets(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	const group = "offsets"
	a := NewAdmin(cluster.ListenAddrs(), group, "test", kafka.DefaultDialer)
	ctx := t.Context()

	// Three records to a/0, one to a/1, through the Admin's producer.
	w := a.Producer("a", time.Millisecond, 10)
	w.Balancer = kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return int(m.Key[0] - '0') })
	if err := w.WriteMessages(ctx,
		kafka.Message{Key: []byte("0"), Value: []byte("x")}, kafka.Message{Key: []byte("0"), Value: []byte("y")},
		kafka.Message{Key: []byte("0"), Value: []byte("z")}, kafka.Message{Key: []byte("1"), Value: []byte("w")}); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	c := &kafka.Client{Addr: kafka.TCP(cluster.ListenAddrs()...), Timeout: 10 * time.Second}
	gen, member := joinAlone(t, c, group, "", "a")
	if err := a.Commit(ctx, gen, member, "a", 0, 2, `{"v":1}`); err != nil {
		t.Fatal(err)
	}

	parts, err := a.GroupOffsets(ctx, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(parts, func(x, y PartitionOffsets) int {
		return cmp.Or(strings.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	want := []PartitionOffsets{
		{Topic: "a", Partition: 0, Low: 0, High: 3, Committed: 2, Metadata: `{"v":1}`},
		{Topic: "a", Partition: 1, Low: 0, High: 1, Committed: -1},
		{Topic: "b", Partition: 0, Low: 0, High: 0, Committed: -1},
		{Topic: "b", Partition: 1, Low: 0, High: 0, Committed: -1},
	}
	if !slices.Equal(parts, want) {
		t.Errorf("GroupOffsets =\n%+v\nwant\n%+v", parts, want)
	}
	if off, meta, err := a.Committed(ctx, "a", 0); err != nil || off != 2 || meta != `{"v":1}` {
		t.Errorf("Committed(a/0) = %d %q %v", off, meta, err)
	}

	if _, err := a.GroupOffsets(ctx, []string{"a", "missing"}); err == nil {
		t.Error("GroupOffsets with a missing topic = nil error, want one (no partial data)")
	}

	cluster.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.ListOffsetsRequest)
		resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = int16(kafka.NotLeaderForPartition)
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := a.GroupOffsets(ctx2, []string{"a"}); !errors.Is(err, kafka.NotLeaderForPartition) {
		t.Errorf("GroupOffsets with a partition's error = %v, want NotLeaderForPartition", err)
	}
}

// TestAdminDescribeTopics: partition counts of the topics that exist, and
// a missing topic is reported missing, not created, even by a broker that
// creates topics on demand; CanCreateTopic asks without creating (and
// answers at once: kafka-go's transport would wait for the topic to
// appear), and passes on the broker's refusal as ErrCreateRefused.
func TestAdminDescribeTopics(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	a := NewAdmin(cluster.ListenAddrs(), "g", "test", kafka.DefaultDialer)
	ctx := t.Context()

	got, err := a.DescribeTopics(ctx, []string{"events", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if e := got["events"]; !e.Exists || e.Partitions != 3 || e.Err != nil || len(e.Leaderless) > 0 {
		t.Errorf("events: %+v, want 3 partitions with leaders", e)
	}
	if m, ok := got["missing"]; !ok || m.Exists {
		t.Errorf("missing: %+v (reported %v), want reported as not existing", m, ok)
	}
	start := time.Now()
	if err := a.CanCreateTopic(ctx, "dlq"); err != nil {
		t.Errorf("CanCreateTopic(dlq) = %v", err)
	}
	if err := a.CanCreateTopic(ctx, "events"); err != nil {
		t.Errorf("CanCreateTopic of an existing topic = %v, want nil", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("CanCreateTopic took %s", took)
	}
	// A fresh client: the first one's metadata is cached.
	again, err := NewAdmin(cluster.ListenAddrs(), "g", "test", kafka.DefaultDialer).DescribeTopics(ctx, []string{"missing", "dlq"})
	if err != nil {
		t.Fatal(err)
	}
	if again["missing"].Exists || again["dlq"].Exists {
		t.Errorf("DescribeTopics or CanCreateTopic created a topic: %+v", again)
	}

	denyCreateTopics(cluster, "denied")
	err = a.CanCreateTopic(ctx, "denied")
	if !errors.Is(err, ErrCreateRefused) || !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Errorf("CanCreateTopic refused by the broker = %v, want ErrCreateRefused wrapping TopicAuthorizationFailed", err)
	}
}

// denyCreateTopics makes cluster answer every CreateTopics request, a
// validate-only one included, with topic refused as not authorized.
func denyCreateTopics(cluster *kfake.Cluster, topic string) {
	cluster.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.(*kmsg.CreateTopicsRequest).ResponseKind().(*kmsg.CreateTopicsResponse)
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = topic
		rt.ErrorCode = int16(kafka.TopicAuthorizationFailed)
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
}
