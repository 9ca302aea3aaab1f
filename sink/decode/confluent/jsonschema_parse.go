package confluent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// jsValue is a parsed JSON value that, unlike map[string]any, keeps the
// order of object members: derived columns follow the order of a JSON
// Schema's properties as the producer wrote them.
type jsValue struct {
	kind jsKind
	keys []string   // object member names, in order
	vals []*jsValue // object member values / array items
	str  string     // string content or number literal
	b    bool
}

type jsKind uint8

const (
	jsNull jsKind = iota
	jsBool
	jsNumber
	jsString
	jsArray
	jsObject
)

func (k jsKind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// maxSchemaDepth bounds the nesting of a schema document; real schemas are
// a few levels deep.
const maxSchemaDepth = 256

// parseJSONDoc parses one JSON document, keeping member order. The last of
// duplicate member names wins in get, as with encoding/json.
func parseJSONDoc(text string) (*jsValue, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	v, err := parseJSValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the schema")
	}
	return v, nil
}

func parseJSValue(dec *json.Decoder, depth int) (*jsValue, error) {
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxSchemaDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("unexpected end of the schema")
		}
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &jsValue{kind: jsNull}, nil
	case bool:
		return &jsValue{kind: jsBool, b: t}, nil
	case json.Number:
		return &jsValue{kind: jsNumber, str: t.String()}, nil
	case string:
		return &jsValue{kind: jsString, str: t}, nil
	case json.Delim:
		switch t {
		case '[':
			v := &jsValue{kind: jsArray}
			for dec.More() {
				item, err := parseJSValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				v.vals = append(v.vals, item)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return v, nil
		case '{':
			v := &jsValue{kind: jsObject}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", kt)
				}
				val, err := parseJSValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				v.keys = append(v.keys, k)
				v.vals = append(v.vals, val)
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return v, nil
		}
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// get returns the value of object member key (the last one if repeated),
// nil if v is not an object or lacks it.
func (v *jsValue) get(key string) *jsValue {
	if v == nil || v.kind != jsObject {
		return nil
	}
	for i := len(v.keys) - 1; i >= 0; i-- {
		if v.keys[i] == key {
			return v.vals[i]
		}
	}
	return nil
}

// pointer resolves a JSON Pointer fragment ("" or "/definitions/Foo",
// RFC 6901 with ~0 and ~1 escapes and percent-decoding) below v.
func (v *jsValue) pointer(frag string) (*jsValue, error) {
	if frag == "" {
		return v, nil
	}
	if frag[0] != '/' {
		return nil, fmt.Errorf("fragment %q is not a JSON pointer (anchors are not supported)", frag)
	}
	cur := v
	for _, tok := range strings.Split(frag[1:], "/") {
		if strings.Contains(tok, "%") {
			if u, err := unescapePercent(tok); err == nil {
				tok = u
			}
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch cur.kind {
		case jsObject:
			next := cur.get(tok)
			if next == nil {
				return nil, fmt.Errorf("no member %q", tok)
			}
			cur = next
		case jsArray:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(cur.vals) {
				return nil, fmt.Errorf("no item %q", tok)
			}
			cur = cur.vals[i]
		default:
			return nil, fmt.Errorf("%s has no member %q", cur.kind, tok)
		}
	}
	return cur, nil
}

// unescapePercent decodes %XX escapes (URI fragments).
func unescapePercent(s string) (string, error) {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("bad escape")
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}
