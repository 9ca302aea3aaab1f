// Package freeport hands out TCP ports on 127.0.0.1 for servers that must be
// told their port before they start (fake-gcs-server's public host, the
// broker's advertised address, an HTTP address in a config file).
//
// Why not listen on port 0, read the port and close the listener: between the
// close and the server's own bind, the kernel may give the same port to any
// other socket asking for an ephemeral one — a parallel test's listener, or
// the next call of the same helper — and two servers then share one address
// (seen in CI: two fake-gcs-servers, one of which never started, the other
// answering for both). This package avoids that twice over:
//   - it picks ports below the kernel's ephemeral range
//     (/proc/sys/net/ipv4/ip_local_port_range), which the kernel never hands
//     out by itself, to a listener or to an outgoing connection;
//   - it holds an flock on a file named after the port in a folder shared by
//     every process on the machine, so no other test process (each package's
//     tests run in their own) takes a port until its holder releases it.
//
// Only processes using this package respect the locks; a port is also
// checked free by binding it before it is handed out.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Reservation is a port held for its holder until Release.
type Reservation struct {
	Port int
	f    *os.File
	once sync.Once
}

// Release lets other processes take the port. It is idempotent; the port's
// server should be stopped first.
func (r *Reservation) Release() {
	r.once.Do(func() { _ = r.f.Close() }) // closing the file drops its flock
}

// Reserve returns a port that nothing listened on a moment ago and that no
// other user of this package is given until Release (or until this process
// exits). Concurrent-safe.
func Reserve() (*Reservation, error) {
	dir := filepath.Join(os.TempDir(), "lakesink-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("reserve a port: %w", err)
	}
	lo, hi := portRange()
	var last error
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		r, err := tryPort(dir, p)
		if err == nil {
			return r, nil
		}
		last = err
	}
	return nil, fmt.Errorf("reserve a port in [%d, %d): 200 tries, the last: %w", lo, hi, last)
}

// Get is Reserve for callers that keep the port for the rest of the process.
func Get() (int, error) {
	r, err := Reserve()
	if err != nil {
		return 0, err
	}
	// Kept reachable: an unreachable *os.File is closed by the garbage
	// collector, and its lock with it.
	keptMu.Lock()
	kept = append(kept, r)
	keptMu.Unlock()
	return r.Port, nil
}

var (
	keptMu sync.Mutex
	kept   []*Reservation // Get's reservations, held until the process exits
)

var errHeld = errors.New("held by another user")

func tryPort(dir string, p int) (*Reservation, error) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("port %d: %w", p, errHeld)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := l.Close(); err != nil {
		f.Close()
		return nil, err
	}
	return &Reservation{Port: p, f: f}, nil
}

// portRange is the range ports are picked from: the 8,000 ports below the
// kernel's ephemeral range, or, where that range starts too low to leave
// room, the ephemeral range itself (the locks still keep users of this
// package apart).
func portRange() (lo, hi int) {
	elo, ehi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			z, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && 0 < a && a < z {
				elo, ehi = a, z
			}
		}
	}
	if elo-8000 >= 10000 {
		return elo - 8000, elo
	}
	return elo, ehi + 1
}
