package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts is
// valid and survives a round trip: YAML() of the result parses (with no
// environment at all) to an equal Config. Its seeds are all testdata files.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	env := lookup(testEnv)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, env)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a Config with an error")
			}
			if len(Problems(err)) == 0 {
				t.Fatalf("error without *Error problems: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		c2, err := Parse(out, nil)
		if err != nil {
			t.Fatalf("re-Parse: %v\ninput:\n%s\nYAML():\n%s", err, data, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs\n got %#v\nwant %#v\nYAML():\n%s", c2, c, out)
		}
		_ = c.Summary()
		r := c.Redacted()
		if c.Kafka.SASL.Password != "" && r.Kafka.SASL.Password != RedactedValue {
			t.Fatal("password not redacted")
		}
		for _, s := range c.Streams {
			if _, err := s.Columns(); err != nil {
				t.Fatalf("Columns of a valid stream: %v", err)
			}
			_ = s.Location()
		}
	})
}

func TestYAMLRoundTripTrickyStrings(t *testing.T) {
	tricky := []string{"", " lead", "trail ", "a\nb", "a\n", "\n", "\ttab", "null", "~", "true", "no", "0x1F", "1e3", ".inf",
		"- x", "#c", "a: b", "${X}", "$${X}", "$", "$$", "\u2028", "\u0085", "\xff\xfe", "'", `"`, "<<", "*a", "&a", "!t", "%", "@", "`",
		"lakesinkenv0_", "{a: b}", "[1]", "é ñ 漢字 🎉", " ", "a\r\nb", "\x7f"}
	base, err := Parse(readTestdata(t, "minimal.good.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range tricky {
		c := *base
		c.Kafka.SASL = SASL{Mechanism: SASLPlain, Username: "u" + s, Password: "p" + s}
		c.Kafka.TLS.CAFile = s
		c.Files.SpoolDir = "/spool" + s
		c.Storage.S3.Prefix = s
		c.Storage.HDFS.User = s
		c.Markers.Webhook.Headers = map[string]string{"X-A": "v" + strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == 0 {
				return -1
			}
			return r
		}, s)}
		if err := c.Validate(); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatalf("%q: YAML: %v", s, err)
		}
		c2, err := Parse(out, nil)
		if err != nil {
			t.Errorf("%q: re-Parse: %v\n%s", s, err, out)
			continue
		}
		if !reflect.DeepEqual(&c, c2) {
			t.Errorf("%q: round trip differs:\n got %#v\nwant %#v\n%s", s, c2.Kafka.SASL, c.Kafka.SASL, out)
		}
	}
}
