// Package examples checks the files under examples/: every config passes
// `lakesink validate`, and the Prometheus rules (and their promtool unit
// tests), Grafana dashboard and Kubernetes manifests are well formed and
// only use metrics lakesink exports.
package examples

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.yaml.in/yaml/v3"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink"
	"github.com/lakesink/lakesink/sink/completion"
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
	"ICEBERG_TOKEN":         "iceberg-token",
}

func TestConfigsValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dir(), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"clickstream-s3.yaml": false, "iot-gcs.yaml": false, "lakesink.yaml": false, "iceberg-s3.yaml": false}
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
				// The webhook body names the Airflow asset by its id, as
				// POST /api/v2/assets/events wants (docs/airflow.md).
				tmpl, err := template.New("body").Funcs(config.WebhookTemplateFuncs).Option("missingkey=error").Parse(cfg.Markers.Webhook.Body)
				if err != nil {
					t.Fatalf("webhook body: %v", err)
				}
				var buf bytes.Buffer
				if err := tmpl.Execute(&buf, completion.Event{Manifest: completion.Manifest{Stream: "iot"}, PartitionKey: "2026-12-06T07"}); err != nil {
					t.Fatalf("render webhook body: %v", err)
				}
				var body struct {
					AssetID      *int   `json:"asset_id"`
					PartitionKey string `json:"partition_key"`
				}
				if err := json.Unmarshal(buf.Bytes(), &body); err != nil || body.AssetID == nil || *body.AssetID <= 0 || body.PartitionKey == "" {
					t.Errorf("webhook body %s: want a JSON object with a numeric asset_id and the partition_key (%v)", buf.String(), err)
				}
			case "iceberg-s3.yaml":
				if tb := cfg.Streams[0].Table; tb == nil || tb.Catalog.Type != config.CatalogREST || tb.Catalog.Token != "iceberg-token" {
					t.Errorf("unexpected table: %+v", tb)
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
	// cmd/lakesink registers a few metrics of its own next to the sink's
	// (lakesink_build_info): take their names from its source.
	for _, n := range cmdMetricNames(t) {
		names[n] = true
	}
	if !names["lakesink_consumer_lag_seconds"] || !names["process_resident_memory_bytes"] {
		t.Fatalf("metric names incomplete: %v", names)
	}
	return names
}

// cmdMetricNames returns the names of the metrics cmd/lakesink defines.
func cmdMetricNames(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "cmd", "lakesink", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`Name:\s*"(lakesink_[a-z0-9_]+)"`)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1])
		}
	}
	if len(out) == 0 {
		t.Fatal("no metric definitions (Name: \"lakesink_...\") found in cmd/lakesink")
	}
	return out
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

// prometheusMade are series Prometheus itself records for every target.
var prometheusMade = map[string]bool{"up": true}

var (
	// Grafana variables: $instance, ${datasource}, $__rate_interval.
	grafanaVarRE = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	stringRE     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	// Grouping and vector-matching clauses with their label lists.
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	tokenRE    = regexp.MustCompile(`[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// PromQL keywords and aggregation operators, and literals.
	promqlWords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
		"inf": true, "nan": true,
	}
)

// exprMetrics returns the metric names a PromQL expression selects: the
// identifiers left once strings, label matchers, range selectors, grouping
// label lists, function calls, keywords and numbers are taken away.
func exprMetrics(expr string) []string {
	e := grafanaVarRE.ReplaceAllString(expr, "")
	e = stringRE.ReplaceAllString(e, `""`)
	for _, pair := range [][2]string{{"{", "}"}, {"[", "]"}} {
		for {
			i := strings.Index(e, pair[0])
			if i < 0 {
				break
			}
			j := strings.Index(e[i:], pair[1])
			if j < 0 {
				break
			}
			e = e[:i] + " " + e[i+j+1:]
		}
	}
	e = groupingRE.ReplaceAllString(e, " ")
	var out []string
	for _, loc := range tokenRE.FindAllStringIndex(e, -1) {
		tok := e[loc[0]:loc[1]]
		if tok[0] >= '0' && tok[0] <= '9' || promqlWords[strings.ToLower(tok)] {
			continue
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function: rate(, time(, histogram_quantile(
		}
		out = append(out, tok)
	}
	return out
}

func TestExprMetrics(t *testing.T) {
	for expr, want := range map[string]string{
		`up{job="lakesink"} == 0`: "up",
		`sum by (job, reason) (rate(a_total[10m])) / on (job) group_left () sum by (job) (rate(b_total[10m])) > 0.01`: "a_total b_total",
		`time() - max by (stream) (lakesink_x) > 2 * 3600`:                                                            "lakesink_x",
		`histogram_quantile(0.5, sum by (le) (rate(h_bucket{instance=~"$instance"}[$__rate_interval])))`:              "h_bucket",
		`sum(rate(c_total[5m] offset 1h)) by (instance) * 60 > 1e3 or vector(0)`:                                      "c_total",
		`x{a="}"} unless ignoring(b) y`: "x y",
	} {
		if got := strings.Join(exprMetrics(expr), " "); got != want {
			t.Errorf("exprMetrics(%s) = %q, want %q", expr, got, want)
		}
	}
}

// checkExpr reports metrics expr uses that lakesink does not export (nor
// Prometheus make, like up) and expressions that use no metric of either.
func checkExpr(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	ids := exprMetrics(expr)
	ids = append(ids, identRE.FindAllString(expr, -1)...)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	own, made := 0, 0
	for _, id := range ids {
		switch {
		case names[id]:
			own++
		case prometheusMade[id]:
			made++
		default:
			t.Errorf("%s: unknown metric %s in %s", where, id, expr)
		}
	}
	if own == 0 && made == 0 {
		t.Errorf("%s: expression uses no lakesink metric: %s", where, expr)
	}
	if strings.Count(expr, "(") != strings.Count(expr, ")") {
		t.Errorf("%s: unbalanced parentheses: %s", where, expr)
	}
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir(), "prometheus", "lakesink-alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("parse rules: %v", err)
	}
	var rules []alertRule
	for _, g := range doc.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: name and rules required", g.Name)
		}
		rules = append(rules, g.Rules...)
	}
	return rules
}

func TestPrometheusRules(t *testing.T) {
	names := metricNames(t)
	seen := map[string]bool{}
	for _, r := range readRules(t) {
		if seen[r.Alert] {
			t.Errorf("alert %s defined twice", r.Alert)
		}
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
		checkExpr(t, r.Alert, r.Expr, names)
	}
	for _, a := range []string{"LakesinkDown", "LakesinkNotReady", "LakesinkDependencyFailing", "LakesinkCompletionEventsFailing",
		"LakesinkLagGrowing", "LakesinkMarkerOverdue", "LakesinkDeadLetterSpike", "LakesinkUploadErrors", "LakesinkSpoolFilling", "LakesinkMemoryPressure"} {
		if !seen[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}

// TestPrometheusRuleTests checks that lakesink-alerts.test.yaml tests every
// alert both ways — fired on a fault and silent — and only alerts that
// exist (promtool passes "no alert expected" for a misspelt name), then
// runs promtool on both files when it is installed (`make rules` installs
// it and runs the same commands).
func TestPrometheusRuleTests(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(dir(), "prometheus", "lakesink-alerts.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		RuleFiles          []string `yaml:"rule_files"`
		EvaluationInterval string   `yaml:"evaluation_interval"`
		Tests              []struct {
			Name        string `yaml:"name"`
			Interval    string `yaml:"interval"`
			InputSeries []struct {
				Series string `yaml:"series"`
				Values string `yaml:"values"`
			} `yaml:"input_series"`
			AlertRuleTest []struct {
				EvalTime  string `yaml:"eval_time"`
				Alertname string `yaml:"alertname"`
				ExpAlerts []struct {
					ExpLabels      map[string]string `yaml:"exp_labels"`
					ExpAnnotations map[string]string `yaml:"exp_annotations"`
				} `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("parse rule tests: %v", err)
	}
	if !slices.Equal(doc.RuleFiles, []string{"lakesink-alerts.yaml"}) {
		t.Errorf("rule_files %q, want [lakesink-alerts.yaml]", doc.RuleFiles)
	}
	names := metricNames(t)
	rules := map[string]bool{}
	for _, r := range readRules(t) {
		rules[r.Alert] = true
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	seriesRE := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)
	for _, tc := range doc.Tests {
		for _, s := range tc.InputSeries {
			m := seriesRE.FindStringSubmatch(s.Series)
			if m == nil || !names[m[1]] && !prometheusMade[m[1]] {
				t.Errorf("test %q: series %s is not a lakesink metric", tc.Name, s.Series)
			}
		}
		for _, a := range tc.AlertRuleTest {
			if !rules[a.Alertname] {
				t.Errorf("test %q: no alert %q in lakesink-alerts.yaml", tc.Name, a.Alertname)
			}
			if len(a.ExpAlerts) == 0 {
				silent[a.Alertname] = true
			} else {
				fires[a.Alertname] = true
			}
			for _, e := range a.ExpAlerts {
				if e.ExpLabels["severity"] == "" || e.ExpAnnotations["summary"] == "" {
					t.Errorf("test %q, %s: expected alerts name their severity and annotations", tc.Name, a.Alertname)
				}
			}
		}
	}
	for a := range rules {
		if !fires[a] || !silent[a] {
			t.Errorf("alert %s: tested firing %v, tested silent %v; want both", a, fires[a], silent[a])
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (make promtool installs it)")
	}
	for _, args := range [][]string{{"check", "rules", "lakesink-alerts.yaml"}, {"test", "rules", "lakesink-alerts.test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Join(dir(), "prometheus")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(dir(), "grafana", "lakesink-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
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
		if p.Type == "row" {
			t.Errorf("panel %q: rows are not checked by this test; keep the dashboard flat", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			checkExpr(t, p.Title, tg.Expr, names)
			all.WriteString(tg.Expr + "\n")
		}
	}
	// Every "expr" anywhere in the file is one of the panels' (none hides in
	// a nested panel or an annotation query).
	var walk func(v any)
	nexpr := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					nexpr++
					checkExpr(t, "expr", s, names)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	walk(raw)
	if want := strings.Count(all.String(), "\n"); nexpr != want {
		t.Errorf("%d exprs in the file, %d in panel targets", nexpr, want)
	}
	// Template variables: label_values(METRIC, label) must name a metric
	// lakesink exports.
	labelValuesRE := regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, ok := v.Query.(string)
		if !ok {
			if m, isMap := v.Query.(map[string]any); isMap {
				q, _ = m["query"].(string)
			}
		}
		m := labelValuesRE.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q)
			continue
		}
		checkExpr(t, "variable "+v.Name, m[1], names)
	}
	// What the issue asks the dashboard to show.
	for _, m := range []string{"lakesink_consumer_lag_records", "lakesink_consumer_lag_seconds", "lakesink_records_consumed_total",
		"lakesink_marker_delay_seconds_bucket", "lakesink_upload_duration_seconds_bucket", "lakesink_dead_letter_records_total", "lakesink_memory_held_bytes",
		"lakesink_dependency_errors_total", "lakesink_ready", "lakesink_spool_disk_bytes"} {
		if !regexp.MustCompile(`\b` + m + `\b`).MatchString(all.String()) {
			t.Errorf("dashboard does not show %s", m)
		}
	}
}

// digestRE is an image reference pinned by digest: [registry/]repo[:tag]@sha256:<64 hex>.
var digestRE = regexp.MustCompile(`^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}$`)

func TestDigestRE(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	for ref, pinned := range map[string]bool{
		"ghcr.io/lakesink/lakesink:v0.1.0@sha256:" + hex:           true,
		"ghcr.io/lakesink/lakesink@sha256:" + hex:                  true,
		"registry:5000/lakesink:1@sha256:" + hex:                   true,
		"ghcr.io/lakesink/lakesink:latest":                         false,
		"ghcr.io/lakesink/lakesink:v0.1.0":                         false,
		"ghcr.io/lakesink/lakesink@sha256:" + hex[:63]:             false,
		"ghcr.io/lakesink/lakesink@sha256:" + strings.ToUpper(hex): false,
		"ghcr.io/lakesink/lakesink:v0.1.0@sha256:<digest>":         false,
	} {
		if got := digestRE.MatchString(ref); got != pinned {
			t.Errorf("digestRE.MatchString(%q) = %v, want %v", ref, got, pinned)
		}
	}
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name           string   `yaml:"name"`
	Image          string   `yaml:"image"`
	Args           []string `yaml:"args"`
	LivenessProbe  k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe k8sProbe `yaml:"readinessProbe"`
	Env            []struct {
		Name      string `yaml:"name"`
		ValueFrom struct {
			SecretKeyRef struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
}

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	node       *yaml.Node
	file       string
}

type k8sDeployment struct {
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				InitContainers []k8sContainer `yaml:"initContainers"`
				Containers     []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sPDB struct {
	Spec struct {
		MinAvailable   any `yaml:"minAvailable"` // int or "N%"
		MaxUnavailable any `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

type k8sScaledObject struct {
	Spec struct {
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicaCount *int `yaml:"minReplicaCount"`
		MaxReplicaCount *int `yaml:"maxReplicaCount"`
		Triggers        []struct {
			Type              string            `yaml:"type"`
			Metadata          map[string]string `yaml:"metadata"`
			AuthenticationRef struct {
				Name string `yaml:"name"`
			} `yaml:"authenticationRef"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

type k8sTriggerAuthentication struct {
	Spec struct {
		SecretTargetRef []struct {
			Parameter string `yaml:"parameter"`
			Name      string `yaml:"name"`
			Key       string `yaml:"key"`
		} `yaml:"secretTargetRef"`
	} `yaml:"spec"`
}

// readManifests parses every document of every examples/k8s/*.yaml, by kind.
func readManifests(t *testing.T) map[string]k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir(), "k8s", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]k8sObject{}
	seenFiles := map[string]bool{}
	for _, f := range files {
		seenFiles[filepath.Base(f)] = true
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		for {
			var n yaml.Node
			if err := dec.Decode(&n); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s: parse manifests: %v", filepath.Base(f), err)
			}
			var o k8sObject
			if err := n.Decode(&o); err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: object without apiVersion, kind or metadata.name: %+v", filepath.Base(f), o)
			}
			if prev, ok := kinds[o.Kind]; ok {
				t.Fatalf("%s: second %s (the first in %s); this test expects one of each kind", filepath.Base(f), o.Kind, prev.file)
			}
			o.node, o.file = &n, filepath.Base(f)
			kinds[o.Kind] = o
		}
	}
	for _, f := range []string{"lakesink.yaml", "keda.yaml"} {
		if !seenFiles[f] {
			t.Errorf("examples/k8s/%s missing", f)
		}
	}
	return kinds
}

func (o k8sObject) decode(t *testing.T, v any) {
	t.Helper()
	if err := o.node.Decode(v); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
	}
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func TestKubernetesManifests(t *testing.T) {
	kinds := readManifests(t)
	want := map[string]string{"ConfigMap": "v1", "Secret": "v1", "Deployment": "apps/v1", "Service": "v1",
		"PodDisruptionBudget": "policy/v1", "ScaledObject": "keda.sh/v1alpha1", "TriggerAuthentication": "keda.sh/v1alpha1"}
	for k, v := range want {
		o, ok := kinds[k]
		if !ok {
			t.Fatalf("no %s", k)
		}
		if o.APIVersion != v {
			t.Errorf("%s: apiVersion %s, want %s", k, o.APIVersion, v)
		}
	}
	var depl k8sDeployment
	kinds["Deployment"].decode(t, &depl)
	dep := depl.Spec.Template.Spec
	if !dep.SecurityContext.RunAsNonRoot || len(dep.Containers) != 1 {
		t.Fatalf("deployment: %+v", dep)
	}
	podLabels := depl.Spec.Template.Metadata.Labels
	if !subset(depl.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("deployment selector %v does not select its pods %v", depl.Spec.Selector.MatchLabels, podLabels)
	}
	// Every image is pinned by digest, so every pod runs the same build.
	for _, c := range append(slices.Clone(dep.InitContainers), dep.Containers...) {
		if !digestRE.MatchString(c.Image) {
			t.Errorf("container %s: image %q is not pinned by digest (…@sha256:<64 hex>)", c.Name, c.Image)
		}
	}
	c := dep.Containers[0]
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: liveness %q, readiness %q", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	if strings.Join(c.Args, " ") != "run -c /etc/lakesink/lakesink.yaml" {
		t.Errorf("args %q", c.Args)
	}
	// The config expands the Secret's values, set as environment variables.
	secretObj := kinds["Secret"]
	secret := secretObj.StringData
	podEnv := map[string]string{}
	for _, e := range c.Env {
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name == "" {
			continue
		}
		if ref.Name != secretObj.Metadata.Name {
			t.Errorf("env %s: secret %s, want %s", e.Name, ref.Name, secretObj.Metadata.Name)
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
	if cfg.HTTP.Listen != ":8080" || cfg.Kafka.SASL.Password != secret["KAFKA_PASSWORD"] || cfg.Kafka.SASL.Username != secret["KAFKA_USERNAME"] {
		t.Errorf("config: listen %q, SASL user %q", cfg.HTTP.Listen, cfg.Kafka.SASL.Username)
	}

	// KEDA: the scaler watches this Deployment's consumer group, with the
	// config's brokers and topic and the Secret's credentials.
	var so k8sScaledObject
	kinds["ScaledObject"].decode(t, &so)
	if ref := so.Spec.ScaleTargetRef; ref.Name != kinds["Deployment"].Metadata.Name || ref.Kind != "" && ref.Kind != "Deployment" {
		t.Errorf("ScaledObject scaleTargetRef %+v, want Deployment %s", ref, kinds["Deployment"].Metadata.Name)
	}
	minR, maxR := so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount
	switch {
	case minR == nil || maxR == nil:
		t.Errorf("ScaledObject: minReplicaCount and maxReplicaCount required")
	case *minR < 1:
		t.Errorf("ScaledObject: minReplicaCount %d: never scale to zero, every instance runs the marker finalizer", *minR)
	case *maxR < *minR:
		t.Errorf("ScaledObject: maxReplicaCount %d below minReplicaCount %d", *maxR, *minR)
	case depl.Spec.Replicas != nil && (*depl.Spec.Replicas < *minR || *depl.Spec.Replicas > *maxR):
		t.Errorf("Deployment replicas %d outside the ScaledObject's %d..%d", *depl.Spec.Replicas, *minR, *maxR)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
		t.Fatalf("ScaledObject triggers %+v, want one of type kafka", so.Spec.Triggers)
	}
	trig := so.Spec.Triggers[0]
	md := trig.Metadata
	var topics []string
	for _, st := range cfg.Streams {
		topics = append(topics, st.Topics...)
	}
	if md["bootstrapServers"] != strings.Join(cfg.Kafka.Brokers, ",") {
		t.Errorf("kafka trigger bootstrapServers %q, config brokers %q", md["bootstrapServers"], cfg.Kafka.Brokers)
	}
	if md["consumerGroup"] != cfg.Kafka.GroupID {
		t.Errorf("kafka trigger consumerGroup %q, config group_id %q", md["consumerGroup"], cfg.Kafka.GroupID)
	}
	if !slices.Contains(topics, md["topic"]) {
		t.Errorf("kafka trigger topic %q not among the config's topics %q", md["topic"], topics)
	}
	if n, err := strconv.ParseInt(md["lagThreshold"], 10, 64); err != nil || n <= 0 {
		t.Errorf("kafka trigger lagThreshold %q: want a positive integer", md["lagThreshold"])
	}
	if md["allowIdleConsumers"] == "true" {
		t.Error("kafka trigger allowIdleConsumers: instances beyond the partition count sit idle")
	}
	if want := map[config.SASLMechanism]string{config.SASLScramSHA512: "scram_sha512", config.SASLScramSHA256: "scram_sha256", config.SASLPlain: "plaintext"}[cfg.Kafka.SASL.Mechanism]; md["sasl"] != want {
		t.Errorf("kafka trigger sasl %q, want %q for config mechanism %q", md["sasl"], want, cfg.Kafka.SASL.Mechanism)
	}
	if tlsOn := md["tls"] == "enable"; tlsOn != cfg.Kafka.TLS.Enabled {
		t.Errorf("kafka trigger tls %q, config tls.enabled %v", md["tls"], cfg.Kafka.TLS.Enabled)
	}
	var ta k8sTriggerAuthentication
	kinds["TriggerAuthentication"].decode(t, &ta)
	if trig.AuthenticationRef.Name != kinds["TriggerAuthentication"].Metadata.Name {
		t.Errorf("kafka trigger authenticationRef %q, TriggerAuthentication is %q", trig.AuthenticationRef.Name, kinds["TriggerAuthentication"].Metadata.Name)
	}
	params := map[string]string{}
	for _, r := range ta.Spec.SecretTargetRef {
		if r.Name != secretObj.Metadata.Name {
			t.Errorf("TriggerAuthentication %s: secret %s, want %s", r.Parameter, r.Name, secretObj.Metadata.Name)
		}
		v, ok := secret[r.Key]
		if !ok {
			t.Errorf("TriggerAuthentication %s: secret has no key %s", r.Parameter, r.Key)
		}
		params[r.Parameter] = v
	}
	if cfg.Kafka.SASL.Mechanism != config.SASLNone && (params["username"] != cfg.Kafka.SASL.Username || params["password"] != cfg.Kafka.SASL.Password) {
		t.Errorf("TriggerAuthentication username/password are not the config's SASL credentials")
	}
	if cfg.Kafka.TLS.CAFile != "" && params["ca"] == "" {
		t.Errorf("TriggerAuthentication has no ca while the config sets kafka.tls.ca_file")
	}

	// PodDisruptionBudget: selects the Deployment's pods and lets drains
	// through with the fewest replicas the ScaledObject allows.
	var pdb k8sPDB
	kinds["PodDisruptionBudget"].decode(t, &pdb)
	if !subset(pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the Deployment's pods %v", pdb.Spec.Selector.MatchLabels, podLabels)
	}
	switch spec := pdb.Spec; {
	case (spec.MinAvailable == nil) == (spec.MaxUnavailable == nil):
		t.Error("PodDisruptionBudget: set one of minAvailable and maxUnavailable")
	case spec.MinAvailable != nil:
		if n, ok := spec.MinAvailable.(int); ok && minR != nil && n >= *minR {
			t.Errorf("PodDisruptionBudget minAvailable %d with minReplicaCount %d blocks every drain", n, *minR)
		}
	case spec.MaxUnavailable == 0 || spec.MaxUnavailable == "0%":
		t.Error("PodDisruptionBudget maxUnavailable 0 blocks every drain")
	}
}
