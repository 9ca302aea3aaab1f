// Package hadoop holds the Hadoop wire protocols that test/hdfsserver speaks:
// Go code generated from the Apache Hadoop .proto files (commonpb, hdfspb)
// and small framing helpers for Hadoop RPC v9 and the DataTransferProtocol
// (see rpc.go and transfer.go), shared by the server and by the raw-protocol
// tests that check it.
//
// The generated packages are committed, so building needs no protoc; to
// regenerate them (after changing gen.sh or upgrading colinmarc/hdfs, where
// the .proto files come from) run `go generate ./test/internal/hadoop`.
package hadoop

//go:generate ./gen.sh
