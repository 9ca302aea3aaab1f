package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/audit"
)

func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "lake")
	now := func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	cfgText := func(root string) string {
		return "kafka: {brokers: [localhost:9092], sasl: {mechanism: PLAIN, username: u, password: hunter2-secret}}\n" +
			"streams:\n  - {name: a, topics: [a], schema: [{name: id, type: string}]}\n  - {name: b, topics: [b], schema: [{name: id, type: string}]}\n" +
			"storage: {type: local, local: {root: " + root + "}}\n"
	}
	cfg := filepath.Join(dir, "lakesink.yaml")
	if err := os.WriteFile(cfg, []byte(cfgText(root)), 0o600); err != nil {
		t.Fatal(err)
	}
	nomarkers := filepath.Join(dir, "nomarkers.yaml")
	if err := os.WriteFile(nomarkers, []byte(cfgText(root)+"markers: {enabled: false}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	if err := os.WriteFile(missing, []byte(cfgText(filepath.Join(dir, "nolake"))), 0o600); err != nil {
		t.Fatal(err)
	}
	runAudit := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cmdAudit(args, &out, &errb, now)
		if s := out.String() + errb.String(); strings.Contains(s, "hunter2") {
			t.Errorf("audit %v printed a secret:\n%s", args, s)
		}
		return code, out.String(), errb.String()
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "--config FILE is required"},
		{[]string{"-c", cfg, "extra"}, "unexpected arguments"},
		{[]string{"-c", cfg, "--from", "yesterday"}, "--from"},
		{[]string{"-c", cfg, "--from", "2026-12-01T12:00:00Z", "--to", "2026-12-01T11:00:00Z"}, "is not before"},
		{[]string{"-c", filepath.Join(dir, "nope.yaml")}, "invalid config"},
		{[]string{"-c", cfg, "--stream", "zzz"}, `no stream "zzz"`},
		{[]string{"-c", missing}, "nolake"},
		{[]string{"-c", nomarkers}, "markers.enabled is false"},
		{[]string{"-c", cfg, "--bogus"}, "flag provided but not defined"},
	} {
		code, _, errOut := runAudit(c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("audit %v: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nolake")); !os.IsNotExist(err) {
		t.Errorf("audit created the missing lake root: %v", err)
	}

	// An empty lake is clean over the default range (48 hours up to now).
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runAudit("--config", cfg)
	if code != 0 || !strings.Contains(out, "audit 2026-11-29T12:00:00Z .. 2026-12-01T12:00:00Z") || !strings.Contains(out, "clean: no findings") {
		t.Fatalf("empty lake: exit %d\n%s%s", code, out, errOut)
	}

	// A manifest that does not decode in stream b's hour 10.
	marker := filepath.Join(root, "b", "dt=2026-12-01", "hour=10", "_SUCCESS")
	if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(marker, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runAudit("-c", cfg, "--from", "2026-12-01T09:00:00Z", "--to", "2026-12-01T11:00:00Z")
	if code != 1 || !strings.Contains(out, "1 findings:") || !strings.Contains(out, "b 2026-12-01T10:00:00Z bad_manifest b/dt=2026-12-01/hour=10/_SUCCESS") {
		t.Fatalf("bad manifest: exit %d\n%s", code, out)
	}
	if code, _, _ := runAudit("-c", cfg, "--stream", "a", "--from", "2026-12-01T09:00:00Z", "--to", "2026-12-01T11:00:00Z"); code != 0 {
		t.Errorf("--stream a: exit %d, want 0 (the damage is in b)", code)
	}
	code, out, _ = runAudit("-c", cfg, "--json", "--from", "2026-12-01T09:00:00Z", "--to", "2026-12-01T11:00:00Z")
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || len(rep.Findings) != 1 || rep.Findings[0].Kind != audit.BadManifest || len(rep.Streams) != 2 {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "{" {
		t.Errorf("the audit changed the lake: %q %v", b, err)
	}
}

func TestSecretPairs(t *testing.T) {
	c := config.Default()
	c.Storage.S3.SecretAccessKey = "s3-secret-value"
	c.Kafka.SASL.Password = "kafka-pass"
	r := strings.NewReplacer(secretPairs(c)...)
	if got := r.Replace("GET http://x?sig=s3-secret-value: kafka-pass"); got != "GET http://x?sig=<redacted>: <redacted>" {
		t.Errorf("scrubbed: %q", got)
	}
}
