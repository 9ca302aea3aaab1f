package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/lakesink/lakesink/test/internal/hadoop"
	"github.com/lakesink/lakesink/test/internal/hadoop/commonpb"
	"github.com/lakesink/lakesink/test/internal/hadoop/hdfspb"
)

// NameNode serves Hadoop RPC v9 (ClientProtocol) over a Namespace.
//
// Wire format, per connection: "hrpc", version 9, service class, auth
// protocol (only NONE, i.e. simple authentication, is accepted); then
// packets of a big-endian uint32 length followed by varint-delimited
// protobufs. The first packet (call id -3) carries RpcRequestHeaderProto and
// IpcConnectionContextProto, whose effective user owns what the connection
// creates. Every later packet is RpcRequestHeaderProto, RequestHeaderProto
// (method name) and the request; the reply is RpcResponseHeaderProto and,
// on success, the response. Calls on a connection are handled in order.
type NameNode struct {
	ns       *Namespace
	logger   *slog.Logger
	dataAddr *net.TCPAddr // the DataNode every block lives on
	// Server defaults.
	blockSize uint64
	listLimit int

	methods map[string]method

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// session is one client connection.
type session struct {
	user string
}

type method func(s *session, body []byte) (proto.Message, error)

// unary adapts a typed handler to a method.
func unary[Req any, PReq interface {
	*Req
	proto.Message
}](fn func(s *session, req PReq) (proto.Message, error)) method {
	return func(s *session, body []byte) (proto.Message, error) {
		req := PReq(new(Req))
		if err := proto.Unmarshal(body, req); err != nil {
			return nil, errf(hadoop.RpcServerException, "decode request: %v", err)
		}
		return fn(s, req)
	}
}

func newNameNode(ns *Namespace, dataAddr *net.TCPAddr, blockSize uint64, listLimit int, logger *slog.Logger) *NameNode {
	nn := &NameNode{ns: ns, logger: logger, dataAddr: dataAddr, blockSize: blockSize, listLimit: listLimit, conns: map[net.Conn]bool{}}
	nn.methods = map[string]method{
		"getServerDefaults":      unary(nn.getServerDefaults),
		"getFileInfo":            unary(nn.getFileInfo),
		"mkdirs":                 unary(nn.mkdirs),
		"create":                 unary(nn.create),
		"addBlock":               unary(nn.addBlock),
		"updateBlockForPipeline": unary(nn.updateBlockForPipeline),
		"complete":               unary(nn.complete),
		"rename2":                unary(nn.rename2),
		"getListing":             unary(nn.getListing),
		"getBlockLocations":      unary(nn.getBlockLocations),
		"delete":                 unary(nn.delete),
		"renewLease":             unary(nn.renewLease),
		"getFsStats":             unary(nn.getFsStats),
		"setReplication":         unary(nn.setReplication),
	}
	return nn
}

// Serve accepts connections until l is closed.
func (nn *NameNode) Serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		nn.mu.Lock()
		nn.conns[c] = true
		nn.mu.Unlock()
		nn.wg.Add(1)
		go func() {
			defer nn.wg.Done()
			defer func() {
				nn.mu.Lock()
				delete(nn.conns, c)
				nn.mu.Unlock()
				c.Close()
			}()
			if err := nn.serveConn(c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				nn.logger.Info("namenode connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Close closes every open connection and waits for their handlers.
func (nn *NameNode) Close() {
	nn.mu.Lock()
	for c := range nn.conns {
		c.Close()
	}
	nn.mu.Unlock()
	nn.wg.Wait()
}

func (nn *NameNode) serveConn(c net.Conn) error {
	r := bufio.NewReader(c)
	hdr := make([]byte, 7)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return err
	}
	if string(hdr[:4]) != "hrpc" {
		return fmt.Errorf("bad connection header %q", hdr[:4])
	}
	if hdr[4] != hadoop.RPCVersion {
		_ = nn.writeFatal(c, -1, commonpb.RpcResponseHeaderProto_FATAL_VERSION_MISMATCH,
			"org.apache.hadoop.ipc.RPC$VersionMismatch", fmt.Sprintf("Server IPC version %d cannot communicate with client version %d", hadoop.RPCVersion, hdr[4]))
		return fmt.Errorf("rpc version %d", hdr[4])
	}
	if hdr[6] != hadoop.AuthNone {
		_ = nn.writeFatal(c, -1, commonpb.RpcResponseHeaderProto_FATAL_UNAUTHORIZED,
			hadoop.AccessControlException, "SIMPLE authentication is the only one enabled; SASL is not supported")
		return fmt.Errorf("auth protocol %#x", hdr[6])
	}

	// Connection context.
	body, err := hadoop.ReadPacket(r)
	if err != nil {
		return err
	}
	rrh, rest, err := decodeHeader(body)
	if err != nil {
		return err
	}
	if rrh.GetCallId() != hadoop.ConnectionContextCallID {
		_ = nn.writeFatal(c, rrh.GetCallId(), commonpb.RpcResponseHeaderProto_FATAL_INVALID_RPC_HEADER,
			hadoop.RpcServerException, "connection context expected first")
		return fmt.Errorf("first call id %d", rrh.GetCallId())
	}
	cb, _, err := hadoop.NextDelimited(rest)
	if err != nil {
		return err
	}
	var cc commonpb.IpcConnectionContextProto
	if err := proto.Unmarshal(cb, &cc); err != nil {
		return err
	}
	s := &session{user: cc.GetUserInfo().GetEffectiveUser()}
	if s.user == "" {
		s.user = cc.GetUserInfo().GetRealUser()
	}
	if s.user == "" {
		_ = nn.writeFatal(c, rrh.GetCallId(), commonpb.RpcResponseHeaderProto_FATAL_UNAUTHORIZED,
			hadoop.AccessControlException, "no user in the connection context")
		return errors.New("no user")
	}
	if p := cc.GetProtocol(); p != "" && p != hadoop.ClientProtocol {
		_ = nn.writeFatal(c, rrh.GetCallId(), commonpb.RpcResponseHeaderProto_FATAL_UNKNOWN,
			hadoop.RpcNoSuchProtocolException, "Unknown protocol: "+p)
		return fmt.Errorf("protocol %q", p)
	}

	for {
		body, err := hadoop.ReadPacket(r)
		if err != nil {
			return err
		}
		rrh, rest, err := decodeHeader(body)
		if err != nil {
			return err
		}
		switch {
		case rrh.GetCallId() == hadoop.PingCallID:
			continue
		case rrh.GetRpcOp() == commonpb.RpcRequestHeaderProto_RPC_CLOSE_CONNECTION:
			return nil
		case rrh.GetRpcKind() != commonpb.RpcKindProto_RPC_PROTOCOL_BUFFER:
			_ = nn.writeFatal(c, rrh.GetCallId(), commonpb.RpcResponseHeaderProto_FATAL_UNSUPPORTED_SERIALIZATION,
				hadoop.RpcServerException, "only RPC_PROTOCOL_BUFFER is supported")
			return fmt.Errorf("rpc kind %v", rrh.GetRpcKind())
		}
		hb, rest, err := hadoop.NextDelimited(rest)
		if err != nil {
			return err
		}
		var rh commonpb.RequestHeaderProto
		if err := proto.Unmarshal(hb, &rh); err != nil {
			return err
		}
		reqBody, _, err := hadoop.NextDelimited(rest)
		if err != nil {
			return err
		}
		resp, code, err := nn.call(s, &rh, reqBody)
		if err := nn.reply(c, rrh, resp, code, err); err != nil {
			return err
		}
	}
}

func decodeHeader(body []byte) (*commonpb.RpcRequestHeaderProto, []byte, error) {
	hb, rest, err := hadoop.NextDelimited(body)
	if err != nil {
		return nil, nil, err
	}
	var rrh commonpb.RpcRequestHeaderProto
	if err := proto.Unmarshal(hb, &rrh); err != nil {
		return nil, nil, fmt.Errorf("rpc request header: %w", err)
	}
	return &rrh, rest, nil
}

func (nn *NameNode) call(s *session, rh *commonpb.RequestHeaderProto, body []byte) (proto.Message, commonpb.RpcResponseHeaderProto_RpcErrorCodeProto, error) {
	name := rh.GetMethodName()
	if p := rh.GetDeclaringClassProtocolName(); p != hadoop.ClientProtocol {
		return nil, commonpb.RpcResponseHeaderProto_ERROR_NO_SUCH_PROTOCOL, errf(hadoop.RpcNoSuchProtocolException, "Unknown protocol: %s", p)
	}
	m := nn.methods[name]
	if m == nil {
		nn.logger.Info("unknown method", "method", name, "user", s.user)
		return nil, commonpb.RpcResponseHeaderProto_ERROR_NO_SUCH_METHOD,
			errf(hadoop.RpcNoSuchMethodException, "Unknown method %s called on %s protocol.", name, hadoop.ClientProtocol)
	}
	resp, err := m(s, body)
	if name != "renewLease" {
		if err != nil {
			nn.logger.Info("call failed", "method", name, "user", s.user, "err", err)
		} else {
			nn.logger.Debug("call", "method", name, "user", s.user)
		}
	}
	return resp, commonpb.RpcResponseHeaderProto_ERROR_APPLICATION, err
}

func (nn *NameNode) reply(c net.Conn, rrh *commonpb.RpcRequestHeaderProto, resp proto.Message, code commonpb.RpcResponseHeaderProto_RpcErrorCodeProto, err error) error {
	h := &commonpb.RpcResponseHeaderProto{
		CallId:              proto.Uint32(uint32(rrh.GetCallId())),
		Status:              commonpb.RpcResponseHeaderProto_SUCCESS.Enum(),
		ServerIpcVersionNum: proto.Uint32(hadoop.RPCVersion),
		ClientId:            rrh.GetClientId(),
		RetryCount:          proto.Int32(rrh.GetRetryCount()),
	}
	msgs := []proto.Message{h}
	if err == nil {
		msgs = append(msgs, resp)
	} else {
		var re *remoteErr
		if !errors.As(err, &re) {
			re = &remoteErr{class: hadoop.IOException, msg: err.Error()}
		}
		h.Status = commonpb.RpcResponseHeaderProto_ERROR.Enum()
		h.ExceptionClassName = proto.String(re.class)
		h.ErrorMsg = proto.String(re.msg)
		h.ErrorDetail = code.Enum()
	}
	pkt, merr := hadoop.MarshalPacket(msgs...)
	if merr != nil {
		// A reply missing a required field: a bug in this server.
		nn.logger.Error("marshal reply", "err", merr)
		h.Status = commonpb.RpcResponseHeaderProto_ERROR.Enum()
		h.ExceptionClassName = proto.String(hadoop.RpcServerException)
		h.ErrorMsg = proto.String(merr.Error())
		h.ErrorDetail = commonpb.RpcResponseHeaderProto_ERROR_SERIALIZING_RESPONSE.Enum()
		if pkt, merr = hadoop.MarshalPacket(h); merr != nil {
			return merr
		}
	}
	_, werr := c.Write(pkt)
	return werr
}

func (nn *NameNode) writeFatal(c net.Conn, callID int32, code commonpb.RpcResponseHeaderProto_RpcErrorCodeProto, class, msg string) error {
	pkt, err := hadoop.MarshalPacket(&commonpb.RpcResponseHeaderProto{
		CallId:              proto.Uint32(uint32(callID)),
		Status:              commonpb.RpcResponseHeaderProto_FATAL.Enum(),
		ServerIpcVersionNum: proto.Uint32(hadoop.RPCVersion),
		ExceptionClassName:  proto.String(class),
		ErrorMsg:            proto.String(msg),
		ErrorDetail:         code.Enum(),
	})
	if err != nil {
		return err
	}
	_, err = c.Write(pkt)
	return err
}

// ---- conversions ----

func (nn *NameNode) status(name string, n *inode) *hdfspb.HdfsFileStatusProto {
	st := &hdfspb.HdfsFileStatusProto{
		FileType:         hdfspb.HdfsFileStatusProto_IS_FILE.Enum(),
		Path:             []byte(name),
		Length:           proto.Uint64(n.length()),
		Permission:       &hdfspb.FsPermissionProto{Perm: proto.Uint32(n.Perm)},
		Owner:            proto.String(n.Owner),
		Group:            proto.String(n.Group),
		ModificationTime: proto.Uint64(uint64(n.MTime)),
		AccessTime:       proto.Uint64(uint64(n.ATime)),
		FileId:           proto.Uint64(n.ID),
		StoragePolicy:    proto.Uint32(0),
	}
	if n.Dir {
		st.FileType = hdfspb.HdfsFileStatusProto_IS_DIR.Enum()
		st.Length = proto.Uint64(0)
		st.AccessTime = proto.Uint64(0)
	} else {
		st.BlockReplication = proto.Uint32(n.Replication)
		st.Blocksize = proto.Uint64(n.BlockSize)
	}
	return st
}

func (nn *NameNode) datanode() *hdfspb.DatanodeInfoProto {
	port := uint32(nn.dataAddr.Port)
	return &hdfspb.DatanodeInfoProto{
		Id: &hdfspb.DatanodeIDProto{
			IpAddr:       proto.String(nn.dataAddr.IP.String()),
			HostName:     proto.String("localhost"),
			DatanodeUuid: proto.String("lakesink-test-datanode-" + strconv.Itoa(int(port))),
			XferPort:     proto.Uint32(port),
			InfoPort:     proto.Uint32(0),
			IpcPort:      proto.Uint32(0),
		},
		AdminState: hdfspb.DatanodeInfoProto_NORMAL.Enum(),
	}
}

func (nn *NameNode) located(b block, off uint64) *hdfspb.LocatedBlockProto {
	return &hdfspb.LocatedBlockProto{
		B:       extended(b),
		Offset:  proto.Uint64(off),
		Locs:    []*hdfspb.DatanodeInfoProto{nn.datanode()},
		Corrupt: proto.Bool(false),
		BlockToken: &commonpb.TokenProto{
			Identifier: []byte{}, Password: []byte{}, Kind: proto.String(""), Service: proto.String(""),
		},
		StorageTypes: []hdfspb.StorageTypeProto{hdfspb.StorageTypeProto_DISK},
		StorageIDs:   []string{"DS-lakesink-test"},
	}
}

const blockPool = "BP-lakesink-test"

func extended(b block) *hdfspb.ExtendedBlockProto {
	return &hdfspb.ExtendedBlockProto{
		PoolId:          proto.String(blockPool),
		BlockId:         proto.Uint64(b.ID),
		GenerationStamp: proto.Uint64(b.GenStamp),
		NumBytes:        proto.Uint64(b.NumBytes),
	}
}

func fromExtended(e *hdfspb.ExtendedBlockProto) *block {
	if e == nil {
		return nil
	}
	return &block{ID: e.GetBlockId(), GenStamp: e.GetGenerationStamp(), NumBytes: e.GetNumBytes()}
}

// locations describes the blocks of n overlapping [off, off+length).
func (nn *NameNode) locations(n *inode, off, length uint64) *hdfspb.LocatedBlocksProto {
	lbs := &hdfspb.LocatedBlocksProto{
		FileLength:          proto.Uint64(n.length()),
		UnderConstruction:   proto.Bool(n.UC),
		IsLastBlockComplete: proto.Bool(!n.UC),
	}
	var pos uint64
	for _, b := range n.Blocks {
		start, end := pos, pos+b.NumBytes
		pos = end
		if end > off && start < off+length || (b.NumBytes == 0 && start >= off && start < off+length) {
			lbs.Blocks = append(lbs.Blocks, nn.located(b, start))
		}
	}
	if len(n.Blocks) > 0 {
		last := n.Blocks[len(n.Blocks)-1]
		lbs.LastBlock = nn.located(last, n.length()-last.NumBytes)
	}
	return lbs
}

// ---- methods ----

func (nn *NameNode) getServerDefaults(_ *session, _ *hdfspb.GetServerDefaultsRequestProto) (proto.Message, error) {
	return &hdfspb.GetServerDefaultsResponseProto{ServerDefaults: &hdfspb.FsServerDefaultsProto{
		BlockSize:           proto.Uint64(nn.blockSize),
		BytesPerChecksum:    proto.Uint32(hadoop.ChunkSize),
		WritePacketSize:     proto.Uint32(64 << 10),
		Replication:         proto.Uint32(1),
		FileBufferSize:      proto.Uint32(4096),
		EncryptDataTransfer: proto.Bool(false),
		TrashInterval:       proto.Uint64(0),
		ChecksumType:        hdfspb.ChecksumTypeProto_CHECKSUM_CRC32C.Enum(),
	}}, nil
}

func (nn *NameNode) getFileInfo(_ *session, req *hdfspb.GetFileInfoRequestProto) (proto.Message, error) {
	n, err := nn.ns.Stat(req.GetSrc())
	if err != nil {
		return nil, err
	}
	resp := &hdfspb.GetFileInfoResponseProto{}
	if n != nil {
		// getFileInfo reports an empty local name, as HDFS does.
		resp.Fs = nn.status("", n)
	}
	return resp, nil
}

func (nn *NameNode) mkdirs(s *session, req *hdfspb.MkdirsRequestProto) (proto.Message, error) {
	if err := nn.ns.Mkdirs(req.GetSrc(), req.GetMasked().GetPerm(), req.GetCreateParent(), s.user); err != nil {
		return nil, err
	}
	return &hdfspb.MkdirsResponseProto{Result: proto.Bool(true)}, nil
}

func (nn *NameNode) create(s *session, req *hdfspb.CreateRequestProto) (proto.Message, error) {
	flag := req.GetCreateFlag()
	if flag&uint32(hdfspb.CreateFlagProto_APPEND) != 0 {
		return nil, errf(hadoop.IOException, "append is not supported by this test server")
	}
	overwrite := flag&uint32(hdfspb.CreateFlagProto_OVERWRITE) != 0
	if flag&uint32(hdfspb.CreateFlagProto_CREATE) == 0 {
		// OVERWRITE alone only truncates an existing file.
		if n, err := nn.ns.Stat(req.GetSrc()); err != nil {
			return nil, err
		} else if n == nil {
			return nil, notFound(req.GetSrc())
		}
	}
	n, err := nn.ns.Create(req.GetSrc(), req.GetMasked().GetPerm(), req.GetClientName(), overwrite,
		req.GetCreateParent(), req.GetReplication(), req.GetBlockSize(), s.user)
	if err != nil {
		return nil, err
	}
	return &hdfspb.CreateResponseProto{Fs: nn.status("", n)}, nil
}

func (nn *NameNode) addBlock(_ *session, req *hdfspb.AddBlockRequestProto) (proto.Message, error) {
	b, off, err := nn.ns.AddBlock(req.GetSrc(), req.GetClientName(), req.GetFileId(), fromExtended(req.GetPrevious()))
	if err != nil {
		return nil, err
	}
	return &hdfspb.AddBlockResponseProto{Block: nn.located(b, off)}, nil
}

func (nn *NameNode) updateBlockForPipeline(_ *session, req *hdfspb.UpdateBlockForPipelineRequestProto) (proto.Message, error) {
	b, off, err := nn.ns.UpdateBlockForPipeline(*fromExtended(req.GetBlock()), req.GetClientName())
	if err != nil {
		return nil, err
	}
	return &hdfspb.UpdateBlockForPipelineResponseProto{Block: nn.located(b, off)}, nil
}

func (nn *NameNode) complete(_ *session, req *hdfspb.CompleteRequestProto) (proto.Message, error) {
	ok, err := nn.ns.Complete(req.GetSrc(), req.GetClientName(), req.GetFileId(), fromExtended(req.GetLast()))
	if err != nil {
		return nil, err
	}
	return &hdfspb.CompleteResponseProto{Result: proto.Bool(ok)}, nil
}

func (nn *NameNode) rename2(s *session, req *hdfspb.Rename2RequestProto) (proto.Message, error) {
	if err := nn.ns.Rename2(req.GetSrc(), req.GetDst(), req.GetOverwriteDest(), s.user); err != nil {
		return nil, err
	}
	return &hdfspb.Rename2ResponseProto{}, nil
}

func (nn *NameNode) getListing(_ *session, req *hdfspb.GetListingRequestProto) (proto.Message, error) {
	entries, remaining, ok, err := nn.ns.List(req.GetSrc(), string(req.GetStartAfter()), nn.listLimit)
	if err != nil {
		return nil, err
	}
	resp := &hdfspb.GetListingResponseProto{}
	if !ok {
		return resp, nil
	}
	dl := &hdfspb.DirectoryListingProto{RemainingEntries: proto.Uint32(uint32(remaining)), PartialListing: []*hdfspb.HdfsFileStatusProto{}}
	for _, e := range entries {
		st := nn.status(e.name, &e.node)
		if req.GetNeedLocation() && !e.node.Dir {
			st.Locations = nn.locations(&e.node, 0, e.node.length())
		}
		dl.PartialListing = append(dl.PartialListing, st)
	}
	resp.DirList = dl
	return resp, nil
}

func (nn *NameNode) getBlockLocations(_ *session, req *hdfspb.GetBlockLocationsRequestProto) (proto.Message, error) {
	n, err := nn.ns.Stat(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, notFound(req.GetSrc())
	}
	if n.Dir {
		return nil, errf(hadoop.FileNotFoundException, "Path is not a file: %s", req.GetSrc())
	}
	return &hdfspb.GetBlockLocationsResponseProto{Locations: nn.locations(n, req.GetOffset(), req.GetLength())}, nil
}

func (nn *NameNode) delete(s *session, req *hdfspb.DeleteRequestProto) (proto.Message, error) {
	ok, err := nn.ns.Delete(req.GetSrc(), req.GetRecursive(), s.user)
	if err != nil {
		return nil, err
	}
	return &hdfspb.DeleteResponseProto{Result: proto.Bool(ok)}, nil
}

func (nn *NameNode) renewLease(_ *session, _ *hdfspb.RenewLeaseRequestProto) (proto.Message, error) {
	// Leases never expire on this server, so there is nothing to renew.
	return &hdfspb.RenewLeaseResponseProto{}, nil
}

func (nn *NameNode) getFsStats(_ *session, _ *hdfspb.GetFsStatusRequestProto) (proto.Message, error) {
	const capacity = 1 << 40
	used := nn.ns.Used()
	return &hdfspb.GetFsStatsResponseProto{
		Capacity: proto.Uint64(capacity), Used: proto.Uint64(used), Remaining: proto.Uint64(capacity - min(used, capacity)),
		UnderReplicated: proto.Uint64(0), CorruptBlocks: proto.Uint64(0), MissingBlocks: proto.Uint64(0),
	}, nil
}

func (nn *NameNode) setReplication(_ *session, req *hdfspb.SetReplicationRequestProto) (proto.Message, error) {
	ok, err := nn.ns.SetReplication(req.GetSrc(), req.GetReplication())
	if err != nil {
		return nil, err
	}
	return &hdfspb.SetReplicationResponseProto{Result: proto.Bool(ok)}, nil
}
