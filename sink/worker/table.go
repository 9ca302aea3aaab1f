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
// — and is tried again at the next commit. A worker whose claim was taken
// over (a rebalance) stops: errRevoked.
func (w *Worker) publish(ctx context.Context) error {
	if len(w.pending) == 0 {
		return nil
	}
	files := make([]tables.File, len(w.pending))
	for i, p := range w.pending {
		files[i] = p.file
	}
	c, meta := w.led.PublishPoint()
	start := time.Now()
	err := w.st.Table.Commit(ctx, w.owner, files, c, meta)
	switch {
	case errors.Is(err, tables.ErrFenced):
		w.log.Warn("table commit fenced: the partition was claimed by another worker", "files", len(files))
		return errRevoked
	case err != nil:
		if ctx.Err() == nil {
			w.env.Health.Catalog(w.st.Name, err)
		}
		return nil
	}
	w.env.Health.Catalog(w.st.Name, nil)
	w.led.Published()
	for _, p := range w.pending {
		w.noteAmend(ctx, p.hour, p.first)
	}
	w.log.Debug("files added to the table", "files", len(files), "took", time.Since(start).Round(time.Millisecond))
	clear(w.pending)
	w.pending = w.pending[:0]
	return nil
}
