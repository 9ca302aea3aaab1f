package confluent

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/lakesink/lakesink/partitioner"
)

// columnsOf compiles a JSON Schema document without a registry.
func columnsOf(text string) ([]partitioner.Column, error) {
	root, err := parseJSONDoc(text)
	if err != nil {
		return nil, err
	}
	f, err := compileJSDoc(&jsDoc{root: root})
	if err != nil {
		return nil, err
	}
	return jsonSchemaColumns(f), nil
}

const (
	tS   = partitioner.TypeString
	tI64 = partitioner.TypeInt64
	tF64 = partitioner.TypeDouble
	tB   = partitioner.TypeBool
	tTS  = partitioner.TypeTimestampMicros
	tD   = partitioner.TypeDate
	tJ   = partitioner.TypeJSON
)

func req(name string, t partitioner.ColumnType) partitioner.Column {
	return partitioner.Column{Name: name, Type: t, Required: true}
}

func opt(name string, t partitioner.ColumnType) partitioner.Column {
	return partitioner.Column{Name: name, Type: t}
}

func TestJSONSchemaColumns(t *testing.T) {
	cases := []struct {
		name   string
		schema string
		want   []partitioner.Column
		err    string
	}{
		{"scalars in property order, required and not", `{"type":"object","properties":{
			"s":{"type":"string"},"i":{"type":"integer"},"n":{"type":"number"},"b":{"type":"boolean"}},
			"required":["i","b"]}`,
			[]partitioner.Column{opt("s", tS), req("i", tI64), opt("n", tF64), req("b", tB)}, ""},
		{"nullable by type list", `{"type":"object","properties":{"a":{"type":["string","null"]},"b":{"type":["null","integer"]}},"required":["a","b"]}`,
			[]partitioner.Column{opt("a", tS), opt("b", tI64)}, ""},
		{"formats", `{"type":"object","properties":{"at":{"type":"string","format":"date-time"},"day":{"type":"string","format":"date"},
			"id":{"type":"string","format":"uuid"},"amount":{"type":"string","format":"decimal"}},"required":["at","day"]}`,
			[]partitioner.Column{req("at", tTS), req("day", tD), opt("id", tS), opt("amount", tS)}, ""},
		{"enums", `{"type":"object","properties":{
			"kind":{"type":"string","enum":["VIEW","BUY"]},"untyped":{"enum":["a","b"]},"withnull":{"enum":["a",null]},
			"nums":{"enum":[1,2]},"mixed":{"enum":["a",1]},"c":{"const":true}},
			"required":["kind","untyped","withnull","nums","mixed","c"]}`,
			[]partitioner.Column{req("kind", tS), req("untyped", tS), opt("withnull", tS), req("nums", tI64), opt("mixed", tJ), req("c", tB)}, ""},
		{"arrays and maps are json", `{"type":"object","properties":{
			"tags":{"type":"array","items":{"type":"string"}},
			"attrs":{"type":"object","additionalProperties":{"type":"integer"}},
			"free":{}, "anything":true},"required":["tags","attrs","free"]}`,
			[]partitioner.Column{req("tags", tJ), req("attrs", tJ), opt("free", tJ), opt("anything", tJ)}, ""},
		{"nested objects flatten, optional parents make optional children", `{"type":"object","properties":{
			"device":{"type":"object","properties":{"id":{"type":"string"},"geo":{"type":"object","properties":{"lat":{"type":"number"}},"required":["lat"]}},"required":["id","geo"]},
			"meta":{"type":"object","properties":{"k":{"type":"string"}},"required":["k"]}},
			"required":["device"]}`,
			[]partitioner.Column{req("device.id", tS), req("device.geo.lat", tF64), opt("meta.k", tS)}, ""},
		{"nullable parent", `{"type":"object","properties":{"d":{"type":["object","null"],"properties":{"x":{"type":"integer"}},"required":["x"]}},"required":["d"]}`,
			[]partitioner.Column{opt("d.x", tI64)}, ""},
		{"$ref to definitions and $defs", `{"type":"object","properties":{
			"a":{"$ref":"#/definitions/Dev"},"b":{"$ref":"#/$defs/Ts"}},"required":["a","b"],
			"definitions":{"Dev":{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}},
			"$defs":{"Ts":{"type":"string","format":"date-time"}}}`,
			[]partitioner.Column{req("a.id", tS), req("b", tTS)}, ""},
		{"$ref with escaped pointer", `{"type":"object","properties":{"a":{"$ref":"#/definitions/a~1b"}},
			"definitions":{"a/b":{"type":"integer"}}}`,
			[]partitioner.Column{opt("a", tI64)}, ""},
		{"recursive $ref is json", `{"type":"object","properties":{"name":{"type":"string"},
			"node":{"$ref":"#/definitions/Node"}, "self":{"$ref":"#"}},
			"definitions":{"Node":{"type":"object","properties":{"v":{"type":"integer"},"next":{"$ref":"#/definitions/Node"}}}}}`,
			[]partitioner.Column{opt("name", tS), opt("node.v", tI64), opt("node.next", tJ), opt("self", tJ)}, ""},
		{"oneOf with null", `{"type":"object","properties":{"a":{"oneOf":[{"type":"null"},{"type":"string","format":"date"}]},
			"b":{"anyOf":[{"type":"string"},{"type":"integer"}]}},"required":["a","b"]}`,
			[]partitioner.Column{opt("a", tD), opt("b", tJ)}, ""},
		{"integer or number is double", `{"type":"object","properties":{"x":{"type":["integer","number"]},"y":{"type":["string","integer"]}},"required":["x","y"]}`,
			[]partitioner.Column{req("x", tF64), opt("y", tJ)}, ""},
		{"allOf merges objects", `{"allOf":[{"$ref":"#/definitions/Base"},{"type":"object","properties":{"extra":{"type":"boolean"}}}],
			"required":["extra"],
			"definitions":{"Base":{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}}}`,
			[]partitioner.Column{req("id", tI64), req("extra", tB)}, ""},
		{"null and false make no column", `{"type":"object","properties":{"n":{"type":"null"},"f":false,"k":{"type":"string"}}}`,
			[]partitioner.Column{opt("k", tS)}, ""},
		{"properties without type", `{"properties":{"a":{"type":"string"}}}`, []partitioner.Column{opt("a", tS)}, ""},

		{"root not an object", `{"type":"string"}`, nil, "root is not an object"},
		{"root a map", `{"type":"object","additionalProperties":true}`, nil, "root is not an object"},
		{"dotted property", `{"type":"object","properties":{"a.b":{"type":"string"}}}`, nil, "contains a dot"},
		{"unknown type", `{"type":"object","properties":{"a":{"type":"text"}}}`, nil, `unknown type "text"`},
		{"dangling $ref", `{"type":"object","properties":{"a":{"$ref":"#/definitions/Nope"}},"definitions":{}}`, nil, `no member "Nope"`},
		{"remote $ref", `{"type":"object","properties":{"a":{"$ref":"other.json"}}}`, nil, "not a schema reference"},
		{"bad required", `{"type":"object","properties":{"a":{"type":"string"}},"required":"a"}`, nil, "required is a string"},
		{"schema is a number", `{"type":"object","properties":{"a":3}}`, nil, "schema is a number"},
		{"not json", `{"type":`, nil, "unexpected"},
		{"trailing data", `{} {}`, nil, "after the schema"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := columnsOf(c.schema)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, %v; want error containing %q", got, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("column %d: got %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

// TestJSONSchemaFanOut: $refs that double at every level stop at the
// column limit instead of expanding 2^40 properties.
func TestJSONSchemaFanOut(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"type":"object","properties":{"a":{"$ref":"#/definitions/d0"},"b":{"$ref":"#/definitions/d0"}},"definitions":{`)
	for i := range 40 {
		if i > 0 {
			b.WriteByte(',')
		}
		next := `{"type":"integer"}`
		if i < 39 {
			next = `{"$ref":"#/definitions/d` + strconv.Itoa(i+1) + `"}`
		}
		b.WriteString(`"d` + strconv.Itoa(i) + `":{"type":"object","properties":{"x":` + next + `,"y":` + next + `}}`)
	}
	b.WriteString(`}}`)
	_, err := columnsOf(b.String())
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("got %v, want a limit error", err)
	}
}

// FuzzJSONSchemaColumns checks that no schema text panics or hangs, that
// text that is not JSON is an error, and that the columns of any accepted
// schema make a valid Parquet schema.
func FuzzJSONSchemaColumns(f *testing.F) {
	for _, s := range []string{
		`{"type":"object","properties":{"a":{"type":"string","format":"date-time"},"b":{"$ref":"#/definitions/B"}},"required":["a"],"definitions":{"B":{"type":"object","properties":{"c":{"type":"integer"}}}}}`,
		`{"allOf":[{"properties":{"x":{"type":"number"}}},{"properties":{"y":{"enum":["a",null]}}}]}`,
		`{"properties":{"o":{"oneOf":[{"type":"null"},{"$ref":"#"}]}}}`,
		`{"properties":{"a":{"$ref":"#/properties/a"}}}`,
		`{"type":["object","null"],"properties":{"t":{"type":["integer","number","null"]}}}`,
		`[1,2]`, `"x"`, `{"type":`, `{}`, `true`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cols, err := columnsOf(text)
		if !json.Valid([]byte(text)) {
			if err == nil {
				t.Fatalf("invalid JSON %q accepted", text)
			}
			return
		}
		if err != nil || len(cols) == 0 {
			return
		}
		if _, err := partitioner.NewSchema("s", cols); err != nil {
			t.Fatalf("columns %+v: %v", cols, err)
		}
		for _, c := range cols {
			if c.Name == "" || strings.Contains(c.Name, "..") || strings.HasPrefix(c.Name, ".") {
				t.Fatalf("bad column name %q", c.Name)
			}
		}
	})
}
