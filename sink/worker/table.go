package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/sink/tables"
)

// pendingFile is an uploaded file of a table stream, not yet in the table.
type pendingFile struct {
	file  tables.File
	hour  time.Time
	first int64
}

// tableCommits is a worker's side of its stream's table (package tables
// has the protocol): its claim on the partition, the uploaded files not
// yet in the table, and the table commit that failed without an answer.
// It reads Env at each use. Not safe for concurrent use.
type tableCommits struct {
	env    *Env
	table  Table
	stream string
	log    *slog.Logger
	owner  tables.Owner // this worker as the table knows it

	pending []pendingFile
	// tried is the table commit that failed without an answer (it may
	// have landed): its first `files` pending files and the progress sent
	// with them. The next publish sends exactly it again; the table
	// answers success if it finds it already there.
	tried struct {
		files int
		c     int64
		meta  ledger.Meta
	}
}

// claim makes this worker the partition's writer in the table and combines
// the table's progress with the Kafka commit (start, meta): a table commit
// that landed after the last Kafka commit made files durable that the
// Kafka metadata does not know of, and replaying their records would add
// them twice.
func (t *tableCommits) claim(ctx context.Context, start int64, meta ledger.Meta) (int64, ledger.Meta, error) {
	e, found, err := t.table.Claim(ctx, t.owner)
	if err != nil {
		if ctx.Err() == nil {
			t.env.Health.Catalog(t.stream, err)
		}
		return 0, meta, err
	}
	t.env.Health.Catalog(t.stream, nil)
	if !found || e.Offset < 0 {
		return start, meta, nil
	}
	c, m := ledger.Resume(start, meta, e.Offset, e.Meta)
	if c != start || len(m.Done) != len(meta.Done) {
		t.log.Info("resuming from the table's progress", "kafka_offset", start, "table_offset", e.Offset, "resume_offset", c, "done_marks", len(m.Done))
	}
	return c, m, nil
}

// prepare reads the statistics of the file uploaded under key from its
// spool copy and adds it to the pending files; it is durable once the
// table references it (publish).
func (t *tableCommits) prepare(ctx context.Context, spool, key string, hour time.Time, first int64) error {
	tf, err := t.table.Prepare(ctx, spool, key)
	if err != nil {
		return err
	}
	t.pending = append(t.pending, pendingFile{file: tf, hour: hour, first: first})
	return nil
}

// publish adds the pending files to the table, recording the progress the
// partition has once they are durable (led.PublishPoint); then they are
// (led.Published), and added is called for each. A failing catalog leaves
// them pending — the Kafka commit stays behind them — and the same commit
// is sent again at the next commit: a commit whose answer was lost may
// have landed, and a different one (more files) would add its files
// twice. A worker whose claim was taken over (a rebalance) stops:
// errRevoked.
func (t *tableCommits) publish(ctx context.Context, led *ledger.Ledger, added func(hour time.Time, first int64)) error {
	if len(t.pending) == 0 {
		return nil
	}
	if t.tried.files == 0 {
		t.tried.files = len(t.pending)
		t.tried.c, t.tried.meta = led.PublishPoint()
	}
	n := t.tried.files
	files := make([]tables.File, n)
	for i, p := range t.pending[:n] {
		files[i] = p.file
	}
	start := time.Now()
	err := t.table.Commit(ctx, t.owner, files, t.tried.c, t.tried.meta)
	switch {
	case errors.Is(err, tables.ErrFenced):
		t.log.Warn("table commit fenced: the partition was claimed by another worker", "files", n)
		return errRevoked
	case err != nil:
		if ctx.Err() == nil {
			t.env.Health.Catalog(t.stream, err)
		}
		return nil
	}
	t.env.Health.Catalog(t.stream, nil)
	led.Published(n)
	for _, p := range t.pending[:n] {
		added(p.hour, p.first)
	}
	t.log.Debug("files added to the table", "files", n, "took", time.Since(start).Round(time.Millisecond))
	clear(t.pending[:n])
	t.pending = append(t.pending[:0], t.pending[n:]...)
	t.tried.files = 0
	return nil
}

// abandon forgets the pending files: uploaded files not in the table are
// replayed like open ones, and the next owner re-creates them under the
// same names.
func (t *tableCommits) abandon() {
	t.pending = nil
	t.tried.files = 0
}
