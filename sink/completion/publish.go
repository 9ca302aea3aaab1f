package completion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/writers"
)

// publish brings the marker of hour up to date and delivers its events:
// revision 1 when it has none; revision N+1 when need (an amend entry) names
// a file the latest revision N does not list. It returns when the latest
// revision's events are delivered (or errAwaitEvents while another
// instance, which published it, is expected to deliver them). Idempotent.
//
// The steps, in order (the Finalizer doc has the protocol):
//
//	prepare      compaction (revision 1), settle the folder (manifest, orphans), table snapshot
//	PutIfAbsent  the revision object r<N>.json: one instance wins revision N
//	putSuccess   _SUCCESS, never behind the latest revision
//	newFiles     revision 1 only: a file uploaded meanwhile makes revision 2 at once
//	deliver      the completion events, then r<N>.sent
func (f *Finalizer) publish(ctx context.Context, st *Stream, bucket time.Time, need *partAmend, completeAt time.Time) error {
	ms := markerStore{w: f.o.Writer, stream: st.Name}
	hours := partitioner.FolderHours(bucket, st.Loc)
	hour := hours[0] // the folder's marker is keyed by its first bucket
	folder := st.Path.Render(st.Name, hour)
	key := st.Path.MarkerKey(st.Name, hour)
	n, cur, err := ms.latest(ctx, hour)
	if err != nil {
		return err
	}
	won := false
	rebuild := n == 0 || (need != nil && !cur.Lists(need.topic, need.partition, need.First))
	for rebuild {
		m, err := f.prepare(ctx, st, folder, hours, n+1)
		if err != nil {
			return err
		}
		if n > 0 && sameFiles(m, cur) {
			// Nothing new in the folder (the entry's file is listed under
			// a replaced name, or an orphan was cleaned): no revision.
			f.o.Log.Warn("amend entry names no new file", "stream", st.Name, "hour", cur.Hour, "revision", n)
			break
		}
		b := m.Encode()
		err = f.o.Writer.PutIfAbsent(ctx, ms.revKey(hour, n+1), bytes.NewReader(b), int64(len(b)))
		switch {
		case errors.Is(err, writers.ErrExists):
			// Another instance published this revision first.
			if cur, err = readManifestKey(ctx, f.o.Writer, ms.revKey(hour, n+1)); err != nil {
				return err
			}
			n, won = n+1, false
		case err != nil:
			return fmt.Errorf("put %s: %w", ms.revKey(hour, n+1), err)
		default:
			n, cur, won = n+1, m, true
			if n == 1 {
				f.o.Metrics.HoursCompleted.WithLabelValues(st.Name).Inc()
				if !completeAt.IsZero() {
					f.o.Metrics.MarkerDelay.Observe(max(f.o.Now().Sub(completeAt).Seconds(), 0))
				}
			}
			f.o.Log.Info("hour complete", "stream", st.Name, "hour", m.Hour, "revision", n, "marker", key,
				"files", len(m.Files), "records", m.Records)
		}
		if err := f.putSuccess(ctx, ms, hour, key, n, cur); err != nil {
			return err
		}
		// A file uploaded while the first revision was being built (its
		// worker may have looked for the marker before it existed) makes
		// the next revision right away.
		rebuild = false
		if won && n == 1 {
			if rebuild, err = f.newFiles(ctx, folder, cur); err != nil {
				return err
			}
		}
	}
	if n == 0 {
		return nil
	}
	if !won {
		// Make sure _SUCCESS is not behind (its writer may have died).
		if err := f.ensureSuccess(ctx, ms, hour, key, n, cur); err != nil {
			return err
		}
	}
	return f.deliver(ctx, ms, st, hour, key, n, cur, won)
}

// prepare builds revision rev of the manifest of a folder holding the
// buckets hours: every step of publishing before the revision object is
// written. Nothing in the lake says the folder is complete yet, and
// another instance may be preparing the same revision of the same folder
// at the same time (the revision's create-if-absent put decides which one
// is published; the other is dropped).
func (f *Finalizer) prepare(ctx context.Context, st *Stream, folder string, hours []time.Time, rev int) (Manifest, error) {
	// Compaction (compact.go) comes first, before revision 1 only: every
	// bucket of the folder is complete by the rule and nothing in the lake
	// says so yet. It runs before settleFolder so that a table stream
	// swaps merged inputs out of its table before anything deletes them
	// (settleFolder would delete inputs left behind by a compaction cut
	// short, on the same proof).
	//
	// What must hold after it, for settleFolder, recordTable, the revision
	// object and everything that reads the lake later:
	//   - m lists exactly the data files in the folder, each record of the
	//     buckets once, each file as buildManifest reads it from its footer:
	//     any instance may build the manifest from the folder again (the
	//     loser of the race, the list after revision 1, the next revision);
	//   - nothing was deleted without a proof that kept files hold its
	//     records (SplitOrphans' rule), and no file a published revision
	//     lists was removed or changed: its readers read those files;
	//   - a file that appeared in the folder after settleFolder listed it
	//     (late data) is left alone: it makes the next revision;
	//   - another instance compacting the same folder at the same time
	//     ends with the same files, or with files SplitOrphans settles;
	//   - a table stream's table references exactly the folder's files,
	//     because recordTable names its current snapshot as the one that
	//     completes the folder.
	if rev == 1 && st.Compaction != nil {
		if err := f.compact(ctx, st, folder, hours); err != nil {
			return Manifest{}, err
		}
	}
	m, err := f.settleFolder(ctx, st, folder, hours, rev)
	if err != nil {
		return m, err
	}
	return f.recordTable(ctx, st, hours, rev, m)
}

// settleFolder builds revision rev of the manifest of a folder holding
// the buckets hours and deletes the orphans it proved superseded. Orphans
// go before the marker, so a reader listing the folder after the marker
// sees exactly the manifest's files. Files that are neither listable nor
// proven superseded are kept and stop the revision (*UnprovenError):
// deleting is the one irreversible act of the daemon and needs a proof.
func (f *Finalizer) settleFolder(ctx context.Context, st *Stream, folder string, hours []time.Time, rev int) (Manifest, error) {
	m, orphans, unproven, err := buildManifest(ctx, f.o.Writer, st.Name, folder, hours, st.Loc, rev, f.o.Now())
	if err != nil {
		return m, err
	}
	if len(unproven) > 0 {
		return m, &UnprovenError{Folder: folder, Files: unproven}
	}
	for _, o := range orphans {
		if err := f.o.Writer.Delete(ctx, o.Path); err != nil {
			return m, fmt.Errorf("delete orphan %s: %w", o.Path, err)
		}
		f.o.Log.Info("orphan removed", "key", o.Path, "first_offset", o.FirstOffset, "last_offset", o.LastOffset,
			"superseded_by", coveringFiles(m.Files, o))
	}
	return m, nil
}

// recordTable names in revision rev of a folder's manifest m the snapshot
// of the stream's table that completes the folder: for revision 1 the one
// that records the stream complete through the folder's last bucket
// (Table.Complete, idempotent), for later revisions the current one, which
// references the late files. Without a table m is returned as it is.
func (f *Finalizer) recordTable(ctx context.Context, st *Stream, hours []time.Time, rev int, m Manifest) (Manifest, error) {
	if st.Table == nil {
		return m, nil
	}
	hour, last := hours[0], hours[len(hours)-1]
	// The hour's files are in the table: workers add them before their
	// commits let the watermark pass the hour.
	var snap int64
	var err error
	if rev == 1 {
		snap, err = st.Table.Complete(ctx, partitioner.NextHour(last, st.Loc))
	} else {
		snap, err = st.Table.Current(ctx)
	}
	if err != nil {
		return m, err
	}
	m.Table, m.SnapshotID = st.Table.Ident(), snap
	m.TablePartition = map[string]int64{st.Table.PartitionField(): hour.Unix() / 3600}
	return m, nil
}

// coveringFiles names the kept files of o's bucket whose ranges hold o's
// first or last offset: the proof that o may go, for the log.
func coveringFiles(kept []ManifestFile, o ManifestFile) []string {
	var out []string
	for _, k := range kept {
		if k.Topic == o.Topic && k.Partition == o.Partition && k.Bucket.Equal(o.Bucket) &&
			((k.FirstOffset <= o.FirstOffset && o.FirstOffset <= k.LastOffset) || (k.FirstOffset <= o.LastOffset && o.LastOffset <= k.LastOffset)) {
			out = append(out, k.Path)
		}
	}
	return out
}

// newFiles reports whether the folder holds a data file m does not list.
func (f *Finalizer) newFiles(ctx context.Context, folder string, m Manifest) (bool, error) {
	objs, err := f.o.Writer.List(ctx, folder+"/")
	if err != nil {
		return false, fmt.Errorf("list %s: %w", folder, err)
	}
	listed := map[string]bool{}
	for _, mf := range m.Files {
		listed[mf.Path] = true
	}
	for _, o := range objs {
		name := o.Key[len(folder)+1:]
		if _, _, _, ok := partitioner.ParseFileName(name); ok && !strings.Contains(name, "/") && !listed[o.Key] {
			return true, nil
		}
	}
	return false, nil
}

// putSuccess writes revision n as _SUCCESS, then again the latest revision
// if a newer one was published meanwhile.
func (f *Finalizer) putSuccess(ctx context.Context, ms markerStore, hour time.Time, key string, n int, m Manifest) error {
	for {
		b := m.Encode()
		if err := f.o.Writer.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		latest, lm, err := ms.latest(ctx, hour)
		if err != nil {
			return err
		}
		if latest <= n {
			return nil
		}
		n, m = latest, lm
	}
}

// ensureSuccess puts revision n as _SUCCESS unless _SUCCESS already has it
// or a later one.
func (f *Finalizer) ensureSuccess(ctx context.Context, ms markerStore, hour time.Time, key string, n int, m Manifest) error {
	cur, err := readManifestKey(ctx, f.o.Writer, key)
	if err == nil && cur.Revision >= n {
		return nil
	}
	if err != nil && !errors.Is(err, writers.ErrNotFound) {
		return err
	}
	return f.putSuccess(ctx, ms, hour, key, n, m)
}
