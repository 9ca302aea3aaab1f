package kafkaio

import (
	"errors"
	"fmt"
	"testing"
	"time"

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

// joinAlone makes member (empty: a new one) the only member of group, as a
// consumer joins: JoinGroup (again with the member id the broker asks for),
// then SyncGroup with the whole topic assigned to itself. It returns the
// generation id and the member id.
func joinAlone(t *testing.T, c *kafka.Client, group, member, topic string) (int, string) {
	t.Helper()
	proto := []kafka.GroupProtocol{{Name: "range", Metadata: kafka.GroupProtocolSubscription{Topics: []string{topic}}}}
	join := &kafka.JoinGroupRequest{GroupID: group, MemberID: member, SessionTimeout: 30 * time.Second,
		RebalanceTimeout: 30 * time.Second, ProtocolType: "consumer", Protocols: proto}
	resp, err := c.JoinGroup(t.Context(), join)
	if err == nil && errors.Is(resp.Error, kafka.MemberIDRequired) {
		join.MemberID = resp.MemberID
		resp, err = c.JoinGroup(t.Context(), join)
	}
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("join group %s: %v", group, err)
	}
	sync, err := c.SyncGroup(t.Context(), &kafka.SyncGroupRequest{GroupID: group, GenerationID: resp.GenerationID,
		MemberID: resp.MemberID, ProtocolType: "consumer", ProtocolName: resp.ProtocolName,
		Assignments: []kafka.SyncGroupRequestAssignment{{MemberID: resp.MemberID,
			Assignment: kafka.GroupProtocolAssignment{AssignedPartitions: map[string][]int{topic: {0}}}}}})
	if err == nil {
		err = sync.Error
	}
	if err != nil {
		t.Fatalf("sync group %s: %v", group, err)
	}
	return resp.GenerationID, resp.MemberID
}

// TestAdminCommitFenced (docs/design.md, "Commit protocol", "Rebalances"):
// Commit sends the generation id and member id, so the broker accepts a
// commit of the current generation and refuses one of an ended generation
// or an unknown member — with an error IsGenerationError recognizes, on
// which a worker stops as revoked (sink/worker: errRevoked) instead of
// committing for a partition another member may own. A refused commit
// changes nothing.
func TestAdminCommitFenced(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	const group = "fenced"
	a := NewAdmin(cluster.ListenAddrs(), group, "test", kafka.DefaultDialer)
	c := &kafka.Client{Addr: kafka.TCP(cluster.ListenAddrs()...), Timeout: 10 * time.Second}

	gen1, member := joinAlone(t, c, group, "", "events")
	if err := a.Commit(t.Context(), gen1, member, "events", 0, 10, `{"v":1,"g":1}`); err != nil {
		t.Fatalf("commit in the current generation %d: %v", gen1, err)
	}
	// The member joins again (as after a rebalance): generation gen1 is over.
	gen2, again := joinAlone(t, c, group, member, "events")
	if gen2 == gen1 || again != member {
		t.Fatalf("rejoin: generation %d member %s, want a new generation for %s", gen2, again, member)
	}

	for _, tc := range []struct {
		name       string
		generation int
		member     string
		want       error
	}{
		{"stale generation", gen1, member, kafka.IllegalGeneration},
		{"unknown member", gen2, "gone-member", kafka.UnknownMemberId},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.Commit(t.Context(), tc.generation, tc.member, "events", 0, 20, `{"v":1,"g":"stale"}`)
			if !errors.Is(err, tc.want) {
				t.Fatalf("commit = %v, want %v", err, tc.want)
			}
			if !IsGenerationError(err) {
				t.Errorf("IsGenerationError(%v) = false: a worker would not stop as fenced", err)
			}
			off, meta, err := a.Committed(t.Context(), "events", 0)
			if err != nil || off != 10 || meta != `{"v":1,"g":1}` {
				t.Errorf("after the refused commit: %d %q %v; want the accepted commit 10", off, meta, err)
			}
		})
	}

	if err := a.Commit(t.Context(), gen2, member, "events", 0, 30, `{"v":1,"g":2}`); err != nil {
		t.Fatalf("commit in the new generation %d: %v", gen2, err)
	}
	if off, meta, err := a.Committed(t.Context(), "events", 0); err != nil || off != 30 || meta != `{"v":1,"g":2}` {
		t.Errorf("committed %d %q %v, want 30 with its metadata", off, meta, err)
	}
	// Other commit errors are not fencing.
	if IsGenerationError(fmt.Errorf("offset commit: %w", kafka.RequestTimedOut)) {
		t.Error("IsGenerationError(RequestTimedOut) = true")
	}
}
