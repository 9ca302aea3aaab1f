package confluent_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
)

const readingProto = `syntax = "proto3";
package iot;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message Other { string x = 1; }
message Reading {
  string device = 1;
  google.protobuf.Timestamp event_time = 2;
  double temperature = 3;
  optional int32 battery = 4;
  enum Status { UNKNOWN = 0; OK = 1; FAULT = 2; }
  Status status = 5;
  message Loc { double lat = 1; double lon = 2; }
  Loc loc = 6;
  repeated int64 samples = 7;
  map<string, string> labels = 8;
  google.protobuf.Int64Value seq = 9;
  bytes blob = 10;
  uint64 big = 11;
}`

func compileProto(t testing.TB, src string) protoreflect.FileDescriptor {
	t.Helper()
	comp := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"r.proto": src}),
	})}
	fds, err := comp.Compile(context.Background(), "r.proto")
	if err != nil {
		t.Fatal(err)
	}
	return fds[0]
}

func protoRecord(t testing.TB, id int, indexes []int, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	h := confluent.AppendMessageIndexes(confluent.Header(id), indexes...)
	return append(h, b...)
}

// reading builds an iot.Reading with the given fields set.
func reading(fd protoreflect.FileDescriptor, set func(m *dynamicpb.Message, f func(string) protoreflect.FieldDescriptor)) *dynamicpb.Message {
	md := fd.Messages().ByName("Reading")
	m := dynamicpb.NewMessage(md)
	set(m, func(n string) protoreflect.FieldDescriptor { return md.Fields().ByName(protoreflect.Name(n)) })
	return m
}

func TestProtobufDerived(t *testing.T) {
	e := newEnv(t)
	id := e.srv.Register("iot-value", "PROTOBUF", readingProto)
	fd := compileProto(t, readingProto)
	md := fd.Messages().ByName("Reading")
	m := reading(fd, func(m *dynamicpb.Message, f func(string) protoreflect.FieldDescriptor) {
		m.Set(f("device"), protoreflect.ValueOfString("dev-1"))
		tsm := dynamicpb.NewMessage(f("event_time").Message())
		tsm.Set(tsm.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(ts.Unix()))
		tsm.Set(tsm.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(int32(ts.Nanosecond())+7000))
		m.Set(f("event_time"), protoreflect.ValueOfMessage(tsm))
		m.Set(f("temperature"), protoreflect.ValueOfFloat64(21.5))
		m.Set(f("status"), protoreflect.ValueOfEnum(2))
		loc := dynamicpb.NewMessage(f("loc").Message())
		loc.Set(loc.Descriptor().Fields().ByName("lat"), protoreflect.ValueOfFloat64(52.5))
		m.Set(f("loc"), protoreflect.ValueOfMessage(loc))
		l := m.Mutable(f("samples")).List()
		l.Append(protoreflect.ValueOfInt64(1))
		l.Append(protoreflect.ValueOfInt64(-2))
		m.Mutable(f("labels")).Map().Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("v"))
		seq := dynamicpb.NewMessage(f("seq").Message())
		seq.Set(seq.Descriptor().Fields().ByName("value"), protoreflect.ValueOfInt64(77))
		m.Set(f("seq"), protoreflect.ValueOfMessage(seq))
		m.Set(f("blob"), protoreflect.ValueOfBytes([]byte{0xff}))
	})
	_ = md
	d := newDecoder(t, e, confluent.Protobuf, confluent.Spec{TimePath: "event_time", TimeFormat: decode.UnixMillis})
	row, ev, err := d.Decode(protoRecord(t, id, []int{1}, m), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	wantTime := ts.Add(7 * time.Microsecond)
	if !ev.Equal(wantTime) {
		t.Errorf("event time %v, want %v", ev, wantTime)
	}
	want := map[string]string{
		"device": "dev-1", "event_time": strconv.FormatInt(wantTime.UnixMicro(), 10), "temperature": "21.5",
		"battery": "<null>", "status": "FAULT", "loc.lat": "52.5", "loc.lon": "0", "samples": "[1,-2]",
		"labels": `{"k":"v"}`, "seq": "77", "blob": "/w==", "big": "0",
	}
	cols := d.Schema().Columns()
	if len(cols) != len(want) {
		t.Fatalf("columns %+v", cols)
	}
	for i, c := range cols {
		if got := show(row[i]); got != want[c.Name] {
			t.Errorf("%s: got %s, want %s", c.Name, got, want[c.Name])
		}
	}
	if !cols[0].Required || cols[3].Required || cols[1].Required {
		t.Errorf("required flags: %+v", cols)
	}

	// The first message (index [0], the single 0 byte) is another type.
	other := dynamicpb.NewMessage(fd.Messages().ByName("Other"))
	other.Set(other.Descriptor().Fields().ByName("x"), protoreflect.ValueOfString("y"))
	d2 := newDecoder(t, e, confluent.Protobuf, confluent.Spec{})
	row, _, err = d2.Decode(protoRecord(t, id, nil, other), ts)
	if err != nil || len(row) != 1 || show(row[0]) != "y" {
		t.Fatalf("first message: %v %v", row, err)
	}

	bad := []struct {
		name  string
		value []byte
		want  decode.Reason
	}{
		{"no indexes", confluent.Header(id), confluent.ReasonTruncated},
		{"bad index", append(confluent.AppendMessageIndexes(confluent.Header(id), 9), 1), confluent.ReasonIncompatible},
		{"garbage", append(confluent.AppendMessageIndexes(confluent.Header(id), 1), 0xff, 0xff), confluent.ReasonBadPayload},
		{"big uint", protoRecord(t, id, []int{1}, reading(fd, func(m *dynamicpb.Message, f func(string) protoreflect.FieldDescriptor) {
			m.Set(f("big"), protoreflect.ValueOfUint64(1<<63))
		})), decode.ReasonOutOfRange},
		{"no time", protoRecord(t, id, []int{1}, reading(fd, func(*dynamicpb.Message, func(string) protoreflect.FieldDescriptor) {})), decode.ReasonBadTime},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := d.Decode(c.value, ts)
			wantReason(t, err, c.want)
		})
	}
}
