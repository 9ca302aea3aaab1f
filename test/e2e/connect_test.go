package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/tables"
	"github.com/lakesink/lakesink/test/faultproxy"
	"github.com/lakesink/lakesink/test/schemaregistry"
	"github.com/lakesink/lakesink/test/testenv"
)

// connectTimeout is --timeout of the validate --connect runs: each probe's
// deadline. A run must end within it plus connectSlack (process start,
// the checks that wait for the brokers' check).
const (
	connectTimeout = 3 * time.Second
	connectSlack   = 5 * time.Second
)

// connectEnv is a demo-like environment: a broker with the streams' topics
// and the dead-letter topic (the completion topic is missing: run creates
// it), versitygw with the lake's bucket, a schema registry holding the
// orders stream's subject, an SQLite catalog holding the clickstream's
// table, and a webhook that answers HEAD with 200 given its token.
type connectEnv struct {
	k     *testenv.Kafka
	s3    *testenv.S3
	reg   *testenv.Registry
	hook  *httptest.Server
	posts atomic.Int64 // POSTs the webhook got: there must be none
	db    string       // the SQLite catalog
	bin   string
}

const (
	connectHookToken = "connect-hook-token-secret"
	connectGroup     = "connect"
)

func startConnectEnv(t *testing.T) *connectEnv {
	t.Helper()
	e := &connectEnv{k: testenv.StartKafka(t), s3: testenv.StartS3(t),
		reg: testenv.StartRegistry(t, schemaregistry.Options{}), db: filepath.Join(t.TempDir(), "catalog.db"),
		bin: testenv.Build(t, "./cmd/lakesink")}
	e.k.CreateTopic(t, "connect-clicks", 3)
	e.k.CreateTopic(t, "connect-orders", 2)
	e.k.CreateTopic(t, "connect-dlq", 1)
	e.s3.CreateBucket(t, "lake")
	e.reg.Register("connect-orders-value", "JSON", `{"type":"object","properties":{"id":{"type":"string"}}}`)
	e.hook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			e.posts.Add(1)
		}
		if r.Header.Get("Authorization") != "Bearer "+connectHookToken {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(e.hook.Close)

	// The clickstream's table exists, as after a first run.
	cfg := e.config(t)
	sc := cfg.Streams[0]
	cols, err := sc.Columns()
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := tables.Open(t.Context(), tables.Options{Stream: sc, Storage: cfg.Storage, Group: connectGroup, Columns: cols})
	if err != nil {
		t.Fatalf("create the clickstream table: %v", err)
	}
	if err := tbl.Close(); err != nil {
		t.Fatal(err)
	}
	return e
}

// config is the environment's config, every dependency in reach, with a
// spool folder of its own.
func (e *connectEnv) config(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{e.k.Addr}
	cfg.Kafka.GroupID = connectGroup
	clicks := demo.ClickstreamStream("connect-clicks")
	table := config.DefaultTable()
	table.Format, table.Namespace = config.TableIceberg, "lake"
	table.Catalog = config.Catalog{Type: config.CatalogSQL, URI: e.db}
	clicks.Table = &table
	orders := config.DefaultStream()
	orders.Name, orders.Topics = "orders", []string{"connect-orders"}
	orders.Format, orders.Subject = config.FormatJSONSchema, "connect-orders-value"
	cfg.Streams = []config.Stream{clicks, orders}
	st := &cfg.Storage
	st.Type = config.StorageS3
	st.S3.Bucket, st.S3.Prefix, st.S3.Region, st.S3.Endpoint, st.S3.ForcePathStyle = "lake", "connect", e.s3.Region, e.s3.Endpoint, true
	st.S3.AccessKeyID, st.S3.SecretAccessKey = e.s3.AccessKey, e.s3.SecretKey
	cfg.Files.SpoolDir = filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(cfg.Files.SpoolDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.SchemaRegistry.URL = e.reg.URL
	cfg.DeadLetter.Topic = "connect-dlq"
	cfg.Markers.KafkaTopic = "connect-hours"
	cfg.Markers.Webhook.URL = e.hook.URL + "/api/v2/assets/events"
	cfg.Markers.Webhook.Headers = map[string]string{"Authorization": "Bearer " + connectHookToken}
	return cfg
}

// connectLine is one row of validate --connect's table.
type connectLine struct{ dep, endpoint, took, status, result string }

var connectRow = regexp.MustCompile(`^(\S+(?: \S+)*)  +(\S+(?: \S+)*)  +(\S+)  +(ok|FAIL|skipped)(?:: (.*))?$`)

// validateConnect runs validate --connect on cfg and returns its exit code,
// output, table rows and wall time.
func (e *connectEnv) validateConnect(t *testing.T, cfg *config.Config) (int, string, []connectLine, time.Duration) {
	t.Helper()
	y, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lakesink.yaml")
	if err := os.WriteFile(path, y, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, e.bin, "validate", "--connect", "--timeout", connectTimeout.String(), "-c", path).CombinedOutput()
	took := time.Since(start)
	var lines []connectLine
	table := false
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "DEPENDENCY"):
			table = true
		case table && l == "":
			table = false
		case table:
			m := connectRow.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("row %q does not parse", l)
				continue
			}
			lines = append(lines, connectLine{m[1], m[2], m[3], m[4], m[5]})
		}
	}
	for _, s := range cfg.Secrets() {
		if strings.Contains(string(out), s) {
			t.Errorf("the output shows the secret %q:\n%s", s, out)
		}
	}
	return exitCode(err), string(out), lines, took
}

// connectFault is one fault of TestValidateConnect.
type connectFault struct {
	name  string
	fault func(t *testing.T, cfg *config.Config)
	dep   string // the one failing check
	want  string // in its result
	skips int    // checks that need it
}

// TestValidateConnect runs `lakesink validate --connect` against the real
// test servers: in a demo-like environment every check passes (exit 0)
// and nothing is left behind; with one fault — made with the fault proxy,
// a read-only bind mount, or a wrong header — exactly that dependency's
// check fails, in words naming the problem, the run exits 1 within
// --timeout + 5 s, and the checks that need the failed one are skipped.
func TestValidateConnect(t *testing.T) {
	skipShort(t)
	e := startConnectEnv(t)

	t.Run("good", func(t *testing.T) {
		code, out, lines, took := e.validateConnect(t, e.config(t))
		if code != 0 || took > connectTimeout+connectSlack {
			t.Errorf("exit %d after %s, want 0 within %s", code, took, connectTimeout+connectSlack)
		}
		want := map[string]string{ // dependency -> its result starts so
			"kafka brokers":     "metadata read",
			"kafka topic":       "", // 3 or 2 partitions
			"kafka group":       "offsets readable: none committed yet, 5 partitions start at start_offset earliest",
			"dead-letter topic": "1 partition",
			"completion topic":  "missing: run creates it (the broker allows it)",
			"storage":           "put and deleted _lakesink/probe/validate-",
			"spool folder":      "writable, ",
			"schema registry":   "answers: 1 subject",
			"registry subject":  "latest version 1, id 1, JSON",
			"iceberg catalog":   "table lake.clickstream loaded",
			"webhook":           "HEAD answered 200 OK",
		}
		seen := map[string]bool{}
		for _, l := range lines {
			seen[l.dep] = true
			if l.status != "ok" || !strings.HasPrefix(l.result, want[l.dep]) {
				t.Errorf("%s %s: %s %q, want ok %q", l.dep, l.endpoint, l.status, l.result, want[l.dep])
			}
		}
		for dep := range want {
			if !seen[dep] {
				t.Errorf("no %s line", dep)
			}
		}
		if len(lines) != 12 || !strings.Contains(out, "all 12 checks passed") {
			t.Errorf("%d rows, want 12", len(lines))
		}
		// Nothing left behind: no probe object, no completion topic.
		objs, err := openLake(t, e.config(t).Storage).lake.List(t.Context(), "_lakesink/probe/")
		if err != nil || len(objs) > 0 {
			t.Errorf("probe objects left in the lake: %v %v", objs, err)
		}
		md, err := e.k.Client().Metadata(t.Context(), &kafka.MetadataRequest{Topics: []string{"connect-hours"}})
		if err != nil || len(md.Topics) != 1 || md.Topics[0].Error == nil {
			t.Errorf("the completion topic exists after validate --connect: %+v %v", md, err)
		}
		if e.posts.Load() > 0 {
			t.Errorf("the webhook got %d POSTs", e.posts.Load())
		}
		t.Logf("output:\n%s", out)
	})

	s3Err := s3Error("AccessDenied", "Access Denied")
	faults := []connectFault{
		{name: "broker refused", dep: "kafka brokers", want: "connection refused", skips: 5,
			fault: func(t *testing.T, cfg *config.Config) {
				p := faultproxy.New(t, e.k.Addr)
				p.SetMode(faultproxy.Refuse)
				cfg.Kafka.Brokers = []string{p.Addr()}
			}},
		{name: "broker silent", dep: "kafka brokers", want: "no answer within " + connectTimeout.String(), skips: 5,
			fault: func(t *testing.T, cfg *config.Config) {
				p := faultproxy.New(t, e.k.Addr)
				p.SetMode(faultproxy.Blackhole)
				cfg.Kafka.Brokers = []string{p.Addr()}
			}},
		{name: "topic missing", dep: "kafka topic", want: "topic connect-missing does not exist",
			fault: func(_ *testing.T, cfg *config.Config) {
				cfg.Streams[1].Topics = append(cfg.Streams[1].Topics, "connect-missing")
			}},
		{name: "bucket read-only", dep: "storage", want: "403 Forbidden (AccessDenied): the credentials cannot write s3://lake/connect",
			fault: func(t *testing.T, cfg *config.Config) {
				// Reads pass (HeadBucket, the catalog's metadata),
				// every write with a body is refused.
				p := faultproxy.New(t, strings.TrimPrefix(e.s3.Endpoint, "http://"))
				p.SetMode(faultproxy.HTTPStatusOver(0, http.StatusForbidden, s3Err))
				cfg.Storage.S3.Endpoint = "http://" + p.Addr()
			}},
		{name: "spool read-only", dep: "spool folder", want: "is read-only",
			fault: func(t *testing.T, cfg *config.Config) {
				// A read-only bind mount: a chmod would not stop root.
				testenv.BindReadOnly(t, cfg.Files.SpoolDir)
			}},
		{name: "registry 503", dep: "schema registry", want: "503 Service Unavailable: the registry is overloaded", skips: 1,
			fault: func(t *testing.T, cfg *config.Config) {
				p := faultproxy.New(t, strings.TrimPrefix(e.reg.URL, "http://"))
				p.SetMode(faultproxy.HTTPStatus(http.StatusServiceUnavailable, `{"error_code":50301,"message":"the registry is overloaded"}`))
				cfg.SchemaRegistry.URL = "http://" + p.Addr()
			}},
		{name: "catalog refused", dep: "iceberg catalog", want: "connection refused",
			fault: func(t *testing.T, cfg *config.Config) {
				p := faultproxy.New(t, strings.TrimPrefix(e.reg.URL, "http://"))
				p.SetMode(faultproxy.Refuse)
				cfg.Streams[0].Table.Catalog = config.Catalog{Type: config.CatalogREST, URI: "http://" + p.Addr(), Token: "connect-catalog-token-secret"}
			}},
		{name: "webhook 401", dep: "webhook", want: "401 Unauthorized: check markers.webhook.headers",
			fault: func(_ *testing.T, cfg *config.Config) {
				cfg.Markers.Webhook.Headers["Authorization"] = "Bearer wrong-" + connectHookToken
			}},
	}
	concurrently(t, faults, func(f connectFault) string { return f.name }, func(t *testing.T, f connectFault) {
		cfg := e.config(t)
		// A prefix per fault: versitygw's folder-backed store can fail a
		// put (409 ExistingObjectIsDirectory) while a parallel run's
		// delete removes the probe folder they share.
		cfg.Storage.S3.Prefix += "/" + strings.ReplaceAll(f.name, " ", "-")
		f.fault(t, cfg)
		code, out, lines, took := e.validateConnect(t, cfg)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if took > connectTimeout+connectSlack {
			t.Errorf("took %s, more than --timeout %s + %s", took, connectTimeout, connectSlack)
		}
		var failed []connectLine
		skipped := 0
		for _, l := range lines {
			switch l.status {
			case "FAIL":
				failed = append(failed, l)
			case "skipped":
				skipped++
			}
		}
		if len(failed) != 1 || failed[0].dep != f.dep || !strings.Contains(failed[0].result, f.want) {
			t.Errorf("failed rows %+v, want only %s with %q", failed, f.dep, f.want)
		} else {
			t.Logf("%s  %s  %s  FAIL: %s", failed[0].dep, failed[0].endpoint, failed[0].took, failed[0].result)
		}
		if skipped != f.skips {
			t.Errorf("%d rows skipped, want %d", skipped, f.skips)
		}
		if t.Failed() {
			t.Logf("output:\n%s", out)
		}
	})
}
