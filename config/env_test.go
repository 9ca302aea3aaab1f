package config

import (
	"strings"
	"testing"
)

// expandValue returns what Parse makes of the config value s (single-quoted
// YAML, which changes nothing in these values), expanded with lookup: s is
// written as schema_registry.username, a key without rules of its own.
func expandValue(s string, lookup func(string) (string, bool)) (string, error) {
	doc := "kafka: {brokers: [\"k:9092\"]}\n" +
		"streams: [{name: a, topics: [a], schema: [{name: id, type: string}]}]\n" +
		"schema_registry:\n  username: '" + s + "'\n"
	c, err := Parse([]byte(doc), lookup)
	if err != nil {
		return "", err
	}
	return c.SchemaRegistry.Username, nil
}

func TestExpandEnv(t *testing.T) {
	env := lookup(map[string]string{"A": "alpha", "EMPTY": "", "SPECIAL": `x"y'z: #w ${A} $$`, "lakesinkenv0_": "no"})
	tests := []struct {
		in, want, wantErr string
	}{
		{"plain", "plain", ""},
		{"${A}", "alpha", ""},
		{"pre-${A}-post", "pre-alpha-post", ""},
		{"${A}${A}", "alphaalpha", ""},
		{"${A}_${A}", "alpha_alpha", ""},
		{"${A}123", "alpha123", ""},
		{"${EMPTY}", "", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${UNSET:-def}", "def", ""},
		{"${UNSET:-}", "", ""},
		{"${UNSET:-a b: c}", "a b: c", ""},
		{"${A:-def}", "alpha", ""},
		{"${SPECIAL}", `x"y'z: #w ${A} $$`, ""}, // values are not expanded again
		{"$$", "$", ""},
		{"$${A}", "${A}", ""},
		{"$$$${A}", "$${A}", ""},
		{"$$${A}", "$alpha", ""},
		{"cost $5", "cost $5", ""},
		{"trailing $", "trailing $", ""},
		{"$A", "$A", ""},
		{"lakesinkenv0_ ${A}", "lakesinkenv0_ alpha", ""}, // text that looks like a token
		{"${UNSET}", "", "environment variable UNSET is not set"},
		{"x ${A} ${UNSET2}", "", "environment variable UNSET2 is not set"},
		{"${}", "", "invalid reference ${}"},
		{"${1A}", "", "invalid reference ${1A}"},
		{"${A B}", "", "invalid reference ${A B}"},
		{"${A:def}", "", "invalid reference ${A:def}"},
		{"${A", "", "unterminated ${"},
		{"${A\n}", "", "unterminated ${"},
	}
	for _, tt := range tests {
		got, err := expandValue(tt.in, env)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("expand %q = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("expand %q = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := expandValue("${A}", nil); err == nil {
		t.Error("a nil lookup must be an empty environment")
	}
}

func TestEnvInYAMLContexts(t *testing.T) {
	// The same secret, full of YAML syntax, in every scalar style.
	secret := `a: b, [c] {d} #e "f" 'g' \h |i >j &k *l !m %n @o` + "`p`"
	env := lookup(map[string]string{"PW": secret, "B1": "k1:9092", "B2": "k2:9092", "T": "true", "N": ""})
	tail := "streams: [{name: a, topics: [a], schema: [{name: id, type: string}]}]\n"
	for _, style := range []string{`${PW}`, `"${PW}"`, `'${PW}'`, "|-\n      ${PW}", ">-\n      ${PW}"} {
		doc := "kafka:\n  brokers: [${B1}, ${B2}]\n  tls: {enabled: ${T}}\n  sasl:\n    mechanism: PLAIN\n    username: u\n    password: " + style + "\n" + tail
		c, err := Parse([]byte(doc), env)
		if err != nil {
			t.Errorf("style %q: %v", style, err)
			continue
		}
		if c.Kafka.SASL.Password != secret {
			t.Errorf("style %q: password = %q, want %q", style, c.Kafka.SASL.Password, secret)
		}
		if len(c.Kafka.Brokers) != 2 || c.Kafka.Brokers[1] != "k2:9092" || !c.Kafka.TLS.Enabled {
			t.Errorf("style %q: flow-style expansion: %+v", style, c.Kafka)
		}
	}
	// Quoted values stay strings: a quoted "true" is not a bool.
	_, err := Parse([]byte("kafka:\n  brokers: [k:9092]\n  tls: {enabled: \"${T}\"}\n"+tail), env)
	if err == nil || !strings.Contains(err.Error(), "line 3: kafka.tls.enabled: cannot unmarshal !!str `true` into bool") {
		t.Errorf("quoted bool: %v", err)
	}
	// A plain empty expansion is null: the key keeps its default.
	c, err := Parse([]byte("kafka: {brokers: [k:9092], group_id: ${N}}\n"+tail), env)
	if err != nil || c.Kafka.GroupID != "lakesink" {
		t.Errorf("empty plain expansion: %v, group_id %q", err, c.Kafka.GroupID)
	}
	// A reference in a comment is never looked up; one in an unknown key's
	// value is not reported twice.
	_, err = Parse([]byte("# ${UNSET}\nkafka: {brokers: [k:9092], bogus: ${UNSET}} # ${UNSET:bad\n"+tail), env)
	if probs := Problems(err); len(probs) != 1 || probs[0].Path != "kafka.bogus" {
		t.Errorf("got %v, want only the unknown key", err)
	}
	// The secret never shows in error messages, even next to a mistake.
	_, err = Parse([]byte("kafka: {brokers: [k:9092], sasl: {mechanism: NOPE, username: u, password: ${PW}}}\n"+tail), env)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("error %v must exist and not contain the secret", err)
	}
}
