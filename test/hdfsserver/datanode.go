package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lakesink/lakesink/test/internal/hadoop"
	"github.com/lakesink/lakesink/test/internal/hadoop/hdfspb"
)

// DataNode stores block replicas as files (<dir>/blk_<id>; blk_<id>.rbw
// while being written) and serves the DataTransferProtocol (version 28):
//
//   - WRITE_BLOCK (op 80): OpWriteBlockProto, reply BlockOpResponseProto,
//     then packets (uint32 payload length, uint16 header length,
//     PacketHeaderProto, CRC32C per 512-byte chunk, data), each answered
//     with a PipelineAckProto. Checksums are verified; a bad one is acked
//     ERROR_CHECKSUM and the replica discarded. The empty packet with
//     lastPacketInBlock finalizes the replica (synced and renamed) before
//     it is acked.
//   - READ_BLOCK (op 81): OpReadBlockProto, reply BlockOpResponseProto with
//     ReadOpChecksumInfoProto (the read starts at the chunk boundary at or
//     before offset), then packets of at most 64 KiB covering [offset,
//     offset+len), then an empty last packet; a trailing
//     ClientReadStatusProto is read if the client sends one.
//
// Only single-node pipelines (no targets) and new blocks
// (PIPELINE_SETUP_CREATE) are supported. Safe for concurrent use.
type DataNode struct {
	dir       string
	logger    *slog.Logger
	allocated func(id uint64) bool // whether the NameNode handed out the block
	maxBlock  int64
	delay     time.Duration // before released replicas are deleted

	mu        sync.Mutex
	finalized map[uint64]int64
	conns     map[net.Conn]bool
	closed    bool
	wg        sync.WaitGroup
}

const readPacketSize = 64 << 10

func newDataNode(dir string, maxBlock int64, deleteDelay time.Duration, logger *slog.Logger) (*DataNode, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dn := &DataNode{dir: dir, logger: logger, maxBlock: maxBlock, delay: deleteDelay, finalized: map[uint64]int64{}, conns: map[net.Conn]bool{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".rbw") {
			// A replica being written when the server stopped: its writer
			// has lost the connection and will never finalize it.
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		id, err := strconv.ParseUint(strings.TrimPrefix(name, "blk_"), 10, 64)
		if err != nil || !strings.HasPrefix(name, "blk_") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		dn.finalized[id] = info.Size()
	}
	return dn, nil
}

func (dn *DataNode) blockPath(id uint64) string {
	return filepath.Join(dn.dir, "blk_"+strconv.FormatUint(id, 10))
}

// FinalizedLength implements replicas.
func (dn *DataNode) FinalizedLength(id uint64) (int64, bool) {
	dn.mu.Lock()
	defer dn.mu.Unlock()
	l, ok := dn.finalized[id]
	return l, ok
}

// Release implements replicas: the replicas are deleted after the delay,
// as a real NameNode tells DataNodes to delete blocks lazily, so a reader
// that located them before an overwrite or delete can finish.
func (dn *DataNode) Release(ids []uint64) {
	time.AfterFunc(dn.delay, func() { dn.remove(ids) })
}

func (dn *DataNode) remove(ids []uint64) {
	dn.mu.Lock()
	defer dn.mu.Unlock()
	if dn.closed {
		return // the next start removes unreferenced replicas
	}
	for _, id := range ids {
		delete(dn.finalized, id)
		_ = os.Remove(dn.blockPath(id))
	}
}

// RemoveUnreferenced deletes replicas the namespace does not know (left by
// a restart before their deferred deletion ran, or never completed).
func (dn *DataNode) RemoveUnreferenced(referenced map[uint64]bool) {
	var ids []uint64
	dn.mu.Lock()
	for id := range dn.finalized {
		if !referenced[id] {
			ids = append(ids, id)
		}
	}
	dn.mu.Unlock()
	dn.remove(ids)
}

// Serve accepts transfer connections until l is closed.
func (dn *DataNode) Serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		dn.mu.Lock()
		dn.conns[c] = true
		dn.mu.Unlock()
		dn.wg.Add(1)
		go func() {
			defer dn.wg.Done()
			defer func() {
				dn.mu.Lock()
				delete(dn.conns, c)
				dn.mu.Unlock()
				c.Close()
			}()
			err := dn.serveConn(c)
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) &&
				!errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
				dn.logger.Info("datanode transfer failed", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Close closes open transfers and waits for them; deferred deletions that
// have not run yet are dropped (RemoveUnreferenced catches up at the next
// start).
func (dn *DataNode) Close() {
	dn.mu.Lock()
	dn.closed = true
	for c := range dn.conns {
		c.Close()
	}
	dn.mu.Unlock()
	dn.wg.Wait()
}

func (dn *DataNode) serveConn(c net.Conn) error {
	r := bufio.NewReader(c)
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	if v := int(hdr[0])<<8 | int(hdr[1]); v != hadoop.DataTransferVersion {
		_ = hadoop.WriteDelimited(c, opError(hdfspb.Status_ERROR, fmt.Sprintf("data transfer version %d, want %d", v, hadoop.DataTransferVersion)))
		return fmt.Errorf("data transfer version %d", v)
	}
	switch hdr[2] {
	case hadoop.OpWriteBlock:
		return dn.writeBlock(c, r)
	case hadoop.OpReadBlock:
		return dn.readBlock(c, r)
	default:
		_ = hadoop.WriteDelimited(c, opError(hdfspb.Status_ERROR_UNSUPPORTED, fmt.Sprintf("op %d is not supported", hdr[2])))
		return fmt.Errorf("op %d", hdr[2])
	}
}

func opError(st hdfspb.Status, msg string) *hdfspb.BlockOpResponseProto {
	return &hdfspb.BlockOpResponseProto{Status: st.Enum(), FirstBadLink: proto.String(""), Message: proto.String(msg)}
}

func ack(w io.Writer, seqno int64, st hdfspb.Status) error {
	return hadoop.WriteDelimited(w, &hdfspb.PipelineAckProto{Seqno: proto.Int64(seqno), Reply: []hdfspb.Status{st}})
}

func (dn *DataNode) writeBlock(c net.Conn, r *bufio.Reader) (err error) {
	var op hdfspb.OpWriteBlockProto
	if err := hadoop.ReadDelimited(r, &op); err != nil {
		return fmt.Errorf("write block request: %w", err)
	}
	b := op.GetHeader().GetBaseHeader().GetBlock()
	id := b.GetBlockId()
	switch cs := op.GetRequestedChecksum(); {
	case op.GetStage() != hdfspb.OpWriteBlockProto_PIPELINE_SETUP_CREATE:
		return dn.refuse(c, hdfspb.Status_ERROR_UNSUPPORTED, fmt.Sprintf("block construction stage %v is not supported", op.GetStage()))
	case len(op.GetTargets()) > 0:
		return dn.refuse(c, hdfspb.Status_ERROR_UNSUPPORTED, "pipelines with more than one datanode are not supported")
	case cs.GetType() != hdfspb.ChecksumTypeProto_CHECKSUM_CRC32C || cs.GetBytesPerChecksum() != hadoop.ChunkSize:
		return dn.refuse(c, hdfspb.Status_ERROR_UNSUPPORTED, fmt.Sprintf("checksum %v/%d is not supported (CRC32C/512 only)", cs.GetType(), cs.GetBytesPerChecksum()))
	case dn.allocated != nil && !dn.allocated(id):
		return dn.refuse(c, hdfspb.Status_ERROR_INVALID, fmt.Sprintf("block %d was not allocated to a file under construction", id))
	}
	if _, ok := dn.FinalizedLength(id); ok {
		return dn.refuse(c, hdfspb.Status_ERROR_EXISTS, fmt.Sprintf("block %d already exists", id))
	}
	tmp := dn.blockPath(id) + ".rbw"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return dn.refuse(c, hdfspb.Status_ERROR, err.Error())
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := hadoop.WriteDelimited(c, &hdfspb.BlockOpResponseProto{Status: hdfspb.Status_SUCCESS.Enum(), FirstBadLink: proto.String("")}); err != nil {
		return err
	}
	var received int64
	for {
		p, err := hadoop.ReadDataPacket(r)
		if err != nil {
			return fmt.Errorf("block %d: packet: %w", id, err)
		}
		h := p.Header
		if h.GetSeqno() == -1 && len(p.Data) == 0 && !h.GetLastPacketInBlock() {
			if err := ack(c, -1, hdfspb.Status_SUCCESS); err != nil { // heartbeat
				return err
			}
			continue
		}
		if h.GetOffsetInBlock() != received {
			_ = ack(c, h.GetSeqno(), hdfspb.Status_ERROR)
			return fmt.Errorf("block %d: packet at offset %d, expected %d", id, h.GetOffsetInBlock(), received)
		}
		if err := hadoop.VerifyChecksums(p.Data, p.Checksums); err != nil {
			_ = ack(c, h.GetSeqno(), hdfspb.Status_ERROR_CHECKSUM)
			return fmt.Errorf("block %d at offset %d: %w", id, received, err)
		}
		if received+int64(len(p.Data)) > dn.maxBlock {
			_ = ack(c, h.GetSeqno(), hdfspb.Status_ERROR)
			return fmt.Errorf("block %d exceeds the maximum block size %d", id, dn.maxBlock)
		}
		if _, err := f.Write(p.Data); err != nil {
			_ = ack(c, h.GetSeqno(), hdfspb.Status_ERROR)
			return err
		}
		received += int64(len(p.Data))
		if h.GetLastPacketInBlock() {
			if err := f.Sync(); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp, dn.blockPath(id)); err != nil {
				return err
			}
			done = true
			dn.mu.Lock()
			dn.finalized[id] = received
			dn.mu.Unlock()
			dn.logger.Debug("block finalized", "block", id, "bytes", received)
			return ack(c, h.GetSeqno(), hdfspb.Status_SUCCESS)
		}
		if err := ack(c, h.GetSeqno(), hdfspb.Status_SUCCESS); err != nil {
			return err
		}
	}
}

func (dn *DataNode) refuse(c net.Conn, st hdfspb.Status, msg string) error {
	_ = hadoop.WriteDelimited(c, opError(st, msg))
	return errors.New(msg)
}

func (dn *DataNode) readBlock(c net.Conn, r *bufio.Reader) error {
	var op hdfspb.OpReadBlockProto
	if err := hadoop.ReadDelimited(r, &op); err != nil {
		return fmt.Errorf("read block request: %w", err)
	}
	id := op.GetHeader().GetBaseHeader().GetBlock().GetBlockId()
	size, ok := dn.FinalizedLength(id)
	if !ok {
		return dn.refuse(c, hdfspb.Status_ERROR, fmt.Sprintf("Replica not found for block %d", id))
	}
	off, n := int64(op.GetOffset()), int64(op.GetLen())
	if off < 0 || n < 0 || off > size || off+n > size {
		return dn.refuse(c, hdfspb.Status_ERROR_INVALID, fmt.Sprintf("Offset %d and length %d don't match block %d (length %d)", off, n, id, size))
	}
	f, err := os.Open(dn.blockPath(id))
	if err != nil {
		return dn.refuse(c, hdfspb.Status_ERROR, err.Error())
	}
	defer f.Close()
	start := off - off%hadoop.ChunkSize
	if err := hadoop.WriteDelimited(c, &hdfspb.BlockOpResponseProto{
		Status: hdfspb.Status_SUCCESS.Enum(),
		ReadOpChecksumInfo: &hdfspb.ReadOpChecksumInfoProto{
			Checksum:    &hdfspb.ChecksumProto{Type: hdfspb.ChecksumTypeProto_CHECKSUM_CRC32C.Enum(), BytesPerChecksum: proto.Uint32(hadoop.ChunkSize)},
			ChunkOffset: proto.Uint64(uint64(start)),
		},
	}); err != nil {
		return err
	}
	// Send whole chunks from start up to the chunk holding the last byte.
	end := off + n
	if rem := end % hadoop.ChunkSize; rem != 0 {
		end = min(end+hadoop.ChunkSize-rem, size)
	}
	w := bufio.NewWriterSize(c, readPacketSize+4096)
	buf := make([]byte, readPacketSize)
	seq := int64(0)
	for pos := start; pos < end; {
		k := min(int64(readPacketSize), end-pos)
		if _, err := f.ReadAt(buf[:k], pos); err != nil {
			return err
		}
		hdr := &hdfspb.PacketHeaderProto{OffsetInBlock: proto.Int64(pos), Seqno: proto.Int64(seq), LastPacketInBlock: proto.Bool(false), DataLen: proto.Int32(int32(k))}
		if err := hadoop.WritePacket(w, hdr, hadoop.Checksums(buf[:k]), buf[:k]); err != nil {
			return err
		}
		pos += k
		seq++
	}
	last := &hdfspb.PacketHeaderProto{OffsetInBlock: proto.Int64(end), Seqno: proto.Int64(seq), LastPacketInBlock: proto.Bool(true), DataLen: proto.Int32(0)}
	if err := hadoop.WritePacket(w, last, nil, nil); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// Clients that read to the end send a ClientReadStatusProto; colinmarc
	// closes the connection instead. Either is fine.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var st hdfspb.ClientReadStatusProto
	_ = hadoop.ReadDelimited(r, &st)
	return nil
}
