package partitioner

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MarkerName is the name of the hour marker (the JSON manifest) that the
// finalizer writes last into a complete hour folder.
const MarkerName = "_SUCCESS"

// fileExt is the extension of every data file.
const fileExt = ".parquet"

// offsetDigits is the width of the zero-padded first offset in file names;
// 20 digits hold every non-negative int64.
const offsetDigits = 20

// segKind is one piece of a compiled path template.
type segKind uint8

const (
	segLiteral segKind = iota
	segStream
	segYear
	segMonth
	segDay
	segHour
)

var placeholders = map[string]segKind{
	"stream": segStream, "yyyy": segYear, "MM": segMonth, "dd": segDay, "HH": segHour,
}

type segment struct {
	kind segKind
	lit  string
}

// PathTemplate is a compiled partitioning.path template such as
// "{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}". It renders the folder, relative
// to the storage root, that holds one stream's files of one hour.
//
// A PathTemplate is immutable and safe for concurrent use.
type PathTemplate struct {
	src    string
	segs   []segment
	prefix int // segments before the first time placeholder
	size   int // rendered length without the stream names
}

// ParsePathTemplate compiles s. The placeholders are {stream}, {yyyy}, {MM},
// {dd} and {HH}; anything else in braces, or an unmatched brace, is an
// error. Every placeholder must appear at least once, so that a folder
// holds one wall-clock hour: only buckets of the same local date and hour
// share a folder (the two 01:00 hours of a fall-back night;
// FolderHours), and the finalizer writes one manifest covering them. The
// template must render a relative, clean
// path: no leading or trailing '/', no empty, "." or ".." element, no '\'.
func ParsePathTemplate(s string) (*PathTemplate, error) {
	p := &PathTemplate{src: s, prefix: -1}
	seen := map[segKind]bool{}
	rest := s
	for len(rest) > 0 {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			p.addLiteral(rest)
			break
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("path template %q: unmatched '}'", s)
		}
		if i > 0 {
			p.addLiteral(rest[:i])
		}
		j := strings.IndexAny(rest[i+1:], "{}")
		if j < 0 || rest[i+1+j] != '}' {
			return nil, fmt.Errorf("path template %q: unmatched '{'", s)
		}
		name := rest[i+1 : i+1+j]
		kind, ok := placeholders[name]
		if !ok {
			return nil, fmt.Errorf("path template %q: unknown placeholder {%s} (want {stream}, {yyyy}, {MM}, {dd} or {HH})", s, name)
		}
		if kind != segStream && p.prefix < 0 {
			p.prefix = len(p.segs)
		}
		seen[kind] = true
		p.segs = append(p.segs, segment{kind: kind})
		switch kind {
		case segYear:
			p.size += 4
		case segMonth, segDay, segHour:
			p.size += 2
		}
		rest = rest[i+2+j:]
	}
	for _, name := range []string{"stream", "yyyy", "MM", "dd", "HH"} {
		if !seen[placeholders[name]] {
			return nil, fmt.Errorf("path template %q: missing placeholder {%s}", s, name)
		}
	}
	if err := checkRelativePath(p.Render("s", time.Date(2006, 1, 2, 15, 0, 0, 0, time.UTC))); err != nil {
		return nil, fmt.Errorf("path template %q: %w", s, err)
	}
	return p, nil
}

func (p *PathTemplate) addLiteral(s string) {
	if n := len(p.segs); n > 0 && p.segs[n-1].kind == segLiteral {
		p.segs[n-1].lit += s
	} else {
		p.segs = append(p.segs, segment{kind: segLiteral, lit: s})
	}
	p.size += len(s)
}

func checkRelativePath(path string) error {
	if strings.ContainsRune(path, '\\') {
		return errors.New(`must not contain '\'`)
	}
	if strings.HasPrefix(path, "/") {
		return errors.New("must be relative (no leading '/')")
	}
	for _, elem := range strings.Split(path, "/") {
		switch elem {
		case "":
			return errors.New("must not have an empty path element (\"//\" or a trailing '/')")
		case ".", "..":
			return fmt.Errorf("must not have a %q path element", elem)
		}
	}
	return nil
}

// String returns the template as it was parsed.
func (p *PathTemplate) String() string { return p.src }

// Render returns the folder of stream's bucket for hour, with the date and
// hour fields taken in hour's own location (pass the value HourOf returned).
// Render is deterministic and allocates only the result.
func (p *PathTemplate) Render(stream string, hour time.Time) string {
	year, month, day := hour.Date()
	hh := hour.Hour()
	n := p.size
	for _, s := range p.segs {
		if s.kind == segStream {
			n += len(stream)
		}
	}
	var b strings.Builder
	b.Grow(n + 4)
	for _, s := range p.segs {
		switch s.kind {
		case segLiteral:
			b.WriteString(s.lit)
		case segStream:
			b.WriteString(stream)
		case segYear:
			if year >= 0 && year <= 9999 {
				b.Write([]byte{byte('0' + year/1000), byte('0' + year/100%10), byte('0' + year/10%10), byte('0' + year%10)})
			} else {
				b.WriteString(strconv.Itoa(year))
			}
		case segMonth:
			write2(&b, int(month))
		case segDay:
			write2(&b, day)
		case segHour:
			write2(&b, hh)
		}
	}
	return b.String()
}

func write2(b *strings.Builder, v int) {
	b.WriteByte(byte('0' + v/10))
	b.WriteByte(byte('0' + v%10))
}

// FileKey returns the key of a data file in the lake: the hour folder of
// stream and hour, then FileName(topic, partition, firstOffset). It is the
// one place data file keys are built (the worker uploads under it, the
// finalizer and the status page find files by it).
func (p *PathTemplate) FileKey(stream string, hour time.Time, topic string, partition int, firstOffset int64) string {
	return p.Render(stream, hour) + "/" + FileName(topic, partition, firstOffset)
}

// MarkerKey returns the key of the hour marker (MarkerName) in the hour
// folder of stream and hour.
func (p *PathTemplate) MarkerKey(stream string, hour time.Time) string {
	return p.Render(stream, hour) + "/" + MarkerName
}

// Prefix returns the rendered constant part of the template before its first
// time placeholder, for listing a stream's folders:
// "{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}" gives "clickstream/dt=". The
// prefix may end inside a path element.
func (p *PathTemplate) Prefix(stream string) string {
	var b strings.Builder
	for _, s := range p.segs[:p.prefix] {
		switch s.kind {
		case segLiteral:
			b.WriteString(s.lit)
		case segStream:
			b.WriteString(stream)
		}
	}
	return b.String()
}

// FileName returns the deterministic name of the data file of topic's
// partition whose first record has firstOffset:
// "<topic>+<partition>+<firstOffset zero-padded to 20 digits>.parquet".
// A replay of the same records therefore overwrites the file instead of
// adding one. partition and firstOffset must not be negative.
func FileName(topic string, partition int, firstOffset int64) string {
	b := make([]byte, 0, len(topic)+1+10+1+offsetDigits+len(fileExt))
	b = append(b, topic...)
	b = append(b, '+')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, '+')
	var digits [offsetDigits]byte
	u := uint64(firstOffset)
	for i := offsetDigits - 1; i >= 0; i-- {
		digits[i] = byte('0' + u%10)
		u /= 10
	}
	b = append(b, digits[:]...)
	b = append(b, fileExt...)
	return string(b)
}

// ParseFileName is the inverse of FileName. It accepts only names in the
// exact form FileName produces for a legal Kafka topic ([a-zA-Z0-9._-],
// at most 249 characters), a non-negative partition and offset; anything
// else (a marker, a temporary upload, a foreign file) gives ok == false.
// Kafka topics cannot contain '+', so the name is split from the right.
func ParseFileName(name string) (topic string, partition int, firstOffset int64, ok bool) {
	base, found := strings.CutSuffix(name, fileExt)
	if !found {
		return "", 0, 0, false
	}
	i := strings.LastIndexByte(base, '+')
	if i < 0 || len(base)-i-1 != offsetDigits {
		return "", 0, 0, false
	}
	offStr := base[i+1:]
	for j := 0; j < len(offStr); j++ {
		if offStr[j] < '0' || offStr[j] > '9' {
			return "", 0, 0, false
		}
	}
	off, err := strconv.ParseInt(offStr, 10, 64)
	if err != nil {
		return "", 0, 0, false
	}
	base = base[:i]
	i = strings.LastIndexByte(base, '+')
	if i < 0 {
		return "", 0, 0, false
	}
	partStr := base[i+1:]
	if partStr == "" || len(partStr) > 10 || (len(partStr) > 1 && partStr[0] == '0') {
		return "", 0, 0, false
	}
	for j := 0; j < len(partStr); j++ {
		if partStr[j] < '0' || partStr[j] > '9' {
			return "", 0, 0, false
		}
	}
	part, err := strconv.ParseInt(partStr, 10, 32)
	if err != nil {
		return "", 0, 0, false
	}
	topic = base[:i]
	if !validTopic(topic) {
		return "", 0, 0, false
	}
	return topic, int(part), off, true
}

// compactedPrefix starts the name of every compacted file.
const compactedPrefix = "compacted+"

// compactedHexDigits is the length of the digest in a compacted file's name.
const compactedHexDigits = 16

// CompactedFileName returns the name of the compacted file holding sources,
// in that order: "compacted+<16 lowercase hex digits>.parquet", the digits
// the start of the SHA-256 of a canonical encoding of the sources. It is
// deterministic, so that two instances compacting the same inputs in the
// same order write the same key (the second upload overwrites the first
// instead of adding a copy), and order-sensitive. 64 bits of digest make a
// collision between the compactions of one hour folder negligible. The
// name never parses as a plain file's (ParseFileName): it has one '+'.
func CompactedFileName(sources []Source) string {
	h := sha256.New()
	h.Write([]byte("lakesink.sources.v1\x00"))
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(sources)))
	for _, s := range sources {
		b = binary.AppendUvarint(b, uint64(len(s.Topic)))
		b = append(b, s.Topic...)
		b = binary.AppendVarint(b, int64(s.Partition))
		b = binary.AppendVarint(b, s.FirstOffset)
		b = binary.AppendVarint(b, s.LastOffset)
		b = binary.AppendVarint(b, s.Records)
		h.Write(b)
		b = b[:0]
	}
	h.Write(b)
	sum := h.Sum(nil)
	return compactedPrefix + hex.EncodeToString(sum[:compactedHexDigits/2]) + fileExt
}

// ParseCompactedFileName reports whether name has the form of
// CompactedFileName: "compacted+", 16 lowercase hex digits, ".parquet".
func ParseCompactedFileName(name string) bool {
	base, ok := strings.CutSuffix(name, fileExt)
	if !ok {
		return false
	}
	digits, ok := strings.CutPrefix(base, compactedPrefix)
	if !ok || len(digits) != compactedHexDigits {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if c := digits[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validTopic reports whether s is a legal Kafka topic name.
func validTopic(s string) bool {
	if s == "" || len(s) > 249 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
