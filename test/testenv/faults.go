package testenv

import (
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// Freeze stops the process with SIGSTOP: it keeps its sockets, so the kernel
// still accepts connections to its ports, but it answers nothing — a hung
// server. The returned thaw (SIGCONT) may be called any number of times; it
// is also called at test cleanup, before the process is stopped.
func (p *Process) Freeze(t testing.TB) (thaw func()) {
	t.Helper()
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", p.Name, err)
	}
	var once sync.Once
	thaw = func() { once.Do(func() { _ = syscall.Kill(p.Pid(), syscall.SIGCONT) }) }
	t.Cleanup(thaw)
	return thaw
}

// Process is the running broker process (for Freeze, or its pid).
func (k *Kafka) Process() *Process { return k.proc }

// StartGCSBehind starts fake-gcs-server on a free port and tells it that
// clients reach it at publicHost ("127.0.0.1:PORT"), for instance a proxy
// in front of 127.0.0.1:port: fake-gcs-server
// routes downloads by the Host header and puts its own address into upload
// session URLs, so a client going through a proxy needs the server to know
// the proxy's address. Host and Endpoint are publicHost's; Restart keeps
// it. The proxy must pass traffic to Target while this waits for the
// server to answer.
func StartGCSBehind(t testing.TB, port int, publicHost string) *GCS {
	t.Helper()
	g := &GCS{t: t, bin: Tool(t, "fake-gcs-server"), Dir: t.TempDir(), port: port}
	g.Host = publicHost
	g.Endpoint = "http://" + publicHost
	g.start()
	return g
}

// Target is where the server really listens, 127.0.0.1:port.
func (g *GCS) Target() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(g.port)) }
