package kfakenet_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lakesink/lakesink/test/kafkabroker/kfakenet"
)

// sessionTimeout is the dying member's; the survivor's is longer.
const sessionTimeout = 1500 * time.Millisecond

// TestKilledWhileJoining: member 1 is alone in a stable group; member 2
// sends JoinGroup and its connection closes before the answer (a process
// killed while joining). Member 1 rejoins and, as leader, gives member 2
// half the partitions. A real broker removes member 2 after its session
// timeout. kfake alone keeps it in about half of the runs (see the package
// comment); behind kfakenet.Listen it is always removed.
func TestKilledWhileJoining(t *testing.T) {
	c := newCluster(t, kfake.ListenFn(kfakenet.Listen))
	removed, err := killWhileJoining(t, c, "g", 30*sessionTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !removed {
		t.Fatalf("member killed while joining still in the group %s after its session timeout of %s", 30*sessionTimeout, sessionTimeout)
	}
}

// TestKilledWhileJoiningKfakeAlone documents kfake's own behaviour without
// the listener: it logs in how many of the runs the dead member stayed. It
// does not fail on that (the outcome is a coin toss inside kfake), only on
// a broken scenario.
func TestKilledWhileJoiningKfakeAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("documents a kfake bug; slow")
	}
	c := newCluster(t)
	const runs = 6
	kept := make(chan bool, runs)
	t.Run("runs", func(t *testing.T) {
		for i := range runs {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				removed, err := killWhileJoining(t, c, fmt.Sprintf("g%d", i), 4*sessionTimeout)
				if err != nil {
					t.Fatal(err)
				}
				kept <- !removed
			})
		}
	})
	close(kept)
	n := 0
	for k := range kept {
		if k {
			n++
		}
	}
	t.Logf("kfake alone kept the member killed while joining past its session timeout in %d of %d runs", n, runs)
}

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(6, "t"), kfake.GroupMinSessionTimeout(time.Second)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// killWhileJoining runs the scenario on group and reports whether member
// 2 left the group within wait after the rebalance that gave it partitions
// (member 1 heartbeating throughout).
func killWhileJoining(t *testing.T, c *kfake.Cluster, group string, wait time.Duration) (removed bool, err error) {
	addr := c.ListenAddrs()[0]
	m1, admin, m2 := dial(t, addr), dial(t, addr), dial(t, addr)
	meta := (&kmsg.ConsumerMemberMetadata{Topics: []string{"t"}}).AppendTo(nil)
	join := func(member string, session time.Duration) *kmsg.JoinGroupRequest {
		r := kmsg.NewPtrJoinGroupRequest()
		r.Version = 5
		r.Group, r.MemberID, r.ProtocolType = group, member, "consumer"
		r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = int32(session/time.Millisecond), 10000
		r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta}}
		return r
	}
	// joinNew joins with v4+'s two steps; the second is only sent.
	memberID := func(m *raw, session time.Duration) (string, error) {
		var resp kmsg.JoinGroupResponse
		if err := m.do(join("", session), &resp); err != nil {
			return "", err
		}
		if resp.ErrorCode != kerr.MemberIDRequired.Code {
			return "", fmt.Errorf("first join: error %d, want MEMBER_ID_REQUIRED", resp.ErrorCode)
		}
		return resp.MemberID, nil
	}
	sync := func(id string, gen int32, assign map[string][]int32) error {
		r := kmsg.NewPtrSyncGroupRequest()
		r.Version = 3
		r.Group, r.MemberID, r.Generation = group, id, gen
		for m, ps := range assign {
			a := (&kmsg.ConsumerMemberAssignment{Topics: []kmsg.ConsumerMemberAssignmentTopic{{Topic: "t", Partitions: ps}}}).AppendTo(nil)
			r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: m, MemberAssignment: a})
		}
		var resp kmsg.SyncGroupResponse
		if err := m1.do(r, &resp); err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	}
	describe := func() (state string, members []string, err error) {
		r := kmsg.NewPtrDescribeGroupsRequest()
		r.Version = 4
		r.Groups = []string{group}
		var resp kmsg.DescribeGroupsResponse
		if err := admin.do(r, &resp); err != nil {
			return "", nil, err
		}
		g := resp.Groups[0]
		for _, m := range g.Members {
			members = append(members, m.MemberID)
		}
		return g.State, members, kerr.ErrorForCode(g.ErrorCode)
	}

	// Member 1 alone: generation 1.
	id1, err := memberID(m1, 10*time.Second)
	if err != nil {
		return false, err
	}
	var jr kmsg.JoinGroupResponse
	if err := m1.do(join(id1, 10*time.Second), &jr); err != nil || jr.ErrorCode != 0 {
		return false, fmt.Errorf("member 1 join: %v, error %d", err, jr.ErrorCode)
	}
	if err := sync(id1, jr.Generation, map[string][]int32{id1: {0, 1, 2, 3, 4, 5}}); err != nil {
		return false, fmt.Errorf("member 1 sync: %w", err)
	}

	// Member 2 joins; its JoinGroup waits for member 1 to rejoin. Then
	// it dies.
	id2, err := memberID(m2, sessionTimeout)
	if err != nil {
		return false, err
	}
	if err := m2.send(join(id2, sessionTimeout)); err != nil {
		return false, err
	}
	for {
		state, members, err := describe()
		if err != nil {
			return false, err
		}
		if state == "PreparingRebalance" && slices.Contains(members, id2) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	m2.close()
	// Let the broker read the EOF before the answer goes out (this only
	// makes kfake's bug more likely to show; it decides nothing below).
	time.Sleep(200 * time.Millisecond)

	// Member 1 rejoins: generation 2, member 1 leads and gives member 2
	// partitions 3-5.
	jr = kmsg.JoinGroupResponse{}
	if err := m1.do(join(id1, 10*time.Second), &jr); err != nil || jr.ErrorCode != 0 {
		return false, fmt.Errorf("member 1 rejoin: %v, error %d", err, jr.ErrorCode)
	}
	if jr.LeaderID != id1 || len(jr.Members) != 2 {
		return false, fmt.Errorf("generation %d: leader %s with %d members, want member 1 with 2", jr.Generation, jr.LeaderID, len(jr.Members))
	}
	if err := sync(id1, jr.Generation, map[string][]int32{id1: {0, 1, 2}, id2: {3, 4, 5}}); err != nil {
		return false, fmt.Errorf("member 1 sync, generation %d: %w", jr.Generation, err)
	}

	// Member 1 heartbeats; is member 2 removed?
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Version = 3
		hb.Group, hb.MemberID, hb.Generation = group, id1, jr.Generation
		var hr kmsg.HeartbeatResponse
		if err := m1.do(hb, &hr); err != nil {
			return false, err
		}
		_, members, err := describe()
		if err != nil {
			return false, err
		}
		if !slices.Contains(members, id2) {
			return true, nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	return false, nil
}

// raw is one client connection speaking the Kafka protocol by hand.
type raw struct {
	c    net.Conn
	f    *kmsg.RequestFormatter
	corr int32
}

func dial(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &raw{c: c, f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("kfakenet-test"))}
	t.Cleanup(r.close)
	return r
}

func (r *raw) close() { _ = r.c.Close() }

func (r *raw) send(req kmsg.Request) error {
	r.corr++
	_, err := r.c.Write(r.f.AppendRequest(nil, req, r.corr))
	return err
}

func (r *raw) do(req kmsg.Request, resp kmsg.Response) error {
	if err := r.send(req); err != nil {
		return err
	}
	resp.SetVersion(req.GetVersion())
	_ = r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return fmt.Errorf("read answer to key %d: %w", req.Key(), err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.c, body); err != nil {
		return fmt.Errorf("read answer to key %d: %w", req.Key(), err)
	}
	rd := kbin.Reader{Src: body}
	if corr := rd.Int32(); corr != r.corr {
		return fmt.Errorf("answer %d to request %d", corr, r.corr)
	}
	if resp.IsFlexible() && resp.Key() != 18 {
		kmsg.SkipTags(&rd)
	}
	if err := resp.ReadFrom(rd.Src); err != nil {
		return fmt.Errorf("parse answer to key %d: %w", req.Key(), err)
	}
	return nil
}

// TestExpectsAnswer: produce requests with acks=0 get no answer, every
// other request does; the listener must count them apart in every
// produce version, or a connection would be held (or let go) wrongly.
func TestExpectsAnswer(t *testing.T) {
	txn := "a-transactional-id"
	for v := int16(0); v <= 11; v++ {
		for _, acks := range []int16{0, 1, -1} {
			for _, id := range []*string{nil, &txn} {
				req := kmsg.NewPtrProduceRequest()
				req.Version, req.Acks, req.TransactionID, req.TimeoutMillis = v, acks, id, 1000
				frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("c")).AppendRequest(nil, req, 7)
				got := kfakenet.ExpectsAnswer(frame[4:])
				if want := acks != 0; got != want {
					t.Errorf("produce v%d acks=%d txn=%v: expects answer %v, want %v", v, acks, id != nil, got, want)
				}
			}
		}
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	if !kfakenet.ExpectsAnswer(kmsg.NewRequestFormatter().AppendRequest(nil, hb, 1)[4:]) {
		t.Error("heartbeat: no answer expected")
	}
}
