package tables

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/retry"
)

// Evolve returns cols — the columns of a file about to be written, derived
// from a writer schema — with the table's field ids (and timestamp_ms
// columns written as micros), first evolving the table so that it reads
// such a file: a column the table lacks is added as optional, a column of
// a narrower type in the table is widened the way Iceberg allows (int to
// long, float to double). Any other difference — a type that does not
// widen, an event time column that is not a timestamp — is ErrIncompatible
// (wrapped), naming the column: the caller sends the records of that
// writer schema to the dead-letter topic. Other errors are the catalog's
// and may go away (Retryable). Safe for concurrent use; idempotent.
//
// Why widen the table rather than convert the file: the files already in
// the table keep their narrower type, which Iceberg reads as the wider one;
// converting new files to the narrower type would lose values.
func (t *Table) Evolve(ctx context.Context, cols []partitioner.Column) ([]partitioner.Column, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
	defer cancel()
	return t.evolveTo(ctx, cols, planRules{table: t.Ident(), source: "the writer schema", timeCol: t.timeCol, widen: true})
}

// evolveTo makes the table read files of cols: it commits the update
// planSchema finds under r, and returns planSchema's columns once the
// table needs nothing more. Each update is a commit of its own,
// compare-and-swap on the table's schema: on a conflict with another
// writer (another instance adding the same column, say) the table is
// reloaded and planned again, with backoff, until ctx ends. Called with
// t.mu held, or by Open before the table is shared.
func (t *Table) evolveTo(ctx context.Context, cols []partitioner.Column, r planRules) ([]partitioner.Column, error) {
	wait := retry.NewBackoff(20*time.Millisecond, 2*time.Second)
	for {
		out, upd, err := planSchema(t.tbl.Schema(), cols, r)
		if err != nil || upd.empty() {
			return out, err
		}
		txn := t.tbl.NewTransaction()
		u, names := upd.stage(txn.UpdateSchema(false, false))
		if err := u.Commit(); err != nil {
			return nil, fmt.Errorf("table %s: evolve schema (%s): %w", t.Ident(), strings.Join(names, ", "), err)
		}
		nt, err := txn.Commit(ctx)
		switch {
		case err == nil:
			t.tbl = nt
			t.setFileMeta(nt)
			t.log.Info("table schema evolved", "changes", names, "schema_id", nt.Schema().ID)
			continue // plans again: nothing left to change
		case isConflict(err) && ctx.Err() == nil:
			if t.m != nil {
				t.m.Conflicts.WithLabelValues(t.stream).Inc()
			}
			if !retry.Sleep(ctx, wait.Next()) {
				return nil, fmt.Errorf("table %s: evolve schema: %w", t.Ident(), err)
			}
			if err := t.tbl.Refresh(ctx); err != nil {
				return nil, fmt.Errorf("reload table %s: %w", t.Ident(), err)
			}
			t.scan()
		default:
			return nil, fmt.Errorf("table %s: evolve schema (%s): %w", t.Ident(), strings.Join(names, ", "), err)
		}
	}
}
