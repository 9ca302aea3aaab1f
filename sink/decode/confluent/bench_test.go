package confluent_test

import (
	"testing"
	"time"

	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
)

// BenchmarkAvroDecode decodes a clickstream-like Avro record (nested record,
// logical types, array, map) into a derived row.
//
//	go test -run '^$' -bench AvroDecode -count 10 ./sink/decode/confluent | benchstat -
func BenchmarkAvroDecode(b *testing.B) {
	e := newEnv(b)
	id := e.srv.Register("click-value", "AVRO", clickV1)
	v := avroRecord(b, id, clickV1, clickV1Value())
	d := newDecoder(b, e, confluent.Avro, confluent.Spec{TimePath: "ts", TimeFormat: decode.UnixMillis})
	if _, _, err := d.Decode(v, time.Time{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, _, err := d.Decode(v, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
