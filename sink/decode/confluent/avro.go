package confluent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/registry"
)

// avroPlan is a compiled Avro writer schema.
type avroPlan struct {
	root *node
	api  avro.API
	r    *avro.Reader
}

// avroNode is the Avro side of a node.
type avroNode struct {
	schema  avro.Schema // the value's schema (the non-null branch of a nullable union)
	union   bool        // the field is a [null, T] union
	nullIdx int64       // index of the null branch
	symbols [][]byte    // enum symbols
	scale   int         // decimal scale, -1 if not a decimal
	size    int         // fixed size
}

// Limits on what one Avro datum may make the decoder do.
const (
	maxAvroDepth = 200     // nesting of values rendered as JSON
	maxAvroItems = 1 << 20 // array and map items per record
)

func (d *Decoder) compileAvro(p *plan, rs *registry.Schema) error {
	cache := &avro.SchemaCache{}
	ctx, cancel := context.WithTimeout(context.Background(), d.spec.LookupTimeout)
	defer cancel()
	if err := d.avroReferences(ctx, rs.References, cache, 0); err != nil {
		return err
	}
	s, err := avro.ParseWithCache(rs.Schema, "", cache)
	if err != nil {
		return fmt.Errorf("parse avro schema: %w", err)
	}
	if s.Type() != avro.Record {
		return fmt.Errorf("avro schema is a %s, want a record", s.Type())
	}
	root, err := buildAvro("", "", s, map[string]bool{})
	if err != nil {
		return err
	}
	cols, err := d.assign(root)
	if err != nil {
		return err
	}
	if err := jsonOverColumns(root); err != nil {
		return err
	}
	if p.schema, err = d.schemaFor(cols); err != nil {
		return err
	}
	max := d.spec.MaxBytes
	if max <= 0 {
		max = 64 << 20
	}
	api := avro.Config{MaxByteSliceSize: max, MaxSliceAllocSize: max}.Freeze()
	p.cols = cols
	p.avro = &avroPlan{root: root, api: api, r: avro.NewReader(nil, 0, avro.WithReaderConfig(api))}
	return nil
}

// jsonOverColumns rejects a json column over a record some of whose fields
// are columns too: an Avro datum is read once, front to back.
func jsonOverColumns(n *node) error {
	if n.kind == kGroup && n.wantsJSON() {
		for _, c := range n.children {
			if c.used {
				return fmt.Errorf("json column %s: its field %s is a column too; with avro choose one", n.path, c.path)
			}
		}
	}
	for _, c := range n.children {
		if err := jsonOverColumns(c); err != nil {
			return err
		}
	}
	return nil
}

// avroReferences parses referenced schemas (depth first) into cache.
func (d *Decoder) avroReferences(ctx context.Context, refs []registry.Reference, cache *avro.SchemaCache, depth int) error {
	if depth > 16 {
		return errors.New("schema references nest too deep")
	}
	for _, ref := range refs {
		rs, err := d.spec.Registry.SubjectVersion(ctx, ref.Subject, ref.Version)
		if err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("reference %s: %w", ref.Name, err)
			}
			return &transientError{fmt.Errorf("reference %s: %w", ref.Name, err)}
		}
		if err := d.avroReferences(ctx, rs.References, cache, depth+1); err != nil {
			return err
		}
		if _, err := avro.ParseWithCache(rs.Schema, "", cache); err != nil {
			return fmt.Errorf("reference %s: parse: %w", ref.Name, err)
		}
	}
	return nil
}

// schemaFor returns the Parquet schema for cols: the fixed one, or a new one.
func (d *Decoder) schemaFor(cols []partitioner.Column) (*partitioner.Schema, error) {
	if d.fixed != nil {
		return d.fixed, nil
	}
	return partitioner.NewSchema(d.spec.Stream, cols)
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// buildAvro builds the node of a field of schema s. Records already on the
// stack (recursive types) are opaque.
func buildAvro(name, path string, s avro.Schema, stack map[string]bool) (*node, error) {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	n := &node{name: name, path: path, avro: &avroNode{schema: s, scale: -1}}
	if u, ok := s.(*avro.UnionSchema); ok {
		types := u.Types()
		if len(types) == 2 && (types[0].Type() == avro.Null) != (types[1].Type() == avro.Null) {
			nullIdx := 0
			if types[1].Type() == avro.Null {
				nullIdx = 1
			}
			inner, err := buildAvro(name, path, types[1-nullIdx], stack)
			if err != nil {
				return nil, err
			}
			inner.nullable = true
			inner.avro.union = true
			inner.avro.nullIdx = int64(nullIdx)
			return inner, nil
		}
		n.kind, n.typ = kOpaque, partitioner.TypeJSON
		return n, nil
	}
	var logical avro.LogicalType
	if ls, ok := s.(avro.LogicalTypeSchema); ok && ls.Logical() != nil {
		logical = ls.Logical().Type()
		if dec, ok := ls.Logical().(*avro.DecimalLogicalSchema); ok {
			n.avro.scale = dec.Scale()
		}
	}
	n.kind = kScalar
	switch s.Type() {
	case avro.Null:
		n.kind = kNull
	case avro.Boolean:
		n.typ = partitioner.TypeBool
	case avro.Int:
		n.typ = partitioner.TypeInt32
		if logical == avro.Date {
			n.typ = partitioner.TypeDate
		}
	case avro.Long:
		n.typ = partitioner.TypeInt64
		switch logical {
		case avro.TimestampMillis, avro.LocalTimestampMillis:
			n.typ = partitioner.TypeTimestampMillis
		case avro.TimestampMicros, avro.LocalTimestampMicros:
			n.typ = partitioner.TypeTimestampMicros
		}
	case avro.Float:
		n.typ = partitioner.TypeFloat
	case avro.Double:
		n.typ = partitioner.TypeDouble
	case avro.String, avro.Bytes:
		n.typ = partitioner.TypeString
	case avro.Fixed:
		n.typ = partitioner.TypeString
		n.avro.size = s.(*avro.FixedSchema).Size()
	case avro.Enum:
		n.typ = partitioner.TypeString
		for _, sym := range s.(*avro.EnumSchema).Symbols() {
			n.avro.symbols = append(n.avro.symbols, []byte(sym))
		}
	case avro.Record:
		rec := s.(*avro.RecordSchema)
		full := rec.FullName()
		if stack[full] || len(stack) > 64 {
			n.kind, n.typ = kOpaque, partitioner.TypeJSON
			return n, nil
		}
		stack[full] = true
		defer delete(stack, full)
		n.kind = kGroup
		for _, f := range rec.Fields() {
			c, err := buildAvro(f.Name(), joinPath(path, f.Name()), f.Type(), stack)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, c)
		}
	case avro.Array, avro.Map:
		n.kind, n.typ = kOpaque, partitioner.TypeJSON
	default:
		return nil, fmt.Errorf("field %s: unsupported avro type %s", path, s.Type())
	}
	return n, nil
}

// decodeAvro reads one datum of p into d.row and d.t.
func (d *Decoder) decodeAvro(p *avroPlan, body []byte) *decode.Error {
	r := p.r.Reset(body)
	r.Error = nil
	budget := maxAvroItems
	var de *decode.Error
	for _, c := range p.root.children {
		if de = d.readAvro(r, c, &budget); de != nil || r.Error != nil {
			break
		}
	}
	if r.Error != nil {
		return avroError(r.Error)
	}
	if de != nil {
		return de
	}
	if r.Peek(); r.Error == nil {
		return &decode.Error{Reason: ReasonBadPayload, Detail: "bytes left after the avro datum (wrong schema id?)"}
	}
	return nil
}

func avroError(err error) *decode.Error {
	if errors.Is(err, errBadUTF8) {
		return &decode.Error{Reason: decode.ReasonBadUTF8, Detail: err.Error()}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &decode.Error{Reason: ReasonTruncated, Detail: "avro datum ends early"}
	}
	return &decode.Error{Reason: ReasonBadPayload, Detail: err.Error()}
}

var errBudget = errors.New("too many array or map items")

func (d *Decoder) readAvro(r *avro.Reader, n *node, budget *int) *decode.Error {
	a := n.avro
	if a.union {
		idx := r.ReadLong()
		if r.Error != nil {
			return nil
		}
		if idx == a.nullIdx {
			return nil
		}
		if idx != 1-a.nullIdx {
			r.ReportError("read union", "union index "+strconv.FormatInt(idx, 10)+" out of range")
			return nil
		}
	}
	if !n.used {
		skipAvro(r, a.schema, budget, 0)
		return nil
	}
	switch n.kind {
	case kGroup:
		if n.wantsJSON() {
			start := len(d.arena)
			d.arena = d.appendAvroJSON(d.arena, r, a.schema, budget, 0)
			d.emitJSON(n, start)
			return nil
		}
		for _, c := range n.children {
			if de := d.readAvro(r, c, budget); de != nil || r.Error != nil {
				return de
			}
		}
	case kOpaque:
		start := len(d.arena)
		d.arena = d.appendAvroJSON(d.arena, r, a.schema, budget, 0)
		if r.Error == nil {
			d.emitJSON(n, start)
		}
	case kScalar:
		v, de := d.readAvroScalar(r, n)
		if de != nil || r.Error != nil {
			return de
		}
		return d.emit(n, v)
	}
	return nil
}

func (d *Decoder) readAvroScalar(r *avro.Reader, n *node) (parquet.Value, *decode.Error) {
	a := n.avro
	switch a.schema.Type() {
	case avro.Boolean:
		return parquet.BooleanValue(r.ReadBool()), nil
	case avro.Int:
		return parquet.Int32Value(r.ReadInt()), nil
	case avro.Long:
		return parquet.Int64Value(r.ReadLong()), nil
	case avro.Float:
		return parquet.FloatValue(r.ReadFloat()), nil
	case avro.Double:
		return parquet.DoubleValue(r.ReadDouble()), nil
	case avro.String:
		return stringValue(n.path, r.ReadBytes())
	case avro.Enum:
		i := r.ReadInt()
		if i < 0 || int(i) >= len(a.symbols) {
			r.ReportError("read enum", "symbol index "+strconv.Itoa(int(i))+" out of range")
			return parquet.Value{}, nil
		}
		return parquet.ByteArrayValue(a.symbols[i]), nil
	case avro.Bytes, avro.Fixed:
		var raw []byte
		if a.schema.Type() == avro.Bytes {
			raw = r.ReadBytes()
		} else {
			raw = make([]byte, a.size)
			r.Read(raw)
		}
		if r.Error != nil {
			return parquet.Value{}, nil
		}
		start := len(d.arena)
		if a.scale >= 0 {
			d.arena = appendDecimal(d.arena, raw, a.scale)
		} else {
			d.arena = appendBase64(d.arena, raw)
		}
		return parquet.ByteArrayValue(d.arena[start:]), nil
	}
	return parquet.Value{}, &decode.Error{Reason: ReasonBadPayload, Field: n.path, Detail: "unsupported type " + string(a.schema.Type())}
}

func appendBase64(b, raw []byte) []byte {
	return base64.StdEncoding.AppendEncode(b, raw)
}

// appendDecimal writes the two's complement big-endian unscaled value with
// scale as exact decimal text.
func appendDecimal(b, raw []byte, scale int) []byte {
	i := new(big.Int).SetBytes(raw)
	if len(raw) > 0 && raw[0]&0x80 != 0 {
		i.Sub(i, new(big.Int).Lsh(big.NewInt(1), uint(len(raw)*8)))
	}
	neg := i.Sign() < 0
	digits := i.Abs(i).String()
	if neg {
		b = append(b, '-')
	}
	if scale == 0 {
		return append(b, digits...)
	}
	for len(digits) <= scale {
		digits = "0" + digits
	}
	b = append(b, digits[:len(digits)-scale]...)
	b = append(b, '.')
	return append(b, digits[len(digits)-scale:]...)
}

func resolve(s avro.Schema) avro.Schema {
	if ref, ok := s.(*avro.RefSchema); ok {
		return ref.Schema()
	}
	return s
}

// skipAvro reads past one value of s.
func skipAvro(r *avro.Reader, s avro.Schema, budget *int, depth int) {
	if depth > maxAvroDepth {
		r.ReportError("skip", "values nest too deep")
		return
	}
	s = resolve(s)
	switch s.Type() {
	case avro.Null:
	case avro.Boolean:
		r.SkipBool()
	case avro.Int, avro.Enum:
		r.SkipInt()
	case avro.Long:
		r.SkipLong()
	case avro.Float:
		r.SkipFloat()
	case avro.Double:
		r.SkipDouble()
	case avro.String:
		r.SkipString()
	case avro.Bytes:
		r.SkipBytes()
	case avro.Fixed:
		r.SkipNBytes(s.(*avro.FixedSchema).Size())
	case avro.Record:
		for _, f := range s.(*avro.RecordSchema).Fields() {
			if skipAvro(r, f.Type(), budget, depth+1); r.Error != nil {
				return
			}
		}
	case avro.Union:
		types := s.(*avro.UnionSchema).Types()
		idx := r.ReadLong()
		if r.Error != nil {
			return
		}
		if idx < 0 || idx >= int64(len(types)) {
			r.ReportError("skip union", "union index out of range")
			return
		}
		skipAvro(r, types[idx], budget, depth+1)
	case avro.Array, avro.Map:
		for r.Error == nil {
			count, size := r.ReadBlockHeader()
			if count == 0 || r.Error != nil {
				return
			}
			if size > 0 {
				r.SkipNBytes(int(size))
				continue
			}
			if *budget -= int(min(count, maxAvroItems+1)); *budget < 0 {
				r.Error = errBudget
				return
			}
			for range count {
				if s.Type() == avro.Map {
					r.SkipString()
					skipAvro(r, s.(*avro.MapSchema).Values(), budget, depth+1)
				} else {
					skipAvro(r, s.(*avro.ArraySchema).Items(), budget, depth+1)
				}
				if r.Error != nil {
					return
				}
			}
		}
	default:
		r.ReportError("skip", "unsupported type "+string(s.Type()))
	}
}

// appendAvroJSON reads one value of s and appends it as JSON.
func (d *Decoder) appendAvroJSON(b []byte, r *avro.Reader, s avro.Schema, budget *int, depth int) []byte {
	if depth > maxAvroDepth {
		r.ReportError("read", "values nest too deep")
		return b
	}
	s = resolve(s)
	var logical avro.LogicalType
	scale := -1
	if ls, ok := s.(avro.LogicalTypeSchema); ok && ls.Logical() != nil {
		logical = ls.Logical().Type()
		if dec, ok := ls.Logical().(*avro.DecimalLogicalSchema); ok {
			scale = dec.Scale()
		}
	}
	switch s.Type() {
	case avro.Null:
		return append(b, "null"...)
	case avro.Boolean:
		return strconv.AppendBool(b, r.ReadBool())
	case avro.Int:
		v := r.ReadInt()
		if logical == avro.Date {
			return appendScalarJSON(b, partitioner.TypeDate, parquet.Int32Value(v))
		}
		return strconv.AppendInt(b, int64(v), 10)
	case avro.Long:
		v := r.ReadLong()
		switch logical {
		case avro.TimestampMillis, avro.LocalTimestampMillis:
			return appendScalarJSON(b, partitioner.TypeTimestampMillis, parquet.Int64Value(v))
		case avro.TimestampMicros, avro.LocalTimestampMicros:
			return appendScalarJSON(b, partitioner.TypeTimestampMicros, parquet.Int64Value(v))
		}
		return strconv.AppendInt(b, v, 10)
	case avro.Float:
		return appendJSONFloat(b, float64(r.ReadFloat()), 32)
	case avro.Double:
		return appendJSONFloat(b, r.ReadDouble(), 64)
	case avro.String:
		raw := r.ReadBytes()
		if r.Error == nil && !utf8.Valid(raw) {
			r.Error = errBadUTF8
		}
		return appendJSONString(b, raw)
	case avro.Bytes, avro.Fixed:
		var raw []byte
		if s.Type() == avro.Bytes {
			raw = r.ReadBytes()
		} else {
			raw = make([]byte, s.(*avro.FixedSchema).Size())
			r.Read(raw)
		}
		if scale >= 0 {
			b = append(b, '"')
			return append(appendDecimal(b, raw, scale), '"')
		}
		return appendBase64JSON(b, raw)
	case avro.Enum:
		syms := s.(*avro.EnumSchema).Symbols()
		i := r.ReadInt()
		if i < 0 || int(i) >= len(syms) {
			r.ReportError("read enum", "symbol index out of range")
			return b
		}
		return appendJSONString(b, []byte(syms[i]))
	case avro.Record:
		b = append(b, '{')
		for i, f := range s.(*avro.RecordSchema).Fields() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, []byte(f.Name()))
			b = append(b, ':')
			if b = d.appendAvroJSON(b, r, f.Type(), budget, depth+1); r.Error != nil {
				return b
			}
		}
		return append(b, '}')
	case avro.Union:
		types := s.(*avro.UnionSchema).Types()
		idx := r.ReadLong()
		if r.Error != nil {
			return b
		}
		if idx < 0 || idx >= int64(len(types)) {
			r.ReportError("read union", "union index out of range")
			return b
		}
		return d.appendAvroJSON(b, r, types[idx], budget, depth+1)
	case avro.Array, avro.Map:
		isMap := s.Type() == avro.Map
		open, end := byte('['), byte(']')
		if isMap {
			open, end = '{', '}'
		}
		b = append(b, open)
		first := true
		for r.Error == nil {
			count, _ := r.ReadBlockHeader()
			if count == 0 || r.Error != nil {
				break
			}
			if *budget -= int(min(count, maxAvroItems+1)); *budget < 0 {
				r.Error = errBudget
				return b
			}
			for range count {
				if !first {
					b = append(b, ',')
				}
				first = false
				if isMap {
					k := r.ReadBytes()
					if r.Error == nil && !utf8.Valid(k) {
						r.Error = errBadUTF8
					}
					b = appendJSONString(b, k)
					b = append(b, ':')
					b = d.appendAvroJSON(b, r, s.(*avro.MapSchema).Values(), budget, depth+1)
				} else {
					b = d.appendAvroJSON(b, r, s.(*avro.ArraySchema).Items(), budget, depth+1)
				}
				if r.Error != nil {
					return b
				}
			}
		}
		return append(b, end)
	}
	r.ReportError("read", "unsupported type "+string(s.Type()))
	return b
}

var errBadUTF8 = errors.New("invalid UTF-8 in string")
