package hdfs

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"syscall"
	"unsafe"

	"github.com/colinmarc/hdfs/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// executor is the exported method of colinmarc's *rpc.NamenodeConnection:
// one NameNode call with failover between HA NameNodes.
type executor interface {
	Execute(method string, req, resp proto.Message) error
}

// namenodeOf returns the NameNode connection inside c.
//
// Why: colinmarc/hdfs v2.4.0's Client.Rename always sets OVERWRITE, and
// PutIfAbsent needs rename2 without it (the NameNode's atomic "rename
// unless the target exists"). The connection is an unexported field of an
// internal type, so it is reached with reflect and unsafe; the method used
// on it is exported and stable. The layout is checked here, at New, and the
// backend's tests exercise the call against the test server — an upgrade of
// colinmarc/hdfs that changes it fails loudly, never silently.
func namenodeOf(c *hdfs.Client) (executor, error) {
	v := reflect.ValueOf(c).Elem().FieldByName("namenode")
	if !v.IsValid() || v.Kind() != reflect.Pointer {
		return nil, errors.New("hdfs: colinmarc/hdfs Client has no namenode connection field; this version is not supported")
	}
	v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	e, ok := v.Interface().(executor)
	if !ok || v.IsNil() {
		return nil, errors.New("hdfs: colinmarc/hdfs namenode connection has no Execute method; this version is not supported")
	}
	return e, nil
}

// rename2Types are Rename2RequestProto and Rename2ResponseProto of
// ClientNamenodeProtocol.proto (fields src=1, dst=2, overwriteDest=3),
// described at run time under a private package name so that they never
// clash with the registered Hadoop descriptors.
var rename2Req, rename2Resp = func() (protoreflect.MessageDescriptor, protoreflect.MessageDescriptor) {
	field := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{
			Name: proto.String(name), Number: proto.Int32(num), Type: typ.Enum(),
			Label: descriptorpb.FieldDescriptorProto_LABEL_REQUIRED.Enum(),
		}
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:    proto.String("lakesink/writers/hdfs/rename2.proto"),
		Package: proto.String("lakesink.writers.hdfs"),
		Syntax:  proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Rename2RequestProto"), Field: []*descriptorpb.FieldDescriptorProto{
				field("src", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING),
				field("dst", 2, descriptorpb.FieldDescriptorProto_TYPE_STRING),
				field("overwriteDest", 3, descriptorpb.FieldDescriptorProto_TYPE_BOOL),
			}},
			{Name: proto.String("Rename2ResponseProto")},
		},
	}, nil)
	if err != nil {
		panic(err) // a static descriptor; covered by every test
	}
	return fd.Messages().Get(0), fd.Messages().Get(1)
}()

// rename2 renames src to dst with the NameNode's rename2. Without
// overwrite an existing dst fails with an error wrapping os.ErrExist.
func (w *Writer) rename2(src, dst string, overwrite bool) error {
	req := dynamicpb.NewMessage(rename2Req)
	f := rename2Req.Fields()
	req.Set(f.ByName("src"), protoreflect.ValueOfString(src))
	req.Set(f.ByName("dst"), protoreflect.ValueOfString(dst))
	req.Set(f.ByName("overwriteDest"), protoreflect.ValueOfBool(overwrite))
	if err := w.nn.Execute("rename2", req, dynamicpb.NewMessage(rename2Resp)); err != nil {
		return &os.PathError{Op: "rename", Path: src, Err: interpret(err)}
	}
	return nil
}

// interpret maps a NameNode exception to an os error the way colinmarc's
// (unexported) interpretException does, keeping the remote error text.
func interpret(err error) error {
	var he hdfs.Error
	if !errors.As(err, &he) {
		return err
	}
	var base error
	switch he.Exception() {
	case "java.io.FileNotFoundException":
		base = os.ErrNotExist
	case "org.apache.hadoop.fs.FileAlreadyExistsException":
		base = os.ErrExist
	case "org.apache.hadoop.security.AccessControlException":
		base = os.ErrPermission
	case "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException":
		base = syscall.ENOTEMPTY
	case "org.apache.hadoop.HadoopIllegalArgumentException":
		base = os.ErrInvalid
	default:
		return err
	}
	return fmt.Errorf("%w (%s: %s)", base, he.Exception(), he.Message())
}
