// Package local is the writers.Writer backend for a folder on a local (or
// POSIX network) filesystem: `storage.type: local`, `storage.local.root`.
//
// Key k is stored as the file <root>/k, with '/' in k as the path
// separator. Keys are validated with writers.ValidateKey and must not have
// a segment starting with TempPrefix, so no key can name a path outside
// root or a temporary file. Symbolic links are not followed by List; an
// operator who plants one inside root gets what they asked for from Get.
//
// # Atomic, durable uploads
//
// Put writes the content to a temporary file in the destination folder,
// named TempPrefix + random, fsyncs it, renames it over the key's file and
// fsyncs the folder, as Prometheus' tsdb does. Missing parent folders are
// created, and each folder a new entry was made in is fsynced. Readers see
// the old file or the new one, never a partial file, and after Put returns
// the object survives a power loss. PutIfAbsent publishes with link(2)
// instead of rename(2): link fails if the key exists, so exactly one of
// several concurrent callers (processes included) wins; the filesystem must
// support hard links. The context is checked between reads of the content
// and once more before publishing.
//
// # Temporary files left by a crash
//
// A process killed during an upload leaves its temporary file behind. List
// never shows temporary files, and New removes every one under root that no
// live upload holds (WithStartupCleanup turns this off): an upload holds an
// exclusive flock(2) on its temporary file until it is published, and the
// kernel drops the lock when the process dies, so several processes may
// share one root and restart at any time without deleting each other's
// in-flight uploads. CleanTemp runs the same sweep on demand. (In the
// instant between creating and locking a temporary file, a sweep by another
// process can remove it; that upload then fails and nothing is published.)
//
// # Delete
//
// Delete removes the key's file and fsyncs its folder. It leaves the
// now-possibly-empty folders in place: removing them would race with a
// concurrent Put into the same folder (the hour folders are reused), and an
// empty folder is no object, so List does not show it.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/lakesink/lakesink/writers"
)

// copyBuffer is the size of the buffer uploads are copied through.
const copyBuffer = 256 << 10

// onlyWriter hides *os.File's ReadFrom, which would copy through its own
// 32 KiB buffer.
type onlyWriter struct{ io.Writer }

// TempPrefix starts the name of every temporary file. Keys must not have a
// segment starting with it.
const TempPrefix = ".lakesink-tmp-"

// Option configures New.
type Option func(*Writer)

// WithLogger sets the logger (default: discard) for what New swept and for
// warnings about files already published (a failed close or clean-up).
// writers/factory passes its own, as it does to the other backends.
func WithLogger(l *slog.Logger) Option {
	return func(w *Writer) {
		if l != nil {
			w.log = l
		}
	}
}

// WithStartupCleanup sets whether New sweeps the whole tree for temporary
// files of crashed uploads (default true). The sweep walks every folder
// under root, which takes a while on a lake of millions of files; turn it
// off there and call CleanTemp from a maintenance job instead.
func WithStartupCleanup(enabled bool) Option { return func(w *Writer) { w.noCleanup = !enabled } }

// WithFileMode sets the permission bits of stored files (default 0o644;
// the umask does not apply).
func WithFileMode(m fs.FileMode) Option { return func(w *Writer) { w.fileMode = m.Perm() } }

// WithDirMode sets the permission bits of created folders (default 0o755,
// reduced by the umask).
func WithDirMode(m fs.FileMode) Option { return func(w *Writer) { w.dirMode = m.Perm() } }

// Writer stores objects as files under a root folder. Safe for concurrent
// use, also by several processes sharing the root.
type Writer struct {
	root      string // absolute, cleaned
	log       *slog.Logger
	fileMode  fs.FileMode
	dirMode   fs.FileMode
	noCleanup bool
}

var _ writers.Writer = (*Writer)(nil)

// New returns a Writer rooted at root, creating the folder if needed, and
// removes temporary files that crashed uploads left under it (see the
// package doc and WithStartupCleanup; the number removed is logged).
func New(root string, opts ...Option) (*Writer, error) {
	w := &Writer{log: slog.New(slog.DiscardHandler), fileMode: 0o644, dirMode: 0o755}
	for _, o := range opts {
		o(w)
	}
	if root == "" {
		return nil, errors.New("local storage: root is empty")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("local storage root %s: %w", root, err)
	}
	w.root = abs
	if err := os.MkdirAll(abs, w.dirMode); err != nil {
		return nil, fmt.Errorf("local storage root: %w", err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("local storage root: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("local storage root %s: not a folder", abs)
	}
	if w.noCleanup {
		return w, nil
	}
	n, err := w.CleanTemp(context.Background())
	if err != nil {
		return nil, fmt.Errorf("local storage root %s: %w", abs, err)
	}
	if n > 0 {
		w.log.Info("removed temporary files of interrupted uploads", "root", abs, "files", n)
	}
	return w, nil
}

// Root returns the absolute root folder.
func (w *Writer) Root() string { return w.root }

// Name returns "local".
func (w *Writer) Name() string { return "local" }

// Close does nothing: the Writer holds no resources between calls.
func (w *Writer) Close() error { return nil }

// CleanTemp removes the temporary files under root that no live upload
// holds (see the package doc) and returns how many it removed. Safe to call
// while uploads run, in this or other processes.
func (w *Writer) CleanTemp(ctx context.Context) (int, error) {
	removed := 0
	err := filepath.WalkDir(w.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed concurrently
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), TempPrefix) {
			return nil
		}
		ok, err := removeIfUnlocked(path)
		if err != nil {
			return fmt.Errorf("remove temporary file: %w", err)
		}
		if ok {
			removed++
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("clean temporary files: %w", err)
	}
	return removed, nil
}

// removeIfUnlocked removes the temporary file at path unless an upload
// holds its lock. The lock is held while removing, so the owner cannot be
// half-way through publishing it.
func removeIfUnlocked(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // published or removed meanwhile
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	locked, err := tryLock(f)
	if err != nil || !locked {
		return false, err
	}
	// The owner may have published (renamed) the file between our open and
	// our lock; then path is gone or is another file, and we must not
	// remove it.
	same, err := samePath(f, path)
	if err != nil || !same {
		return false, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// samePath reports whether path still names the file f is open on.
func samePath(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// path checks key and returns its file's path.
func (w *Writer) path(key string) (string, error) {
	if err := writers.ValidateKey(key); err != nil {
		return "", err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(seg, TempPrefix) {
			return "", fmt.Errorf("%w %q: segment starts with %q, reserved for temporary files", writers.ErrInvalidKey, key, TempPrefix)
		}
	}
	return filepath.Join(w.root, filepath.FromSlash(key)), nil
}

// Put implements writers.Writer: see the package doc.
func (w *Writer) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := w.put(ctx, key, r, size, false); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// PutIfAbsent implements writers.Writer: see the package doc.
func (w *Writer) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := w.put(ctx, key, r, size, true); err != nil {
		return fmt.Errorf("put if absent %s: %w", key, err)
	}
	return nil
}

func (w *Writer) put(ctx context.Context, key string, r io.Reader, size int64, exclusive bool) (err error) {
	final, err := w.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(final)
	f, err := w.createTemp(dir)
	if err != nil {
		return err
	}
	tmp := f.Name()
	published := false
	defer func() {
		// Closing releases the lock. Until published, the temporary file is
		// ours to remove; after, it is the object (rename) or a second name
		// of it (link). The content was fsynced, so a close error after
		// publishing loses nothing.
		if cerr := f.Close(); cerr != nil && published {
			w.log.Warn("close published file", "key", key, "err", cerr)
		}
		if !published {
			_ = os.Remove(tmp)
		}
	}()
	if err := lock(f); err != nil {
		return fmt.Errorf("lock temporary file: %w", err)
	}
	// No bigger than the object (+1 so that a longer reader is seen):
	// many small files are uploaded at once when memory runs short.
	n := int64(copyBuffer)
	if size >= 0 && size+1 < n {
		n = max(size+1, 512)
	}
	buf := make([]byte, n)
	if _, err := io.CopyBuffer(onlyWriter{f}, writers.ExactReader(ctx, r, size), buf); err != nil {
		return err
	}
	if err := f.Chmod(w.fileMode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if exclusive {
		if err := os.Link(tmp, final); err != nil {
			if errors.Is(err, fs.ErrExist) {
				if fi, serr := os.Lstat(final); serr == nil && fi.IsDir() {
					return fmt.Errorf("%s is a folder", key)
				}
				return writers.ErrExists
			}
			return err
		}
		published = true // the object is the link; tmp is just a second name
		if err := os.Remove(tmp); err != nil {
			// Harmless: unlocked once f is closed, so the next CleanTemp
			// removes it.
			w.log.Warn("remove temporary file after publishing", "key", key, "err", err)
		}
	} else {
		if err := os.Rename(tmp, final); err != nil {
			return err
		}
		published = true
	}
	return syncDir(dir)
}

// createTemp creates a temporary file in dir, creating dir and its missing
// parents first. Delete never removes folders, but another process might:
// a folder vanishing between creating it and creating the file is retried.
func (w *Writer) createTemp(dir string) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		f, err := os.CreateTemp(dir, TempPrefix+"*")
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return nil, err
		}
		if err := w.mkdirAll(dir); err != nil {
			return nil, err
		}
	}
}

// mkdirAll creates dir and its missing parents below root, fsyncing the
// parent of every folder it creates so the new entries are durable.
func (w *Writer) mkdirAll(dir string) error {
	var missing []string
	for d := dir; d != w.root; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a folder", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if len(d) <= len(w.root) { // defensive: paths are built under root
			return fmt.Errorf("%s is outside the storage root", dir)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Reverse(missing)
	for _, d := range missing {
		if err := os.Mkdir(d, w.dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	// The first missing folder's entry is in its parent; each later one's
	// is in the folder created before it.
	if err := syncDir(filepath.Dir(missing[0])); err != nil {
		return err
	}
	for _, d := range missing[:len(missing)-1] {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a folder so that entries created, renamed or removed in it
// are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("sync folder %s: %w", dir, serr)
	}
	return cerr
}

// open opens key's file for reading; a missing file, a folder and a path
// through a file are all ErrNotFound.
func (w *Writer) open(ctx context.Context, key string) (*os.File, fs.FileInfo, error) {
	p, err := w.path(key)
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	// Stat first: opening a FIFO someone left in the tree would block.
	if fi, err := os.Stat(p); err != nil {
		if isNotFound(err) {
			return nil, nil, writers.ErrNotFound
		}
		return nil, nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, nil, writers.ErrNotFound
	}
	f, err := os.Open(p)
	if err != nil {
		if isNotFound(err) {
			return nil, nil, writers.ErrNotFound
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, writers.ErrNotFound
	}
	return f, fi, nil
}

func isNotFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Get implements writers.Writer. The reader is the open file; reads see the
// object as it was when Get returned, even if it is overwritten or deleted.
func (w *Writer) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, _, err := w.open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return f, nil
}

// GetRange implements writers.Writer.
func (w *Writer) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	f, _, err := w.open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if length < 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("get %s: %w", key, err)
		}
		return f, nil
	}
	return &sectionReadCloser{SectionReader: io.NewSectionReader(f, off, length), f: f}, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionReadCloser) Close() error { return s.f.Close() }

// Stat implements writers.Writer.
func (w *Writer) Stat(ctx context.Context, key string) (writers.Object, error) {
	p, err := w.path(key)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return writers.Object{}, fmt.Errorf("stat %s: %w", key, err)
	}
	fi, err := os.Stat(p)
	switch {
	case isNotFound(err):
		return writers.Object{}, fmt.Errorf("stat %s: %w", key, writers.ErrNotFound)
	case err != nil:
		return writers.Object{}, fmt.Errorf("stat %s: %w", key, err)
	case !fi.Mode().IsRegular():
		return writers.Object{}, fmt.Errorf("stat %s: %w", key, writers.ErrNotFound)
	}
	return writers.Object{Key: key, Size: fi.Size()}, nil
}

// Exists implements writers.Writer.
func (w *Writer) Exists(ctx context.Context, key string) (bool, error) {
	_, err := w.Stat(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, writers.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// List implements writers.Writer. It walks only the folders that can hold
// matching keys, skips temporary files, symbolic links and anything else
// that is not a regular file, and sorts the result. Files created, replaced
// or removed during the walk may or may not be listed.
func (w *Writer) List(ctx context.Context, prefix string) ([]writers.Object, error) {
	objs, err := w.list(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	return objs, nil
}

func (w *Writer) list(ctx context.Context, prefix string) ([]writers.Object, error) {
	if err := writers.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	start := w.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(w.root, filepath.FromSlash(prefix[:i]))
	}
	var objs []writers.Object
	err := filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if isNotFound(err) {
				return nil // start is missing or a file, or a folder vanished
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path == w.root {
			return nil
		}
		if strings.HasPrefix(d.Name(), TempPrefix) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(w.root, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Descend only if keys below can match: the folder's key is a
			// prefix of prefix, or prefix is a prefix of the folder's key.
			if path == start || strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				return nil
			}
			return fs.SkipDir
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if isNotFound(err) {
				return nil // deleted meanwhile
			}
			return err
		}
		objs = append(objs, writers.Object{Key: key, Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// WalkDir's order is per folder ("a/b/c.txt" after "a/b/c/d"); keys are
	// compared as whole strings.
	slices.SortFunc(objs, func(a, b writers.Object) int { return strings.Compare(a.Key, b.Key) })
	return objs, nil
}

// Delete implements writers.Writer. A missing key, or one that names a
// folder, is not an error (and the folder is kept).
func (w *Writer) Delete(ctx context.Context, key string) error {
	p, err := w.path(key)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	fi, err := os.Lstat(p)
	switch {
	case isNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("delete %s: %w", key, err)
	case fi.IsDir():
		return nil
	}
	if err := os.Remove(p); err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
