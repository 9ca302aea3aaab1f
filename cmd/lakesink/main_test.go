package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings
		stderr   []string
		noStdout bool
	}{
		{name: "good", args: []string{"validate", "-c", "../../config/testdata/full.good.yaml"}, code: 0,
			stdout: []string{"config ok: 3 streams (clickstream, iot, events)"}},
		{name: "long flag", args: []string{"validate", "--config", "../../config/testdata/minimal.good.yaml"}, code: 0,
			stdout: []string{"config ok:"}},
		{name: "three mistakes", args: []string{"validate", "-c", "../../config/testdata/three_mistakes.bad.yaml"}, code: 1, noStdout: true,
			stderr: []string{"kafka.group_idd: unknown key", "streams[0].time.field: required when format is set", `files.max_file_bytes: invalid size "lots"`}},
		{name: "missing file", args: []string{"validate", "-c", "does-not-exist.yaml"}, code: 1, stderr: []string{"does-not-exist.yaml"}},
		{name: "no flag", args: []string{"validate"}, code: 2, stderr: []string{"-c FILE is required"}},
		{name: "connect without config", args: []string{"validate", "--connect"}, code: 2, stderr: []string{"-c FILE is required"}},
		{name: "timeout without connect", args: []string{"validate", "--timeout", "3s", "-c", "../../config/testdata/minimal.good.yaml"}, code: 2,
			stderr: []string{"--timeout applies to --connect only"}},
		{name: "bad timeout", args: []string{"validate", "--connect", "--timeout", "0s", "-c", "../../config/testdata/minimal.good.yaml"}, code: 2,
			stderr: []string{"want a positive duration"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`}},
		{name: "no command", args: nil, code: 2, stderr: []string{"Usage:"}},
		{name: "version", args: []string{"version"}, code: 0, stdout: []string{"lakesink dev (commit none, go"}},
	}
	t.Setenv("KAFKA_PASSWORD", "kafka-secret")
	t.Setenv("AIRFLOW_TOKEN", "airflow-secret")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errb.String())
				}
			}
			if tt.noStdout && out.Len() > 0 {
				t.Errorf("unexpected stdout: %s", out.String())
			}
			if tt.code == 0 && tt.args[0] == "validate" && strings.Count(out.String(), "\n") != 1 {
				t.Errorf("validate should print one line, got %q", out.String())
			}
		})
	}
}

// TestValidateHidesSecrets checks that a config's secrets never reach the
// output of validate, whether the config is good or bad.
func TestValidateHidesSecrets(t *testing.T) {
	dir := t.TempDir()
	const secret = "hunter2-very-secret"
	for name, body := range map[string]string{
		"good.yaml": "kafka: {brokers: [localhost:9092], sasl: {mechanism: PLAIN, username: u, password: " + secret + "}}\n" +
			"streams: [{name: a, topics: [a], schema: [{name: id, type: string}]}]\n" +
			"markers: {webhook: {url: 'https://x.example/hook', headers: {Authorization: 'Bearer " + secret + "'}}}\n",
		"bad.yaml": "kafka: {brokers: [localhost:9092], sasl: {mechanism: NOPE, username: u, password: " + secret + "}}\n" +
			"streams: [{name: a, topics: [a], schema: [{name: id, type: strin}]}]\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		run([]string{"validate", "-c", p}, &out, &errb)
		if strings.Contains(out.String()+errb.String(), secret) {
			t.Errorf("%s: validate printed the secret:\n%s%s", name, out.String(), errb.String())
		}
	}
}

// TestValidateConnect: with --connect, validate prints the summary, then
// the table, and exits 1 when a probe fails (here the broker: nothing
// listens on its port; the checks that need it are skipped).
func TestValidateConnect(t *testing.T) {
	broker := deadBroker(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "lakesink.yaml")
	body := "kafka: {brokers: [" + broker + "]}\n" +
		"streams: [{name: a, topics: [a], schema: [{name: id, type: string}]}]\n" +
		"storage: {type: local, local: {root: " + dir + "}}\n" +
		"files: {spool_dir: " + filepath.Join(dir, "spool") + "}\n" +
		"markers: {enabled: false}\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"validate", "--connect", "--timeout", "5s", "-c", p}, &out, &errb)
	if code != 1 || errb.Len() > 0 {
		t.Fatalf("exit %d, stderr %q; want 1 and nothing", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^config ok: 1 stream \(a\)`),
		regexp.MustCompile(`^$`),
		regexp.MustCompile(`^DEPENDENCY +ENDPOINT +TIME +RESULT$`),
		regexp.MustCompile(`^kafka brokers +` + regexp.QuoteMeta(broker) + ` +\S+ +FAIL: connection refused$`),
		regexp.MustCompile(`^kafka topic +a \(stream a\) +- +skipped: needs kafka brokers$`),
		regexp.MustCompile(`^kafka group +lakesink +- +skipped: needs kafka brokers$`),
		regexp.MustCompile(`^dead-letter topic +lakesink-dlq +- +skipped: needs kafka brokers$`),
		regexp.MustCompile(`^storage +` + regexp.QuoteMeta(dir) + ` +\S+ +ok: put and deleted _lakesink/probe/validate-[0-9a-f]{16}$`),
		regexp.MustCompile(`^spool folder +` + regexp.QuoteMeta(filepath.Join(dir, "spool", "lakesink")) + ` +\S+ +ok: writable, .* free; run creates the folder in ` + regexp.QuoteMeta(dir) + `$`),
		regexp.MustCompile(`^$`),
		regexp.MustCompile(`^1 of 6 checks failed \(2 ok, 3 skipped\)$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d: %q does not match %s", i+1, lines[i], re)
		}
	}
}
