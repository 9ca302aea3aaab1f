package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// The helpers below make real disk faults with mount(2): a size-limited
// tmpfs that can be filled, and a folder bind-mounted read-only over itself.
// They need root (the sessions and CI run as root); without it, or where
// mount is not permitted (an unprivileged container), the test is skipped
// with a message saying so. Every mount is undone at test cleanup — which
// runs before the cleanup of a t.TempDir made earlier, and after that of
// processes started later.

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs or a read-only bind mount")
	}
}

func mountOrSkip(t testing.TB, what string, err error) {
	t.Helper()
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		t.Skipf("mount not permitted here (%s): %v", what, err)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// MountTmpfs mounts a tmpfs of size bytes on dir (which must exist) and
// unmounts it at cleanup.
func MountTmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	requireRoot(t)
	err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+strconv.FormatInt(size, 10))
	mountOrSkip(t, "mount tmpfs on "+dir, err)
	t.Cleanup(func() { unmount(t, dir) })
}

// ResizeTmpfs makes the tmpfs mounted on dir (MountTmpfs) size bytes big,
// keeping its files: a disk that was too small, made bigger.
func ResizeTmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|syscall.MS_NOSUID|syscall.MS_NODEV, "size="+strconv.FormatInt(size, 10))
	mountOrSkip(t, "resize tmpfs on "+dir, err)
}

// ReadOnly is a folder bind-mounted over itself, read-only until Writable.
type ReadOnly struct {
	t   testing.TB
	dir string
}

// BindReadOnly makes dir read-only (a bind mount of itself, remounted ro);
// Writable makes it writable again, cleanup unmounts it.
func BindReadOnly(t testing.TB, dir string) *ReadOnly {
	t.Helper()
	requireRoot(t)
	mountOrSkip(t, "bind mount "+dir, syscall.Mount(dir, dir, "", syscall.MS_BIND, ""))
	t.Cleanup(func() { unmount(t, dir) })
	r := &ReadOnly{t: t, dir: dir}
	r.remount(syscall.MS_RDONLY)
	return r
}

// Writable remounts the folder read-write.
func (r *ReadOnly) Writable() { r.t.Helper(); r.remount(0) }

// ReadOnly remounts the folder read-only again.
func (r *ReadOnly) ReadOnly() { r.t.Helper(); r.remount(syscall.MS_RDONLY) }

func (r *ReadOnly) remount(flags uintptr) {
	r.t.Helper()
	err := syscall.Mount("", r.dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|flags, "")
	mountOrSkip(r.t, "remount "+r.dir, err)
}

func unmount(t testing.TB, dir string) {
	if err := syscall.Unmount(dir, 0); err != nil {
		// Busy (a process still holds a file): detach, the kernel finishes
		// the unmount once it is released.
		if err2 := syscall.Unmount(dir, syscall.MNT_DETACH); err2 != nil {
			t.Errorf("unmount %s: %v, %v", dir, err, err2)
		}
	}
}

// FillDisk writes a junk file into dir until its filesystem is full
// (ENOSPC) and returns a function that deletes it again (also called at
// cleanup).
func FillDisk(t testing.TB, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "faultsuite-fill.junk")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatalf("fill %s: %v", dir, err)
	}
	buf := make([]byte, 64<<10)
	for len(buf) > 0 {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				f.Close()
				t.Fatalf("fill %s: %v", dir, err)
			}
			buf = buf[:len(buf)/2] // fill the last pages too
		}
	}
	_ = f.Sync()
	f.Close()
	free = func() { _ = os.Remove(path) }
	t.Cleanup(free)
	return free
}
