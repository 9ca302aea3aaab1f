package decode

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/parquet-go/parquet-go"
)

// fuzzSpecs cover every column type, nested and repeated paths, required
// fields, every time format, the record timestamp and a size limit. Paths
// are short so that the fuzzer finds them.
func fuzzSpecs() []Spec {
	f := func(name string, t partitioner.ColumnType, req bool, path string) Field {
		return Field{Column: partitioner.Column{Name: name, Type: t, Required: req}, Path: path}
	}
	return []Spec{
		{
			Fields: []Field{
				f("s", partitioner.TypeString, false, ""),
				f("i", partitioner.TypeInt32, false, ""),
				f("l", partitioner.TypeInt64, false, ""),
				f("d", partitioner.TypeDouble, false, ""),
				f("f", partitioner.TypeFloat, false, ""),
				f("b", partitioner.TypeBool, false, ""),
				f("tm", partitioner.TypeTimestampMillis, false, ""),
				f("tu", partitioner.TypeTimestampMicros, false, ""),
				f("dt", partitioner.TypeDate, false, ""),
				f("j", partitioner.TypeJSON, false, ""),
				f("nx", partitioner.TypeString, false, "n.x"),
				f("nyz", partitioner.TypeInt64, false, "n.y.z"),
				f("n", partitioner.TypeJSON, false, ""),
				f("sj", partitioner.TypeJSON, false, "s"),
				f("lts", partitioner.TypeTimestampMicros, false, "l"),
			},
			TimePath:   "tm",
			TimeFormat: UnixMillis,
		},
		{
			Fields: []Field{
				f("s", partitioner.TypeString, true, ""),
				f("j", partitioner.TypeJSON, true, ""),
				f("nx", partitioner.TypeInt64, true, "n.x"),
				f("t", partitioner.TypeDate, false, ""),
			},
			TimePath:   "t",
			TimeFormat: RFC3339,
		},
		{
			Fields: []Field{
				f("d", partitioner.TypeDouble, false, ""),
				f("nt", partitioner.TypeTimestampMicros, false, "n.t"),
			},
			TimePath:   "n.t",
			TimeFormat: UnixSeconds,
			MaxBytes:   96,
		},
		{}, // validation only, record timestamp
	}
}

var fuzzSeeds = []string{
	string(clickstreamRecord),
	`{"s":"hello","i":-7,"l":1e3,"d":129.99,"f":0.5,"b":true,"tm":1764075600123,"tu":"2025-11-25T13:00:00.123456Z","dt":"2025-11-25","j":{"a":[1,2]},"n":{"x":"nx","y":{"z":5}}}`,
	`{"s":"a\u00e9\ud83d\ude00\n","j":null,"n":{"x":1},"t":"2025-11-25T13:00:00+01:00"}`,
	`{"s":"x","j":[],"n":{"x":1.0e2},"t":"2025-11-25T13:00:00.999999999999Z"}`,
	`{"d":1e400,"n":{"t":1764075600.1239}}`,
	`{"n":{"t":"1764075600"},"d":-0}`,
	`{"s":"\ud800","l":9223372036854775808}`,
	"{\"s\":\"\xff\"}",
	`{"tm":1.5,"tm":2e3,"n":{"x":"a"},"n":{"y":{"z":1}}}`,
	`{"tm":7258118400000}`,
	`{"dt":"2024-02-29T23:59:59-00:30","tu":-1,"i":2147483648}`,
	`{"n":[1],"l":"1"}`,
	` { "s" : "x" , "j" : 1 , "n" : { "x" : 2 } , "t" : "1970-01-01T00:00:00Z" } `,
	`{"a":[[[[{"b":{"c":"\\\"\/"}}]]]]}`,
	`{"a":1,}`,
	`[1,2]`,
	`{"s":"x"}{}`,
	`{"l":-1e-99999999999,"tm":1e-9999}`,
	`{"l":0.0000000000000000000000000000000000000000000000001e49}`,
	`{"s":"\u0041\ud800\udc00\uDBFF\uDFFF\\u00e9","j":"\\\ud83d\ude00"}`,
	`{"s":"\uDC00"}`,
	`{"\u0073":"x","j":{"\u0073":1},"n":{"\u0078":"y"}}`,
}

func FuzzDecodeAgainstStdlib(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), int64(1764075600123))
	}
	f.Add([]byte(`{}`), int64(-1))
	specs := fuzzSpecs()
	decs := make([]*Decoder, len(specs))
	for i, s := range specs {
		d, err := New(s)
		if err != nil {
			f.Fatal(err)
		}
		decs[i] = d
	}
	f.Fuzz(func(t *testing.T, data []byte, recordMillis int64) {
		rt := time.UnixMilli(recordMillis)
		for i, d := range decs {
			row, et, err := d.Decode(data, rt)
			want := refDecode(specs[i], data, rt)
			if want.reason != "" {
				var e *Error
				if !errors.As(err, &e) || e.Reason != want.reason || e.Field != want.field {
					t.Fatalf("spec %d, %q: got err %v, want %s on %q", i, data, err, want.reason, want.field)
				}
				continue
			}
			if err != nil {
				t.Fatalf("spec %d, %q: got err %v, want success", i, data, err)
			}
			if len(row) != len(want.row) {
				t.Fatalf("spec %d: got %d values, want %d", i, len(row), len(want.row))
			}
			for k := range row {
				if !sameValue(row[k], want.row[k]) {
					t.Fatalf("spec %d, %q: field %s: got %#v, want %#v", i, data, specs[i].Fields[k].Column.Name, row[k], want.row[k])
				}
			}
			if !et.Equal(want.time) || et.Location() != time.UTC {
				t.Fatalf("spec %d, %q: event time %v, want %v in UTC", i, data, et, want.time)
			}
		}
	})
}

func sameValue(a, b parquet.Value) bool {
	if a.IsNull() || b.IsNull() {
		return a.IsNull() == b.IsNull()
	}
	return a.Kind() == b.Kind() && string(a.Bytes()) == string(b.Bytes())
}

// fuzzPaths is the vocabulary random specs draw paths from.
var fuzzPaths = []string{"a", "b", "a.b", "a.b.c", "b.a", "a.a", "c", "a.b.c.d"}

// FuzzDecode builds a random spec and checks that decoding never panics and
// that results are well-formed: a row of the spec's width whose values have
// the column's physical kind (null only for optional columns), or an *Error
// with a known reason; invalid JSON is always bad_json.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 0, 9, 2, 0x83, 3, 1, 5, 0, 1}, []byte(`{"a":{"b":{"c":1,"d":"x"}},"b":[1,{"a":null}],"c":"2025-01-01"}`))
	f.Add([]byte{7, 1}, []byte(`{"a":1764075600123,"b":{"a":"2025-11-25T13:00:00Z"}}`))
	f.Add([]byte{}, []byte(`{"a"`))
	for _, s := range fuzzSeeds {
		f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, []byte(s))
	}
	f.Fuzz(func(t *testing.T, specBytes, data []byte) {
		var spec Spec
		if len(specBytes) > 0 {
			b := specBytes[0]
			specBytes = specBytes[1:]
			spec.TimePath = fuzzPaths[int(b)%len(fuzzPaths)]
			spec.TimeFormat = TimeFormat(b >> 4 % 4) // 0 is invalid: New must reject it
			if b&8 != 0 {
				spec.TimePath = ""
			}
		}
		if len(specBytes) > 0 {
			spec.MaxBytes = int(specBytes[0]) * 4
			specBytes = specBytes[1:]
		}
		for k := 0; k+1 < len(specBytes) && k < 24; k += 2 {
			spec.Fields = append(spec.Fields, Field{
				Column: partitioner.Column{
					Name:     strings.Repeat("x", k+1),
					Type:     partitioner.ColumnType(specBytes[k] % 12), // 0 and 11 are invalid
					Required: specBytes[k]&0x80 != 0,
				},
				Path: fuzzPaths[int(specBytes[k+1])%len(fuzzPaths)],
			})
		}
		d, err := New(spec)
		if err != nil {
			return
		}
		for range 2 { // twice: reuse must not change the answer
			row, _, err := d.Decode(data, time.UnixMilli(1764075600123))
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v is not an *Error", err)
				}
				known := false
				for _, r := range Reasons() {
					known = known || r == e.Reason
				}
				if !known {
					t.Fatalf("unknown reason %q", e.Reason)
				}
				if row != nil {
					t.Fatal("row on error")
				}
				oversized := spec.MaxBytes > 0 && len(data) > spec.MaxBytes
				if !json.Valid(data) && !oversized && e.Reason != ReasonBadJSON {
					t.Fatalf("invalid JSON %q: got %v", data, err)
				}
				continue
			}
			if !json.Valid(data) {
				t.Fatalf("invalid JSON %q accepted", data)
			}
			if len(row) != len(spec.Fields) {
				t.Fatalf("got %d values, want %d", len(row), len(spec.Fields))
			}
			for k, v := range row {
				c := spec.Fields[k].Column
				if v.IsNull() {
					if c.Required {
						t.Fatalf("null for required column %s", c.Name)
					}
					continue
				}
				if v.Kind() != physicalKind(c.Type) {
					t.Fatalf("column %s (%v): got kind %v", c.Name, c.Type, v.Kind())
				}
				if c.Type == partitioner.TypeDouble && (math.IsInf(v.Double(), 0) || math.IsNaN(v.Double())) {
					t.Fatalf("column %s: non-finite %v", c.Name, v)
				}
			}
		}
	})
}

func physicalKind(t partitioner.ColumnType) parquet.Kind {
	switch t {
	case partitioner.TypeString, partitioner.TypeJSON:
		return parquet.ByteArray
	case partitioner.TypeInt32, partitioner.TypeDate:
		return parquet.Int32
	case partitioner.TypeInt64, partitioner.TypeTimestampMillis, partitioner.TypeTimestampMicros:
		return parquet.Int64
	case partitioner.TypeDouble:
		return parquet.Double
	case partitioner.TypeFloat:
		return parquet.Float
	case partitioner.TypeBool:
		return parquet.Boolean
	}
	return -1
}
