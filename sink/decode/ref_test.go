package decode

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/parquet-go/parquet-go"
)

// This file is a slow reference implementation of the package's documented
// rules, built on encoding/json (json.Valid, Decoder.UseNumber,
// map[string]json.RawMessage) plus math/big, regexp and time.Parse. It shares
// no code with the decoder except the public types, and is what the
// differential fuzz test compares the decoder against.

type refResult struct {
	row    []parquet.Value
	time   time.Time
	reason Reason
	field  string
}

func refDecode(spec Spec, value []byte, recordTime time.Time) refResult {
	if spec.MaxBytes > 0 && len(value) > spec.MaxBytes {
		return refResult{reason: ReasonOversized}
	}
	if !json.Valid(value) {
		return refResult{reason: ReasonBadJSON}
	}
	if trimmed := bytes.TrimLeft(value, " \t\r\n"); trimmed[0] != '{' {
		return refResult{reason: ReasonBadJSON}
	}
	if !utf8.Valid(value) || refLoneSurrogate(value) {
		return refResult{reason: ReasonBadUTF8}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(value, &top); err != nil {
		panic("valid object does not unmarshal: " + err.Error())
	}
	res := refResult{row: make([]parquet.Value, len(spec.Fields))}
	for i, f := range spec.Fields {
		path := f.Path
		if path == "" {
			path = f.Column.Name
		}
		raw, st := refLookup(top, path)
		v, reason := refConvert(f.Column, raw, st)
		if reason != "" {
			return refResult{reason: reason, field: f.Column.Name}
		}
		res.row[i] = v
	}
	if spec.TimePath == "" {
		ms := recordTime.UnixMilli()
		if ms < MinEventTimeMillis || ms >= MaxEventTimeMillis {
			return refResult{reason: ReasonBadTime}
		}
		res.time = recordTime
		return res
	}
	raw, st := refLookup(top, spec.TimePath)
	t, ok := refEventTime(spec.TimeFormat, raw, st)
	if !ok {
		return refResult{reason: ReasonBadTime, field: spec.TimePath}
	}
	res.time = t
	return res
}

var refEscape = regexp.MustCompile(`\\(u[0-9a-fA-F]{4}|.)`)

// refLoneSurrogate reports a \u escape of a UTF-16 surrogate that is not
// part of a high-low pair. value is valid JSON, so every backslash starts an
// escape inside a string.
func refLoneSurrogate(value []byte) bool {
	ms := refEscape.FindAllIndex(value, -1)
	code := func(m []int) rune {
		if m[1]-m[0] != 6 {
			return -1
		}
		r, _ := strconv.ParseUint(string(value[m[0]+2:m[1]]), 16, 32)
		return rune(r)
	}
	for k := 0; k < len(ms); k++ {
		r := code(ms[k])
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r < 0xDC00 && k+1 < len(ms) && ms[k+1][0] == ms[k][1] {
			if r2 := code(ms[k+1]); 0xDC00 <= r2 && r2 <= 0xDFFF {
				k++
				continue
			}
		}
		return true
	}
	return false
}

type refStatus int

const (
	refFound refStatus = iota
	refAbsent
	refNotObject
)

func refLookup(top map[string]json.RawMessage, path string) (json.RawMessage, refStatus) {
	segs := strings.Split(path, ".")
	cur := top
	for k, s := range segs {
		raw, ok := cur[s]
		if !ok {
			return nil, refAbsent
		}
		if k == len(segs)-1 {
			if string(raw) == "null" {
				return nil, refAbsent
			}
			return raw, refFound
		}
		// Classify by the first byte: decoding the value into any would
		// fail on numbers beyond float64 deep inside it ({"":1e1000}),
		// which the decoder under test rightly never looks at.
		switch t := bytes.TrimSpace(raw); {
		case string(t) == "null":
			return nil, refAbsent
		case len(t) > 0 && t[0] == '{':
		default:
			return nil, refNotObject
		}
		cur = nil
		if err := json.Unmarshal(raw, &cur); err != nil {
			panic(err)
		}
	}
	panic("unreachable")
}

func refAny(raw json.RawMessage) any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		panic(err)
	}
	return v
}

func refConvert(c partitioner.Column, raw json.RawMessage, st refStatus) (parquet.Value, Reason) {
	switch st {
	case refAbsent:
		if c.Required {
			return parquet.Value{}, ReasonMissingField
		}
		return parquet.NullValue(), ""
	case refNotObject:
		return parquet.Value{}, ReasonWrongType
	}
	v := refAny(raw)
	switch c.Type {
	case partitioner.TypeString:
		if s, ok := v.(string); ok {
			return parquet.ByteArrayValue([]byte(s)), ""
		}
		return parquet.Value{}, ReasonWrongType
	case partitioner.TypeInt32, partitioner.TypeInt64:
		n, ok := v.(json.Number)
		if !ok {
			return parquet.Value{}, ReasonWrongType
		}
		q, isInt := refFloor(string(n), 0)
		if !isInt || !q.IsInt64() {
			return parquet.Value{}, ReasonOutOfRange
		}
		if c.Type == partitioner.TypeInt64 {
			return parquet.Int64Value(q.Int64()), ""
		}
		if q.Int64() < math.MinInt32 || q.Int64() > math.MaxInt32 {
			return parquet.Value{}, ReasonOutOfRange
		}
		return parquet.Int32Value(int32(q.Int64())), ""
	case partitioner.TypeDouble:
		n, ok := v.(json.Number)
		if !ok {
			return parquet.Value{}, ReasonWrongType
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return parquet.Value{}, ReasonOutOfRange
		}
		return parquet.DoubleValue(f), ""
	case partitioner.TypeFloat:
		n, ok := v.(json.Number)
		if !ok {
			return parquet.Value{}, ReasonWrongType
		}
		f, err := strconv.ParseFloat(string(n), 32)
		if err != nil {
			return parquet.Value{}, ReasonOutOfRange
		}
		return parquet.FloatValue(float32(f)), ""
	case partitioner.TypeBool:
		if b, ok := v.(bool); ok {
			return parquet.BooleanValue(b), ""
		}
		return parquet.Value{}, ReasonWrongType
	case partitioner.TypeTimestampMillis, partitioner.TypeTimestampMicros:
		switch x := v.(type) {
		case json.Number:
			q, isInt := refFloor(string(x), 0)
			if !isInt || !q.IsInt64() {
				return parquet.Value{}, ReasonOutOfRange
			}
			return parquet.Int64Value(q.Int64()), ""
		case string:
			t, ok := refRFC3339(x)
			if !ok {
				return parquet.Value{}, ReasonBadTime
			}
			if c.Type == partitioner.TypeTimestampMillis {
				return parquet.Int64Value(t.UnixMilli()), ""
			}
			return parquet.Int64Value(t.UnixMicro()), ""
		}
		return parquet.Value{}, ReasonWrongType
	case partitioner.TypeDate:
		s, ok := v.(string)
		if !ok {
			return parquet.Value{}, ReasonWrongType
		}
		var t time.Time
		if refDateRE.MatchString(s) {
			var err error
			if t, err = time.Parse("2006-01-02", s); err != nil {
				return parquet.Value{}, ReasonBadTime
			}
		} else if t, ok = refRFC3339(s); !ok {
			return parquet.Value{}, ReasonBadTime
		}
		days := new(big.Int).Div(big.NewInt(t.Unix()), big.NewInt(86400)) // Euclidean = floor for a positive divisor
		return parquet.Int32Value(int32(days.Int64())), ""
	case partitioner.TypeJSON:
		return parquet.ByteArrayValue(bytes.Clone(raw)), ""
	}
	panic("unknown type")
}

var (
	refDateRE    = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	refRFC3339RE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$`)
)

func refRFC3339(s string) (time.Time, bool) {
	if !refRFC3339RE.MatchString(s) {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// refFloor returns floor(lit * 10^scale) and whether that product is an
// integer, with math/big. Exponents too large for big.Rat to handle quickly
// are decided by magnitude.
func refFloor(lit string, scale int) (*big.Int, bool) {
	mant, expStr := lit, "0"
	if k := strings.IndexAny(lit, "eE"); k >= 0 {
		mant, expStr = lit[:k], lit[k+1:]
	}
	zero := strings.Trim(mant, "-0.") == ""
	if zero {
		return new(big.Int), true
	}
	exp, err := strconv.ParseInt(expStr, 10, 64)
	limit := int64(len(lit) + 40)
	if err != nil || exp > limit || exp < -limit {
		if !strings.HasPrefix(expStr, "-") {
			return new(big.Int).Lsh(big.NewInt(1), 200), true // certainly beyond int64
		}
		// |value| < 1 and not zero.
		if strings.HasPrefix(mant, "-") {
			return big.NewInt(-1), false
		}
		return new(big.Int), false
	}
	r, ok := new(big.Rat).SetString(mant + "e" + strconv.FormatInt(exp+int64(scale), 10))
	if !ok {
		panic("big.Rat cannot parse " + lit)
	}
	return new(big.Int).Div(r.Num(), r.Denom()), r.IsInt()
}

func refEventTime(format TimeFormat, raw json.RawMessage, st refStatus) (time.Time, bool) {
	if st != refFound {
		return time.Time{}, false
	}
	v := refAny(raw)
	var t time.Time
	switch format {
	case UnixMillis, UnixSeconds:
		n, ok := v.(json.Number)
		if !ok {
			return time.Time{}, false
		}
		scale := 0
		if format == UnixSeconds {
			scale = 3
		}
		q, _ := refFloor(string(n), scale)
		if !q.IsInt64() {
			return time.Time{}, false
		}
		t = time.UnixMilli(q.Int64())
	case RFC3339:
		s, ok := v.(string)
		if !ok {
			return time.Time{}, false
		}
		if t, ok = refRFC3339(s); !ok {
			return time.Time{}, false
		}
	}
	if ms := t.UnixMilli(); ms < MinEventTimeMillis || ms >= MaxEventTimeMillis {
		return time.Time{}, false
	}
	return t, true
}
