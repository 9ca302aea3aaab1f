package config

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lakesink/lakesink/writers"
)

// Duration is a time.Duration written in config files as a Go duration
// string ("10m", "1h30m", "250ms"). A bare number is rejected: it has no unit.
type Duration time.Duration

// ParseDuration parses a Go duration string (see time.ParseDuration).
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want a Go duration like 30s, 10m, 1h30m)", s)
	}
	return Duration(d), nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d the way time.Duration does, without trailing zero units
// ("10m" rather than "10m0s"); ParseDuration(d.String()) == d.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText implements encoding.TextMarshaler (used by YAML and JSON encoders).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler; the node must be a scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration like 10m, got %s", kindName(n))
	}
	return d.UnmarshalText([]byte(n.Value))
}

// Size is a number of bytes. In config files it is written as a plain
// integer (bytes) or a number with a unit: B; KB, MB, GB, TB (powers of
// 1000); KiB, MiB, GiB, TiB (powers of 1024). Units are case-insensitive and
// may be separated from the number by spaces. A decimal fraction is accepted
// when the result is a whole number of bytes ("1.5GiB", "0.5KB"; not
// "0.1KiB"). Negative sizes are rejected.
type Size int64

// Common sizes.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseSize parses a size as described on Size.
func ParseSize(s string) (Size, error) {
	bad := func(why string) (Size, error) {
		return 0, fmt.Errorf("invalid size %q: %s (want bytes or a number with unit B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, e.g. 64MiB)", s, why)
	}
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		if strings.HasPrefix(t, "-") {
			return bad("negative")
		}
		return bad("no number")
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return bad(fmt.Sprintf("unknown unit %q", t[i:]))
	}
	whole, frac, hasDot := strings.Cut(num, ".")
	if whole == "" || strings.Contains(frac, ".") || (hasDot && frac == "") {
		return bad("malformed number")
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return bad("too large")
	}
	hi, total := bits.Mul64(uint64(w), uint64(mult))
	if hi != 0 || total > math.MaxInt64 {
		return bad("too large")
	}
	if frac != "" {
		frac = strings.TrimRight(frac, "0")
		if len(frac) > 18 {
			return bad("too many decimals")
		}
		if frac != "" {
			f, _ := strconv.ParseInt(frac, 10, 64) // digits only, ≤ 18 of them
			den := int64(math.Pow10(len(frac)))
			hi, lo := bits.Mul64(uint64(f), uint64(mult))
			if hi >= uint64(den) {
				return bad("too large")
			}
			q, r := bits.Div64(hi, lo, uint64(den))
			if r != 0 {
				return bad("not a whole number of bytes")
			}
			if q > math.MaxInt64-total {
				return bad("too large")
			}
			total += q
		}
	}
	return Size(total), nil
}

// Bytes returns s as an int64.
func (s Size) Bytes() int64 { return int64(s) }

// String formats s exactly, with the unit that gives the smallest number
// (1024-based on a tie), or in bytes: "64MiB", "3TB", "1500KB", "1234".
// ParseSize(s.String()) == s for every non-negative s. It is
// writers.FormatSize, so that the storage backends' messages write sizes
// the same way.
func (s Size) String() string { return writers.FormatSize(int64(s)) }

// MarshalText implements encoding.TextMarshaler (used by YAML and JSON encoders).
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler; the node must be a scalar.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size like 64MiB, got %s", kindName(n))
	}
	return s.UnmarshalText([]byte(n.Value))
}

// kindName describes a YAML node for error messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return fmt.Sprintf("%q", v)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}
