package writers

import (
	"errors"
	"strconv"
)

// SettingError is one problem with one setting of a backend's Config. Each
// backend's Config.Validate reports every problem as one, and New calls
// Validate, so `lakesink validate` (config.Validate calls the same
// Validate on the same values) rejects exactly what New would.
//
// Setting is the setting's path in the config file ("storage.s3.part_size",
// "storage.hdfs.namenodes[1]"); settings only Go callers set have a path in
// the same style. Problem is written for the reader of that file: sizes in
// FormatSize's units, other settings by their keys.
type SettingError struct {
	Setting string
	Problem string
}

// Error returns "<setting>: <problem>".
func (e *SettingError) Error() string { return e.Setting + ": " + e.Problem }

// SettingErrors returns every *SettingError in err's tree (one, or several
// joined with errors.Join as the backends' Validate returns them, possibly
// wrapped), in order. Errors of other types are left out.
func SettingErrors(err error) []*SettingError {
	var out []*SettingError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *SettingError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, c := range e.Unwrap() {
				walk(c)
			}
		default:
			walk(errors.Unwrap(err))
		}
	}
	walk(err)
	return out
}

// FormatSize formats n bytes exactly, as config files write sizes: with the
// unit that gives the smallest number (1024-based on a tie), or in bytes:
// "64MiB", "3TB", "1500KB", "1234". Zero and negative counts are plain
// numbers.
func FormatSize(n int64) string {
	if n <= 0 {
		return strconv.FormatInt(n, 10)
	}
	best, unit := n, ""
	for _, u := range []struct {
		name string
		n    int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}} {
		if n%u.n == 0 && n/u.n < best {
			best, unit = n/u.n, u.name
		}
	}
	return strconv.FormatInt(best, 10) + unit
}
