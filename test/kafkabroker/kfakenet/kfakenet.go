// Package kfakenet is the listener test/kafkabroker gives franz-go's kfake
// (kfake.ListenFn) so that a group member that dies with its JoinGroup
// pending is expired after its session timeout, as a real Kafka broker
// expires it.
//
// Why: kfake (groups.go, group.reply) starts a member's session timer only
// when its JoinGroup answer was handed to the connection. A member that
// joined (and whose pending-member timer was stopped) but whose connection
// closed before the answer gets no session timer at all; the pending-sync
// timer that would remove it is cleared when the leader's SyncGroup
// completes the rebalance (completeLeaderSync). The dead member then keeps
// the partitions the leader assigned it until the next rebalance. Whether
// the answer is "handed over" is a select between the connection's
// buffered response channel and its closed done channel, so it happens in
// about half of such deaths. See docs/development.md (Test servers).
//
// The fix from outside kfake: a connection's Read holds back the client's
// EOF (or any read error) until every request read from it has been
// answered — the answer is then written to the dead socket and lost, as
// with a real broker — so kfake's done channel stays open, the answer is
// handed over and the session timer starts. Requests are counted from the
// Kafka framing (a 4-byte size, then the body); produce requests with
// acks=0 get no answer and are not counted. A request kfake never answers
// (the cluster shut down) holds the read back at most maxHold, or until
// the connection is closed.
package kfakenet

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// maxHold bounds how long a read error is held back for answers.
const maxHold = 10 * time.Minute

// Listen is net.Listen whose connections hold back a client's EOF until
// every request read has been answered (see the package comment).
func Listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &listener{Listener: ln}, nil
}

type listener struct{ net.Listener }

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, wake: make(chan struct{})}, nil
}

// conn counts the requests read and the answers written.
type conn struct {
	net.Conn

	mu       sync.Mutex
	in, out  framer
	requests int // requests read that expect an answer
	answers  int // answers written
	closed   bool
	wake     chan struct{} // closed and replaced when answers or closed change
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in.feed(p[:n], func(head []byte) {
		if expectsAnswer(head) {
			c.requests++
		}
	})
	c.mu.Unlock()
	if err != nil {
		c.awaitAnswers()
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	// kfake writes each answer whole and never again, so an answer counts
	// as given whether or not the peer got it.
	c.mu.Lock()
	c.out.feed(p, func([]byte) { c.answers++ })
	c.signal()
	c.mu.Unlock()
	return n, err
}

func (c *conn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.signal()
	c.mu.Unlock()
	return c.Conn.Close()
}

// signal wakes awaitAnswers; c.mu is held.
func (c *conn) signal() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// awaitAnswers returns once every counted request has been answered, the
// connection is closed, or maxHold has passed.
func (c *conn) awaitAnswers() {
	t := time.NewTimer(maxHold)
	defer t.Stop()
	for {
		c.mu.Lock()
		done, wake := c.answers >= c.requests || c.closed, c.wake
		c.mu.Unlock()
		if done {
			return
		}
		select {
		case <-wake:
		case <-t.C:
			return
		}
	}
}

// headLen is how much of a frame's body is kept for expectsAnswer.
const headLen = 512

// framer splits a byte stream into Kafka frames (int32 size, then body).
type framer struct {
	size   [4]byte
	nsize  int    // bytes of size read
	remain int    // body bytes still to come
	head   []byte // the body's first headLen bytes
}

// feed consumes p and calls frame with the head of every frame completed.
func (f *framer) feed(p []byte, frame func(head []byte)) {
	for len(p) > 0 {
		if f.nsize < 4 {
			k := copy(f.size[f.nsize:], p)
			f.nsize += k
			p = p[k:]
			if f.nsize == 4 {
				f.remain = int(int32(binary.BigEndian.Uint32(f.size[:])))
				f.head = f.head[:0]
				if f.remain <= 0 {
					f.nsize = 0
					frame(nil)
				}
			}
			continue
		}
		k := min(f.remain, len(p))
		if keep := headLen - len(f.head); keep > 0 {
			f.head = append(f.head, p[:min(keep, k)]...)
		}
		f.remain -= k
		p = p[k:]
		if f.remain == 0 {
			f.nsize = 0
			frame(f.head)
		}
	}
}

// expectsAnswer reports whether the request whose body starts with head
// gets an answer: every request but a produce with acks=0. A head too
// short to tell counts as answered.
func expectsAnswer(head []byte) bool {
	if len(head) < 10 || binary.BigEndian.Uint16(head) != 0 { // key 0: produce
		return true
	}
	version := int16(binary.BigEndian.Uint16(head[2:]))
	// key, version, correlation id, then the client id (int16-sized, -1
	// for null) in every header version.
	pos := 8
	if l := int(int16(binary.BigEndian.Uint16(head[pos:]))); l > 0 {
		pos += l
	}
	pos += 2
	flexible := version >= 9
	if flexible { // header tagged fields
		n, ok := uvarint(head, &pos)
		for i := 0; ok && i < n; i++ {
			var size int
			if _, ok = uvarint(head, &pos); !ok {
				break
			}
			if size, ok = uvarint(head, &pos); ok {
				pos += size
			}
		}
		if !ok {
			return true
		}
	}
	if version >= 3 { // transactional id
		if flexible {
			l, ok := uvarint(head, &pos)
			if !ok {
				return true
			}
			if l > 0 {
				pos += l - 1
			}
		} else {
			if pos+2 > len(head) {
				return true
			}
			if l := int(int16(binary.BigEndian.Uint16(head[pos:]))); l > 0 {
				pos += l
			}
			pos += 2
		}
	}
	if pos < 0 || pos+2 > len(head) {
		return true
	}
	return int16(binary.BigEndian.Uint16(head[pos:])) != 0
}

// uvarint reads an unsigned varint at *pos.
func uvarint(b []byte, pos *int) (int, bool) {
	if *pos < 0 || *pos >= len(b) {
		return 0, false
	}
	v, n := binary.Uvarint(b[*pos:])
	if n <= 0 || v > 1<<20 {
		return 0, false
	}
	*pos += n
	return int(v), true
}
