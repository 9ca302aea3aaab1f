// Command hdfsserver is a protocol-level HDFS for tests: one NameNode
// (Hadoop RPC v9, ClientProtocol) and one DataNode (DataTransferProtocol
// v28) in a single process, on 127.0.0.1. It speaks the real wire protocols,
// so lakesink's HDFS backend (github.com/colinmarc/hdfs/v2) runs against it
// unchanged; it is not a file system for production use.
//
//	hdfsserver -port 0 -data-port 0 -dir /tmp/hdfs
//
// prints "listening 127.0.0.1:PORT" (the NameNode address) once both servers
// accept connections, and exits cleanly on SIGTERM or SIGINT.
//
// What it implements: getServerDefaults, getFileInfo, mkdirs, create (CREATE
// without OVERWRITE is an exclusive create: exactly one of several
// concurrent creators wins, the others get FileAlreadyExistsException),
// addBlock, updateBlockForPipeline, complete, rename2 (with and without
// OVERWRITE), getListing (paged by startAfter, -list-limit entries per
// page), getBlockLocations, delete, renewLease, getFsStats, setReplication.
// Any other method gets an RPC error with ERROR_NO_SUCH_METHOD and
// org.apache.hadoop.ipc.RpcNoSuchMethodException. Failures carry the Java
// exception class names real NameNodes use (FileNotFoundException,
// FileAlreadyExistsException, ParentNotDirectoryException,
// PathIsNotEmptyDirectoryException, AccessControlException, ...), which
// clients translate into errors.
//
// Owners are the effective user of the RPC connection; permissions are
// checked for writes to the parent folder (owner and "other" bits; the
// -superuser bypasses them). The root folder is mode 0777.
//
// The namespace is persisted to <dir>/namespace.json on every change and
// block replicas live in <dir>/blocks, so a restart on the same -dir keeps
// every completed file. Leases never expire, files are never appended to,
// there is one replica per block, and security (Kerberos, SASL, block
// tokens, encryption) is not supported.
//
// -complete-delay N makes the first N complete calls of every file return
// false, as a real NameNode does while the last block is still being
// replicated, so that clients' retry loops are exercised.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hdfsserver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("hdfsserver", flag.ContinueOnError)
	port := fs.Int("port", 0, "NameNode RPC port on 127.0.0.1 (0: any free port)")
	dataPort := fs.Int("data-port", 0, "DataNode transfer port on 127.0.0.1 (0: any free port)")
	dir := fs.String("dir", "", "folder for the namespace and block replicas (required)")
	blockSize := fs.Uint64("block-size", 4<<20, "default block size in bytes (getServerDefaults)")
	listLimit := fs.Int("list-limit", 1000, "entries per getListing page (dfs.ls.limit)")
	completeDelay := fs.Int("complete-delay", 0, "answer the first N complete calls of every file with false")
	deleteDelay := fs.Duration("delete-delay", 30*time.Second, "how long replicas of deleted or overwritten files stay readable")
	superuser := fs.String("superuser", "hdfs", "user that bypasses permission checks")
	verbose := fs.Bool("v", false, "log every call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	if *listLimit < 1 {
		return fmt.Errorf("-list-limit must be at least 1, got %d", *listLimit)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	srv, err := start(config{
		Port: *port, DataPort: *dataPort, Dir: *dir, BlockSize: *blockSize, ListLimit: *listLimit,
		CompleteDelay: *completeDelay, DeleteDelay: *deleteDelay, Superuser: *superuser,
	}, logger)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", srv.Addr())
	logger.Info("hdfsserver started", "namenode", srv.Addr(), "datanode", srv.DataAddr(), "dir", *dir)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	logger.Info("shutting down", "signal", s.String())
	srv.Close()
	return nil
}

type config struct {
	Port, DataPort int
	Dir            string
	BlockSize      uint64
	ListLimit      int
	CompleteDelay  int
	DeleteDelay    time.Duration
	Superuser      string
}

// server is a running NameNode + DataNode pair.
type server struct {
	nnL, dnL net.Listener
	nn       *NameNode
	dn       *DataNode
}

func start(cfg config, logger *slog.Logger) (*server, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	dn, err := newDataNode(filepath.Join(cfg.Dir, "blocks"), int64(cfg.BlockSize), cfg.DeleteDelay, logger)
	if err != nil {
		return nil, fmt.Errorf("datanode: %w", err)
	}
	ns, err := newNamespace(filepath.Join(cfg.Dir, "namespace.json"), dn, time.Now)
	if err != nil {
		return nil, err
	}
	ns.CompleteDelay = cfg.CompleteDelay
	ns.Superuser = cfg.Superuser
	dn.allocated = ns.BlockAllocated
	dn.RemoveUnreferenced(ns.Referenced())

	dnL, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.DataPort))
	if err != nil {
		return nil, fmt.Errorf("datanode listen: %w", err)
	}
	nnL, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.Port))
	if err != nil {
		dnL.Close()
		return nil, fmt.Errorf("namenode listen: %w", err)
	}
	// Blocks may be up to the largest block size a client asks for; the
	// server default is what colinmarc/hdfs uses.
	dn.maxBlock = max(int64(cfg.BlockSize), 1<<30)
	nn := newNameNode(ns, dnL.Addr().(*net.TCPAddr), cfg.BlockSize, cfg.ListLimit, logger)
	s := &server{nnL: nnL, dnL: dnL, nn: nn, dn: dn}
	go dn.Serve(dnL)
	go nn.Serve(nnL)
	return s, nil
}

// Addr is the NameNode's address.
func (s *server) Addr() string { return s.nnL.Addr().String() }

// DataAddr is the DataNode's address.
func (s *server) DataAddr() string { return s.dnL.Addr().String() }

// Close stops both servers and waits for their connections to end.
func (s *server) Close() {
	s.nnL.Close()
	s.dnL.Close()
	s.nn.Close()
	s.dn.Close()
}
