package confluent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/bufbuild/protocompile"
	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/registry"
)

// protoKind says how a message-typed field is read.
type protoKind uint8

const (
	pkPlain     protoKind = iota
	pkTimestamp           // google.protobuf.Timestamp → timestamp_us
	pkWrapper             // google.protobuf.*Value → the wrapped scalar
)

// protoPlan is a compiled Protobuf writer schema, for one message type.
type protoPlan struct {
	root *node
	msg  *dynamicpb.Message
}

// maxMessageIndexes bounds the message-index array of the header.
const maxMessageIndexes = 64

// readMessageIndexes parses the Confluent message-index array at the start
// of b. It returns the indexes and the header length.
func readMessageIndexes(b []byte) ([]int, int, *decode.Error) {
	count, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return nil, 0, &decode.Error{Reason: ReasonTruncated, Detail: "record ends inside the protobuf message indexes"}
	}
	c := protowire.DecodeZigZag(count)
	if c == 0 {
		return []int{0}, n, nil
	}
	if c < 0 || c > maxMessageIndexes {
		return nil, 0, &decode.Error{Reason: ReasonBadPayload, Detail: fmt.Sprintf("message index count %d", c)}
	}
	idx := make([]int, c)
	off := n
	for i := range idx {
		v, m := protowire.ConsumeVarint(b[off:])
		if m < 0 {
			return nil, 0, &decode.Error{Reason: ReasonTruncated, Detail: "record ends inside the protobuf message indexes"}
		}
		x := protowire.DecodeZigZag(v)
		if x < 0 || x > math.MaxInt32 {
			return nil, 0, &decode.Error{Reason: ReasonBadPayload, Detail: fmt.Sprintf("message index %d", x)}
		}
		idx[i] = int(x)
		off += m
	}
	return idx, off, nil
}

// AppendMessageIndexes appends the Confluent encoding of indexes (the
// header part after the schema id); [0] is the single byte 0.
func AppendMessageIndexes(b []byte, indexes ...int) []byte {
	if len(indexes) == 0 || len(indexes) == 1 && indexes[0] == 0 {
		return append(b, 0)
	}
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(len(indexes))))
	for _, i := range indexes {
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(i)))
	}
	return b
}

// protoFile compiles the .proto source of a registry schema and its
// references.
func (d *Decoder) protoFile(ctx context.Context, id int, rs *registry.Schema) (protoreflect.FileDescriptor, error) {
	files := map[string]string{}
	main := fmt.Sprintf("lakesink-registry/%d.proto", id)
	files[main] = rs.Schema
	var collect func(refs []registry.Reference, depth int) error
	collect = func(refs []registry.Reference, depth int) error {
		if depth > 16 {
			return errors.New("schema references nest too deep")
		}
		for _, ref := range refs {
			if _, ok := files[ref.Name]; ok {
				continue
			}
			s, err := d.spec.Registry.SubjectVersion(ctx, ref.Subject, ref.Version)
			if err != nil {
				if errors.Is(err, registry.ErrNotFound) {
					return fmt.Errorf("reference %s: %w", ref.Name, err)
				}
				return &transientError{fmt.Errorf("reference %s: %w", ref.Name, err)}
			}
			files[ref.Name] = s.Schema
			if err := collect(s.References, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := collect(rs.References, 0); err != nil {
		return nil, err
	}
	comp := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(files),
	})}
	out, err := comp.Compile(ctx, main)
	if err != nil {
		return nil, fmt.Errorf("compile protobuf schema: %w", err)
	}
	return out[0], nil
}

func (d *Decoder) compileProto(ctx context.Context, p *plan, rs *registry.Schema) error {
	fd, err := d.protoFile(ctx, p.id, rs)
	if err != nil {
		return err
	}
	msgs := fd.Messages()
	var md protoreflect.MessageDescriptor
	for i, x := range p.msgIndexes {
		if x >= msgs.Len() {
			return fmt.Errorf("message index %v: no message %d at level %d", p.msgIndexes, x, i)
		}
		md = msgs.Get(x)
		msgs = md.Messages()
	}
	if md == nil {
		return errors.New("protobuf schema has no message")
	}
	root := &node{kind: kGroup, children: buildProto(md, "", map[protoreflect.FullName]bool{md.FullName(): true})}
	cols, err := d.assign(root)
	if err != nil {
		return err
	}
	if p.schema, err = d.schemaFor(cols); err != nil {
		return err
	}
	p.cols = cols
	p.proto = &protoPlan{root: root, msg: dynamicpb.NewMessage(md)}
	return nil
}

var wrapperTypes = map[protoreflect.FullName]bool{
	"google.protobuf.DoubleValue": true, "google.protobuf.FloatValue": true,
	"google.protobuf.Int64Value": true, "google.protobuf.UInt64Value": true,
	"google.protobuf.Int32Value": true, "google.protobuf.UInt32Value": true,
	"google.protobuf.BoolValue": true, "google.protobuf.StringValue": true,
	"google.protobuf.BytesValue": true,
}

func protoScalarType(fd protoreflect.FieldDescriptor) (partitioner.ColumnType, bool) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return partitioner.TypeBool, true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return partitioner.TypeInt32, true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return partitioner.TypeInt64, true
	case protoreflect.FloatKind:
		return partitioner.TypeFloat, true
	case protoreflect.DoubleKind:
		return partitioner.TypeDouble, true
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.EnumKind:
		return partitioner.TypeString, true
	}
	return 0, false
}

func buildProto(md protoreflect.MessageDescriptor, path string, stack map[protoreflect.FullName]bool) []*node {
	fields := md.Fields()
	out := make([]*node, 0, fields.Len())
	for i := range fields.Len() {
		fd := fields.Get(i)
		n := &node{name: string(fd.Name()), path: joinPath(path, string(fd.Name())), fd: fd}
		switch {
		case fd.IsList() || fd.IsMap():
			n.kind, n.typ, n.nullable = kOpaque, partitioner.TypeJSON, true
		case fd.Message() != nil:
			n.nullable = true
			full := fd.Message().FullName()
			switch {
			case full == "google.protobuf.Timestamp":
				n.kind, n.typ, n.proto = kScalar, partitioner.TypeTimestampMicros, pkTimestamp
			case wrapperTypes[full]:
				inner := fd.Message().Fields().ByName("value")
				n.kind, n.proto = kScalar, pkWrapper
				n.typ, _ = protoScalarType(inner)
			case stack[full] || len(stack) > 64:
				n.kind, n.typ = kOpaque, partitioner.TypeJSON
			default:
				stack[full] = true
				n.kind = kGroup
				n.children = buildProto(fd.Message(), n.path, stack)
				delete(stack, full)
			}
		default:
			n.kind = kScalar
			n.typ, _ = protoScalarType(fd)
			n.nullable = fd.HasPresence()
		}
		out = append(out, n)
	}
	return out
}

func (d *Decoder) decodeProto(p *protoPlan, body []byte) *decode.Error {
	if err := (proto.UnmarshalOptions{}).Unmarshal(body, p.msg); err != nil {
		return &decode.Error{Reason: ReasonBadPayload, Detail: "protobuf: " + err.Error()}
	}
	return d.readProto(p.msg, p.root)
}

func (d *Decoder) readProto(m protoreflect.Message, n *node) *decode.Error {
	for _, c := range n.children {
		if !c.used {
			continue
		}
		fd := c.fd
		switch c.kind {
		case kOpaque:
			start := len(d.arena)
			var err error
			if d.arena, err = appendProtoJSON(d.arena, fd, m.Get(fd)); err != nil {
				return &decode.Error{Reason: ReasonBadPayload, Field: c.path, Detail: err.Error()}
			}
			d.emitJSON(c, start)
		case kGroup:
			if !m.Has(fd) {
				continue
			}
			sub := m.Get(fd).Message()
			if c.wantsJSON() {
				start := len(d.arena)
				var err error
				if d.arena, err = appendMessageJSON(d.arena, sub); err != nil {
					return &decode.Error{Reason: ReasonBadPayload, Field: c.path, Detail: err.Error()}
				}
				d.emitJSON(c, start)
				continue
			}
			if de := d.readProto(sub, c); de != nil {
				return de
			}
		case kScalar:
			if fd.HasPresence() && !m.Has(fd) {
				continue
			}
			v := m.Get(fd)
			vfd := fd
			switch c.proto {
			case pkTimestamp:
				ts := v.Message()
				f := ts.Descriptor().Fields()
				sec, nanos := ts.Get(f.ByName("seconds")).Int(), ts.Get(f.ByName("nanos")).Int()
				if sec > math.MaxInt64/1_000_000-1 || sec < math.MinInt64/1_000_000+1 || nanos < 0 || nanos > 999_999_999 {
					return &decode.Error{Reason: decode.ReasonOutOfRange, Field: c.path, Detail: "timestamp out of range"}
				}
				if de := d.emit(c, parquet.Int64Value(sec*1_000_000+nanos/1_000)); de != nil {
					return de
				}
				continue
			case pkWrapper:
				w := v.Message()
				vfd = w.Descriptor().Fields().ByName("value")
				v = w.Get(vfd)
			}
			pv, de := d.protoScalar(c, vfd, v)
			if de != nil {
				return de
			}
			if de := d.emit(c, pv); de != nil {
				return de
			}
		}
	}
	return nil
}

func (d *Decoder) protoScalar(n *node, fd protoreflect.FieldDescriptor, v protoreflect.Value) (parquet.Value, *decode.Error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return parquet.BooleanValue(v.Bool()), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return parquet.Int32Value(int32(v.Int())), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return parquet.Int64Value(v.Int()), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		u := v.Uint()
		if u > math.MaxInt64 {
			return parquet.Value{}, &decode.Error{Reason: decode.ReasonOutOfRange, Field: n.path, Detail: strconv.FormatUint(u, 10) + " does not fit int64"}
		}
		return parquet.Int64Value(int64(u)), nil
	case protoreflect.FloatKind:
		return parquet.FloatValue(float32(v.Float())), nil
	case protoreflect.DoubleKind:
		return parquet.DoubleValue(v.Float()), nil
	case protoreflect.StringKind:
		start := len(d.arena)
		d.arena = append(d.arena, v.String()...)
		return stringValue(n.path, d.arena[start:])
	case protoreflect.BytesKind:
		start := len(d.arena)
		d.arena = appendBase64(d.arena, v.Bytes())
		return parquet.ByteArrayValue(d.arena[start:]), nil
	case protoreflect.EnumKind:
		start := len(d.arena)
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			d.arena = append(d.arena, ev.Name()...)
		} else {
			d.arena = strconv.AppendInt(d.arena, int64(v.Enum()), 10)
		}
		return parquet.ByteArrayValue(d.arena[start:]), nil
	}
	return parquet.Value{}, &decode.Error{Reason: ReasonBadPayload, Field: n.path, Detail: "unsupported kind " + fd.Kind().String()}
}

var protoJSON = protojson.MarshalOptions{UseProtoNames: true}

// appendMessageJSON appends m as compact protojson.
func appendMessageJSON(b []byte, m protoreflect.Message) ([]byte, error) {
	raw, err := protoJSON.Marshal(m.Interface())
	if err != nil {
		return b, err
	}
	return appendCompact(b, raw)
}

func appendCompact(b, raw []byte) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, raw); err != nil {
		return b, err
	}
	return buf.Bytes(), nil
}

// appendProtoJSON renders a list or map field as JSON.
func appendProtoJSON(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) ([]byte, error) {
	var err error
	switch {
	case fd.IsList():
		l := v.List()
		b = append(b, '[')
		for i := range l.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendProtoSingular(b, fd, l.Get(i)); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case fd.IsMap():
		m := v.Map()
		b = append(b, '{')
		first := true
		m.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, []byte(k.String()))
			b = append(b, ':')
			b, err = appendProtoSingular(b, fd.MapValue(), mv)
			return err == nil
		})
		return append(b, '}'), err
	}
	return appendProtoSingular(b, fd, v)
}

func appendProtoSingular(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) ([]byte, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return appendMessageJSON(b, v.Message())
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool()), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case protoreflect.FloatKind:
		return appendJSONFloat(b, v.Float(), 32), nil
	case protoreflect.DoubleKind:
		return appendJSONFloat(b, v.Float(), 64), nil
	case protoreflect.StringKind:
		return appendJSONString(b, []byte(v.String())), nil
	case protoreflect.BytesKind:
		return appendBase64JSON(b, v.Bytes()), nil
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return appendJSONString(b, []byte(ev.Name())), nil
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10), nil
	}
	return b, fmt.Errorf("unsupported kind %s", fd.Kind())
}
