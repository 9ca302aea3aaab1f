package confluent

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
)

// nodeKind is the shape of a writer-schema field.
type nodeKind uint8

const (
	kScalar nodeKind = iota // one value of a column type
	kGroup                  // record / message: children
	kOpaque                 // array, map, union...: only as JSON
	kNull                   // Avro null: no value at all
)

// target is one column a node's value goes to.
type target struct {
	col int
	typ partitioner.ColumnType // partitioner.TypeJSON: render as JSON text
}

// node is one field of a writer schema, with where its value goes.
type node struct {
	name, path string
	kind       nodeKind
	typ        partitioner.ColumnType // natural column type of a kScalar
	nullable   bool
	children   []*node

	targets []target
	time    bool
	used    bool // this node or a descendant has targets or the time

	avro  *avroNode
	fd    protoreflect.FieldDescriptor
	proto protoKind
}

func (n *node) find(path string) *node {
	cur := n
	for seg := range strings.SplitSeq(path, ".") {
		var next *node
		for _, c := range cur.children {
			if c.name == seg {
				next = c
				break
			}
		}
		if next == nil {
			return nil
		}
		cur = next
	}
	return cur
}

// assign decides which column each field of the writer schema root goes
// to, and returns the columns: Spec.Fields in fixed mode, else derived.
func (d *Decoder) assign(root *node) ([]partitioner.Column, error) {
	var cols []partitioner.Column
	if d.fixed != nil {
		cols = d.fixed.Columns()
		for i, f := range d.spec.Fields {
			path := f.Path
			if path == "" {
				path = f.Column.Name
			}
			n := root.find(path)
			if n == nil || n.kind == kNull {
				if f.Column.Required {
					return nil, fmt.Errorf("required column %s: field %s not in the writer schema", f.Column.Name, path)
				}
				continue
			}
			if f.Column.Type != partitioner.TypeJSON {
				if n.kind != kScalar {
					return nil, fmt.Errorf("column %s (%v): field %s is a nested value; use type json", f.Column.Name, f.Column.Type, path)
				}
				if !convertible(n.typ, f.Column.Type) {
					return nil, fmt.Errorf("column %s (%v): field %s is %v", f.Column.Name, f.Column.Type, path, n.typ)
				}
			}
			n.targets = append(n.targets, target{col: i, typ: f.Column.Type})
		}
	} else {
		var walk func(n *node, optional bool)
		walk = func(n *node, optional bool) {
			optional = optional || n.nullable
			switch n.kind {
			case kScalar, kOpaque:
				n.targets = append(n.targets, target{col: len(cols), typ: n.typ})
				cols = append(cols, partitioner.Column{Name: n.path, Type: n.typ, Required: !optional && n.kind == kScalar})
			case kGroup:
				for _, c := range n.children {
					walk(c, optional)
				}
			}
		}
		for _, c := range root.children {
			walk(c, false)
		}
		if len(cols) == 0 {
			return nil, fmt.Errorf("writer schema has no fields to store")
		}
	}
	if d.spec.TimePath != "" {
		n := root.find(d.spec.TimePath)
		if n == nil || n.kind == kNull {
			return nil, fmt.Errorf("time field %s not in the writer schema", d.spec.TimePath)
		}
		if n.kind != kScalar || n.typ == partitioner.TypeBool {
			return nil, fmt.Errorf("time field %s is %s, want a timestamp, number or string", d.spec.TimePath, kindName(n))
		}
		n.time = true
	}
	markUsed(root)
	return cols, nil
}

func kindName(n *node) string {
	switch n.kind {
	case kGroup:
		return "a record"
	case kOpaque:
		return "a list, map or union"
	}
	return n.typ.String()
}

func markUsed(n *node) bool {
	n.used = len(n.targets) > 0 || n.time
	for _, c := range n.children {
		if markUsed(c) {
			n.used = true
		}
	}
	return n.used
}

type typePair struct{ from, to partitioner.ColumnType }

var conversions = map[typePair]bool{
	{partitioner.TypeInt32, partitioner.TypeInt64}:                     true,
	{partitioner.TypeInt32, partitioner.TypeDouble}:                    true,
	{partitioner.TypeInt32, partitioner.TypeFloat}:                     true,
	{partitioner.TypeInt64, partitioner.TypeDouble}:                    true,
	{partitioner.TypeFloat, partitioner.TypeDouble}:                    true,
	{partitioner.TypeTimestampMillis, partitioner.TypeTimestampMicros}: true,
	{partitioner.TypeTimestampMicros, partitioner.TypeTimestampMillis}: true,
	{partitioner.TypeTimestampMillis, partitioner.TypeInt64}:           true,
	{partitioner.TypeTimestampMicros, partitioner.TypeInt64}:           true,
	{partitioner.TypeDate, partitioner.TypeInt32}:                      true,
}

func convertible(from, to partitioner.ColumnType) bool {
	return from == to || to == partitioner.TypeJSON || conversions[typePair{from, to}]
}

// convert turns a natural value into the column type (checked by
// convertible at compile time).
func convert(v parquet.Value, from, to partitioner.ColumnType) (parquet.Value, bool) {
	if from == to {
		return v, true
	}
	switch {
	case from == partitioner.TypeInt32 && to == partitioner.TypeInt64:
		return parquet.Int64Value(int64(v.Int32())), true
	case from == partitioner.TypeInt32 && to == partitioner.TypeDouble:
		return parquet.DoubleValue(float64(v.Int32())), true
	case from == partitioner.TypeInt32 && to == partitioner.TypeFloat:
		return parquet.FloatValue(float32(v.Int32())), true
	case from == partitioner.TypeInt64 && to == partitioner.TypeDouble:
		return parquet.DoubleValue(float64(v.Int64())), true
	case from == partitioner.TypeFloat && to == partitioner.TypeDouble:
		return parquet.DoubleValue(float64(v.Float())), true
	case from == partitioner.TypeTimestampMillis && to == partitioner.TypeTimestampMicros:
		ms := v.Int64()
		if ms > math.MaxInt64/1000 || ms < math.MinInt64/1000 {
			return v, false
		}
		return parquet.Int64Value(ms * 1000), true
	case from == partitioner.TypeTimestampMicros && to == partitioner.TypeTimestampMillis:
		us := v.Int64()
		ms := us / 1000
		if us%1000 < 0 {
			ms--
		}
		return parquet.Int64Value(ms), true
	case to == partitioner.TypeInt64, to == partitioner.TypeInt32:
		return v, true // same physical value
	}
	return v, false
}

// emit stores the natural value v of scalar n into its columns and the
// event time.
func (d *Decoder) emit(n *node, v parquet.Value) *decode.Error {
	for _, t := range n.targets {
		if t.typ == partitioner.TypeJSON && n.typ != partitioner.TypeJSON {
			start := len(d.arena)
			d.arena = appendScalarJSON(d.arena, n.typ, v)
			d.row[t.col] = parquet.ByteArrayValue(d.arena[start:])
			continue
		}
		cv, ok := convert(v, n.typ, t.typ)
		if !ok {
			return &decode.Error{Reason: decode.ReasonOutOfRange, Field: n.path, Detail: fmt.Sprintf("%v value does not fit %v", n.typ, t.typ)}
		}
		d.row[t.col] = cv
	}
	if n.time {
		t, msg := d.eventTime(n.typ, v)
		if msg != "" {
			return &decode.Error{Reason: decode.ReasonBadTime, Field: n.path, Detail: msg}
		}
		d.t = timeVal{set: true, t: t}
	}
	return nil
}

// emitJSON stores JSON text (already in d.arena[start:]) into n's json
// columns.
func (d *Decoder) emitJSON(n *node, start int) {
	for _, t := range n.targets {
		if t.typ == partitioner.TypeJSON {
			d.row[t.col] = parquet.ByteArrayValue(d.arena[start:])
		}
	}
}

// wantsJSON reports whether n has a json column.
func (n *node) wantsJSON() bool {
	for _, t := range n.targets {
		if t.typ == partitioner.TypeJSON {
			return true
		}
	}
	return false
}

func (d *Decoder) eventTime(typ partitioner.ColumnType, v parquet.Value) (time.Time, string) {
	switch typ {
	case partitioner.TypeTimestampMillis:
		return time.UnixMilli(v.Int64()).UTC(), ""
	case partitioner.TypeTimestampMicros:
		return time.UnixMicro(v.Int64()).UTC(), ""
	case partitioner.TypeDate:
		return time.Unix(int64(v.Int32())*86400, 0).UTC(), ""
	case partitioner.TypeInt32, partitioner.TypeInt64:
		n := v.Int64()
		if typ == partitioner.TypeInt32 {
			n = int64(v.Int32())
		}
		if d.spec.TimeFormat == decode.UnixSeconds {
			if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
				return time.Time{}, "seconds out of range"
			}
			return time.Unix(n, 0).UTC(), ""
		}
		return time.UnixMilli(n).UTC(), ""
	case partitioner.TypeFloat, partitioner.TypeDouble:
		f := v.Double()
		if typ == partitioner.TypeFloat {
			f = float64(v.Float())
		}
		if d.spec.TimeFormat == decode.UnixSeconds {
			f *= 1000
		}
		if math.IsNaN(f) || f < -1e17 || f > 1e17 {
			return time.Time{}, "number out of range"
		}
		return time.UnixMilli(int64(math.Floor(f))).UTC(), ""
	case partitioner.TypeString:
		t, err := time.Parse(time.RFC3339Nano, string(v.ByteArray()))
		if err != nil {
			return time.Time{}, "not an RFC 3339 time"
		}
		return t.UTC(), ""
	}
	return time.Time{}, "not a time"
}

// appendScalarJSON renders a natural value as JSON.
func appendScalarJSON(b []byte, typ partitioner.ColumnType, v parquet.Value) []byte {
	switch typ {
	case partitioner.TypeString:
		return appendJSONString(b, v.ByteArray())
	case partitioner.TypeInt32:
		return strconv.AppendInt(b, int64(v.Int32()), 10)
	case partitioner.TypeInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case partitioner.TypeDouble:
		return appendJSONFloat(b, v.Double(), 64)
	case partitioner.TypeFloat:
		return appendJSONFloat(b, float64(v.Float()), 32)
	case partitioner.TypeBool:
		return strconv.AppendBool(b, v.Boolean())
	case partitioner.TypeTimestampMillis:
		return appendJSONString(b, time.UnixMilli(v.Int64()).UTC().AppendFormat(nil, time.RFC3339Nano))
	case partitioner.TypeTimestampMicros:
		return appendJSONString(b, time.UnixMicro(v.Int64()).UTC().AppendFormat(nil, time.RFC3339Nano))
	case partitioner.TypeDate:
		return appendJSONString(b, time.Unix(int64(v.Int32())*86400, 0).UTC().AppendFormat(nil, time.DateOnly))
	}
	return append(b, "null"...)
}

// appendJSONFloat writes f as a JSON number; NaN and infinities, which JSON
// cannot hold, become strings.
func appendJSONFloat(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.AppendQuote(b, strconv.FormatFloat(f, 'g', -1, bits))
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s (valid UTF-8) as a JSON string.
func appendJSONString(b []byte, s []byte) []byte {
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			switch c {
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func appendBase64JSON(b []byte, raw []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, '"')
}

// stringValue checks UTF-8 and wraps s.
func stringValue(path string, s []byte) (parquet.Value, *decode.Error) {
	if !utf8.Valid(s) {
		return parquet.Value{}, &decode.Error{Reason: decode.ReasonBadUTF8, Field: path, Detail: "invalid UTF-8 in string"}
	}
	return parquet.ByteArrayValue(s), nil
}
