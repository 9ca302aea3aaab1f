package kafkaio

import (
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestAdminNewGroup: a group that never committed (the broker says "group
// id not found") has no commits — not an error: a new deployment must not
// start with a finalizer warning.
func TestAdminNewGroup(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	a := NewAdmin(cluster.ListenAddrs(), "never-seen", "test", kafka.DefaultDialer)
	parts, err := a.GroupOffsets(t.Context(), []string{"events"})
	if err != nil {
		t.Fatalf("GroupOffsets of a new group: %v", err)
	}
	if len(parts) != 2 {
		t.Fatalf("%d partitions, want 2", len(parts))
	}
	for _, p := range parts {
		if p.Committed != -1 || p.Metadata != "" || p.Low != 0 || p.High != 0 {
			t.Errorf("partition %+v, want nothing committed on an empty log", p)
		}
	}
	off, meta, err := a.Committed(t.Context(), "events", 1)
	if err != nil || off != -1 || meta != "" {
		t.Errorf("Committed of a new group = %d, %q, %v; want -1, \"\", nil", off, meta, err)
	}
}
