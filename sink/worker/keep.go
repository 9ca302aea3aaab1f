package worker

import (
	"context"
	"fmt"
)

// Keeping open files across a generation.
//
// kafka-go's group protocol is eager: every generation revokes every
// partition, also those that stay with their member. With sticky
// assignment (kafkaio.Sticky) most of them come back to the same member
// in the next generation, and throwing their open files away would make
// that member read the open hour of each again. So a worker whose
// generation ends (not a shutdown, not a failure) parks: it keeps its
// ledger, open files, memory share and queued dead letters, and returns.
// In the next generation the sink either resumes it (Resume) or abandons
// its files (Abandon), which is what every revocation did before.
//
// Why resuming is safe: Resume first reads the partition's commit, and
// goes on only if offset and metadata are exactly the worker's last
// commit (or the one it started from). The commit is fenced by the
// generation, and every owner that reads a record commits new metadata
// within a commit interval (the metadata carries the time of its last
// read and its read position), so an unchanged commit means no other
// member committed the partition in between. One that read records and
// uploaded files without ever committing them is a crashed attempt: its
// files are under names the resumed worker writes again (names are the
// first offset) or are orphans for the finalizer's proof (docs/design.md,
// "Orphans") — the same as after a crash today. Anything else changed:
// abandon, and start from the commit as a new owner does.
//
// Streams with an Iceberg table do not keep files: their progress is also
// in the table, which another owner may have advanced without a Kafka
// commit (docs/iceberg.md); they abandon as before.

// keeps reports whether the worker parks at the end of its generation.
func (w *Worker) keeps() bool { return w.env.KeepFiles && w.table == nil && w.led != nil }

// Parked reports whether the worker kept its open files at the end of its
// generation and waits for Resume or Abandon.
func (w *Worker) Parked() bool { return w.parked }

// Resume makes a parked worker the partition's worker in generation gen
// if the partition's commit is still the worker's last one; the caller
// then runs it (Run) in gen. It reports false, with the files still
// parked, when anything changed; the caller then abandons it.
func (w *Worker) Resume(ctx context.Context, gen Generation) (bool, error) {
	if !w.parked {
		return false, nil
	}
	off, meta, err := w.env.Offsets.Committed(ctx, w.topic, w.partition)
	if err != nil {
		return false, fmt.Errorf("read commit of %s/%d: %w", w.topic, w.partition, err)
	}
	if off != w.offsets.last || meta != w.offsets.lastMeta {
		w.log.Info("partition changed while parked: its open files are abandoned",
			"committed", off, "kept_from", w.offsets.last)
		return false, nil
	}
	w.offsets.gen = gen
	w.mem.resize(gen.Partitions)
	w.env.Metrics.FilesKept.Add(float64(len(w.files.byKey)))
	w.log.Info("partition kept", "generation", gen.ID, "open_files", len(w.files.byKey), "next_offset", w.led.Next())
	return true, nil
}

// Abandon throws away a parked worker's open files (its partition went to
// another member, or changed): the next owner reads their records again
// from the commit. It does nothing to a worker that is not parked.
func (w *Worker) Abandon() {
	if !w.parked {
		return
	}
	w.parked = false
	w.abandonAll()
	w.mem.release()
	w.files.clean()
}
