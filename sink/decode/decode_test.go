package decode

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/parquet-go/parquet-go"
)

func col(name string, t partitioner.ColumnType, required bool) partitioner.Column {
	return partitioner.Column{Name: name, Type: t, Required: required}
}

// one builds a spec with a single optional column "v" of type t at path "v".
func one(t partitioner.ColumnType) Spec {
	return Spec{Fields: []Field{{Column: col("v", t, false)}}}
}

var recTime = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)

func mustNew(t *testing.T, spec Spec) *Decoder {
	t.Helper()
	d, err := New(spec)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// want describes an expected value: null, or a kind and its payload.
type want struct {
	null bool
	i64  int64
	i32  int32
	f64  float64
	f32  float32
	b    bool
	s    string
	kind parquet.Kind
}

func wNull() want         { return want{null: true} }
func wStr(s string) want  { return want{kind: parquet.ByteArray, s: s} }
func wI64(v int64) want   { return want{kind: parquet.Int64, i64: v} }
func wI32(v int32) want   { return want{kind: parquet.Int32, i32: v} }
func wF64(v float64) want { return want{kind: parquet.Double, f64: v} }
func wF32(v float32) want { return want{kind: parquet.Float, f32: v} }
func wBool(v bool) want   { return want{kind: parquet.Boolean, b: v} }
func checkValue(t *testing.T, got parquet.Value, w want) {
	t.Helper()
	if w.null {
		if !got.IsNull() {
			t.Fatalf("got %v, want null", got)
		}
		return
	}
	if got.IsNull() || got.Kind() != w.kind {
		t.Fatalf("got %#v, want kind %v", got, w.kind)
	}
	ok := true
	switch w.kind {
	case parquet.ByteArray:
		ok = string(got.ByteArray()) == w.s
	case parquet.Int64:
		ok = got.Int64() == w.i64
	case parquet.Int32:
		ok = got.Int32() == w.i32
	case parquet.Double:
		ok = math.Float64bits(got.Double()) == math.Float64bits(w.f64)
	case parquet.Float:
		ok = math.Float32bits(got.Float()) == math.Float32bits(w.f32)
	case parquet.Boolean:
		ok = got.Boolean() == w.b
	}
	if !ok {
		t.Fatalf("got %#v, want %+v", got, w)
	}
}

func reasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func TestTypes(t *testing.T) {
	tests := []struct {
		name   string
		typ    partitioner.ColumnType
		in     string
		want   want
		reason Reason
	}{
		{"string", partitioner.TypeString, `"hello"`, wStr("hello"), ""},
		{"string empty", partitioner.TypeString, `""`, wStr(""), ""},
		{"string escapes", partitioner.TypeString, `"a\"b\\c\/d\b\f\n\r\t"`, wStr("a\"b\\c/d\b\f\n\r\t"), ""},
		{"string \\u", partitioner.TypeString, `"\u00e9\u4E2D\u0000"`, wStr("é中\x00"), ""},
		{"string surrogate pair", partitioner.TypeString, `"\ud83d\ude00!"`, wStr("😀!"), ""},
		{"string raw utf8", partitioner.TypeString, `"héllo 世界 😀"`, wStr("héllo 世界 😀"), ""},
		{"string long", partitioner.TypeString, `"` + strings.Repeat("abcdefgh", 40) + `\n"`, wStr(strings.Repeat("abcdefgh", 40) + "\n"), ""},
		{"string null", partitioner.TypeString, `null`, wNull(), ""},
		{"string from number", partitioner.TypeString, `12`, want{}, ReasonWrongType},
		{"string from bool", partitioner.TypeString, `true`, want{}, ReasonWrongType},
		{"string from object", partitioner.TypeString, `{"a":1}`, want{}, ReasonWrongType},
		{"string from array", partitioner.TypeString, `["a"]`, want{}, ReasonWrongType},
		{"string lone high surrogate", partitioner.TypeString, `"\ud800"`, want{}, ReasonBadUTF8},
		{"string lone low surrogate", partitioner.TypeString, `"\udc00x"`, want{}, ReasonBadUTF8},
		{"string high then non-low", partitioner.TypeString, `"\ud800\u0041"`, want{}, ReasonBadUTF8},
		{"string invalid utf8", partitioner.TypeString, "\"a\xffb\"", want{}, ReasonBadUTF8},
		{"string utf8 surrogate bytes", partitioner.TypeString, "\"\xed\xa0\x80\"", want{}, ReasonBadUTF8},
		{"string truncated utf8", partitioner.TypeString, "\"\xe4\xb8\"", want{}, ReasonBadUTF8},

		{"int64", partitioner.TypeInt64, `42`, wI64(42), ""},
		{"int64 negative", partitioner.TypeInt64, `-42`, wI64(-42), ""},
		{"int64 zero", partitioner.TypeInt64, `0`, wI64(0), ""},
		{"int64 minus zero", partitioner.TypeInt64, `-0`, wI64(0), ""},
		{"int64 max", partitioner.TypeInt64, `9223372036854775807`, wI64(math.MaxInt64), ""},
		{"int64 min", partitioner.TypeInt64, `-9223372036854775808`, wI64(math.MinInt64), ""},
		{"int64 max+1", partitioner.TypeInt64, `9223372036854775808`, want{}, ReasonOutOfRange},
		{"int64 min-1", partitioner.TypeInt64, `-9223372036854775809`, want{}, ReasonOutOfRange},
		{"int64 huge", partitioner.TypeInt64, `123456789012345678901234567890`, want{}, ReasonOutOfRange},
		{"int64 exponent", partitioner.TypeInt64, `1e3`, wI64(1000), ""},
		{"int64 exponent E+", partitioner.TypeInt64, `15E+2`, wI64(1500), ""},
		{"int64 fraction exponent", partitioner.TypeInt64, `1.25e2`, wI64(125), ""},
		{"int64 1.0", partitioner.TypeInt64, `1.0`, wI64(1), ""},
		{"int64 trailing zeros", partitioner.TypeInt64, `100.000`, wI64(100), ""},
		{"int64 negative exponent integer", partitioner.TypeInt64, `12000e-3`, wI64(12), ""},
		{"int64 0e999999", partitioner.TypeInt64, `0e999999999999999999999`, wI64(0), ""},
		{"int64 max via exponent", partitioner.TypeInt64, `9.223372036854775807e18`, wI64(math.MaxInt64), ""},
		{"int64 1e19", partitioner.TypeInt64, `1e19`, want{}, ReasonOutOfRange},
		{"int64 huge exponent", partitioner.TypeInt64, `1e99999999999999999999`, want{}, ReasonOutOfRange},
		{"int64 fraction", partitioner.TypeInt64, `1.5`, want{}, ReasonOutOfRange},
		{"int64 tiny", partitioner.TypeInt64, `1e-99999999999999999`, want{}, ReasonOutOfRange},
		{"int64 from string", partitioner.TypeInt64, `"12"`, want{}, ReasonWrongType},
		{"int64 from bool", partitioner.TypeInt64, `false`, want{}, ReasonWrongType},
		{"int64 null", partitioner.TypeInt64, `null`, wNull(), ""},

		{"int32", partitioner.TypeInt32, `-7`, wI32(-7), ""},
		{"int32 max", partitioner.TypeInt32, `2147483647`, wI32(math.MaxInt32), ""},
		{"int32 min", partitioner.TypeInt32, `-2147483648`, wI32(math.MinInt32), ""},
		{"int32 overflow", partitioner.TypeInt32, `2147483648`, want{}, ReasonOutOfRange},
		{"int32 underflow", partitioner.TypeInt32, `-2147483649`, want{}, ReasonOutOfRange},
		{"int32 fraction", partitioner.TypeInt32, `0.1`, want{}, ReasonOutOfRange},
		{"int32 from object", partitioner.TypeInt32, `{}`, want{}, ReasonWrongType},

		{"double", partitioner.TypeDouble, `129.99`, wF64(129.99), ""},
		{"double integer", partitioner.TypeDouble, `5`, wF64(5), ""},
		{"double exponent", partitioner.TypeDouble, `-1.5e-3`, wF64(-0.0015), ""},
		{"double minus zero", partitioner.TypeDouble, `-0`, wF64(math.Copysign(0, -1)), ""},
		{"double many digits", partitioner.TypeDouble, `0.1000000000000000055511151231257827`, wF64(0.1), ""},
		{"double overflow", partitioner.TypeDouble, `1e400`, want{}, ReasonOutOfRange},
		{"double underflow is zero", partitioner.TypeDouble, `1e-400`, wF64(0), ""},
		{"double from string", partitioner.TypeDouble, `"1.5"`, want{}, ReasonWrongType},
		{"float", partitioner.TypeFloat, `0.5`, wF32(0.5), ""},
		{"float rounding", partitioner.TypeFloat, `0.1`, wF32(0.1), ""},
		{"float overflow", partitioner.TypeFloat, `1e39`, want{}, ReasonOutOfRange},
		{"float from array", partitioner.TypeFloat, `[1]`, want{}, ReasonWrongType},

		{"bool true", partitioner.TypeBool, `true`, wBool(true), ""},
		{"bool false", partitioner.TypeBool, `false`, wBool(false), ""},
		{"bool from number", partitioner.TypeBool, `1`, want{}, ReasonWrongType},
		{"bool from string", partitioner.TypeBool, `"true"`, want{}, ReasonWrongType},

		{"ts_ms number", partitioner.TypeTimestampMillis, `1764075600123`, wI64(1764075600123), ""},
		{"ts_ms exponent", partitioner.TypeTimestampMillis, `1.7e12`, wI64(1700000000000), ""},
		{"ts_ms negative", partitioner.TypeTimestampMillis, `-1`, wI64(-1), ""},
		{"ts_ms fraction", partitioner.TypeTimestampMillis, `1.5`, want{}, ReasonOutOfRange},
		{"ts_ms overflow", partitioner.TypeTimestampMillis, `1e20`, want{}, ReasonOutOfRange},
		{"ts_ms rfc3339", partitioner.TypeTimestampMillis, `"2025-11-25T13:00:00.123456Z"`, wI64(1764075600123), ""},
		{"ts_ms rfc3339 offset", partitioner.TypeTimestampMillis, `"2025-11-25T14:30:00+01:30"`, wI64(1764075600000), ""},
		{"ts_ms rfc3339 negative offset", partitioner.TypeTimestampMillis, `"2025-11-25T08:00:00-05:00"`, wI64(1764075600000), ""},
		{"ts_ms rfc3339 before epoch floors", partitioner.TypeTimestampMillis, `"1969-12-31T23:59:59.9995Z"`, wI64(-1), ""},
		{"ts_ms rfc3339 many fraction digits", partitioner.TypeTimestampMillis, `"2025-11-25T13:00:00.12345678999Z"`, wI64(1764075600123), ""},
		{"ts_ms bad string", partitioner.TypeTimestampMillis, `"yesterday"`, want{}, ReasonBadTime},
		{"ts_ms lowercase t", partitioner.TypeTimestampMillis, `"2026-11-25t13:00:00Z"`, want{}, ReasonBadTime},
		{"ts_ms one-digit hour", partitioner.TypeTimestampMillis, `"2026-11-25T3:00:00Z"`, want{}, ReasonBadTime},
		{"ts_ms comma fraction", partitioner.TypeTimestampMillis, `"2026-11-25T13:00:00,5Z"`, want{}, ReasonBadTime},
		{"ts_ms offset 24h", partitioner.TypeTimestampMillis, `"2026-11-25T13:00:00+24:00"`, want{}, ReasonBadTime},
		{"ts_ms leap second", partitioner.TypeTimestampMillis, `"2016-12-31T23:59:60Z"`, want{}, ReasonBadTime},
		{"ts_ms Feb 30", partitioner.TypeTimestampMillis, `"2026-02-30T00:00:00Z"`, want{}, ReasonBadTime},
		{"ts_ms no zone", partitioner.TypeTimestampMillis, `"2026-11-25T13:00:00"`, want{}, ReasonBadTime},
		{"ts_ms from bool", partitioner.TypeTimestampMillis, `true`, want{}, ReasonWrongType},
		{"ts_us number", partitioner.TypeTimestampMicros, `1764075600123456`, wI64(1764075600123456), ""},
		{"ts_us rfc3339", partitioner.TypeTimestampMicros, `"2025-11-25T13:00:00.123456789Z"`, wI64(1764075600123456), ""},
		{"ts_us year 0", partitioner.TypeTimestampMicros, `"0000-01-01T00:00:00Z"`, wI64(-62167219200000000), ""},

		{"date", partitioner.TypeDate, `"1970-01-02"`, wI32(1), ""},
		{"date before epoch", partitioner.TypeDate, `"1969-12-31"`, wI32(-1), ""},
		{"date leap day", partitioner.TypeDate, `"2024-02-29"`, wI32(19782), ""},
		{"date not leap", partitioner.TypeDate, `"2023-02-29"`, want{}, ReasonBadTime},
		{"date 1900 not leap", partitioner.TypeDate, `"1900-02-29"`, want{}, ReasonBadTime},
		{"date 2000 leap", partitioner.TypeDate, `"2000-02-29"`, wI32(11016), ""},
		{"date from rfc3339 utc date", partitioner.TypeDate, `"2025-11-25T23:30:00-02:00"`, wI32(20418), ""},
		{"date from rfc3339 before epoch", partitioner.TypeDate, `"1969-12-31T12:00:00Z"`, wI32(-1), ""},
		{"date short", partitioner.TypeDate, `"2026-1-25"`, want{}, ReasonBadTime},
		{"date month 13", partitioner.TypeDate, `"2026-13-01"`, want{}, ReasonBadTime},
		{"date number", partitioner.TypeDate, `20260101`, want{}, ReasonWrongType},

		{"json object", partitioner.TypeJSON, `{"a": [1, 2], "b":"\u00e9"}`, wStr(`{"a": [1, 2], "b":"\u00e9"}`), ""},
		{"json array", partitioner.TypeJSON, `[1,{"x":null}]`, wStr(`[1,{"x":null}]`), ""},
		{"json string", partitioner.TypeJSON, `"s\n"`, wStr(`"s\n"`), ""},
		{"json number", partitioner.TypeJSON, `-1.5e3`, wStr(`-1.5e3`), ""},
		{"json bool", partitioner.TypeJSON, `true`, wStr(`true`), ""},
		{"json null", partitioner.TypeJSON, `null`, wNull(), ""},
		{"json invalid utf8 inside", partitioner.TypeJSON, "{\"a\":\"\xc3\"}", want{}, ReasonBadUTF8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mustNew(t, one(tc.typ))
			for _, rec := range []string{
				`{"v":` + tc.in + `}`,
				" \t\r\n{ \"x\" : 1 ,\n \"v\" :\t" + tc.in + " } \n",
			} {
				row, _, err := d.Decode([]byte(rec), recTime)
				if tc.reason != "" {
					if got := reasonOf(err); got != tc.reason {
						t.Fatalf("%s: got err %v, want reason %s", rec, err, tc.reason)
					}
					if row != nil {
						t.Fatalf("%s: row %v on error, want nil", rec, row)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", rec, err)
				}
				if len(row) != 1 {
					t.Fatalf("got %d values, want 1", len(row))
				}
				checkValue(t, row[0], tc.want)
			}
		})
	}
}

func TestRequiredAndMissing(t *testing.T) {
	d := mustNew(t, Spec{Fields: []Field{
		{Column: col("a", partitioner.TypeString, true)},
		{Column: col("b", partitioner.TypeInt64, false)},
		{Column: col("j", partitioner.TypeJSON, true)},
	}})
	tests := []struct {
		in     string
		reason Reason
		field  string
	}{
		{`{"a":"x","j":1}`, "", ""},
		{`{"j":1}`, ReasonMissingField, "a"},
		{`{"a":null,"j":1}`, ReasonMissingField, "a"},
		{`{"a":"x"}`, ReasonMissingField, "j"},
		{`{"a":"x","j":null}`, ReasonMissingField, "j"},
		{`{}`, ReasonMissingField, "a"},
		// Errors are reported in schema order.
		{`{"a":1,"b":"x"}`, ReasonWrongType, "a"},
		{`{"a":"x","b":"x","j":1}`, ReasonWrongType, "b"},
		{`{"b":1.5}`, ReasonMissingField, "a"},
	}
	for _, tc := range tests {
		row, _, err := d.Decode([]byte(tc.in), recTime)
		if tc.reason == "" {
			if err != nil {
				t.Fatalf("%s: %v", tc.in, err)
			}
			checkValue(t, row[0], wStr("x"))
			checkValue(t, row[1], wNull())
			checkValue(t, row[2], wStr("1"))
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Reason != tc.reason || e.Field != tc.field {
			t.Fatalf("%s: got %v, want %s on %s", tc.in, err, tc.reason, tc.field)
		}
	}
}

func TestNestedPaths(t *testing.T) {
	spec := Spec{Fields: []Field{
		{Column: col("device_id", partitioner.TypeString, false), Path: "device.id"},
		{Column: col("os", partitioner.TypeString, false), Path: "device.os.name"},
		{Column: col("device", partitioner.TypeJSON, false)},
		{Column: col("id", partitioner.TypeString, false)},
		{Column: col("id2", partitioner.TypeString, false), Path: "id"},
	}}
	d := mustNew(t, spec)
	tests := []struct {
		name   string
		in     string
		want   []want
		reason Reason
		field  string
	}{
		{"all", `{"id":"top","device":{"os":{"name":"android","v":1},"id":"d1"}}`,
			[]want{wStr("d1"), wStr("android"), wStr(`{"os":{"name":"android","v":1},"id":"d1"}`), wStr("top"), wStr("top")}, "", ""},
		{"absent parent", `{"id":"x"}`, []want{wNull(), wNull(), wNull(), wStr("x"), wStr("x")}, "", ""},
		{"null parent", `{"device":null}`, []want{wNull(), wNull(), wNull(), wNull(), wNull()}, "", ""},
		{"empty parent", `{"device":{}}`, []want{wNull(), wNull(), wStr("{}"), wNull(), wNull()}, "", ""},
		{"parent not object", `{"device":"phone"}`, nil, ReasonWrongType, "device_id"},
		{"parent array", `{"device":[{"id":"x"}]}`, nil, ReasonWrongType, "device_id"},
		{"middle not object", `{"device":{"id":"d","os":7}}`, nil, ReasonWrongType, "os"},
		{"middle null", `{"device":{"id":"d","os":null}}`, []want{wStr("d"), wNull(), wStr(`{"id":"d","os":null}`), wNull(), wNull()}, "", ""},
		{"leaf is object", `{"device":{"id":{"x":1}}}`, nil, ReasonWrongType, "device_id"},
		{"escaped keys", `{"dev\u0069ce":{"\u0069d":"e"}}`, []want{wStr("e"), wNull(), wStr(`{"\u0069d":"e"}`), wNull(), wNull()}, "", ""},
		{"prefix key not matched", `{"devices":{"id":"x"},"device.id":"y","i":"z"}`, []want{wNull(), wNull(), wNull(), wNull(), wNull()}, "", ""},
		{"deep unknown", `{"x":{"y":{"z":[[[{"device":{"id":"no"}}]]]}},"device":{"id":"yes"}}`,
			[]want{wStr("yes"), wNull(), wStr(`{"id":"yes"}`), wNull(), wNull()}, "", ""},
		// Duplicate keys: the last occurrence wins, whole subtrees included.
		{"dup leaf", `{"id":"a","id":"b"}`, []want{wNull(), wNull(), wNull(), wStr("b"), wStr("b")}, "", ""},
		{"dup leaf bad then good", `{"id":1,"id":"b"}`, []want{wNull(), wNull(), wNull(), wStr("b"), wStr("b")}, "", ""},
		{"dup leaf good then bad", `{"id":"b","id":1}`, nil, ReasonWrongType, "id"},
		{"dup leaf then null", `{"id":"b","id":null}`, []want{wNull(), wNull(), wNull(), wNull(), wNull()}, "", ""},
		{"dup parent replaces", `{"device":{"id":"a","os":{"name":"n"}},"device":{"id":"b"}}`,
			[]want{wStr("b"), wNull(), wStr(`{"id":"b"}`), wNull(), wNull()}, "", ""},
		{"dup parent null", `{"device":{"id":"a"},"device":null}`, []want{wNull(), wNull(), wNull(), wNull(), wNull()}, "", ""},
		{"dup parent scalar then object", `{"device":1,"device":{"id":"c"}}`,
			[]want{wStr("c"), wNull(), wStr(`{"id":"c"}`), wNull(), wNull()}, "", ""},
		{"dup inside nested", `{"device":{"id":"a","id":"z"}}`, []want{wStr("z"), wNull(), wStr(`{"id":"a","id":"z"}`), wNull(), wNull()}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			row, _, err := d.Decode([]byte(tc.in), recTime)
			if tc.reason != "" {
				var e *Error
				if !errors.As(err, &e) || e.Reason != tc.reason || e.Field != tc.field {
					t.Fatalf("got %v, want %s on %s", err, tc.reason, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tc.want {
				checkValue(t, row[i], w)
			}
		})
	}
}

func TestBadJSON(t *testing.T) {
	d := mustNew(t, clickstreamSpec())
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	tests := []string{
		``, ` `, `null`, `[]`, `"s"`, `1`, `true`,
		`{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{"a" 1}`, `{a:1}`, `{'a':1}`,
		`{"a":1}x`, `{"a":1}{}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":+1}`, `{"a":1e}`, `{"a":1e+}`, `{"a":-}`,
		`{"a":0x10}`, `{"a":NaN}`, `{"a":Infinity}`, `{"a":tru}`, `{"a":nul}`, `{"a":True}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"\t\"}", "{\"a\":\"\x00\"}", `{"a":"unterminated}`,
		`{"a":[1,2}`, `{"a":{"b":1]}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":{"b"}}`, `{"a":{,}}`,
		`{"device":{"id":"x",}}`, `{"device":{"id" "x"}}`, `{"event_id":"x"`, `{"event_id":"x",`,
		"\ufeff{}", "{\"a\":1}\x00", "{\"a\":1\v}",
		`{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,                // depth 10001
		`{"device":` + strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat("}", 10000) + `}`, // depth 10001 via a walked node
		`{"a":` + deep[:len(deep)-1] + `}`,
		// Invalid syntax wins over invalid UTF-8 and over field errors.
		"{\"a\":\"\xff\",}", `{"event_id":1,}`,
	}
	for _, in := range tests {
		_, _, err := d.Decode([]byte(in), recTime)
		if got := reasonOf(err); got != ReasonBadJSON {
			t.Errorf("%.60q: got %v, want bad_json", in, err)
		}
	}
	// Depth 10000 is still fine, as with encoding/json.
	ok := `{"event_id":"e","a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `,"ts":1764075600000}`
	if _, _, err := d.Decode([]byte(ok), recTime); err != nil {
		t.Fatalf("depth 10000: %v", err)
	}
}

func TestOversized(t *testing.T) {
	spec := clickstreamSpec()
	spec.MaxBytes = len(clickstreamRecord)
	d := mustNew(t, spec)
	if _, _, err := d.Decode(clickstreamRecord, recTime); err != nil {
		t.Fatalf("record at the limit: %v", err)
	}
	big := append([]byte(" "), clickstreamRecord...)
	if _, _, err := d.Decode(big, recTime); reasonOf(err) != ReasonOversized {
		t.Fatalf("got %v, want oversized", err)
	}
	// Oversized wins over bad JSON: the record is not even parsed.
	if _, _, err := d.Decode(make([]byte, len(big)), recTime); reasonOf(err) != ReasonOversized {
		t.Fatalf("got %v, want oversized", err)
	}
}

func TestEventTime(t *testing.T) {
	tests := []struct {
		format TimeFormat
		in     string
		want   time.Time
		reason Reason
	}{
		{UnixMillis, `1764075600123`, time.UnixMilli(1764075600123), ""},
		{UnixMillis, `1764075600123.9`, time.UnixMilli(1764075600123), ""},
		{UnixMillis, `1.7640756001239e12`, time.UnixMilli(1764075600123), ""},
		{UnixMillis, `0`, time.UnixMilli(0), ""},
		{UnixMillis, `-0.0`, time.UnixMilli(0), ""},
		{UnixMillis, `1e-99999999`, time.UnixMilli(0), ""},
		{UnixMillis, `-1e-99999999`, time.Time{}, ReasonBadTime},
		{UnixMillis, `-1`, time.Time{}, ReasonBadTime},
		{UnixMillis, `7258118399999`, time.UnixMilli(7258118399999), ""},
		{UnixMillis, `7258118400000`, time.Time{}, ReasonBadTime},
		{UnixMillis, `1e30`, time.Time{}, ReasonBadTime},
		{UnixMillis, `"1764075600123"`, time.Time{}, ReasonBadTime},
		{UnixMillis, `null`, time.Time{}, ReasonBadTime},
		{UnixMillis, `{}`, time.Time{}, ReasonBadTime},
		{UnixSeconds, `1764075600`, time.UnixMilli(1764075600000), ""},
		{UnixSeconds, `1764075600.1239`, time.UnixMilli(1764075600123), ""},
		{UnixSeconds, `1764075600.123`, time.UnixMilli(1764075600123), ""}, // exact, no float rounding
		{UnixSeconds, `1.764075600123e9`, time.UnixMilli(1764075600123), ""},
		{UnixSeconds, `1764075600123`, time.Time{}, ReasonBadTime}, // ms sent as seconds
		{UnixSeconds, `true`, time.Time{}, ReasonBadTime},
		{RFC3339, `"2026-11-25T13:00:00.123456789Z"`, time.Date(2026, 11, 25, 13, 0, 0, 123456789, time.UTC), ""},
		{RFC3339, `"2026-11-25T15:00:00+02:00"`, time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC), ""},
		{RFC3339, `"1970-01-01T00:00:00Z"`, time.Unix(0, 0), ""},
		{RFC3339, `"1969-12-31T23:59:59.999Z"`, time.Time{}, ReasonBadTime},
		{RFC3339, `"2200-01-01T00:00:00Z"`, time.Time{}, ReasonBadTime},
		{RFC3339, `"2199-12-31T23:59:59.999Z"`, time.Date(2199, 12, 31, 23, 59, 59, 999000000, time.UTC), ""},
		{RFC3339, `"2026-11-25"`, time.Time{}, ReasonBadTime},
		{RFC3339, `1764075600123`, time.Time{}, ReasonBadTime},
	}
	for _, tc := range tests {
		d := mustNew(t, Spec{TimePath: "meta.t", TimeFormat: tc.format})
		_, got, err := d.Decode([]byte(`{"meta":{"t":`+tc.in+`}}`), recTime)
		if tc.reason != "" {
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.reason || e.Field != "meta.t" {
				t.Errorf("%v %s: got %v, want %s", tc.format, tc.in, err, tc.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v %s: %v", tc.format, tc.in, err)
			continue
		}
		if !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("%v %s: got %v, want %v in UTC", tc.format, tc.in, got, tc.want.UTC())
		}
	}

	// Missing time and a non-object on its path.
	d := mustNew(t, Spec{TimePath: "meta.t", TimeFormat: UnixMillis})
	for _, in := range []string{`{}`, `{"meta":{}}`, `{"meta":null}`, `{"meta":5}`} {
		if _, _, err := d.Decode([]byte(in), recTime); reasonOf(err) != ReasonBadTime {
			t.Errorf("%s: got %v, want bad_time", in, err)
		}
	}
}

func TestRecordTimestamp(t *testing.T) {
	d := mustNew(t, one(partitioner.TypeString))
	local := time.FixedZone("x", 3600)
	_, got, err := d.Decode([]byte(`{}`), recTime.In(local))
	if err != nil || !got.Equal(recTime) || got.Location() != time.UTC {
		t.Fatalf("got %v, %v; want %v in UTC", got, err, recTime)
	}
	for _, rt := range []time.Time{{}, time.UnixMilli(-1), time.UnixMilli(MaxEventTimeMillis)} {
		if _, _, err := d.Decode([]byte(`{}`), rt); reasonOf(err) != ReasonBadTime {
			t.Errorf("record time %v: got %v, want bad_time", rt, err)
		}
	}
}

func TestTimeFieldIsAlsoColumn(t *testing.T) {
	spec := clickstreamSpec()
	d := mustNew(t, spec)
	row, et, err := d.Decode(clickstreamRecord, recTime)
	if err != nil {
		t.Fatal(err)
	}
	checkValue(t, row[2], wI64(1764075600123))
	if !et.Equal(time.UnixMilli(1764075600123)) {
		t.Fatalf("event time %v", et)
	}
	// Column errors come before time errors.
	_, _, err = d.Decode([]byte(`{"event_id":"e","ts":1.5}`), recTime)
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonOutOfRange || e.Field != "ts" {
		t.Fatalf("got %v, want out_of_range on ts", err)
	}
}

func TestClickstream(t *testing.T) {
	d := mustNew(t, clickstreamSpec())
	row, et, err := d.Decode(clickstreamRecord, recTime)
	if err != nil {
		t.Fatal(err)
	}
	wants := []want{
		wStr("8f14e45f-ceea-467f-a0e6-6b1f5e3c9a2d"), wStr("u-1234567"), wI64(1764075600123),
		wStr("https://shop.example.com/products/12345?ref=home&utm_source=news"), wStr("d-98765"),
		wF64(129.99), wStr("s-abcdef"), wStr(`{"campaign":"winter","ab":["a","b"],"score":0.87}`),
	}
	for i, w := range wants {
		checkValue(t, row[i], w)
	}
	if !et.Equal(time.UnixMilli(1764075600123)) {
		t.Fatalf("event time %v", et)
	}
}

// TestReuse checks that a Decoder gives the right answer after failures and
// after records of different shapes, and that escaped strings of one record
// don't corrupt each other.
func TestReuse(t *testing.T) {
	d := mustNew(t, Spec{Fields: []Field{
		{Column: col("a", partitioner.TypeString, false)},
		{Column: col("b", partitioner.TypeString, false)},
		{Column: col("c", partitioner.TypeString, false)},
	}})
	inputs := []struct {
		in   string
		want []want
	}{
		{`{"a":"\u0041\u0042","b":"x\ny","c":"plain"}`, []want{wStr("AB"), wStr("x\ny"), wStr("plain")}},
		{`{"a":"` + strings.Repeat(`\t`, 100) + `","b":"\"","a":"\\"}`, []want{wStr(`\`), wStr(`"`), wNull()}},
		{`{"a":1`, nil},
		{`{"c":"\/"}`, []want{wNull(), wNull(), wStr("/")}},
	}
	for round := 0; round < 3; round++ {
		for _, in := range inputs {
			row, _, err := d.Decode([]byte(in.in), recTime)
			if in.want == nil {
				if err == nil {
					t.Fatalf("%s: no error", in.in)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", in.in, err)
			}
			for i, w := range in.want {
				checkValue(t, row[i], w)
			}
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	d := mustNew(t, clickstreamSpec())
	escaped := []byte(`{"event_id":"\u00e9\n","url":"a\/b","device":{"id":"\ud83d\ude00"},"ts":"x","ts":1764075600123,"attrs":[1,2,{"a":null}]}`)
	for _, rec := range [][]byte{clickstreamRecord, escaped} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, _, err := d.Decode(rec, recTime); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per record, want 0", rec, allocs)
		}
	}
}

func TestErrorString(t *testing.T) {
	d := mustNew(t, clickstreamSpec())
	_, _, err := d.Decode([]byte(`{"event_id":"e","price":"`+strings.Repeat("x", 100)+`"}`), recTime)
	want := `wrong_type: price: expected a number (got "` + strings.Repeat("x", 63) + `...)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	_, _, err = d.Decode([]byte(`[]`), recTime)
	if err == nil || err.Error() != "bad_json: record is not a JSON object" {
		t.Fatalf("got %q", err)
	}
	_, _, err = d.Decode([]byte(`{"a":tx}`), recTime)
	if err == nil || err.Error() != "bad_json: offset 5: invalid literal" {
		t.Fatalf("got %q", err)
	}
	_, _, err = d.Decode([]byte("{\"a\":\"\xff\"}"), recTime)
	if err == nil || err.Error() != "bad_utf8: offset 6: invalid UTF-8 in string" {
		t.Fatalf("got %q", err)
	}
}

func TestNewErrors(t *testing.T) {
	bad := []Spec{
		{Fields: []Field{{Column: col("", partitioner.TypeString, false)}}},
		{Fields: []Field{{Column: col("a", partitioner.TypeString, false), Path: "a..b"}}},
		{Fields: []Field{{Column: col("a", partitioner.TypeString, false), Path: ".a"}}},
		{Fields: []Field{{Column: col("a", 0, false)}}},
		{Fields: []Field{{Column: col("a", partitioner.TypeJSON+1, false)}}},
		{TimePath: "t"},
		{TimePath: "t", TimeFormat: 9},
		{TimePath: "t.", TimeFormat: UnixMillis},
		{MaxBytes: -1},
	}
	for i, s := range bad {
		if _, err := New(s); err == nil {
			t.Errorf("spec %d: New accepted %+v", i, s)
		}
	}
}

func TestParseTimeFormat(t *testing.T) {
	for _, f := range []TimeFormat{UnixMillis, UnixSeconds, RFC3339} {
		got, err := ParseTimeFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseTimeFormat(%q) = %v, %v", f.String(), got, err)
		}
	}
	if _, err := ParseTimeFormat("unix"); err == nil {
		t.Error("ParseTimeFormat accepted unix")
	}
}

func TestManyChildrenUsesIndex(t *testing.T) {
	var fields []Field
	for c := 'a'; c <= 'z'; c++ {
		fields = append(fields, Field{Column: col(string(c), partitioner.TypeInt64, false)})
	}
	d := mustNew(t, Spec{Fields: fields})
	if d.root.index == nil {
		t.Fatal("root has no index")
	}
	row, _, err := d.Decode([]byte(`{"z":26,"a":1,"m":13,"zz":0}`), recTime)
	if err != nil {
		t.Fatal(err)
	}
	checkValue(t, row[0], wI64(1))
	checkValue(t, row[12], wI64(13))
	checkValue(t, row[25], wI64(26))
	checkValue(t, row[1], wNull())
}
