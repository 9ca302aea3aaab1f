// Package hdfs is the HDFS backend of writers.Writer, built on
// github.com/colinmarc/hdfs/v2 (Hadoop RPC to the NameNode, the
// DataTransferProtocol to DataNodes, simple authentication).
//
// Keys map to files below Config.Root: key "a/b.parquet" is
// "<root>/a/b.parquet"; missing folders are created (mode 0755).
//
// How the writers guarantees are met:
//
//   - Put writes the content to a temporary file in the key's folder,
//     named "._lakesink_tmp_<random>" (a leading '.' or '_' makes Spark,
//     Hive and MapReduce input formats skip it, and List hides it), closes
//     it — retrying while the NameNode answers that the last block is still
//     being replicated, as the Java client does — and renames it onto the
//     key with rename2(OVERWRITE): the NameNode replaces the target in one
//     atomic step, so readers see the old or the new file, never a partial
//     one. A failed or cancelled Put deletes its temporary file.
//   - PutIfAbsent writes the temporary file the same way and renames it with
//     rename2 without OVERWRITE, which the NameNode refuses with
//     FileAlreadyExistsException when the key exists: exactly one of
//     several concurrent callers wins, and the marker appears complete or
//     not at all (an exclusive create of the final name would expose an
//     empty, then partial file, and leave it behind after a crash).
//     colinmarc/hdfs v2.4.0 only exposes rename2 with OVERWRITE, so this
//     call goes through the client's NameNode connection directly (see
//     rename.go); New fails if that is not possible.
//   - Get pins the file's block locations when it is called, so a reader
//     keeps reading the version it opened after an overwrite or delete
//     (HDFS deletes replicas lazily).
//   - List walks the folder tree below the prefix with getListing and
//     returns files sorted by key, hiding temporary files. Folders are not
//     objects: Get/Stat of a folder is ErrNotFound and Delete of one does
//     nothing.
//
// NameNode calls are retried with exponential backoff when they fail in a
// way a retry can fix: connection refused/reset/closed, "no available
// namenodes" (colinmarc waits 5 s before redialling a failed NameNode, so
// the default backoff spans more than that), StandbyException and
// RetriableException. Several NameNodes (HA) are given in
// Config.Namenodes; the client fails over between them. Writing the
// content itself is not retried inside one call (the caller's reader can
// only be read once); the sink's upload loop retries whole Puts.
//
// colinmarc/hdfs takes no contexts: a context's deadline becomes the I/O
// deadline of the transfers, and cancellation is noticed between reads of
// the caller's reader and between retries, not inside a blocked NameNode
// call.
package hdfs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/colinmarc/hdfs/v2"

	"github.com/lakesink/lakesink/sink/retry"
	"github.com/lakesink/lakesink/writers"
)

// TempPrefix starts the name of every temporary file of an in-flight Put.
// List never shows such files; a crashed Put can leave one behind, and an
// operator may delete those older than a day.
const TempPrefix = "._lakesink_tmp_"

// Config configures the HDFS backend. It is not decoded from YAML:
// config.HDFSStorage holds the config file's storage.hdfs settings, and the
// retry and timeout fields here are for Go callers (tests); their zero
// values mean the defaults.
type Config struct {
	// Namenodes are the NameNode RPC addresses (host:port); with HA, all of
	// them, in any order.
	Namenodes []string
	// User is the HDFS user the files are created as (simple
	// authentication). Empty: $HADOOP_USER_NAME, else the OS user.
	User string
	// Root is the absolute HDFS folder keys are relative to ("/lake").
	Root string
	// CompleteRetries is how many times closing a file is retried while the
	// NameNode says its last block is still being replicated (default 8),
	// waiting CompleteBackoff (default 100ms) and doubling up to 3.2s.
	CompleteRetries int
	CompleteBackoff time.Duration
	// Attempts is the number of attempts of a NameNode call that fails
	// transiently (default 8), waiting RetryBackoff (default 100ms) before
	// the second and doubling up to MaxRetryBackoff (default 2s).
	Attempts        int
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// RPCTimeout bounds one NameNode call (default 30s): a NameNode that
	// accepts the connection and never answers fails the call instead of
	// hanging it (colinmarc/hdfs takes no contexts for NameNode calls).
	RPCTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.CompleteRetries <= 0 {
		c.CompleteRetries = 8
	}
	if c.CompleteBackoff <= 0 {
		c.CompleteBackoff = 100 * time.Millisecond
	}
	if c.Attempts <= 0 {
		c.Attempts = 8
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.MaxRetryBackoff < c.RetryBackoff {
		c.MaxRetryBackoff = max(2*time.Second, c.RetryBackoff)
	}
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = 30 * time.Second
	}
}

// rpcConn is a NameNode connection on which every request must be answered
// within timeout: each write (a request) sets the deadline, and a read that
// times out closes the connection, so that the client dials afresh for the
// next call instead of reading the late answer of the abandoned one.
type rpcConn struct {
	net.Conn
	timeout time.Duration
}

func (c *rpcConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

func (c *rpcConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		_ = c.Conn.Close()
	}
	return n, err
}

// dialNamenode dials a NameNode with RPC deadlines (rpcConn).
func dialNamenode(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &rpcConn{Conn: c, timeout: timeout}, nil
	}
}

// Validate reports every problem of c at once, each a *writers.SettingError
// naming the setting's config-file key below storage.hdfs. The retry and
// timeout fields, which only Go callers set, are not checked: zero or
// negative ones mean the defaults. It touches no network; New does.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &writers.SettingError{Setting: "storage.hdfs." + key, Problem: fmt.Sprintf(format, args...)})
	}
	if len(c.Namenodes) == 0 {
		bad("namenodes", "at least one namenode required when storage.type is hdfs")
	}
	for i, a := range c.Namenodes {
		if err := checkAddr(a); err != nil {
			bad(fmt.Sprintf("namenodes[%d]", i), "%v", err)
		}
	}
	switch {
	case !strings.HasPrefix(c.Root, "/"):
		bad("root", "must be an absolute path, got %q", c.Root)
	case path.Clean(c.Root) != c.Root:
		bad("root", "must be a clean absolute path (%q), got %q", path.Clean(c.Root), c.Root)
	}
	return errors.Join(errs...)
}

// checkAddr checks a NameNode address: host:port with a host and a port
// number from 1 to 65535.
func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", a)
	}
	if host == "" {
		return fmt.Errorf("want host:port, got %q (no host)", a)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' || r == '/' }) {
		return fmt.Errorf("invalid host in %q", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("invalid port in %q", a)
	}
	return nil
}

// Writer stores objects in HDFS. Safe for concurrent use; Close releases
// the NameNode connection.
type Writer struct {
	cfg    Config
	logger *slog.Logger
	client *hdfs.Client
	nn     executor
}

var _ writers.Writer = (*Writer)(nil)

// New connects to the NameNodes in cfg. It fails if none answers.
func New(cfg Config, logger *slog.Logger) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hdfs config: %w", err)
	}
	cfg.setDefaults()
	if cfg.User == "" {
		cfg.User = os.Getenv("HADOOP_USER_NAME")
	}
	if cfg.User == "" {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("hdfs user: %w", err)
		}
		cfg.User = u.Username
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{cfg: cfg, logger: logger}
	err := w.retry(context.Background(), "connect", func() error {
		c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: cfg.Namenodes, User: cfg.User,
			NamenodeDialFunc: dialNamenode(cfg.RPCTimeout)})
		w.client = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connect to hdfs %v: %w", cfg.Namenodes, err)
	}
	if w.nn, err = namenodeOf(w.client); err != nil {
		w.client.Close()
		return nil, err
	}
	// The client caches the server defaults on first use without a lock;
	// fetch them now so that concurrent Puts only read the cache.
	if err := w.retry(context.Background(), "server defaults", func() error {
		_, err := w.client.ServerDefaults()
		return err
	}); err != nil {
		w.client.Close()
		return nil, fmt.Errorf("hdfs server defaults: %w", err)
	}
	return w, nil
}

// Name returns "hdfs".
func (w *Writer) Name() string { return "hdfs" }

// Close closes the NameNode connection. Readers returned by Get must be
// closed first.
func (w *Writer) Close() error { return w.client.Close() }

func (w *Writer) path(key string) string { return w.cfg.Root + "/" + key }

// Put implements writers.Writer.
func (w *Writer) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := w.upload(ctx, key, r, size, true); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// PutIfAbsent implements writers.Writer.
func (w *Writer) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := w.upload(ctx, key, r, size, false); err != nil {
		return fmt.Errorf("put if absent %s: %w", key, err)
	}
	return nil
}

func (w *Writer) upload(ctx context.Context, key string, r io.Reader, size int64, overwrite bool) error {
	if err := writers.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := w.path(key)
	if !overwrite {
		// Cheap early answer; the rename below decides races.
		if _, err := w.stat(ctx, dst); err == nil {
			return writers.ErrExists
		} else if !errors.Is(err, writers.ErrNotFound) {
			return err
		}
	}
	dir := path.Dir(dst)
	if err := w.retry(ctx, "mkdir "+dir, func() error { return w.client.MkdirAll(dir, 0o755) }); err != nil {
		return fmt.Errorf("create folder %s: %w", dir, mapErr(err))
	}
	tmp := path.Join(dir, TempPrefix+randomHex())
	if err := w.writeTemp(ctx, tmp, r, size); err != nil {
		w.removeTemp(tmp)
		return err
	}
	var err error
	if overwrite {
		err = w.retry(ctx, "rename "+tmp, func() error { return w.client.Rename(tmp, dst) })
	} else {
		err = w.renameNoReplace(ctx, tmp, dst)
	}
	if err != nil {
		w.removeTemp(tmp)
		return fmt.Errorf("rename %s to %s: %w", path.Base(tmp), dst, mapErr(err))
	}
	return nil
}

// writeTemp creates tmp, copies exactly size bytes of r into it and closes
// it, retrying the close while the NameNode reports replication in
// progress.
func (w *Writer) writeTemp(ctx context.Context, tmp string, r io.Reader, size int64) error {
	var f *hdfs.FileWriter
	err := w.retry(ctx, "create "+tmp, func() error {
		var err error
		f, err = w.client.Create(tmp)
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, mapErr(err))
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := f.SetDeadline(dl); err != nil {
			_ = f.Close()
			return err
		}
	}
	buf := make([]byte, 64<<10)
	if _, err := io.CopyBuffer(f, writers.ExactReader(ctx, r, size), buf); err != nil {
		// Close stops the client's transfer goroutines; the file is removed
		// by the caller either way.
		_ = f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	backoff := w.cfg.CompleteBackoff
	for attempt := 0; ; attempt++ {
		err := f.Close()
		if err == nil {
			return nil
		}
		if !hdfs.IsErrReplicating(err) || attempt >= w.cfg.CompleteRetries {
			return fmt.Errorf("close %s: %w", tmp, mapErr(err))
		}
		w.logger.Debug("hdfs file not complete yet, retrying", "path", tmp, "attempt", attempt+1)
		if !retry.Sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, 32*w.cfg.CompleteBackoff)
	}
}

// removeTemp deletes a temporary file after a failed upload, best effort.
func (w *Writer) removeTemp(tmp string) {
	err := w.retry(context.Background(), "remove "+tmp, func() error { return w.client.Remove(tmp) })
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		w.logger.Warn("could not remove temporary hdfs file", "path", tmp, "err", err)
	}
}

// renameNoReplace renames tmp to dst unless dst exists. When a retried
// rename finds dst existing but tmp gone, the earlier attempt succeeded
// (its reply was lost) and the caller won.
func (w *Writer) renameNoReplace(ctx context.Context, tmp, dst string) error {
	attempted := false
	err := w.retry(ctx, "rename "+tmp, func() error {
		attempted = true
		return w.rename2(tmp, dst, false)
	})
	if errors.Is(err, os.ErrExist) && attempted {
		if _, serr := w.stat(ctx, tmp); errors.Is(serr, writers.ErrNotFound) {
			return nil
		}
		return writers.ErrExists
	}
	return err
}

// Get implements writers.Writer.
func (w *Writer) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := w.open(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return rc, nil
}

// GetRange implements writers.Writer.
func (w *Writer) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("get range %s: negative offset %d", key, off)
	}
	rc, err := w.open(ctx, key, off, length)
	if err != nil {
		return nil, fmt.Errorf("get range %s [%d, +%d): %w", key, off, length, err)
	}
	return rc, nil
}

type reader struct {
	io.Reader
	f *hdfs.FileReader
}

func (r *reader) Close() error { return r.f.Close() }

func (w *Writer) open(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := writers.ValidateKey(key); err != nil {
		return nil, err
	}
	p := w.path(key)
	// colinmarc resolves the path twice: getFileInfo at Open (size, inode
	// id) and getBlockLocations at the first Read. An overwrite in between
	// would pair one version's size with another's blocks, so the inode id
	// is checked again after the first read (ids are never reused; the
	// same id before and after means the blocks belong to that file), and
	// the open is repeated if the key changed meanwhile — after a short,
	// growing pause (1, 2, 4 … 64 ms), so that writers overwriting the key
	// back to back on a loaded machine do not win every race.
	for attempt := 1; ; attempt++ {
		rc, changed, err := w.openOnce(ctx, p, off, length)
		if err != nil || !changed {
			return rc, err
		}
		rc.Close()
		if attempt == maxOpenAttempts {
			return nil, fmt.Errorf("%s keeps changing while being opened", p)
		}
		if !retry.Sleep(ctx, time.Millisecond<<min(attempt-1, 6)) {
			return nil, ctx.Err()
		}
	}
}

// maxOpenAttempts bounds the opens of a key that changes each time: 5
// back-to-back attempts were not enough for the conformance suite's
// concurrent overwrites under a full test run.
const maxOpenAttempts = 10

func fileID(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*hdfs.FileStatus); ok {
		return st.GetFileId()
	}
	return 0
}

func (w *Writer) openOnce(ctx context.Context, p string, off, length int64) (rc io.ReadCloser, changed bool, err error) {
	var f *hdfs.FileReader
	err = w.retry(ctx, "open "+p, func() error {
		var err error
		f, err = w.client.Open(p)
		return err
	})
	if err != nil {
		return nil, false, mapErr(err)
	}
	if f.Stat().IsDir() {
		f.Close()
		return nil, false, writers.ErrNotFound
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = f.SetDeadline(dl)
	}
	size := f.Stat().Size()
	off = min(off, size)
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, false, err
	}
	if length < 0 || off+length > size {
		length = size - off
	}
	if length == 0 {
		return &reader{Reader: strings.NewReader(""), f: f}, false, nil
	}
	// Read the first byte now: that fetches the block locations, so the
	// reader keeps the version it opened even if the key is overwritten or
	// deleted before the caller reads on (HDFS deletes replicas lazily).
	var first [1]byte
	_, rerr := io.ReadFull(f, first[:])
	fi, serr := w.stat(ctx, p)
	if serr != nil && !errors.Is(serr, writers.ErrNotFound) {
		f.Close()
		return nil, false, serr
	}
	rc = &reader{Reader: io.MultiReader(bytes.NewReader(first[:]), io.LimitReader(f, length-1)), f: f}
	if serr != nil || fileID(fi) != fileID(f.Stat()) {
		return rc, true, nil // replaced or deleted since Open: try again
	}
	if rerr != nil {
		f.Close()
		return nil, false, fmt.Errorf("read: %w", mapErr(rerr))
	}
	return rc, false, nil
}

// Stat implements writers.Writer.
func (w *Writer) Stat(ctx context.Context, key string) (writers.Object, error) {
	if err := writers.ValidateKey(key); err != nil {
		return writers.Object{}, fmt.Errorf("stat %s: %w", key, err)
	}
	fi, err := w.stat(ctx, w.path(key))
	if err != nil {
		return writers.Object{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return writers.Object{Key: key, Size: fi.Size()}, nil
}

// stat returns the file at p; folders are ErrNotFound.
func (w *Writer) stat(ctx context.Context, p string) (os.FileInfo, error) {
	var fi os.FileInfo
	err := w.retry(ctx, "stat "+p, func() error {
		var err error
		fi, err = w.client.Stat(p)
		return err
	})
	if err != nil {
		return nil, mapErr(err)
	}
	if fi.IsDir() {
		return nil, writers.ErrNotFound
	}
	return fi, nil
}

// Exists implements writers.Writer.
func (w *Writer) Exists(ctx context.Context, key string) (bool, error) {
	_, err := w.Stat(ctx, key)
	return writers.ExistsFromStat(key, err)
}

// List implements writers.Writer.
func (w *Writer) List(ctx context.Context, prefix string) ([]writers.Object, error) {
	if err := writers.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	// Start at the deepest folder the prefix names completely.
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	var out []writers.Object
	if err := w.walk(ctx, start, prefix, &out); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b writers.Object) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// walk appends the files below folder rel (a key prefix without trailing
// slash, "" for the root) whose keys start with prefix.
func (w *Writer) walk(ctx context.Context, rel, prefix string, out *[]writers.Object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := w.cfg.Root
	if rel != "" {
		p = w.path(rel)
	}
	var infos []os.FileInfo
	err := w.retry(ctx, "list "+p, func() error {
		var err error
		infos, err = w.client.ReadDir(p)
		return err
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || isNotDir(err) {
			return nil // gone meanwhile, or a file where a folder was expected
		}
		return mapErr(err)
	}
	for _, fi := range infos {
		name := fi.Name()
		if strings.HasPrefix(name, TempPrefix) {
			continue
		}
		key := name
		if rel != "" {
			key = rel + "/" + name
		}
		if fi.IsDir() {
			if strings.HasPrefix(prefix, key+"/") || strings.HasPrefix(key+"/", prefix) {
				if err := w.walk(ctx, key, prefix, out); err != nil {
					return err
				}
			}
			continue
		}
		if strings.HasPrefix(key, prefix) {
			*out = append(*out, writers.Object{Key: key, Size: fi.Size()})
		}
	}
	return nil
}

// isNotDir reports colinmarc's error for reading a file as a folder.
func isNotDir(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not a directory")
}

// Delete implements writers.Writer.
func (w *Writer) Delete(ctx context.Context, key string) error {
	if err := writers.ValidateKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	p := w.path(key)
	if _, err := w.stat(ctx, p); errors.Is(err, writers.ErrNotFound) {
		return nil // missing, or a folder: nothing to delete
	} else if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	err := w.retry(ctx, "remove "+p, func() error { return w.client.Remove(p) })
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, mapErr(err))
	}
	return nil
}

// mapErr translates colinmarc's os errors into the writers sentinels,
// keeping the original text.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %v", writers.ErrNotFound, err)
	case errors.Is(err, os.ErrExist):
		return fmt.Errorf("%w: %v", writers.ErrExists, err)
	}
	return err
}

// Exception classes after which a call can be repeated.
var retriableExceptions = []string{
	"org.apache.hadoop.ipc.StandbyException",
	"org.apache.hadoop.ipc.RetriableException",
	"org.apache.hadoop.hdfs.server.namenode.SafeModeException",
	"org.apache.hadoop.ipc.ObserverRetryOnActiveException",
}

// IsTransient reports whether err is worth retrying: a connection failure
// or a NameNode exception that says "try again (elsewhere)". Errors that
// carry a verdict on the request (not found, exists, permission, bad
// argument) are not.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var he hdfs.Error
	if errors.As(err, &he) {
		return slices.Contains(retriableExceptions, he.Exception())
	}
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrExist), errors.Is(err, os.ErrPermission),
		errors.Is(err, os.ErrInvalid), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "no available namenodes") || strings.Contains(msg, "use of closed network connection") ||
		strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset")
}

// retry runs fn until it succeeds, fails permanently, the attempts run out
// or ctx is done.
func (w *Writer) retry(ctx context.Context, what string, fn func() error) error {
	backoff := w.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !IsTransient(err) || attempt >= w.cfg.Attempts {
			return err
		}
		w.logger.Warn("hdfs call failed, retrying", "op", what, "attempt", attempt, "backoff", backoff, "err", err)
		if !retry.Sleep(ctx, backoff) {
			return errors.Join(err, ctx.Err())
		}
		backoff = min(2*backoff, w.cfg.MaxRetryBackoff)
	}
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}
