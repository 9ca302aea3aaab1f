package tables

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// ErrReplaceInconsistent is returned (wrapped) by Replace when the table
// holds neither the files to remove (all of them, and none of the files to
// add) nor the result of the replace (all the added files, none of the
// removed): someone else changed those files, and committing a part of the
// replace would lose or double records.
var ErrReplaceInconsistent = errors.New("the table holds neither the files to replace nor their replacement")

// Replace swaps the data files at the lake keys removed for the files
// added (prepared from their spool copies and lake keys, like Commit's),
// in one snapshot made with iceberg-go's
// Transaction.ReplaceDataFilesWithDataFiles — an overwrite snapshot that
// adds no rows: compaction of an hour's files into fewer. It returns the
// id of a snapshot that references every added file and none of the
// removed ones.
//
// Idempotent, and safe to call from several instances: the rule, checked
// against the table's current snapshot on every attempt (so also after a
// commit conflict, on the reloaded table):
//
//   - every removed file is in the table and no added file is: the replace
//     is committed;
//   - no removed file is in the table and every added file is: it was
//     committed already (by this call's earlier attempt whose answer was
//     lost, another instance, or this process before a crash), and the
//     current snapshot's id is returned without a commit;
//   - anything else — some removed files gone while the added are not all
//     there, or added files present while removed ones are too — is
//     ErrReplaceInconsistent, and nothing is committed.
//
// Before it commits, Replace also checks that the added files hold as many
// records as the removed ones and lie in their hour partitions: a
// compaction moves records, it never drops or adds any.
//
// Replace goes through the committer like Commit and Complete: it is
// serialized with them, in a snapshot of its own, and retried on commit
// conflicts. The replace snapshot carries lakesink.group and
// lakesink.stream but no lakesink.progress and no
// lakesink.complete-through: the progress readers skip snapshots without
// them (readHistory), so a partition's newest entry stays the one its last
// claim or commit wrote, and Complete still answers with the snapshot that
// first recorded a completion point.
func (t *Table) Replace(ctx context.Context, removed []string, added []File) (int64, error) {
	paths, err := t.replaceArgs(removed, added)
	if err != nil {
		return 0, fmt.Errorf("replace files of %s: %w", t.Ident(), err)
	}
	res, err := t.do(ctx, &request{kind: reqReplace, removed: paths, files: added})
	if err != nil {
		return 0, fmt.Errorf("replace files of %s: %w", t.Ident(), err)
	}
	return res.snapshot, nil
}

// ReplaceFiles is Replace of one added file, prepared from its spool copy
// and lake key: what the finalizer's compaction asks of a table stream
// (completion.Table).
func (t *Table) ReplaceFiles(ctx context.Context, removed []string, spool, key string) (int64, error) {
	f, err := t.Prepare(ctx, spool, key)
	if err != nil {
		return 0, err
	}
	return t.Replace(ctx, removed, []File{f})
}

// replaceArgs checks Replace's arguments and returns the removed files'
// paths as the table references them.
func (t *Table) replaceArgs(removed []string, added []File) ([]string, error) {
	if len(removed) == 0 || len(added) == 0 {
		return nil, fmt.Errorf("%d files to remove and %d to add: a replace needs both", len(removed), len(added))
	}
	seen := map[string]bool{}
	paths := make([]string, len(removed))
	for i, key := range removed {
		paths[i] = t.Location(key)
		if seen[paths[i]] {
			return nil, fmt.Errorf("%s is to be removed twice", key)
		}
		seen[paths[i]] = true
	}
	for _, f := range added {
		if f.df == nil {
			return nil, errors.New("a file to add was not prepared (Prepare)")
		}
		if seen[f.Path()] {
			return nil, fmt.Errorf("%s is to be removed and added, or added twice", f.Path())
		}
		seen[f.Path()] = true
	}
	return paths, nil
}

// replaceOnce applies a replace request to the current table (the rule in
// Replace's doc). Called by the committer with t.mu held.
func (t *Table) replaceOnce(ctx context.Context, r *request) (int64, []result, error) {
	cur := t.tbl.CurrentSnapshot()
	if cur == nil {
		return 0, nil, fmt.Errorf("%w: the table has no snapshot", ErrReplaceInconsistent)
	}
	want := map[string]bool{}
	for _, p := range r.removed {
		want[p] = true
	}
	for _, f := range r.files {
		want[f.Path()] = true
	}
	live, err := liveFiles(ctx, t.tbl, cur, want)
	if err != nil {
		return 0, nil, err
	}
	var old []iceberg.DataFile
	var gone, there []string
	for _, p := range r.removed {
		if df, ok := live[p]; ok {
			old = append(old, df)
		} else {
			gone = append(gone, p)
		}
	}
	for _, f := range r.files {
		if _, ok := live[f.Path()]; ok {
			there = append(there, f.Path())
		}
	}
	switch {
	case len(gone) == 0 && len(there) == 0: // to do
	case len(gone) == len(r.removed) && len(there) == len(r.files):
		return cur.SnapshotID, []result{{}}, nil // done already
	default:
		return 0, nil, fmt.Errorf("%w: snapshot %d lacks %d of the %d files to remove%s and holds %d of the %d files to add%s",
			ErrReplaceInconsistent, cur.SnapshotID, len(gone), len(r.removed), some(gone), len(there), len(r.files), some(there))
	}
	if err := t.sameRecords(old, r.files); err != nil {
		return 0, nil, err
	}
	dfs := make([]iceberg.DataFile, len(r.files))
	for i, f := range r.files {
		dfs[i] = f.df
	}
	txn := t.tbl.NewTransaction()
	// Pinned before staging: iceberg-go's own retry then fails on a
	// conflict instead of replaying the replace on a table it did not check.
	if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
		return 0, nil, fmt.Errorf("stage replace: %w", err)
	}
	props := iceberg.Properties{PropGroup: t.opts.Group, PropStream: t.stream}
	if err := txn.ReplaceDataFilesWithDataFiles(ctx, old, dfs, props); err != nil {
		return 0, nil, fmt.Errorf("stage replace: %w", err)
	}
	nt, err := txn.Commit(ctx)
	if err != nil {
		return 0, nil, err
	}
	t.tbl = nt
	t.scan()
	snap := nt.CurrentSnapshot()
	t.log.Info("table files replaced", "removed", len(old), "added", len(dfs), "snapshot_id", snap.SnapshotID)
	if t.m != nil {
		t.m.Commits.WithLabelValues(t.stream).Inc()
		t.m.FilesAdded.WithLabelValues(t.stream).Add(float64(len(dfs)))
		t.m.Snapshot.WithLabelValues(t.stream).Set(float64(snap.TimestampMs) / 1000)
	}
	return snap.SnapshotID, []result{{}}, nil
}

// sameRecords checks that the added files hold as many records as the
// removed ones, and only in the removed files' partitions (hours).
func (t *Table) sameRecords(removed []iceberg.DataFile, added []File) error {
	var before, after int64
	hours := map[string]bool{}
	for _, df := range removed {
		before += df.Count()
		hours[partitionKey(df)] = true
	}
	for _, f := range added {
		after += f.df.Count()
		if !hours[partitionKey(f.df)] {
			return fmt.Errorf("added file %s lies in partition %s, not in one of the removed files'", f.Path(), partitionKey(f.df))
		}
	}
	if before != after {
		return fmt.Errorf("the removed files hold %d records, the added files %d", before, after)
	}
	return nil
}

// partitionKey is a data file's partition tuple as text: values read from a
// manifest and from Prepare compare equal whatever their Go types.
func partitionKey(df iceberg.DataFile) string {
	return fmt.Sprint(df.Partition()) // fmt sorts map keys
}

// some lists up to three paths for an error message.
func some(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	if len(paths) > 3 {
		return " (" + strings.Join(paths[:3], ", ") + ", …)"
	}
	return " (" + strings.Join(paths, ", ") + ")"
}

// liveFiles returns the entries of the data files in want that snap
// references (added or existing, not deleted), by path. It reads every data
// manifest of snap.
func liveFiles(ctx context.Context, tbl *table.Table, snap *table.Snapshot, want map[string]bool) (map[string]iceberg.DataFile, error) {
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("open table files: %w", err)
	}
	mans, err := snap.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("read manifest list of snapshot %d: %w", snap.SnapshotID, err)
	}
	out := map[string]iceberg.DataFile{}
	for _, m := range mans {
		if m.ManifestContent() != iceberg.ManifestContentData {
			continue
		}
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				return nil, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
			}
			if p := e.DataFile().FilePath(); want[p] {
				out[p] = e.DataFile()
			}
		}
	}
	return out, nil
}
