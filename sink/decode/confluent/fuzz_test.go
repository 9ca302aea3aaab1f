package confluent_test

import (
	"errors"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
)

// FuzzAvroDecode checks that no input panics or hangs, and that every
// accepted record has one value per column.
func FuzzAvroDecode(f *testing.F) {
	e := newEnv(f)
	id := e.srv.Register("click-value", "AVRO", clickV1)
	good := avroRecord(f, id, clickV1, clickV1Value())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	d := newDecoder(f, e, confluent.Avro, confluent.Spec{TimePath: "ts", TimeFormat: decode.UnixMillis, MaxBytes: 1 << 16})
	f.Fuzz(func(t *testing.T, body []byte) {
		v := append(confluent.Header(id), body...)
		if len(body) > 0 && body[0] == 0 {
			v = body // also fuzz the header
		}
		row, _, err := d.Decode(v, time.Unix(0, 0))
		check(t, d, row, err)
	})
}

// FuzzProtobufDecode is FuzzAvroDecode for Protobuf.
func FuzzProtobufDecode(f *testing.F) {
	e := newEnv(f)
	id := e.srv.Register("iot-value", "PROTOBUF", readingProto)
	f.Add([]byte{2, 2, 10, 1, 'a'})
	f.Add([]byte{0, 10, 1, 'a'})
	f.Add([]byte{2, 2, 0x12, 2, 8, 1})
	d := newDecoder(f, e, confluent.Protobuf, confluent.Spec{TimePath: "event_time", TimeFormat: decode.UnixMillis, MaxBytes: 1 << 16})
	f.Fuzz(func(t *testing.T, body []byte) {
		row, _, err := d.Decode(append(confluent.Header(id), body...), time.Unix(0, 0))
		check(t, d, row, err)
	})
}

func check(t *testing.T, d *confluent.Decoder, row []parquet.Value, err error) {
	t.Helper()
	if err != nil {
		var de *decode.Error
		if !errors.As(err, &de) {
			t.Fatalf("non-decode error %v", err)
		}
		if row != nil {
			t.Fatal("row with an error")
		}
		return
	}
	cols := d.Schema().Columns()
	if len(row) != len(cols) {
		t.Fatalf("%d values for %d columns", len(row), len(cols))
	}
	for i, c := range cols {
		if c.Required && row[i].IsNull() {
			t.Fatalf("required column %s is null", c.Name)
		}
	}
}
