package config

import (
	"errors"
	"strconv"
	"strings"
)

// Error is one problem in a config, located by its YAML path
// ("streams[1].time.field") and, where known, its line. Parse, Load and
// Validate return several of them joined with errors.Join; use errors.As
// for the first, or Problems for all.
type Error struct {
	File string // set by Load
	Line int    // 1-based; 0 when unknown (e.g. Validate on a Config built in code)
	Path string // YAML path; "" for the document as a whole
	Msg  string
}

// Error formats e as "file:line: path: msg", leaving out what is unknown
// ("line 7: kafka.tlss: unknown key" without a file name).
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Problems returns every *Error in err (which may be a joined error), in
// order; nil if there are none.
func Problems(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		var e *Error
		switch x := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, c := range x.Unwrap() {
				walk(c)
			}
		default:
			if errors.As(err, &e) {
				out = append(out, e)
			}
		}
	}
	walk(err)
	return out
}

// joinProblems joins errs, or returns nil if there are none.
func joinProblems(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	es := make([]error, len(errs))
	for i, e := range errs {
		es[i] = e
	}
	return errors.Join(es...)
}

// under reports whether path is p or lies below it.
func under(path, p string) bool {
	if !strings.HasPrefix(path, p) {
		return false
	}
	rest := path[len(p):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// parentPath returns the path one level up: "a.b[2]" → "a.b", "a.b" → "a".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
