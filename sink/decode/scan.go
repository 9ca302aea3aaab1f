package decode

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// The scanner works on (data, index) pairs and returns the index after what
// it consumed, or -1 after recording a syntax error with d.fail. Problems
// that are not syntax errors (bad UTF-8) are recorded and scanning goes on,
// so that a later syntax error still wins.

var (
	isSpace [256]bool // JSON whitespace
	strSafe [256]bool // bytes that need no attention inside a string
)

func init() {
	for _, c := range []byte(" \t\r\n") {
		isSpace[c] = true
	}
	for c := 0x20; c < 0x80; c++ {
		strSafe[c] = c != '"' && c != '\\'
	}
}

func ws(data []byte, i int) int {
	for i < len(data) && isSpace[data[i]] {
		i++
	}
	return i
}

func (d *Decoder) fail(i int, msg string) int {
	d.synOff, d.synMsg = i, msg
	return -1
}

func (d *Decoder) badUTF8(i int, msg string) {
	if d.utf8Off < 0 {
		d.utf8Off, d.utf8Msg = i, msg
	}
}

const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// special returns a word with the high bit set in the lowest byte of w that
// is a quote, a backslash, a control character or non-ASCII (and possibly in
// higher bytes too); zero when there is none.
func special(w uint64) uint64 {
	return ((w - 0x20*swarLo) | ((w ^ '"'*swarLo) - swarLo) | ((w ^ '\\'*swarLo) - swarLo) | w) & swarHi
}

// scanString validates the string whose opening quote is at data[i]. It
// returns the index after the closing quote and whether the string holds
// escapes.
func (d *Decoder) scanString(data []byte, i int) (int, bool) {
	i++
	esc := false
	for {
		for i+8 <= len(data) {
			if s := special(binary.LittleEndian.Uint64(data[i:])); s != 0 {
				i += bits.TrailingZeros64(s) >> 3
				break
			}
			i += 8
		}
		if i >= len(data) {
			return d.fail(i, "unterminated string"), esc
		}
		c := data[i]
		switch {
		case strSafe[c]:
			i++
		case c == '"':
			return i + 1, esc
		case c == '\\':
			esc = true
			if i = d.scanEscape(data, i); i < 0 {
				return -1, esc
			}
		case c < 0x20:
			return d.fail(i, "control character in string"), esc
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				d.badUTF8(i, "invalid UTF-8 in string")
			}
			i += size
		}
	}
}

// hex4 decodes the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// scanEscape validates the escape sequence whose backslash is at data[i].
func (d *Decoder) scanEscape(data []byte, i int) int {
	if i+1 >= len(data) {
		return d.fail(i, "unterminated string")
	}
	switch data[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2
	case 'u':
		r, ok := hex4(data, i+2)
		if !ok {
			return d.fail(i, `invalid \u escape`)
		}
		switch {
		case utf16.IsSurrogate(r) && r < 0xDC00:
			if i+12 <= len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
				if r2, ok := hex4(data, i+8); ok && 0xDC00 <= r2 && r2 < 0xE000 {
					return i + 12
				}
			}
			d.badUTF8(i, "unpaired surrogate escape")
		case utf16.IsSurrogate(r):
			d.badUTF8(i, "unpaired surrogate escape")
		}
		return i + 6
	}
	return d.fail(i, "invalid escape character")
}

// AppendUnescaped appends the unescaped form of s, the content of a JSON
// string already validated (without its quotes), to dst. Unpaired
// surrogates become U+FFFD. For other scanners of this module (infer), so
// that JSON escapes are resolved in one place.
func AppendUnescaped(dst, s []byte) []byte { return unescape(dst, s) }

// Hex4 decodes the four hex digits at data[i:i+4] (a \u escape).
func Hex4(data []byte, i int) (rune, bool) { return hex4(data, i) }

// unescape appends the unescaped form of the validated string content s to
// dst. Unpaired surrogates become U+FFFD (the record is rejected anyway).
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(s, i+2)
			if utf16.IsSurrogate(r) && i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
				r2, _ := hex4(s, i+8)
				if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
					dst = utf8.AppendRune(dst, p)
					i += 12
					continue
				}
			}
			dst = utf8.AppendRune(dst, r) // a lone surrogate appends U+FFFD
			i += 6
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// scanNumber validates the number starting at data[i].
func (d *Decoder) scanNumber(data []byte, i int) int {
	j := i
	if j < len(data) && data[j] == '-' {
		j++
	}
	switch {
	case j >= len(data):
		return d.fail(j, "unexpected end of input in number")
	case data[j] == '0':
		j++
	case '1' <= data[j] && data[j] <= '9':
		j++
		for j < len(data) && isDigit(data[j]) {
			j++
		}
	default:
		return d.fail(j, "invalid character looking for a value")
	}
	if j < len(data) && data[j] == '.' {
		j++
		if j >= len(data) || !isDigit(data[j]) {
			return d.fail(j, "expected digit after decimal point")
		}
		for j < len(data) && isDigit(data[j]) {
			j++
		}
	}
	if j < len(data) && (data[j] == 'e' || data[j] == 'E') {
		j++
		if j < len(data) && (data[j] == '+' || data[j] == '-') {
			j++
		}
		if j >= len(data) || !isDigit(data[j]) {
			return d.fail(j, "expected digit in exponent")
		}
		for j < len(data) && isDigit(data[j]) {
			j++
		}
	}
	return j
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanLiteral checks that data[i:] starts with lit.
func (d *Decoder) scanLiteral(data []byte, i int, lit string) int {
	if len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return d.fail(i, "invalid literal")
}

// key scans the object key at data[i] (which must be a quote) and the colon
// after it, returning the unescaped key and the index of the value.
func (d *Decoder) key(data []byte, i int) ([]byte, int) {
	if i >= len(data) || data[i] != '"' {
		return nil, d.fail(i, "expected string for object key")
	}
	j, esc := d.scanString(data, i)
	if j < 0 {
		return nil, -1
	}
	k := data[i+1 : j-1]
	if esc {
		d.keyBuf = unescape(d.keyBuf[:0], k)
		k = d.keyBuf
	}
	j = ws(data, j)
	if j >= len(data) || data[j] != ':' {
		return nil, d.fail(j, "expected colon after object key")
	}
	j = ws(data, j+1)
	if j >= len(data) {
		return nil, d.fail(j, "unexpected end of input looking for a value")
	}
	return k, j
}

// object scans the object at data[i] whose keys are looked up in n; depth is
// the nesting depth of this object (the record itself is 1).
func (d *Decoder) object(data []byte, i int, n *node, depth int) int {
	if depth > maxDepth {
		return d.fail(i, "exceeded max depth")
	}
	i = ws(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1
	}
	for {
		k, j := d.key(data, i)
		if j < 0 {
			return -1
		}
		if c := n.lookup(k); c != nil {
			j = d.member(data, j, c, depth)
		} else {
			j = d.skip(data, j, depth)
		}
		if j < 0 {
			return -1
		}
		j = ws(data, j)
		if j >= len(data) {
			return d.fail(j, "unexpected end of input in object")
		}
		switch data[j] {
		case ',':
			i = ws(data, j+1)
		case '}':
			return j + 1
		default:
			return d.fail(j, "expected comma or closing brace in object")
		}
	}
}

// member scans the value at data[i] of the key that matched trie node c,
// inside an object at the given depth, and captures it for c's fields.
func (d *Decoder) member(data []byte, i int, c *node, depth int) int {
	// A repeated key replaces everything an earlier occurrence supplied.
	for _, f := range c.sub {
		d.caps[f] = capture{}
	}
	start := i
	var k kind
	esc := false
	astart, aend := 0, 0
	switch data[i] {
	case '{':
		k = kObject
		if len(c.children) > 0 {
			i = d.object(data, i, c, depth+1)
		} else {
			i = d.skip(data, i, depth)
		}
	case '"':
		k = kString
		if i, esc = d.scanString(data, i); esc && i >= 0 && len(c.leafs) > 0 {
			astart = len(d.arena)
			d.arena = unescape(d.arena, data[start+1:i-1])
			aend = len(d.arena)
		}
	case '[':
		k = kArray
		i = d.skip(data, i, depth)
	case 't':
		k = kTrue
		i = d.scanLiteral(data, i, "true")
	case 'f':
		k = kFalse
		i = d.scanLiteral(data, i, "false")
	case 'n':
		k = kNull
		i = d.scanLiteral(data, i, "null")
	default:
		k = kNumber
		i = d.scanNumber(data, i)
	}
	if i < 0 {
		return -1
	}
	if k != kObject && k != kNull {
		for _, f := range c.sub {
			d.caps[f].kind = kNotObject
		}
	}
	for _, f := range c.leafs {
		d.caps[f] = capture{kind: k, escaped: esc, start: start, end: i, astart: astart, aend: aend}
	}
	return i
}

// skip validates the value at data[i] inside a container at the given depth
// without capturing anything. It keeps its own container stack, so deep
// nesting costs no Go stack.
func (d *Decoder) skip(data []byte, i int, depth int) int {
	stack := d.stack[:0]
	for {
		// A value starts at data[i].
		if i >= len(data) {
			return d.fail(i, "unexpected end of input looking for a value")
		}
		switch data[i] {
		case '{':
			if depth++; depth > maxDepth {
				return d.fail(i, "exceeded max depth")
			}
			if i = ws(data, i+1); i < len(data) && data[i] == '}' {
				i++
				depth--
				break
			}
			stack = append(stack, '{')
			d.stack = stack
			if _, i = d.key(data, i); i < 0 {
				return -1
			}
			continue
		case '[':
			if depth++; depth > maxDepth {
				return d.fail(i, "exceeded max depth")
			}
			if i = ws(data, i+1); i < len(data) && data[i] == ']' {
				i++
				depth--
				break
			}
			stack = append(stack, '[')
			d.stack = stack
			continue
		case '"':
			i, _ = d.scanString(data, i)
		case 't':
			i = d.scanLiteral(data, i, "true")
		case 'f':
			i = d.scanLiteral(data, i, "false")
		case 'n':
			i = d.scanLiteral(data, i, "null")
		default:
			i = d.scanNumber(data, i)
		}
		if i < 0 {
			return -1
		}
		// A value ended at data[i]: close containers until the next value.
	next:
		for {
			if len(stack) == 0 {
				return i
			}
			if i = ws(data, i); i >= len(data) {
				return d.fail(i, "unexpected end of input in container")
			}
			top := stack[len(stack)-1]
			switch c := data[i]; {
			case c == ',':
				if i = ws(data, i+1); top == '{' {
					if _, i = d.key(data, i); i < 0 {
						return -1
					}
				}
				break next
			case c == '}' && top == '{', c == ']' && top == '[':
				stack = stack[:len(stack)-1]
				depth--
				i++
			default:
				return d.fail(i, "expected comma or closing bracket")
			}
		}
	}
}
