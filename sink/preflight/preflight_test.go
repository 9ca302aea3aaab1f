package preflight

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/test/schemaregistry"
)

const (
	hookToken = "hook-secret-token"
	regPass   = "registry-secret-pass"
)

// env is an in-process broker, schema registry and webhook, and a config
// naming them with a local lake: every check passes against it.
type env struct {
	cfg  *config.Config
	hook *httptest.Server
	// posts counts POSTs to the webhook: there must be none.
	posts int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "clicks", "orders"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)

	reg := schemaregistry.New(schemaregistry.Options{})
	auth := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, p, _ := r.BasicAuth(); p != regPass {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error_code":40101,"message":"Unauthorized"}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	rs := httptest.NewServer(auth(reg))
	t.Cleanup(rs.Close)
	reg.Register("orders-value", "JSON", `{"type":"object"}`)

	e := &env{}
	e.hook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			e.posts++
		}
		if r.Header.Get("Authorization") != "Bearer "+hookToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(e.hook.Close)

	dir := t.TempDir()
	cfg := config.Default()
	cfg.Kafka.Brokers = cluster.ListenAddrs()
	cfg.Kafka.GroupID = "g"
	clicks := config.DefaultStream()
	clicks.Name, clicks.Topics = "clicks", []string{"clicks"}
	clicks.Schema = []config.SchemaColumn{{Name: "id", Type: "string"}}
	orders := config.DefaultStream()
	orders.Name, orders.Topics, orders.Format, orders.Subject = "orders", []string{"orders"}, config.FormatJSONSchema, "orders-value"
	cfg.Streams = []config.Stream{clicks, orders}
	cfg.Storage.Local.Root = filepath.Join(dir, "lake")
	if err := os.Mkdir(cfg.Storage.Local.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Files.SpoolDir = filepath.Join(dir, "spool")
	cfg.Files.MaxFileBytes = 1 << 20
	cfg.SchemaRegistry.URL = rs.URL
	cfg.SchemaRegistry.Username, cfg.SchemaRegistry.Password = "sink", regPass
	cfg.Markers.KafkaTopic = "hours"
	cfg.Markers.Webhook.URL = e.hook.URL + "/hook?token=" + hookToken
	cfg.Markers.Webhook.Headers = map[string]string{"Authorization": "Bearer " + hookToken}
	e.cfg = cfg
	return e
}

// TestRun: against a good environment every check passes, and each fault
// fails exactly its own check (and skips those that need it), in words
// an operator can act on, without a secret in the report and without
// leaving anything behind.
func TestRun(t *testing.T) {
	tests := []struct {
		name  string
		fault func(t *testing.T, e *env)
		dep   string // the failing check; "" = none
		want  string // in its result
		skips int
	}{
		{name: "good"},
		{name: "topic missing", dep: "kafka topic", want: "topic nowhere does not exist",
			fault: func(_ *testing.T, e *env) { e.cfg.Streams[0].Topics = []string{"clicks", "nowhere"} }},
		{name: "broker refused", dep: "kafka brokers", want: "connection refused", skips: 5,
			fault: func(t *testing.T, e *env) { e.cfg.Kafka.Brokers = []string{closedAddr(t)} }},
		{name: "registry refuses the password", dep: "schema registry", want: "401 Unauthorized: Unauthorized: check schema_registry.username and password", skips: 1,
			fault: func(_ *testing.T, e *env) { e.cfg.SchemaRegistry.Password = "wrong-" + regPass }},
		{name: "subject missing", dep: "registry subject", want: "subject nope-value does not exist",
			fault: func(_ *testing.T, e *env) { e.cfg.Streams[1].Subject = "nope-value" }},
		{name: "webhook 401", dep: "webhook", want: "401 Unauthorized: check markers.webhook.headers",
			fault: func(_ *testing.T, e *env) { e.cfg.Markers.Webhook.Headers = nil }},
		{name: "webhook hangs up", dep: "webhook", want: "HEAD: EOF",
			fault: func(t *testing.T, e *env) {
				hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					c, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						c.Close()
					}
				}))
				t.Cleanup(hs.Close)
				e.cfg.Markers.Webhook.URL = hs.URL + "/hook?token=" + hookToken
			}},
		{name: "spool folder under a file", dep: "spool folder", want: "a file is in the way",
			fault: func(t *testing.T, e *env) {
				f := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(f, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				e.cfg.Files.SpoolDir = filepath.Join(f, "spool")
			}},
		{name: "spool too small", dep: "spool folder", want: "less than one file of files.max_file_bytes (32TiB)",
			fault: func(_ *testing.T, e *env) { e.cfg.Files.MaxFileBytes = 32 << 40 }},
		{name: "catalog refused", dep: "iceberg catalog", want: "connection refused",
			fault: func(t *testing.T, e *env) {
				sc := &e.cfg.Streams[0]
				sc.Time = config.StreamTime{Field: "ts", Format: config.TimeUnixMillis, Timezone: "UTC"}
				sc.Schema = append(sc.Schema, config.SchemaColumn{Name: "ts", Type: "timestamp_ms"})
				sc.Table = &config.Table{Format: config.TableIceberg, Namespace: "lake",
					Catalog: config.Catalog{Type: config.CatalogREST, URI: "http://" + closedAddr(t), Token: "catalog-secret"}}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.fault != nil {
				tc.fault(t, e)
			}
			const timeout = 3 * time.Second
			start := time.Now()
			checks := Run(context.Background(), e.cfg, Options{Timeout: timeout})
			if took := time.Since(start); took > timeout {
				t.Errorf("Run took %s, more than the timeout %s", took, timeout)
			}
			var failed []Check
			skipped := 0
			for _, c := range checks {
				switch c.Status {
				case Failed:
					failed = append(failed, c)
				case Skipped:
					skipped++
				}
				for _, s := range append(e.cfg.Secrets(), hookToken, regPass) {
					if strings.Contains(c.Endpoint+c.Result, s) {
						t.Errorf("%s: the report shows the secret %q: %s %s", c.Dependency, s, c.Endpoint, c.Result)
					}
				}
			}
			switch {
			case tc.dep == "" && len(failed) > 0:
				t.Errorf("failed: %+v", failed)
			case tc.dep != "" && (len(failed) != 1 || failed[0].Dependency != tc.dep || !strings.Contains(failed[0].Result, tc.want)):
				t.Errorf("failed %+v, want only %s with %q", failed, tc.dep, tc.want)
			}
			if skipped != tc.skips {
				t.Errorf("%d checks skipped, want %d", skipped, tc.skips)
			}
			if e.posts > 0 {
				t.Errorf("the webhook got %d POSTs", e.posts)
			}
			if t.Failed() || testing.Verbose() {
				var b strings.Builder
				_ = Write(&b, checks)
				t.Logf("\n%s", b.String())
			}
			// Nothing left behind: no probe object, no spool folder.
			if ents, _ := os.ReadDir(e.cfg.Storage.Local.Root + "/_lakesink/probe"); len(ents) > 0 {
				t.Errorf("probe objects left: %v", ents)
			}
			if _, err := os.Stat(e.cfg.Files.SpoolDir); err == nil {
				t.Errorf("the spool folder was created")
			}
		})
	}
}

// TestRunGood: what the good environment's checks report, line by line.
func TestRunGood(t *testing.T) {
	e := newEnv(t)
	checks := Run(context.Background(), e.cfg, Options{Timeout: 5 * time.Second})
	want := map[string]string{
		"kafka brokers":     "metadata read",
		"kafka topic":       "3 partitions",
		"kafka group":       "offsets readable: none committed yet, 6 partitions start at start_offset earliest",
		"dead-letter topic": "missing: run creates it (the broker allows it)",
		"completion topic":  "missing: run creates it (the broker allows it)",
		"storage":           "put and deleted _lakesink/probe/validate-",
		"spool folder":      "writable, ",
		"schema registry":   "answers: 1 subject",
		"registry subject":  "latest version 1, id 1, JSON",
		"webhook":           "HEAD answered 200 OK",
	}
	seen := map[string]int{}
	for _, c := range checks {
		seen[c.Dependency]++
		if c.Status != Passed || !strings.HasPrefix(c.Result, want[c.Dependency]) {
			t.Errorf("%s %s: %s %q, want ok %q", c.Dependency, c.Endpoint, c.Status, c.Result, want[c.Dependency])
		}
		if c.Dependency == "webhook" && c.Endpoint != e.hook.URL+"/hook?…" {
			t.Errorf("webhook endpoint %q", c.Endpoint)
		}
	}
	for dep := range want {
		if seen[dep] == 0 {
			t.Errorf("no %s check", dep)
		}
	}
	if seen["kafka topic"] != 2 {
		t.Errorf("%d topic checks, want 2", seen["kafka topic"])
	}
}

// TestProbeDeadline: a probe that ignores its context is left behind at
// its deadline, and one that panics fails its check; neither holds up
// the others.
func TestProbeDeadline(t *testing.T) {
	p := &plan{timeout: 300 * time.Millisecond}
	block := make(chan struct{})
	defer close(block)
	hung := p.add("hung", "x", func(context.Context) (string, error) { <-block; return "", nil })
	p.add("panics", "y", func(context.Context) (string, error) { panic("boom") })
	p.add("after", "z", func(context.Context) (string, error) { return "ran", nil }).after = hung
	start := time.Now()
	p.run(context.Background())
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %s", took)
	}
	if c := p.items[0].Check; c.Status != Failed || c.Result != "no answer within 300ms" {
		t.Errorf("hung probe: %+v", c)
	}
	if c := p.items[1].Check; c.Status != Failed || c.Result != "probe panicked: boom" {
		t.Errorf("panicking probe: %+v", c)
	}
	if c := p.items[2].Check; c.Status != Skipped {
		t.Errorf("probe after a failed one: %+v", c)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestRunKafkaLogin: a broker that refuses the SASL password fails the
// brokers check naming the user and the settings, never the password.
func TestRunKafkaLogin(t *testing.T) {
	const pass = "kafka-secret-pass"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "clicks"),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", "sink", pass))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cfg := config.Default()
	cfg.Kafka.Brokers = cluster.ListenAddrs()
	cfg.Kafka.SASL = config.SASL{Mechanism: config.SASLPlain, Username: "sink", Password: "wrong-" + pass}
	p := &plan{timeout: 5 * time.Second}
	planKafka(p, cfg)
	p.run(context.Background())
	c := p.items[0].Check
	want := `SASL PLAIN login as user "sink" refused: check kafka.sasl.mechanism, username and password`
	if c.Status != Failed || c.Result != want {
		t.Errorf("wrong password: %s %q, want FAIL %q", c.Status, c.Result, want)
	}

	cfg.Kafka.SASL.Password = pass
	p = &plan{timeout: 5 * time.Second}
	planKafka(p, cfg)
	p.run(context.Background())
	if c := p.items[0].Check; c.Status != Passed || c.Result != `metadata read with SASL PLAIN as user "sink"` {
		t.Errorf("right password: %s %q", c.Status, c.Result)
	}
}
