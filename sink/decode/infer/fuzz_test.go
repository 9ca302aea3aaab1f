package infer

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/lakesink/lakesink/sink/decode"
)

// FuzzInfer checks, over arbitrary input, that Observe, Compile and Decode
// never panic; that every JSON object Observe accepts yields a schema that
// Decode accepts the record into; and that Decode's fits means exactly
// "joining the record would not change the schema", which is what makes
// schema rolls lossless (fits) and bounded (not fits widens).
func FuzzInfer(f *testing.F) {
	for _, s := range [][2]string{
		{`{"a":1,"b":{"c":"x"}}`, `{"a":1.5}`},
		{`{"a":[1,{"b":2}],"c":null}`, `{"c":{"d":true}}`},
		{`{"a.b":1,"a":{"b":2}}`, `{"a":{"c":3}}`},
		{`{"x":"\u00e9\ud83d\ude00","y":-0,"z":1e400}`, `{"x":"\n","y":12345678901234567890}`},
		{`{"o":{"":1}}`, `{"o":{}}`},
		{`{}`, `{"k":{}}`},
		{`{"a":1,"a":"x"}`, `{"a":null}`},
		{`[1]`, `{"":1}`},
		{`{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":1}}}}}}}}}}`, `{"a":{"b":1}}`},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		s := NewShape()
		errFirst := s.Observe(first)
		if errFirst == nil && !isObject(first) {
			t.Fatalf("Observe accepted a non-object %q", first)
		}
		if errFirst != nil && s.Version() != 0 {
			t.Fatalf("rejected record changed the shape")
		}
		sc, err := s.Compile("t")
		if err != nil {
			t.Fatalf("Compile after %q: %v", first, err)
		}
		dec := sc.NewDecoder()
		if errFirst == nil {
			row, fits, err := dec.Decode(first)
			if err != nil || !fits {
				t.Fatalf("Decode(%q) with its own schema %s: fits %v, err %v", first, sc.Description(), fits, err)
			}
			if len(row) != len(sc.Columns()) {
				t.Fatalf("row has %d values, schema %d columns", len(row), len(sc.Columns()))
			}
		}
		_, fits, errDec := dec.Decode(second)
		wider := s.Clone()
		errObs := wider.Observe(second)
		if (errDec != nil && errObs == nil) || (errDec == nil && errObs != nil && reasonOf(errObs) != ReasonTooManyColumns) {
			t.Fatalf("Decode(%q) err %v, Observe err %v: they disagree", second, errDec, errObs)
		}
		if errDec != nil || errObs != nil {
			return
		}
		sc2, err := wider.Compile("t")
		if err != nil {
			t.Fatal(err)
		}
		if unchanged := sc2.Fingerprint() == sc.Fingerprint(); unchanged != fits {
			t.Fatalf("Decode(%q) under %s: fits %v, but joining gives %s", second, sc.Description(), fits, sc2.Description())
		}
		if _, fits, err := sc2.NewDecoder().Decode(second); err != nil || !fits {
			t.Fatalf("Decode(%q) under the widened %s: fits %v, err %v", second, sc2.Description(), fits, err)
		}
	})
}

func isObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

func reasonOf(err error) decode.Reason {
	var de *decode.Error
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}
