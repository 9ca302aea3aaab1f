#!/bin/sh
# Regenerates commonpb/ and hdfspb/ from the Hadoop .proto files (Apache-2.0)
# that github.com/colinmarc/hdfs/v2 ships under internal/protocol.
#
# The proto packages are renamed (hadoop.common -> lakesink.hadoop.common,
# hadoop.hdfs -> lakesink.hadoop.hdfs) and the files moved under
# lakesink/hadoop/ so that these descriptors never collide in the protobuf
# registry with colinmarc's own copy when both are linked into one test
# binary. Package and file names never travel on the wire (Hadoop RPC names
# methods by string), so the encoding is unchanged.
#
# Needs protoc (Debian: protobuf-compiler) and protoc-gen-go
# (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12).
set -eu
cd "$(dirname "$0")"
ROOT=$(cd ../../.. && pwd)
SRC=$(cd "$ROOT" && go list -m -f '{{.Dir}}' github.com/colinmarc/hdfs/v2)/internal/protocol
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/lakesink/hadoop"
MOD=github.com/lakesink/lakesink/test/internal/hadoop

COMMON="RpcHeader IpcConnectionContext ProtobufRpcEngine Security HAServiceProtocol"
HDFS="ClientNamenodeProtocol hdfs acl xattr encryption inotify erasurecoding datatransfer"

MAP=""
for f in $COMMON; do
	sed -e 's/^package hadoop\.common;/package lakesink.hadoop.common;/' \
		-e '/^option go_package/d' \
		-e 's/^import "\(.*\)";/import "lakesink\/hadoop\/\1";/' \
		"$SRC/hadoop_common/$f.proto" >"$TMP/lakesink/hadoop/$f.proto"
	MAP="$MAP --go_opt=Mlakesink/hadoop/$f.proto=$MOD/commonpb"
done
for f in $HDFS; do
	sed -e 's/^package hadoop\.hdfs;/package lakesink.hadoop.hdfs;/' \
		-e '/^option go_package/d' \
		-e 's/^import "\(.*\)";/import "lakesink\/hadoop\/\1";/' \
		"$SRC/hadoop_hdfs/$f.proto" >"$TMP/lakesink/hadoop/$f.proto"
	MAP="$MAP --go_opt=Mlakesink/hadoop/$f.proto=$MOD/hdfspb"
done

FILES=""
for f in $COMMON $HDFS; do FILES="$FILES lakesink/hadoop/$f.proto"; done
rm -f commonpb/*.pb.go hdfspb/*.pb.go
# shellcheck disable=SC2086
protoc -I "$TMP" --go_out="$ROOT" --go_opt=module=github.com/lakesink/lakesink $MAP $FILES
