package faultproxy

import (
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
)

// reservation holds a TCP port bound but not listening: connections to it
// are refused (the kernel answers RST to a SYN for a port nobody listens
// on), yet no other socket of this machine can take the port — neither
// another listener asking for a free port nor an outgoing connection's
// ephemeral port. Without it, while a proxy refuses, its port could be
// handed to another proxy of a parallel test, and a client expecting
// "connection refused" would talk to that one instead.
type reservation struct{ fd int }

// reserve binds a socket to addr (an IPv4 host:port) without listening.
// SO_REUSEADDR lets it bind next to the connections the closed listener
// left in TIME_WAIT, and lets a listener bind the port again while the
// reservation holds it (a socket that is not listening does not conflict).
func reserve(addr string) (*reservation, error) {
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reserve %s: socket: %w", addr, err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("reserve %s: SO_REUSEADDR: %w", addr, err)
	}
	sa := &syscall.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	if err := syscall.Bind(fd, sa); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("reserve %s: bind: %w", addr, err)
	}
	return &reservation{fd: fd}, nil
}

// release frees the port. Safe on a nil reservation.
func (r *reservation) release() {
	if r != nil {
		_ = syscall.Close(r.fd)
	}
}

// RefusingAddr returns an address on 127.0.0.1 that refuses connections
// ("connection refused") until the test ends, its port held meanwhile so
// that no other socket — a parallel test's listener, an HTTP server
// asking for a free port — can take it. Listening on a free port and
// closing the listener does not do that: the port is handed out again.
func RefusingAddr(t testing.TB) string {
	t.Helper()
	r, err := reserve("127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: %v", err)
	}
	t.Cleanup(r.release)
	sa, err := syscall.Getsockname(r.fd)
	if err != nil {
		t.Fatalf("faultproxy: getsockname: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}
