package kafkaio

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"strings"

	"github.com/segmentio/kafka-go"
)

// stickyProtocol is Sticky's protocol name in JoinGroup. Changing it
// makes old and new members unable to agree on it: never rename.
const stickyProtocol = "lakesink-sticky"

// stickyVersion is the version of Sticky's user data (the first byte). A
// leader that reads another version counts the member as owning nothing.
const stickyVersion = 2

// maxPrefs bounds the partitions a member lists as costly to give up.
const maxPrefs = 1024

// maxPartition is the largest partition id Kafka can have (an INT32).
const maxPartition = math.MaxInt32

// Sticky is a kafka.GroupBalancer that keeps each member's partitions
// across generations as far as balance allows.
//
// Why: kafka-go's group protocol is eager — every generation revokes every
// partition of every member. A lakesink worker whose partition comes back
// to the same member in the next generation can keep its open files
// instead of finishing them; for that to happen often, the assignment must
// change as little as possible between generations. Sticky does not make
// the protocol cooperative: the member still loses every partition at the
// end of a generation and is told in the next one which it has.
//
// How: every member sends the partitions it holds (Owned) as its user
// data at each JoinGroup; the leader's AssignGroups balances each topic
// among the members subscribed to it — each gets floor(P/M) or ceil(P/M)
// of its P partitions — and keeps as many previous (member, partition)
// pairs as that balance allows (see AssignGroups). Ownership is a hint,
// not a lease: a member may have missed generations (evicted, paused past
// the session timeout) in which another member owned and committed its
// partition, so whoever reuses state across generations must check the
// committed offset, not the assignment alone.
//
// Mixed groups (rolling upgrades and rollbacks). Older lakesink versions
// use kafka-go's default balancers, [Range, RoundRobin]. The sink lists
// Sticky first and Range second:
//
//	GroupBalancers: []kafka.GroupBalancer{kafkaio.Sticky{Owned: owned}, kafka.RangeGroupBalancer{}}
//
// kafka-go sends its GroupBalancers, in order, as the JoinGroup's
// protocols (makeJoinGroupRequest, consumergroup.go:990 in v0.4.51), and
// the leader runs the balancer whose name the JoinGroup response carries
// (assignTopicPartitions: findGroupBalancer(group.GroupProtocol, …),
// consumergroup.go:1015). The choice itself is the coordinator's, not the
// leader's (kafka-go's GroupBalancers doc says "chosen by the leader";
// that is not how Kafka does it): the candidates are the protocols every
// member lists, each member votes for the first candidate in its own list,
// and the most votes win (Kafka's ClassicGroup.selectProtocol, formerly
// GroupMetadata.selectProtocol; kfake's group rebalance does the same). So while an old member is in the group
// the only candidate is "range" and everyone uses Range; when the last old
// member leaves, every member votes "lakesink-sticky", and the first
// sticky generation starts from Range's assignment as what each member
// owns. A rollback goes the same way back. Range must stay in the list as
// long as an old version may join: the coordinator refuses a joiner that
// shares no protocol with the group (InconsistentGroupProtocol), and
// kafka-go retries that forever. While Range is in use the assignment is
// not sticky.
//
// Concurrency: ProtocolName and AssignGroups are pure and safe for
// concurrent use; UserData calls Owned (see there).
type Sticky struct {
	// Owned returns the partitions this member holds now (topic ->
	// partition ids): those of its current or just-ended generation,
	// including partitions whose workers are paused waiting for the next
	// one. Called by kafka-go at every JoinGroup, from its own goroutine:
	// must be safe for concurrent use. The map and slices are only read.
	// Nil means the member owns nothing (a new process). Negative ids and
	// ids above the INT32 range are not Kafka partitions and are dropped.
	Owned func() map[string][]int
	// Cost, when set, says what giving up an owned partition costs the
	// member: the records its open files hold, which the next owner reads
	// again. A member that must give up partitions to balance the group
	// keeps its costliest ones (see AssignGroups). Called from UserData,
	// like Owned; must be safe for concurrent use. Nil: all cost the same.
	Cost func(topic string, partition int) int64
}

// ProtocolName returns "lakesink-sticky".
func (Sticky) ProtocolName() string { return stickyProtocol }

// UserData encodes Owned() for the leader. It never returns an error:
// kafka-go would fail the JoinGroup with it and retry forever, and an
// unencodable claim (there is none) only costs stickiness.
//
// Encoding (version 2), all integers unsigned varints:
//
//	byte 2 (version) · topic count · per topic, by name:
//	  name length · name · form (0 ranges, 1 bitmap) ·
//	  ranges: count · per range (ascending): gap from the previous
//	          range's end (first: from 0) · length-1
//	  bitmap: byte count · bytes (bit i of byte j: partition 8j+i)
//	  preferences: count · partition ids, costliest to give up first
//	               (Cost; at most 1024 over all topics)
//
// Version 1 is the same without the preferences; the leader reads both.
//
// Each topic takes the smaller form, so its size is at most about two
// bytes per range of consecutive partitions and at most P/8 bytes (plus
// its name): a member holding every other one of 4096 partitions sends
// 524 bytes, one holding a scattered third of 1024 140, a contiguous
// third under 20 (TestStickyUserData).
func (s Sticky) UserData() ([]byte, error) {
	var owned map[string][]int
	if s.Owned != nil {
		owned = s.Owned()
	}
	claims := make(map[string][]span, len(owned))
	type costly struct {
		topic string
		id    int
		cost  int64
	}
	var cs []costly
	for t, ids := range owned {
		if sp := spansOf(ids); len(sp) > 0 {
			claims[t] = sp
		}
		if s.Cost == nil {
			continue
		}
		for _, id := range ids {
			if c := s.Cost(t, id); c > 0 && id >= 0 && int64(id) <= maxPartition {
				cs = append(cs, costly{t, id, c})
			}
		}
	}
	slices.SortFunc(cs, func(a, b costly) int {
		return cmp.Or(cmp.Compare(b.cost, a.cost), strings.Compare(a.topic, b.topic), cmp.Compare(a.id, b.id))
	})
	prefs := map[string][]int{}
	for _, c := range cs[:min(len(cs), maxPrefs)] {
		prefs[c.topic] = append(prefs[c.topic], c.id)
	}
	return encodeClaims(claims, prefs), nil
}

// span is the partitions lo..hi-1 of a topic. int64: hi of the last
// partition id is maxPartition+1, which overflows a 32-bit int.
type span struct{ lo, hi int64 }

// spansOf returns the valid ids among ids as sorted, disjoint, non-adjacent
// spans. ids is not modified.
func spansOf(ids []int) []span {
	v := make([]int64, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && int64(id) <= maxPartition {
			v = append(v, int64(id))
		}
	}
	slices.Sort(v)
	var out []span
	for _, id := range v {
		if n := len(out); n > 0 && id <= out[n-1].hi {
			out[n-1].hi = max(out[n-1].hi, id+1)
			continue
		}
		out = append(out, span{id, id + 1})
	}
	return out
}

// encodeClaims encodes claims (sorted, disjoint, non-adjacent spans of
// partition ids ≤ maxPartition per topic; topics without spans are left
// out) as documented on UserData.
func encodeClaims(claims map[string][]span, prefs map[string][]int) []byte {
	topics := make([]string, 0, len(claims))
	for t, sp := range claims {
		if len(sp) > 0 {
			topics = append(topics, t)
		}
	}
	slices.Sort(topics)
	b := []byte{stickyVersion}
	b = binary.AppendUvarint(b, uint64(len(topics)))
	for _, t := range topics {
		sp := claims[t]
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
		var ranges []byte
		ranges = binary.AppendUvarint(ranges, uint64(len(sp)))
		end := int64(0)
		for _, s := range sp {
			ranges = binary.AppendUvarint(ranges, uint64(s.lo-end))
			ranges = binary.AppendUvarint(ranges, uint64(s.hi-s.lo-1))
			end = s.hi
		}
		nbytes := (end + 7) / 8
		bitmapSize := int64(uvarintLen(uint64(nbytes))) + nbytes
		if bitmapSize >= int64(len(ranges)) {
			b = append(b, 0)
			b = append(b, ranges...)
		} else {
			b = append(b, 1)
			b = binary.AppendUvarint(b, uint64(nbytes))
			bm := make([]byte, nbytes)
			for _, s := range sp {
				for p := s.lo; p < s.hi; p++ {
					bm[p/8] |= 1 << (p % 8)
				}
			}
			b = append(b, bm...)
		}
		b = binary.AppendUvarint(b, uint64(len(prefs[t])))
		for _, id := range prefs[t] {
			b = binary.AppendUvarint(b, uint64(id))
		}
	}
	return b
}

func uvarintLen(v uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], v)
}

// decodeClaims decodes user data written by encodeClaims. ok is false if b
// is empty, of another version or malformed (truncated, trailing bytes, a
// topic twice, an unknown form, a partition id beyond INT32): the leader
// then counts the member as owning nothing. The spans of each topic are
// sorted, disjoint and non-adjacent; topics without any are left out. The
// work and memory are linear in len(b): a range's length is not expanded.
func decodeClaims(b []byte) (claims map[string][]span, ok bool) {
	claims, _, ok = decodeUserData(b)
	return claims, ok
}

// decodeUserData is decodeClaims with the preferences of version 2 (per
// topic, partition ids costliest first; nil for version 1).
func decodeUserData(b []byte) (claims map[string][]span, prefs map[string][]int, ok bool) {
	if len(b) == 0 || (b[0] != 1 && b[0] != 2) {
		return nil, nil, false
	}
	v2 := b[0] == 2
	fail := func() (map[string][]span, map[string][]int, bool) { return nil, nil, false }
	r := reader{b: b[1:]}
	n := r.uvarint()
	// Each topic takes at least 3 bytes (name length, form, count).
	if r.bad || n > uint64(len(r.b))/3 {
		return fail()
	}
	claims = make(map[string][]span, n)
	seen := make(map[string]bool, n)
	for range n {
		l := r.uvarint()
		if r.bad || l > uint64(len(r.b)) {
			return fail()
		}
		t := string(r.b[:l])
		r.b = r.b[l:]
		if seen[t] {
			return fail()
		}
		seen[t] = true
		form := r.byte()
		var sp []span
		switch {
		case r.bad:
			return fail()
		case form == 0:
			count := r.uvarint()
			// Each range takes at least 2 bytes.
			if r.bad || count > uint64(len(r.b))/2 {
				return fail()
			}
			end := int64(0)
			for range count {
				gap, length := r.uvarint(), r.uvarint()
				if r.bad || gap > maxPartition+1 || length > maxPartition {
					return fail()
				}
				lo := end + int64(gap)
				hi := lo + int64(length) + 1
				if hi > maxPartition+1 {
					return fail()
				}
				if n := len(sp); n > 0 && sp[n-1].hi == lo {
					sp[n-1].hi = hi
				} else {
					sp = append(sp, span{lo, hi})
				}
				end = hi
			}
		case form == 1:
			nbytes := r.uvarint()
			if r.bad || nbytes > uint64(len(r.b)) || nbytes*8 > maxPartition+1 {
				return fail()
			}
			for i, c := range r.b[:nbytes] {
				for bit := range int64(8) {
					if c&(1<<bit) == 0 {
						continue
					}
					p := int64(i)*8 + bit
					if n := len(sp); n > 0 && sp[n-1].hi == p {
						sp[n-1].hi = p + 1
					} else {
						sp = append(sp, span{p, p + 1})
					}
				}
			}
			r.b = r.b[nbytes:]
		default:
			return fail()
		}
		if len(sp) > 0 {
			claims[t] = sp
		}
		if v2 {
			count := r.uvarint()
			if r.bad || count > uint64(len(r.b)) {
				return fail()
			}
			for range count {
				id := r.uvarint()
				if r.bad || id > maxPartition {
					return fail()
				}
				if prefs == nil {
					prefs = map[string][]int{}
				}
				prefs[t] = append(prefs[t], int(id))
			}
		}
	}
	if len(r.b) != 0 {
		return fail()
	}
	return claims, prefs, true
}

// reader reads varints and bytes from b; bad is set, and sticks, when b
// ends early or a varint is malformed.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if r.bad || len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// AssignGroups assigns partitions to members, topic by topic (in name
// order), among the members subscribed to the topic (GroupMember.Topics):
//
//   - Balance: of a topic's P partitions, each of its M members gets
//     floor(P/M) or ceil(P/M); exactly P mod M get the ceil. Every
//     partition in partitions is assigned exactly once (ids listed twice
//     count once); a member gets nothing of a topic it is not subscribed
//     to.
//   - Previous owners: a member's user data (see UserData) claims the
//     partitions it held. Claims of partitions that do not exist are
//     ignored; a partition claimed by several members goes to the one
//     with the lowest member ID (the others lose it). User data that is
//     empty, of another version or undecodable claims nothing; it never
//     fails the assignment.
//   - Quotas: the ceil goes to the members that claim the most partitions
//     of the topic (ties: to those with fewer partitions assigned in the
//     topics before, so that many one-partition topics spread; then by
//     member ID). This keeps the largest possible number of previous
//     pairs: a member keeps its claimed partitions up to its quota — the
//     ones it listed as costliest to give up first (Cost: the records its
//     open files hold, which the next owner would read again), then the
//     lowest ids — so the partitions that move are exactly those a member
//     gives up to reach its quota plus those of members that left or
//     claimed by nobody.
//   - The rest: partitions not kept, in ascending id order, go to the
//     members under quota in order of (partitions kept, member ID), each
//     filled up to its quota before the next — so a new group gets ranges
//     of consecutive partitions, as Range would.
//
// Every member is in the result, with an entry (possibly empty) for each
// topic it subscribes to; a member with no subscriptions gets an empty
// map. (kafka-go's SyncGroup sends an assignment for each member in the
// map; one left out would get none from the coordinator, which kafka-go
// also reads as empty, but an explicit empty one is clearer.) Member IDs
// are unique in a group (the coordinator assigns them); given that, the
// result depends only on the set of members and partitions, not on their
// order. Pure: safe for concurrent use; members and partitions are only
// read.
func (Sticky) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	ms := slices.Clone(members)
	slices.SortStableFunc(ms, func(a, b kafka.GroupMember) int { return strings.Compare(a.ID, b.ID) })
	ms = slices.CompactFunc(ms, func(a, b kafka.GroupMember) bool { return a.ID == b.ID })

	out := make(kafka.GroupMemberAssignments, len(ms))
	claims := make([]map[string][]span, len(ms))
	prefs := make([]map[string][]int, len(ms))
	subs := map[string][]int{} // topic -> indices into ms, ascending ID
	for i, m := range ms {
		out[m.ID] = map[string][]int{}
		claims[i], prefs[i], _ = decodeUserData(m.UserData)
		for _, t := range m.Topics {
			if _, dup := out[m.ID][t]; dup {
				continue
			}
			out[m.ID][t] = []int{}
			subs[t] = append(subs[t], i)
		}
	}
	ids := map[string][]int{}
	for _, p := range partitions {
		if _, ok := subs[p.Topic]; ok {
			ids[p.Topic] = append(ids[p.Topic], p.ID)
		}
	}
	topics := make([]string, 0, len(subs))
	for t := range subs {
		topics = append(topics, t)
	}
	slices.Sort(topics)

	load := make([]int, len(ms)) // partitions assigned in the topics before
	for _, t := range topics {
		tids := ids[t]
		slices.Sort(tids)
		tids = slices.Compact(tids)
		assignTopic(t, tids, subs[t], ms, claims, prefs, load, out)
	}
	return out
}

// assignTopic assigns the partitions ids (sorted, unique) of topic to the
// members subs (indices into ms, ascending ID) as AssignGroups documents,
// adding to out and load.
func assignTopic(topic string, ids []int, subs []int, ms []kafka.GroupMember, claims []map[string][]span, prefs []map[string][]int, load []int, out kafka.GroupMemberAssignments) {
	P, M := len(ids), len(subs)
	// owner[i]: position in subs of the member ids[i] goes to, -1 if none
	// yet. Claims first, in ascending member ID: the lowest ID wins.
	owner := make([]int, P)
	for i := range owner {
		owner[i] = -1
	}
	claimed := make([]int, M) // partitions each member claims and gets
	for k, mi := range subs {
		sp := claims[mi][topic]
		i := 0
		for _, s := range sp {
			for i < P && int64(ids[i]) < s.lo {
				i++
			}
			for ; i < P && int64(ids[i]) < s.hi; i++ {
				if owner[i] == -1 {
					owner[i] = k
					claimed[k]++
				}
			}
		}
	}

	quota := make([]int, M)
	order := make([]int, M)
	for k := range order {
		order[k] = k
		quota[k] = P / M
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(
			cmp.Compare(claimed[b], claimed[a]),
			cmp.Compare(load[subs[a]], load[subs[b]]),
			cmp.Compare(a, b), // subs is in ID order
		)
	})
	for _, k := range order[:P%M] {
		quota[k]++
	}

	// Keep claims up to quota: first the partitions the member said are
	// costliest to give up (its open files hold the most records), then
	// the lowest ids; free the rest.
	count := make([]int, M)
	idx := make(map[int]int, P) // partition id -> index in ids
	for i, id := range ids {
		idx[id] = i
	}
	for k, mi := range subs {
		if claimed[k] <= quota[k] {
			continue
		}
		keep := make([]bool, P)
		kept := 0
		for _, id := range prefs[mi][topic] {
			if i, ok := idx[id]; ok && owner[i] == k && !keep[i] && kept < quota[k] {
				keep[i] = true
				kept++
			}
		}
		for i := range owner {
			if owner[i] == k && !keep[i] {
				if kept < quota[k] {
					keep[i] = true
					kept++
				} else {
					owner[i] = -1
				}
			}
		}
	}
	for _, k := range owner {
		if k != -1 {
			count[k]++
		}
	}

	// Hand out the free partitions in id order, filling one member at a
	// time, in order of (count, ID).
	slices.SortFunc(order, func(a, b int) int { return cmp.Or(cmp.Compare(count[a], count[b]), cmp.Compare(a, b)) })
	i := 0
	for _, k := range order {
		for count[k] < quota[k] {
			for owner[i] != -1 {
				i++
			}
			owner[i] = k
			count[k]++
		}
	}

	for k, mi := range subs {
		out[ms[mi].ID][topic] = make([]int, 0, quota[k])
		load[mi] += quota[k]
	}
	for i, k := range owner {
		id := ms[subs[k]].ID
		out[id][topic] = append(out[id][topic], ids[i])
	}
}
