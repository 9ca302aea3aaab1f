package freeport

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestReserveDistinct: concurrent reservations never share a port, and a
// port is below the kernel's ephemeral range when the range leaves room.
func TestReserveDistinct(t *testing.T) {
	const n = 64
	var (
		mu   sync.Mutex
		seen = map[int]bool{}
		wg   sync.WaitGroup
	)
	lo, hi := portRange()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := Reserve()
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(r.Release)
			if r.Port < lo || r.Port >= hi {
				t.Errorf("port %d outside [%d, %d)", r.Port, lo, hi)
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[r.Port] {
				t.Errorf("port %d handed out twice", r.Port)
			}
			seen[r.Port] = true
		}()
	}
	wg.Wait()
}

// TestHeldPortRefused: a port held (here by this process's own earlier
// reservation, through another file descriptor, as another process would)
// is not handed out again until released; a port something listens on is
// not handed out at all.
func TestHeldPortRefused(t *testing.T) {
	r, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(os.TempDir(), "lakesink-ports")
	if _, err := tryPort(dir, r.Port); !errors.Is(err, errHeld) {
		t.Fatalf("second reservation of held port %d: %v, want errHeld", r.Port, err)
	}
	r.Release()
	r2, err := tryPort(dir, r.Port)
	if err != nil {
		t.Fatalf("reservation of released port %d: %v", r.Port, err)
	}
	// Listen on it without the lock: the bind check refuses it.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r2.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r2.Release()
	if _, err := tryPort(dir, r2.Port); err == nil || errors.Is(err, errHeld) {
		t.Fatalf("reservation of a port in use: %v, want a bind error", err)
	}
}

// TestHeldAcrossProcesses: a port reserved by another process is not handed
// out here while that process lives.
func TestHeldAcrossProcesses(t *testing.T) {
	if os.Getenv("FREEPORT_CHILD") == "1" {
		r, err := Reserve()
		if err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString(strconv.Itoa(r.Port) + "\n")
		var b [1]byte
		_, _ = os.Stdin.Read(b[:]) // hold until the parent closes stdin
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHeldAcrossProcesses$")
	cmd.Env = append(os.Environ(), "FREEPORT_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	var line []byte
	var b [1]byte
	for {
		if _, err := out.Read(b[:]); err != nil {
			t.Fatalf("child: %v", err)
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	p, err := strconv.Atoi(string(line))
	if err != nil {
		t.Fatalf("child printed %q", line)
	}
	if _, err := tryPort(filepath.Join(os.TempDir(), "lakesink-ports"), p); !errors.Is(err, errHeld) {
		t.Fatalf("port %d held by another process: %v, want errHeld", p, err)
	}
}

// TestGetHoldsThroughGC: a port from Get stays held after its reservation
// is out of the caller's reach and the garbage collector has run (an
// unreachable *os.File is closed by its cleanup, dropping the lock).
func TestGetHoldsThroughGC(t *testing.T) {
	p, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(os.TempDir(), "lakesink-ports")
	for range 5 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond) // let cleanups run
		if _, err := tryPort(dir, p); !errors.Is(err, errHeld) {
			t.Fatalf("port %d from Get after a GC: %v, want errHeld", p, err)
		}
	}
}
