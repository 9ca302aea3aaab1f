package tables

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"time"

	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// Maintenance says which snapshots Expire keeps (config
// table.maintenance: expire_snapshots_older_than, keep_last).
type Maintenance struct {
	// OlderThan: snapshots younger than this are kept.
	OlderThan time.Duration
	// KeepLast: the newest KeepLast snapshots of the table's history are
	// kept whatever their age; at least 1.
	KeepLast int
}

// ExpireResult is what Expire removed.
type ExpireResult struct {
	// Snapshots are the ids of the expired snapshots.
	Snapshots []int64
	// Files are the data files deleted from the lake: those the expired
	// snapshots referenced and no remaining snapshot does.
	Files []string
	// Manifests counts the manifest and manifest list files deleted.
	Manifests int
}

// expiry is the committer's answer to an expire request.
type expiry struct {
	ids []int64
	pre *table.Table // the table before the expiry: it still describes the expired snapshots
}

// Expire expires the table's snapshots older than now-m.OlderThan beyond
// the newest m.KeepLast (iceberg-go's Transaction.ExpireSnapshots), keeping
// in any case what lakesink reads back from the table:
//
//   - for each partition of the group, the newest snapshot that carries its
//     lakesink.progress entry — the entry Claim returns and that fences
//     commits (were its claim snapshot expired, a process reading the
//     history afresh would refuse the owner's commits as fenced);
//   - the snapshot that recorded the newest lakesink.complete-through,
//     which Complete answers with and the hour's manifest names;
//   - every snapshot between those and the current one: lakesink reads
//     progress by walking the current snapshot's ancestors, and the walk
//     stops at the first expired one.
//
// Which snapshots go is decided from the table and now alone (planExpiry);
// iceberg-go is then asked to keep that prefix of the history whatever its
// age (it may keep a snapshot more: its clock is not now), and its staged
// result is checked to keep every snapshot the plan keeps before it is
// committed. The cost of the rule: a partition that commits nothing for
// longer than the retention pins the history at its last entry until its
// next claim or commit (see docs/iceberg.md).
//
// Then Expire deletes, through the table's FileIO, the files only the
// expired snapshots referenced: data files, manifests, manifest lists.
// Deleting a data file is the irreversible step, and it cannot lose a
// needed file: a file is deleted only if no manifest of any snapshot of
// the table as reloaded after the expiry commit references it (added or
// existing), so no reader of a remaining snapshot — time travel included —
// reads it; lakesink's own recovery reads progress from snapshot summaries,
// never data files, and only from the snapshots the rule above keeps; and
// lakesink never adds a path the table held before (a file's name carries
// its first offset, which the partition's progress has passed; compaction
// outputs are new files). Files the compaction already deleted are skipped.
// A crash between the commit and the deletions leaves the remaining files
// as orphans: no later Expire looks at them again (iceberg's
// remove_orphan_files does).
//
// Expire goes through the committer (serialized with commits, retried on
// conflicts with other writers, the plan made again on the reloaded table),
// so it is safe with concurrent instances and idempotent: a second call
// finds nothing more to expire. The deletions run in the caller's
// goroutine, after the commit, not holding up commits.
func (t *Table) Expire(ctx context.Context, m Maintenance, now time.Time) (ExpireResult, error) {
	if m.KeepLast < 1 || m.OlderThan < 0 {
		return ExpireResult{}, fmt.Errorf("expire snapshots of %s: keep last %d, older than %s: want at least 1 and a duration not negative", t.Ident(), m.KeepLast, m.OlderThan)
	}
	res, err := t.do(ctx, &request{kind: reqExpire, maint: m, now: now})
	if err != nil {
		return ExpireResult{}, fmt.Errorf("expire snapshots of %s: %w", t.Ident(), err)
	}
	out := ExpireResult{Snapshots: res.expired.ids}
	if len(out.Snapshots) == 0 {
		return out, nil
	}
	if t.m != nil {
		t.m.SnapshotsExpired.WithLabelValues(t.stream).Add(float64(len(out.Snapshots)))
	}
	out.Files, out.Manifests, err = t.deleteExpired(ctx, res.expired)
	if t.m != nil {
		t.m.FilesRemoved.WithLabelValues(t.stream).Add(float64(len(out.Files)))
	}
	t.log.Info("table snapshots expired", "snapshots", len(out.Snapshots), "files_deleted", len(out.Files), "manifests_deleted", out.Manifests)
	if err != nil {
		return out, fmt.Errorf("expire snapshots of %s: %d expired, delete their files: %w", t.Ident(), len(out.Snapshots), err)
	}
	return out, nil
}

// expireOnce stages and commits the expiry planExpiry makes for the current
// table. Called by the committer with t.mu held.
func (t *Table) expireOnce(ctx context.Context, r *request) (int64, []result, error) {
	cur := t.tbl.CurrentSnapshot()
	if cur == nil {
		return 0, []result{{expired: &expiry{}}}, nil
	}
	md := t.tbl.Metadata()
	chain := table.AncestorsOf(cur.SnapshotID, md.SnapshotByID)
	keep := planExpiry(chain, t.opts.Group, t.stream, r.maint, r.now)
	if keep == len(chain) && len(md.Snapshots()) == len(chain) {
		return cur.SnapshotID, []result{{expired: &expiry{}}}, nil
	}
	// iceberg-go measures ages with its own clock: the cutoff (now -
	// OlderThan) as an age from that clock, a second older so that its
	// clock running on while it stages only keeps more. The prefix to keep
	// is passed as the count to retain, which iceberg-go keeps whatever
	// its age.
	cutoff := r.now.Add(-r.maint.OlderThan)
	age := max(time.Since(cutoff)+time.Second, 0)
	txn := t.tbl.NewTransaction()
	if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
		return 0, nil, fmt.Errorf("stage expiry: %w", err)
	}
	if err := txn.ExpireSnapshots(table.WithRetainLast(keep), table.WithOlderThan(age), table.WithPostCommit(false)); err != nil {
		return 0, nil, fmt.Errorf("stage expiry: %w", err)
	}
	staged, err := txn.StagedTable()
	if err != nil {
		return 0, nil, fmt.Errorf("stage expiry: %w", err)
	}
	after := staged.Metadata()
	for _, s := range chain[:keep] {
		if after.SnapshotByID(s.SnapshotID) == nil {
			return 0, nil, fmt.Errorf("stage expiry: iceberg-go would expire snapshot %d, which lakesink keeps", s.SnapshotID)
		}
	}
	var ids []int64
	for _, s := range md.Snapshots() {
		if after.SnapshotByID(s.SnapshotID) == nil {
			ids = append(ids, s.SnapshotID)
		}
	}
	if len(ids) == 0 {
		return cur.SnapshotID, []result{{expired: &expiry{}}}, nil
	}
	pre := t.tbl
	nt, err := txn.Commit(ctx)
	if err != nil {
		return 0, nil, err
	}
	t.tbl = nt
	t.scan()
	return nt.CurrentSnapshot().SnapshotID, []result{{expired: &expiry{ids: ids, pre: pre}}}, nil
}

// planExpiry returns how many snapshots of chain — the current snapshot's
// ancestors, newest first — to keep: the newest m.KeepLast, then on until
// the first older than now-m.OlderThan (iceberg-go's walk), and at least
// down to the oldest snapshot readHistory reads a partition's newest
// progress entry or the newest completion point from. The older ones
// expire. Deterministic: the table's summaries and now decide.
func planExpiry(chain []table.Snapshot, group, stream string, m Maintenance, now time.Time) int {
	cutoff := now.Add(-m.OlderThan).UnixMilli()
	keep := len(chain)
	for i, s := range chain {
		if i >= m.KeepLast && s.TimestampMs < cutoff {
			keep = i
			break
		}
	}
	h := readHistory(chain, group, stream)
	for _, i := range h.progressAt {
		keep = max(keep, i+1)
	}
	return max(keep, h.completeAt+1)
}

// deleteExpired deletes the files the expired snapshots referenced that no
// snapshot of the table, reloaded now, references: data files first, then
// manifests, then manifest lists (Expire's doc has the argument). Files
// already gone are skipped. It returns the data files and the number of
// manifest files it deleted.
func (t *Table) deleteExpired(ctx context.Context, e *expiry) ([]string, int, error) {
	fsys, err := e.pre.FS(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("open table files: %w", err)
	}
	fresh, err := t.cat.LoadTable(ctx, t.ident)
	if err != nil {
		return nil, 0, fmt.Errorf("reload table: %w", err)
	}
	// What the remaining snapshots reference.
	keptLists := map[string]bool{}
	keptMans := map[string]bool{}
	var kept []iceberg.ManifestFile
	for _, s := range fresh.Metadata().Snapshots() {
		keptLists[s.ManifestList] = true
		mans, err := s.Manifests(fsys)
		if err != nil {
			return nil, 0, fmt.Errorf("read manifest list of snapshot %d: %w", s.SnapshotID, err)
		}
		for _, m := range mans {
			if !keptMans[m.FilePath()] {
				keptMans[m.FilePath()] = true
				kept = append(kept, m)
			}
		}
	}
	// What only the expired snapshots referenced.
	var lists, mans []string
	files := map[string]bool{}
	seen := map[string]bool{}
	for _, id := range e.ids {
		s := e.pre.Metadata().SnapshotByID(id)
		if s == nil {
			return nil, 0, fmt.Errorf("expired snapshot %d is not in the table read before the expiry", id)
		}
		if !keptLists[s.ManifestList] {
			lists = append(lists, s.ManifestList)
		}
		ms, err := s.Manifests(fsys)
		if err != nil {
			return nil, 0, fmt.Errorf("read manifest list of snapshot %d: %w", id, err)
		}
		for _, m := range ms {
			if keptMans[m.FilePath()] || seen[m.FilePath()] {
				continue
			}
			seen[m.FilePath()] = true
			mans = append(mans, m.FilePath())
			for en, err := range m.Entries(fsys, false) {
				if err != nil {
					return nil, 0, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
				}
				files[en.DataFile().FilePath()] = true
			}
		}
	}
	if len(files) > 0 {
		for _, m := range kept {
			for en, err := range m.Entries(fsys, true) { // added and existing
				if err != nil {
					return nil, 0, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
				}
				delete(files, en.DataFile().FilePath())
			}
		}
	}
	var errs []error
	var deleted []string
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if ok, err := remove(fsys, p); err != nil {
			errs = append(errs, err)
		} else if ok {
			deleted = append(deleted, p)
		}
	}
	n := 0
	for _, p := range append(mans, lists...) {
		if ok, err := remove(fsys, p); err != nil {
			errs = append(errs, err)
		} else if ok {
			n++
		}
	}
	return deleted, n, errors.Join(errs...)
}

// remove deletes path, reporting false for a file already gone.
func remove(fsys iceio.IO, path string) (bool, error) {
	err := fsys.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
