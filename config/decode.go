package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Load reads the file at path and parses it with Parse, taking variables
// from the process environment. Every *Error in the result carries the file
// name.
func Load(path string) (*Config, error) {
	data, err := readLimited(path, MaxFileBytes)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil {
		probs := Problems(err)
		if len(probs) == 0 {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for _, p := range probs {
			p.File = path
		}
		return nil, joinProblems(probs)
	}
	return c, nil
}

// MaxFileBytes bounds a config file: a larger one (a wrong path such as
// /dev/zero, a log file) is rejected at once instead of read whole.
const MaxFileBytes = 4 << 20

// readLimited reads path, failing for a file of more than limit bytes
// without reading past the limit.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read config %s: larger than %d MiB; is this the config file?", path, limit>>20)
	}
	return data, nil
}

// Parse turns YAML text into a validated Config: it expands environment
// references from lookupEnv (nil means an empty environment), decodes
// strictly over Default(), and runs Validate. On failure it returns a nil
// Config and every problem found, each an *Error joined with errors.Join.
// Parse is a pure function of its arguments and safe for concurrent use.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	c, lines, probs := decode(data, lookupEnv)
	if c == nil {
		return nil, joinProblems(probs)
	}
	decodeProbs := probs
	for i := range c.Streams {
		// `format: json` with a registry subject is JSON Schema (issue 8
		// spelled it that way): the same as format json_schema.
		if st := &c.Streams[i]; st.Format == FormatJSON && st.Subject != "" {
			st.Format = FormatJSONSchema
		}
	}
	for _, v := range c.validate() {
		if suppressed(v.Path, decodeProbs) {
			continue
		}
		v.Line = lineFor(v.Path, lines)
		probs = append(probs, v)
	}
	if len(probs) > 0 {
		// The same problem can be found more than once through aliases.
		seen := map[Error]bool{}
		probs = slices.DeleteFunc(probs, func(e *Error) bool {
			dup := seen[*e]
			seen[*e] = true
			return dup
		})
		// In file order, like a compiler; problems without a line last.
		slices.SortStableFunc(probs, func(a, b *Error) int {
			return cmp.Compare(lineKey(a.Line), lineKey(b.Line))
		})
		if len(probs) > maxProblems {
			more := len(probs) - maxProblems
			probs = append(probs[:maxProblems:maxProblems], &Error{Msg: fmt.Sprintf("and %d more problems", more)})
		}
		return nil, joinProblems(probs)
	}
	return c, nil
}

// maxProblems caps the problems Parse reports.
const maxProblems = 100

func lineKey(l int) int {
	if l <= 0 {
		return math.MaxInt
	}
	return l
}

// suppressed reports whether a validation problem at path is a consequence
// of a decoding problem at or above it (the value stayed at its default).
func suppressed(path string, decodeProbs []*Error) bool {
	for _, d := range decodeProbs {
		if d.Path != "" && (under(path, d.Path) || under(d.Path, path)) {
			return true
		}
	}
	return false
}

// lineFor returns the line of path, or of its nearest ancestor that was
// written in the file.
func lineFor(path string, lines map[string]int) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := lines[p]; ok {
			return l
		}
	}
	return 0
}

// decode parses data and decodes it strictly over Default(). It returns a
// nil Config only when there is no usable document at all; otherwise the
// Config holds what could be decoded, and probs lists what could not. lines
// maps each YAML path present in the document to its line.
func decode(data []byte, lookup func(string) (string, bool)) (c *Config, lines map[string]int, probs []*Error) {
	text, env := protect(string(data))
	dec := yaml.NewDecoder(strings.NewReader(text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, []*Error{{Msg: "config is empty"}}
		}
		return nil, nil, []*Error{yamlError(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, nil, []*Error{yamlError(err)}
		}
		return nil, nil, []*Error{{Line: extra.Line, Msg: "more than one YAML document; a config file holds exactly one"}}
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, nil, []*Error{{Msg: "config is empty"}}
	}
	d := &decoder{
		env:      env,
		lookup:   lookup,
		lines:    map[string]int{},
		expanded: map[*yaml.Node]bool{},
		budget:   10*len(data) + 10000,
	}
	c = Default()
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode && root.Kind != yaml.AliasNode {
		return nil, nil, []*Error{{Line: root.Line, Msg: "the document must be a mapping of keys (kafka:, streams:, ...), got " + kindName(root)}}
	}
	d.value(root, reflect.ValueOf(c).Elem(), "")
	return c, d.lines, d.probs
}

// yamlError converts a yaml.v3 syntax error ("yaml: line 3: ...") to an *Error.
func yamlError(err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		msg = strings.TrimSpace(msg[strings.IndexByte(msg, ':')+1:])
	}
	return &Error{Line: line, Msg: "invalid YAML: " + msg}
}

// decoder walks a YAML node tree against a Go value, collecting problems.
type decoder struct {
	env      *envTable
	lookup   func(string) (string, bool)
	lines    map[string]int
	expanded map[*yaml.Node]bool
	probs    []*Error
	budget   int // nodes left to visit; bounds alias expansion
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.probs = append(d.probs, &Error{Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// resolve follows aliases and expands environment references in scalars.
// It returns nil if the node is unusable (a problem was recorded).
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i > 100 {
			d.fail(n, path, "unresolvable alias")
			return nil
		}
		n = n.Alias
	}
	d.budget--
	if d.budget < 0 {
		if d.budget == -1 {
			d.fail(n, path, "document too large after expanding aliases")
		}
		return nil
	}
	if n.Kind != yaml.ScalarNode || d.expanded[n] {
		return n
	}
	d.expanded[n] = true
	v, changed, err := d.env.expand(n.Value, d.lookup)
	if err != nil {
		d.fail(n, path, "%v", err)
		n.Value, n.Tag, n.Style = "", "!!str", yaml.DoubleQuotedStyle
		return nil
	}
	if changed {
		n.Value = v
		// A plain scalar is resolved again after expansion, so
		// `enabled: ${TLS}` with TLS=true is a bool and an empty
		// expansion is null (the key keeps its default). Quoted values
		// stay strings.
		if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = ""
		}
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// value decodes n into v (addressable). A null node keeps v's current
// (default) value.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n = d.resolve(n, path); n == nil || isNull(n) {
		return
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		d.scalar(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer: // an optional block: present means non-nil
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			if t, ok := v.Interface().(*Table); ok {
				*t = DefaultTable() // a table block starts from its defaults
			}
		}
		d.value(n, v.Elem(), path)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		d.slice(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	default:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a single value, got %s", kindName(n))
			return
		}
		d.scalar(n, v, path)
	}
}

// scalar decodes n with yaml.v3 and reports its errors at path.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	tmp := reflect.New(v.Type())
	tmp.Elem().Set(v)
	if err := n.Decode(tmp.Interface()); err != nil {
		var te *yaml.TypeError
		msg := err.Error()
		if errors.As(err, &te) {
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				if j := strings.Index(m, ": "); strings.HasPrefix(m, "line ") && j >= 0 {
					m = m[j+2:]
				}
				msgs[i] = m
			}
			msg = strings.Join(msgs, "; ")
		}
		d.fail(n, path, "%s", msg)
		return
	}
	v.Set(tmp.Elem())
}

// fieldsOf maps yaml keys to field indexes, per struct type.
var fieldsCache sync.Map // reflect.Type → map[string]int

func fieldsOf(t reflect.Type) map[string]int {
	if m, ok := fieldsCache.Load(t); ok {
		return m.(map[string]int)
	}
	m := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && name != "" && name != "-" {
			m[name] = i
		}
	}
	fieldsCache.Store(t, m)
	return m
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structure decodes a mapping into a struct. Merge keys (<<) are applied
// first, so keys written in the mapping override merged ones.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of keys, got %s", kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			d.merge(val, v, path)
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			continue
		}
		k, child, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		idx, ok := fields[k.Value]
		if !ok {
			d.fail(k, child, "unknown key%s", suggest(k.Value, fields))
			continue
		}
		d.lines[child] = k.Line
		if d.schemaWord(v, k.Value, val, child) {
			continue
		}
		d.value(val, v.Field(idx), child)
	}
}

// merge applies the value of a "<<" key: a mapping or a list of mappings.
func (d *decoder) merge(n *yaml.Node, v reflect.Value, path string) {
	if n = d.resolve(n, path); n == nil {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		d.structure(n, v, path)
	case yaml.SequenceNode:
		// As in YAML merge semantics, earlier mappings win: apply in reverse.
		for i := len(n.Content) - 1; i >= 0; i-- {
			if m := d.resolve(n.Content[i], path); m != nil {
				d.structure(m, v, path)
			}
		}
	default:
		d.fail(n, path, "<< must merge a mapping or a list of mappings, got %s", kindName(n))
	}
}

// slice decodes a sequence into a slice; an empty sequence gives nil.
// Elements start from their defaults (DefaultStream for streams).
func (d *decoder) slice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		child := fmt.Sprintf("%s[%d]", path, i)
		d.lines[child] = e.Line
		ev := s.Index(i)
		if ev.Type() == reflect.TypeFor[Stream]() {
			ev.Set(reflect.ValueOf(DefaultStream()))
		}
		d.value(e, ev, child)
	}
	v.Set(s)
}

// key resolves the mapping key k under path and checks that it is a plain
// name not seen before in this mapping (seen: name → line). It returns the
// resolved key and its path; ok is false, with the problem reported, when
// the entry is to be skipped.
func (d *decoder) key(k *yaml.Node, path string, seen map[string]int) (_ *yaml.Node, child string, ok bool) {
	if k = d.resolve(k, path); k == nil {
		return nil, "", false
	}
	if k.Kind != yaml.ScalarNode {
		d.fail(k, path, "keys must be plain names, got %s", kindName(k))
		return nil, "", false
	}
	child = join(path, k.Value)
	if first, dup := seen[k.Value]; dup {
		d.fail(k, child, "duplicate key (first at line %d)", first)
		return nil, "", false
	}
	seen[k.Value] = k.Line
	return k, child, true
}

// mapping decodes a mapping with string keys into a map; empty gives nil.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, child, ok := d.key(n.Content[i], path, seen)
		if !ok {
			continue
		}
		d.lines[child] = k.Line
		ev := reflect.New(v.Type().Elem()).Elem()
		d.value(n.Content[i+1], ev, child)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
	}
	v.Set(m)
}

// suggest returns ` (did you mean "x"?)` for a near miss among known keys.
func suggest(key string, fields map[string]int) string {
	best, bestD := "", 3
	for k := range fields {
		if dist := editDistance(key, k); dist < bestD || (dist == bestD && k < best) {
			best, bestD = k, dist
		}
	}
	if best == "" || bestD > 2 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// YAML returns c as YAML text that Parse turns back into an equal Config:
// every key is written and each "$" is escaped as "$$". It includes secrets;
// use c.Redacted().YAML() for display.
func (c *Config) YAML() ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	escapeDollars(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b.Bytes(), nil
}

func escapeDollars(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!binary" {
		n.Value = strings.ReplaceAll(n.Value, "$", "$$")
	}
	for _, c := range n.Content {
		escapeDollars(c)
	}
}
