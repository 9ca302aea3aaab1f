package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lakesink/lakesink/test/internal/hadoop"
)

// remoteErr is a failure reported to the client as a Java exception.
type remoteErr struct {
	class string // Java exception class name
	msg   string
}

func (e *remoteErr) Error() string { return e.class + ": " + e.msg }

func errf(class, format string, args ...any) error {
	return &remoteErr{class: class, msg: fmt.Sprintf(format, args...)}
}

func notFound(p string) error {
	return errf(hadoop.FileNotFoundException, "File does not exist: %s", p)
}

// block is one block of a file as the NameNode tracks it.
type block struct {
	ID       uint64 `json:"id"`
	GenStamp uint64 `json:"gen_stamp"`
	NumBytes uint64 `json:"num_bytes"`
}

// inode is a file or directory.
type inode struct {
	ID          uint64  `json:"id"`
	Dir         bool    `json:"dir,omitempty"`
	Perm        uint32  `json:"perm"`
	Owner       string  `json:"owner"`
	Group       string  `json:"group"`
	MTime       int64   `json:"mtime"` // milliseconds since the epoch
	ATime       int64   `json:"atime"`
	Replication uint32  `json:"replication,omitempty"`
	BlockSize   uint64  `json:"block_size,omitempty"`
	Blocks      []block `json:"blocks,omitempty"`
	// Under construction: Client holds the lease; Refused counts the
	// complete calls answered "not yet" (see Namespace.CompleteDelay).
	UC      bool   `json:"uc,omitempty"`
	Client  string `json:"client,omitempty"`
	Refused int    `json:"refused,omitempty"`
}

func (n *inode) length() uint64 {
	var l uint64
	for _, b := range n.Blocks {
		l += b.NumBytes
	}
	return l
}

// replicas is what the NameNode asks the DataNode: the finalized length of
// a block, if the DataNode holds it.
type replicas interface {
	FinalizedLength(id uint64) (int64, bool)
	// Release schedules the deletion of blocks no longer in the namespace.
	Release(ids []uint64)
}

// Namespace is the NameNode's file tree: a map from absolute path to inode
// plus a parent → children index. Every mutation is persisted to a JSON
// file (written to a temporary name, synced and renamed) before the RPC
// returns, so a restarted server keeps its files. Safe for concurrent use:
// one mutex serialises all operations, which also makes create and rename
// atomic with respect to each other.
type Namespace struct {
	// Fixed after newNamespace.
	Superuser     string // bypasses permission checks
	Group         string // group of new inodes
	CompleteDelay int    // complete answers false this many times per file
	MinBlockSize  uint64
	now           func() time.Time
	dn            replicas
	file          string // persistence file; "" keeps the namespace in memory

	mu        sync.Mutex
	nodes     map[string]*inode
	kids      map[string]map[string]bool
	nextInode uint64
	nextBlock uint64
	genStamp  uint64
}

type persisted struct {
	NextInode uint64            `json:"next_inode"`
	NextBlock uint64            `json:"next_block"`
	GenStamp  uint64            `json:"gen_stamp"`
	Nodes     map[string]*inode `json:"nodes"`
}

// newNamespace loads the namespace from file if it exists, or starts with
// an empty root directory (mode 0777, so any user can create top-level
// folders).
func newNamespace(file string, dn replicas, now func() time.Time) (*Namespace, error) {
	ns := &Namespace{
		Superuser: "hdfs", Group: "supergroup", MinBlockSize: 1 << 20,
		now: now, dn: dn, file: file,
		nodes: map[string]*inode{}, kids: map[string]map[string]bool{},
		nextInode: 16386, nextBlock: 1 << 30, genStamp: 1000,
	}
	if file != "" {
		b, err := os.ReadFile(file)
		switch {
		case err == nil:
			var p persisted
			if err := json.Unmarshal(b, &p); err != nil {
				return nil, fmt.Errorf("load namespace %s: %w", file, err)
			}
			ns.nextInode, ns.nextBlock, ns.genStamp = p.NextInode, p.NextBlock, p.GenStamp
			for pth, n := range p.Nodes {
				ns.add(pth, n)
			}
		case !os.IsNotExist(err):
			return nil, fmt.Errorf("load namespace: %w", err)
		}
	}
	if ns.nodes["/"] == nil {
		ns.add("/", &inode{ID: 16385, Dir: true, Perm: 0o777, Owner: "hdfs", Group: "supergroup", MTime: ns.ms(), ATime: ns.ms()})
	}
	return ns, nil
}

// Referenced returns the ids of every block in the namespace.
func (ns *Namespace) Referenced() map[uint64]bool {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ids := map[uint64]bool{}
	for _, n := range ns.nodes {
		for _, b := range n.Blocks {
			ids[b.ID] = true
		}
	}
	return ids
}

func (ns *Namespace) ms() int64 { return ns.now().UnixMilli() }

func (ns *Namespace) add(p string, n *inode) {
	ns.nodes[p] = n
	if p == "/" {
		return
	}
	dir, name := path.Split(p)
	dir = cleanDir(dir)
	if ns.kids[dir] == nil {
		ns.kids[dir] = map[string]bool{}
	}
	ns.kids[dir][name] = true
}

func (ns *Namespace) remove(p string) {
	delete(ns.nodes, p)
	dir, name := path.Split(p)
	dir = cleanDir(dir)
	delete(ns.kids[dir], name)
	if len(ns.kids[dir]) == 0 {
		delete(ns.kids, dir)
	}
}

func cleanDir(d string) string {
	if d == "/" {
		return d
	}
	return strings.TrimSuffix(d, "/")
}

// persist writes the namespace to its file; the caller holds mu.
func (ns *Namespace) persist() error {
	if ns.file == "" {
		return nil
	}
	b, err := json.Marshal(persisted{NextInode: ns.nextInode, NextBlock: ns.nextBlock, GenStamp: ns.genStamp, Nodes: ns.nodes})
	if err != nil {
		return err
	}
	tmp := ns.file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, ns.file); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(ns.file))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// commit persists after a mutation, turning a failure into an IOException.
func (ns *Namespace) commit() error {
	if err := ns.persist(); err != nil {
		return errf(hadoop.IOException, "persist namespace: %v", err)
	}
	return nil
}

// normalize checks that p is an absolute path without "." or ".."
// components and returns it without a trailing slash.
func normalize(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", errf(hadoop.IllegalArgumentException, "Invalid path name %q: not absolute", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." || strings.ContainsRune(seg, 0) {
			return "", errf(hadoop.IllegalArgumentException, "Invalid path name %q", p)
		}
	}
	return path.Clean(p), nil
}

func (ns *Namespace) canWrite(dir string, n *inode, user string) error {
	if user == ns.Superuser {
		return nil
	}
	if (n.Owner == user && n.Perm&0o200 != 0) || (n.Owner != user && n.Perm&0o002 != 0) {
		return nil
	}
	return errf(hadoop.AccessControlException, "Permission denied: user=%s, access=WRITE, inode=%q:%s:%s:%s",
		user, dir, n.Owner, n.Group, modeString(n))
}

func modeString(n *inode) string {
	const rwx = "rwxrwxrwx"
	b := []byte("-")
	if n.Dir {
		b[0] = 'd'
	}
	for i := 0; i < 9; i++ {
		if n.Perm&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	return string(b)
}

// parentFor returns the parent directory of p, creating missing ancestors
// when createParent is set (with perm, checked against user).
func (ns *Namespace) parentFor(p string, createParent bool, perm uint32, user string) (*inode, error) {
	dir := path.Dir(p)
	// Find the deepest existing ancestor.
	var missing []string
	cur := dir
	for {
		n := ns.nodes[cur]
		if n != nil {
			if !n.Dir {
				return nil, errf(hadoop.ParentNotDirectoryException, "Parent path is not a directory: %s", cur)
			}
			if len(missing) == 0 {
				return n, nil
			}
			if !createParent {
				return nil, errf(hadoop.FileNotFoundException, "Parent directory doesn't exist: %s", dir)
			}
			if err := ns.canWrite(cur, n, user); err != nil {
				return nil, err
			}
			break
		}
		missing = append(missing, cur)
		cur = path.Dir(cur)
	}
	var made *inode
	for i := len(missing) - 1; i >= 0; i-- {
		made = ns.newDir(perm|0o300, user)
		ns.add(missing[i], made)
	}
	return made, nil
}

func (ns *Namespace) newDir(perm uint32, user string) *inode {
	ns.nextInode++
	return &inode{ID: ns.nextInode, Dir: true, Perm: perm & 0o7777, Owner: user, Group: ns.Group, MTime: ns.ms(), ATime: ns.ms()}
}

// Stat returns a copy of the inode at p, or nil.
func (ns *Namespace) Stat(p string) (*inode, error) {
	p, err := normalize(p)
	if err != nil {
		return nil, err
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n := ns.nodes[p]
	if n == nil {
		return nil, nil
	}
	c := *n
	c.Blocks = append([]block(nil), n.Blocks...)
	return &c, nil
}

// Mkdirs creates the directory p (and its parents if createParent).
func (ns *Namespace) Mkdirs(p string, perm uint32, createParent bool, user string) error {
	p, err := normalize(p)
	if err != nil {
		return err
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if n := ns.nodes[p]; n != nil {
		if n.Dir {
			return nil
		}
		return errf(hadoop.FileAlreadyExistsException, "Path is not a directory: %s", p)
	}
	parent, err := ns.parentFor(p, createParent, perm, user)
	if err != nil {
		return err
	}
	if err := ns.canWrite(path.Dir(p), parent, user); err != nil {
		return err
	}
	ns.add(p, ns.newDir(perm, user))
	parent.MTime = ns.ms()
	return ns.commit()
}

// Create starts a new file at p, leased to client. Without overwrite an
// existing p fails with FileAlreadyExistsException — the exclusive create
// that decides a race: the namespace lock makes exactly one caller win.
func (ns *Namespace) Create(p string, perm uint32, client string, overwrite, createParent bool, replication uint32, blockSize uint64, user string) (*inode, error) {
	p, err := normalize(p)
	if err != nil {
		return nil, err
	}
	if blockSize < ns.MinBlockSize || blockSize%hadoop.ChunkSize != 0 {
		return nil, errf(hadoop.IOException, "Specified block size %d is less than configured minimum value %d or not a multiple of %d", blockSize, ns.MinBlockSize, hadoop.ChunkSize)
	}
	if p == "/" {
		return nil, errf(hadoop.FileAlreadyExistsException, "/ already exists as a directory")
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if old := ns.nodes[p]; old != nil {
		switch {
		case old.Dir:
			return nil, errf(hadoop.FileAlreadyExistsException, "%s already exists as a directory", p)
		case !overwrite:
			return nil, errf(hadoop.FileAlreadyExistsException, "%s for client %s already exists", p, client)
		case old.UC && old.Client != client:
			return nil, errf(hadoop.AlreadyBeingCreatedException, "Failed to create file %s for %s: the file is being created by %s", p, client, old.Client)
		}
	}
	parent, err := ns.parentFor(p, createParent, 0o755, user)
	if err != nil {
		return nil, err
	}
	if err := ns.canWrite(path.Dir(p), parent, user); err != nil {
		return nil, err
	}
	if old := ns.nodes[p]; old != nil {
		ns.release(old)
		ns.remove(p)
	}
	ns.nextInode++
	n := &inode{
		ID: ns.nextInode, Perm: perm & 0o7777, Owner: user, Group: ns.Group,
		MTime: ns.ms(), ATime: ns.ms(), Replication: replication, BlockSize: blockSize,
		UC: true, Client: client,
	}
	ns.add(p, n)
	parent.MTime = ns.ms()
	c := *n
	return &c, ns.commit()
}

func (ns *Namespace) release(n *inode) {
	if len(n.Blocks) == 0 {
		return
	}
	ids := make([]uint64, len(n.Blocks))
	for i, b := range n.Blocks {
		ids[i] = b.ID
	}
	ns.dn.Release(ids)
}

// leased finds the file p under construction by client.
func (ns *Namespace) leased(p string, fileID uint64, client string) (string, *inode, error) {
	p, err := normalize(p)
	if err != nil {
		return "", nil, err
	}
	n := ns.nodes[p]
	if n == nil || n.Dir || (fileID != 0 && n.ID != fileID) {
		return p, nil, notFound(p)
	}
	if !n.UC || n.Client != client {
		return p, n, errf(hadoop.LeaseExpiredException, "No lease on %s (inode %d): File is not open for writing by %s", p, n.ID, client)
	}
	return p, n, nil
}

// AddBlock allocates the next block of p after checking that the previous
// one (as the client reports it) is finalized on the DataNode with the
// reported length. It returns the block and its offset in the file.
func (ns *Namespace) AddBlock(p, client string, fileID uint64, previous *block) (block, uint64, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	p, n, err := ns.leased(p, fileID, client)
	if err != nil {
		return block{}, 0, err
	}
	if err := ns.updateLast(p, n, previous); err != nil {
		return block{}, 0, err
	}
	if len(n.Blocks) > 0 {
		last := n.Blocks[len(n.Blocks)-1]
		if l, ok := ns.dn.FinalizedLength(last.ID); !ok || uint64(l) != last.NumBytes {
			return block{}, 0, errf(hadoop.NotReplicatedYetException, "Not replicated yet: %s (block %d)", p, last.ID)
		}
	}
	off := n.length()
	ns.nextBlock++
	ns.genStamp++
	b := block{ID: ns.nextBlock, GenStamp: ns.genStamp}
	n.Blocks = append(n.Blocks, b)
	return b, off, ns.commit()
}

// updateLast records the client's view of the file's last block.
func (ns *Namespace) updateLast(p string, n *inode, last *block) error {
	if last == nil {
		return nil
	}
	if len(n.Blocks) == 0 || n.Blocks[len(n.Blocks)-1].ID != last.ID {
		return errf(hadoop.IOException, "block %d is not the last block of %s", last.ID, p)
	}
	if last.NumBytes > n.BlockSize {
		return errf(hadoop.IOException, "block %d of %s: %d bytes exceed the block size %d", last.ID, p, last.NumBytes, n.BlockSize)
	}
	n.Blocks[len(n.Blocks)-1].NumBytes = last.NumBytes
	return nil
}

// UpdateBlockForPipeline records the length of a block of a file under
// construction and returns it with a new generation stamp, as a real
// NameNode does when a client finalizes a pipeline.
func (ns *Namespace) UpdateBlockForPipeline(b block, client string) (block, uint64, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for p, n := range ns.nodes {
		var off uint64
		for i := range n.Blocks {
			if n.Blocks[i].ID != b.ID {
				off += n.Blocks[i].NumBytes
				continue
			}
			if !n.UC || n.Client != client {
				return block{}, 0, errf(hadoop.LeaseExpiredException, "No lease on %s for block %d: not open for writing by %s", p, b.ID, client)
			}
			if i == len(n.Blocks)-1 {
				if err := ns.updateLast(p, n, &b); err != nil {
					return block{}, 0, err
				}
			}
			ns.genStamp++
			out := n.Blocks[i]
			out.GenStamp = ns.genStamp
			return out, off, ns.commit()
		}
	}
	return block{}, 0, errf(hadoop.IOException, "block %d does not belong to any file under construction", b.ID)
}

// Complete closes p if every block is finalized on the DataNode with the
// length the client reported; otherwise, or for the first CompleteDelay
// calls, it returns false and the client retries.
func (ns *Namespace) Complete(p, client string, fileID uint64, last *block) (bool, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	p, n, err := ns.leased(p, fileID, client)
	if n != nil && !n.UC {
		// A retried complete of a file that is already closed succeeds.
		if last == nil || (len(n.Blocks) > 0 && n.Blocks[len(n.Blocks)-1].ID == last.ID && n.Blocks[len(n.Blocks)-1].NumBytes == last.NumBytes) {
			return true, nil
		}
	}
	if err != nil {
		return false, err
	}
	if err := ns.updateLast(p, n, last); err != nil {
		return false, err
	}
	for _, b := range n.Blocks {
		if l, ok := ns.dn.FinalizedLength(b.ID); !ok || uint64(l) != b.NumBytes {
			return false, nil
		}
	}
	if n.Refused < ns.CompleteDelay {
		n.Refused++
		return false, ns.commit()
	}
	n.UC, n.Client, n.Refused = false, "", 0
	n.MTime = ns.ms()
	return true, ns.commit()
}

// Rename2 moves src to dst. An existing dst fails with
// FileAlreadyExistsException unless overwrite is set; then a file (or an
// empty directory) at dst is replaced in the same atomic step.
func (ns *Namespace) Rename2(src, dst string, overwrite bool, user string) error {
	src, err := normalize(src)
	if err != nil {
		return err
	}
	dst, err = normalize(dst)
	if err != nil {
		return err
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	sn := ns.nodes[src]
	if sn == nil {
		return errf(hadoop.FileNotFoundException, "rename source %s is not found.", src)
	}
	if src == "/" || dst == "/" {
		return errf(hadoop.IOException, "rename source or destination is the root")
	}
	if src == dst {
		return errf(hadoop.FileAlreadyExistsException, "The source %s and destination %s are the same", src, dst)
	}
	if strings.HasPrefix(dst, src+"/") {
		return errf(hadoop.IOException, "Rename destination %s is a directory or file under source %s", dst, src)
	}
	dparent := ns.nodes[path.Dir(dst)]
	if dparent == nil {
		return errf(hadoop.FileNotFoundException, "rename destination parent %s not found.", path.Dir(dst))
	}
	if !dparent.Dir {
		return errf(hadoop.ParentNotDirectoryException, "rename destination parent %s is a file.", path.Dir(dst))
	}
	sparent := ns.nodes[path.Dir(src)]
	if err := ns.canWrite(path.Dir(src), sparent, user); err != nil {
		return err
	}
	if err := ns.canWrite(path.Dir(dst), dparent, user); err != nil {
		return err
	}
	if dn := ns.nodes[dst]; dn != nil {
		switch {
		case !overwrite:
			return errf(hadoop.FileAlreadyExistsException, "rename destination %s already exists", dst)
		case dn.Dir != sn.Dir:
			return errf(hadoop.IOException, "Source %s and destination %s must both be directories or both be files", src, dst)
		case dn.Dir && len(ns.kids[dst]) > 0:
			return errf(hadoop.IOException, "rename destination directory is not empty: %s", dst)
		}
		ns.release(dn)
		ns.remove(dst)
	}
	// Move src and everything below it.
	var moved []string
	for p := range ns.nodes {
		if p == src || strings.HasPrefix(p, src+"/") {
			moved = append(moved, p)
		}
	}
	sort.Strings(moved)
	nodes := make([]*inode, len(moved))
	for i, p := range moved {
		nodes[i] = ns.nodes[p]
		ns.remove(p)
	}
	for i, p := range moved {
		ns.add(dst+strings.TrimPrefix(p, src), nodes[i])
	}
	sparent.MTime, dparent.MTime = ns.ms(), ns.ms()
	return ns.commit()
}

// Delete removes p (recursively if asked). A missing p returns false.
func (ns *Namespace) Delete(p string, recursive bool, user string) (bool, error) {
	p, err := normalize(p)
	if err != nil {
		return false, err
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n := ns.nodes[p]
	if n == nil || p == "/" {
		return false, nil
	}
	if n.Dir && !recursive && len(ns.kids[p]) > 0 {
		return false, errf(hadoop.PathIsNotEmptyDirException, "%s is non empty': Directory is not empty", p)
	}
	parent := ns.nodes[path.Dir(p)]
	if err := ns.canWrite(path.Dir(p), parent, user); err != nil {
		return false, err
	}
	for q, m := range ns.nodes {
		if q == p || strings.HasPrefix(q, p+"/") {
			ns.release(m)
			ns.remove(q)
		}
	}
	parent.MTime = ns.ms()
	return true, ns.commit()
}

// child is one entry of a listing.
type child struct {
	name string
	node inode
}

// List returns up to limit children of p whose names sort after
// startAfter (byte order), and how many remain after them. A file lists as
// itself. ok is false when p does not exist.
func (ns *Namespace) List(p, startAfter string, limit int) (entries []child, remaining int, ok bool, err error) {
	p, err = normalize(p)
	if err != nil {
		return nil, 0, false, err
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n := ns.nodes[p]
	if n == nil {
		return nil, 0, false, nil
	}
	if !n.Dir {
		return []child{{name: path.Base(p), node: *n}}, 0, true, nil
	}
	names := make([]string, 0, len(ns.kids[p]))
	for name := range ns.kids[p] {
		if name > startAfter {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) > limit {
		remaining = len(names) - limit
		names = names[:limit]
	}
	for _, name := range names {
		entries = append(entries, child{name: name, node: *ns.nodes[path.Join(p, name)]})
	}
	return entries, remaining, true, nil
}

// SetReplication records a file's replication factor; false if p is not a
// file.
func (ns *Namespace) SetReplication(p string, r uint32) (bool, error) {
	p, err := normalize(p)
	if err != nil {
		return false, err
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n := ns.nodes[p]
	if n == nil || n.Dir {
		return false, nil
	}
	n.Replication = r
	return true, ns.commit()
}

// Used returns the bytes held by all files.
func (ns *Namespace) Used() uint64 {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var u uint64
	for _, n := range ns.nodes {
		u += n.length()
	}
	return u
}

// BlockAllocated reports whether block id belongs to a file under
// construction (the DataNode accepts writes only for those).
func (ns *Namespace) BlockAllocated(id uint64) bool {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for _, n := range ns.nodes {
		if !n.UC {
			continue
		}
		for _, b := range n.Blocks {
			if b.ID == id {
				return true
			}
		}
	}
	return false
}
