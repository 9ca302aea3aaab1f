package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Environment expansion works in two steps so that expanded values can never
// change the YAML structure and need no quoting:
//
//  1. protect replaces every "$$", "${...}" in the raw text with a token made
//     of letters, digits and '_' (valid in every YAML context: plain, quoted,
//     flow, keys). A newline never occurs inside a reference, so line numbers
//     are unchanged.
//  2. After YAML parsing, (*envTable).expand replaces the tokens inside each
//     scalar's value with the variable's value (or the default, or "$").
//
// Tokens in comments vanish with the comments, so a reference in a comment is
// never looked up and never an error.

// envRef is one protected "$$" or "${...}".
type envRef struct {
	raw    string // the text as written, for messages
	escape bool   // "$$": a literal "$"
	name   string
	def    string
	hasDef bool
	err    string // malformed reference; reported only if it is used
}

// envTable maps tokens back to references.
type envTable struct {
	prefix string
	refs   []envRef
}

// protect returns text with references replaced by tokens.
func protect(text string) (string, *envTable) {
	t := &envTable{prefix: "lakesinkenv"}
	for strings.Contains(text, t.prefix) {
		t.prefix += "x"
	}
	if !strings.Contains(text, "$") {
		return text, t
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		c := text[i]
		if c != '$' || i+1 >= len(text) || (text[i+1] != '$' && text[i+1] != '{') {
			b.WriteByte(c)
			i++
			continue
		}
		var r envRef
		if text[i+1] == '$' {
			r = envRef{raw: "$$", escape: true}
			i += 2
		} else {
			end := strings.IndexAny(text[i+2:], "}\n")
			if end < 0 || text[i+2+end] == '\n' {
				// Unterminated: protect just "${" so the rest parses as written.
				r = envRef{raw: "${", err: "unterminated ${ (a literal $ is written $$)"}
				i += 2
			} else {
				inner := text[i+2 : i+2+end]
				r = parseRef(inner)
				i += 2 + end + 1
			}
		}
		b.WriteString(t.prefix)
		b.WriteString(strconv.Itoa(len(t.refs)))
		b.WriteByte('_')
		t.refs = append(t.refs, r)
	}
	return b.String(), t
}

// parseRef parses the inside of "${...}".
func parseRef(inner string) envRef {
	r := envRef{raw: "${" + inner + "}"}
	name := inner
	if n, def, ok := strings.Cut(inner, ":-"); ok {
		name, r.def, r.hasDef = n, def, true
	}
	if !validEnvName(name) {
		r.err = fmt.Sprintf("invalid reference %s: want ${NAME} or ${NAME:-default}, NAME of letters, digits and _ (a literal $ is written $$)", r.raw)
		return r
	}
	r.name = name
	return r
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// expand replaces the tokens in s. changed reports whether s had any. On
// error the message names the first bad reference.
func (t *envTable) expand(s string, lookup func(string) (string, bool)) (out string, changed bool, err error) {
	if len(t.refs) == 0 || !strings.Contains(s, t.prefix) {
		return s, false, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, t.prefix)
		if i < 0 {
			b.WriteString(s)
			return b.String(), true, nil
		}
		b.WriteString(s[:i])
		rest := s[i+len(t.prefix):]
		j := strings.IndexByte(rest, '_')
		n, convErr := strconv.Atoi(rest[:max(j, 0)])
		if j < 0 || convErr != nil || n < 0 || n >= len(t.refs) {
			// Not one of ours (cannot happen: the prefix is unique); keep it.
			b.WriteString(t.prefix)
			s = rest
			continue
		}
		s = rest[j+1:]
		r := t.refs[n]
		switch {
		case r.err != "":
			return "", true, fmt.Errorf("%s", r.err)
		case r.escape:
			b.WriteByte('$')
		default:
			v, ok := "", false
			if lookup != nil {
				v, ok = lookup(r.name)
			}
			switch {
			case r.hasDef && (!ok || v == ""):
				b.WriteString(r.def)
			case !ok:
				return "", true, fmt.Errorf("environment variable %s is not set (referenced as %s; use ${%s:-default} for a default)", r.name, r.raw, r.name)
			default:
				b.WriteString(v)
			}
		}
	}
}
