package demo

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/lakesink/lakesink/config"
)

// Stream configurations of the demo (and of the end-to-end tests, which
// produce the same events).

// ClickstreamStream is the clickstream stream: JSON events with a unix_ms
// time field, a nested device id and a free-form attrs object.
func ClickstreamStream(topic string) config.Stream {
	s := config.DefaultStream()
	s.Name = "clickstream"
	s.Topics = []string{topic}
	s.Time = config.StreamTime{Field: "ts", Format: config.TimeUnixMillis, Timezone: "UTC"}
	s.Schema = []config.SchemaColumn{
		{Name: "event_id", Type: "string", Required: true},
		{Name: "user_id", Type: "string"},
		{Name: "ts", Type: "timestamp_ms"},
		{Name: "event_type", Type: "string"},
		{Name: "url", Type: "string"},
		{Name: "referrer", Type: "string"},
		{Name: "device_id", Path: "device.id", Type: "string"},
		{Name: "device_os", Path: "device.os", Type: "string"},
		{Name: "price", Type: "double"},
		{Name: "quantity", Type: "int32"},
		{Name: "attrs", Type: "json"},
	}
	return s
}

// IoTStream is the IoT telemetry stream: RFC 3339 event times.
func IoTStream(topic string) config.Stream {
	s := config.DefaultStream()
	s.Name = "iot"
	s.Topics = []string{topic}
	s.Time = config.StreamTime{Field: "event_time", Format: config.TimeRFC3339, Timezone: "UTC"}
	s.Schema = []config.SchemaColumn{
		{Name: "device_id", Type: "string", Required: true},
		{Name: "event_time", Type: "timestamp_ms"},
		{Name: "temperature", Type: "double"},
		{Name: "humidity", Type: "float"},
		{Name: "battery", Type: "int32"},
		{Name: "online", Type: "bool"},
		{Name: "firmware", Type: "string"},
		{Name: "seq", Type: "int64"},
	}
	return s
}

var (
	pages     = []string{"/", "/search", "/product/1234", "/product/987", "/cart", "/checkout", "/account", "/blog/launch"}
	refs      = []string{"https://www.google.com/", "https://news.ycombinator.com/", "", "https://t.co/x", "https://duckduckgo.com/"}
	evTypes   = []string{"page_view", "page_view", "page_view", "click", "add_to_cart", "purchase"}
	oses      = []string{"ios", "android", "windows", "macos", "linux"}
	firmwares = []string{"1.4.2", "1.4.3", "2.0.0-rc1"}
)

// Clickstream returns one clickstream event (about 320 bytes) at t.
func Clickstream(r *rand.Rand, seq int64, t time.Time) []byte {
	et := evTypes[r.IntN(len(evTypes))]
	b := make([]byte, 0, 384)
	b = append(b, `{"event_id":"`...)
	b = append(b, fmt.Sprintf("%016x-%08x", r.Uint64(), uint32(seq))...)
	b = append(b, `","user_id":"u`...)
	b = strconv.AppendInt(b, int64(r.IntN(50000)), 10)
	b = append(b, `","ts":`...)
	b = strconv.AppendInt(b, t.UnixMilli(), 10)
	b = append(b, `,"event_type":"`...)
	b = append(b, et...)
	b = append(b, `","url":"https://shop.example.com`...)
	b = append(b, pages[r.IntN(len(pages))]...)
	b = append(b, `","referrer":"`...)
	b = append(b, refs[r.IntN(len(refs))]...)
	b = append(b, `","device":{"id":"d-`...)
	b = strconv.AppendInt(b, int64(r.IntN(100000)), 16)
	b = append(b, `","os":"`...)
	b = append(b, oses[r.IntN(len(oses))]...)
	b = append(b, `","screen":{"w":1920,"h":1080}}`...)
	if et == "purchase" || et == "add_to_cart" {
		b = append(b, `,"price":`...)
		b = strconv.AppendFloat(b, float64(r.IntN(100000))/100, 'f', 2, 64)
		b = append(b, `,"quantity":`...)
		b = strconv.AppendInt(b, int64(1+r.IntN(5)), 10)
	}
	b = append(b, `,"attrs":{"campaign":"winter-sale","ab":["a","b"],"session_ms":`...)
	b = strconv.AppendInt(b, int64(r.IntN(600000)), 10)
	b = append(b, `}}`...)
	return b
}

// IoT returns one telemetry event at t.
func IoT(r *rand.Rand, seq int64, t time.Time) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"device_id":"sensor-`...)
	b = strconv.AppendInt(b, int64(r.IntN(500)), 10)
	b = append(b, `","event_time":"`...)
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","temperature":`...)
	b = strconv.AppendFloat(b, 15+float64(r.IntN(2000))/100, 'f', 2, 64)
	b = append(b, `,"humidity":`...)
	b = strconv.AppendFloat(b, 30+float64(r.IntN(500))/10, 'f', 1, 64)
	b = append(b, `,"battery":`...)
	b = strconv.AppendInt(b, int64(r.IntN(101)), 10)
	b = append(b, `,"online":`...)
	b = strconv.AppendBool(b, r.IntN(10) > 0)
	b = append(b, `,"firmware":"`...)
	b = append(b, firmwares[r.IntN(len(firmwares))]...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '}')
	return b
}

// Malformed kinds, each with the dead-letter reason the sink gives it.
var malformedKinds = []struct {
	Reason string
	Make   func(stream string, seq int64, t time.Time) []byte
}{
	{"bad_json", func(string, int64, time.Time) []byte { return []byte(`{"event_id":"x","ts":`) }},
	{"bad_json", func(string, int64, time.Time) []byte { return []byte("not json at all") }},
	{"missing_field", func(stream string, seq int64, t time.Time) []byte {
		if stream == "iot" {
			return fmt.Appendf(nil, `{"event_time":%q,"seq":%d}`, t.UTC().Format(time.RFC3339), seq)
		}
		return fmt.Appendf(nil, `{"user_id":"u1","ts":%d}`, t.UnixMilli())
	}},
	{"bad_time", func(stream string, seq int64, t time.Time) []byte {
		if stream == "iot" {
			return fmt.Appendf(nil, `{"device_id":"s","seq":%d}`, seq)
		}
		return fmt.Appendf(nil, `{"event_id":"e%d","url":"/"}`, seq)
	}},
	{"wrong_type", func(stream string, seq int64, t time.Time) []byte {
		if stream == "iot" {
			return fmt.Appendf(nil, `{"device_id":"s","event_time":%q,"battery":"full","seq":%d}`, t.UTC().Format(time.RFC3339), seq)
		}
		return fmt.Appendf(nil, `{"event_id":"e%d","ts":%d,"price":{"amount":3}}`, seq, t.UnixMilli())
	}},
}

// Malformed returns a bad event for stream and the reason the sink must give.
func Malformed(r *rand.Rand, stream string, seq int64, t time.Time) (value []byte, reason string) {
	k := malformedKinds[r.IntN(len(malformedKinds))]
	return k.Make(stream, seq, t), k.Reason
}
