package infer

import (
	"strconv"
	"unsafe"

	"github.com/lakesink/lakesink/sink/decode"
)

// A small validating JSON scanner shared by Observe and Decode. Records
// reach it after the stream's probe decoder (package decode) has checked
// syntax, UTF-8 and size, so it only needs to be correct and never panic on
// anything else (the fuzz test feeds it arbitrary bytes); it reports -1 for
// bad syntax instead of describing it.

// maxSyntaxDepth is encoding/json's nesting limit, as in package decode.
const maxSyntaxDepth = 10000

func ws(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the index just after the JSON value starting at i, or
// -1 if it is not valid JSON.
func skipValue(data []byte, i, depth int) int {
	if i >= len(data) {
		return -1
	}
	switch c := data[i]; {
	case c == '{' || c == '[':
		if depth >= maxSyntaxDepth {
			return -1
		}
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		i = ws(data, i+1)
		if i < len(data) && data[i] == close {
			return i + 1
		}
		for {
			if c == '{' {
				if i >= len(data) || data[i] != '"' {
					return -1
				}
				if i, _ = skipString(data, i); i < 0 {
					return -1
				}
				if i = ws(data, i); i >= len(data) || data[i] != ':' {
					return -1
				}
				i = ws(data, i+1)
			}
			if i = skipValue(data, i, depth+1); i < 0 {
				return -1
			}
			if i = ws(data, i); i >= len(data) {
				return -1
			}
			switch data[i] {
			case ',':
				i = ws(data, i+1)
			case close:
				return i + 1
			default:
				return -1
			}
		}
	case c == '"':
		end, _ := skipString(data, i)
		return end
	case c == '-' || (c >= '0' && c <= '9'):
		end, _ := skipNumber(data, i)
		return end
	case c == 't':
		return literal(data, i, "true")
	case c == 'f':
		return literal(data, i, "false")
	case c == 'n':
		return literal(data, i, "null")
	}
	return -1
}

func literal(data []byte, i int, lit string) int {
	if len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

// skipString scans the string starting at the quote at i and returns the
// index after its closing quote (-1 if invalid) and whether it holds
// escapes.
func skipString(data []byte, i int) (int, bool) {
	escaped := false
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			return i + 1, escaped
		case c < 0x20:
			return -1, false
		case c == '\\':
			escaped = true
			if i+1 >= len(data) {
				return -1, false
			}
			i++
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if _, ok := decode.Hex4(data, i+1); !ok {
					return -1, false
				}
				i += 4
			default:
				return -1, false
			}
		}
	}
	return -1, false
}

// skipNumber scans the number at i and returns the index after it (-1 if
// invalid) and whether it is written as an integer (no fraction, no
// exponent).
func skipNumber(data []byte, i int) (int, bool) {
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return -1, false
	case data[i] == '0':
		i++
	case data[i] >= '1' && data[i] <= '9':
		for i++; i < len(data) && isDigit(data[i]); i++ {
		}
	default:
		return -1, false
	}
	integer := true
	if i < len(data) && data[i] == '.' {
		integer = false
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return -1, false
		}
		for ; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		integer = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return -1, false
		}
		for ; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	return i, integer
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// numberKind classifies a number literal: an integer literal that fits an
// int64 is KindInt, any other finite number KindDouble, and a literal that
// neither holds exactly (an integer beyond int64) nor as a finite double
// KindJSON, so that its exact text is kept.
func numberKind(lit []byte, integer bool) Kind {
	s := unsafeString(lit)
	if integer {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			return KindInt
		}
		return KindJSON
	}
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return KindJSON
	}
	return KindDouble
}

// unescape appends the content of the JSON string literal s (quotes
// included, already validated) to dst, resolving escapes.
func unescape(dst, s []byte) []byte { return decode.AppendUnescaped(dst, s[1:len(s)-1]) }

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
