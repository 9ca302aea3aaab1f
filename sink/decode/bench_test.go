package decode

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/lakesink/lakesink/partitioner"
)

// Compare the decoder with the encoding/json baseline:
//
//	go test -run '^$' -bench 'DecodeClickstream|StdlibMap' -benchmem -count 10 ./sink/decode > /tmp/bench.txt
//	benchstat /tmp/bench.txt
//
// (benchstat: go install golang.org/x/perf/cmd/benchstat@latest). Records/s
// is 1e9 / ns/op; the custom "records/s" metric reports it directly.

// clickstreamRecord is a typical ~320-byte clickstream event.
var clickstreamRecord = []byte(`{"event_id":"8f14e45f-ceea-467f-a0e6-6b1f5e3c9a2d","user_id":"u-1234567",` +
	`"ts":1764075600123,"url":"https://shop.example.com/products/12345?ref=home&utm_source=news",` +
	`"referrer":"https://www.example.org/","device":{"id":"d-98765","os":"android","model":"Pixel 8"},` +
	`"price":129.99,"session":"s-abcdef","attrs":{"campaign":"winter","ab":["a","b"],"score":0.87}}`)

func clickstreamSpec() Spec {
	return Spec{
		Fields: []Field{
			{Column: partitioner.Column{Name: "event_id", Type: partitioner.TypeString, Required: true}},
			{Column: partitioner.Column{Name: "user_id", Type: partitioner.TypeString}},
			{Column: partitioner.Column{Name: "ts", Type: partitioner.TypeTimestampMillis}},
			{Column: partitioner.Column{Name: "url", Type: partitioner.TypeString}},
			{Column: partitioner.Column{Name: "device_id", Type: partitioner.TypeString}, Path: "device.id"},
			{Column: partitioner.Column{Name: "price", Type: partitioner.TypeDouble}},
			{Column: partitioner.Column{Name: "session", Type: partitioner.TypeString}},
			{Column: partitioner.Column{Name: "attrs", Type: partitioner.TypeJSON}},
		},
		TimePath:   "ts",
		TimeFormat: UnixMillis,
	}
}

func BenchmarkDecodeClickstream(b *testing.B) {
	d, err := New(clickstreamSpec())
	if err != nil {
		b.Fatal(err)
	}
	rt := time.UnixMilli(1764075600000)
	b.ReportAllocs()
	b.SetBytes(int64(len(clickstreamRecord)))
	for b.Loop() {
		if _, _, err := d.Decode(clickstreamRecord, rt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkStdlibMap is the baseline: encoding/json into map[string]any.
func BenchmarkStdlibMap(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(clickstreamRecord)))
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(clickstreamRecord, &m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
