package writers_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lakesink/lakesink/writers"
)

func TestValidateKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"clickstream/dt=2026-11-25/hour=13/clickstream+3+00000000000000120000.parquet", true},
		{"with space/日本語/ü+=~.json", true},
		{"..x/a..b/...", true},
		{".hidden/_SUCCESS", true},
		{"", false},
		{"/a", false},
		{"/", false},
		{"a/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"a/./b", false},
		{"a/../b", false},
		{"../a", false},
		{"a/..", false},
		{"a\\b", false},
		{"a\x00b", false},
		{"a\tb", false},
		{"a\x7fb", false},
		{"\xff\xfe", false},
	} {
		err := writers.ValidateKey(tc.key)
		if tc.ok && err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", tc.key, err)
		}
		if !tc.ok && !errors.Is(err, writers.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want an error wrapping ErrInvalidKey", tc.key, err)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"", true},
		{"a", true},
		{"a/", true},
		{"a/b", true},
		{"a/..", true}, // matches "a/..x"
		{"a/.", true},
		{"..", true},
		{"clickstream/dt=2026-11-25/", true},
		{"/", false},
		{"/a", false},
		{"../", false},
		{"../x", false},
		{"a//", false},
		{"a//b", false},
		{"./a", false},
		{"a\\b", false},
		{"a/\x00", false},
	} {
		err := writers.ValidatePrefix(tc.prefix)
		if tc.ok && err != nil {
			t.Errorf("ValidatePrefix(%q) = %v, want nil", tc.prefix, err)
		}
		if !tc.ok && !errors.Is(err, writers.ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%q) = %v, want an error wrapping ErrInvalidKey", tc.prefix, err)
		}
	}
}

// FuzzValidateKey checks the property the local backend relies on: a
// valid key never has a segment that leaves its folder, and every prefix of
// a valid key is a valid List prefix.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a/b", "../a", "a/../b", "a//b", "/a", "a\\b", "dt=2026-11-25/x+1.parquet", "日本/語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if writers.ValidateKey(key) != nil {
			return
		}
		if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.ContainsAny(key, "\\\x00") {
			t.Fatalf("ValidateKey accepted %q", key)
		}
		for seg := range strings.SplitSeq(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("ValidateKey accepted %q with segment %q", key, seg)
			}
		}
		for i := range len(key) + 1 {
			if err := writers.ValidatePrefix(key[:i]); err != nil && isUTF8Boundary(key, i) {
				t.Fatalf("ValidatePrefix(%q), a prefix of valid key %q: %v", key[:i], key, err)
			}
		}
	})
}

func isUTF8Boundary(s string, i int) bool {
	return i == len(s) || s[i] < 0x80 || s[i] >= 0xc0
}
