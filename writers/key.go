package writers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidKey is returned (wrapped) for a key or list prefix a backend
// refuses. Retrying never helps.
var ErrInvalidKey = errors.New("invalid key")

// ValidateKey reports whether key is a well-formed, portable object key:
// non-empty, valid UTF-8, slash-separated segments that are neither empty
// (no leading, trailing or doubled '/') nor "." or "..", and no backslash or
// control character (including NUL). Every key lakesink generates passes.
//
// Backends whose storage is a file tree (local, hdfs) must call it: it is
// what keeps a key from escaping the storage root. Object stores should call
// it too, so that a key valid on one backend is valid on all of them. The
// error wraps ErrInvalidKey and quotes the key.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidKey, key)
	}
	for _, c := range key {
		if c == '\\' {
			return fmt.Errorf("%w %q: backslash", ErrInvalidKey, key)
		}
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w %q: control character %U", ErrInvalidKey, key, c)
		}
	}
	if key[0] == '/' {
		return fmt.Errorf("%w %q: absolute path", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w %q: empty path segment", ErrInvalidKey, key)
		case ".", "..":
			return fmt.Errorf("%w %q: %q path segment", ErrInvalidKey, key, seg)
		}
	}
	return nil
}

// ValidatePrefix reports whether prefix is a usable List prefix: "" or a
// string whose part up to its last '/' is a valid key (see ValidateKey) and
// whose last, partial segment has no backslash or control character. So
// "a/b", "a/b/" and "a/.." (matches "a/..x") are valid; "../x", "a//b" and
// "/a" are not. The error wraps ErrInvalidKey.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	dir, last := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir, last = prefix[:i], prefix[i+1:]
		if err := ValidateKey(dir); err != nil {
			return fmt.Errorf("prefix %q: %w", prefix, err)
		}
	}
	if last == "" {
		return nil
	}
	// "x" stands in for the rest of a key that the partial segment may
	// begin, so "." and ".." are accepted here.
	if err := ValidateKey(last + "x"); err != nil {
		return fmt.Errorf("prefix %q: %w", prefix, err)
	}
	return nil
}

// CheckPut checks the arguments of a Put or PutIfAbsent before a backend
// sends anything: the key (ValidateKey), a size that is not negative, and a
// context that is not done. Object-store backends call it first so that a
// bad call fails the same way, and without a request, on each of them.
func CheckPut(ctx context.Context, key string, size int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrSizeMismatch, size)
	}
	return ctx.Err()
}
