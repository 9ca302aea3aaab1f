package writers

import "strings"

// Prefix is the normalized key prefix of an object-store backend (the s3
// and gcs backends' Config.Prefix, `storage.s3.prefix` and
// `storage.gcs.prefix`): "" or a valid key followed by "/". Such a backend
// stores key k as the object Prefix+k and strips the prefix again from the
// names it lists, so it behaves like a Writer rooted at the prefix. Make one
// with ParsePrefix; this is the only place a configured prefix is checked
// and normalized.
type Prefix string

// ParsePrefix normalizes a configured prefix: leading and trailing slashes
// are ignored ("lake", "/lake/" and "lake/" are all "lake/"), and what
// remains must be empty or a valid key (ValidateKey), so that no key can
// name an object outside the prefix. The error wraps ErrInvalidKey.
func ParsePrefix(s string) (Prefix, error) {
	s = strings.Trim(s, "/")
	if s == "" {
		return "", nil
	}
	if err := ValidateKey(s); err != nil {
		return "", err
	}
	return Prefix(s + "/"), nil
}

// Object returns the name key is stored under. The caller has validated
// key (or List's prefix): a valid key cannot leave the prefix.
func (p Prefix) Object(key string) string { return string(p) + key }

// Key returns the key of a stored object name, and false when the name is
// not below the prefix.
func (p Prefix) Key(name string) (string, bool) { return strings.CutPrefix(name, string(p)) }

// String returns the prefix as stored, "" or ending with "/".
func (p Prefix) String() string { return string(p) }
