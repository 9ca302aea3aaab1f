package hadoop

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lakesink/lakesink/test/internal/hadoop/commonpb"
)

// Hadoop RPC v9 constants (org.apache.hadoop.ipc.Server and RpcConstants).
const (
	// RPCVersion is the connection header's version byte.
	RPCVersion = 9
	// AuthNone is the connection header's auth protocol for simple
	// (unauthenticated) connections; AuthSASL (0xdf) is not supported here.
	AuthNone = 0x00
	AuthSASL = 0xdf
	// ClientProtocol is the declaring protocol of every NameNode client call.
	ClientProtocol = "org.apache.hadoop.hdfs.protocol.ClientProtocol"
	// Special call ids.
	ConnectionContextCallID = -3
	PingCallID              = -4
	SASLCallID              = -33
	// MaxPacket bounds an RPC packet (ipc.maximum.data.length default).
	MaxPacket = 64 << 20
)

// Java exception class names that NameNode replies carry and clients
// (colinmarc/hdfs among them) translate into errors.
const (
	FileNotFoundException        = "java.io.FileNotFoundException"
	FileAlreadyExistsException   = "org.apache.hadoop.fs.FileAlreadyExistsException"
	ParentNotDirectoryException  = "org.apache.hadoop.fs.ParentNotDirectoryException"
	PathIsNotEmptyDirException   = "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"
	AccessControlException       = "org.apache.hadoop.security.AccessControlException"
	AlreadyBeingCreatedException = "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException"
	LeaseExpiredException        = "org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException"
	NotReplicatedYetException    = "org.apache.hadoop.hdfs.server.namenode.NotReplicatedYetException"
	IllegalArgumentException     = "org.apache.hadoop.HadoopIllegalArgumentException"
	IOException                  = "java.io.IOException"
	StandbyException             = "org.apache.hadoop.ipc.StandbyException"
	RpcNoSuchMethodException     = "org.apache.hadoop.ipc.RpcNoSuchMethodException"
	RpcNoSuchProtocolException   = "org.apache.hadoop.ipc.RpcNoSuchProtocolException"
	RpcServerException           = "org.apache.hadoop.ipc.RpcServerException"
)

// AppendDelimited appends msg to b, preceded by its length as a uvarint
// (Java's writeDelimitedTo).
func AppendDelimited(b []byte, msg proto.Message) ([]byte, error) {
	m, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	b = binary.AppendUvarint(b, uint64(len(m)))
	return append(b, m...), nil
}

// NextDelimited splits the first length-delimited message off b.
func NextDelimited(b []byte) (msg, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, errors.New("bad length-delimited message")
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// MarshalPacket frames msgs as one RPC packet: a big-endian uint32 total
// length, then each message length-delimited.
func MarshalPacket(msgs ...proto.Message) ([]byte, error) {
	b := make([]byte, 4, 256)
	var err error
	for _, m := range msgs {
		if b, err = AppendDelimited(b, m); err != nil {
			return nil, err
		}
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// ReadPacket reads one RPC packet and returns its body (without the length).
func ReadPacket(r io.Reader) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > MaxPacket {
		return nil, fmt.Errorf("rpc packet of %d bytes exceeds %d", n, MaxPacket)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// ConnectionHeader is the 7-byte preamble of a Hadoop RPC connection.
func ConnectionHeader(serviceClass, auth byte) []byte {
	return []byte{'h', 'r', 'p', 'c', RPCVersion, serviceClass, auth}
}

// RemoteError is an RPC failure as the server reported it.
type RemoteError struct {
	Status    commonpb.RpcResponseHeaderProto_RpcStatusProto
	Code      commonpb.RpcResponseHeaderProto_RpcErrorCodeProto
	Exception string // Java class name
	Message   string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("%s %s: %s (%s)", e.Status, e.Code, e.Exception, e.Message)
}

// Client is a minimal Hadoop RPC v9 client for ClientProtocol, used by tests
// that need to send what colinmarc/hdfs never sends (unknown methods, raw
// paging, concurrent creates). Calls are serialised; safe for concurrent use.
type Client struct {
	mu       sync.Mutex
	conn     net.Conn
	r        *bufio.Reader
	clientID []byte
	callID   int32
}

// Dial connects to a NameNode at addr as user and sends the connection
// header and IpcConnectionContextProto.
func Dial(addr, user string) (*Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, r: bufio.NewReader(conn), clientID: []byte(fmt.Sprintf("raw-%016x", time.Now().UnixNano()))}
	hdr := &commonpb.RpcRequestHeaderProto{
		RpcKind:  commonpb.RpcKindProto_RPC_PROTOCOL_BUFFER.Enum(),
		RpcOp:    commonpb.RpcRequestHeaderProto_RPC_FINAL_PACKET.Enum(),
		CallId:   proto.Int32(ConnectionContextCallID),
		ClientId: c.clientID,
	}
	ctx := &commonpb.IpcConnectionContextProto{
		UserInfo: &commonpb.UserInformationProto{EffectiveUser: proto.String(user)},
		Protocol: proto.String(ClientProtocol),
	}
	pkt, err := MarshalPacket(hdr, ctx)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := conn.Write(append(ConnectionHeader(0, AuthNone), pkt...)); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// ClientName is the name to use in requests that carry a clientName.
func (c *Client) ClientName() string { return "raw-" + string(c.clientID) }

// Call invokes method with req and decodes the reply into resp. A failure
// the server reports is a *RemoteError.
func (c *Client) Call(method string, req, resp proto.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.callID++
	hdr := &commonpb.RpcRequestHeaderProto{
		RpcKind:  commonpb.RpcKindProto_RPC_PROTOCOL_BUFFER.Enum(),
		RpcOp:    commonpb.RpcRequestHeaderProto_RPC_FINAL_PACKET.Enum(),
		CallId:   proto.Int32(c.callID),
		ClientId: c.clientID,
	}
	rh := &commonpb.RequestHeaderProto{
		MethodName:                 proto.String(method),
		DeclaringClassProtocolName: proto.String(ClientProtocol),
		ClientProtocolVersion:      proto.Uint64(1),
	}
	pkt, err := MarshalPacket(hdr, rh, req)
	if err != nil {
		return err
	}
	if err := c.conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	if _, err := c.conn.Write(pkt); err != nil {
		return err
	}
	body, err := ReadPacket(c.r)
	if err != nil {
		return err
	}
	hb, rest, err := NextDelimited(body)
	if err != nil {
		return err
	}
	var rrh commonpb.RpcResponseHeaderProto
	if err := proto.Unmarshal(hb, &rrh); err != nil {
		return err
	}
	if int32(rrh.GetCallId()) != c.callID {
		return fmt.Errorf("reply for call %d, want %d", int32(rrh.GetCallId()), c.callID)
	}
	if rrh.GetStatus() != commonpb.RpcResponseHeaderProto_SUCCESS {
		return &RemoteError{Status: rrh.GetStatus(), Code: rrh.GetErrorDetail(), Exception: rrh.GetExceptionClassName(), Message: rrh.GetErrorMsg()}
	}
	mb, rest, err := NextDelimited(rest)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes in reply", len(rest))
	}
	return proto.Unmarshal(mb, resp)
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// IsRemote reports whether err is a *RemoteError with the given exception
// class.
func IsRemote(err error, exception string) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Exception == exception
}
