package hdfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"
	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/test/faultproxy"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/writertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var roots atomic.Int64

// newTestWriter returns a Writer on a fresh, empty root folder of h.
func newTestWriter(t *testing.T, addr string, mod func(*Config)) *Writer {
	t.Helper()
	cfg := Config{
		Namenodes: []string{addr}, User: "lakesink",
		Root: fmt.Sprintf("/lakesink-test/%d", roots.Add(1)),
	}
	if mod != nil {
		mod(&cfg)
	}
	w, err := New(cfg, slog.New(slog.NewTextHandler(testWriterLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

type testWriterLog struct{ t *testing.T }

func (l testWriterLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// rawClient is a plain colinmarc client for looking behind the backend.
func rawClient(t *testing.T, addr, user string) *hdfs.Client {
	t.Helper()
	c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{addr}, User: user})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestAcceptance(t *testing.T) {
	h := testenv.StartHDFS(t)
	t.Run("bare", func(t *testing.T) {
		writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer { return newTestWriter(t, h.Addr, nil) })
	})
}

// TestCompleteRetry runs against a NameNode that answers the first three
// complete calls of every file with false ("still replicating").
func TestCompleteRetry(t *testing.T) {
	h := testenv.StartHDFS(t, "-complete-delay", "3")
	content := writertest.RandomBytes(1, 100_000)

	t.Run("retries until complete", func(t *testing.T) {
		w := newTestWriter(t, h.Addr, func(c *Config) { c.CompleteBackoff = time.Millisecond })
		writertest.MustPut(t, w, "a/b", content)
		writertest.RequireContent(t, w, "a/b", content)
		if err := w.PutIfAbsent(t.Context(), "a/c", bytes.NewReader(content), int64(len(content))); err != nil {
			t.Fatalf("PutIfAbsent: %v", err)
		}
		writertest.RequireContent(t, w, "a/c", content)
	})
	t.Run("gives up and cleans up", func(t *testing.T) {
		w := newTestWriter(t, h.Addr, func(c *Config) { c.CompleteRetries = 2; c.CompleteBackoff = time.Millisecond })
		err := w.Put(t.Context(), "a/b", bytes.NewReader(content), int64(len(content)))
		if !errors.Is(err, hdfs.ErrReplicating) {
			t.Fatalf("Put error = %v, want one wrapping hdfs.ErrReplicating", err)
		}
		writertest.RequireAbsent(t, w, "a/b")
		infos, err := rawClient(t, h.Addr, "lakesink").ReadDir(w.cfg.Root + "/a")
		if err != nil {
			t.Fatal(err)
		}
		for _, fi := range infos {
			t.Errorf("left behind: %s", fi.Name())
		}
	})
}

// TestBlocks checks files spanning several blocks (4 MiB default block
// size) and ranges across block boundaries.
func TestBlocks(t *testing.T) {
	h := testenv.StartHDFS(t)
	w := newTestWriter(t, h.Addr, nil)
	content := writertest.RandomBytes(2, 10<<20+17)
	writertest.MustPut(t, w, "big", content)
	fi, err := rawClient(t, h.Addr, "x").Stat(w.cfg.Root + "/big")
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*hdfs.FileStatus)
	if st.GetBlocksize() != 4<<20 || st.GetLength() != uint64(len(content)) {
		t.Fatalf("block size %d, length %d; want %d, %d", st.GetBlocksize(), st.GetLength(), 4<<20, len(content))
	}
	if owner := fi.(*hdfs.FileInfo).Owner(); owner != "lakesink" {
		t.Errorf("owner = %q, want lakesink", owner)
	}
	for _, r := range [][2]int64{{4<<20 - 5, 10}, {0, 4 << 20}, {4 << 20, 4<<20 + 1}, {8<<20 + 3, -1}, {int64(len(content)) - 1, 5}} {
		got := writertest.MustGetRange(t, w, "big", r[0], r[1])
		end := int64(len(content))
		if r[1] >= 0 {
			end = min(end, r[0]+r[1])
		}
		if !bytes.Equal(got, content[r[0]:end]) {
			t.Errorf("GetRange(%d, %d) = %s, want %s", r[0], r[1], writertest.Describe(got), writertest.Describe(content[r[0]:end]))
		}
	}
}

// TestReaderSurvivesOverwrite: a reader keeps the version it opened.
func TestReaderSurvivesOverwrite(t *testing.T) {
	h := testenv.StartHDFS(t)
	w := newTestWriter(t, h.Addr, nil)
	v1 := writertest.RandomBytes(3, 6<<20)
	writertest.MustPut(t, w, "k", v1)
	rc, err := w.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	writertest.MustPut(t, w, "k", writertest.RandomBytes(4, 5<<20))
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, v1) {
		t.Fatalf("reader yielded %s, want the version it opened, %s", writertest.Describe(got), writertest.Describe(v1))
	}
}

func TestTempFilesHidden(t *testing.T) {
	h := testenv.StartHDFS(t)
	w := newTestWriter(t, h.Addr, nil)
	writertest.MustPut(t, w, "d/x", []byte("x"))
	c := rawClient(t, h.Addr, "lakesink")
	f, err := c.Create(w.cfg.Root + "/d/" + TempPrefix + "abc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	writertest.RequireObjects(t, w, "", []writers.Object{{Key: "d/x", Size: 1}})
	writertest.RequireObjects(t, w, "d/", []writers.Object{{Key: "d/x", Size: 1}})
}

// TestRestart: the server restarts between calls; the backend's retries
// reconnect and the namespace survives.
func TestRestart(t *testing.T) {
	h := testenv.StartHDFS(t)
	w := newTestWriter(t, h.Addr, nil)
	content := writertest.RandomBytes(5, 300_000)
	writertest.MustPut(t, w, "before", content)
	h.Restart()
	writertest.RequireContent(t, w, "before", content)
	writertest.MustPut(t, w, "after", content)
	writertest.RequireContent(t, w, "after", content)
}

func TestPermissionDenied(t *testing.T) {
	h := testenv.StartHDFS(t)
	alice := newTestWriter(t, h.Addr, func(c *Config) { c.User = "alice"; c.Root = "/alice" })
	writertest.MustPut(t, alice, "f", []byte("a"))
	bob := newTestWriter(t, h.Addr, func(c *Config) { c.User = "bob"; c.Root = "/alice" })
	err := bob.Put(t.Context(), "g", strings.NewReader("b"), 1)
	if !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Put into another user's folder: %v, want os.ErrPermission", err)
	}
	if got := writertest.MustGet(t, bob, "f"); string(got) != "a" {
		t.Fatalf("Get = %q", got)
	}
}

func TestNewFails(t *testing.T) {
	port := testenv.FreePort(t)
	_, err := New(Config{
		Namenodes: []string{fmt.Sprintf("127.0.0.1:%d", port)}, User: "u", Root: "/r",
		Attempts: 2, RetryBackoff: time.Millisecond,
	}, nil)
	if err == nil {
		t.Fatal("New succeeded without a NameNode")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want []string
	}{
		{Config{Namenodes: []string{"nn:8020"}, Root: "/lake"}, nil},
		{Config{Namenodes: []string{"nn-a:8020", "[::1]:9000"}, Root: "/"}, nil},
		{Config{Root: "/lake"}, []string{"storage.hdfs.namenodes: at least one namenode required"}},
		{Config{Namenodes: []string{"nn"}, Root: "lake"}, []string{`storage.hdfs.namenodes[0]: want host:port, got "nn"`, `storage.hdfs.root: must be an absolute path, got "lake"`}},
		{Config{Namenodes: []string{"nn:1"}, Root: "/lake/"}, []string{`storage.hdfs.root: must be a clean absolute path ("/lake"), got "/lake/"`}},
		{Config{Namenodes: []string{"nn:1"}, Root: "/a/../b"}, []string{`storage.hdfs.root: must be a clean absolute path ("/b"), got "/a/../b"`}},
		{Config{Namenodes: []string{"nn:1", ":8020", "nn:0", "nn:x", "nn:70000", "n n:1"}, Root: "/lake"}, []string{
			`storage.hdfs.namenodes[1]: want host:port, got ":8020" (no host)`, `storage.hdfs.namenodes[2]: invalid port in "nn:0"`,
			`storage.hdfs.namenodes[3]: invalid port in "nn:x"`, `storage.hdfs.namenodes[4]: invalid port in "nn:70000"`,
			`storage.hdfs.namenodes[5]: invalid host in "n n:1"`}},
	} {
		err := tc.cfg.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", tc.cfg, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Validate(%+v) = nil, want %q", tc.cfg, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%+v) = %q, want it to contain %q", tc.cfg, err, w)
			}
		}
	}
}

type fakeRemote struct{ exception string }

func (f fakeRemote) Method() string    { return "m" }
func (f fakeRemote) Desc() string      { return "ERROR_APPLICATION" }
func (f fakeRemote) Exception() string { return f.exception }
func (f fakeRemote) Message() string   { return "msg" }
func (f fakeRemote) Error() string     { return f.exception }

func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fakeRemote{"org.apache.hadoop.ipc.StandbyException"}, true},
		{&os.PathError{Op: "x", Err: fakeRemote{"org.apache.hadoop.ipc.RetriableException"}}, true},
		{fakeRemote{"java.io.FileNotFoundException"}, false},
		{&os.PathError{Op: "stat", Path: "/x", Err: os.ErrNotExist}, false},
		{&os.PathError{Op: "create", Path: "/x", Err: os.ErrExist}, false},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{io.ErrUnexpectedEOF, true},
		{errors.New("no available namenodes: dial tcp: connection refused"), true},
		{context.Canceled, false},
		{errors.New("something else"), false},
	} {
		if got := IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestRealCluster runs the conformance suite against a real HDFS when
// LAKESINK_TEST_HDFS_NAMENODE (comma-separated host:port list) is set;
// LAKESINK_TEST_HDFS_USER (default "hdfs") and LAKESINK_TEST_HDFS_ROOT
// (default /tmp/lakesink-test) choose user and folder.
func TestRealCluster(t *testing.T) {
	nns := os.Getenv("LAKESINK_TEST_HDFS_NAMENODE")
	if nns == "" {
		t.Skip("LAKESINK_TEST_HDFS_NAMENODE is not set")
	}
	user := cmp(os.Getenv("LAKESINK_TEST_HDFS_USER"), "hdfs")
	root := cmp(os.Getenv("LAKESINK_TEST_HDFS_ROOT"), "/tmp/lakesink-test")
	run := time.Now().UnixNano()
	writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
		return newTestWriter(t, strings.Split(nns, ",")[0], func(c *Config) {
			c.Namenodes = strings.Split(nns, ",")
			c.User = user
			c.Root = fmt.Sprintf("%s/%d/%d", root, run, roots.Add(1))
		})
	})
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestNamenodeHangs: a NameNode that accepts connections and never answers
// fails calls within RPCTimeout instead of hanging them; once it answers
// again, calls work on a fresh connection.
func TestNamenodeHangs(t *testing.T) {
	h := testenv.StartHDFS(t)
	proxy := faultproxy.New(t, h.Addr)
	w := newTestWriter(t, proxy.Addr(), func(c *Config) { c.RPCTimeout = 500 * time.Millisecond })
	writertest.MustPut(t, w, "before", []byte("a"))
	proxy.SetMode(faultproxy.Blackhole)
	start := time.Now()
	if _, err := w.Stat(t.Context(), "before"); err == nil {
		t.Fatal("Stat succeeded against a silent NameNode")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Stat against a silent NameNode took %v, want the retries of 500ms calls", d)
	}
	proxy.SetMode(faultproxy.Pass)
	writertest.MustPut(t, w, "after", []byte("b"))
	writertest.RequireContent(t, w, "before", []byte("a"))
}
