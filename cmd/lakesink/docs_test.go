package main

import (
	"context"
	"errors"
	"go/build"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink"
	"github.com/lakesink/lakesink/sink/ops"
	"github.com/lakesink/lakesink/sink/unconsumed"
	"github.com/lakesink/lakesink/writers/factory"
)

// describeRecorder is a Registerer that records the name and labels of
// every metric registered through it, vectors without children included
// (a Gather would not show those).
type describeRecorder struct {
	*prometheus.Registry
	metrics map[string]string // name → labels, comma-separated in order
}

var descName = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}\}$`)

func (r *describeRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			r.metrics[m[1]] = m[2]
		}
	}
	return r.Registry.Register(c)
}

func (r *describeRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// TestDocsMetrics checks docs/operations.md's metric table against the
// metrics the process registers, with their labels: an operator builds
// dashboards and alerts from that table.
func TestDocsMetrics(t *testing.T) {
	t.Setenv("KAFKA_PASSWORD", "x")
	t.Setenv("AIRFLOW_TOKEN", "x")
	cfg, err := config.Load("../../config/testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.SchemaRegistry.TLS = config.RegistryTLS{} // the file names no real CA
	cfg.Storage = config.Default().Storage
	cfg.Storage.Local.Root = t.TempDir()
	rec := &describeRecorder{Registry: prometheus.NewRegistry(), metrics: map[string]string{}}
	registerBuildInfo(rec)
	log := slog.New(slog.DiscardHandler)
	w, err := factory.New(context.Background(), cfg.Storage, log, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := sink.New(sink.Options{Config: cfg, Writer: w, Logger: log, Registry: rec}); err != nil {
		t.Fatal(err)
	}
	code := map[string]string{}
	for name, labels := range rec.metrics {
		if strings.HasPrefix(name, "lakesink_") {
			code[name] = labels
		}
	}
	if len(code) < 30 {
		t.Fatalf("only %d lakesink metrics registered: %v", len(code), slices.Sorted(maps.Keys(code)))
	}

	documented := docsMetrics(t, "../../docs/operations.md")
	for _, name := range slices.Sorted(maps.Keys(code)) {
		labels, ok := documented[name]
		switch {
		case !ok:
			t.Errorf("docs/operations.md: metric %s (labels %q) is registered but not in the Metrics table", name, code[name])
		case labels != code[name]:
			t.Errorf("docs/operations.md: metric %s has labels %q in the Metrics table, %q in the code", name, labels, code[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(documented)) {
		if _, ok := code[name]; !ok {
			t.Errorf("docs/operations.md: metric %s is in the Metrics table but not registered", name)
		}
	}
}

var metricRow = regexp.MustCompile("^\\| `(lakesink_[a-z_]+)` \\|([^|]*)\\|")

// docsMetrics returns the metrics of the table under "## Metrics" (up to
// the next heading), each with its labels as the code writes them:
// "topic,partition".
func docsMetrics(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Metrics\n")
	if !ok {
		t.Fatalf("%s has no Metrics section", path)
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(section, "\n") {
		m := metricRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var labels []string
		for l := range strings.SplitSeq(m[2], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				labels = append(labels, l)
			}
		}
		out[m[1]] = strings.Join(labels, ",")
	}
	return out
}

// TestDocsReadinessReasons checks docs/operations.md's readiness table
// against the reasons the code gives (ops.Reasons, unconsumed.Reason, and
// the join reasons after "consumer group not joined: "): each has a row,
// and each row starts with one of them.
func TestDocsReadinessReasons(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Readiness reasons\n")
	if !ok {
		t.Fatal("docs/operations.md has no Readiness reasons section")
	}
	section, _, _ = strings.Cut(section, "\n#")
	var rows []string
	for line := range strings.SplitSeq(section, "\n") {
		if cell, ok := strings.CutPrefix(line, "| `"); ok {
			rows = append(rows, cell[:strings.IndexByte(cell, '`')])
		}
	}
	code := append(ops.Reasons(), unconsumed.Reason)
	for _, r := range rows {
		if !slices.ContainsFunc(code, func(p string) bool { return strings.HasPrefix(r, p) }) {
			t.Errorf("docs/operations.md: readiness reason %q starts with none of the reasons the code gives %q", r, code)
		}
	}
	for _, p := range code {
		if !slices.ContainsFunc(rows, func(r string) bool { return strings.HasPrefix(r, p) }) {
			t.Errorf("docs/operations.md: readiness reason %q has no row in the readiness table", p)
		}
	}
	for _, j := range ops.JoinReasons() {
		if !strings.Contains(section, "`"+ops.ReasonNotJoined+": "+j) {
			t.Errorf("docs/operations.md: the readiness table does not name `%s: %s`", ops.ReasonNotJoined, j)
		}
	}
}

// TestDocsPackageMap checks docs/design.md's package map against the
// code: every package of the module outside test/ has a row, every row
// names packages that exist, and the imports column lists exactly each
// package's imports within the module (non-test files).
func TestDocsPackageMap(t *testing.T) {
	const module = "github.com/lakesink/lakesink/"
	code := map[string][]string{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../..", path)
		if d.IsDir() && rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || rel == "test" || rel == "examples" || rel == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			return nil
		}
		p, err := build.ImportDir(path, 0)
		if err != nil {
			var noGo *build.NoGoError
			if errors.As(err, &noGo) {
				return nil
			}
			return err
		}
		var imports []string
		for _, imp := range p.Imports {
			if rest, ok := strings.CutPrefix(imp, module); ok {
				imports = append(imports, rest)
			}
		}
		code[filepath.ToSlash(rel)] = imports
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(code) < 20 {
		t.Fatalf("found only %d packages: %v", len(code), slices.Sorted(maps.Keys(code)))
	}

	b, err := os.ReadFile("../../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Package map\n")
	if !ok {
		t.Fatal("docs/design.md has no Package map section")
	}
	section, _, _ = strings.Cut(section, "\n#")
	name := regexp.MustCompile("`([a-z0-9/.]+)`")
	documented := map[string][]string{}
	for line := range strings.SplitSeq(section, "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `") || len(cells) != 3 || strings.HasPrefix(line, "| `test/") {
			continue
		}
		var imports []string
		for _, m := range name.FindAllStringSubmatch(cells[2], -1) {
			imports = append(imports, m[1])
		}
		for _, m := range name.FindAllStringSubmatch(cells[0], -1) {
			documented[m[1]] = imports
		}
	}
	for _, pkg := range slices.Sorted(maps.Keys(code)) {
		doc, ok := documented[pkg]
		switch {
		case !ok:
			t.Errorf("docs/design.md: package %s has no row in the package map", pkg)
		case !slices.Equal(doc, code[pkg]):
			t.Errorf("docs/design.md: package %s imports %q, the package map says %q", pkg, code[pkg], doc)
		}
	}
	for _, pkg := range slices.Sorted(maps.Keys(documented)) {
		if _, ok := code[pkg]; !ok {
			t.Errorf("docs/design.md: the package map has a row for %s, which is no package", pkg)
		}
	}
}
