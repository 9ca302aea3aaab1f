package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/sink/retry"
)

// ErrFenced is returned by Commit when another worker has claimed the
// partition since the caller's claim: the caller's generation is over.
var ErrFenced = errors.New("partition claimed by another worker")

// ErrClosed is returned for requests made after or during Close.
var ErrClosed = errors.New("table closed")

// Owner is a worker: the partition it owns and the group generation and
// member it owns it in.
type Owner struct {
	Topic      string
	Partition  int
	Generation int
	Member     string
}

func (o Owner) key() string { return o.Topic + "/" + strconv.Itoa(o.Partition) }

// Entry is a partition's progress as a snapshot summary records it.
type Entry struct {
	Generation int    `json:"g"`
	Member     string `json:"m"`
	// Offset is the commit point (-1: none yet) and Meta the commit
	// metadata the partition has once the snapshot's files are durable.
	Offset int64       `json:"c"`
	Meta   ledger.Meta `json:"meta"`
}

// File is a data file ready to be added (Prepare).
type File struct {
	df iceberg.DataFile
}

// Path is the file's location as the table references it.
func (f File) Path() string { return f.df.FilePath() }

// Records is the file's record count.
func (f File) Records() int64 { return f.df.Count() }

// request is one caller's part of a batch.
type request struct {
	ctx   context.Context
	owner Owner
	kind  int // reqClaim, reqCommit, reqComplete, reqReplace, reqExpire
	files []File
	entry Entry
	// complete: the completion point to record.
	through time.Time
	// replace: the paths of the data files to remove (files are added).
	removed []string
	// expire: what to keep, as of now.
	maint Maintenance
	now   time.Time
	done  chan result
}

const (
	reqClaim = iota
	reqCommit
	reqComplete
	reqReplace
	reqExpire
)

// solo reports whether a request kind is applied alone, in a batch of its
// own: a replace is a snapshot of a different operation (overwrite, not
// append) and an expiry changes no snapshot.
func solo(kind int) bool { return kind == reqReplace || kind == reqExpire }

type result struct {
	entry    Entry // claim: the progress before the claim
	found    bool
	snapshot int64
	expired  *expiry // expire: what the commit removed
	err      error
}

func (t *Table) do(ctx context.Context, r *request) (result, error) {
	r.ctx = ctx
	r.done = make(chan result, 1)
	select {
	case t.reqs <- r:
	case <-ctx.Done():
		return result{}, ctx.Err()
	case <-t.stop:
		return result{}, ErrClosed
	}
	select {
	case res := <-r.done:
		return res, res.err
	case <-ctx.Done():
		// The batch may still be applied: harmless, as for a crash after
		// the request was sent (see the package doc).
		return result{}, ctx.Err()
	}
}

// Claim makes owner the partition's owner in the table and returns the
// partition's progress before the claim (found false: none). A worker
// claims before it reads a record; its commits are fenced by the claim.
func (t *Table) Claim(ctx context.Context, owner Owner) (Entry, bool, error) {
	res, err := t.do(ctx, &request{owner: owner, kind: reqClaim})
	if err != nil {
		return Entry{}, false, fmt.Errorf("claim %s in table %s: %w", owner.key(), t.Ident(), err)
	}
	return res.entry, res.found, nil
}

// Commit adds files (uploaded to the lake) to the table in one snapshot
// with other callers' files, recording offset and meta as the partition's
// progress. It returns ErrFenced, wrapped, if another worker claimed the
// partition since owner did. Idempotence comes from the caller: a worker
// never passes a file twice (files a replay re-creates are skipped through
// the progress Claim returned).
func (t *Table) Commit(ctx context.Context, owner Owner, files []File, offset int64, meta ledger.Meta) error {
	_, err := t.do(ctx, &request{owner: owner, kind: reqCommit, files: files,
		entry: Entry{Generation: owner.Generation, Member: owner.Member, Offset: offset, Meta: meta}})
	if err != nil {
		return fmt.Errorf("commit %d files of %s to table %s: %w", len(files), owner.key(), t.Ident(), err)
	}
	return nil
}

// Complete records that the stream is complete through through (the end
// of its newest complete hour) in lakesink.complete-through, and returns
// the id of the snapshot that did. If the table already says so (another
// instance, or a retry), it returns the snapshot that recorded it first.
// Idempotent.
func (t *Table) Complete(ctx context.Context, through time.Time) (int64, error) {
	res, err := t.do(ctx, &request{kind: reqComplete, through: through.UTC().Truncate(time.Second)})
	if err != nil {
		return 0, fmt.Errorf("record completion through %s in table %s: %w", through.UTC().Format(time.RFC3339), t.Ident(), err)
	}
	return res.snapshot, nil
}

// Current reloads the table and returns its current snapshot id (0: none).
func (t *Table) Current(ctx context.Context) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
	defer cancel()
	if err := t.tbl.Refresh(ctx); err != nil {
		return 0, fmt.Errorf("reload table %s: %w", t.Ident(), err)
	}
	t.scan()
	if s := t.tbl.CurrentSnapshot(); s != nil {
		return s.SnapshotID, nil
	}
	return 0, nil
}

// loop applies queued requests in batches until Close.
func (t *Table) loop() {
	defer close(t.done)
	var carry []*request
	for {
		batch := carry
		carry = nil
		if len(batch) == 0 {
			select {
			case <-t.stop:
				t.drain()
				return
			case r := <-t.reqs:
				batch = append(batch, r)
			}
		}
	gather:
		for len(batch) < 4096 {
			select {
			case r := <-t.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		// One request per partition in a snapshot: a claim and a commit of
		// the same partition go in order, in separate snapshots. Replaces
		// and expiries go alone, after the batch.
		seen := map[string]bool{}
		var now, alone []*request
		for _, r := range batch {
			if solo(r.kind) {
				alone = append(alone, r)
				continue
			}
			if r.kind != reqComplete {
				if seen[r.owner.key()] {
					carry = append(carry, r)
					continue
				}
				seen[r.owner.key()] = true
			}
			now = append(now, r)
		}
		if len(now) > 0 {
			t.apply(now)
		}
		for _, r := range alone {
			t.apply([]*request{r})
		}
	}
}

func (t *Table) drain() {
	for {
		select {
		case r := <-t.reqs:
			r.done <- result{err: ErrClosed}
		default:
			return
		}
	}
}

// apply commits one batch: reload if needed, fence, one snapshot, retry on
// conflict.
func (t *Table) apply(batch []*request) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), t.opts.Timeout)
	defer cancel()
	wait := retry.NewBackoff(20*time.Millisecond, 2*time.Second)
	t.mu.Lock()
	defer t.mu.Unlock()
	for attempt := 0; ; attempt++ {
		var live []*request
		for _, r := range batch {
			if r.ctx.Err() != nil {
				r.done <- result{err: r.ctx.Err()}
				continue
			}
			live = append(live, r)
		}
		batch = live
		if len(batch) == 0 {
			return
		}
		// A replace or an expiry decides from the table's state, not
		// only compare-and-swaps on it: it reads the catalog's state first.
		if attempt > 0 || solo(batch[0].kind) {
			if err := t.tbl.Refresh(ctx); err != nil {
				t.fail(batch, fmt.Errorf("reload: %w", err))
				return
			}
			t.scan()
		}
		batch = t.fence(batch)
		if len(batch) == 0 {
			return
		}
		snap, answers, err := t.commitOnce(ctx, batch)
		if err == nil {
			for i, r := range batch {
				answers[i].snapshot = snap
				r.done <- answers[i]
			}
			if t.m != nil {
				t.m.CommitDuration.WithLabelValues(t.stream).Observe(time.Since(start).Seconds())
			}
			return
		}
		if !isConflict(err) || ctx.Err() != nil {
			t.fail(batch, err)
			return
		}
		if t.m != nil {
			t.m.Conflicts.WithLabelValues(t.stream).Inc()
		}
		t.log.Debug("table commit conflict, reloading", "attempt", attempt+1, "err", err)
		if !retry.Sleep(ctx, wait.Next()) {
			t.fail(batch, fmt.Errorf("commit conflicts until the deadline: %w", err))
			return
		}
	}
}

func (t *Table) fail(batch []*request, err error) {
	for _, r := range batch {
		r.done <- result{err: err}
	}
}

// isConflict reports whether a commit lost the compare-and-swap: REST
// catalogs answer 409 (ErrCommitFailed); the SQL catalog reports the failed
// requirement.
func isConflict(err error) bool {
	return errors.Is(err, table.ErrCommitFailed) || strings.Contains(err.Error(), "requirement failed")
}

// fence answers, with ErrFenced, the commits of partitions whose newest
// entry is not the committing worker's, and returns the others.
func (t *Table) fence(batch []*request) []*request {
	kept := batch[:0]
	for _, r := range batch {
		if r.kind == reqCommit {
			e, ok := t.progress[r.owner.key()]
			if ok && sameEntry(e, r.entry) {
				// A retry of a commit that landed though its answer was
				// lost (a timeout, a dropped connection): done already.
				r.done <- result{snapshot: t.scanned}
				continue
			}
			if !ok || e.Generation != r.owner.Generation || e.Member != r.owner.Member {
				if t.m != nil {
					t.m.Fenced.WithLabelValues(t.stream).Inc()
				}
				r.done <- result{err: ErrFenced}
				continue
			}
		}
		kept = append(kept, r)
	}
	return kept
}

// sameEntry reports whether two progress entries are the same; a commit's
// entry differs from every earlier one of its partition (its done marks or
// offset advance), so finding it in the table means the commit landed.
func sameEntry(a, b Entry) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// commitOnce builds and commits the batch's snapshot on the current table.
func (t *Table) commitOnce(ctx context.Context, batch []*request) (int64, []result, error) {
	if r := batch[0]; solo(r.kind) { // alone in its batch (loop)
		if r.kind == reqReplace {
			return t.replaceOnce(ctx, r)
		}
		return t.expireOnce(ctx, r)
	}
	entries := map[string]Entry{}
	answers := make([]result, len(batch))
	var files []iceberg.DataFile
	var through time.Time
	for i, r := range batch {
		switch r.kind {
		case reqClaim:
			prev, found := t.progress[r.owner.key()]
			answers[i] = result{entry: prev, found: found}
			if !found {
				prev = Entry{Offset: -1, Meta: ledger.Empty()}
			}
			prev.Generation, prev.Member = r.owner.Generation, r.owner.Member
			entries[r.owner.key()] = prev
		case reqCommit:
			entries[r.owner.key()] = r.entry
			for _, f := range r.files {
				files = append(files, f.df)
			}
		case reqComplete:
			if r.through.After(through) {
				through = r.through
			}
		}
	}
	props := iceberg.Properties{PropGroup: t.opts.Group, PropStream: t.stream}
	if len(entries) > 0 {
		b, err := json.Marshal(entries)
		if err != nil {
			return 0, nil, err
		}
		props[PropProgress] = string(b)
	}
	if !through.IsZero() && through.After(t.complete) {
		props[PropCompleteThrough] = through.Format(time.RFC3339)
	} else if len(entries) == 0 {
		// Only completions, all already recorded.
		return t.completeSnap, answers, nil
	}
	txn := t.tbl.NewTransaction()
	var err error
	if len(files) > 0 {
		err = txn.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck())
	} else {
		// A snapshot that adds nothing and carries the summary.
		err = txn.AddFiles(ctx, nil, props, true)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("stage snapshot: %w", err)
	}
	if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
		return 0, nil, fmt.Errorf("stage snapshot: %w", err)
	}
	nt, err := txn.Commit(ctx)
	if err != nil {
		return 0, nil, err
	}
	t.tbl = nt
	snap := nt.CurrentSnapshot()
	for k, e := range entries {
		t.progress[k] = e
	}
	if _, ok := props[PropCompleteThrough]; ok {
		t.complete, t.completeSnap = through, snap.SnapshotID
	}
	t.scanned = snap.SnapshotID
	if t.m != nil {
		t.m.Commits.WithLabelValues(t.stream).Inc()
		t.m.FilesAdded.WithLabelValues(t.stream).Add(float64(len(files)))
		t.m.Snapshot.WithLabelValues(t.stream).Set(float64(snap.TimestampMs) / 1000)
	}
	return snap.SnapshotID, answers, nil
}

// scan brings the progress cache and the completion point up to the
// table's current snapshot: it walks the snapshots added since the last
// scan, newest first. If the last scanned snapshot is no longer an ancestor
// (expired, or the table was rolled back) it rebuilds from the whole
// history. Called with t.mu held.
func (t *Table) scan() {
	cur := t.tbl.CurrentSnapshot()
	if cur == nil {
		t.progress, t.scanned, t.complete, t.completeSnap = map[string]Entry{}, 0, time.Time{}, 0
		return
	}
	if cur.SnapshotID == t.scanned {
		return
	}
	md := t.tbl.Metadata()
	chain := table.AncestorsOf(cur.SnapshotID, md.SnapshotByID)
	stopAt := -1
	for i, s := range chain {
		if s.SnapshotID == t.scanned {
			stopAt = i
			break
		}
	}
	if stopAt < 0 { // rebuild
		t.progress, t.complete, t.completeSnap = map[string]Entry{}, time.Time{}, 0
		stopAt = len(chain)
	}
	h := readHistory(chain[:stopAt], t.opts.Group, t.stream)
	for k, e := range h.progress {
		t.progress[k] = e
	}
	if h.completeAt >= 0 && h.complete.After(t.complete) {
		t.complete, t.completeSnap = h.complete, chain[h.completeAt].SnapshotID
	}
	t.scanned = cur.SnapshotID
}

// history is what lakesink reads back from a run of snapshots (newest
// first): each partition's newest progress entry of the group, and the
// stream's newest completion point, each with the index in the run of the
// snapshot that carries it. scan reads it to resume and fence, planExpiry
// to know which snapshots must stay: one reader, so that expiry keeps
// exactly what the committer reads.
type history struct {
	progress   map[string]Entry
	progressAt map[string]int
	complete   time.Time
	completeAt int // -1: none in the run
}

// readHistory reads the summaries of chain, newest first. Snapshots without
// a progress entry of the group (completions, replaces, other writers')
// add none; for the completion point, the oldest snapshot with the newest
// value is the one that recorded it (Complete's answer).
func readHistory(chain []table.Snapshot, group, stream string) history {
	h := history{progress: map[string]Entry{}, progressAt: map[string]int{}, completeAt: -1}
	for i, s := range chain {
		if s.Summary == nil {
			continue
		}
		p := s.Summary.Properties
		if v, ok := p[PropCompleteThrough]; ok && p[PropStream] == stream {
			if at, err := time.Parse(time.RFC3339, v); err == nil && (h.completeAt < 0 || !at.Before(h.complete)) {
				h.complete, h.completeAt = at, i
			}
		}
		v, ok := p[PropProgress]
		if !ok || p[PropGroup] != group {
			continue
		}
		var entries map[string]Entry
		if err := json.Unmarshal([]byte(v), &entries); err != nil {
			continue
		}
		for k, e := range entries {
			if _, newer := h.progress[k]; !newer {
				h.progress[k], h.progressAt[k] = e, i
			}
		}
	}
	return h
}
