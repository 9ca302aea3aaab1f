// Package faultproxy is a fault-injecting TCP proxy for tests: it listens on
// 127.0.0.1, forwards every connection to one target on the loopback
// interface, and can be switched at run time between passing traffic and
// failing in the ways real networks and servers fail:
//
//   - Pass: forward.
//   - Refuse: the listening port is closed (new connections get "connection
//     refused") and every open connection is reset. The port stays
//     reserved meanwhile, so no other socket can take it.
//   - Blackhole: new connections are accepted and read, but never answered
//     or forwarded; open connections stop forwarding (the bytes wait in the
//     proxy and the kernel buffers, as over a network partition) and resume
//     when the mode changes back. Connections accepted while in Blackhole
//     never reach the target and are reset when the mode changes.
//   - Slow(d): every chunk forwarded, in either direction, is delayed by d.
//   - Reset(n): forward, but reset each connection (SO_LINGER 0 and close,
//     so the peer gets RST, not FIN) once n bytes of it were forwarded —
//     typically mid-request.
//   - HTTPStatus(code, body): for HTTP targets, answer every request with
//     a canned status and body instead of forwarding (401, 403, 500, 503...);
//     open forwarded connections are reset.
//   - HTTPStatusOver(n, code, body): for HTTP targets, answer the requests
//     whose body is larger than n bytes like HTTPStatus and forward the
//     others, request by request: a server with room for small objects
//     only (413 EntityTooLarge, a quota error). Open forwarded connections
//     are reset.
//
// A proxy and all its goroutines end with Close, which New registers with
// t.Cleanup. Nothing is sent anywhere but to the loopback target.
//
// Kafka clients bypass a proxy placed before the bootstrap address once they
// have read the metadata (they dial the address the broker advertises), so
// for Kafka this proxy only models faults at bootstrap; see test/e2e's fault
// suite for how the Kafka faults of a running sink are made.
package faultproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type kind int

const (
	kindPass kind = iota
	kindRefuse
	kindBlackhole
	kindSlow
	kindReset
	kindHTTP
	kindHTTPOver
)

// Mode is what the proxy does with traffic; see the package comment.
type Mode struct {
	kind   kind
	delay  time.Duration // Slow
	after  int64         // Reset; HTTPStatusOver: the largest body forwarded
	status int           // HTTPStatus, HTTPStatusOver
	body   string        // HTTPStatus, HTTPStatusOver
}

// The modes without parameters.
var (
	Pass      = Mode{kind: kindPass}
	Refuse    = Mode{kind: kindRefuse}
	Blackhole = Mode{kind: kindBlackhole}
)

// Slow forwards every chunk after a delay of d.
func Slow(d time.Duration) Mode { return Mode{kind: kindSlow, delay: d} }

// Reset forwards, but resets a connection once afterBytes of it (both
// directions together) were forwarded. Reset(0) resets every connection at
// its first byte.
func Reset(afterBytes int64) Mode { return Mode{kind: kindReset, after: afterBytes} }

// HTTPStatus answers every HTTP request with status code and body (its
// Content-Type guessed from the first character: XML, JSON or text) and
// closes the connection, instead of forwarding.
func HTTPStatus(code int, body string) Mode { return Mode{kind: kindHTTP, status: code, body: body} }

// HTTPStatusOver answers the HTTP requests whose body is larger than n
// bytes with status code and body, as HTTPStatus does, and forwards the
// others. A body's size is its Content-Length, or X-Amz-Decoded-Content-
// Length for an S3 streaming upload (aws-chunked); a body of unknown size
// counts as larger.
func HTTPStatusOver(n int64, code int, body string) Mode {
	return Mode{kind: kindHTTPOver, after: n, status: code, body: body}
}

// String names the mode for logs and subtest names.
func (m Mode) String() string {
	switch m.kind {
	case kindPass:
		return "pass"
	case kindRefuse:
		return "refuse"
	case kindBlackhole:
		return "blackhole"
	case kindSlow:
		return "slow-" + m.delay.String()
	case kindReset:
		return "reset-after-" + strconv.FormatInt(m.after, 10)
	case kindHTTP:
		return "http-" + strconv.Itoa(m.status)
	case kindHTTPOver:
		return "http-" + strconv.Itoa(m.status) + "-over-" + strconv.FormatInt(m.after, 10)
	}
	return "unknown"
}

// Proxy is a fault-injecting TCP proxy; create it with New.
type Proxy struct {
	t      testing.TB
	target string
	addr   string
	ctx    context.Context // ends with Close
	cancel context.CancelFunc

	mu      sync.Mutex
	mode    Mode
	changed chan struct{} // closed (and replaced) at every mode change and at Close
	ln      net.Listener  // nil while refusing
	held    *reservation  // the port while refusing; see reserve
	conns   map[*conn]struct{}
	closed  bool
	wg      sync.WaitGroup

	accepted  atomic.Int64
	forwarded atomic.Int64
}

// conn is one accepted client connection and, when forwarded, its upstream.
type conn struct {
	client   net.Conn
	upstream net.Conn // nil unless forwarded
	// bound: the connection belongs to the mode it was accepted in
	// (Blackhole, HTTPStatus) and is reset when the mode changes.
	bound bool
	bytes atomic.Int64 // forwarded bytes, both directions

	mu   sync.Mutex
	dead bool
}

// reset closes both sides with SO_LINGER 0, so the peers see a reset.
func (c *conn) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.dead = true
	resetConn(c.client)
	if c.upstream != nil {
		resetConn(c.upstream)
	}
}

// connect attaches the upstream connection; false (and up closed) if the
// connection was reset meanwhile.
func (c *conn) connect(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		resetConn(up)
		return false
	}
	c.upstream = up
	return true
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// New starts a proxy on 127.0.0.1 (a free port) forwarding to target, a
// host:port on the loopback interface, in mode Pass. It is closed at the
// end of the test.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	if err := checkLoopback(target); err != nil {
		t.Fatalf("faultproxy: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{t: t, target: target, addr: ln.Addr().String(), ctx: ctx, cancel: cancel,
		mode: Pass, changed: make(chan struct{}), ln: ln, conns: map[*conn]struct{}{}}
	p.wg.Add(1)
	go p.accept(ln)
	t.Cleanup(p.Close)
	return p
}

// checkLoopback accepts only host:port on the loopback interface.
func checkLoopback(target string) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("target %q: %w", target, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || port == "0" {
		return fmt.Errorf("target %q: bad port", target)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q is not on the loopback interface", target)
	}
	return nil
}

// Addr is the proxy's host:port (stable across Refuse).
func (p *Proxy) Addr() string { return p.addr }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Accepted is the number of connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Forwarded is the number of bytes forwarded so far, both directions.
func (p *Proxy) Forwarded() int64 { return p.forwarded.Load() }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// SetMode switches the proxy to m. Connections are treated as the package
// comment says; switching from Refuse listens again on the same port.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	old := p.mode
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
	var drop []*conn
	for c := range p.conns {
		if c.bound || m.kind == kindRefuse || m.kind == kindHTTP || m.kind == kindHTTPOver {
			drop = append(drop, c)
		}
	}
	var err error
	if m.kind == kindRefuse && p.ln != nil {
		// Close the listener and hold the port at once, so that no
		// parallel test's socket takes it while this one refuses.
		_ = p.ln.Close()
		p.ln = nil
		p.held, err = reserve(p.addr)
	}
	if old.kind == kindRefuse && m.kind != kindRefuse && p.ln == nil {
		// Go sets SO_REUSEADDR, so the port can be bound again at once,
		// next to the reservation, which is released after.
		if p.ln, err = net.Listen("tcp", p.addr); err == nil {
			p.wg.Add(1)
			go p.accept(p.ln)
		}
		p.held.release()
		p.held = nil
	}
	p.mu.Unlock()
	for _, c := range drop {
		c.reset()
	}
	if err != nil {
		p.t.Errorf("faultproxy %s: %s -> %s: %v", p.addr, old, m, err)
	}
}

// Close stops the proxy: the listener and every connection are closed and
// all goroutines have ended when it returns. Safe to call twice.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.cancel()
	close(p.changed)
	ln := p.ln
	p.ln = nil
	p.held.release()
	p.held = nil
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, c := range conns {
		c.reset()
	}
	p.wg.Wait()
}

// state returns the mode and the channel closed at its next change.
func (p *Proxy) state() (Mode, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.changed, p.closed
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed (Refuse or Close)
		}
		p.accepted.Add(1)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			resetConn(c)
			return
		}
		m := p.mode
		cc := &conn{client: c, bound: m.kind == kindBlackhole || m.kind == kindHTTP || m.kind == kindHTTPOver}
		p.conns[cc] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(cc, m)
	}
}

func (p *Proxy) forget(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.reset()
}

// serve handles one accepted connection in the mode it was accepted in.
func (p *Proxy) serve(c *conn, m Mode) {
	defer p.wg.Done()
	defer p.forget(c)
	switch m.kind {
	case kindRefuse:
		return // accepted in the instant before the listener closed
	case kindBlackhole:
		_, _ = io.Copy(io.Discard, c.client) // until reset
		return
	case kindHTTP:
		br := bufio.NewReader(c.client)
		if req, err := http.ReadRequest(br); err == nil {
			p.answer(c.client, br, req, m)
		}
		return
	case kindHTTPOver:
		p.serveHTTP(c.client, m)
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		return // the client sees a reset, as from a dead server
	}
	if !c.connect(up) {
		return
	}
	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); p.pump(c, c.client, up) }()
	go func() { defer pumps.Done(); p.pump(c, up, c.client) }()
	pumps.Wait()
}

// pump copies src to dst chunk by chunk, each chunk through the current
// mode's gate.
func (p *Proxy) pump(c *conn, src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk, ok := p.gate(c, buf[:n])
			if len(chunk) > 0 {
				if _, werr := dst.Write(chunk); werr != nil {
					c.reset()
					return
				}
				p.forwarded.Add(int64(len(chunk)))
			}
			if !ok {
				c.reset()
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// Half-close: the other direction may still be talking.
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
					return
				}
			}
			c.reset()
			return
		}
	}
}

// gate decides what of chunk goes through now: it waits while the mode is
// Blackhole, sleeps in Slow, and cuts the connection in Reset. ok false:
// reset the connection after writing the returned bytes.
func (p *Proxy) gate(c *conn, chunk []byte) ([]byte, bool) {
	for {
		m, changed, closed := p.state()
		if closed {
			return nil, false
		}
		switch m.kind {
		case kindPass:
			c.bytes.Add(int64(len(chunk)))
			return chunk, true
		case kindRefuse, kindHTTP, kindHTTPOver:
			return nil, false // SetMode resets these connections too
		case kindBlackhole:
			<-changed // hold the bytes until the network heals
		case kindSlow:
			t := time.NewTimer(m.delay)
			select {
			case <-t.C:
				c.bytes.Add(int64(len(chunk)))
				return chunk, true
			case <-changed: // look again in the new mode
				t.Stop()
			}
		case kindReset:
			left := m.after - c.bytes.Load()
			if left <= 0 {
				return nil, false
			}
			if int64(len(chunk)) >= left {
				c.bytes.Add(left)
				return chunk[:left], false
			}
			c.bytes.Add(int64(len(chunk)))
			return chunk, true
		}
	}
}

// serveHTTP serves one connection in HTTPStatusOver: each request with a
// body over the limit gets the canned answer (which ends the connection),
// the others go to the target, over a connection of this one's own.
func (p *Proxy) serveHTTP(c net.Conn, m Mode) {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if bodySize(req) > m.after {
			p.answer(c, br, req, m)
			return
		}
		if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
			if _, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
				return
			}
		}
		// Host stays as the client sent it (signatures cover it).
		req.RequestURI, req.URL.Scheme, req.URL.Host = "", "http", p.target
		resp, err := tr.RoundTrip(req.WithContext(p.ctx))
		if err != nil {
			return // the client sees a reset, as from a dead server
		}
		err = resp.Write(c)
		resp.Body.Close()
		if err != nil {
			return
		}
		if req.Close || resp.Close {
			// Not the reset forget ends with: a reset can overtake the
			// response still on its way and the client would read a
			// truncated answer ("unexpected EOF").
			closeGracefully(c, br)
			return
		}
	}
}

// bodySize is the size of req's body as its headers declare it; -1 and
// unknown sizes count as the largest.
func bodySize(req *http.Request) int64 {
	if d := req.Header.Get("X-Amz-Decoded-Content-Length"); d != "" {
		if n, err := strconv.ParseInt(d, 10, 64); err == nil {
			return n
		}
	}
	if req.ContentLength < 0 {
		return 1<<63 - 1
	}
	return req.ContentLength
}

// answer writes the canned response of m to req (read from br, after its
// body unless the client waits for 100-continue), then closes the
// connection gracefully.
func (p *Proxy) answer(c net.Conn, br *bufio.Reader, req *http.Request, m Mode) {
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if !strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		// Read the body so the client is not reset while still sending.
		_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<30))
	}
	ctype := "text/plain; charset=utf-8"
	switch {
	case strings.HasPrefix(m.body, "<"):
		ctype = "application/xml"
	case strings.HasPrefix(m.body, "{"):
		ctype = "application/json; charset=utf-8"
	}
	body := m.body
	if req.Method == http.MethodHead {
		body = ""
	}
	resp := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		m.status, http.StatusText(m.status), ctype, len(m.body), body)
	if _, err := io.WriteString(c, resp); err != nil {
		return
	}
	closeGracefully(c, br)
}

// closeGracefully sends FIN after a response, then waits briefly for the
// client to close, so it reads the answer rather than a reset.
func closeGracefully(c net.Conn, br *bufio.Reader) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.Copy(io.Discard, br)
	}
}
