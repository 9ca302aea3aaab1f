package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/test/testenv"
)

// Secrets the operations test sets; none may appear in any output.
const (
	secretKafka   = "kafka-pass-Zq81xv"
	secretS3      = "lakesinktestsecret" // versitygw's secret key (testenv)
	secretWebhook = "airflow-token-Pw93kd"
)

// TestOperations runs the binary against a SASL (SCRAM-SHA-512) broker and
// the S3 server with every secret set and debug logging:
//   - /metrics during the run: records, files, markers, dead letters and
//     watermarks move as expected and lag drops to 0;
//   - /readyz flips to 503 with a storage reason when the S3 server stops
//     and back to 200 once it is restarted;
//   - no log line, and no `validate` output (good or bad config), contains a
//     secret.
func TestOperations(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	// A broker that requires SCRAM-SHA-512.
	brokerBin := testenv.Build(t, "./test/kafkabroker")
	port := testenv.FreePort(t)
	broker := testenv.Start(t, "kafkabroker", brokerBin, testenv.Options{}, "-port", strconv.Itoa(port),
		"-sasl-mechanisms", "SCRAM-SHA-512", "-sasl-user", "lakesink", "-sasl-pass", secretKafka)
	if _, err := broker.WaitLine("listening", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	brokerAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	mech, err := scram.Mechanism(scram.SHA512, "lakesink", secretKafka)
	if err != nil {
		t.Fatal(err)
	}
	transport := &kafka.Transport{SASL: mech}
	defer transport.CloseIdleConnections()
	admin := &kafka.Client{Addr: kafka.TCP(brokerAddr), Timeout: 10 * time.Second, Transport: transport}
	if _, err := admin.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: "clickstream", NumPartitions: 3, ReplicationFactor: 1},
		{Topic: "iot-telemetry", NumPartitions: 1, ReplicationFactor: 1},
	}}); err != nil {
		t.Fatal(err)
	}

	s3 := testenv.StartS3(t)
	s3.CreateBucket(t, "lake")

	var hooks atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer hook.Close()

	now := time.Now().UTC()
	from := now.Truncate(time.Hour).Add(-3 * time.Hour)
	const nValid, nBad = 3000, 30
	w := &kafka.Writer{Addr: kafka.TCP(brokerAddr), Topic: "clickstream", Transport: transport, Balancer: &kafka.RoundRobin{},
		BatchSize: 500, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	r := rand.New(rand.NewPCG(7, 7))
	var msgs []kafka.Message
	for i := range nValid {
		tm := from.Add(3 * time.Hour * time.Duration(i) / nValid)
		msgs = append(msgs, kafka.Message{Value: demo.Clickstream(r, int64(i), tm), Time: tm})
	}
	for i := range nBad {
		msgs = append(msgs, kafka.Message{Value: []byte(`{"event_id":` + strconv.Itoa(i) + `,"ts":"nope"}`), Time: now})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	cfg := demo.Config(brokerAddr, "", filepath.Join(dir, "spool"), httpAddr)
	cfg.Kafka.GroupID = "lakesink-ops"
	cfg.Kafka.SASL = config.SASL{Mechanism: config.SASLScramSHA512, Username: "lakesink", Password: "${KAFKA_PASSWORD}"}
	cfg.Storage.Type = config.StorageS3
	cfg.Storage.S3 = config.S3Storage{Bucket: "lake", Prefix: "ops/", Region: s3.Region, Endpoint: s3.Endpoint, ForcePathStyle: true,
		AccessKeyID: s3.AccessKey, SecretAccessKey: "${S3_SECRET}", PartSize: config.Default().Storage.S3.PartSize, Concurrency: 2}
	cfg.Markers.CheckInterval = config.Duration(300 * time.Millisecond)
	cfg.Markers.IdlePartitionTimeout = config.Duration(2 * time.Second)
	cfg.Markers.Webhook.URL = hook.URL
	cfg.Markers.Webhook.Headers = map[string]string{"Authorization": "Bearer ${AIRFLOW_TOKEN}"}
	cfg.HTTP.HealthCheckInterval = config.Duration(500 * time.Millisecond)
	cfg.Log = config.Log{Level: "debug", Format: "json"}
	y, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	// YAML() escapes "$"; the placeholders are meant to expand.
	y = []byte(strings.ReplaceAll(string(y), "$${", "${"))
	cfgPath := filepath.Join(dir, "lakesink.yaml")
	if err := os.WriteFile(cfgPath, y, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"KAFKA_PASSWORD=" + secretKafka, "S3_SECRET=" + secretS3, "AIRFLOW_TOKEN=" + secretWebhook}

	bin := testenv.Build(t, "./cmd/lakesink")
	proc := testenv.Start(t, "lakesink", bin, testenv.Options{Dir: dir, Env: env}, "run", "-c", cfgPath)
	base := "http://" + httpAddr

	testenv.Eventually(t, 60*time.Second, 250*time.Millisecond, "3 hours complete, every record written", func() error {
		m, err := opsScrape(base)
		if err != nil {
			return err
		}
		if got := m.sum("lakesink_hours_completed_total", `stream="clickstream"`); got < 3 {
			return fmt.Errorf("hours completed %v", got)
		}
		if got := m.sum("lakesink_records_written_total", `stream="clickstream"`); got != nValid {
			return fmt.Errorf("records written %v, want %d", got, nValid)
		}
		if got := m.sum("lakesink_consumer_lag_records", `topic="clickstream"`); got != 0 {
			return fmt.Errorf("lag %v", got)
		}
		return nil
	})
	m, err := opsScrape(base)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want float64
		atLeast   bool
	}{
		{"records consumed", m.sum("lakesink_records_consumed_total", ""), nValid + nBad, true},
		{"files committed", m.sum("lakesink_files_committed_total", ""), 9, true}, // 3 partitions x 3 hours
		{"dead letters", m.sum("lakesink_dead_letter_records_total", ""), nBad, false},
		{"high watermark", m.sum("lakesink_partition_high_watermark", `topic="clickstream"`), nValid + nBad, false},
		{"committed offsets", m.sum("lakesink_committed_offset", `topic="clickstream"`), nValid + nBad, false},
		{"lag seconds", m.sum("lakesink_consumer_lag_seconds", `topic="clickstream"`), 0, false},
		{"uploads observed", m.sum("lakesink_upload_duration_seconds_count", `backend="s3"`), 9, true},
		{"marker delays observed", m.sum("lakesink_marker_delay_seconds_count", ""), 3, true},
	}
	for _, c := range checks {
		if c.atLeast && c.got < c.want || !c.atLeast && c.got != c.want {
			t.Errorf("%s = %v, want %s%v", c.what, c.got, map[bool]string{true: ">= ", false: ""}[c.atLeast], c.want)
		}
	}
	// Watermarks: every partition's committed event-time watermark is within
	// the produced range (the malformed records carry no event time).
	wms := m.values("lakesink_watermark_timestamp_seconds", `stream="clickstream"`)
	if len(wms) != 3 {
		t.Errorf("watermark series: %v, want 3", wms)
	}
	for _, v := range wms {
		if v < float64(from.Add(2*time.Hour).Unix()) || v > float64(now.Add(time.Minute).Unix()) {
			t.Errorf("watermark %v outside [%v, %v]", time.Unix(int64(v), 0), from.Add(2*time.Hour), now)
		}
	}
	if got := m.sum("lakesink_ready", ""); got != 1 {
		t.Errorf("lakesink_ready = %v while /readyz answers 200, want 1", got)
	}
	// A plain `go build` in a git checkout: build_info names the revision
	// the toolchain stamped, not "none".
	if head, err := exec.Command("git", "-C", testenv.RepoRoot(), "rev-parse", "HEAD").Output(); err == nil {
		rev := `revision="` + strings.TrimSpace(string(head))[:12]
		if got := m.values("lakesink_build_info", rev); len(got) != 1 || got[0] != 1 {
			t.Errorf("lakesink_build_info with %s\": %v (series: %v)", rev, got, m.values("lakesink_build_info", ""))
		}
	}
	if m.sum("process_resident_memory_bytes", "") <= 0 || m.sum("go_goroutines", "") <= 0 {
		t.Error("no Go runtime or process metrics")
	}

	// More records: lag in records appears in /metrics as the sink works
	// through them and ends at 0 again with the counters advanced.
	before := m.sum("lakesink_records_consumed_total", "")
	more := make([]kafka.Message, 0, 500)
	for i := range 500 {
		more = append(more, kafka.Message{Value: demo.Clickstream(r, int64(nValid+i), now), Time: now})
	}
	if err := w.WriteMessages(context.Background(), more...); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, 200*time.Millisecond, "new records consumed and committed", func() error {
		m, err := opsScrape(base)
		if err != nil {
			return err
		}
		if got := m.sum("lakesink_records_consumed_total", ""); got < before+500 {
			return fmt.Errorf("consumed %v", got)
		}
		if got := m.sum("lakesink_partition_high_watermark", `topic="clickstream"`); got != nValid+nBad+500 {
			return fmt.Errorf("high watermark %v", got)
		}
		return nil
	})

	// Readiness follows storage.
	if code, body := opsGet(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz before the outage: %d %s", code, body)
	}
	s3.Stop()
	testenv.Eventually(t, 30*time.Second, 200*time.Millisecond, "readyz fails while S3 is down", func() error {
		code, body := opsGet(t, base+"/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "storage unreachable") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	s3.Restart()
	testenv.Eventually(t, 30*time.Second, 200*time.Millisecond, "readyz recovers with S3", func() error {
		if code, body := opsGet(t, base+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if code, body := opsGet(t, base+"/api/status"); code != http.StatusOK || !strings.Contains(body, `"state": "complete"`) {
		t.Errorf("/api/status: %d %s", code, body)
	}

	proc.Stop(30 * time.Second)
	logs := proc.Log()
	if !strings.Contains(logs, `"msg":"file committed"`) || !strings.Contains(logs, `"msg":"hour complete"`) {
		t.Errorf("log lacks the per-file and per-marker lines")
	}
	// One line per file and per marker, none per record: far fewer lines
	// than records.
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines++
	}
	if lines > (nValid+nBad)/3 {
		t.Errorf("%d log lines for %d records: a line per record?", lines, nValid+nBad)
	}
	outputs := map[string]string{"run log": logs}

	// validate: the good config, and a broken one that still carries the
	// secrets (the errors must not quote them).
	outputs["validate"] = runCmd(t, bin, env, "validate", "-c", cfgPath)
	bad := replaceOnce(t, string(y), "group_id: lakesink-ops", "group_id: \"\"")
	bad = replaceOnce(t, bad, "mechanism: SCRAM-SHA-512", "mechanism: SCRAM-SHA-1")
	bad += "\nunknown_key: 1\n"
	badPath := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	outputs["validate (bad)"] = runCmd(t, bin, env, "validate", "-c", badPath)
	if !strings.Contains(outputs["validate (bad)"], "unknown_key") {
		t.Errorf("validate of a bad config: %s", outputs["validate (bad)"])
	}
	// A config error at run time (an invalid header name beside the token).
	badRun := replaceOnce(t, string(y), "Authorization:", "Bad Header:")
	if err := os.WriteFile(badPath, []byte(badRun), 0o600); err != nil {
		t.Fatal(err)
	}
	outputs["run (bad config)"] = runCmd(t, bin, env, "run", "-c", badPath)
	for name, out := range outputs {
		for _, s := range []string{secretKafka, secretS3, secretWebhook} {
			if strings.Contains(out, s) {
				i := strings.Index(out, s)
				t.Errorf("%s shows a secret: ...%s...", name, out[max(i-200, 0):min(i+50, len(out))])
			}
		}
	}
	if hooks.Load() == 0 {
		t.Log("webhook never called (the test still checks its token is not logged)")
	}
}

func runCmd(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.CombinedOutput()
	return string(out)
}

func opsGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// opsMetrics is a scraped /metrics page: series line -> value.
type opsMetrics map[string]float64

func opsScrape(base string) (opsMetrics, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := opsMetrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// values returns the values of name's series whose labels contain filter.
func (m opsMetrics) values(name, filter string) []float64 {
	var out []float64
	for series, v := range m {
		n := series
		if i := strings.IndexByte(series, '{'); i >= 0 {
			n = series[:i]
		}
		if n == name && strings.Contains(series, filter) {
			out = append(out, v)
		}
	}
	return out
}

func (m opsMetrics) sum(name, filter string) float64 {
	s := 0.0
	for _, v := range m.values(name, filter) {
		s += v
	}
	return s
}
