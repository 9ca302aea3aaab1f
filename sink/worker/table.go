package worker

import (
	"context"
	"errors"
	"time"

	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/sink/tables"
)

// claim makes this worker the partition's writer in the stream's table and
// combines the table's progress with the Kafka commit (start, meta): a
// table commit that landed after the last Kafka commit made files durable
// that the Kafka metadata does not know of, and replaying their records
// would add them twice (package tables has the protocol).
func (w *Worker) claim(ctx context.Context, start int64, meta ledger.Meta) (int64, ledger.Meta, error) {
	w.owner = tables.Owner{Topic: w.topic, Partition: w.partition, Generation: w.gen.ID, Member: w.gen.Member}
	e, found, err := w.st.Table.Claim(ctx, w.owner)
	if err != nil {
		if ctx.Err() == nil {
			w.env.Health.Catalog(w.st.Name, err)
		}
		return 0, meta, err
	}
	w.env.Health.Catalog(w.st.Name, nil)
	if !found || e.Offset < 0 {
		return start, meta, nil
	}
	c, m := ledger.Resume(start, meta, e.Offset, e.Meta)
	if c != start || len(m.Done) != len(meta.Done) {
		w.log.Info("resuming from the table's progress", "kafka_offset", start, "table_offset", e.Offset, "resume_offset", c, "done_marks", len(m.Done))
	}
	return c, m, nil
}

// publish adds the uploaded files to the stream's table, recording the
// progress the partition has once they are durable; then they are. A
// failing catalog leaves them pending — the Kafka commit stays behind them
// — and the same commit is sent again at the next commit: a commit whose
// answer was lost may have landed, and a different one (more files) would
// add its files twice. A worker whose claim was taken over (a rebalance)
// stops: errRevoked.
func (w *Worker) publish(ctx context.Context) error {
	if len(w.pending) == 0 {
		return nil
	}
	if w.tried.files == 0 {
		w.tried.files = len(w.pending)
		w.tried.c, w.tried.meta = w.led.PublishPoint()
	}
	n := w.tried.files
	files := make([]tables.File, n)
	for i, p := range w.pending[:n] {
		files[i] = p.file
	}
	start := time.Now()
	err := w.st.Table.Commit(ctx, w.owner, files, w.tried.c, w.tried.meta)
	switch {
	case errors.Is(err, tables.ErrFenced):
		w.log.Warn("table commit fenced: the partition was claimed by another worker", "files", n)
		return errRevoked
	case err != nil:
		if ctx.Err() == nil {
			w.env.Health.Catalog(w.st.Name, err)
		}
		return nil
	}
	w.env.Health.Catalog(w.st.Name, nil)
	w.led.Published(n)
	for _, p := range w.pending[:n] {
		w.noteAmend(ctx, p.hour, p.first)
	}
	w.log.Debug("files added to the table", "files", n, "took", time.Since(start).Round(time.Millisecond))
	clear(w.pending[:n])
	w.pending = append(w.pending[:0], w.pending[n:]...)
	w.tried.files = 0
	return nil
}
