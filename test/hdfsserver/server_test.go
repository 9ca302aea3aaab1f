package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/lakesink/lakesink/test/internal/hadoop"
	"github.com/lakesink/lakesink/test/internal/hadoop/commonpb"
	"github.com/lakesink/lakesink/test/internal/hadoop/hdfspb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type logWriter struct{ t *testing.T }

func (l logWriter) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func startServer(t *testing.T, dir string, mod func(*config)) *server {
	t.Helper()
	cfg := config{Dir: dir, BlockSize: 4 << 20, ListLimit: 1000, DeleteDelay: time.Hour, Superuser: "hdfs"}
	if mod != nil {
		mod(&cfg)
	}
	s, err := start(cfg, slog.New(slog.NewTextHandler(logWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func dial(t *testing.T, addr, user string) *hadoop.Client {
	t.Helper()
	c, err := hadoop.Dial(addr, user)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func client(t *testing.T, addr, user string) *hdfs.Client {
	t.Helper()
	c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{addr}, User: user})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func createReq(c *hadoop.Client, p string, flag hdfspb.CreateFlagProto) *hdfspb.CreateRequestProto {
	return &hdfspb.CreateRequestProto{
		Src: proto.String(p), Masked: &hdfspb.FsPermissionProto{Perm: proto.Uint32(0o644)},
		ClientName: proto.String(c.ClientName()), CreateFlag: proto.Uint32(uint32(flag)),
		CreateParent: proto.Bool(true), Replication: proto.Uint32(1), BlockSize: proto.Uint64(4 << 20),
	}
}

// createEmpty creates and completes an empty file with raw RPCs.
func createEmpty(t *testing.T, c *hadoop.Client, p string) {
	t.Helper()
	if err := c.Call("create", createReq(c, p, hdfspb.CreateFlagProto_CREATE), &hdfspb.CreateResponseProto{}); err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	var resp hdfspb.CompleteResponseProto
	if err := c.Call("complete", &hdfspb.CompleteRequestProto{Src: proto.String(p), ClientName: proto.String(c.ClientName())}, &resp); err != nil || !resp.GetResult() {
		t.Fatalf("complete %s: %v, %v", p, resp.GetResult(), err)
	}
}

func TestUnknownMethod(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	c := dial(t, s.Addr(), "alice")
	err := c.Call("getContentSummary", &hdfspb.GetContentSummaryRequestProto{Path: proto.String("/")}, &hdfspb.GetContentSummaryResponseProto{})
	var re *hadoop.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("getContentSummary: %v, want a remote error", err)
	}
	if re.Status != commonpb.RpcResponseHeaderProto_ERROR || re.Code != commonpb.RpcResponseHeaderProto_ERROR_NO_SUCH_METHOD ||
		re.Exception != hadoop.RpcNoSuchMethodException {
		t.Fatalf("got %+v, want ERROR / ERROR_NO_SUCH_METHOD / %s", re, hadoop.RpcNoSuchMethodException)
	}
	// The connection stays usable.
	var fi hdfspb.GetFileInfoResponseProto
	if err := c.Call("getFileInfo", &hdfspb.GetFileInfoRequestProto{Src: proto.String("/")}, &fi); err != nil {
		t.Fatalf("getFileInfo after unknown method: %v", err)
	}
	if fi.GetFs().GetFileType() != hdfspb.HdfsFileStatusProto_IS_DIR {
		t.Fatalf("root is %v", fi.GetFs().GetFileType())
	}
}

func TestBadConnectionHeader(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	for _, tc := range []struct {
		name string
		hdr  []byte
		code commonpb.RpcResponseHeaderProto_RpcErrorCodeProto
	}{
		{"version 8", []byte{'h', 'r', 'p', 'c', 8, 0, 0}, commonpb.RpcResponseHeaderProto_FATAL_VERSION_MISMATCH},
		{"SASL", hadoop.ConnectionHeader(0, hadoop.AuthSASL), commonpb.RpcResponseHeaderProto_FATAL_UNAUTHORIZED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tc.hdr); err != nil {
				t.Fatal(err)
			}
			body, err := hadoop.ReadPacket(conn)
			if err != nil {
				t.Fatal(err)
			}
			hb, _, err := hadoop.NextDelimited(body)
			if err != nil {
				t.Fatal(err)
			}
			var h commonpb.RpcResponseHeaderProto
			if err := proto.Unmarshal(hb, &h); err != nil {
				t.Fatal(err)
			}
			if h.GetStatus() != commonpb.RpcResponseHeaderProto_FATAL || h.GetErrorDetail() != tc.code {
				t.Fatalf("reply %v / %v, want FATAL / %v", h.GetStatus(), h.GetErrorDetail(), tc.code)
			}
		})
	}
}

func TestListingPaging(t *testing.T) {
	s := startServer(t, t.TempDir(), func(c *config) { c.ListLimit = 3 })
	c := dial(t, s.Addr(), "alice")
	var want []string
	for i := range 10 {
		name := fmt.Sprintf("f%02d", 9-i) // created out of order
		createEmpty(t, c, "/dir/"+name)
		want = append([]string{name}, want...)
	}
	var got []string
	var remaining []uint32
	after := []byte{}
	for page := 0; page < 10; page++ {
		var resp hdfspb.GetListingResponseProto
		err := c.Call("getListing", &hdfspb.GetListingRequestProto{Src: proto.String("/dir"), StartAfter: after, NeedLocation: proto.Bool(false)}, &resp)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range resp.GetDirList().GetPartialListing() {
			got = append(got, string(st.GetPath()))
			after = st.GetPath()
		}
		remaining = append(remaining, resp.GetDirList().GetRemainingEntries())
		if resp.GetDirList().GetRemainingEntries() == 0 {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paged listing = %v, want %v", got, want)
	}
	if fmt.Sprint(remaining) != "[7 4 1 0]" {
		t.Fatalf("remainingEntries per page = %v, want [7 4 1 0]", remaining)
	}
	// colinmarc pages through all of it.
	infos, err := client(t, s.Addr(), "alice").ReadDir("/dir")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 10 || infos[0].Name() != "f00" || infos[9].Name() != "f09" {
		t.Fatalf("ReadDir returned %d entries", len(infos))
	}
	// A missing folder has no listing.
	var resp hdfspb.GetListingResponseProto
	if err := c.Call("getListing", &hdfspb.GetListingRequestProto{Src: proto.String("/nope"), StartAfter: []byte{}, NeedLocation: proto.Bool(false)}, &resp); err != nil || resp.DirList != nil {
		t.Fatalf("listing of a missing folder: %v, %v", resp.DirList, err)
	}
}

func TestConcurrentExclusiveCreate(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	const n = 16
	clients := make([]*hadoop.Client, n)
	for i := range clients {
		clients[i] = dial(t, s.Addr(), "alice")
	}
	for round := range 5 {
		p := fmt.Sprintf("/race/%d/_SUCCESS", round)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() {
				errs[i] = c.Call("create", createReq(c, p, hdfspb.CreateFlagProto_CREATE), &hdfspb.CreateResponseProto{})
			})
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !hadoop.IsRemote(err, hadoop.FileAlreadyExistsException):
				t.Fatalf("losing create: %v, want %s", err, hadoop.FileAlreadyExistsException)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d creators won, want exactly 1", round, wins)
		}
	}
}

func TestRename2(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	c := client(t, s.Addr(), "alice")
	raw := dial(t, s.Addr(), "alice")
	put := func(p, content string) {
		t.Helper()
		w, err := c.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.MkdirAll("/r", 0o755); err != nil {
		t.Fatal(err)
	}
	put("/r/a", "new")
	put("/r/b", "old")
	rename := func(overwrite bool) error {
		return raw.Call("rename2", &hdfspb.Rename2RequestProto{Src: proto.String("/r/a"), Dst: proto.String("/r/b"), OverwriteDest: proto.Bool(overwrite)}, &hdfspb.Rename2ResponseProto{})
	}
	if err := rename(false); !hadoop.IsRemote(err, hadoop.FileAlreadyExistsException) {
		t.Fatalf("rename2 without OVERWRITE onto a file: %v, want %s", err, hadoop.FileAlreadyExistsException)
	}
	if b, _ := c.ReadFile("/r/b"); string(b) != "old" {
		t.Fatalf("refused rename changed the target: %q", b)
	}
	if err := rename(true); err != nil {
		t.Fatalf("rename2 with OVERWRITE: %v", err)
	}
	if b, err := c.ReadFile("/r/b"); err != nil || string(b) != "new" {
		t.Fatalf("after rename: %q, %v", b, err)
	}
	if _, err := c.Stat("/r/a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("source after rename: %v, want os.ErrNotExist", err)
	}
}

// TestErrors checks the exception classes through colinmarc's mapping.
func TestErrors(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	alice := client(t, s.Addr(), "alice")
	if _, err := alice.Stat("/missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat missing: %v", err)
	}
	if err := alice.MkdirAll("/home/alice", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := alice.CreateEmptyFile("/home/alice/f"); err != nil {
		t.Fatal(err)
	}
	if fi, err := alice.Stat("/home/alice/f"); err != nil || fi.(*hdfs.FileInfo).Owner() != "alice" || fi.Mode().Perm() != 0o644 {
		t.Errorf("Stat = %v, %v; want owner alice, mode 0644", fi, err)
	}
	if err := alice.CreateEmptyFile("/home/alice/f"); !errors.Is(err, os.ErrExist) {
		t.Errorf("Create existing: %v", err)
	}
	if err := alice.Remove("/home"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("Remove non-empty folder: %v", err)
	}
	var he hdfs.Error
	if err := alice.MkdirAll("/home/alice/f/sub", 0o755); !errors.As(err, &he) || he.Exception() != hadoop.ParentNotDirectoryException {
		t.Errorf("MkdirAll below a file: %v, want %s", err, hadoop.ParentNotDirectoryException)
	}
	bob := client(t, s.Addr(), "bob")
	if err := bob.CreateEmptyFile("/home/alice/g"); !errors.Is(err, os.ErrPermission) {
		t.Errorf("bob creating in alice's folder: %v, want os.ErrPermission", err)
	}
	if err := client(t, s.Addr(), "hdfs").CreateEmptyFile("/home/alice/g"); err != nil {
		t.Errorf("superuser: %v", err)
	}
}

// TestPersistence: a new server on the same folder serves the files.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, nil)
	c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{s.Addr()}, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 600_000) // 9.6 MB, 3 blocks
	w, err := c.Create("/p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Close()

	s2 := startServer(t, dir, nil)
	got, err := client(t, s2.Addr(), "alice").ReadFile("/p")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after restart: %d bytes, %v; want %d bytes", len(got), err, len(data))
	}
}

// rawBlock creates p and allocates its first block with raw RPCs.
func rawBlock(t *testing.T, c *hadoop.Client, p string) *hdfspb.LocatedBlockProto {
	t.Helper()
	var cr hdfspb.CreateResponseProto
	if err := c.Call("create", createReq(c, p, hdfspb.CreateFlagProto_CREATE), &cr); err != nil {
		t.Fatal(err)
	}
	var ab hdfspb.AddBlockResponseProto
	if err := c.Call("addBlock", &hdfspb.AddBlockRequestProto{Src: proto.String(p), ClientName: proto.String(c.ClientName()), FileId: cr.GetFs().FileId}, &ab); err != nil {
		t.Fatal(err)
	}
	return ab.GetBlock()
}

func transfer(t *testing.T, addr string, op byte, msg proto.Message) (net.Conn, *bufio.Reader, *hdfspb.BlockOpResponseProto) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := hadoop.WriteOp(conn, op, msg); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var resp hdfspb.BlockOpResponseProto
	if err := hadoop.ReadDelimited(r, &resp); err != nil {
		t.Fatal(err)
	}
	return conn, r, &resp
}

func writeOp(c *hadoop.Client, b *hdfspb.LocatedBlockProto) *hdfspb.OpWriteBlockProto {
	return &hdfspb.OpWriteBlockProto{
		Header: &hdfspb.ClientOperationHeaderProto{
			BaseHeader: &hdfspb.BaseHeaderProto{Block: b.GetB(), Token: b.GetBlockToken()},
			ClientName: proto.String(c.ClientName()),
		},
		Stage:        hdfspb.OpWriteBlockProto_PIPELINE_SETUP_CREATE.Enum(),
		PipelineSize: proto.Uint32(0), MinBytesRcvd: proto.Uint64(0), MaxBytesRcvd: proto.Uint64(0),
		LatestGenerationStamp: proto.Uint64(0),
		RequestedChecksum:     &hdfspb.ChecksumProto{Type: hdfspb.ChecksumTypeProto_CHECKSUM_CRC32C.Enum(), BytesPerChecksum: proto.Uint32(512)},
	}
}

func packetHeader(off, seq int64, last bool, n int) *hdfspb.PacketHeaderProto {
	return &hdfspb.PacketHeaderProto{OffsetInBlock: proto.Int64(off), Seqno: proto.Int64(seq), LastPacketInBlock: proto.Bool(last), DataLen: proto.Int32(int32(n))}
}

func readAck(t *testing.T, r *bufio.Reader) *hdfspb.PipelineAckProto {
	t.Helper()
	var a hdfspb.PipelineAckProto
	if err := hadoop.ReadDelimited(r, &a); err != nil {
		t.Fatal(err)
	}
	return &a
}

// TestDataTransfer writes and reads blocks with raw DataTransferProtocol
// messages: good packets are acked, a corrupt checksum is refused with
// ERROR_CHECKSUM and the replica discarded, and reads start at a chunk
// boundary with valid checksums.
func TestDataTransfer(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	c := dial(t, s.Addr(), "alice")
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i * 31)
	}

	t.Run("bad checksum", func(t *testing.T) {
		b := rawBlock(t, c, "/bad")
		conn, r, resp := transfer(t, s.DataAddr(), hadoop.OpWriteBlock, writeOp(c, b))
		if resp.GetStatus() != hdfspb.Status_SUCCESS || resp.FirstBadLink == nil {
			t.Fatalf("write op reply %v, want SUCCESS with firstBadLink", resp)
		}
		sums := hadoop.Checksums(data)
		sums[5] ^= 0xff // second chunk
		if err := hadoop.WritePacket(conn, packetHeader(0, 1, false, len(data)), sums, data); err != nil {
			t.Fatal(err)
		}
		if a := readAck(t, r); a.GetSeqno() != 1 || len(a.GetReply()) != 1 || a.GetReply()[0] != hdfspb.Status_ERROR_CHECKSUM {
			t.Fatalf("ack %v, want seqno 1 ERROR_CHECKSUM", a)
		}
		if _, err := r.ReadByte(); err != io.EOF {
			t.Fatalf("connection not closed after a bad checksum: %v", err)
		}
		if _, ok := s.dn.FinalizedLength(b.GetB().GetBlockId()); ok {
			t.Fatal("corrupt replica was kept")
		}
		var cr hdfspb.CompleteResponseProto
		last := proto.Clone(b.GetB()).(*hdfspb.ExtendedBlockProto)
		last.NumBytes = proto.Uint64(uint64(len(data)))
		if err := c.Call("complete", &hdfspb.CompleteRequestProto{Src: proto.String("/bad"), ClientName: proto.String(c.ClientName()), Last: last}, &cr); err != nil || cr.GetResult() {
			t.Fatalf("complete of a file whose block was refused = %v, %v; want false", cr.GetResult(), err)
		}
	})

	t.Run("write and read", func(t *testing.T) {
		b := rawBlock(t, c, "/good")
		conn, r, resp := transfer(t, s.DataAddr(), hadoop.OpWriteBlock, writeOp(c, b))
		if resp.GetStatus() != hdfspb.Status_SUCCESS {
			t.Fatalf("write op reply %v", resp)
		}
		// Two packets, a heartbeat between them, then the empty last one.
		if err := hadoop.WritePacket(conn, packetHeader(0, 1, false, 1024), hadoop.Checksums(data[:1024]), data[:1024]); err != nil {
			t.Fatal(err)
		}
		if err := hadoop.WritePacket(conn, packetHeader(0, -1, false, 0), nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := hadoop.WritePacket(conn, packetHeader(1024, 2, false, len(data)-1024), hadoop.Checksums(data[1024:]), data[1024:]); err != nil {
			t.Fatal(err)
		}
		if err := hadoop.WritePacket(conn, packetHeader(int64(len(data)), 3, true, 0), nil, nil); err != nil {
			t.Fatal(err)
		}
		for _, want := range []int64{1, -1, 2, 3} {
			if a := readAck(t, r); a.GetSeqno() != want || a.GetReply()[0] != hdfspb.Status_SUCCESS {
				t.Fatalf("ack %v, want seqno %d SUCCESS", a, want)
			}
		}
		last := proto.Clone(b.GetB()).(*hdfspb.ExtendedBlockProto)
		last.NumBytes = proto.Uint64(uint64(len(data)))
		var cr hdfspb.CompleteResponseProto
		if err := c.Call("complete", &hdfspb.CompleteRequestProto{Src: proto.String("/good"), ClientName: proto.String(c.ClientName()), Last: last}, &cr); err != nil || !cr.GetResult() {
			t.Fatalf("complete = %v, %v", cr.GetResult(), err)
		}

		// Read 100 bytes at offset 700: the reply starts at chunk 512.
		rconn, rr, rresp := transfer(t, s.DataAddr(), hadoop.OpReadBlock, &hdfspb.OpReadBlockProto{
			Header: &hdfspb.ClientOperationHeaderProto{
				BaseHeader: &hdfspb.BaseHeaderProto{Block: last},
				ClientName: proto.String(c.ClientName()),
			},
			Offset: proto.Uint64(700), Len: proto.Uint64(100),
		})
		info := rresp.GetReadOpChecksumInfo()
		if rresp.GetStatus() != hdfspb.Status_SUCCESS || info.GetChunkOffset() != 512 ||
			info.GetChecksum().GetType() != hdfspb.ChecksumTypeProto_CHECKSUM_CRC32C || info.GetChecksum().GetBytesPerChecksum() != 512 {
			t.Fatalf("read op reply %v", rresp)
		}
		var got []byte
		for {
			p, err := hadoop.ReadDataPacket(rr)
			if err != nil {
				t.Fatal(err)
			}
			if err := hadoop.VerifyChecksums(p.Data, p.Checksums); err != nil {
				t.Fatal(err)
			}
			if p.Header.GetLastPacketInBlock() {
				break
			}
			got = append(got, p.Data...)
		}
		if !bytes.Equal(got, data[512:1024]) {
			t.Fatalf("read %d bytes from chunk offset 512, want the chunk [512, 1024)", len(got))
		}
		if err := hadoop.WriteDelimited(rconn, &hdfspb.ClientReadStatusProto{Status: hdfspb.Status_CHECKSUM_OK.Enum()}); err != nil {
			t.Fatal(err)
		}

		// Out of range.
		_, _, bad := transfer(t, s.DataAddr(), hadoop.OpReadBlock, &hdfspb.OpReadBlockProto{
			Header: &hdfspb.ClientOperationHeaderProto{BaseHeader: &hdfspb.BaseHeaderProto{Block: last}, ClientName: proto.String("x")},
			Offset: proto.Uint64(2900), Len: proto.Uint64(200),
		})
		if bad.GetStatus() == hdfspb.Status_SUCCESS {
			t.Fatal("read past the end of the block succeeded")
		}
	})

	t.Run("unallocated block", func(t *testing.T) {
		_, _, resp := transfer(t, s.DataAddr(), hadoop.OpWriteBlock, writeOp(c, &hdfspb.LocatedBlockProto{
			B: &hdfspb.ExtendedBlockProto{PoolId: proto.String(blockPool), BlockId: proto.Uint64(12345), GenerationStamp: proto.Uint64(1)},
		}))
		if resp.GetStatus() != hdfspb.Status_ERROR_INVALID {
			t.Fatalf("write of an unallocated block: %v, want ERROR_INVALID", resp.GetStatus())
		}
	})
}

// TestCompleteDelay: complete answers false N times, then true.
func TestCompleteDelay(t *testing.T) {
	s := startServer(t, t.TempDir(), func(c *config) { c.CompleteDelay = 2 })
	c := dial(t, s.Addr(), "alice")
	if err := c.Call("create", createReq(c, "/f", hdfspb.CreateFlagProto_CREATE), &hdfspb.CreateResponseProto{}); err != nil {
		t.Fatal(err)
	}
	var results []bool
	for range 3 {
		var resp hdfspb.CompleteResponseProto
		if err := c.Call("complete", &hdfspb.CompleteRequestProto{Src: proto.String("/f"), ClientName: proto.String(c.ClientName())}, &resp); err != nil {
			t.Fatal(err)
		}
		results = append(results, resp.GetResult())
	}
	if fmt.Sprint(results) != "[false false true]" {
		t.Fatalf("complete results %v, want [false false true]", results)
	}
}
