package infer

import (
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/lakesink/lakesink/sink/decode"
)

// Kind is what an inferred field holds, ordered loosely from narrow to
// wide; see join for the lattice.
type Kind uint8

// Field kinds.
const (
	KindNull   Kind = iota // only null seen so far: no column
	KindBool               // bool column
	KindInt                // int64 column
	KindDouble             // double column
	KindString             // string column
	KindJSON               // json column: arrays, conflicts, unaddressable objects
	KindObject             // flattened into its children's columns
)

// Limits that keep an inferred schema bounded whatever the records hold.
const (
	// MaxNesting is how deep objects are flattened: an object nested more
	// than MaxNesting levels below the record is a json column.
	MaxNesting = 8
	// MaxColumns bounds the columns of an inferred schema. Beyond it the
	// top-level object with the most columns becomes one json column, and
	// a record that would add a top-level field beyond it is rejected
	// (ReasonTooManyColumns).
	MaxColumns = 1000
	// MaxKeyBytes is the longest key that names a column.
	MaxKeyBytes = 255
)

// Reasons for records that cannot join an inferred schema, besides
// decode.ReasonBadJSON.
const (
	// ReasonBadKey: a top-level key is empty, longer than MaxKeyBytes or
	// holds control characters, so it cannot name a column (nested such
	// keys make their object a json column instead).
	ReasonBadKey decode.Reason = "bad_key"
	// ReasonTooManyColumns: the record would add a top-level column beyond
	// MaxColumns.
	ReasonTooManyColumns decode.Reason = "too_many_columns"
)

// join is the least kind that holds both a and b: null joins to anything,
// int and double to double, and every other mix (objects with scalars,
// strings with numbers, arrays with anything) to json.
func join(a, b Kind) Kind {
	switch {
	case a == b:
		return a
	case a == KindNull:
		return b
	case b == KindNull:
		return a
	case a == KindInt && b == KindDouble, a == KindDouble && b == KindInt:
		return KindDouble
	}
	return KindJSON
}

type node struct {
	kind     Kind
	children map[string]*node // KindObject only
}

func (n *node) clone() *node {
	c := &node{kind: n.kind}
	if n.children != nil {
		c.children = make(map[string]*node, len(n.children))
		for k, v := range n.children {
			c.children[k] = v.clone()
		}
	}
	return c
}

// Shape is the join of every record observed: the tree of fields and the
// least kind holding every value seen at each. It only ever widens. A Shape
// is not safe for concurrent use.
type Shape struct {
	root    node
	version uint64
}

// NewShape returns the shape of no records.
func NewShape() *Shape {
	return &Shape{root: node{kind: KindObject, children: map[string]*node{}}}
}

// Version changes whenever the shape widens, so a caller can cache what it
// compiled from it.
func (s *Shape) Version() uint64 { return s.version }

// Clone returns an independent copy of s.
func (s *Shape) Clone() *Shape {
	return &Shape{root: *s.root.clone(), version: s.version}
}

// plainKey reports whether a key can name a column (segment) of its own.
func plainKey(k []byte) bool {
	if len(k) == 0 || len(k) > MaxKeyBytes || !utf8.Valid(k) {
		return false
	}
	for _, c := range k {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// Check reports whether value can join s without changing it: it is a JSON
// object, its top-level keys can name columns and it adds at most as many
// top-level fields as MaxColumns leaves room for. The error is a
// *decode.Error: ReasonBadJSON, ReasonBadKey or ReasonTooManyColumns.
func (s *Shape) Check(value []byte) error {
	i := ws(value, 0)
	if i >= len(value) || value[i] != '{' {
		return &decode.Error{Reason: decode.ReasonBadJSON, Detail: "record is not a JSON object"}
	}
	if end := skipValue(value, i, 0); end < 0 || ws(value, end) != len(value) {
		return &decode.Error{Reason: decode.ReasonBadJSON, Detail: "invalid JSON"}
	}
	added := 0
	var key []byte
	err := members(value, i, func(k []byte, v int) bool {
		key = unescapeKey(key[:0], k)
		if !plainKey(key) {
			return false
		}
		if value[v] != 'n' && s.root.children[string(key)] == nil {
			added++
		}
		return true
	})
	if err {
		return &decode.Error{Reason: ReasonBadKey, Detail: "top-level key " + quote(key) + " cannot name a column (empty, longer than 255 bytes or with control characters)"}
	}
	if len(s.root.children)+added > MaxColumns {
		return &decode.Error{Reason: ReasonTooManyColumns, Detail: "record would add top-level fields beyond the limit of 1000 columns"}
	}
	return nil
}

// quote renders a key for an error message, shortened.
func quote(k []byte) string {
	if len(k) > 64 {
		k = k[:64]
	}
	return strconv.Quote(string(k))
}

// members calls f for each member of the (valid) object at i with the raw
// key literal and the index of the value; f returning false stops the walk
// and members returns true.
func members(data []byte, i int, f func(rawKey []byte, v int) bool) bool {
	i = ws(data, i+1)
	if data[i] == '}' {
		return false
	}
	for {
		kend, _ := skipString(data, i)
		raw := data[i:kend]
		v := ws(data, ws(data, kend)+1)
		if !f(raw, v) {
			return true
		}
		i = ws(data, skipValue(data, v, 1))
		if data[i] == '}' {
			return false
		}
		i = ws(data, i+1)
	}
}

// unescapeKey appends the content of the raw key literal to dst.
func unescapeKey(dst, raw []byte) []byte {
	for _, c := range raw {
		if c == '\\' {
			return unescape(dst, raw)
		}
	}
	return append(dst, raw[1:len(raw)-1]...)
}

// Observe widens s with the record value, a JSON object. On error (see
// Check) s is unchanged.
func (s *Shape) Observe(value []byte) error {
	if err := s.Check(value); err != nil {
		return err
	}
	o := observer{data: value, s: s}
	o.object(&s.root, ws(value, 0), 0)
	return nil
}

type observer struct {
	data []byte
	key  []byte
	s    *Shape
}

func (o *observer) set(n *node, k Kind) {
	if n.kind != k {
		n.kind = k
		o.s.version++
	}
	if k != KindObject && n.children != nil {
		n.children = nil
		o.s.version++
	}
}

// value joins the value at i, depth levels below the record, into n and
// returns the index after it.
func (o *observer) value(n *node, i, depth int) int {
	data := o.data
	switch c := data[i]; {
	case c == 'n':
		return i + 4
	case c == 't':
		o.set(n, join(n.kind, KindBool))
		return i + 4
	case c == 'f':
		o.set(n, join(n.kind, KindBool))
		return i + 5
	case c == '"':
		end, _ := skipString(data, i)
		o.set(n, join(n.kind, KindString))
		return end
	case c == '[':
		o.set(n, KindJSON)
		return skipValue(data, i, depth)
	case c == '{':
		end := skipValue(data, i, depth)
		switch {
		case n.kind == KindJSON:
		case depth > MaxNesting || (n.kind != KindNull && n.kind != KindObject):
			o.set(n, KindJSON)
		default:
			o.set(n, KindObject)
			if n.children == nil {
				n.children = map[string]*node{}
			}
			o.object(n, i, depth)
		}
		return end
	default:
		end, integer := skipNumber(data, i)
		o.set(n, join(n.kind, numberKind(data[i:end], integer)))
		return end
	}
}

// object joins the members of the object at i into n (KindObject). A
// member key that cannot name a column turns n into a json column.
func (o *observer) object(n *node, i, depth int) {
	bad := false
	members(o.data, i, func(raw []byte, v int) bool {
		o.key = unescapeKey(o.key[:0], raw)
		if !plainKey(o.key) {
			bad = true
			return false
		}
		if o.data[v] == 'n' {
			return true // null adds nothing
		}
		c := n.children[string(o.key)]
		if c == nil {
			c = &node{}
			n.children[string(o.key)] = c
			o.s.version++
		}
		o.value(c, v, depth+1)
		return true
	})
	if bad {
		o.set(n, KindJSON)
	}
}

// column is one leaf of the tree during compilation.
type column struct {
	name string
	path []string
	kind Kind
	top  string // first path segment
}

// flatten lists the columns of the tree below n.
func flatten(n *node, path []string, out []column) []column {
	for _, k := range slices.Sorted(maps.Keys(n.children)) {
		c := n.children[k]
		p := append(path[:len(path):len(path)], k)
		switch c.kind {
		case KindNull:
		case KindObject:
			out = flatten(c, p, out)
		default:
			out = append(out, column{name: joinPath(p), path: p, kind: c.kind, top: p[0]})
		}
	}
	return out
}

func joinPath(p []string) string {
	n := len(p) - 1
	for _, s := range p {
		n += len(s)
	}
	b := make([]byte, 0, n)
	for i, s := range p {
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, s...)
	}
	return string(b)
}

// normalize widens s until its columns have unique names and there are at
// most MaxColumns of them, and returns them. Names are the dotted paths, so
// a top-level key "a.b" and the path a → b collide; every colliding column
// more than one level deep turns its top-level field into one json column
// (keys with dots are rare, and this keeps both values). Past MaxColumns
// the top-level object with the most columns becomes json (ties: the
// smallest key), which is what map-like objects keyed by ids call for.
func (s *Shape) normalize() []column {
	for {
		cols := flatten(&s.root, nil, nil)
		byName := make(map[string]int, len(cols))
		collapse := map[string]bool{}
		for i, c := range cols {
			j, dup := byName[c.name]
			if !dup {
				byName[c.name] = i
				continue
			}
			for _, x := range []column{cols[j], c} {
				if len(x.path) > 1 {
					collapse[x.top] = true
				}
			}
		}
		if len(collapse) == 0 && len(cols) > MaxColumns {
			per := map[string]int{}
			for _, c := range cols {
				if len(c.path) > 1 {
					per[c.top]++
				}
			}
			best := ""
			for _, k := range slices.Sorted(maps.Keys(per)) {
				if per[k] > per[best] {
					best = k
				}
			}
			if best != "" {
				collapse[best] = true
			}
		}
		if len(collapse) == 0 {
			return cols
		}
		for k := range collapse {
			n := s.root.children[k]
			n.kind, n.children = KindJSON, nil
		}
		s.version++
	}
}
