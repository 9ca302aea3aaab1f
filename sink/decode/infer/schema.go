package infer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
)

// EmptyColumn is the one column of a schema inferred from records that hold
// no values at all (only empty objects and nulls): Parquet needs a column.
// It is a nullable json column that is always null.
const EmptyColumn = "_empty"

// Schema is a compiled inferred schema: its columns, sorted by name, all
// nullable, and the plan to decode records into them. It is immutable and
// safe for concurrent use; its Decoders are not.
type Schema struct {
	cols        []partitioner.Column
	pq          *partitioner.Schema
	root        *pnode
	desc        string
	fingerprint string
}

// pnode is a node of the decoding plan, a frozen copy of the shape tree.
type pnode struct {
	kind     Kind
	col      int // column index of a leaf; -1 for KindNull and KindObject
	children map[string]*pnode
}

var columnTypes = map[Kind]partitioner.ColumnType{
	KindBool: partitioner.TypeBool, KindInt: partitioner.TypeInt64, KindDouble: partitioner.TypeDouble,
	KindString: partitioner.TypeString, KindJSON: partitioner.TypeJSON,
}

// Compile widens s where its columns would collide or exceed MaxColumns
// (see normalize) and returns the schema of its columns as a Parquet schema
// named name.
func (s *Shape) Compile(name string) (*Schema, error) {
	flat := s.normalize()
	slices.SortFunc(flat, func(a, b column) int { return strings.Compare(a.name, b.name) })
	index := make(map[string]int, len(flat))
	cols := make([]partitioner.Column, 0, max(len(flat), 1))
	type descCol struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	desc := make([]descCol, 0, len(flat))
	for i, c := range flat {
		index[c.name] = i
		t := columnTypes[c.kind]
		cols = append(cols, partitioner.Column{Name: c.name, Type: t})
		desc = append(desc, descCol{c.name, t.String()})
	}
	if len(cols) == 0 {
		cols = append(cols, partitioner.Column{Name: EmptyColumn, Type: partitioner.TypeJSON})
	}
	pq, err := partitioner.NewSchema(name, cols)
	if err != nil {
		return nil, fmt.Errorf("inferred schema: %w", err)
	}
	d, err := json.Marshal(desc)
	if err != nil {
		return nil, fmt.Errorf("inferred schema: %w", err)
	}
	sum := sha256.Sum256(d)
	return &Schema{
		cols:        cols,
		pq:          pq,
		root:        plan(&s.root, nil, index),
		desc:        string(d),
		fingerprint: "sha256:" + hex.EncodeToString(sum[:8]),
	}, nil
}

func plan(n *node, path []string, index map[string]int) *pnode {
	p := &pnode{kind: n.kind, col: -1}
	switch n.kind {
	case KindNull:
	case KindObject:
		p.children = make(map[string]*pnode, len(n.children))
		for k, c := range n.children {
			p.children[k] = plan(c, append(path[:len(path):len(path)], k), index)
		}
	default:
		p.col = index[joinPath(path)]
	}
	return p
}

// Columns returns the schema's columns in order (a copy).
func (s *Schema) Columns() []partitioner.Column { return slices.Clone(s.cols) }

// Parquet returns the Parquet schema of the columns.
func (s *Schema) Parquet() *partitioner.Schema { return s.pq }

// Description is the column list as JSON, [{"name":"a","type":"int64"},...],
// for the file footer; "[]" for the EmptyColumn schema.
func (s *Schema) Description() string { return s.desc }

// Fingerprint identifies the column list: "sha256:" and the first 8 bytes
// of the SHA-256 of Description, in hex. Equal column lists have equal
// fingerprints.
func (s *Schema) Fingerprint() string { return s.fingerprint }

// Decoder decodes records into rows of one Schema. It owns scratch buffers
// that the rows alias and is not safe for concurrent use.
type Decoder struct {
	s     *Schema
	data  []byte
	row   []parquet.Value
	arena []byte
	key   []byte
}

// NewDecoder returns a Decoder of records into s's rows.
func (s *Schema) NewDecoder() *Decoder {
	return &Decoder{s: s, row: make([]parquet.Value, len(s.cols))}
}

// Schema returns the decoder's schema.
func (d *Decoder) Schema() *Schema { return d.s }

// Decode returns the row of the record value in the schema's column order
// and whether the record fits the schema: fits is false when joining the
// record would change the schema (a field it has no column for, a value its
// column's kind cannot hold), and the row is then incomplete and must not
// be written. Nothing is ever converted lossily: an int64 column takes
// integer literals that fit, a double column any finite number, a string
// column strings (unescaped), a json column any value as its raw JSON text.
// Null and absent fields are null. When a key repeats, the last value wins.
//
// The row and the byte arrays in it alias value and the decoder's buffers
// until the next call. The error, a *decode.Error, is for a value that is
// not a JSON object (ReasonBadJSON) or whose top-level key cannot name a
// column (ReasonBadKey).
func (d *Decoder) Decode(value []byte) (row []parquet.Value, fits bool, err error) {
	i := ws(value, 0)
	if i >= len(value) || value[i] != '{' {
		return nil, false, &decode.Error{Reason: decode.ReasonBadJSON, Detail: "record is not a JSON object"}
	}
	if end := skipValue(value, i, 0); end < 0 || ws(value, end) != len(value) {
		return nil, false, &decode.Error{Reason: decode.ReasonBadJSON, Detail: "invalid JSON"}
	}
	d.data = value
	d.arena = d.arena[:0]
	for j := range d.row {
		d.row[j] = parquet.Value{}
	}
	badKey := false
	fits = true
	root := d.s.root
	members(value, i, func(raw []byte, v int) bool {
		d.key = unescapeKey(d.key[:0], raw)
		if !plainKey(d.key) {
			badKey = true
			return false
		}
		if fits {
			fits = d.member(root, v, 1)
		}
		return true // go on: a later top-level key may be bad
	})
	d.data = nil
	if badKey {
		return nil, false, &decode.Error{Reason: ReasonBadKey, Detail: "top-level key " + quote(d.key) + " cannot name a column (empty, longer than 255 bytes or with control characters)"}
	}
	return d.row, fits, nil
}

// member decodes the value at v of the member named d.key of an object
// whose plan is p (nil: a field the schema does not know), depth levels
// below the record.
func (d *Decoder) member(p *pnode, v, depth int) bool {
	var c *pnode
	if p != nil {
		c = p.children[string(d.key)]
	}
	if d.data[v] == 'n' {
		if c != nil && c.col >= 0 {
			d.row[c.col] = parquet.Value{}
		}
		return true
	}
	return d.value(c, v, depth)
}

// object decodes the members of the object at i with plan p (nil: unknown,
// which fits only if it holds no values).
func (d *Decoder) object(p *pnode, i, depth int) bool {
	fits := true
	members(d.data, i, func(raw []byte, v int) bool {
		d.key = unescapeKey(d.key[:0], raw)
		if !plainKey(d.key) {
			fits = false // the object would become a json column
			return false
		}
		fits = d.member(p, v, depth+1)
		return fits
	})
	return fits
}

// value decodes the non-null value at i into c's column.
func (d *Decoder) value(c *pnode, i, depth int) bool {
	data := d.data
	var k Kind
	end := 0
	switch ch := data[i]; {
	case ch == '{':
		switch {
		case c != nil && c.kind == KindObject:
			return d.object(c, i, depth)
		case c == nil || c.kind == KindNull:
			// A new object fits while it holds no values (it adds no
			// column); deeper than MaxNesting it would be a json column.
			return depth <= MaxNesting && d.object(nil, i, depth)
		}
		k, end = KindObject, skipValue(data, i, depth)
	case ch == '[':
		k, end = KindJSON, skipValue(data, i, depth)
	case ch == '"':
		k = KindString
		end, _ = skipString(data, i)
	case ch == 't':
		k, end = KindBool, i+4
	case ch == 'f':
		k, end = KindBool, i+5
	default:
		var integer bool
		end, integer = skipNumber(data, i)
		k = numberKind(data[i:end], integer)
	}
	if c == nil || c.col < 0 {
		return false
	}
	raw := data[i:end]
	out := &d.row[c.col]
	switch c.kind {
	case KindJSON:
		*out = parquet.ByteArrayValue(raw)
	case KindString:
		if k != KindString {
			return false
		}
		if bytes.IndexByte(raw, '\\') < 0 {
			*out = parquet.ByteArrayValue(raw[1 : len(raw)-1])
		} else {
			start := len(d.arena)
			d.arena = unescape(d.arena, raw)
			*out = parquet.ByteArrayValue(d.arena[start:len(d.arena):len(d.arena)])
		}
	case KindBool:
		if k != KindBool {
			return false
		}
		*out = parquet.BooleanValue(raw[0] == 't')
	case KindInt:
		if k != KindInt {
			return false
		}
		n, _ := strconv.ParseInt(unsafeString(raw), 10, 64)
		*out = parquet.Int64Value(n)
	case KindDouble:
		if k != KindInt && k != KindDouble {
			return false
		}
		f, _ := strconv.ParseFloat(unsafeString(raw), 64)
		*out = parquet.DoubleValue(f)
	default:
		return false
	}
	return true
}
