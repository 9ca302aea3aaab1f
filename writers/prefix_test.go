package writers_test

import (
	"errors"
	"testing"

	"github.com/lakesink/lakesink/writers"
)

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want writers.Prefix
	}{
		{"", ""},
		{"/", ""},
		{"//", ""},
		{"lake", "lake/"},
		{"lake/", "lake/"},
		{"/lake/raw/", "lake/raw/"},
		{"tenant a/lake=1", "tenant a/lake=1/"},
	} {
		got, err := writers.ParsePrefix(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParsePrefix(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	// A prefix that is not a valid key could let keys name objects outside
	// it, or differ between backends.
	for _, in := range []string{"a//b", "../up", "a/./b", "a/../b", "a\\b", "a\x00b", "\xff"} {
		if got, err := writers.ParsePrefix(in); !errors.Is(err, writers.ErrInvalidKey) {
			t.Errorf("ParsePrefix(%q) = %q, %v; want ErrInvalidKey", in, got, err)
		}
	}
}

func TestPrefixObjectAndKey(t *testing.T) {
	p, err := writers.ParsePrefix("/lake/")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Object("s/dt=2026-11-25/a"); got != "lake/s/dt=2026-11-25/a" {
		t.Errorf("Object = %q, want the key below lake/", got)
	}
	for _, tc := range []struct {
		name, key string
		ok        bool
	}{
		{"lake/s/a", "s/a", true},
		{"lake/", "", true},
		{"lakes", "", false}, // shares the string, not the folder
		{"other/lake/file", "", false},
	} {
		if key, ok := p.Key(tc.name); ok != tc.ok || (ok && key != tc.key) {
			t.Errorf("Key(%q) = %q, %v; want %q, %v", tc.name, key, ok, tc.key, tc.ok)
		}
	}
	var root writers.Prefix
	if root.Object("k") != "k" || root.String() != "" {
		t.Errorf("the empty prefix changes names: %q", root.Object("k"))
	}
	if k, ok := root.Key("a/b"); k != "a/b" || !ok {
		t.Errorf("empty prefix Key(a/b) = %q, %v", k, ok)
	}
}
