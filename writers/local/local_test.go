package local_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/local"
	"github.com/lakesink/lakesink/writers/writertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newWriter(t *testing.T, root string, opts ...local.Option) *local.Writer {
	t.Helper()
	w, err := local.New(root, opts...)
	if err != nil {
		t.Fatalf("New(%q): %v", root, err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

func TestAcceptance(t *testing.T) {
	writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
		return newWriter(t, t.TempDir())
	})
}

// tempFiles returns the temporary files under root, relative to it.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), local.TempPrefix) {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lockFile holds an exclusive flock on path, as an in-flight upload does,
// until the test ends.
func lockFile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
}

func TestNewRemovesTempFilesOfCrashedUploads(t *testing.T) {
	root := t.TempDir()
	crashed := []string{
		local.TempPrefix + "123",
		"clickstream/dt=2026-11-25/hour=13/" + local.TempPrefix + "456",
		"a/b/c/" + local.TempPrefix,
	}
	for _, p := range crashed {
		writeFile(t, filepath.Join(root, p), "partial")
	}
	inFlight := "a/" + local.TempPrefix + "789"
	writeFile(t, filepath.Join(root, inFlight), "in flight")
	lockFile(t, filepath.Join(root, inFlight))
	kept := []string{"a/keep.txt", "a/b/x" + local.TempPrefix, "clickstream/dt=2026-11-25/hour=13/_SUCCESS"}
	for _, p := range kept {
		writeFile(t, filepath.Join(root, p), "kept")
	}

	w := newWriter(t, root)
	if got := tempFiles(t, root); len(got) != 1 || got[0] != inFlight {
		t.Fatalf("temporary files after New = %q, want only the locked %q", got, inFlight)
	}
	for _, p := range kept {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("New removed a regular file: %v", err)
		}
	}
	// Once the owner is gone (its lock released), CleanTemp removes it.
	n, err := w.CleanTemp(t.Context())
	if err != nil || n != 0 {
		t.Fatalf("CleanTemp with the lock held = %d, %v; want 0, nil", n, err)
	}
}

func TestCleanTempAfterOwnerDied(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, root)
	p := filepath.Join(root, "x", local.TempPrefix+"1")
	writeFile(t, p, "partial")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if n, err := w.CleanTemp(t.Context()); err != nil || n != 0 {
		t.Fatalf("CleanTemp while locked = %d, %v; want 0, nil", n, err)
	}
	f.Close() // the kernel drops the lock, as on kill -9
	if n, err := w.CleanTemp(t.Context()); err != nil || n != 1 {
		t.Fatalf("CleanTemp after unlock = %d, %v; want 1, nil", n, err)
	}
	if got := tempFiles(t, root); len(got) != 0 {
		t.Fatalf("temporary files left: %q", got)
	}
}

// A second process starting on the same root must not break an upload in
// flight.
func TestNewDoesNotRemoveInFlightUpload(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, root)
	content := writertest.RandomBytes(1, 1<<20)
	for _, op := range []string{"Put", "PutIfAbsent"} {
		t.Run(op, func(t *testing.T) {
			key := "inflight/" + op
			gate := writertest.NewGatedReader(bytes.NewReader(content), int64(len(content)/2))
			defer gate.Release()
			done := make(chan error, 1)
			go func() {
				if op == "Put" {
					done <- w.Put(t.Context(), key, gate, int64(len(content)))
				} else {
					done <- w.PutIfAbsent(t.Context(), key, gate, int64(len(content)))
				}
			}()
			select {
			case <-gate.Reached():
			case err := <-done:
				t.Fatalf("%s returned %v before reading its content", op, err)
			}
			if got := tempFiles(t, root); len(got) != 1 {
				t.Errorf("temporary files during upload = %q, want one", got)
			}
			newWriter(t, root) // sweeps temporary files
			if got := tempFiles(t, root); len(got) != 1 {
				t.Errorf("New removed the in-flight upload's temporary file: %q", got)
			}
			gate.Release()
			if err := <-done; err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			writertest.RequireContent(t, w, key, content)
			if got := tempFiles(t, root); len(got) != 0 {
				t.Fatalf("temporary files after upload = %q", got)
			}
		})
	}
}

func TestInvalidKeys(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	w := newWriter(t, root)
	ctx := t.Context()
	for _, key := range []string{
		"", "/abs", "/", "../x", "..", ".", "a/../../x", "a/..", "a/./b", "a//b", "a/", "a\\b",
		"..\\x", "a\x00b", "a\nb", "\xff", local.TempPrefix + "x", "a/" + local.TempPrefix + "1/b",
	} {
		t.Run(key, func(t *testing.T) {
			for op, call := range map[string]func() error{
				"Put":         func() error { return w.Put(ctx, key, strings.NewReader("x"), 1) },
				"PutIfAbsent": func() error { return w.PutIfAbsent(ctx, key, strings.NewReader("x"), 1) },
				"Get":         func() error { _, err := w.Get(ctx, key); return err },
				"GetRange":    func() error { _, err := w.GetRange(ctx, key, 0, 1); return err },
				"Stat":        func() error { _, err := w.Stat(ctx, key); return err },
				"Exists":      func() error { _, err := w.Exists(ctx, key); return err },
				"Delete":      func() error { return w.Delete(ctx, key) },
			} {
				if err := call(); !errors.Is(err, writers.ErrInvalidKey) {
					t.Errorf("%s(%q) = %v, want an error wrapping writers.ErrInvalidKey", op, key, err)
				}
			}
		})
	}
	for _, prefix := range []string{"../", "../x", "/x", "a//", "a//b", "./", "a/../", "a\\b"} {
		if _, err := w.List(ctx, prefix); !errors.Is(err, writers.ErrInvalidKey) {
			t.Errorf("List(%q) = %v, want an error wrapping writers.ErrInvalidKey", prefix, err)
		}
	}
	// Nothing was created beside the root, and nothing in it.
	if entries, err := os.ReadDir(base); err != nil || len(entries) != 1 || entries[0].Name() != "root" {
		t.Fatalf("folder holding the root: %v, %v; want only root", entries, err)
	}
	if entries, err := os.ReadDir(root); err != nil || len(entries) != 0 {
		t.Fatalf("root holds %v, %v; want nothing", entries, err)
	}
	// Dots inside segments are fine.
	for _, key := range []string{"..x", "a/..b", "a/b..", ".x/y", "a/...", "x.lakesink-tmp-"} {
		writertest.MustPut(t, w, key, []byte(key))
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(key))); err != nil {
			t.Errorf("Put(%q) did not create the file under root: %v", key, err)
		}
	}
}

func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		name              string
		opts              []local.Option
		wantFile, wantDir fs.FileMode
	}{
		{"default", nil, 0o644, 0o755},
		{"custom", []local.Option{local.WithFileMode(0o640), local.WithDirMode(0o750)}, 0o640, 0o750},
		{"umask applies to folders only", []local.Option{local.WithFileMode(0o666), local.WithDirMode(0o777)}, 0o666, 0o755},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			w := newWriter(t, root, tc.opts...)
			writertest.MustPut(t, w, "d/e/put", []byte("x"))
			if err := w.PutIfAbsent(t.Context(), "d/e/pia", strings.NewReader("x"), 1); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"d/e/put", "d/e/pia"} {
				fi, err := os.Stat(filepath.Join(root, p))
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != tc.wantFile {
					t.Errorf("mode of %s = %v, want %v", p, got, tc.wantFile)
				}
			}
			for _, p := range []string{"d", "d/e"} {
				fi, err := os.Stat(filepath.Join(root, p))
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != tc.wantDir {
					t.Errorf("mode of folder %s = %v, want %v", p, got, tc.wantDir)
				}
			}
		})
	}
}

func TestListSkipsWhatIsNotAnObject(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, root)
	writertest.MustPut(t, w, "h/a.parquet", []byte("aa"))
	writertest.MustPut(t, w, "h/b.parquet", []byte("bbb"))
	// An in-flight upload's temporary file (held, so New keeps it), an
	// empty folder, a symbolic link and a FIFO.
	tmp := filepath.Join(root, "h", local.TempPrefix+"9")
	writeFile(t, tmp, "partial")
	lockFile(t, tmp)
	if err := os.MkdirAll(filepath.Join(root, "h", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "h", "a.parquet"), filepath.Join(root, "h", "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "h", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	w = newWriter(t, root)
	want := []writers.Object{{Key: "h/a.parquet", Size: 2}, {Key: "h/b.parquet", Size: 3}}
	writertest.RequireObjects(t, w, "", want)
	writertest.RequireObjects(t, w, "h/", want)
	// A FIFO is no object, and reading it must not block.
	done := make(chan error, 1)
	go func() {
		rc, err := w.Get(t.Context(), "h/fifo")
		if err == nil {
			rc.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, writers.ErrNotFound) {
			t.Fatalf("Get of a FIFO = %v, want an error wrapping ErrNotFound", err)
		}
	case <-time.After(10 * time.Second):
		// Unblock the open by opening the write end.
		f, err := os.OpenFile(filepath.Join(root, "h", "fifo"), os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		<-done
		t.Fatal("Get of a FIFO blocked")
	}
	writertest.RequireAbsent(t, w, "h/fifo")
	writertest.RequireAbsent(t, w, "h/empty")
}

func TestKeyCollidesWithFolderOrFile(t *testing.T) {
	w := newWriter(t, t.TempDir())
	ctx := t.Context()
	writertest.MustPut(t, w, "f", []byte("file"))
	if err := w.Put(ctx, "f/x", strings.NewReader("x"), 1); err == nil {
		t.Error("Put below a file succeeded")
	}
	writertest.RequireAbsent(t, w, "f/x")
	writertest.MustPut(t, w, "d/x", []byte("x"))
	if err := w.Put(ctx, "d", strings.NewReader("d"), 1); err == nil {
		t.Error("Put over a folder succeeded")
	}
	err := w.PutIfAbsent(ctx, "d", strings.NewReader("d"), 1)
	if err == nil || errors.Is(err, writers.ErrExists) {
		t.Errorf("PutIfAbsent over a folder = %v, want an error not wrapping ErrExists (the key holds no object)", err)
	}
	writertest.RequireContent(t, w, "f", []byte("file"))
	writertest.RequireContent(t, w, "d/x", []byte("x"))
	writertest.RequireObjects(t, w, "", []writers.Object{{Key: "d/x", Size: 1}, {Key: "f", Size: 4}})
}

func TestFailedUploadsLeaveNoFiles(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, root)
	content := writertest.RandomBytes(2, 64<<10)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	writertest.MustPut(t, w, "exists", []byte("x"))
	for name, call := range map[string]func() error{
		"reader fails": func() error {
			return w.Put(t.Context(), "k/a", writertest.FailingReader(bytes.NewReader(content), 1000), int64(len(content)))
		},
		"short": func() error { return w.Put(t.Context(), "k/b", bytes.NewReader(content), int64(len(content))+1) },
		"long":  func() error { return w.Put(t.Context(), "k/c", bytes.NewReader(content), int64(len(content))-1) },
		"cancelled": func() error {
			return w.PutIfAbsent(cancelled, "k/d", bytes.NewReader(content), int64(len(content)))
		},
		"exists": func() error {
			return w.PutIfAbsent(t.Context(), "exists", bytes.NewReader(content), int64(len(content)))
		},
	} {
		if err := call(); err == nil {
			t.Errorf("%s: upload succeeded", name)
		}
	}
	if got := tempFiles(t, root); len(got) != 0 {
		t.Fatalf("temporary files left by failed uploads: %q", got)
	}
	writertest.RequireObjects(t, w, "", []writers.Object{{Key: "exists", Size: 1}})
}

func TestDeleteKeepsFolders(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, root)
	writertest.MustPut(t, w, "s/dt=2026-11-25/hour=13/x.parquet", []byte("x"))
	if err := w.Delete(t.Context(), "s/dt=2026-11-25/hour=13/x.parquet"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(root, "s/dt=2026-11-25/hour=13")); err != nil || !fi.IsDir() {
		t.Fatalf("hour folder after Delete: %v", err)
	}
	writertest.RequireObjects(t, w, "", nil)
}

func TestNewErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, "x")
	for _, root := range []string{"", file, filepath.Join(file, "sub")} {
		if w, err := local.New(root); err == nil {
			t.Errorf("New(%q) = %v, nil; want an error", root, w)
		}
	}
}

func TestRootAndName(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	w := newWriter(t, "lake/sub")
	if want := filepath.Join(dir, "lake", "sub"); w.Root() != want {
		t.Errorf("Root() = %q, want %q", w.Root(), want)
	}
	if w.Name() != "local" {
		t.Errorf("Name() = %q, want local", w.Name())
	}
}

func TestStartupCleanupCanBeDisabled(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "h", local.TempPrefix+"1")
	writeFile(t, p, "partial")
	w := newWriter(t, root, local.WithStartupCleanup(false))
	if got := tempFiles(t, root); len(got) != 1 {
		t.Fatalf("temporary files after New without cleanup = %q, want the one left", got)
	}
	writertest.RequireObjects(t, w, "", nil)
	if n, err := w.CleanTemp(t.Context()); err != nil || n != 1 {
		t.Fatalf("CleanTemp = %d, %v; want 1, nil", n, err)
	}
}
