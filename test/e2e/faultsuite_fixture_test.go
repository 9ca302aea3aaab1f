package e2e

// The fault suite (faultsuite_*_test.go, tests named TestFault*) runs the
// real binary against the real test servers while a dependency fails: a
// fault-injecting proxy (test/faultproxy) in front of a server, a frozen
// (SIGSTOP) broker, a full or read-only disk (test/testenv mounts), a
// webhook answering 401. Each cell checks what an operator sees during the
// fault (/healthz, /readyz and its reasons, /metrics), that SIGTERM ends
// the process within shutdown_timeout + 5 s, and, once the dependency is
// back, the exact output: every record once in the lake, through the
// manifests (checkExactlyOnce).
//
// The helpers here keep each cell short: faultSink is one lakesink process
// with its own topic, consumer group and lake, and the records produced
// for it.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/local"
)

// Timings of every fault-suite sink: short, so that faults show and clear
// within seconds.
const (
	faultShutdownTimeout = 5 * time.Second
	// faultExitBound is how soon after SIGTERM the process must be gone.
	faultExitBound = faultShutdownTimeout + 5*time.Second
	faultParts     = 3
	faultRecords   = 450 // per produceHours call, unless faultSink.records says otherwise
	// faultRecover bounds how long the sink may take to catch up (commits
	// and markers) once a fault has cleared: upload retries back off up to
	// 10 s, plus the idle timeout and marker checks.
	faultRecover = 90 * time.Second
)

// faultSink is one lakesink process of the fault suite.
type faultSink struct {
	t       *testing.T
	name    string
	k       *testenv.Kafka
	lake    writers.Writer // reads back what the sink writes
	cfg     *config.Config // tune before start
	topic   string
	http    string
	proc    *testenv.Process
	started time.Time
	p       *produced
	from    time.Time // first hour produced
	hours   int       // hours produced so far
	records int       // per produceHours call (faultRecords); more make larger files
}

// newFaultSink prepares a sink named name (letters, digits, '-'): topic and
// consumer group "fault-<name>" with faultParts partitions, stream
// clickstream, the given storage (lake reads the same data), a spool
// folder of its own and the suite's short timings. Change s.cfg, then
// start it.
func newFaultSink(t *testing.T, k *testenv.Kafka, name string, storage config.Storage, lake writers.Writer) *faultSink {
	t.Helper()
	s := &faultSink{t: t, name: name, k: k, lake: lake, topic: "fault-" + name,
		http:    net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t))),
		p:       newProduced(),
		records: faultRecords,
		from:    time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)}
	k.CreateTopic(t, s.topic, faultParts)
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{k.Addr}
	cfg.Kafka.GroupID = s.topic
	cfg.Kafka.CommitInterval = config.Duration(200 * time.Millisecond)
	cfg.Streams = []config.Stream{demo.ClickstreamStream(s.topic)}
	cfg.Storage = storage
	cfg.Files.SpoolDir = filepath.Join(t.TempDir(), "spool")
	cfg.Markers.IdlePartitionTimeout = config.Duration(2 * time.Second)
	cfg.Markers.CheckInterval = config.Duration(500 * time.Millisecond)
	cfg.DeadLetter.Topic = "lakesink-dlq"
	cfg.HTTP.Listen = s.http
	cfg.HTTP.HealthCheckInterval = config.Duration(time.Second)
	cfg.Log = config.Log{Level: "info", Format: "json"}
	cfg.ShutdownTimeout = config.Duration(faultShutdownTimeout)
	s.cfg = cfg
	return s
}

// newLocalFaultSink is newFaultSink with a local lake in root (a new
// temporary folder if root is "").
func newLocalFaultSink(t *testing.T, k *testenv.Kafka, name, root string) *faultSink {
	t.Helper()
	if root == "" {
		root = filepath.Join(t.TempDir(), "lake")
	}
	lake, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	st := config.Default().Storage
	st.Type, st.Local.Root = config.StorageLocal, root
	return newFaultSink(t, k, name, st, lake)
}

// start writes the config and starts the process.
func (s *faultSink) start() {
	s.t.Helper()
	y, err := s.cfg.YAML()
	if err != nil {
		s.t.Fatal(err)
	}
	path := filepath.Join(s.t.TempDir(), "lakesink.yaml")
	if err := os.WriteFile(path, y, 0o600); err != nil {
		s.t.Fatal(err)
	}
	bin := testenv.Build(s.t, "./cmd/lakesink")
	s.started = time.Now()
	s.proc = testenv.Start(s.t, "lakesink-"+s.name, bin, testenv.Options{}, "run", "-c", path)
}

// produceHours produces s.records records spread over the next hours
// hours after those produced before (at most 3 in all, so every hour has
// ended more than an hour ago), round robin over the partitions.
func (s *faultSink) produceHours(hours int) {
	s.t.Helper()
	if s.hours+hours > 3 {
		s.t.Fatalf("produceHours: %d hours already, %d more is past the last closed hour", s.hours, hours)
	}
	parts := make([]int, faultParts)
	for i := range parts {
		parts[i] = i
	}
	produce(s.t, s.k, s.p, "clickstream", s.topic, parts, s.records, s.from.Add(time.Duration(s.hours)*time.Hour), hours, demo.Clickstream, clickID)
	s.hours += hours
}

// alive fails the test at once if the process has exited.
func (s *faultSink) alive() {
	s.t.Helper()
	select {
	case <-s.proc.Done():
		s.t.Fatalf("%s exited: %v\n%s", s.name, s.proc.ExitErr(), s.proc.Tail(30))
	default:
	}
}

// readyz is /readyz's status code and reasons (or the request's error).
func (s *faultSink) readyz() (int, []string, error) {
	code, body := httpGet(s.http, "/readyz")
	if code == 0 {
		return 0, nil, fmt.Errorf("GET /readyz: %s", body)
	}
	var r struct {
		Ready   bool     `json:"ready"`
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return code, nil, fmt.Errorf("/readyz %d: body %q: %v", code, body, err)
	}
	if r.Ready != (code == http.StatusOK) {
		return code, r.Reasons, fmt.Errorf("/readyz %d says ready=%v", code, r.Ready)
	}
	return code, r.Reasons, nil
}

// waitNotReady waits until /readyz answers 503 with a reason holding every
// string of want (case-insensitive) and returns that reason; see
// waitReason.
func (s *faultSink) waitNotReady(timeout time.Duration, want ...string) string {
	s.t.Helper()
	return s.waitReason(timeout, fmt.Sprintf("naming %q", want), func(r string) bool { return containsAll(r, want) })
}

// waitReason waits until /readyz answers 503 with a reason that match
// accepts (what describes it) and returns that reason. /healthz must
// answer 200 all along. If that does not happen within timeout the test
// fails but goes on (the cell's later checks still tell something); the
// process exiting ends it at once.
func (s *faultSink) waitReason(timeout time.Duration, what string, match func(reason string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s.alive()
		found, err := s.notReadyReason(match)
		if err == nil {
			return found
		}
		if time.Now().After(deadline) {
			s.t.Errorf("%s: /readyz 503 with a reason %s: not reached within %s: %v", s.name, what, timeout.Round(time.Millisecond), err)
			return ""
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *faultSink) notReadyReason(match func(reason string) bool) (string, error) {
	if code, body := httpGet(s.http, "/healthz"); code != http.StatusOK {
		return "", fmt.Errorf("/healthz: %d %s", code, body)
	}
	code, reasons, err := s.readyz()
	if err != nil {
		return "", err
	}
	if code != http.StatusServiceUnavailable {
		return "", fmt.Errorf("/readyz: %d %q", code, reasons)
	}
	for _, r := range reasons {
		if match(r) {
			return r, nil
		}
	}
	return "", fmt.Errorf("/readyz 503, reasons %q", reasons)
}

func containsAll(s string, subs []string) bool {
	for _, w := range subs {
		if !strings.Contains(strings.ToLower(s), strings.ToLower(w)) {
			return false
		}
	}
	return true
}

// notReadyThroughout samples /readyz every 200 ms for d: every sample must
// be 503 with a reason holding every string of want (case-insensitive),
// and /healthz 200. A fault must not look healed between two failures —
// as it did when the write probe's tiny put passed while every upload
// failed. The test fails with the number of bad samples and the first;
// the process exiting ends it at once.
func (s *faultSink) notReadyThroughout(d time.Duration, want ...string) {
	s.t.Helper()
	var n, bad int
	var first error
	start := time.Now()
	for time.Since(start) < d {
		s.alive()
		n++
		if _, err := s.notReadyReason(func(r string) bool { return containsAll(r, want) }); err != nil {
			bad++
			if first == nil {
				first = fmt.Errorf("after %s: %w", time.Since(start).Round(time.Millisecond), err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if bad > 0 {
		s.t.Errorf("%s: /readyz not 503 naming %q in %d of %d samples over %s of the fault; first: %v", s.name, want, bad, n, d, first)
	}
}

// waitReady waits until /readyz answers 200.
func (s *faultSink) waitReady(timeout time.Duration) {
	s.t.Helper()
	testenv.Eventually(s.t, timeout, 200*time.Millisecond, s.name+": /readyz 200", func() error {
		s.alive()
		code, reasons, err := s.readyz()
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("/readyz %d: %q", code, reasons)
		}
		return err
	})
}

// metrics scrapes /metrics, failing the test on error.
func (s *faultSink) metrics() opsMetrics {
	s.t.Helper()
	m, err := opsScrape("http://" + s.http)
	if err != nil {
		s.t.Fatalf("%s: /metrics: %v", s.name, err)
	}
	return m
}

// generations is lakesink_group_generations_total.
func (s *faultSink) generations() float64 {
	return s.metrics().sum("lakesink_group_generations_total", "")
}

// checkFaultMetrics checks /metrics during a fault of dependency dep: not
// ready, and dep's errors counted.
//
// The error counter may trail readiness by one attempt (a call to a silent
// server fails only at its deadline), so it is polled for a few seconds;
// the fault lasts throughout.
func (s *faultSink) checkFaultMetrics(dep string) {
	s.t.Helper()
	m := s.metrics()
	if got := m.values("lakesink_ready", ""); len(got) != 1 || got[0] != 0 {
		s.t.Errorf("%s: lakesink_ready = %v during a %s fault, want 0", s.name, got, dep)
	}
	var got float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got = s.metrics().sum("lakesink_dependency_errors_total", `dependency="`+dep+`"`); got > 0 || time.Now().After(deadline) {
			break
		}
	}
	if got <= 0 {
		s.t.Errorf("%s: lakesink_dependency_errors_total{dependency=%q} = %v during its fault, want > 0", s.name, dep, got)
	}
}

// checkNothingCommitted checks that no offset passed the start of the
// topic: nothing was durable, so nothing may be committed.
func (s *faultSink) checkNothingCommitted() {
	s.t.Helper()
	committed, _, err := s.k.TryCommittedOffsets(s.topic, s.topic, faultParts)
	if err != nil {
		return // the group has not committed anything yet
	}
	for part, off := range committed {
		if off > 0 {
			s.t.Errorf("%s: partition %d committed to %d while nothing could be made durable", s.name, part, off)
		}
	}
}

// waitDone waits until every record produced is committed and the
// _SUCCESS manifest of every hour produced counts all its valid records
// (late files included: an hour marked empty before its records came gets
// a new revision), and /readyz is 200 again.
func (s *faultSink) waitDone(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	want := map[string]int64{} // marker key -> valid records of its hour
	for _, ms := range s.p.valid["clickstream"] {
		h := time.UnixMilli(ms).UTC().Truncate(time.Hour)
		want[fmt.Sprintf("clickstream/dt=%s/hour=%s/_SUCCESS", h.Format("2006-01-02"), h.Format("15"))]++
	}
	testenv.Eventually(s.t, timeout, 250*time.Millisecond, s.name+": records committed and in the manifests", func() error {
		s.alive()
		committed, _, err := s.k.TryCommittedOffsets(s.topic, s.topic, faultParts)
		if err != nil {
			return err
		}
		for part := range faultParts {
			if want := int64(s.p.perPart[s.topic][part]); committed[part] != want {
				return fmt.Errorf("partition %d: committed %d, want %d", part, committed[part], want)
			}
		}
		for key, n := range want {
			var m completion.Manifest
			rc, err := s.lake.Get(s.t.Context(), key)
			if err != nil {
				return fmt.Errorf("marker %s: %w", key, err)
			}
			err = json.NewDecoder(rc).Decode(&m)
			rc.Close()
			if err != nil {
				return fmt.Errorf("marker %s: %w", key, err)
			}
			if m.Records != n {
				return fmt.Errorf("marker %s (revision %d): %d records, want %d", key, m.Revision, m.Records, n)
			}
		}
		return nil
	})
	s.waitReady(time.Until(deadline) + 5*time.Second)
}

// term sends SIGTERM and checks that the process exits within
// faultExitBound (killing it otherwise); it returns the exit error.
func (s *faultSink) term() error {
	s.t.Helper()
	start := time.Now()
	s.proc.Signal(syscall.SIGTERM)
	select {
	case <-s.proc.Done():
		s.t.Logf("%s: exited %s after SIGTERM: %v", s.name, time.Since(start).Round(10*time.Millisecond), s.proc.ExitErr())
	case <-time.After(faultExitBound):
		s.t.Errorf("%s: still running %s after SIGTERM (shutdown_timeout %s + 5s); killing it\n%s",
			s.name, faultExitBound, faultShutdownTimeout, s.proc.Tail(20))
		s.proc.Kill()
	}
	return s.proc.ExitErr()
}

// finish stops the sink (within the bound, exit 0) and checks the lake:
// every valid record produced is in it exactly once, through the manifests.
func (s *faultSink) finish() {
	s.t.Helper()
	if err := s.term(); err != nil {
		s.t.Errorf("%s: exit after SIGTERM: %v", s.name, err)
	}
	s.checkExact()
}

// checkExact checks the lake against what was produced.
func (s *faultSink) checkExact() {
	s.t.Helper()
	checkExactlyOnce(s.t, s.lake, "clickstream", s.p.valid["clickstream"])
}

// logLines is the number of lines the process has logged so far.
func (s *faultSink) logLines() int {
	return strings.Count(s.proc.Log(), "\n")
}

// cpuTime is the CPU time (user + system) the process has used so far.
func (s *faultSink) cpuTime() time.Duration {
	s.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.proc.Pid()))
	if err != nil {
		s.t.Fatalf("cpu time of %s: %v", s.name, err)
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14, stime 15 (clock ticks of 1/100 s on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// quietDuringFault holds a local fault for d more and checks that the
// process stays a member of its group (at most one generation more than
// gen0, counted before the fault began), and that it neither floods the
// log nor burns CPU while it waits: at most maxLines lines in d, and a
// quarter of a core. With reason, /readyz must say so throughout
// (notReadyThroughout).
func (s *faultSink) quietDuringFault(d time.Duration, maxLines int, gen0 float64, reason ...string) {
	s.t.Helper()
	lines0, cpu0 := s.logLines(), s.cpuTime()
	if len(reason) > 0 {
		s.notReadyThroughout(d, reason...)
	} else {
		time.Sleep(d)
	}
	s.alive()
	gen, lines, cpu := s.generations(), s.logLines(), s.cpuTime()
	if gen-gen0 > 1 {
		s.t.Errorf("%s: %v group generations joined during a local fault, want at most 1 (the member must stay in the group)", s.name, gen-gen0)
	}
	if n := lines - lines0; n > maxLines {
		all := strings.Split(strings.TrimRight(s.proc.Log(), "\n"), "\n")
		s.t.Errorf("%s: %d log lines during a fault of %s, want at most %d:\n%s", s.name, n, d, maxLines,
			strings.Join(all[max(0, len(all)-n):min(len(all), len(all)-n+40)], "\n"))
	}
	if used := cpu - cpu0; used > d/4 {
		s.t.Errorf("%s: used %s of CPU during a fault of %s, want at most a quarter core", s.name, used, d)
	}
}

// concurrently runs f for every case as a subtest, all at the same time.
// The cells mostly wait for faults and backoffs, so they overlap well on
// two cores; t.Parallel would hold them to GOMAXPROCS at a time.
func concurrently[C any](t *testing.T, cases []C, name func(C) string, f func(*testing.T, C)) {
	t.Helper()
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name(c), func(t *testing.T) { f(t, c) })
		}()
	}
	wg.Wait()
}

// skipShort skips the fault suite in -short mode.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end fault test: not in -short mode")
	}
}
