package testenv

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

// HDFS is a test/hdfsserver process: a protocol-level NameNode and DataNode
// on 127.0.0.1 that github.com/colinmarc/hdfs/v2 talks to like a real
// cluster. The namespace and block replicas live in Dir, so Restart keeps
// every completed file.
type HDFS struct {
	Addr     string // NameNode RPC address, host:port
	DataAddr string // DataNode transfer address, host:port
	Dir      string
	t        testing.TB
	bin      string
	args     []string
	proc     *Process
}

// StartHDFS builds and starts test/hdfsserver on free ports with a
// temporary data folder and waits until it accepts connections. extraArgs
// are passed on, for example "-complete-delay", "2" or "-list-limit", "3".
// The process is stopped at test cleanup.
func StartHDFS(t testing.TB, extraArgs ...string) *HDFS {
	t.Helper()
	h := &HDFS{t: t, bin: Build(t, "./test/hdfsserver"), Dir: t.TempDir()}
	nn, dn := FreePort(t), FreePort(t)
	h.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(nn))
	h.DataAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(dn))
	h.args = append([]string{"-port", strconv.Itoa(nn), "-data-port", strconv.Itoa(dn), "-dir", h.Dir}, extraArgs...)
	h.start()
	return h
}

func (h *HDFS) start() {
	h.t.Helper()
	h.proc = Start(h.t, "hdfsserver", h.bin, Options{}, h.args...)
	if _, err := h.proc.WaitLine("listening", 30*time.Second); err != nil {
		h.t.Fatalf("hdfsserver: %v\n%s", err, h.proc.Tail(30))
	}
}

// Restart stops the server (SIGTERM) and starts it again on the same ports
// and folder.
func (h *HDFS) Restart() {
	h.t.Helper()
	h.proc.Stop(10 * time.Second)
	h.start()
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s).
func (h *HDFS) Stop() { h.proc.Stop(10 * time.Second) }

// Kill stops the server with SIGKILL.
func (h *HDFS) Kill() { h.proc.Kill() }

// Process is the running server process.
func (h *HDFS) Process() *Process { return h.proc }

// String describes the server for logs.
func (h *HDFS) String() string { return fmt.Sprintf("hdfs(%s)", h.Addr) }
