// Package examples checks the files under examples/: every config passes
// `lakesink validate`, and the Prometheus rules, Grafana dashboard and
// Kubernetes manifests are well formed and only use metrics lakesink exports.
package examples

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.yaml.in/yaml/v3"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
)

func dir() string { return filepath.Join(testenv.RepoRoot(), "examples") }

// env is what the example configs and the k8s Secret expect to be set.
var env = map[string]string{
	"KAFKA_PASSWORD":        "kafka-pass",
	"AWS_ACCESS_KEY_ID":     "AKIAEXAMPLE",
	"AWS_SECRET_ACCESS_KEY": "aws-secret",
	"AIRFLOW_TOKEN":         "airflow-token",
}

func TestConfigsValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dir(), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"clickstream-s3.yaml": false, "iot-gcs.yaml": false, "lakesink.yaml": false}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for k, v := range env {
				t.Setenv(k, v)
			}
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatalf("lakesink validate: %v", err)
			}
			if _, ok := want[filepath.Base(f)]; ok {
				want[filepath.Base(f)] = true
			}
			switch filepath.Base(f) {
			case "clickstream-s3.yaml":
				if cfg.Storage.Type != config.StorageS3 || cfg.Streams[0].Name != "clickstream" || cfg.Kafka.SASL.Password != "kafka-pass" {
					t.Errorf("unexpected config: %+v", cfg.Storage)
				}
			case "iot-gcs.yaml":
				if cfg.Storage.Type != config.StorageGCS || cfg.Streams[0].Name != "iot" {
					t.Errorf("unexpected config: %+v", cfg.Storage)
				}
			}
		})
	}
	for f, seen := range want {
		if !seen {
			t.Errorf("examples/%s missing", f)
		}
	}
}

// metricNames returns every series name lakesink's /metrics can show.
func metricNames(t *testing.T) map[string]bool {
	t.Helper()
	rec := &recorder{Registry: prometheus.NewRegistry()}
	rec.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if _, err := sink.New(sink.Options{Config: config.Default(), Writer: writers.NewMemory(), Registry: rec}); err != nil {
		t.Fatal(err)
	}
	writers.NewMetrics(rec)
	names := map[string]bool{}
	re := regexp.MustCompile(`fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	for _, c := range rec.cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := re.FindStringSubmatch(d.String())
			if m == nil {
				continue
			}
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				names[m[1]+suffix] = true
			}
		}
	}
	// The Go collector's descriptors are dynamic; add the ones we use.
	names["go_memstats_heap_inuse_bytes"] = true
	if !names["lakesink_consumer_lag_seconds"] || !names["process_resident_memory_bytes"] {
		t.Fatalf("metric names incomplete: %v", names)
	}
	return names
}

type recorder struct {
	*prometheus.Registry
	cs []prometheus.Collector
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.cs = append(r.cs, cs...)
	r.Registry.MustRegister(cs...)
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.cs = append(r.cs, c)
	return r.Registry.Register(c)
}

var identRE = regexp.MustCompile(`\b((?:lakesink|go|process)_[a-z0-9_]+)\b`)

func checkExpr(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	ids := identRE.FindAllString(expr, -1)
	if len(ids) == 0 {
		t.Errorf("%s: expression uses no lakesink metric: %s", where, expr)
	}
	for _, id := range ids {
		if !names[id] {
			t.Errorf("%s: unknown metric %s in %s", where, id, expr)
		}
	}
	if strings.Count(expr, "(") != strings.Count(expr, ")") {
		t.Errorf("%s: unbalanced parentheses: %s", where, expr)
	}
}

func TestPrometheusRules(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(dir(), "prometheus", "lakesink-alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("parse rules: %v", err)
	}
	names := metricNames(t)
	seen := map[string]bool{}
	for _, g := range doc.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: name and rules required", g.Name)
		}
		for _, r := range g.Rules {
			seen[r.Alert] = true
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %+v: alert and expr required", r)
			}
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for: %v", r.Alert, err)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: severity label, summary and description required", r.Alert)
			}
			if r.Alert != "LakesinkNotReady" {
				checkExpr(t, r.Alert, r.Expr, names)
			}
		}
	}
	for _, a := range []string{"LakesinkNotReady", "LakesinkLagGrowing", "LakesinkMarkerOverdue", "LakesinkDeadLetterSpike"} {
		if !seen[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(dir(), "grafana", "lakesink-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("parse dashboard: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("dashboard title and uid required")
	}
	names := metricNames(t)
	ids := map[int]bool{}
	var all strings.Builder
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			checkExpr(t, p.Title, tg.Expr, names)
			all.WriteString(tg.Expr + "\n")
		}
	}
	// What the issue asks the dashboard to show.
	for _, m := range []string{"lakesink_consumer_lag_records", "lakesink_consumer_lag_seconds", "lakesink_records_consumed_total",
		"lakesink_marker_delay_seconds_bucket", "lakesink_upload_duration_seconds_bucket", "lakesink_dead_letter_records_total", "lakesink_memory_held_bytes"} {
		if !regexp.MustCompile(`\b` + m + `\b`).MatchString(all.String()) {
			t.Errorf("dashboard does not show %s", m)
		}
	}
}

func TestKubernetesManifests(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(dir(), "k8s", "lakesink.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	type object struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
		Spec       struct {
			Template struct {
				Spec struct {
					SecurityContext struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
					} `yaml:"securityContext"`
					Containers []struct {
						Args           []string `yaml:"args"`
						LivenessProbe  probe    `yaml:"livenessProbe"`
						ReadinessProbe probe    `yaml:"readinessProbe"`
						Env            []struct {
							Name      string `yaml:"name"`
							ValueFrom struct {
								SecretKeyRef struct {
									Name string `yaml:"name"`
									Key  string `yaml:"key"`
								} `yaml:"secretKeyRef"`
							} `yaml:"valueFrom"`
						} `yaml:"env"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	kinds := map[string]object{}
	for {
		var o object
		if err := dec.Decode(&o); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("parse manifests: %v", err)
		}
		if o.APIVersion == "" || o.Kind == "" {
			t.Fatalf("object without apiVersion/kind: %+v", o)
		}
		kinds[o.Kind] = o
	}
	for _, k := range []string{"ConfigMap", "Secret", "Deployment", "Service"} {
		if _, ok := kinds[k]; !ok {
			t.Fatalf("no %s", k)
		}
	}
	dep := kinds["Deployment"].Spec.Template.Spec
	if !dep.SecurityContext.RunAsNonRoot || len(dep.Containers) != 1 {
		t.Fatalf("deployment: %+v", dep)
	}
	c := dep.Containers[0]
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: liveness %q, readiness %q", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	if strings.Join(c.Args, " ") != "run -c /etc/lakesink/lakesink.yaml" {
		t.Errorf("args %q", c.Args)
	}
	// The config expands the Secret's values, set as environment variables.
	secret := kinds["Secret"].StringData
	podEnv := map[string]string{}
	for _, e := range c.Env {
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name == "" {
			continue
		}
		v, ok := secret[ref.Key]
		if !ok {
			t.Errorf("env %s: secret has no key %s", e.Name, ref.Key)
		}
		podEnv[e.Name] = v
	}
	cfg, err := config.Parse([]byte(kinds["ConfigMap"].Data["lakesink.yaml"]), func(k string) (string, bool) {
		v, ok := podEnv[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("ConfigMap lakesink.yaml with the Secret's env: %v", err)
	}
	if cfg.HTTP.Listen != ":8080" || cfg.Kafka.SASL.Password != secret["KAFKA_PASSWORD"] {
		t.Errorf("config: listen %q", cfg.HTTP.Listen)
	}
}
