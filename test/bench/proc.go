package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports (it is fixed by the kernel ABI,
// independent of CONFIG_HZ).
const clockTicks = 100

// procCPUSeconds returns utime+stime of a running process, in seconds.
func procCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU parses /proc/<pid>/stat: after the parenthesised command
// (which may hold spaces), utime and stime are fields 14 and 15 of the whole
// line, i.e. the 12th and 13th after ")".
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat: utime %q stime %q", f[11], f[12])
	}
	return float64(ut+st) / clockTicks, nil
}

// procPeakRSS returns VmHWM (peak resident set size) of a process, in bytes.
func procPeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, "VmHWM")
}

// parseStatusKB returns a "Key:   123 kB" line of /proc/<pid>/status in bytes.
func parseStatusKB(b []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("parse /proc status %s: %q", key, v)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc status %s: %w", key, err)
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("parse /proc status: no %s", key)
}

// ThisMachine describes the machine: CPU count, model (from /proc/cpuinfo),
// Go version and the current 1-minute load average.
func ThisMachine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), Model: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.Load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m
}

// RepoRoot is the module root: the folder of this source file, two up.
// Build runs the go tool there.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Build compiles the lakesink binary as `make build` does (CGO_ENABLED=0,
// -trimpath) and the kafkabroker test broker into dir.
func Build(ctx context.Context, dir string) (lakesink, broker string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	lakesink, broker = filepath.Join(dir, "lakesink"), filepath.Join(dir, "kafkabroker")
	for _, b := range []struct{ out, pkg string }{{lakesink, "./cmd/lakesink"}, {broker, "./test/kafkabroker"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", b.out, b.pkg)
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return lakesink, broker, nil
}

// brokerProc is a running test/kafkabroker.
type brokerProc struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// startBroker runs the broker (memory only) on a free 127.0.0.1 port and
// waits for its "listening ADDR" line.
func startBroker(bin, work string) (*brokerProc, error) {
	logf, err := os.Create(filepath.Join(work, "kafkabroker.log"))
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		logf.Close()
		return nil, err
	}
	lines := make(chan string, 1)
	args := []string{"-port", strconv.Itoa(port)}
	if p := os.Getenv("LAKESINK_BROKER_CPUPROFILE"); p != "" {
		// The broker shares the cores: profile it to see its share.
		args = append(args, "-cpuprofile", p)
	}
	cmd := exec.Command(bin, args...)
	// The broker stands in for a Kafka cluster: Go settings meant for the
	// sink (GOMEMLIMIT, GOGC, GODEBUG) must not change how it runs.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GODEBUG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stderr = logf
	cmd.Stdout = &addrWatcher{w: logf, found: lines}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start kafkabroker: %w", err)
	}
	b := &brokerProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(b.done) }()
	select {
	case a := <-lines:
		b.addr = a
		return b, nil
	case <-b.done:
		return nil, fmt.Errorf("kafkabroker exited before listening")
	case <-time.After(30 * time.Second):
		b.stop(time.Second)
		return nil, fmt.Errorf("kafkabroker: no 'listening' line within 30s")
	}
}

// stop sends SIGTERM, then SIGKILL to the process group after grace.
func (b *brokerProc) stop(grace time.Duration) {
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(grace):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
}

// addrWatcher copies the broker's stdout to w and sends the address of its
// first "listening ADDR" line to found. Only exec's copying goroutine calls
// Write.
type addrWatcher struct {
	w     io.Writer
	buf   []byte
	found chan<- string
	sent  bool
}

func (a *addrWatcher) Write(p []byte) (int, error) {
	if !a.sent {
		a.buf = append(a.buf, p...)
		for {
			i := bytes.IndexByte(a.buf, '\n')
			if i < 0 {
				break
			}
			line := strings.TrimSpace(string(a.buf[:i]))
			a.buf = a.buf[i+1:]
			if addr, ok := strings.CutPrefix(line, "listening "); ok {
				a.found <- addr
				a.sent, a.buf = true, nil
				break
			}
		}
	}
	return a.w.Write(p)
}
