package hadoop

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/lakesink/lakesink/test/internal/hadoop/hdfspb"
)

// DataTransferProtocol constants (org.apache.hadoop.hdfs.protocol.datatransfer).
const (
	DataTransferVersion = 28
	OpWriteBlock        = 80
	OpReadBlock         = 81
	// ChunkSize is the bytes covered by one checksum (dfs.bytes-per-checksum).
	ChunkSize = 512
	// MaxPacketData bounds the data of one packet we accept.
	MaxPacketData = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksums returns the big-endian CRC32C of every ChunkSize chunk of data.
func Checksums(data []byte) []byte {
	out := make([]byte, 0, (len(data)+ChunkSize-1)/ChunkSize*4)
	for off := 0; off < len(data); off += ChunkSize {
		end := min(off+ChunkSize, len(data))
		out = binary.BigEndian.AppendUint32(out, crc32.Checksum(data[off:end], castagnoli))
	}
	return out
}

// VerifyChecksums checks sums against data; the error names the first bad
// chunk.
func VerifyChecksums(data, sums []byte) error {
	want := (len(data) + ChunkSize - 1) / ChunkSize * 4
	if len(sums) != want {
		return fmt.Errorf("%d checksum bytes for %d data bytes, want %d", len(sums), len(data), want)
	}
	for i, off := 0, 0; off < len(data); i, off = i+1, off+ChunkSize {
		end := min(off+ChunkSize, len(data))
		if got := crc32.Checksum(data[off:end], castagnoli); got != binary.BigEndian.Uint32(sums[i*4:]) {
			return fmt.Errorf("checksum mismatch in chunk %d", i)
		}
	}
	return nil
}

// WriteOp writes an operation request: version, op code, then msg
// length-delimited.
func WriteOp(w io.Writer, op byte, msg proto.Message) error {
	b := []byte{0, DataTransferVersion, op}
	b, err := AppendDelimited(b, msg)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// WriteDelimited writes msg preceded by its uvarint length.
func WriteDelimited(w io.Writer, msg proto.Message) error {
	b, err := AppendDelimited(nil, msg)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadDelimited reads a uvarint-length-prefixed message into msg.
func ReadDelimited(r *bufio.Reader, msg proto.Message) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if n > MaxPacket {
		return fmt.Errorf("message of %d bytes too large", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return proto.Unmarshal(b, msg)
}

// Packet is one data packet of a block transfer.
type Packet struct {
	Header    *hdfspb.PacketHeaderProto
	Checksums []byte
	Data      []byte
}

// WritePacket writes a packet: uint32 payload length (4 + checksums + data),
// uint16 header length, the header, the checksums, the data.
func WritePacket(w io.Writer, hdr *hdfspb.PacketHeaderProto, sums, data []byte) error {
	hb, err := proto.Marshal(hdr)
	if err != nil {
		return err
	}
	b := make([]byte, 6, 6+len(hb)+len(sums)+len(data))
	binary.BigEndian.PutUint32(b, uint32(4+len(sums)+len(data)))
	binary.BigEndian.PutUint16(b[4:], uint16(len(hb)))
	b = append(b, hb...)
	b = append(b, sums...)
	b = append(b, data...)
	_, err = w.Write(b)
	return err
}

// ReadDataPacket reads a packet written by WritePacket; the checksum bytes are
// sized from the header's dataLen (4 per ChunkSize chunk).
func ReadDataPacket(r io.Reader) (*Packet, error) {
	var l [6]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	payload := int(binary.BigEndian.Uint32(l[:]))
	hb := make([]byte, binary.BigEndian.Uint16(l[4:]))
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, err
	}
	hdr := &hdfspb.PacketHeaderProto{}
	if err := proto.Unmarshal(hb, hdr); err != nil {
		return nil, fmt.Errorf("packet header: %w", err)
	}
	dataLen := int(hdr.GetDataLen())
	if dataLen < 0 || dataLen > MaxPacketData {
		return nil, fmt.Errorf("packet data length %d out of range", dataLen)
	}
	sumLen := payload - 4 - dataLen
	if sumLen < 0 || sumLen > MaxPacketData {
		return nil, errors.New("packet length smaller than its data")
	}
	buf := make([]byte, sumLen+dataLen)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return &Packet{Header: hdr, Checksums: buf[:sumLen], Data: buf[sumLen:]}, nil
}
