package kafkaio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// owned is a test member: its id, subscriptions and what it claims to own.
type owned struct {
	id     string
	topics []string
	owns   map[string][]int
}

// groupMembers returns the kafka-go members of ms, their user data
// encoded by Sticky.UserData from their owns.
func groupMembers(t testing.TB, ms []owned) []kafka.GroupMember {
	t.Helper()
	out := make([]kafka.GroupMember, 0, len(ms))
	for _, m := range ms {
		ud, err := Sticky{Owned: func() map[string][]int { return m.owns }}.UserData()
		if err != nil {
			t.Fatalf("UserData: %v", err)
		}
		out = append(out, kafka.GroupMember{ID: m.id, Topics: m.topics, UserData: ud})
	}
	return out
}

// topicParts returns partitions 0..n-1 of topic.
func topicParts(topic string, n int) []kafka.Partition {
	out := make([]kafka.Partition, n)
	for i := range out {
		out[i] = kafka.Partition{Topic: topic, ID: i}
	}
	return out
}

// checkBalanced fails t unless got is a valid balanced assignment of
// partitions to members: every member present; per topic every partition
// exactly once, only to members subscribed to it, each of the M of them
// floor(P/M) or ceil(P/M), exactly P mod M the ceil; lists sorted.
func checkBalanced(t testing.TB, members []kafka.GroupMember, partitions []kafka.Partition, got kafka.GroupMemberAssignments) {
	t.Helper()
	if len(got) != len(members) {
		t.Errorf("%d members in the result, want %d", len(got), len(members))
	}
	subs := map[string]map[string]bool{} // topic -> member ids
	for _, m := range members {
		if _, ok := got[m.ID]; !ok {
			t.Errorf("member %s missing from the result", m.ID)
		}
		for _, tp := range m.Topics {
			if subs[tp] == nil {
				subs[tp] = map[string]bool{}
			}
			subs[tp][m.ID] = true
		}
	}
	exist := map[string]map[int]bool{}
	for _, p := range partitions {
		if subs[p.Topic] == nil {
			continue
		}
		if exist[p.Topic] == nil {
			exist[p.Topic] = map[int]bool{}
		}
		exist[p.Topic][p.ID] = true
	}
	seen := map[string]map[int]string{}
	for id, topics := range got {
		for tp, ps := range topics {
			if len(ps) > 0 && !subs[tp][id] {
				t.Errorf("member %s got %s%v, not subscribed", id, tp, ps)
			}
			if !slices.IsSorted(ps) {
				t.Errorf("member %s: %s%v not sorted", id, tp, ps)
			}
			for _, p := range ps {
				if !exist[tp][p] {
					t.Errorf("member %s got %s/%d, which does not exist", id, tp, p)
				}
				if seen[tp] == nil {
					seen[tp] = map[int]string{}
				}
				if other, dup := seen[tp][p]; dup {
					t.Errorf("%s/%d assigned to %s and %s", tp, p, other, id)
				}
				seen[tp][p] = id
			}
		}
	}
	for tp, ms := range subs {
		P, M := len(exist[tp]), len(ms)
		if len(seen[tp]) != P {
			t.Errorf("topic %s: %d of %d partitions assigned", tp, len(seen[tp]), P)
		}
		ceil := 0
		for id := range ms {
			switch n := len(got[id][tp]); {
			case n == P/M+1 && P%M != 0:
				ceil++
			case n != P/M:
				t.Errorf("topic %s: member %s has %d partitions, want %d or %d", tp, id, n, P/M, (P+M-1)/M)
			}
		}
		if ceil != P%M {
			t.Errorf("topic %s: %d members have the ceil, want %d", tp, ceil, P%M)
		}
	}
}

// moves counts the partitions that had an owner in prev and have another
// one in next.
func moves(prev, next kafka.GroupMemberAssignments) int {
	owner := map[string]map[int]string{}
	for id, topics := range next {
		for tp, ps := range topics {
			if owner[tp] == nil {
				owner[tp] = map[int]string{}
			}
			for _, p := range ps {
				owner[tp][p] = id
			}
		}
	}
	n := 0
	for id, topics := range prev {
		for tp, ps := range topics {
			for _, p := range ps {
				if o, ok := owner[tp][p]; ok && o != id {
					n++
				}
			}
		}
	}
	return n
}

func TestStickyProtocolName(t *testing.T) {
	if got := (Sticky{}).ProtocolName(); got != "lakesink-sticky" {
		t.Fatalf("ProtocolName = %q", got)
	}
	var _ kafka.GroupBalancer = Sticky{}
}

// TestStickyBalance: from nothing owned, every topic is balanced among its
// subscribers, and a new group gets ranges of consecutive partitions.
func TestStickyBalance(t *testing.T) {
	x := []string{"x"}
	cases := []struct {
		name       string
		members    []owned
		partitions []kafka.Partition
		want       kafka.GroupMemberAssignments // nil: only check balance
	}{
		{"no partitions, one member", []owned{{id: "a", topics: x}}, nil,
			kafka.GroupMemberAssignments{"a": {"x": {}}}},
		{"no partitions, three members", []owned{{id: "a", topics: x}, {id: "b", topics: x}, {id: "c", topics: x}}, nil,
			kafka.GroupMemberAssignments{"a": {"x": {}}, "b": {"x": {}}, "c": {"x": {}}}},
		{"one member", []owned{{id: "a", topics: x}}, topicParts("x", 5),
			kafka.GroupMemberAssignments{"a": {"x": {0, 1, 2, 3, 4}}}},
		{"more members than partitions", []owned{{id: "a", topics: x}, {id: "b", topics: x}, {id: "c", topics: x}, {id: "d", topics: x}, {id: "e", topics: x}}, topicParts("x", 3),
			kafka.GroupMemberAssignments{"a": {"x": {0}}, "b": {"x": {1}}, "c": {"x": {2}}, "d": {"x": {}}, "e": {"x": {}}}},
		{"6 over 3", []owned{{id: "c", topics: x}, {id: "a", topics: x}, {id: "b", topics: x}}, topicParts("x", 6),
			kafka.GroupMemberAssignments{"a": {"x": {0, 1}}, "b": {"x": {2, 3}}, "c": {"x": {4, 5}}}},
		{"7 over 3", []owned{{id: "a", topics: x}, {id: "b", topics: x}, {id: "c", topics: x}}, topicParts("x", 7),
			kafka.GroupMemberAssignments{"a": {"x": {0, 1, 2}}, "b": {"x": {3, 4}}, "c": {"x": {5, 6}}}},
		{"1024 over 3", []owned{{id: "a", topics: x}, {id: "b", topics: x}, {id: "c", topics: x}}, topicParts("x", 1024), nil},
		{"disjoint subscriptions", []owned{{id: "a", topics: []string{"x"}}, {id: "b", topics: []string{"y"}}, {id: "c", topics: []string{"x", "y"}}, {id: "d"}},
			append(topicParts("x", 4), topicParts("y", 3)...),
			kafka.GroupMemberAssignments{"a": {"x": {0, 1}}, "b": {"y": {0, 1}}, "c": {"x": {2, 3}, "y": {2}}, "d": {}}},
		{"unsubscribed topic ignored", []owned{{id: "a", topics: x}}, append(topicParts("x", 2), topicParts("other", 2)...),
			kafka.GroupMemberAssignments{"a": {"x": {0, 1}}}},
		{"topic listed twice", []owned{{id: "a", topics: []string{"x", "x"}}, {id: "b", topics: x}}, topicParts("x", 2),
			kafka.GroupMemberAssignments{"a": {"x": {0}}, "b": {"x": {1}}}},
		{"partition listed twice, ids with holes", []owned{{id: "a", topics: x}, {id: "b", topics: x}},
			[]kafka.Partition{{Topic: "x", ID: 9}, {Topic: "x", ID: 2}, {Topic: "x", ID: 9}, {Topic: "x", ID: 4}},
			kafka.GroupMemberAssignments{"a": {"x": {2, 4}}, "b": {"x": {9}}}},
		{"one-partition topics spread", []owned{{id: "a", topics: []string{"t1", "t2", "t3", "t4", "t5", "t6"}}, {id: "b", topics: []string{"t1", "t2", "t3", "t4", "t5", "t6"}}, {id: "c", topics: []string{"t1", "t2", "t3", "t4", "t5", "t6"}}},
			append(append(append(topicParts("t1", 1), topicParts("t2", 1)...), append(topicParts("t3", 1), topicParts("t4", 1)...)...), append(topicParts("t5", 1), topicParts("t6", 1)...)...),
			kafka.GroupMemberAssignments{
				"a": {"t1": {0}, "t2": {}, "t3": {}, "t4": {0}, "t5": {}, "t6": {}},
				"b": {"t1": {}, "t2": {0}, "t3": {}, "t4": {}, "t5": {0}, "t6": {}},
				"c": {"t1": {}, "t2": {}, "t3": {0}, "t4": {}, "t5": {}, "t6": {0}},
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			members := groupMembers(t, c.members)
			got := Sticky{}.AssignGroups(members, c.partitions)
			checkBalanced(t, members, c.partitions, got)
			if c.want != nil && !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %v\nwant %v", got, c.want)
			}
		})
	}
}

// TestStickyKeeps: from a previous assignment (the members' user data),
// members keep what balance allows and only the partitions that must move
// do.
func TestStickyKeeps(t *testing.T) {
	x := []string{"x"}
	a := func(ps ...int) owned { return owned{id: "a", topics: x, owns: map[string][]int{"x": ps}} }
	b := func(ps ...int) owned { return owned{id: "b", topics: x, owns: map[string][]int{"x": ps}} }
	c := func(ps ...int) owned { return owned{id: "c", topics: x, owns: map[string][]int{"x": ps}} }
	cases := []struct {
		name       string
		members    []owned
		partitions []kafka.Partition
		departed   map[string][]int // what a member that left owned
		want       kafka.GroupMemberAssignments
		moves      int // claimed partitions (by members or departed) whose owner changes
	}{
		{"same members: nothing moves", []owned{a(0, 1, 2), b(3, 4, 5)}, topicParts("x", 6), nil,
			kafka.GroupMemberAssignments{"a": {"x": {0, 1, 2}}, "b": {"x": {3, 4, 5}}}, 0},
		{"same members, scattered: nothing moves", []owned{a(0, 2, 4), b(5, 1, 3)}, topicParts("x", 6), nil,
			kafka.GroupMemberAssignments{"a": {"x": {0, 2, 4}}, "b": {"x": {1, 3, 5}}}, 0},
		{"a member joins: only its quota moves", []owned{a(0, 1, 2), b(3, 4, 5), c()}, topicParts("x", 6), nil,
			kafka.GroupMemberAssignments{"a": {"x": {0, 1}}, "b": {"x": {3, 4}}, "c": {"x": {2, 5}}}, 2},
		{"a member joins, uneven: the ceil stays with the larger", []owned{a(0, 1, 2, 3), b(4, 5, 6), c()}, topicParts("x", 7), nil,
			kafka.GroupMemberAssignments{"a": {"x": {0, 1, 2}}, "b": {"x": {4, 5}}, "c": {"x": {3, 6}}}, 2},
		{"the ceil goes to the larger previous holder", []owned{a(0), b(1, 2, 3, 4)}, topicParts("x", 5), nil,
			kafka.GroupMemberAssignments{"a": {"x": {0, 4}}, "b": {"x": {1, 2, 3}}}, 1},
		{"a member leaves: only its partitions move", []owned{a(0, 1), b(2, 3)}, topicParts("x", 6), map[string][]int{"x": {4, 5}},
			kafka.GroupMemberAssignments{"a": {"x": {0, 1, 4}}, "b": {"x": {2, 3, 5}}}, 2},
		{"more members than partitions: holders keep them", []owned{a(), b(), c(0, 1)}, topicParts("x", 2), nil,
			kafka.GroupMemberAssignments{"a": {"x": {1}}, "b": {"x": {}}, "c": {"x": {0}}}, 1},
		{"partitions added", []owned{a(0, 1), b(2, 3)}, topicParts("x", 6), nil,
			kafka.GroupMemberAssignments{"a": {"x": {0, 1, 4}}, "b": {"x": {2, 3, 5}}}, 0},
		{"conflicting claims: the lower ID gets it", []owned{b(2, 3, 4, 5), a(0, 1, 2)}, topicParts("x", 6), nil,
			kafka.GroupMemberAssignments{"a": {"x": {0, 1, 2}}, "b": {"x": {3, 4, 5}}}, 1},
		{"conflict over quota", []owned{a(0, 1, 2, 3, 4, 5), b(3, 4, 5)}, topicParts("x", 6), nil,
			kafka.GroupMemberAssignments{"a": {"x": {0, 1, 2}}, "b": {"x": {3, 4, 5}}}, 3},
		{"stale claims: vanished partitions and topics are ignored",
			[]owned{{id: "a", topics: x, owns: map[string][]int{"x": {0, 1, 2, 3, 7, 8, 9}, "gone": {0, 1}}}, b()}, topicParts("x", 4), nil,
			kafka.GroupMemberAssignments{"a": {"x": {0, 1}}, "b": {"x": {2, 3}}}, 2},
		{"claims of an unsubscribed topic are ignored",
			[]owned{{id: "a", topics: []string{"y"}, owns: map[string][]int{"x": {0, 1, 2, 3}}}, b()}, append(topicParts("x", 4), topicParts("y", 1)...), nil,
			kafka.GroupMemberAssignments{"a": {"y": {0}}, "b": {"x": {0, 1, 2, 3}}}, 4},
		{"invalid ids are dropped", []owned{a(-1, 0, 0, 1, 1<<40), b(2, 3)}, topicParts("x", 4), nil,
			kafka.GroupMemberAssignments{"a": {"x": {0, 1}}, "b": {"x": {2, 3}}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			members := groupMembers(t, tc.members)
			got := Sticky{}.AssignGroups(members, tc.partitions)
			checkBalanced(t, members, tc.partitions, got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
			prev := kafka.GroupMemberAssignments{"departed": tc.departed}
			for _, m := range tc.members {
				prev[m.id] = m.owns
			}
			if n := moves(prev, got); n != tc.moves {
				t.Errorf("%d moves, want %d", n, tc.moves)
			}
		})
	}
}

// TestStickyGarbageUserData: user data that is empty, of another version
// or undecodable claims nothing, and the assignment still succeeds.
func TestStickyGarbageUserData(t *testing.T) {
	good, _ := Sticky{Owned: func() map[string][]int { return map[string][]int{"x": {0, 1, 2, 3}} }}.UserData()
	cases := []struct {
		name string
		ud   []byte
	}{
		{"empty", nil},
		{"version 0", append([]byte{0}, good[1:]...)},
		{"version 2", append([]byte{2}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(slices.Clone(good), 0)},
		{"range's user data", []byte("rack-1")},
		{"json", []byte(`{"v":1,"owned":{"x":[0,1,2,3]}}`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			members := []kafka.GroupMember{
				{ID: "a", Topics: []string{"x"}, UserData: c.ud},
				{ID: "b", Topics: []string{"x"}},
			}
			parts := topicParts("x", 4)
			got := Sticky{}.AssignGroups(members, parts)
			checkBalanced(t, members, parts, got)
			want := kafka.GroupMemberAssignments{"a": {"x": {0, 1}}, "b": {"x": {2, 3}}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v (as if nothing were claimed)", got, want)
			}
		})
	}
}

// TestStickyDeterministic: the result does not depend on the order of the
// members or of the partitions.
func TestStickyDeterministic(t *testing.T) {
	ms := []owned{
		{id: "m1", topics: []string{"x", "y"}, owns: map[string][]int{"x": {0, 1, 2, 3, 4}, "y": {0}}},
		{id: "m2", topics: []string{"x"}, owns: map[string][]int{"x": {4, 5, 6}}},
		{id: "m3", topics: []string{"y", "x"}, owns: map[string][]int{"y": {1, 2}}},
		{id: "m4", topics: []string{"y"}},
		{id: "m5", topics: []string{"x"}, owns: map[string][]int{"x": {11, 12}}},
	}
	members := groupMembers(t, ms)
	parts := append(topicParts("x", 13), topicParts("y", 4)...)
	want := Sticky{}.AssignGroups(members, parts)
	checkBalanced(t, members, parts, want)
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		m, p := slices.Clone(members), slices.Clone(parts)
		r.Shuffle(len(m), func(i, j int) { m[i], m[j] = m[j], m[i] })
		r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		if got := (Sticky{}).AssignGroups(m, p); !reflect.DeepEqual(got, want) {
			t.Fatalf("members %v: got %v, want %v", m, got, want)
		}
	}
}

// TestStickyProperty: over random sequences of joins, leaves,
// subscription changes and added partitions, each generation fed the
// previous one as user data, the assignment is balanced, assigns every
// partition exactly once, and moves the fewest partitions balance allows:
// those members must give up to reach their quota, plus those of members
// that left or unsubscribed.
func TestStickyProperty(t *testing.T) {
	topics := []string{"x", "y"}
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		nparts := map[string]int{"x": r.IntN(40), "y": r.IntN(10)}
		subs := map[string][]string{} // member -> topics
		prev := kafka.GroupMemberAssignments{}
		next := 0
		for step := range 60 {
			switch op := r.IntN(10); {
			case op < 4 || len(subs) == 0:
				subs[fmt.Sprintf("m%02d", next)] = randomTopics(r, topics)
				next++
			case op < 7:
				delete(subs, randomKey(r, subs))
			case op < 8:
				subs[randomKey(r, subs)] = randomTopics(r, topics)
			case op < 9:
				nparts[topics[r.IntN(2)]] += r.IntN(5)
			}
			var ms []owned
			for id, tps := range subs {
				ms = append(ms, owned{id: id, topics: tps, owns: prev[id]})
			}
			members := groupMembers(t, ms)
			var parts []kafka.Partition
			for _, tp := range topics {
				parts = append(parts, topicParts(tp, nparts[tp])...)
			}
			got := Sticky{}.AssignGroups(members, parts)
			checkBalanced(t, members, parts, got)
			if want := minMoves(prev, subs, nparts); moves(prev, got) != want {
				t.Fatalf("seed %d step %d: %d moves, want %d\nprev %v\nnext %v", seed, step, moves(prev, got), want, prev, got)
			}
			if t.Failed() {
				t.Fatalf("seed %d step %d", seed, step)
			}
			prev = got
		}
	}
}

func randomTopics(r *rand.Rand, topics []string) []string {
	switch r.IntN(4) {
	case 0:
		return topics[:1]
	case 1:
		return topics[1:]
	default:
		return topics
	}
}

func randomKey(r *rand.Rand, m map[string][]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys[r.IntN(len(keys))]
}

// minMoves is the fewest partitions owned in prev (a valid assignment)
// that must change owner when the members are subs and the topics have
// nparts partitions: of a topic's P partitions over M members, each
// staying member keeps at most its quota — floor(P/M), or the ceil for at
// most P mod M of them — and the partitions of members that left or
// unsubscribed all move.
func minMoves(prev kafka.GroupMemberAssignments, subs map[string][]string, nparts map[string]int) int {
	n := 0
	for tp, P := range nparts {
		var held []int // of the members subscribed now
		total := 0     // owned partitions that still exist
		for id, topics := range prev {
			k := 0
			for _, p := range topics[tp] {
				if p < P {
					k++
				}
			}
			total += k
			if slices.Contains(subs[id], tp) {
				held = append(held, k)
			}
		}
		M := 0
		for _, topics := range subs {
			if slices.Contains(topics, tp) {
				M++
			}
		}
		if M == 0 {
			continue
		}
		kept, extra := 0, P%M
		for _, k := range held {
			kept += min(k, P/M)
			if k > P/M && extra > 0 {
				kept++
				extra--
			}
		}
		n += total - kept
	}
	return n
}

// TestStickyUserData: what UserData encodes is what the leader decodes,
// invalid ids dropped, and it stays small.
func TestStickyUserData(t *testing.T) {
	every := func(n, step int) []int {
		var out []int
		for i := 0; i < n; i += step {
			out = append(out, i)
		}
		return out
	}
	cases := []struct {
		name    string
		owned   map[string][]int
		want    map[string][]span
		maxSize int
	}{
		{"nil", nil, map[string][]span{}, 2},
		{"empty topics left out", map[string][]int{"x": {}, "y": {-1}}, map[string][]span{}, 2},
		{"unsorted, duplicates", map[string][]int{"x": {5, 3, 4, 4, 0}}, map[string][]span{"x": {{0, 1}, {3, 6}}}, 10},
		{"largest id", map[string][]int{"x": {maxPartition}}, map[string][]span{"x": {{maxPartition, maxPartition + 1}}}, 13},
		{"1024 contiguous", map[string][]int{"events": every(1024, 1)}, map[string][]span{"events": {{0, 1024}}}, 16},
		{"a third of 1024, scattered", map[string][]int{"events": every(1024, 3)}, nil, 141},
		{"every other of 4096", map[string][]int{"events": every(4096, 2)}, nil, 531},
		{"two topics", map[string][]int{"b": {1}, "a": {0, 1, 2, 7}},
			map[string][]span{"a": {{0, 3}, {7, 8}}, "b": {{1, 2}}}, 22},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ud, err := Sticky{Owned: func() map[string][]int { return c.owned }}.UserData()
			if err != nil {
				t.Fatal(err)
			}
			if len(ud) > c.maxSize {
				t.Errorf("%d bytes, want at most %d", len(ud), c.maxSize)
			}
			got, ok := decodeClaims(ud)
			if !ok {
				t.Fatalf("decodeClaims(%x) not ok", ud)
			}
			want := c.want
			if want == nil {
				want = map[string][]span{}
				for tp, ids := range c.owned {
					want[tp] = spansOf(ids)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded %v, want %v", got, want)
			}
		})
	}
	if ud, _ := (Sticky{}).UserData(); !bytes.Equal(ud, []byte{2, 0}) {
		t.Errorf("UserData without Owned = %x, want 0100", ud)
	}
}

// TestStickyDecodeInvalid: malformed user data is refused whole.
func TestStickyDecodeInvalid(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version only", []byte{1}},
		{"another version", []byte{3, 0}},
		{"topic count beyond the data", []byte{1, 5, 0, 0, 0}},
		{"name beyond the data", []byte{1, 1, 9, 'x', 0, 0}},
		{"unknown form", []byte{1, 1, 1, 'x', 2, 0}},
		{"topic twice", []byte{1, 2, 1, 'x', 0, 0, 1, 'x', 0, 0}},
		{"range count beyond the data", []byte{1, 1, 1, 'x', 0, 3, 0, 0}},
		{"truncated range", []byte{1, 1, 1, 'x', 0, 1, 0}},
		{"range beyond int32", []byte{1, 1, 1, 'x', 0, 1, 0xff, 0xff, 0xff, 0xff, 0x07, 1}},
		{"bitmap beyond the data", []byte{1, 1, 1, 'x', 1, 2, 0xff}},
		{"trailing bytes", []byte{1, 0, 0}},
		{"overlong varint", []byte{1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, ok := decodeClaims(c.b); ok {
				t.Errorf("decodeClaims(%x) = %v, ok; want not ok", c.b, got)
			}
		})
	}
	// The largest valid range is accepted.
	if got, ok := decodeClaims([]byte{1, 1, 1, 'x', 0, 1, 0, 0xfe, 0xff, 0xff, 0xff, 0x07}); !ok || !reflect.DeepEqual(got, map[string][]span{"x": {{0, maxPartition}}}) {
		t.Errorf("0..maxPartition-1: %v, %v", got, ok)
	}
}

// FuzzStickyUserData: the decoder never panics and accepts only
// well-formed spans, what it accepts encodes back to the same claims, what
// UserData encodes decodes to the owned ids, and AssignGroups stays
// balanced whatever a member sends.
func FuzzStickyUserData(f *testing.F) {
	for _, owned := range []map[string][]int{nil, {"x": {0, 1, 2}}, {"x": {0, 2, 4, 6, 8, 10, 12, 14, 16, 18}, "y": {3}}} {
		ud, _ := Sticky{Owned: func() map[string][]int { return owned }}.UserData()
		f.Add(ud)
	}
	f.Add([]byte{1, 1, 1, 'x', 1, 2, 0x55, 0x55})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		claims, ok := decodeClaims(b)
		if ok {
			for tp, sp := range claims {
				if len(sp) == 0 {
					t.Fatalf("topic %q without spans", tp)
				}
				for i, s := range sp {
					if s.lo < 0 || s.hi <= s.lo || s.hi > maxPartition+1 || (i > 0 && s.lo <= sp[i-1].hi) {
						t.Fatalf("topic %q: spans %v", tp, sp)
					}
				}
			}
			again, ok := decodeClaims(encodeClaims(claims, nil))
			if !ok || !reflect.DeepEqual(again, claims) {
				t.Fatalf("round trip: %v, %v; want %v", again, ok, claims)
			}
		}

		// The bytes as ids owned in two topics.
		owned := map[string][]int{}
		for i := 0; i+1 < len(b); i += 2 {
			tp := "x"
			if b[i]&0x80 != 0 {
				tp = "y"
			}
			owned[tp] = append(owned[tp], int(b[i]&0x7f)<<8|int(b[i+1]))
		}
		ud, err := Sticky{Owned: func() map[string][]int { return owned }}.UserData()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeClaims(ud)
		if !ok {
			t.Fatalf("decodeClaims(UserData()) not ok: %x", ud)
		}
		want := map[string][]span{}
		for tp, ids := range owned {
			want[tp] = spansOf(ids)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %v, want %v", got, want)
		}

		members := []kafka.GroupMember{
			{ID: "a", Topics: []string{"x", "y"}, UserData: b},
			{ID: "b", Topics: []string{"x"}, UserData: ud},
			{ID: "c", Topics: []string{"y"}},
		}
		parts := append(topicParts("x", 20), topicParts("y", 3)...)
		checkBalanced(t, members, parts, Sticky{}.AssignGroups(members, parts))
	})
}

// BenchmarkStickyAssign: the leader's work for 3 members and 1024
// partitions after a fourth member left.
func BenchmarkStickyAssign(b *testing.B) {
	ids := []string{"a", "b", "c", "d"}
	var ms []owned
	for _, id := range ids {
		ms = append(ms, owned{id: id, topics: []string{"events"}})
	}
	parts := topicParts("events", 1024)
	prev := Sticky{}.AssignGroups(groupMembers(b, ms), parts)
	ms = ms[:3]
	for i := range ms {
		ms[i].owns = prev[ms[i].id]
	}
	members := groupMembers(b, ms)
	b.ReportAllocs()
	for b.Loop() {
		Sticky{}.AssignGroups(members, parts)
	}
}

// BenchmarkStickyUserData: a member's encoding of 342 scattered partitions
// of 1024.
func BenchmarkStickyUserData(b *testing.B) {
	var ps []int
	for i := 0; i < 1024; i += 3 {
		ps = append(ps, i)
	}
	s := Sticky{Owned: func() map[string][]int { return map[string][]int{"events": ps} }}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.UserData(); err != nil {
			b.Fatal(err)
		}
	}
}

// liveMember is a kafka.ConsumerGroup on a kfake cluster that takes every
// generation and remembers the last one's assignment, which its Owned
// returns — as a sink whose workers hold their partitions until the next
// generation would.
type liveMember struct {
	cg     *kafka.ConsumerGroup
	done   chan struct{} // closed when the loop taking generations returns
	cancel context.CancelFunc
	once   sync.Once

	mu     sync.Mutex
	gen    int32 // 0 before the first generation
	member string
	owns   map[string][]int
}

// Owned returns the partitions of the last generation; safe for
// concurrent use (kafka-go calls it from its own goroutine).
func (m *liveMember) Owned() map[string][]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]int, len(m.owns))
	for tp, ps := range m.owns {
		out[tp] = slices.Clone(ps)
	}
	return out
}

// id returns the member ID of the last generation.
func (m *liveMember) id() string {
	_, id, _ := m.state()
	return id
}

func (m *liveMember) state() (int32, string, map[string][]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen, m.member, m.owns
}

// protocolCounts counts AssignGroups calls by protocol name, across the
// members of a test (whichever is the leader).
type protocolCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *protocolCounts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.n)
}

func (c *protocolCounts) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// countingBalancer is a balancer that counts its AssignGroups calls.
type countingBalancer struct {
	kafka.GroupBalancer
	counts *protocolCounts
}

func (c countingBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	c.counts.mu.Lock()
	c.counts.n[c.ProtocolName()]++
	c.counts.mu.Unlock()
	return c.GroupBalancer.AssignGroups(members, partitions)
}

// startMember joins group on addrs consuming topic, with the balancers
// balancers returns given the member's Owned. It stops at the end of the
// test unless stopped before.
func startMember(t *testing.T, addrs []string, group, topic string, balancers func(owned func() map[string][]int) []kafka.GroupBalancer) *liveMember {
	t.Helper()
	m := &liveMember{done: make(chan struct{})}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                group,
		Brokers:           addrs,
		Topics:            []string{topic},
		GroupBalancers:    balancers(m.Owned),
		HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout:    6 * time.Second, // kfake's minimum
		RebalanceTimeout:  6 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.cg = cg
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for {
			gen, err := cg.Next(ctx)
			if err != nil {
				if errors.Is(err, kafka.ErrGroupClosed) || ctx.Err() != nil {
					return
				}
				continue // RebalanceInProgress and the like: kafka-go rejoins
			}
			owns := map[string][]int{}
			for tp, as := range gen.Assignments {
				for _, a := range as {
					owns[tp] = append(owns[tp], a.ID)
				}
				slices.Sort(owns[tp])
			}
			m.mu.Lock()
			m.gen, m.member, m.owns = gen.ID, gen.MemberID, owns
			m.mu.Unlock()
		}
	}()
	t.Cleanup(m.Stop)
	return m
}

// Stop leaves the group and waits for the member's goroutines.
func (m *liveMember) Stop() {
	m.once.Do(func() {
		m.cancel()
		m.cg.Close()
		<-m.done
	})
}

// waitStable waits until every member of ms is in the same generation and
// their assignments cover partitions partitions of topic, and returns
// their assignments of topic by member (in the order of ms).
func waitStable(t *testing.T, topic string, partitions int, ms ...*liveMember) [][]int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		gens := map[int32]bool{}
		var got [][]int
		covered := map[int]bool{}
		for _, m := range ms {
			gen, _, owns := m.state()
			gens[gen] = true
			got = append(got, owns[topic])
			for _, p := range owns[topic] {
				covered[p] = true
			}
		}
		if len(gens) == 1 && !gens[0] && len(covered) == partitions {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no common generation covering %d partitions within 30s: %v", partitions, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assignmentOf returns the assignment ms hold of topic, by member ID, and
// the members as the leader saw them.
func assignmentOf(topic string, ms ...*liveMember) (kafka.GroupMemberAssignments, []kafka.GroupMember) {
	out := kafka.GroupMemberAssignments{}
	var members []kafka.GroupMember
	for _, m := range ms {
		_, id, owns := m.state()
		out[id] = map[string][]int{topic: owns[topic]}
		members = append(members, kafka.GroupMember{ID: id, Topics: []string{topic}})
	}
	return out, members
}

// TestStickyGroup: kafka-go consumer groups listing [Sticky, Range] on a
// kfake broker use Sticky: two members split a 6-partition topic 3/3; when
// a third joins, each of the first two keeps 2 of its 3 and only the 2
// partitions the newcomer needs move.
func TestStickyGroup(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	counts := &protocolCounts{n: map[string]int{}}
	balancers := func(owned func() map[string][]int) []kafka.GroupBalancer {
		return []kafka.GroupBalancer{
			countingBalancer{Sticky{Owned: owned}, counts},
			countingBalancer{kafka.RangeGroupBalancer{}, counts},
		}
	}
	addrs := cluster.ListenAddrs()
	a := startMember(t, addrs, "g", "s", balancers)
	defer a.Stop()
	waitStable(t, "s", 6, a)
	b := startMember(t, addrs, "g", "s", balancers)
	defer b.Stop()
	waitStable(t, "s", 6, a, b)
	two, members := assignmentOf("s", a, b)
	checkBalanced(t, members, topicParts("s", 6), two)

	c := startMember(t, addrs, "g", "s", balancers)
	defer c.Stop()
	got := waitStable(t, "s", 6, a, b, c)
	three, members := assignmentOf("s", a, b, c)
	checkBalanced(t, members, topicParts("s", 6), three)
	for i, m := range []*liveMember{a, b} {
		prev := two[m.id()]["s"]
		for _, p := range got[i] {
			if !slices.Contains(prev, p) {
				t.Errorf("member %d had %v, now has %v: %d moved to it", i, prev, got[i], p)
			}
		}
	}
	t.Logf("two members: %v; three: %v", two, three)
	if n := moves(two, three); n != 2 {
		t.Errorf("%d partitions moved from %v to %v, want 2", n, two, three)
	}
	if counts.get("lakesink-sticky") == 0 || counts.get("range") != 0 {
		t.Errorf("AssignGroups calls by protocol: %v, want only lakesink-sticky", counts)
	}
}

// TestStickyMixedGroup: during a rolling upgrade, a member of an older
// version (kafka-go's default balancers, [Range, RoundRobin]) and one
// listing [Sticky, Range] agree on range — the only protocol both list —
// and once the old member has left, the group switches to Sticky.
func TestStickyMixedGroup(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	counts := &protocolCounts{n: map[string]int{}}
	addrs := cluster.ListenAddrs()
	old := startMember(t, addrs, "g", "s", func(func() map[string][]int) []kafka.GroupBalancer {
		return []kafka.GroupBalancer{
			countingBalancer{kafka.RangeGroupBalancer{}, counts},
			countingBalancer{kafka.RoundRobinGroupBalancer{}, counts},
		}
	})
	defer old.Stop()
	waitStable(t, "s", 6, old)
	upgraded := startMember(t, addrs, "g", "s", func(owned func() map[string][]int) []kafka.GroupBalancer {
		return []kafka.GroupBalancer{
			countingBalancer{Sticky{Owned: owned}, counts},
			countingBalancer{kafka.RangeGroupBalancer{}, counts},
		}
	})
	defer upgraded.Stop()
	waitStable(t, "s", 6, old, upgraded)
	mixed, members := assignmentOf("s", old, upgraded)
	checkBalanced(t, members, topicParts("s", 6), mixed)
	t.Logf("mixed: %v", mixed)
	if counts.get("range") == 0 || counts.get("lakesink-sticky") != 0 || counts.get("roundrobin") != 0 {
		t.Fatalf("AssignGroups calls by protocol: %v, want only range", counts)
	}

	gen, _, _ := upgraded.state()
	old.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g, _, owns := upgraded.state()
		if g > gen && len(owns["s"]) == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upgraded member did not take over within 30s: generation %d, %v", g, owns)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if counts.get("lakesink-sticky") == 0 {
		t.Errorf("AssignGroups calls by protocol: %v, want lakesink-sticky once alone", counts)
	}
}

// TestStickyKeepsCostly: a member that must give up partitions keeps the
// ones its Cost says are costliest to give up (their open files hold the
// most records) and hands over the cheap ones; without Cost, the lowest
// ids. Version 1 user data (no preferences) still counts as claims.
func TestStickyKeepsCostly(t *testing.T) {
	owned := map[string][]int{"events": {0, 1, 2, 3, 4, 5}}
	parts := make([]kafka.Partition, 6)
	for i := range parts {
		parts[i] = kafka.Partition{Topic: "events", ID: i}
	}
	for _, tc := range []struct {
		name string
		cost func(string, int) int64
		want []int
	}{
		{"costliest kept", func(_ string, p int) int64 { return int64(p) * 1000 }, []int{3, 4, 5}},
		{"some cost nothing", func(_ string, p int) int64 { return map[int]int64{1: 50, 4: 70}[p] }, []int{0, 1, 4}},
		{"no cost", nil, []int{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ud, _ := Sticky{Owned: func() map[string][]int { return owned }, Cost: tc.cost}.UserData()
			got := Sticky{}.AssignGroups([]kafka.GroupMember{
				{ID: "a", Topics: []string{"events"}, UserData: ud},
				{ID: "b", Topics: []string{"events"}},
			}, parts)
			if !slices.Equal(got["a"]["events"], tc.want) || len(got["b"]["events"]) != 3 {
				t.Errorf("a keeps %v, b gets %v; want a to keep %v", got["a"]["events"], got["b"]["events"], tc.want)
			}
		})
	}
	v1 := []byte{1, 1, 6, 'e', 'v', 'e', 'n', 't', 's', 0, 1, 0, 5} // events 0..5, no preferences
	if claims, ok := decodeClaims(v1); !ok || !reflect.DeepEqual(claims, map[string][]span{"events": {{0, 6}}}) {
		t.Errorf("version 1 user data: %v, %v", claims, ok)
	}
}
