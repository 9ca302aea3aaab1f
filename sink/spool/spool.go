// Package spool gives each lakesink process a folder of its own on the
// spool disk, so that processes may share one files.spool_dir (two
// instances on one host with the same config, a shared volume) without
// touching each other's files.
//
// Why: a partition's spool files used to live in <group>/<topic>-<partition>,
// a path every instance of the group computes alike. When the partition
// moved from one process to another on the same disk, the old owner's
// cleanup removed the folder the new owner was writing in, and the new
// owner's worker stalled on "no such file or directory". With a folder per
// process, a process only ever removes its own files and those of
// processes that are gone.
//
// A process proves it is alive by an exclusive flock(2) on its folder,
// held for its lifetime; the kernel drops the lock when the process dies,
// kill -9 included. Claim removes every sibling folder whose lock it can
// take: its owner is gone, and its files are of open (uncommitted) Kafka
// records, which the next owner of their partitions reads again. Linux
// only, like the rest of lakesink's deployment.
package spool

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Folder is a process's own folder below the spool root, locked for as
// long as it is held. Not safe for concurrent Release.
type Folder struct {
	dir string
	f   *os.File // holds the flock
}

// Claim creates a new folder below root (created if missing) and locks it,
// then removes the folders of processes that are gone. It returns the
// folder and the paths it removed. An error with a nil Folder: no folder
// could be claimed. An error with a Folder: the folder is claimed, but a
// gone process's folder could not be removed (it is tried again at the
// next claim). A Folder is the process's until Release; claiming twice in
// one process gives two folders.
func Claim(root string) (*Folder, []string, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, nil, fmt.Errorf("spool dir %s: %w", root, err)
	}
	var f *Folder
	var err error
	// A new folder can be taken by another process's sweep in the instant
	// between its mkdir and its lock (the sweep sees an unlocked folder);
	// claim then fails and a fresh name is tried.
	for range 5 {
		if f, err = claimOnce(root); err == nil || !errors.Is(err, errLost) {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	removed, err := sweep(root, f.dir)
	return f, removed, err
}

// errLost: the folder was swept away before it was locked.
var errLost = errors.New("folder taken by another process's sweep")

func claimOnce(root string) (*Folder, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	dir := filepath.Join(root, fmt.Sprintf("p%d-%s", os.Getpid(), hex.EncodeToString(b[:])))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool dir %s: %w", dir, err)
	}
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errLost
	}
	if err != nil {
		return nil, fmt.Errorf("spool dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLost // a sweep holds it and is removing it
		}
		return nil, fmt.Errorf("lock spool dir %s: %w", dir, err)
	}
	// Locked; but a sweep may have removed the folder between our open
	// and our lock. Only a folder still at its path is ours.
	held, err1 := f.Stat()
	now, err2 := os.Stat(dir)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, errLost
	}
	return &Folder{dir: dir, f: f}, nil
}

// sweep removes the folders below root, other than own, whose lock it can
// take. Plain files (the spool probe's) and folders locked by live
// processes are left alone.
func sweep(root, own string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("spool dir %s: %w", root, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		path := filepath.Join(root, e.Name())
		if !e.IsDir() || path == own {
			continue
		}
		gone, err := removeIfUnlocked(path)
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			removed = append(removed, path)
		}
	}
	return removed, errors.Join(errs...)
}

// removeIfUnlocked removes dir if no process holds its lock, holding the
// lock while it removes, so that no process can claim it meanwhile.
func removeIfUnlocked(dir string) (bool, error) {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // another sweep was faster
	}
	if err != nil {
		return false, fmt.Errorf("spool dir %s: %w", dir, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil // its process is alive
		}
		return false, fmt.Errorf("lock spool dir %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, fmt.Errorf("remove spool dir %s of a process that is gone: %w", dir, err)
	}
	return true, nil
}

// Dir is the folder's path.
func (f *Folder) Dir() string { return f.dir }

// Release removes the folder with everything in it, then drops the lock.
// Call it when nothing writes there any more (after the workers stopped);
// files still in it are of uncommitted records, read again by the next
// owner of their partitions. Safe on nil and to call twice.
func (f *Folder) Release() error {
	if f == nil || f.f == nil {
		return nil
	}
	err := os.RemoveAll(f.dir)
	f.f.Close()
	f.f = nil
	if err != nil {
		return fmt.Errorf("remove spool dir %s: %w", f.dir, err)
	}
	return nil
}
