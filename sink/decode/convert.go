package decode

import (
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/parquet-go/parquet-go"
)

// convert stores in *out the Parquet value of column col from a captured
// value of the given kind, raw JSON text and (for strings) unescaped content.
// A non-empty reason reports why it cannot.
func convert(out *parquet.Value, col partitioner.Column, c *capture, raw, str []byte) (Reason, string) {
	switch c.kind {
	case kAbsent, kNull:
		if col.Required {
			if c.kind == kNull {
				return ReasonMissingField, "required field is null"
			}
			return ReasonMissingField, "required field is missing"
		}
		*out = parquet.NullValue()
		return "", ""
	case kNotObject:
		return ReasonWrongType, "a value on the field's path is not an object"
	}
	switch col.Type {
	case partitioner.TypeString:
		if c.kind != kString {
			return ReasonWrongType, "expected a string"
		}
		*out = parquet.ByteArrayValue(str)
		return "", ""
	case partitioner.TypeInt32, partitioner.TypeInt64:
		if c.kind != kNumber {
			return ReasonWrongType, "expected a number"
		}
		v, frac, overflow := toInt(raw, 0)
		switch {
		case overflow:
			return ReasonOutOfRange, "integer out of range"
		case frac:
			return ReasonOutOfRange, "not an integer"
		}
		if col.Type == partitioner.TypeInt64 {
			*out = parquet.Int64Value(v)
			return "", ""
		}
		if v < math.MinInt32 || v > math.MaxInt32 {
			return ReasonOutOfRange, "integer out of int32 range"
		}
		*out = parquet.Int32Value(int32(v))
		return "", ""
	case partitioner.TypeDouble, partitioner.TypeFloat:
		if c.kind != kNumber {
			return ReasonWrongType, "expected a number"
		}
		if col.Type == partitioner.TypeDouble {
			f, err := strconv.ParseFloat(unsafeString(raw), 64)
			if err != nil {
				return ReasonOutOfRange, "number out of double range"
			}
			*out = parquet.DoubleValue(f)
			return "", ""
		}
		f, err := strconv.ParseFloat(unsafeString(raw), 32)
		if err != nil {
			return ReasonOutOfRange, "number out of float range"
		}
		*out = parquet.FloatValue(float32(f))
		return "", ""
	case partitioner.TypeBool:
		switch c.kind {
		case kTrue:
			*out = parquet.BooleanValue(true)
			return "", ""
		case kFalse:
			*out = parquet.BooleanValue(false)
			return "", ""
		}
		return ReasonWrongType, "expected true or false"
	case partitioner.TypeTimestampMillis, partitioner.TypeTimestampMicros:
		switch c.kind {
		case kNumber:
			v, frac, overflow := toInt(raw, 0)
			switch {
			case overflow:
				return ReasonOutOfRange, "timestamp out of range"
			case frac:
				return ReasonOutOfRange, "timestamp is not an integer"
			}
			*out = parquet.Int64Value(v)
			return "", ""
		case kString:
			t, ok := parseRFC3339(str)
			if !ok {
				return ReasonBadTime, "not an RFC 3339 timestamp"
			}
			if col.Type == partitioner.TypeTimestampMillis {
				*out = parquet.Int64Value(t.UnixMilli())
				return "", ""
			}
			*out = parquet.Int64Value(t.UnixMicro())
			return "", ""
		}
		return ReasonWrongType, "expected a number or an RFC 3339 string"
	case partitioner.TypeDate:
		if c.kind != kString {
			return ReasonWrongType, "expected a YYYY-MM-DD or RFC 3339 string"
		}
		if days, ok := parseDate(str); ok {
			*out = parquet.Int32Value(days)
			return "", ""
		}
		t, ok := parseRFC3339(str)
		if !ok {
			return ReasonBadTime, "not a YYYY-MM-DD date or RFC 3339 timestamp"
		}
		*out = parquet.Int32Value(int32(floorDiv(t.Unix(), 86400)))
		return "", ""
	case partitioner.TypeJSON:
		*out = parquet.ByteArrayValue(raw)
		return "", ""
	}
	return ReasonWrongType, "unknown column type" // New rejects these
}

// parseEventTime interprets the captured event-time value; a non-empty message
// says why it cannot (always ReasonBadTime).
func parseEventTime(format TimeFormat, k kind, raw, str []byte) (time.Time, string) {
	switch k {
	case kAbsent:
		return time.Time{}, "time field is missing"
	case kNull:
		return time.Time{}, "time field is null"
	case kNotObject:
		return time.Time{}, "a value on the time field's path is not an object"
	}
	var ms int64
	switch format {
	case UnixMillis, UnixSeconds:
		if k != kNumber {
			return time.Time{}, "expected a number for " + format.String()
		}
		scale := 0
		if format == UnixSeconds {
			scale = 3
		}
		v, _, overflow := toInt(raw, scale)
		if overflow {
			return time.Time{}, "time out of range"
		}
		ms = v
		if ms < MinEventTimeMillis || ms >= MaxEventTimeMillis {
			return time.Time{}, "time outside [1970, 2200)"
		}
		return time.UnixMilli(ms).UTC(), ""
	default: // RFC3339
		if k != kString {
			return time.Time{}, "expected an RFC 3339 string"
		}
		t, ok := parseRFC3339(str)
		if !ok {
			return time.Time{}, "not an RFC 3339 timestamp"
		}
		if ms = t.UnixMilli(); ms < MinEventTimeMillis || ms >= MaxEventTimeMillis {
			return time.Time{}, "time outside [1970, 2200)"
		}
		return t, ""
	}
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// toInt converts a validated JSON number literal, multiplied by 10^scale, to
// the largest int64 not above it (floor). frac reports that the value was not
// an integer; overflow that the floor does not fit an int64. It is exact: the
// value is taken from the decimal digits, never through a float.
func toInt(lit []byte, scale int) (v int64, frac, overflow bool) {
	if v, ok := smallInt(lit); ok {
		switch {
		case scale == 0:
			return v, false, false
		case scale == 3 && -1e15 < v && v < 1e15:
			return v * 1000, false, false
		}
	}
	neg := false
	k := 0
	if lit[0] == '-' {
		neg = true
		k = 1
	}
	s := k
	for k < len(lit) && isDigit(lit[k]) {
		k++
	}
	ip := lit[s:k]
	var fp []byte
	if k < len(lit) && lit[k] == '.' {
		k++
		s = k
		for k < len(lit) && isDigit(lit[k]) {
			k++
		}
		fp = lit[s:k]
	}
	var exp int64
	if k < len(lit) { // 'e' or 'E'
		k++
		eneg := false
		if lit[k] == '+' || lit[k] == '-' {
			eneg = lit[k] == '-'
			k++
		}
		for ; k < len(lit); k++ {
			if exp < 1<<40 { // saturate: far beyond any int64
				exp = exp*10 + int64(lit[k]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	d := digits{ip, fp}
	n := len(ip) + len(fp)
	first := 0
	for first < n && d.at(first) == '0' {
		first++
	}
	if first == n {
		return 0, false, false
	}
	last := n - 1
	for d.at(last) == '0' {
		last--
	}
	// value = D * 10^e with D the digits first..last.
	nd := int64(last - first + 1)
	e := exp - int64(len(fp)) + int64(n-1-last) + int64(scale)
	var u uint64
	if e >= 0 {
		if nd+e > 19 {
			return 0, false, true
		}
		for j := first; j <= last; j++ {
			u = u*10 + uint64(d.at(j)-'0')
		}
		for ; e > 0; e-- {
			u *= 10 // nd+e <= 19 digits fit in a uint64
		}
	} else {
		frac = true
		whole := nd + e // digits before the decimal point
		if whole > 19 {
			return 0, true, true
		}
		for j := first; j < first+int(whole); j++ {
			u = u*10 + uint64(d.at(j)-'0')
		}
		if neg {
			u++ // floor of a negative non-integer
		}
	}
	if neg {
		if u > 1<<63 {
			return 0, frac, true
		}
		return int64(-u), frac, false
	}
	if u > math.MaxInt64 {
		return 0, frac, true
	}
	return int64(u), frac, false
}

// smallInt is the fast path of toInt for plain integers of up to 18 digits,
// the usual case for ids and epoch timestamps.
func smallInt(lit []byte) (int64, bool) {
	s := lit
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range s {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if len(s) < len(lit) {
		v = -v
	}
	return v, true
}

// digits is the concatenation of a number's integer and fraction digits.
type digits struct{ ip, fp []byte }

func (d digits) at(j int) byte {
	if j < len(d.ip) {
		return d.ip[j]
	}
	return d.fp[j-len(d.ip)]
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// num2 parses two ASCII digits.
func num2(s []byte) (int, bool) {
	if !isDigit(s[0]) || !isDigit(s[1]) {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

// ymd parses "YYYY-MM-DD" at the start of s (len(s) >= 10) and checks the day.
func ymd(s []byte) (y, m, d int, ok bool) {
	hi, ok1 := num2(s[0:2])
	lo, ok2 := num2(s[2:4])
	m, ok3 := num2(s[5:7])
	d, ok4 := num2(s[8:10])
	if !(ok1 && ok2 && ok3 && ok4 && s[4] == '-' && s[7] == '-') {
		return 0, 0, 0, false
	}
	y = hi*100 + lo
	if m < 1 || m > 12 || d < 1 || d > daysIn(m, y) {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parseDate parses exactly "YYYY-MM-DD" into days since 1970-01-01.
func parseDate(s []byte) (int32, bool) {
	if len(s) != 10 {
		return 0, false
	}
	y, m, d, ok := ymd(s)
	if !ok {
		return 0, false
	}
	return int32(floorDiv(time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix(), 86400)), true
}

// parseRFC3339 parses the strict RFC 3339 form described in the package
// doc: the grammar of time.Parse(time.RFC3339Nano)'s fast path, without its
// lenient fallback and without allocating a time.Location for offsets.
func parseRFC3339(s []byte) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") {
		return time.Time{}, false
	}
	y, mo, d, ok := ymd(s)
	if !ok || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	h, ok1 := num2(s[11:13])
	mi, ok2 := num2(s[14:16])
	sec, ok3 := num2(s[17:19])
	if !(ok1 && ok2 && ok3) || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	s = s[19:]
	nsec := 0
	if len(s) >= 2 && s[0] == '.' && isDigit(s[1]) {
		n := 1
		for ; n < len(s) && isDigit(s[n]); n++ {
			if n <= 9 {
				nsec = nsec*10 + int(s[n]-'0')
			}
		}
		for k := n; k <= 9; k++ {
			nsec *= 10
		}
		s = s[n:]
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, nsec, time.UTC)
	if len(s) == 1 && s[0] == 'Z' {
		return t, true
	}
	if len(s) != len("+07:00") || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
		return time.Time{}, false
	}
	oh, ok1 := num2(s[1:3])
	om, ok2 := num2(s[4:6])
	if !ok1 || !ok2 || oh > 23 || om > 59 {
		return time.Time{}, false
	}
	off := time.Duration(oh*60+om) * time.Minute
	if s[0] == '+' {
		off = -off
	}
	return t.Add(off), true
}
