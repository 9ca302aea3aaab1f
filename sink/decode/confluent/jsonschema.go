package confluent

// JSON Schema streams (format json_schema).
//
// # Values
//
// A value is either Confluent-framed — magic byte 0, the 4-byte big-endian
// schema id, then the JSON text, as Confluent's KafkaJsonSchemaSerializer
// writes it — or, when Spec.Subject is set, a plain JSON object (first byte
// '{' or JSON whitespace). A plain value is read with the latest version of
// the subject, asked once per process (see Subject) and then treated
// exactly like a value framed with that version's id. Any other first byte
// is ReasonBadMagic. The JSON body is decoded by package decode's
// schema-directed scanner built for the schema's columns, so the hot path
// is the same as for format json, and a body that does not fit gets that
// package's reasons (bad_json, wrong_type, missing_field, out_of_range,
// bad_utf8, bad_time); an empty body after the header is ReasonTruncated.
// The registry schema must have schemaType JSON; any other type is
// ReasonIncompatible for every record of that id.
//
// # Columns from a JSON Schema (draft-07 / 2019-09 / 2020-12 subset)
//
//	object with properties         flattened: one column per leaf, dotted path ("device.id"), in property order
//	object without properties      json (a map: additionalProperties, patternProperties)
//	string                         string (any format but the two below, enum of strings; decimals written as strings stay exact)
//	string, format date-time       timestamp_us (RFC 3339 text; µs keep what producers usually send)
//	string, format date            date
//	integer                        int64
//	number, [integer, number]      double
//	boolean                        boolean
//	enum / const without a type    string, int64, double or bool when every value has that type, else json
//	array, other type lists        json
//	oneOf / anyOf                  the branch when it is one branch plus {"type": "null"}, else json
//	allOf                          its members merged when they are objects (properties and required joined), the one member otherwise, else json
//	{} and true (any value)        json
//	null, false                    no column
//	$ref "#", "#/definitions/X",   resolved (keywords next to $ref are ignored, as in draft-07); a $ref back
//	  "#/$defs/X", "<reference>#…"   into itself (recursive types) is json; <reference> names one of the
//	                                  schema's registry references
//
// A column is required when its property is listed in "required", its type
// does not allow null, and the same holds for every enclosing object;
// otherwise it is nullable. Property names that are empty or contain a dot
// cannot be addressed by a dotted path: such a schema is ReasonIncompatible.
// Properties a value has beyond the schema's (additionalProperties) are not
// stored. Numbers are doubles: JSON Schema has no decimal type, and a
// producer that needs exact decimals writes them as strings.
//
// With a fixed column list (Spec.Fields) the schema only vets the columns:
// a required column whose path the schema lacks, or whose JSON type cannot
// fill the column (an object for a string column, a string for an int64
// column...), makes the schema ReasonIncompatible.
//
// # Event time
//
// Spec.TimePath must be a property of the schema. A string property
// (date-time or not) is read as RFC 3339, an integer or number property by
// Spec.TimeFormat (unix_ms or unix_s; rfc3339 there is incompatible), a
// property of any type by Spec.TimeFormat; a date, boolean or object
// property is ReasonIncompatible.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/registry"
)

// Limits on what a JSON Schema may make the compiler do.
const (
	maxJSColumns = 10000 // columns of one derived schema ($ref fan-out)
	maxJSNodes   = 50000 // properties expanded while deriving them
	maxJSRefs    = 64    // registry references of one schema, transitively
)

// Subject pins the latest version of a registry subject for the plain JSON
// values of a json_schema stream. Share one per stream: it is safe for
// concurrent use, and every partition of the stream then agrees on the
// version. The subject is asked once, by the first plain value after
// start-up; the answer is kept for the life of the process, so a version
// registered later is used after the next restart (framed values name
// their version themselves and are not affected).
type Subject struct {
	name string
	mu   sync.Mutex
	id   int
}

// NewSubject returns the pin for subject name, not yet resolved.
func NewSubject(name string) *Subject { return &Subject{name: name} }

// Name returns the subject name.
func (s *Subject) Name() string { return s.name }

// resolve returns the pinned schema id, asking reg for the latest version on
// first use. A subject the registry does not know is a transient error as
// much as an outage: the values are fine, the registry lacks their schema,
// so the partition waits for it rather than dead-letter every record.
func (s *Subject) resolve(ctx context.Context, reg Registry) (int, error) {
	s.mu.Lock()
	id := s.id
	s.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	rs, err := reg.SubjectVersion(ctx, s.name, -1)
	if err != nil {
		return 0, fmt.Errorf("latest schema of subject %s: %w", s.name, err)
	}
	if rs.ID <= 0 {
		return 0, fmt.Errorf("latest schema of subject %s: registry answered without an id", s.name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id == 0 {
		s.id = rs.ID
	}
	return s.id, nil
}

// isPlainJSON reports whether a value's first byte starts a plain JSON
// object (possibly after whitespace) rather than a Confluent header.
func isPlainJSON(b byte) bool {
	return b == '{' || b == ' ' || b == '\t' || b == '\n' || b == '\r'
}

// jsField is one property of a JSON Schema, as far as columns go.
type jsField struct {
	name, path string
	kind       nodeKind               // kScalar, kGroup, kOpaque or kNull
	typ        partitioner.ColumnType // kScalar: natural column type; kOpaque: TypeJSON
	jtype      string                 // kScalar: JSON type (string, integer, number, boolean)
	nullable   bool                   // the value may be null
	required   bool                   // listed in the enclosing object's "required"
	children   []*jsField             // kGroup, in property order
}

func (f *jsField) find(path string) *jsField {
	cur := f
	for seg := range strings.SplitSeq(path, ".") {
		var next *jsField
		for _, c := range cur.children {
			if c.name == seg {
				next = c
			}
		}
		if next == nil {
			return nil
		}
		cur = next
	}
	return cur
}

// jsDoc is one schema document: the registry schema or one it references.
type jsDoc struct {
	root *jsValue
	refs map[string]*jsDoc // reference name -> document
}

// jsCompiler turns a JSON Schema into a jsField tree.
type jsCompiler struct {
	expanding []*jsValue // schemas behind $refs being expanded (cycle check)
	leaves    int        // columns made
	nodes     int        // fields built, bounded against $ref fan-out
}

// parseJSONSchema parses a registry schema and, through reg, the schemas it
// references. Errors fetching references are transient (*transientError).
func parseJSONSchema(ctx context.Context, reg Registry, rs *registry.Schema) (*jsField, error) {
	budget := maxJSRefs
	doc, err := loadJSDoc(ctx, reg, rs.Schema, rs.References, &budget, map[string]*jsDoc{})
	if err != nil {
		return nil, err
	}
	return compileJSDoc(doc)
}

// compileJSDoc builds the field tree of a parsed document, whose root must
// be an object schema.
func compileJSDoc(doc *jsDoc) (*jsField, error) {
	c := &jsCompiler{expanding: []*jsValue{doc.root}}
	root, err := c.build(doc, doc.root, "", "", 0)
	if err != nil {
		return nil, err
	}
	if root.kind != kGroup {
		return nil, fmt.Errorf("json schema root is not an object with properties")
	}
	return root, nil
}

func loadJSDoc(ctx context.Context, reg Registry, text string, refs []registry.Reference, budget *int, seen map[string]*jsDoc) (*jsDoc, error) {
	root, err := parseJSONDoc(text)
	if err != nil {
		return nil, fmt.Errorf("parse json schema: %w", err)
	}
	doc := &jsDoc{root: root, refs: map[string]*jsDoc{}}
	for _, r := range refs {
		key := fmt.Sprintf("%s\x00%d", r.Subject, r.Version)
		if d, ok := seen[key]; ok {
			doc.refs[r.Name] = d
			continue
		}
		if *budget--; *budget < 0 {
			return nil, fmt.Errorf("more than %d schema references", maxJSRefs)
		}
		if reg == nil {
			return nil, fmt.Errorf("reference %s: no registry", r.Name)
		}
		rs, err := reg.SubjectVersion(ctx, r.Subject, r.Version)
		if err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return nil, fmt.Errorf("reference %s: %w", r.Name, err)
			}
			return nil, &transientError{fmt.Errorf("reference %s: %w", r.Name, err)}
		}
		// Register before loading so that references back resolve.
		d := &jsDoc{}
		seen[key] = d
		sub, err := loadJSDoc(ctx, reg, rs.Schema, rs.References, budget, seen)
		if err != nil {
			return nil, err
		}
		*d = *sub
		doc.refs[r.Name] = d
	}
	return doc, nil
}

// resolve follows a $ref from doc.
func (c *jsCompiler) resolve(doc *jsDoc, ref string) (*jsDoc, *jsValue, error) {
	name, frag, _ := strings.Cut(ref, "#")
	target := doc
	if name != "" {
		d, ok := doc.refs[name]
		if !ok || d.root == nil {
			return nil, nil, fmt.Errorf("$ref %q: not a schema reference of this schema", ref)
		}
		target = d
	}
	v, err := target.root.pointer(frag)
	if err != nil {
		return nil, nil, fmt.Errorf("$ref %q: %w", ref, err)
	}
	return target, v, nil
}

// build returns the field of schema s (in doc) for the property name at
// path ("" for the root).
func (c *jsCompiler) build(doc *jsDoc, s *jsValue, name, path string, depth int) (*jsField, error) {
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("%s: schema nested deeper than %d levels", pathOrRoot(path), maxSchemaDepth)
	}
	if c.nodes++; c.nodes > maxJSNodes {
		return nil, fmt.Errorf("json schema expands to more than %d properties", maxJSNodes)
	}
	f := &jsField{name: name, path: path}
	opaque := func(nullable bool) (*jsField, error) {
		f.kind, f.typ, f.nullable = kOpaque, partitioner.TypeJSON, nullable
		return c.leaf(f)
	}
	switch s.kind {
	case jsBool:
		if !s.b {
			f.kind = kNull
			return f, nil
		}
		return opaque(true)
	case jsObject:
	default:
		return nil, fmt.Errorf("%s: schema is a %s, want an object or a boolean", pathOrRoot(path), s.kind)
	}
	if ref := s.get("$ref"); ref != nil {
		if ref.kind != jsString {
			return nil, fmt.Errorf("%s: $ref is a %s, want a string", pathOrRoot(path), ref.kind)
		}
		tdoc, target, err := c.resolve(doc, ref.str)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pathOrRoot(path), err)
		}
		if slices.Contains(c.expanding, target) {
			return opaque(true) // recursive type
		}
		c.expanding = append(c.expanding, target)
		defer func() { c.expanding = c.expanding[:len(c.expanding)-1] }()
		return c.build(tdoc, target, name, path, depth+1)
	}
	if all := s.get("allOf"); all != nil {
		return c.buildAllOf(doc, s, all, f, depth)
	}
	for _, kw := range []string{"oneOf", "anyOf"} {
		alts := s.get(kw)
		if alts == nil {
			continue
		}
		if alts.kind != jsArray {
			return nil, fmt.Errorf("%s: %s is a %s, want an array", pathOrRoot(path), kw, alts.kind)
		}
		var nonNull []*jsValue
		nullable := false
		for _, a := range alts.vals {
			if isNullSchema(a) {
				nullable = true
			} else {
				nonNull = append(nonNull, a)
			}
		}
		if len(nonNull) == 1 && nullable {
			g, err := c.build(doc, nonNull[0], name, path, depth+1)
			if err != nil {
				return nil, err
			}
			g.nullable = true
			return g, nil
		}
		return opaque(true)
	}

	types, nullable, err := schemaTypes(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pathOrRoot(path), err)
	}
	f.nullable = nullable
	if len(types) == 0 {
		// No type: what the other keywords imply.
		switch {
		case s.get("properties") != nil:
			types = []string{"object"}
		case s.get("enum") != nil || s.get("const") != nil:
			t, null := enumType(s)
			f.nullable = f.nullable || null
			if t == "" {
				return opaque(true)
			}
			types = []string{t}
		case nullable:
			f.kind = kNull
			return f, nil
		default:
			return opaque(true)
		}
	}
	if len(types) == 2 && slices.Contains(types, "integer") && slices.Contains(types, "number") {
		types = []string{"number"}
	}
	if len(types) > 1 {
		return opaque(true)
	}
	switch types[0] {
	case "object":
		props := s.get("properties")
		if props == nil {
			return opaque(f.nullable)
		}
		if props.kind != jsObject {
			return nil, fmt.Errorf("%s: properties is a %s, want an object", pathOrRoot(path), props.kind)
		}
		req, err := requiredSet(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pathOrRoot(path), err)
		}
		f.kind = kGroup
		for i, k := range props.keys {
			if props.get(k) != props.vals[i] {
				continue // a repeated name: the last one counts
			}
			if k == "" || strings.Contains(k, ".") {
				return nil, fmt.Errorf("%s: property name %q cannot be a column path (empty or contains a dot)", pathOrRoot(path), k)
			}
			child, err := c.build(doc, props.vals[i], k, joinPath(path, k), depth+1)
			if err != nil {
				return nil, err
			}
			child.required = req[k]
			f.children = append(f.children, child)
		}
		return f, nil
	case "array":
		return opaque(f.nullable)
	case "string":
		f.kind, f.jtype, f.typ = kScalar, "string", partitioner.TypeString
		if ft := s.get("format"); ft != nil && ft.kind == jsString {
			switch ft.str {
			case "date-time":
				f.typ = partitioner.TypeTimestampMicros
			case "date":
				f.typ = partitioner.TypeDate
			}
		}
	case "integer":
		f.kind, f.jtype, f.typ = kScalar, "integer", partitioner.TypeInt64
	case "number":
		f.kind, f.jtype, f.typ = kScalar, "number", partitioner.TypeDouble
	case "boolean":
		f.kind, f.jtype, f.typ = kScalar, "boolean", partitioner.TypeBool
	default:
		return nil, fmt.Errorf("%s: unknown type %q", pathOrRoot(path), types[0])
	}
	return c.leaf(f)
}

// leaf counts a column-making field against maxJSColumns.
func (c *jsCompiler) leaf(f *jsField) (*jsField, error) {
	if c.leaves++; c.leaves > maxJSColumns {
		return nil, fmt.Errorf("json schema has more than %d columns", maxJSColumns)
	}
	return f, nil
}

// buildAllOf merges allOf members that are objects with properties (the
// keywords next to allOf count as one more member): their properties are
// joined, the first definition of a name wins, and a name listed in any
// member's "required" is required. Members that only say "type: object",
// list required names or annotate add nothing else. A single remaining
// member is that member's field; any other mix is json.
func (c *jsCompiler) buildAllOf(doc *jsDoc, s, all *jsValue, f *jsField, depth int) (*jsField, error) {
	if all.kind != jsArray {
		return nil, fmt.Errorf("%s: allOf is a %s, want an array", pathOrRoot(f.path), all.kind)
	}
	rest := &jsValue{kind: jsObject}
	for i, k := range s.keys {
		if k != "allOf" {
			rest.keys = append(rest.keys, k)
			rest.vals = append(rest.vals, s.vals[i])
		}
	}
	req := map[string]bool{}
	var built []*jsField
	for _, m := range append([]*jsValue{rest}, all.vals...) {
		if m.kind == jsObject {
			r, err := requiredSet(m)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", pathOrRoot(f.path), err)
			}
			for k := range r {
				req[k] = true
			}
		}
		if trivialInAllOf(m) {
			continue
		}
		g, err := c.build(doc, m, f.name, f.path, depth+1)
		if err != nil {
			return nil, err
		}
		built = append(built, g)
	}
	if len(built) == 1 && built[0].kind != kGroup {
		return built[0], nil
	}
	f.nullable = len(built) > 0
	for _, g := range built {
		if g.kind != kGroup {
			f.kind, f.typ, f.nullable, f.children = kOpaque, partitioner.TypeJSON, true, nil
			return c.leaf(f)
		}
		f.nullable = f.nullable && g.nullable
		for _, ch := range g.children {
			if i := slices.IndexFunc(f.children, func(x *jsField) bool { return x.name == ch.name }); i >= 0 {
				f.children[i].required = f.children[i].required || ch.required
				continue
			}
			f.children = append(f.children, ch)
		}
	}
	if len(built) == 0 {
		f.kind, f.typ, f.nullable = kOpaque, partitioner.TypeJSON, true
		return c.leaf(f)
	}
	f.kind = kGroup
	for _, ch := range f.children {
		ch.required = ch.required || req[ch.name]
	}
	return f, nil
}

// trivialInAllOf reports whether allOf member m constrains nothing that
// makes columns: true, or an object schema (type absent or object) without
// properties or other structure.
func trivialInAllOf(m *jsValue) bool {
	if m.kind == jsBool {
		return m.b
	}
	if m.kind != jsObject {
		return false
	}
	for _, kw := range []string{"properties", "enum", "const", "$ref", "oneOf", "anyOf", "allOf", "items"} {
		if m.get(kw) != nil {
			return false
		}
	}
	types, _, err := schemaTypes(m)
	return err == nil && (len(types) == 0 || len(types) == 1 && types[0] == "object")
}

// isNullSchema reports whether s admits only null.
func isNullSchema(s *jsValue) bool {
	t := s.get("type")
	return t != nil && (t.kind == jsString && t.str == "null" ||
		t.kind == jsArray && len(t.vals) == 1 && t.vals[0].kind == jsString && t.vals[0].str == "null")
}

// schemaTypes returns the non-null types of s's "type" and whether null is
// one of them.
func schemaTypes(s *jsValue) (types []string, nullable bool, err error) {
	t := s.get("type")
	if t == nil {
		return nil, false, nil
	}
	var names []*jsValue
	switch t.kind {
	case jsString:
		names = []*jsValue{t}
	case jsArray:
		names = t.vals
	default:
		return nil, false, fmt.Errorf("type is a %s, want a string or an array", t.kind)
	}
	for _, n := range names {
		if n.kind != jsString {
			return nil, false, fmt.Errorf("type lists a %s, want type names", n.kind)
		}
		switch n.str {
		case "null":
			nullable = true
		case "object", "array", "string", "integer", "number", "boolean":
			if !slices.Contains(types, n.str) {
				types = append(types, n.str)
			}
		default:
			return nil, false, fmt.Errorf("unknown type %q", n.str)
		}
	}
	if len(types) == 0 && !nullable {
		return nil, false, errors.New("type is an empty list")
	}
	return types, nullable, nil
}

// enumType returns the JSON type every value of s's enum or const has ("" if
// they differ or are objects/arrays) and whether null is among them.
func enumType(s *jsValue) (string, bool) {
	var vals []*jsValue
	if e := s.get("enum"); e != nil && e.kind == jsArray {
		vals = e.vals
	}
	if c := s.get("const"); c != nil {
		vals = append(vals, c)
	}
	typ, null := "", false
	for _, v := range vals {
		var t string
		switch v.kind {
		case jsNull:
			null = true
			continue
		case jsString:
			t = "string"
		case jsBool:
			t = "boolean"
		case jsNumber:
			t = "number"
			if !strings.ContainsAny(v.str, ".eE") {
				t = "integer"
			}
		default:
			return "", null
		}
		switch {
		case typ == "" || typ == t:
			typ = t
		case typ == "integer" && t == "number", typ == "number" && t == "integer":
			typ = "number"
		default:
			return "", null
		}
	}
	return typ, null
}

// requiredSet returns the names listed in s's "required".
func requiredSet(s *jsValue) (map[string]bool, error) {
	r := s.get("required")
	if r == nil {
		return nil, nil
	}
	if r.kind != jsArray {
		return nil, fmt.Errorf("required is a %s, want an array of names", r.kind)
	}
	set := make(map[string]bool, len(r.vals))
	for _, v := range r.vals {
		if v.kind != jsString {
			return nil, fmt.Errorf("required lists a %s, want names", v.kind)
		}
		set[v.str] = true
	}
	return set, nil
}

func pathOrRoot(path string) string {
	if path == "" {
		return "schema root"
	}
	return "property " + path
}

// jsonSchemaColumns returns the derived columns of root: every leaf in
// schema order, named by its dotted path.
func jsonSchemaColumns(root *jsField) []partitioner.Column {
	var cols []partitioner.Column
	var walk func(f *jsField, optional bool)
	walk = func(f *jsField, optional bool) {
		optional = optional || f.nullable || !f.required
		switch f.kind {
		case kScalar, kOpaque:
			cols = append(cols, partitioner.Column{Name: f.path, Type: f.typ, Required: !optional})
		case kGroup:
			for _, c := range f.children {
				walk(c, optional)
			}
		}
	}
	for _, c := range root.children {
		walk(c, false)
	}
	return cols
}

// jsonFills reports whether values of field f can fill a column of type t
// as package decode converts JSON values.
func jsonFills(f *jsField, t partitioner.ColumnType) bool {
	if t == partitioner.TypeJSON || f.kind == kOpaque {
		return true
	}
	if f.kind != kScalar {
		return false
	}
	switch t {
	case partitioner.TypeString, partitioner.TypeDate:
		return f.jtype == "string"
	case partitioner.TypeInt32, partitioner.TypeInt64:
		return f.jtype == "integer"
	case partitioner.TypeDouble, partitioner.TypeFloat:
		return f.jtype == "integer" || f.jtype == "number"
	case partitioner.TypeBool:
		return f.jtype == "boolean"
	case partitioner.TypeTimestampMillis, partitioner.TypeTimestampMicros:
		return f.jtype == "string" || f.jtype == "integer"
	}
	return false
}

// compileJSONSchema compiles registry schema rs into p: its columns (fixed
// or derived), the event-time format, and a decode.Decoder for the body.
func (d *Decoder) compileJSONSchema(ctx context.Context, p *plan, rs *registry.Schema) error {
	root, err := parseJSONSchema(ctx, d.spec.Registry, rs)
	if err != nil {
		return err
	}
	var fields []decode.Field
	var cols []partitioner.Column
	if d.fixed != nil {
		cols = d.fixed.Columns()
		for _, f := range d.spec.Fields {
			path := f.Path
			if path == "" {
				path = f.Column.Name
			}
			n := root.find(path)
			if n == nil || n.kind == kNull {
				if f.Column.Required {
					return fmt.Errorf("required column %s: property %s not in the json schema", f.Column.Name, path)
				}
			} else if !jsonFills(n, f.Column.Type) {
				return fmt.Errorf("column %s (%v): property %s is %s", f.Column.Name, f.Column.Type, path, jsKindName(n))
			}
			fields = append(fields, decode.Field{Column: f.Column, Path: path})
		}
	} else {
		cols = jsonSchemaColumns(root)
		if len(cols) == 0 {
			return errors.New("json schema has no properties to store")
		}
		for _, c := range cols {
			fields = append(fields, decode.Field{Column: c, Path: c.Name})
		}
	}
	spec := decode.Spec{Fields: fields, TimePath: d.spec.TimePath}
	if d.spec.TimePath != "" {
		n := root.find(d.spec.TimePath)
		if n == nil || n.kind == kNull {
			return fmt.Errorf("time field %s not in the json schema", d.spec.TimePath)
		}
		switch {
		case n.kind == kOpaque:
			spec.TimeFormat = d.spec.TimeFormat
		case n.kind == kScalar && n.jtype == "string" && n.typ != partitioner.TypeDate:
			spec.TimeFormat = decode.RFC3339
		case n.kind == kScalar && (n.jtype == "integer" || n.jtype == "number") && d.spec.TimeFormat != decode.RFC3339:
			spec.TimeFormat = d.spec.TimeFormat
		default:
			return fmt.Errorf("time field %s is %s, want a date-time string or a number (time.format %v)", d.spec.TimePath, jsKindName(n), d.spec.TimeFormat)
		}
	}
	dec, err := decode.New(spec)
	if err != nil {
		return err
	}
	if p.schema, err = d.schemaFor(cols); err != nil {
		return err
	}
	p.cols = cols
	p.json = dec
	return nil
}

func jsKindName(f *jsField) string {
	switch f.kind {
	case kGroup:
		return "an object"
	case kOpaque:
		return "a json value"
	case kNull:
		return "null"
	}
	if f.typ == partitioner.TypeDate {
		return "a date string"
	}
	return "a JSON " + f.jtype
}

// decodeJSON decodes a value of a JSONSchema stream (see the file comment):
// framed with a schema id, or plain JSON read with Spec.Subject's pinned
// latest schema.
func (d *Decoder) decodeJSON(value []byte, recordTime time.Time) ([]parquet.Value, time.Time, error) {
	var id int
	body := value
	switch {
	case value[0] == 0:
		if len(value) < HeaderSize {
			return nil, time.Time{}, &decode.Error{Reason: ReasonTruncated, Detail: fmt.Sprintf("record of %d bytes ends inside the 5-byte header", len(value))}
		}
		id = int(int32(binary.BigEndian.Uint32(value[1:HeaderSize])))
		if body = value[HeaderSize:]; len(body) == 0 {
			return nil, time.Time{}, &decode.Error{Reason: ReasonTruncated, Detail: "record ends after the header"}
		}
	case d.spec.Subject != nil && isPlainJSON(value[0]):
		if d.pinned == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), d.spec.LookupTimeout)
			pid, err := d.spec.Subject.resolve(ctx, d.spec.Registry)
			cancel()
			if err != nil {
				return nil, time.Time{}, err // transient: the partition waits
			}
			d.pinned = pid
		}
		id = d.pinned
	case isPlainJSON(value[0]):
		return nil, time.Time{}, &decode.Error{Reason: ReasonBadMagic, Detail: "plain JSON without the Confluent header; set the stream's subject to read such values"}
	default:
		return nil, time.Time{}, &decode.Error{Reason: ReasonBadMagic, Detail: fmt.Sprintf("magic byte %#02x, want 0x00 or a JSON object", value[0])}
	}
	p := d.last
	if p == nil || p.id != id {
		var err error
		if p, err = d.plan(planKey{id: id}, nil); err != nil {
			return nil, time.Time{}, err
		}
		if p.err != nil {
			return nil, time.Time{}, p.err
		}
	}
	row, eventTime, err := p.json.Decode(body, recordTime)
	if err != nil {
		return nil, time.Time{}, err
	}
	d.last = p
	return row, eventTime, nil
}
