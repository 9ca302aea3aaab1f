package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/local"
)

const (
	markerTopic  = "events"
	eventsTopic  = "lakesink-hours"
	markerGroup  = "lakesink-markers"
	markerIdle   = 2 * time.Second
	markerCheck  = 300 * time.Millisecond
	markerStream = "events"
)

// markerConfig writes a config for one stream "events" on topic "events"
// with completion events to eventsTopic and, if hookURL is set, a webhook
// whose body is an Airflow asset event and whose token comes from the
// environment.
func markerConfig(t *testing.T, broker, root, hookURL string) string {
	t.Helper()
	dir := t.TempDir()
	hook := ""
	if hookURL != "" {
		hook = fmt.Sprintf(`  webhook:
    url: %q
    headers: {Authorization: "Bearer ${HOOK_TOKEN}"}
    timeout: 2s
    body: '{"asset_id": 7, "partition_key": {{json .PartitionKey}}, "extra": {"stream": {{json .Stream}}, "hour": {{json .Hour}}, "revision": {{.Revision}}, "files": {{len .Files}}, "uri": {{json .AssetURI}}}}'
`, hookURL)
	}
	text := fmt.Sprintf(`kafka:
  brokers: [%q]
  group_id: %s
  commit_interval: 200ms
streams:
  - name: %s
    topics: [%s]
    time: {field: ts, format: unix_ms}
    allowed_lateness: 1m
    schema:
      - {name: id, type: int64, required: true}
      - {name: ts, type: timestamp_ms}
files:
  spool_dir: %q
storage:
  type: local
  local: {root: %q}
markers:
  idle_partition_timeout: %s
  check_interval: %s
  kafka_topic: %s
%sdead_letter:
  topic: lakesink-dlq
http:
  listen: "127.0.0.1:0"
log: {level: debug, format: json}
`, broker, markerGroup, markerStream, markerTopic, filepath.Join(dir, "spool"), root, markerIdle, markerCheck, eventsTopic, hook)
	p := filepath.Join(dir, "lakesink.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// produceAt writes one record {id, ts} per (partition, event time).
func produceAt(t *testing.T, broker string, recs []rec) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: markerTopic, Balancer: partitionBalancer,
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "%d:%d", r.part, r.id), Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, r.id, r.ts.UnixMilli())}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

type rec struct {
	part int
	id   int64
	ts   time.Time
}

func hourFolder(h time.Time) string {
	return fmt.Sprintf("%s/dt=%s/hour=%s", markerStream, h.Format("2006-01-02"), h.Format("15"))
}

// tryManifest reads an hour's _SUCCESS; ok false while it does not exist.
func tryManifest(lake writers.Writer, h time.Time) (completion.Manifest, bool, error) {
	return tryManifestIn(lake, hourFolder(h))
}

// tryManifestIn reads the _SUCCESS of an hour folder; ok false while it
// does not exist.
func tryManifestIn(lake writers.Writer, folder string) (completion.Manifest, bool, error) {
	var m completion.Manifest
	rc, err := lake.Get(context.Background(), folder+"/_SUCCESS")
	if err != nil {
		if errors.Is(err, writers.ErrNotFound) {
			return m, false, nil
		}
		return m, false, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	return m, err == nil, err
}

// readEvents reads the completion topic from the start until it has been
// quiet for quiet, and returns the decoded events in topic order.
func readEvents(t *testing.T, broker string, quiet time.Duration) []completion.Event {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: eventsTopic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var evs []completion.Event
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			return evs
		}
		if string(m.Key) != markerStream {
			t.Errorf("event key %q, want the stream name", m.Key)
		}
		var ev completion.Event
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatalf("event %s: %v", m.Value, err)
		}
		evs = append(evs, ev)
	}
}

// hookServer fails the first failFirst requests with 503 and records the
// bodies of the accepted ones.
type hookServer struct {
	mu        sync.Mutex
	failFirst int
	attempts  int
	bodies    [][]byte
	auth      []string
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts++
	h.auth = append(h.auth, r.Header.Get("Authorization"))
	if h.attempts <= h.failFirst {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	h.bodies = append(h.bodies, b)
	w.WriteHeader(http.StatusOK)
}

// TestMarkersEndToEnd runs the binary on four partitions, one never written:
// markers for every hour with data and for the empty hours between and after
// them, the last one no later than idle timeout plus check interval after
// the last commit; completion events on Kafka and through a webhook that
// fails at first; then a late record makes revision 2 with a second event.
func TestMarkersEndToEnd(t *testing.T) {
	k := testenv.StartKafka(t)
	k.CreateTopic(t, markerTopic, 4)
	root := filepath.Join(t.TempDir(), "lake")
	lake, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	hook := &hookServer{failFirst: 2}
	srv := httptest.NewServer(hook)
	defer srv.Close()

	// The hours counted below must not change while the test runs.
	testenv.AwayFromHourEdge(t, time.Minute, 2*time.Minute)
	now := time.Now().UTC()
	h0 := now.Truncate(time.Hour).Add(-4 * time.Hour)
	var recs []rec
	id := int64(0)
	for _, h := range []time.Time{h0, h0.Add(2 * time.Hour)} { // h0+1h stays empty
		for part := 0; part < 3; part++ { // partition 3 is never written
			for i := 0; i < 50; i++ {
				id++
				recs = append(recs, rec{part: part, id: id, ts: h.Add(time.Duration(i) * 50 * time.Second)})
			}
		}
	}
	produceAt(t, k.Addr, recs)

	cfg := markerConfig(t, k.Addr, root, srv.URL+"/api/v2/assets/events")
	bin := testenv.Build(t, "./cmd/lakesink")
	proc := testenv.Start(t, "lakesink", bin, testenv.Options{Env: []string{"HOOK_TOKEN=tok-123"}}, "run", "-c", cfg)

	// Every hour from h0 to the last one the wall clock closed gets a marker.
	var hours []time.Time
	for h := h0; !h.Add(time.Hour + time.Minute).After(now); h = h.Add(time.Hour) {
		hours = append(hours, h)
	}
	var committedAt time.Time
	high := k.HighWatermarks(t, markerTopic, 4)
	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, "markers", func() error {
		select {
		case <-proc.Done():
			return fmt.Errorf("lakesink exited: %v", proc.ExitErr())
		default:
		}
		if committedAt.IsZero() {
			c, _, err := k.TryCommittedOffsets(markerGroup, markerTopic, 4)
			if err != nil {
				return err
			}
			for p := 0; p < 3; p++ {
				if c[p] != high[p] {
					return fmt.Errorf("partition %d committed %d of %d", p, c[p], high[p])
				}
			}
			committedAt = time.Now()
		}
		for _, h := range hours {
			if _, ok, err := tryManifest(lake, h); err != nil || !ok {
				return fmt.Errorf("no marker for %s (%v)", h, err)
			}
		}
		return nil
	})
	want := map[time.Time]int64{h0: 150, h0.Add(2 * time.Hour): 150}
	for _, h := range hours {
		m, _, _ := tryManifest(lake, h)
		if m.Revision != 1 || m.Records != want[h] || m.Stream != markerStream || m.Version != completion.ManifestVersion {
			t.Errorf("marker of %s: revision %d, %d records, stream %q; want revision 1, %d records", h, m.Revision, m.Records, m.Stream, want[h])
		}
		if want[h] == 0 && len(m.Files) != 0 {
			t.Errorf("empty hour %s lists %d files", h, len(m.Files))
		}
	}
	// The idle partitions (three quiet, one never written) held the last
	// data hour's marker back by at most the idle timeout plus the check
	// interval after the last commit (plus scheduling slack).
	st, err := os.Stat(filepath.Join(root, hourFolder(h0.Add(2*time.Hour)), "_SUCCESS"))
	if err != nil {
		t.Fatal(err)
	}
	delay := st.ModTime().Sub(committedAt)
	t.Logf("marker of the last data hour %v after the last commit was seen (idle timeout %v, check interval %v)", delay, markerIdle, markerCheck)
	if limit := markerIdle + markerCheck + time.Second; delay > limit {
		t.Errorf("marker %v after the last commit, want at most %v", delay, limit)
	}

	// A late record for h0 makes revision 2 listing a new file.
	late := k.HighWatermarks(t, markerTopic, 4)[1]
	produceAt(t, k.Addr, []rec{{part: 1, id: 999999, ts: h0.Add(30 * time.Minute)}})
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, "revision 2", func() error {
		m, _, err := tryManifest(lake, h0)
		if err != nil || m.Revision != 2 {
			return fmt.Errorf("h0 marker revision %d (%v)", m.Revision, err)
		}
		for _, f := range m.Files {
			if f.Partition == 1 && f.FirstOffset == late && f.Records == 1 {
				if m.Records != 151 {
					return fmt.Errorf("revision 2 has %d records, want 151", m.Records)
				}
				return nil
			}
		}
		return fmt.Errorf("revision 2 does not list the late file at offset %d: %+v", late, m.Files)
	})

	// Events: once per hour and revision, in hour order; the revision 2
	// event after revision 1 of its hour.
	var evs []completion.Event
	testenv.Eventually(t, 20*time.Second, 200*time.Millisecond, "completion events", func() error {
		evs = readEvents(t, k.Addr, time.Second)
		if len(evs) < len(hours)+1 {
			return fmt.Errorf("%d events, want %d", len(evs), len(hours)+1)
		}
		return nil
	})
	if len(evs) != len(hours)+1 {
		t.Fatalf("%d events, want %d (once per hour and revision)", len(evs), len(hours)+1)
	}
	for i, h := range hours {
		ev := evs[i]
		if ev.Hour != h.Format(time.RFC3339) || ev.Revision != 1 || ev.PartitionKey != h.Format("2006-01-02T15:04:05") {
			t.Errorf("event %d: hour %s revision %d key %s, want hour %s revision 1", i, ev.Hour, ev.Revision, ev.PartitionKey, h)
		}
		if ev.AssetURI != "file://"+root+"/"+markerStream {
			t.Errorf("event asset_uri %q, want file://%s/%s", ev.AssetURI, root, markerStream)
		}
	}
	if last := evs[len(evs)-1]; last.Hour != h0.Format(time.RFC3339) || last.Revision != 2 || last.Records != 151 {
		t.Errorf("last event: hour %s revision %d records %d, want %s revision 2 with 151 records", last.Hour, last.Revision, last.Records, h0)
	}

	// Webhook: the first two attempts failed and were retried; every
	// revision was accepted once, with the templated body and the token
	// from the environment.
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, "webhook deliveries", func() error {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		if len(hook.bodies) < len(hours)+1 {
			return fmt.Errorf("%d webhook deliveries, want %d", len(hook.bodies), len(hours)+1)
		}
		return nil
	})
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if hook.attempts != len(hours)+1+2 || len(hook.bodies) != len(hours)+1 {
		t.Errorf("webhook: %d attempts, %d accepted; want %d and %d", hook.attempts, len(hook.bodies), len(hours)+3, len(hours)+1)
	}
	for _, a := range hook.auth {
		if a != "Bearer tok-123" {
			t.Errorf("webhook Authorization %q, want the token from the environment", a)
		}
	}
	type body struct {
		AssetID      int    `json:"asset_id"`
		PartitionKey string `json:"partition_key"`
		Extra        struct {
			Stream   string `json:"stream"`
			Hour     string `json:"hour"`
			Revision int    `json:"revision"`
			Files    int    `json:"files"`
			URI      string `json:"uri"`
		} `json:"extra"`
	}
	for i, b := range hook.bodies {
		var got body
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("webhook body %s: %v", b, err)
		}
		wantHour, wantRev := h0, 2
		if i < len(hours) {
			wantHour, wantRev = hours[i], 1
		}
		if got.AssetID != 7 || got.PartitionKey != wantHour.Format("2006-01-02T15:04:05") || got.Extra.Stream != markerStream ||
			got.Extra.Hour != wantHour.Format(time.RFC3339) || got.Extra.Revision != wantRev || !strings.HasPrefix(got.Extra.URI, "file:///") {
			t.Errorf("webhook body %d = %s, want hour %s revision %d", i, b, wantHour, wantRev)
		}
	}
	// One revision object per revision.
	checkRevisions(t, root, map[time.Time]int{h0: 2})
	// Manifests and events match the documented schema.
	checkManifestsAgainstSchema(t, root)
	schema := manifestSchema(t)
	for i, ev := range evs {
		b, _ := json.Marshal(ev)
		checkAgainstSchema(t, schema, fmt.Sprintf("event %d", i), b)
	}
}

// checkRevisions checks the revision objects of every hour folder: exactly
// r1..rN with N = want[hour] (default 1), each sent.
func checkRevisions(t *testing.T, root string, want map[time.Time]int) {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(root, "_lakesink/markers", markerStream, "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no revision folders (%v)", err)
	}
	for _, d := range dirs {
		h, err := time.Parse("2006-01-02T15Z", filepath.Base(d))
		if err != nil {
			t.Fatalf("revision folder %s: %v", d, err)
		}
		n := want[h]
		if n == 0 {
			n = 1
		}
		var names []string
		for r := 1; r <= n; r++ {
			names = append(names, fmt.Sprintf("r%06d.json", r), fmt.Sprintf("r%06d.sent", r))
		}
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if strings.Join(got, ",") != strings.Join(names, ",") {
			t.Errorf("%s: revision objects %v, want %v", filepath.Base(d), got, names)
		}
	}
}

// TestMarkersTwoInstances races two instances of the group on one lake:
// every hour gets exactly one marker per revision, and the completion topic
// carries each hour and revision once.
func TestMarkersTwoInstances(t *testing.T) {
	k := testenv.StartKafka(t)
	k.CreateTopic(t, markerTopic, 4)
	root := filepath.Join(t.TempDir(), "lake")
	lake, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	// The hours counted below must not change while the test runs.
	testenv.AwayFromHourEdge(t, time.Minute, 2*time.Minute)
	now := time.Now().UTC()
	h0 := now.Truncate(time.Hour).Add(-3 * time.Hour)
	var recs []rec
	for i := 0; i < 400; i++ {
		recs = append(recs, rec{part: i % 4, id: int64(i + 1), ts: h0.Add(time.Duration(i) * 18 * time.Second)})
	}
	produceAt(t, k.Addr, recs)
	bin := testenv.Build(t, "./cmd/lakesink")
	a := testenv.Start(t, "lakesink-a", bin, testenv.Options{}, "run", "-c", markerConfig(t, k.Addr, root, ""))
	b := testenv.Start(t, "lakesink-b", bin, testenv.Options{}, "run", "-c", markerConfig(t, k.Addr, root, ""))

	var hours []time.Time
	for h := h0; !h.Add(time.Hour + time.Minute).After(now); h = h.Add(time.Hour) {
		hours = append(hours, h)
	}
	testenv.Eventually(t, 60*time.Second, 100*time.Millisecond, "markers", func() error {
		for _, p := range []*testenv.Process{a, b} {
			select {
			case <-p.Done():
				return fmt.Errorf("%s exited: %v", p.Name, p.ExitErr())
			default:
			}
		}
		for _, h := range hours {
			if _, ok, err := tryManifest(lake, h); err != nil || !ok {
				return fmt.Errorf("no marker for %s (%v)", h, err)
			}
		}
		return nil
	})
	// A late record, with both instances running.
	late := k.HighWatermarks(t, markerTopic, 4)[2]
	produceAt(t, k.Addr, []rec{{part: 2, id: 5000, ts: h0.Add(10 * time.Minute)}})
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, "revision 2", func() error {
		m, _, err := tryManifest(lake, h0)
		if err != nil || m.Revision != 2 || !listsFile(m, 2, late) {
			return fmt.Errorf("h0 marker revision %d (%v)", m.Revision, err)
		}
		return nil
	})
	var evs []completion.Event
	testenv.Eventually(t, 20*time.Second, 200*time.Millisecond, "completion events", func() error {
		evs = readEvents(t, k.Addr, time.Second)
		if len(evs) < len(hours)+1 {
			return fmt.Errorf("%d events, want %d", len(evs), len(hours)+1)
		}
		return nil
	})
	seen := map[string]int{}
	for _, ev := range evs {
		seen[fmt.Sprintf("%s r%d", ev.Hour, ev.Revision)]++
	}
	for _, h := range hours {
		if n := seen[h.Format(time.RFC3339)+" r1"]; n != 1 {
			t.Errorf("hour %s revision 1: %d events, want 1", h, n)
		}
	}
	if n := seen[h0.Format(time.RFC3339)+" r2"]; n != 1 || len(evs) != len(hours)+1 {
		t.Errorf("events %v, want each hour once and %s revision 2 once", seen, h0)
	}
	checkRevisions(t, root, map[time.Time]int{h0: 2})
	// Both instances' logs together name each published revision once.
	logs := a.Log() + b.Log()
	if n := strings.Count(logs, `"msg":"hour complete"`); n != len(hours)+1 {
		t.Errorf("%d 'hour complete' log lines across both instances, want %d", n, len(hours)+1)
	}
}

func listsFile(m completion.Manifest, partition int, first int64) bool {
	for _, f := range m.Files {
		if f.Partition == partition && f.FirstOffset == first {
			return true
		}
	}
	return false
}

// TestAirflowExamplesCompile byte-compiles every DAG under examples/airflow.
func TestAirflowExamplesCompile(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "examples", "airflow", "*.py"))
	if err != nil || len(files) < 2 {
		t.Fatalf("want the Airflow example DAGs, found %v (%v)", files, err)
	}
	for _, f := range files {
		// Compile into a temp folder: the source tree stays clean.
		cfile := filepath.Join(t.TempDir(), filepath.Base(f)+"c")
		script := "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)"
		if out, err := exec.Command("python3", "-c", script, f, cfile).CombinedOutput(); err != nil {
			t.Errorf("py_compile %s: %v\n%s", f, err, out)
		}
	}
}

// manifestSchema compiles examples/manifest.schema.json.
func manifestSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(filepath.Join(testenv.RepoRoot(), "examples", "manifest.schema.json"))
	if err != nil {
		t.Fatalf("compile manifest schema: %v", err)
	}
	return s
}

// checkAgainstSchema validates a JSON document against the manifest schema.
func checkAgainstSchema(t *testing.T, s *jsonschema.Schema, what string, doc []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%s does not match examples/manifest.schema.json: %v\n%s", what, err, doc)
	}
}

// checkManifestsAgainstSchema validates every _SUCCESS and marker revision
// under root.
func checkManifestsAgainstSchema(t *testing.T, root string) {
	t.Helper()
	s := manifestSchema(t)
	n := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (d.Name() != "_SUCCESS" && !strings.HasSuffix(d.Name(), ".json")) || strings.Contains(p, "_lakesink/finalizer") ||
			strings.HasSuffix(d.Name(), ".metadata.json") || // an Iceberg table's metadata under the lake root
			d.Name() == "compaction.json" { // a folder's compaction plan
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		checkAgainstSchema(t, s, p, b)
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("validated %d manifests (%v)", n, err)
	}
}

// TestManifestSchemaRejects shows the schema is not vacuous.
func TestManifestSchemaRejects(t *testing.T) {
	s := manifestSchema(t)
	for name, doc := range map[string]string{
		"missing revision":       `{"version":1,"stream":"s","hour":"2026-11-25T13:00:00Z","completed_at":"2026-11-25T14:00:00Z","records":0,"files":[]}`,
		"wrong version":          `{"version":2,"stream":"s","hour":"2026-11-25T13:00:00Z","revision":1,"completed_at":"2026-11-25T14:00:00Z","records":0,"files":[]}`,
		"bad file":               `{"version":1,"stream":"s","hour":"2026-11-25T13:00:00Z","revision":1,"completed_at":"2026-11-25T14:00:00Z","records":1,"files":[{"path":"x.parquet"}]}`,
		"bad hour":               `{"version":1,"stream":"s","hour":"yesterday","revision":1,"completed_at":"2026-11-25T14:00:00Z","records":0,"files":[]}`,
		"table without snapshot": `{"version":1,"stream":"s","hour":"2026-11-25T13:00:00Z","revision":1,"completed_at":"2026-11-25T14:00:00Z","records":0,"files":[],"table":"lake.s","table_partition":{"ts_hour":1}}`,
		"bad table partition":    `{"version":1,"stream":"s","hour":"2026-11-25T13:00:00Z","revision":1,"completed_at":"2026-11-25T14:00:00Z","records":0,"files":[],"table":"lake.s","snapshot_id":5,"table_partition":{"ts_hour":"x"}}`,
	} {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if s.Validate(v) == nil {
			t.Errorf("%s: schema accepted %s", name, doc)
		}
	}
}

// TestMarkerDelay64Partitions measures the marker delay of a stream with 64
// partitions under the watermark rule: the time from the moment every
// partition's committed watermark has passed the hour's end plus lateness
// (seen by polling the group's commit metadata every 50 ms) to the marker's
// modification time. Idle detection is set far out so only watermarks
// count. Reproduce with:
//
//	go test ./test/e2e/ -run TestMarkerDelay64Partitions -v
func TestMarkerDelay64Partitions(t *testing.T) {
	const parts = 64
	k := testenv.StartKafka(t)
	k.CreateTopic(t, markerTopic, parts)
	root := filepath.Join(t.TempDir(), "lake")
	now := time.Now().UTC()
	h0 := now.Truncate(time.Hour).Add(-3 * time.Hour)
	var recs []rec
	for p := 0; p < parts; p++ {
		for i := 0; i < 100; i++ {
			recs = append(recs, rec{part: p, id: int64(p*1000 + i), ts: h0.Add(time.Duration(i) * 30 * time.Second)})
		}
	}
	produceAt(t, k.Addr, recs)
	cfg := markerConfig(t, k.Addr, root, "")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const check = time.Second
	b = bytes.Replace(b, []byte("idle_partition_timeout: "+markerIdle.String()), []byte("idle_partition_timeout: 10m"), 1)
	b = bytes.Replace(b, []byte("check_interval: "+markerCheck.String()), []byte("check_interval: "+check.String()), 1)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := testenv.Build(t, "./cmd/lakesink")
	proc := testenv.Start(t, "lakesink", bin, testenv.Options{}, "run", "-c", cfg)
	// Wait until every partition has been read (its open file holds the
	// commit at its first offset), then move every
	// partition's watermark past h0 + 1h + lateness in one batch.
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, "h0 read", func() error {
		c, _, err := k.TryCommittedOffsets(markerGroup, markerTopic, parts)
		if err != nil {
			return err
		}
		for p := 0; p < parts; p++ {
			if c[p] < 0 {
				return fmt.Errorf("partition %d committed %d", p, c[p])
			}
		}
		return nil
	})
	recs = recs[:0]
	for p := 0; p < parts; p++ {
		recs = append(recs, rec{part: p, id: int64(p*1000 + 999), ts: h0.Add(2*time.Hour + 30*time.Minute)})
	}
	produceAt(t, k.Addr, recs)
	bound := h0.Add(time.Hour + time.Minute).UnixMilli()
	var completeAt time.Time
	marker := filepath.Join(root, hourFolder(h0), "_SUCCESS")
	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, "watermarks past the hour", func() error {
		select {
		case <-proc.Done():
			return fmt.Errorf("lakesink exited: %v", proc.ExitErr())
		default:
		}
		_, meta, err := k.TryCommittedOffsets(markerGroup, markerTopic, parts)
		if err != nil {
			return err
		}
		for p := 0; p < parts; p++ {
			var m struct {
				WM int64 `json:"wm"`
			}
			if err := json.Unmarshal([]byte(meta[p]), &m); err != nil || m.WM < bound {
				return fmt.Errorf("partition %d watermark %d below %d (%v)", p, m.WM, bound, err)
			}
		}
		completeAt = time.Now()
		return nil
	})
	var st os.FileInfo
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, "marker", func() error {
		st, err = os.Stat(marker)
		return err
	})
	delay := st.ModTime().Sub(completeAt)
	t.Logf("marker delay with %d partitions: %v after the last committed watermark passed the hour (check interval %v)", parts, delay.Round(time.Millisecond), check)
	if delay > 2*time.Second+check {
		t.Errorf("marker delay %v, want under 2s plus the check interval (%v)", delay, check)
	}
}
