package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads len(msg) bytes back within timeout.
func roundTrip(c net.Conn, msg string, timeout time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	n, err := io.ReadFull(c, buf)
	return string(buf[:n]), err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPassAndRefuse(t *testing.T) {
	p := New(t, echoServer(t))
	c := dial(t, p.Addr())
	if got, err := roundTrip(c, "hello", 2*time.Second); err != nil || got != "hello" {
		t.Fatalf("pass: %q, %v", got, err)
	}
	p.SetMode(Refuse)
	// The open connection is reset...
	if _, err := roundTrip(c, "again", 2*time.Second); err == nil || isTimeout(err) {
		t.Fatalf("open connection after Refuse: %v, want a reset or EOF", err)
	}
	// ...and new ones are refused.
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while refusing: %v, want connection refused", err)
	}
	// ...while the port stays taken, so no parallel test's socket gets it.
	if err := bindPlain(p.Addr()); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("bind the refusing proxy's port: %v, want address in use", err)
	}
	p.SetMode(Pass)
	c2 := dial(t, p.Addr())
	if got, err := roundTrip(c2, "back", 2*time.Second); err != nil || got != "back" {
		t.Fatalf("pass after refuse: %q, %v", got, err)
	}
	if p.Accepted() != 2 || p.Forwarded() < 2*int64(len("hello")) {
		t.Errorf("accepted %d, forwarded %d", p.Accepted(), p.Forwarded())
	}
}

func TestBlackhole(t *testing.T) {
	p := New(t, echoServer(t))
	old := dial(t, p.Addr())
	if _, err := roundTrip(old, "x", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetMode(Blackhole)
	// A new connection is accepted, takes bytes and never answers.
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "anyone?", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new connection in Blackhole: %v, want a timeout", err)
	}
	// An open connection stops forwarding...
	if _, err := roundTrip(old, "held", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("open connection in Blackhole: %v, want a timeout", err)
	}
	p.SetMode(Pass)
	// ...and resumes with the bytes it held.
	_ = old.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(old, buf); err != nil || string(buf) != "held" {
		t.Fatalf("held bytes after Blackhole: %q, %v", buf, err)
	}
	// The connection accepted during the Blackhole never reached the
	// target and is reset now.
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(buf); err == nil || isTimeout(err) {
		t.Fatalf("connection accepted in Blackhole after Pass: %v, want reset", err)
	}
}

func TestSlow(t *testing.T) {
	p := New(t, echoServer(t))
	c := dial(t, p.Addr())
	p.SetMode(Slow(150 * time.Millisecond))
	start := time.Now()
	if got, err := roundTrip(c, "slow", 3*time.Second); err != nil || got != "slow" {
		t.Fatalf("slow: %q, %v", got, err)
	}
	// One chunk each way.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("round trip took %s, want >= 300ms", d)
	}
	// A mode change ends the delay at once.
	p.SetMode(Slow(time.Hour))
	go func() { time.Sleep(100 * time.Millisecond); p.SetMode(Pass) }()
	if got, err := roundTrip(c, "fast", 3*time.Second); err != nil || got != "fast" {
		t.Fatalf("slow then pass: %q, %v", got, err)
	}
}

func TestReset(t *testing.T) {
	p := New(t, echoServer(t))
	p.SetMode(Reset(10))
	c := dial(t, p.Addr())
	msg := strings.Repeat("a", 100)
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.WriteString(c, msg)
	got, err := io.ReadAll(c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after Reset(10): %v, want connection reset", err)
	}
	// 10 bytes reached the echo server; at most those came back.
	if len(got) > 10 {
		t.Errorf("read %d bytes back, want <= 10", len(got))
	}
}

func TestHTTPStatus(t *testing.T) {
	var hits sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, true)
		_, _ = io.WriteString(w, "real")
	}))
	defer srv.Close()
	p := New(t, strings.TrimPrefix(srv.URL, "http://"))
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	get := func(method, path string, body io.Reader) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+p.Addr()+path, body)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("GET", "/a", nil); code != 200 || body != "real" {
		t.Fatalf("pass: %d %q", code, body)
	}
	const denied = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code></Error>`
	p.SetMode(HTTPStatus(http.StatusForbidden, denied))
	// The keep-alive connection of the first request was reset; the client
	// retries a GET on a fresh one.
	if code, body := get("GET", "/b", nil); code != 403 || body != denied {
		t.Fatalf("403 mode: %d %q", code, body)
	}
	if code, body := get("PUT", "/c", bytes.NewReader(make([]byte, 1<<20))); code != 403 || body != denied {
		t.Fatalf("403 mode, PUT with a body: %d %q", code, body)
	}
	p.SetMode(HTTPStatus(http.StatusServiceUnavailable, `{"error":"busy"}`))
	if code, _ := get("GET", "/d", nil); code != 503 {
		t.Fatalf("503 mode: %d", code)
	}
	for _, path := range []string{"/b", "/c", "/d"} {
		if _, ok := hits.Load(path); ok {
			t.Errorf("%s reached the server in a canned-status mode", path)
		}
	}
	p.SetMode(Pass)
	if code, body := get("GET", "/e", nil); code != 200 || body != "real" {
		t.Fatalf("pass again: %d %q", code, body)
	}
}

// TestHTTPStatusOver: requests with bodies up to the limit reach the
// server, on a kept-alive connection, with their headers (Host included)
// and bodies; larger ones get the canned answer, whatever came before on
// the connection; a streaming S3 upload counts at its decoded length.
func TestHTTPStatusOver(t *testing.T) {
	var mu sync.Mutex
	got := map[string]string{} // path -> "host len(body)"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = fmt.Sprintf("%s %d", r.Host, len(b))
		mu.Unlock()
		_, _ = io.WriteString(w, "real")
	}))
	defer srv.Close()
	p := New(t, strings.TrimPrefix(srv.URL, "http://"))
	const tooLarge = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>EntityTooLarge</Code></Error>`
	p.SetMode(HTTPStatusOver(1024, http.StatusRequestEntityTooLarge, tooLarge))
	if p.Mode().String() != "http-413-over-1024" {
		t.Errorf("mode name %q", p.Mode())
	}
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	cases := []struct {
		method, path string
		size         int
		decoded      string // X-Amz-Decoded-Content-Length
		wantCode     int
	}{
		{"GET", "/get", 0, "", 200},
		{"PUT", "/small", 1024, "", 200},
		{"HEAD", "/head", 0, "", 200},
		{"PUT", "/large", 1025, "", 413},
		{"PUT", "/small-again", 10, "", 200},
		{"PUT", "/chunked-small", 1100, "1000", 200},
		{"PUT", "/chunked-large", 1100, "5000", 413},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, "http://"+p.Addr()+c.path, bytes.NewReader(make([]byte, c.size)))
		if c.decoded != "" {
			req.Header.Set("X-Amz-Decoded-Content-Length", c.decoded)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.wantCode {
			t.Errorf("%s %s (%d bytes): %d %q, want %d", c.method, c.path, c.size, resp.StatusCode, b, c.wantCode)
		}
		mu.Lock()
		reached, ok := got[c.path]
		mu.Unlock()
		switch {
		case c.wantCode == 413 && (ok || string(b) != tooLarge):
			t.Errorf("%s %s: body %q, reached the server: %v", c.method, c.path, b, ok)
		case c.wantCode == 200 && reached != fmt.Sprintf("%s %d", p.Addr(), c.size):
			t.Errorf("%s %s: the server saw %q, want host %s and %d bytes", c.method, c.path, reached, p.Addr(), c.size)
		case c.wantCode == 200 && c.method != "HEAD" && string(b) != "real":
			t.Errorf("%s %s: body %q", c.method, c.path, b)
		}
	}
	p.SetMode(Pass)
	req, _ := http.NewRequest("PUT", "http://"+p.Addr()+"/after", bytes.NewReader(make([]byte, 1<<20)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("pass again: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("pass again: %d", resp.StatusCode)
	}
}

// TestHTTPStatusOverServerCloses: when the server ends a forwarded
// exchange with "Connection: close" (versitygw does on HEAD and GET), the
// client still reads the whole answer, every time: the proxy closes its
// side with a FIN after the answer, never with a reset that can overtake
// the bytes still on their way.
func TestHTTPStatusOverServerCloses(t *testing.T) {
	body := strings.Repeat("lake", 64<<10) // 256 KiB, more than socket buffers hold at once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	p := New(t, strings.TrimPrefix(srv.URL, "http://"))
	p.SetMode(HTTPStatusOver(0, http.StatusForbidden, "no"))
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	for i := range 50 {
		resp, err := client.Get("http://" + p.Addr() + "/object")
		if err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(b) != len(body) {
			t.Fatalf("GET %d: read %d of %d bytes: %v", i, len(b), len(body), err)
		}
	}
}

// TestCloseEndsEverything: Close returns with every goroutine gone, in
// every mode and with connections open in each.
func TestCloseEndsEverything(t *testing.T) {
	target := echoServer(t)
	before := runtime.NumGoroutine()
	for _, m := range []Mode{Pass, Blackhole, Slow(time.Hour), Reset(1 << 20), HTTPStatus(500, "x"), HTTPStatusOver(10, 413, "x"), Refuse} {
		p := New(t, target)
		var cs []net.Conn
		for range 3 {
			c := dial(t, p.Addr())
			_, _ = io.WriteString(c, "ping")
			cs = append(cs, c)
		}
		p.SetMode(m)
		if m.kind != kindRefuse {
			c := dial(t, p.Addr())
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			cs = append(cs, c)
		}
		time.Sleep(50 * time.Millisecond)
		done := make(chan struct{})
		go func() { p.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Close in mode %s did not return", m)
		}
		p.Close() // twice is fine
		for _, c := range cs {
			c.Close()
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestLoopbackOnly(t *testing.T) {
	for target, ok := range map[string]bool{
		"127.0.0.1:80": true, "localhost:9092": true, "[::1]:80": true,
		"10.0.0.1:80": false, "example.com:80": false, "127.0.0.1": false, "127.0.0.1:0": false,
	} {
		if err := checkLoopback(target); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v", target, err)
		}
	}
}

// TestRefusingAddr: the address refuses connections and its port cannot
// be bound by another socket.
func TestRefusingAddr(t *testing.T) {
	addr := RefusingAddr(t)
	if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
	if err := bindPlain(addr); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("bind %s: %v, want address in use", addr, err)
	}
}

// bindPlain binds a socket without SO_REUSEADDR to addr and closes it.
func bindPlain(addr string) error {
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	sa := &syscall.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	return syscall.Bind(fd, sa)
}
