package hadoop

import (
	"bufio"
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lakesink/lakesink/test/internal/hadoop/hdfspb"
)

func TestPacketRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("abc"), 700) // 2100 bytes: 5 chunks, the last partial
	var buf bytes.Buffer
	hdr := &hdfspb.PacketHeaderProto{OffsetInBlock: proto.Int64(512), Seqno: proto.Int64(3), LastPacketInBlock: proto.Bool(false), DataLen: proto.Int32(int32(len(data)))}
	if err := WritePacket(&buf, hdr, Checksums(data), data); err != nil {
		t.Fatal(err)
	}
	p, err := ReadDataPacket(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(p.Header, hdr) || !bytes.Equal(p.Data, data) || len(p.Checksums) != 5*4 {
		t.Fatalf("got header %v, %d data bytes, %d checksum bytes", p.Header, len(p.Data), len(p.Checksums))
	}
	if err := VerifyChecksums(p.Data, p.Checksums); err != nil {
		t.Fatal(err)
	}
	p.Data[2099] ^= 1
	if err := VerifyChecksums(p.Data, p.Checksums); err == nil {
		t.Fatal("corrupt last chunk verified")
	}
}

func TestDelimited(t *testing.T) {
	msg := &hdfspb.ClientReadStatusProto{Status: hdfspb.Status_CHECKSUM_OK.Enum()}
	var buf bytes.Buffer
	if err := WriteDelimited(&buf, msg); err != nil {
		t.Fatal(err)
	}
	var got hdfspb.ClientReadStatusProto
	if err := ReadDelimited(bufio.NewReader(&buf), &got); err != nil || !proto.Equal(&got, msg) {
		t.Fatalf("got %v, %v", &got, err)
	}
	pkt, err := MarshalPacket(msg, msg)
	if err != nil {
		t.Fatal(err)
	}
	body, err := ReadPacket(bytes.NewReader(pkt))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		var m []byte
		if m, body, err = NextDelimited(body); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(m, &got); err != nil || !proto.Equal(&got, msg) {
			t.Fatalf("message %d: %v, %v", i, &got, err)
		}
	}
	if len(body) != 0 {
		t.Fatalf("%d bytes left", len(body))
	}
}

// FuzzReadDataPacket: decoding arbitrary bytes never panics, and a decoded
// packet re-encodes to a packet that decodes the same.
func FuzzReadDataPacket(f *testing.F) {
	var buf bytes.Buffer
	_ = WritePacket(&buf, &hdfspb.PacketHeaderProto{OffsetInBlock: proto.Int64(0), Seqno: proto.Int64(1), LastPacketInBlock: proto.Bool(true), DataLen: proto.Int32(3)}, Checksums([]byte("xyz")), []byte("xyz"))
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 4, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadDataPacket(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WritePacket(&out, p.Header, p.Checksums, p.Data); err != nil {
			return // e.g. a header missing required fields
		}
		q, err := ReadDataPacket(&out)
		if err != nil || !bytes.Equal(q.Data, p.Data) || !bytes.Equal(q.Checksums, p.Checksums) {
			t.Fatalf("re-decoding failed: %v", err)
		}
	})
}
