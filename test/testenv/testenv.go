// Package testenv starts the real servers that lakesink's end-to-end tests
// talk to — the Kafka-protocol broker, the S3 and GCS emulators, the HDFS
// NameNode/DataNode — each as its own process on 127.0.0.1, and builds the
// lakesink binary under test.
//
// Server binaries that are not part of this module (versitygw,
// fake-gcs-server) are installed by `make tools` into ToolsBin(); a test that
// needs a missing one fails with a message saying so. Nothing is skipped:
// `make test` installs everything first.
//
// Every process is stopped by t.Cleanup; its output goes to a log file whose
// tail is printed when the test fails.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lakesink/lakesink/test/freeport"
)

// RepoRoot returns the module root (the folder holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ToolsBin is where `make tools` installs third-party server binaries:
// $LAKESINK_TOOLS_BIN, or .tools/bin under the repository.
func ToolsBin() string {
	if d := os.Getenv("LAKESINK_TOOLS_BIN"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), ".tools", "bin")
}

// Tool returns the path of an installed tool, failing the test when it is
// missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(ToolsBin(), name)
	if _, err := os.Stat(p); err != nil {
		if lp, err2 := exec.LookPath(name); err2 == nil {
			return lp
		}
		t.Fatalf("%s is not installed in %s: run `make tools` (or `make test`, which does it)", name, ToolsBin())
	}
	return p
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// Build compiles the main package pkg (an import path below this module, such
// as "./cmd/lakesink") once per test process and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "lakesink-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	// -buildvcs=auto: stamp the VCS revision as a plain `go build` in a
	// checkout does by default, whatever GOFLAGS this machine sets.
	args := []string{"build", "-buildvcs=auto", "-o", out}
	if os.Getenv("LAKESINK_TEST_BUILD_RACE") == "1" {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	buildCache[pkg] = out
	return out
}

// FreePort returns a TCP port on 127.0.0.1 for a server the test starts,
// reserved (test/freeport) until the end of the test: no other test, in this
// process or another, is given it meanwhile, and the kernel does not hand it
// out as an ephemeral port.
func FreePort(t testing.TB) int {
	t.Helper()
	r, err := freeport.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Release) // runs after the cleanups registered later: the server's stop
	return r.Port
}

// WaitTCP waits until addr accepts connections or the timeout passes.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Process is a child process started by Start.
type Process struct {
	Name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
	stdout  *lineWatcher
}

// Options for Start.
type Options struct {
	Dir string   // working folder; default: a new temp folder
	Env []string // added to the test's environment
}

// Start runs bin with args as a child process. Its output goes to a log file
// (tail printed if the test fails); it is sent SIGTERM then SIGKILL at cleanup.
func Start(t testing.TB, name, bin string, opts Options, args ...string) *Process {
	t.Helper()
	logDir := t.TempDir()
	p := &Process{Name: name, logPath: filepath.Join(logDir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = opts.Dir
	if cmd.Dir == "" {
		cmd.Dir = t.TempDir()
	}
	cmd.Env = append(os.Environ(), opts.Env...)
	p.stdout = newLineWatcher(f)
	cmd.Stdout = p.stdout
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("--- %s log (tail) ---\n%s", name, p.Tail(60))
		}
	})
	return p
}

// WaitLine waits for a stdout line containing substr and returns it.
func (p *Process) WaitLine(substr string, timeout time.Duration) (string, error) {
	return p.stdout.wait(substr, timeout, p.done)
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is the result of Wait once Done is closed.
func (p *Process) ExitErr() error { <-p.done; return p.waitErr }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL (kill -9) to the process group and waits for the exit.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM, waits up to grace, then kills.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Log returns the whole log so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lineWatcher copies output to a file and lets callers wait for a line.
type lineWatcher struct {
	mu    sync.Mutex
	w     io.Writer
	buf   bytes.Buffer
	lines []string
	cond  chan struct{}
}

func newLineWatcher(w io.Writer) *lineWatcher {
	return &lineWatcher{w: w, cond: make(chan struct{})}
}

func (l *lineWatcher) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	consumed := 0
	for sc.Scan() {
		line := sc.Text()
		if consumed+len(line)+1 > l.buf.Len() && !bytes.HasSuffix(l.buf.Bytes(), []byte("\n")) {
			break // partial last line
		}
		consumed += len(line) + 1
		l.lines = append(l.lines, line)
	}
	l.buf.Next(consumed)
	close(l.cond)
	l.cond = make(chan struct{})
	return l.w.Write(b)
}

func (l *lineWatcher) wait(substr string, timeout time.Duration, done <-chan struct{}) (string, error) {
	deadline := time.After(timeout)
	seen := 0
	for {
		l.mu.Lock()
		for ; seen < len(l.lines); seen++ {
			if strings.Contains(l.lines[seen], substr) {
				line := l.lines[seen]
				l.mu.Unlock()
				return line, nil
			}
		}
		ch := l.cond
		l.mu.Unlock()
		select {
		case <-ch:
		case <-done:
			// Drain what was written before the exit.
			l.mu.Lock()
			for ; seen < len(l.lines); seen++ {
				if strings.Contains(l.lines[seen], substr) {
					line := l.lines[seen]
					l.mu.Unlock()
					return line, nil
				}
			}
			l.mu.Unlock()
			return "", fmt.Errorf("process exited before printing %q", substr)
		case <-deadline:
			return "", fmt.Errorf("no line with %q within %s", substr, timeout)
		}
	}
}

// Eventually polls cond every interval until it returns nil or timeout passes,
// then fails the test with the last error.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		if last = cond(); last == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not reached within %s: %v", what, timeout, last)
		case <-time.After(interval):
		}
	}
}

// AwayFromHourEdge sleeps, when needed, until the next d holds no hour edge:
// no moment where the top of an hour plus lateness passes on the wall clock.
//
// A test that works out from time.Now() which hours its sink will mark
// complete (an idle partition closes every hour whose end plus lateness the
// wall clock has passed) must call it first: an edge passing while the
// test runs closes one more, empty, hour than the test counted, and the
// test's exact count of markers, events and log lines is off by one. d is
// how long the test may take on a loaded machine.
func AwayFromHourEdge(t testing.TB, lateness, d time.Duration) {
	t.Helper()
	if w := hourEdgeWait(time.Now(), lateness, d); w > 0 {
		t.Logf("waiting %s: an hour edge (top of the hour + %s) is less than %s away", w.Round(time.Second), lateness, d)
		time.Sleep(w)
	}
}

// hourEdgeSlack is how far past an hour edge AwayFromHourEdge waits, so that
// a sink whose clock runs slightly behind the test's also sees it passed.
const hourEdgeSlack = 5 * time.Second

// hourEdgeWait is how long to wait at now so that [now, now+d) holds no
// hour edge (a top of the hour + lateness), and neither does the slack
// before now.
func hourEdgeWait(now time.Time, lateness, d time.Duration) time.Duration {
	edge := now.Truncate(time.Hour).Add(lateness % time.Hour)
	for edge.After(now) {
		edge = edge.Add(-time.Hour)
	}
	// edge is the last one at or before now.
	if now.Sub(edge) < hourEdgeSlack {
		return edge.Add(hourEdgeSlack).Sub(now)
	}
	next := edge.Add(time.Hour)
	if next.Sub(now) < d {
		return next.Add(hourEdgeSlack).Sub(now)
	}
	return 0
}
