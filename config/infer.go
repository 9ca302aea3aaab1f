package config

import (
	"reflect"

	"go.yaml.in/yaml/v3"
)

// SchemaInfer is the value of a stream's schema key that asks for inferred
// columns instead of a list (Stream.InferSchema).
const SchemaInfer = "infer"

// DefaultInferSample is the default streams[].infer_sample.
const DefaultInferSample = 1000

// MaxInferSample bounds streams[].infer_sample: the sample is held in
// memory until the file's columns are known.
const MaxInferSample = 100000

// schemaWord decodes a stream's schema key when it is a single word rather
// than a list: "infer" sets InferSchema, anything else is a problem. It
// reports whether it handled the key; lists go the usual way (and clear an
// InferSchema set through a merge key).
func (d *decoder) schemaWord(v reflect.Value, key string, val *yaml.Node, path string) bool {
	if key != "schema" || v.Type() != reflect.TypeFor[Stream]() {
		return false
	}
	st := v.Addr().Interface().(*Stream)
	n := d.resolve(val, path)
	if n == nil {
		return true
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		st.InferSchema = false
		d.value(n, v.FieldByName("Schema"), path)
		return true
	}
	if n.Value != SchemaInfer {
		d.fail(n, path, "want a list of columns or %q, got %q", SchemaInfer, n.Value)
		return true
	}
	st.InferSchema, st.Schema = true, nil
	return true
}

// MarshalYAML writes `schema: infer` for a stream with InferSchema, so that
// Config.YAML round-trips.
func (s Stream) MarshalYAML() (any, error) {
	type plain Stream // without this method
	if !s.InferSchema {
		return plain(s), nil
	}
	var n yaml.Node
	if err := n.Encode(plain(s)); err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "schema" {
			n.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: SchemaInfer}
		}
	}
	return &n, nil
}

// validateInfer checks schema: infer and infer_sample of stream s at sp.
func validateInfer(p *problems, sp string, s Stream) {
	if !s.InferSchema {
		if s.InferSample != DefaultInferSample {
			p.add(sp+".infer_sample", "only used with schema: infer")
		}
		return
	}
	if s.Format != FormatJSON {
		p.add(sp+".schema", "%q is only for format json (format %s streams take their columns from the writer schema when the list is left out)", SchemaInfer, s.Format)
	}
	if s.InferSample < 1 || s.InferSample > MaxInferSample {
		p.add(sp+".infer_sample", "must be between 1 and %d, got %d", MaxInferSample, s.InferSample)
	}
}
