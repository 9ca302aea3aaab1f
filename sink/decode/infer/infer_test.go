package infer

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/sink/decode"
)

func compile(t testing.TB, records ...string) (*Shape, *Schema) {
	t.Helper()
	s := NewShape()
	for _, r := range records {
		if err := s.Observe([]byte(r)); err != nil {
			t.Fatalf("Observe(%s): %v", r, err)
		}
	}
	sc, err := s.Compile("t")
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s, sc
}

func colList(sc *Schema) string {
	var b []string
	for _, c := range sc.Columns() {
		b = append(b, c.Name+":"+c.Type.String())
	}
	return strings.Join(b, " ")
}

func TestInferColumns(t *testing.T) {
	// Objects at depths 1..MaxNesting are flattened, the next one is json.
	deep := `{"l0":` + strings.Repeat(`{"l":`, MaxNesting+1) + `1` + strings.Repeat(`}`, MaxNesting+1) + `}`
	tests := []struct {
		name    string
		records []string
		want    string
	}{
		{"flat sorted", []string{`{"b":"x","a":true,"c":3}`}, "a:bool b:string c:int64"},
		{"nested flattened", []string{`{"device":{"id":"d1","geo":{"lat":1.5}},"n":1}`}, "device.geo.lat:double device.id:string n:int64"},
		{"arrays are json", []string{`{"tags":["a","b"],"e":[]}`}, "e:json tags:json"},
		{"int and double widen to double", []string{`{"n":1}`, `{"n":2.5}`}, "n:double"},
		{"double then int", []string{`{"n":2e3}`, `{"n":7}`}, "n:double"},
		{"exponent is double", []string{`{"n":1E2}`}, "n:double"},
		{"integer beyond int64 is json", []string{`{"n":12345678901234567890}`}, "n:json"},
		{"double overflow is json", []string{`{"n":1e400}`}, "n:json"},
		{"string and number conflict", []string{`{"x":1}`, `{"x":"one"}`}, "x:json"},
		{"bool and int conflict", []string{`{"x":true}`, `{"x":0}`}, "x:json"},
		{"object and scalar", []string{`{"o":{"a":1}}`, `{"o":3}`}, "o:json"},
		{"scalar and object", []string{`{"o":3}`, `{"o":{"a":1}}`}, "o:json"},
		{"object merge", []string{`{"o":{"a":1}}`, `{"o":{"b":"x"}}`}, "o.a:int64 o.b:string"},
		{"null only has no column", []string{`{"a":null,"b":1}`}, "b:int64"},
		{"null then value", []string{`{"a":null}`, `{"a":"s"}`}, "a:string"},
		{"nothing at all", []string{`{}`, `{"a":null,"o":{}}`}, "_empty:json"},
		{"empty object then scalar", []string{`{"o":{}}`, `{"o":1}`}, "o:json"},
		{"dotted key collides with path", []string{`{"a.b":1,"a":{"b":2,"c":3}}`}, "a:json a.b:int64"},
		{"dotted key alone", []string{`{"service.name":"api"}`}, "service.name:string"},
		{"unaddressable nested key", []string{`{"m":{"":1},"k":1}`}, "k:int64 m:json"},
		{"control character nested key", []string{`{"m":{"a\u0001":1}}`}, "m:json"},
		{"escaped keys unescaped", []string{`{"dev\u0069ce":{"\u0069d":"x"}}`}, "device.id:string"},
		{"too deep is json", []string{deep}, "l0" + strings.Repeat(".l", MaxNesting) + ":json"},
		{"duplicate keys join", []string{`{"a":1,"a":"x"}`}, "a:json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, sc := compile(t, tt.records...)
			if got := colList(sc); got != tt.want {
				t.Errorf("columns = %s, want %s", got, tt.want)
			}
			for _, c := range sc.Columns() {
				if c.Required {
					t.Errorf("column %s is required; inferred columns are nullable", c.Name)
				}
			}
			// Every sampled record fits the schema inferred from it.
			dec := sc.NewDecoder()
			for _, r := range tt.records {
				if _, fits, err := dec.Decode([]byte(r)); err != nil || !fits {
					t.Errorf("Decode(%s) = fits %v, err %v; want a fit", r, fits, err)
				}
			}
		})
	}
}

func TestInferDeterministic(t *testing.T) {
	records := []string{`{"b":{"y":1,"x":"s"},"a":[1]}`, `{"b":{"y":2.5},"c":true}`, `{"d":null,"a":{"k":1}}`, `{"a.b":1}`}
	_, first := compile(t, records...)
	// Any order of the same records gives the same schema.
	for i := range records {
		rot := append(append([]string(nil), records[i:]...), records[:i]...)
		_, sc := compile(t, rot...)
		if sc.Fingerprint() != first.Fingerprint() || sc.Description() != first.Description() {
			t.Errorf("order %d: %s %s, want %s %s", i, sc.Fingerprint(), sc.Description(), first.Fingerprint(), first.Description())
		}
	}
	if want := `[{"name":"a","type":"json"},{"name":"a.b","type":"int64"},{"name":"b.x","type":"string"},{"name":"b.y","type":"double"},{"name":"c","type":"bool"}]`; first.Description() != want {
		t.Errorf("Description() = %s, want %s", first.Description(), want)
	}
	if !strings.HasPrefix(first.Fingerprint(), "sha256:") || len(first.Fingerprint()) != len("sha256:")+16 {
		t.Errorf("Fingerprint() = %q", first.Fingerprint())
	}
	_, other := compile(t, `{"a":1}`)
	if other.Fingerprint() == first.Fingerprint() {
		t.Error("different columns, same fingerprint")
	}
}

func TestDecodeValues(t *testing.T) {
	_, sc := compile(t, `{"s":"x","i":1,"d":1.5,"b":true,"j":[1],"o":{"k":"v"},"n":null}`, `{"d":2}`)
	if got, want := colList(sc), "b:bool d:double i:int64 j:json o.k:string s:string"; got != want {
		t.Fatalf("columns = %s, want %s", got, want)
	}
	dec := sc.NewDecoder()
	row, fits, err := dec.Decode([]byte(` {"s":"a\"\u00e9\ud83d\ude00","i":-9223372036854775808,"d":7,"b":false,"j":{"x": [1, 2]},"o":{"k":null},"n":null,"s":"last"} `))
	if err != nil || !fits {
		t.Fatalf("Decode: fits %v, err %v", fits, err)
	}
	want := []parquet.Value{
		parquet.BooleanValue(false), parquet.DoubleValue(7), parquet.Int64Value(-9223372036854775808),
		parquet.ByteArrayValue([]byte(`{"x": [1, 2]}`)), {}, parquet.ByteArrayValue([]byte("last")),
	}
	for i := range want {
		if !parquet.Equal(row[i], want[i]) || row[i].IsNull() != want[i].IsNull() {
			t.Errorf("row[%d] = %v, want %v", i, row[i], want[i])
		}
	}
	row, fits, err = dec.Decode([]byte(`{"s":"a\"\u00e9\ud83d\ude00\n"}`))
	if err != nil || !fits {
		t.Fatalf("Decode: fits %v, err %v", fits, err)
	}
	if got := string(row[5].ByteArray()); got != "a\"é😀\n" {
		t.Errorf("unescaped string = %q", got)
	}
	if !row[0].IsNull() {
		t.Errorf("absent field = %v, want null", row[0])
	}
}

func TestDecodeFits(t *testing.T) {
	_, sc := compile(t, `{"i":1,"d":1.5,"s":"x","o":{"a":1},"j":[],"z":null}`)
	tests := []struct {
		record string
		fits   bool
	}{
		{`{"i":2}`, true},
		{`{}`, true},
		{`{"new":null}`, true},                // null adds nothing
		{`{"new":{},"o":{"b":null}}`, true},   // nor do empty objects
		{`{"d":3}`, true},                     // an integer in a double column
		{`{"j":{"any":["thing"]}}`, true},     // anything in a json column
		{`{"z":null,"i":null}`, true},         // null in a null-only field
		{`{"i":1.5}`, false},                  // a fraction in an int64 column
		{`{"i":"1"}`, false},                  // a string in an int64 column
		{`{"s":1}`, false},                    // a number in a string column
		{`{"new":1}`, false},                  // a new field
		{`{"o":{"b":1}}`, false},              // a new nested field
		{`{"o":5}`, false},                    // a scalar where an object was
		{`{"i":{"x":1}}`, false},              // an object where a scalar was
		{`{"i":{}}`, false},                   // even an empty one
		{`{"s":["x"]}`, false},                // an array in a string column
		{`{"z":1}`, false},                    // a value in a null-only field
		{`{"o":{"":1}}`, false},               // a key that makes o json
		{`{"i":99999999999999999999}`, false}, // beyond int64
	}
	for _, tt := range tests {
		s, _ := compile(t, `{"i":1,"d":1.5,"s":"x","o":{"a":1},"j":[],"z":null}`)
		_, fits, err := sc.NewDecoder().Decode([]byte(tt.record))
		if err != nil {
			t.Errorf("Decode(%s): %v", tt.record, err)
			continue
		}
		if fits != tt.fits {
			t.Errorf("Decode(%s) fits = %v, want %v", tt.record, fits, tt.fits)
		}
		// fits is exactly "joining the record changes nothing".
		if err := s.Observe([]byte(tt.record)); err != nil {
			t.Fatal(err)
		}
		after, err := s.Compile("t")
		if err != nil {
			t.Fatal(err)
		}
		if same := after.Fingerprint() == sc.Fingerprint(); same != tt.fits {
			t.Errorf("%s: schema unchanged after joining = %v, but fits = %v", tt.record, same, tt.fits)
		}
	}
}

func TestBadRecords(t *testing.T) {
	s := NewShape()
	_, sc := compile(t, `{"a":1}`)
	tests := []struct {
		record string
		reason decode.Reason
	}{
		{`[1]`, decode.ReasonBadJSON},
		{`"x"`, decode.ReasonBadJSON},
		{`{"a":1`, decode.ReasonBadJSON},
		{`{"a":1} x`, decode.ReasonBadJSON},
		{``, decode.ReasonBadJSON},
		{`{"":1}`, ReasonBadKey},
		{`{"a":1,"b\u0000":null}`, ReasonBadKey},
		{`{"` + strings.Repeat("k", MaxKeyBytes+1) + `":1}`, ReasonBadKey},
	}
	for _, tt := range tests {
		for name, err := range map[string]error{
			"Observe": s.Observe([]byte(tt.record)),
			"Decode":  func() error { _, _, err := sc.NewDecoder().Decode([]byte(tt.record)); return err }(),
		} {
			var de *decode.Error
			if !errors.As(err, &de) || de.Reason != tt.reason {
				t.Errorf("%s(%q) = %v, want reason %s", name, tt.record, err, tt.reason)
			}
		}
	}
	if s.Version() != 0 || len(s.root.children) != 0 {
		t.Error("a rejected record changed the shape")
	}
}

func TestColumnLimit(t *testing.T) {
	s := NewShape()
	// A map-like object keyed by ids grows past the limit: it becomes json.
	var b strings.Builder
	b.WriteString(`{"id":1,"counts":{`)
	for i := range MaxColumns + 5 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"u%d":%d`, i, i)
	}
	b.WriteString(`}}`)
	if err := s.Observe([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	sc, err := s.Compile("t")
	if err != nil {
		t.Fatal(err)
	}
	if got := colList(sc); got != "counts:json id:int64" {
		t.Errorf("columns = %s, want counts:json id:int64", got)
	}
	// Top-level fields beyond the limit are rejected.
	b.Reset()
	b.WriteString(`{`)
	for i := range MaxColumns - 1 {
		fmt.Fprintf(&b, `"f%d":1,`, i)
	}
	b.WriteString(`"last":1}`)
	err = s.Observe([]byte(b.String()))
	var de *decode.Error
	if !errors.As(err, &de) || de.Reason != ReasonTooManyColumns {
		t.Errorf("Observe beyond the limit = %v, want %s", err, ReasonTooManyColumns)
	}
}

func BenchmarkDecode(b *testing.B) {
	rec := []byte(`{"event_id":"e-1","user":{"id":"u-42","plan":"pro"},"ts":1764075600000,"url":"https://example.com/a?b=c","price":12.5,"tags":["a","b"],"ok":true}`)
	_, sc := compile(b, string(rec))
	dec := sc.NewDecoder()
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, fits, err := dec.Decode(rec); err != nil || !fits {
			b.Fatal(fits, err)
		}
	}
}
