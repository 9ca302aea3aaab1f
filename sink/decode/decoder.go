package decode

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/parquet-go/parquet-go"
)

// Field is one column of the row and where its value sits in the record.
type Field struct {
	Column partitioner.Column // name, type, required
	Path   string             // dot-separated JSON path; "" means Column.Name
}

// TimeFormat says how the event-time field is encoded.
type TimeFormat int

// Event-time encodings, named in the config as "unix_ms", "unix_s" and
// "rfc3339". The zero TimeFormat is invalid.
const (
	UnixMillis  TimeFormat = iota + 1 // JSON number of ms since the epoch
	UnixSeconds                       // JSON number of s since the epoch, may be fractional
	RFC3339                           // JSON string, RFC 3339 with optional fraction
)

// ParseTimeFormat maps a config spelling ("unix_ms", "unix_s", "rfc3339") to
// its TimeFormat.
func ParseTimeFormat(s string) (TimeFormat, error) {
	switch s {
	case "unix_ms":
		return UnixMillis, nil
	case "unix_s":
		return UnixSeconds, nil
	case "rfc3339":
		return RFC3339, nil
	}
	return 0, fmt.Errorf("unknown time format %q (want unix_ms, unix_s or rfc3339)", s)
}

// String returns the config spelling of f.
func (f TimeFormat) String() string {
	switch f {
	case UnixMillis:
		return "unix_ms"
	case UnixSeconds:
		return "unix_s"
	case RFC3339:
		return "rfc3339"
	}
	return fmt.Sprintf("TimeFormat(%d)", int(f))
}

// Spec is what a Decoder extracts from each record.
type Spec struct {
	Fields     []Field
	TimePath   string     // dot-separated path of the event time; "" = use the Kafka record timestamp
	TimeFormat TimeFormat // required when TimePath is set
	MaxBytes   int        // larger records are rejected with ReasonOversized; 0 = no limit
}

// Event times outside [MinEventTimeMillis, MaxEventTimeMillis), in ms since
// the epoch, are rejected with ReasonBadTime: 1970-01-01T00:00:00Z inclusive
// to 2200-01-01T00:00:00Z exclusive.
const (
	MinEventTimeMillis int64 = 0
	MaxEventTimeMillis int64 = 7258118400000
)

// maxDepth is encoding/json's nesting limit, so that the decoder and
// json.Valid agree on every input.
const maxDepth = 10000

// Reason classifies a decode failure. The set is small and stable: it is used
// as a metric label and as a dead-letter header value.
type Reason string

// The reasons a record is rejected.
const (
	ReasonBadJSON      Reason = "bad_json"      // not valid JSON, or not an object
	ReasonMissingField Reason = "missing_field" // required field absent or null
	ReasonWrongType    Reason = "wrong_type"    // JSON type does not fit the column
	ReasonOutOfRange   Reason = "out_of_range"  // number does not fit the column (overflow, fraction for an integer)
	ReasonBadUTF8      Reason = "bad_utf8"      // invalid UTF-8 or unpaired surrogate escape in any string
	ReasonBadTime      Reason = "bad_time"      // time value missing, unparseable or out of range
	ReasonOversized    Reason = "oversized"     // record larger than Spec.MaxBytes
)

// Reasons lists every Reason, for pre-registering metric label values.
func Reasons() []Reason {
	return []Reason{ReasonBadJSON, ReasonMissingField, ReasonWrongType, ReasonOutOfRange, ReasonBadUTF8, ReasonBadTime, ReasonOversized}
}

// Error is why a record could not be decoded.
type Error struct {
	Reason Reason
	Field  string // column name, or the time path for the event time; "" for whole-record problems
	Detail string // human-readable, for logs and the dead-letter header
}

// Error returns "<reason>: <field>: <detail>", or "<reason>: <detail>" when
// Field is empty.
func (e *Error) Error() string {
	if e.Field == "" {
		return string(e.Reason) + ": " + e.Detail
	}
	return string(e.Reason) + ": " + e.Field + ": " + e.Detail
}

// kind is the JSON type of a captured value, or why there is none.
type kind uint8

const (
	kAbsent    kind = iota // not present (or an intermediate object was absent/null)
	kNull                  // JSON null
	kString                // JSON string
	kNumber                // JSON number
	kTrue                  // true
	kFalse                 // false
	kObject                // JSON object
	kArray                 // JSON array
	kNotObject             // an intermediate value on the path is not an object
)

// capture is the last value seen for one field during a scan.
type capture struct {
	kind         kind
	escaped      bool // kString with escapes: its content is arena[astart:aend]
	start, end   int  // raw value bytes in the input
	astart, aend int  // unescaped content in the arena
}

// str returns the content of a captured string, unescaped.
func (d *Decoder) str(c *capture, value []byte) []byte {
	if c.escaped {
		return d.arena[c.astart:c.aend:c.aend]
	}
	return value[c.start+1 : c.end-1 : c.end-1]
}

// node is one step of the path trie.
type node struct {
	name     string
	leafs    []int // capture indexes whose path ends here
	sub      []int // capture indexes whose path continues below here
	children []*node
	index    map[string]*node // set when there are many children
}

// manyChildren is the child count above which lookups use a map instead of
// a linear scan.
const manyChildren = 12

func (n *node) lookup(key []byte) *node {
	if n.index != nil {
		return n.index[string(key)]
	}
	for _, c := range n.children {
		if len(c.name) == len(key) && c.name == string(key) {
			return c
		}
	}
	return nil
}

func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	c := &node{name: name}
	n.children = append(n.children, c)
	return c
}

func (n *node) finish() {
	if len(n.children) > manyChildren {
		n.index = make(map[string]*node, len(n.children))
		for _, c := range n.children {
			n.index[c.name] = c
		}
	}
	for _, c := range n.children {
		c.finish()
	}
}

// Decoder decodes records of one Spec. It owns scratch buffers that the
// returned rows alias, and is not safe for concurrent use.
type Decoder struct {
	fields   []Field
	timePath string
	timeFmt  TimeFormat
	maxBytes int
	timeIdx  int // capture index of the event time, -1 when TimePath is ""

	root   node
	caps   []capture
	row    []parquet.Value
	arena  []byte // unescaped strings of the current record, addressed by offset
	keyBuf []byte // unescaped object key scratch
	stack  []byte // container stack for skip

	// Scan diagnostics, valid after a scan.
	synOff  int    // offset of the syntax error
	synMsg  string // what was wrong
	utf8Off int    // offset of the first UTF-8 problem, -1 if none
	utf8Msg string
}

// New validates spec and compiles it into a Decoder.
func New(spec Spec) (*Decoder, error) {
	d := &Decoder{
		fields:   append([]Field(nil), spec.Fields...),
		timePath: spec.TimePath,
		timeFmt:  spec.TimeFormat,
		maxBytes: spec.MaxBytes,
		timeIdx:  -1,
	}
	if spec.MaxBytes < 0 {
		return nil, fmt.Errorf("max bytes %d: must not be negative", spec.MaxBytes)
	}
	for i, f := range d.fields {
		if f.Column.Type < partitioner.TypeString || f.Column.Type > partitioner.TypeJSON {
			return nil, fmt.Errorf("field %d (%s): unknown column type %d", i, f.Column.Name, int(f.Column.Type))
		}
		path := f.Path
		if path == "" {
			path = f.Column.Name
		}
		if err := d.add(path, i); err != nil {
			return nil, fmt.Errorf("field %d (%s): %w", i, f.Column.Name, err)
		}
	}
	if spec.TimePath != "" {
		switch spec.TimeFormat {
		case UnixMillis, UnixSeconds, RFC3339:
		default:
			return nil, fmt.Errorf("time format %d: unknown", int(spec.TimeFormat))
		}
		d.timeIdx = len(d.fields)
		if err := d.add(spec.TimePath, d.timeIdx); err != nil {
			return nil, fmt.Errorf("time path: %w", err)
		}
	}
	d.root.finish()
	d.caps = make([]capture, len(d.fields)+1)
	d.row = make([]parquet.Value, len(d.fields))
	return d, nil
}

// add registers capture index idx under the dot-separated path.
func (d *Decoder) add(path string, idx int) error {
	if path == "" {
		return fmt.Errorf("empty path")
	}
	segs := strings.Split(path, ".")
	n := &d.root
	n.sub = append(n.sub, idx)
	for k, s := range segs {
		if s == "" {
			return fmt.Errorf("path %q: empty segment", path)
		}
		n = n.child(s)
		if k == len(segs)-1 {
			n.leafs = append(n.leafs, idx)
		} else {
			n.sub = append(n.sub, idx)
		}
	}
	return nil
}

// Decode parses value and returns its row (row[i] is the value of
// Spec.Fields[i]) and its event time in UTC. recordTime is the Kafka record
// timestamp, used as the event time when Spec.TimePath is "". The row and the
// byte slices inside it alias the Decoder's buffers and value; they are valid
// until the next call. On failure row is nil and err is an *Error.
func (d *Decoder) Decode(value []byte, recordTime time.Time) (row []parquet.Value, eventTime time.Time, err error) {
	if d.maxBytes > 0 && len(value) > d.maxBytes {
		return nil, time.Time{}, &Error{Reason: ReasonOversized, Detail: fmt.Sprintf("record is %d bytes, limit %d", len(value), d.maxBytes)}
	}
	d.arena = d.arena[:0]
	for i := range d.caps {
		d.caps[i] = capture{}
	}
	d.utf8Off = -1

	if e := d.scanRecord(value); e != nil {
		return nil, time.Time{}, e
	}
	if d.utf8Off >= 0 {
		return nil, time.Time{}, &Error{Reason: ReasonBadUTF8, Detail: fmt.Sprintf("offset %d: %s", d.utf8Off, d.utf8Msg)}
	}
	for i := range d.fields {
		c := &d.caps[i]
		var str []byte
		if c.kind == kString {
			str = d.str(c, value)
		}
		if reason, msg := convert(&d.row[i], d.fields[i].Column, c, value[c.start:c.end], str); reason != "" {
			return nil, time.Time{}, d.fieldError(reason, d.fields[i].Column.Name, msg, c, value)
		}
	}
	if d.timeIdx < 0 {
		ms := recordTime.UnixMilli()
		if ms < MinEventTimeMillis || ms >= MaxEventTimeMillis {
			return nil, time.Time{}, &Error{Reason: ReasonBadTime, Detail: "record timestamp " + recordTime.UTC().Format(time.RFC3339Nano) + " outside [1970, 2200)"}
		}
		return d.row, recordTime.UTC(), nil
	}
	c := &d.caps[d.timeIdx]
	var str []byte
	if c.kind == kString {
		str = d.str(c, value)
	}
	t, msg := parseEventTime(d.timeFmt, c.kind, value[c.start:c.end], str)
	if msg != "" {
		return nil, time.Time{}, d.fieldError(ReasonBadTime, d.timePath, msg, c, value)
	}
	return d.row, t, nil
}

// scanRecord checks that value is one JSON object and fills d.caps.
func (d *Decoder) scanRecord(value []byte) *Error {
	i := ws(value, 0)
	if i >= len(value) {
		return &Error{Reason: ReasonBadJSON, Detail: "empty record"}
	}
	if value[i] != '{' {
		if j := d.skip(value, i, 0); j >= 0 {
			if j = ws(value, j); j == len(value) {
				return &Error{Reason: ReasonBadJSON, Detail: "record is not a JSON object"}
			}
			d.fail(j, "unexpected data after top-level value")
		}
		return d.syntaxError()
	}
	i = d.object(value, i, &d.root, 1)
	if i < 0 {
		return d.syntaxError()
	}
	if i = ws(value, i); i != len(value) {
		d.fail(i, "unexpected data after top-level value")
		return d.syntaxError()
	}
	return nil
}

func (d *Decoder) syntaxError() *Error {
	return &Error{Reason: ReasonBadJSON, Detail: fmt.Sprintf("offset %d: %s", d.synOff, d.synMsg)}
}

// fieldError builds the Error for a field, quoting (a prefix of) its value.
func (d *Decoder) fieldError(reason Reason, field, msg string, c *capture, value []byte) *Error {
	switch c.kind {
	case kAbsent, kNull, kNotObject:
		return &Error{Reason: reason, Field: field, Detail: msg}
	}
	raw := value[c.start:c.end]
	const maxQuote = 64
	if len(raw) > maxQuote {
		cut := maxQuote
		for cut > 0 && !utf8.RuneStart(raw[cut]) {
			cut--
		}
		return &Error{Reason: reason, Field: field, Detail: fmt.Sprintf("%s (got %s...)", msg, raw[:cut])}
	}
	return &Error{Reason: reason, Field: field, Detail: fmt.Sprintf("%s (got %s)", msg, raw)}
}
