package tables

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

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
	wait := retry.NewBackoff(20*time.Millisecond, 2*time.Second)
	for attempt := 0; ; attempt++ {
		out, adds, widens, err := t.planEvolution(t.tbl.Schema(), cols)
		if err != nil || len(adds)+len(widens) == 0 {
			return out, err
		}
		txn := t.tbl.NewTransaction()
		u := txn.UpdateSchema(false, false)
		var names []string
		for _, c := range adds {
			u = u.AddColumn([]string{c.name}, c.typ, "", false, nil)
			names = append(names, "+"+c.name)
		}
		for _, c := range widens {
			u = u.UpdateColumn([]string{c.name}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Val: c.typ, Valid: true}})
			names = append(names, c.name+" → "+c.typ.String())
		}
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

type colChange struct {
	name string
	typ  iceberg.Type
}

// planEvolution compares a file's columns with the table schema sc and
// returns the columns with field ids (for the columns sc has), and the
// columns to add and to widen.
func (t *Table) planEvolution(sc *iceberg.Schema, cols []partitioner.Column) (out []partitioner.Column, adds, widens []colChange, err error) {
	out = make([]partitioner.Column, len(cols))
	for i, c := range cols {
		typ, err := icebergType(c.Type)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: column %q: %v", ErrIncompatible, c.Name, err)
		}
		if strings.EqualFold(c.Name, t.timeCol) && !typ.Equals(iceberg.PrimitiveTypes.TimestampTz) {
			return nil, nil, nil, fmt.Errorf("%w: table %s is partitioned by hour(%s), and the writer schema's %s is %s, not a timestamp",
				ErrIncompatible, t.Ident(), t.timeCol, c.Name, c.Type)
		}
		c.MillisAsMicros = c.Type == partitioner.TypeTimestampMillis
		f, ok := sc.FindFieldByNameCaseInsensitive(c.Name)
		switch {
		case !ok:
			adds = append(adds, colChange{c.Name, typ})
		case readable(typ, f.Type):
			c.FieldID = f.ID
		case readable(f.Type, typ):
			widens = append(widens, colChange{f.Name, typ})
		default:
			return nil, nil, nil, fmt.Errorf("%w: table %s: column %q is %s, the writer schema has %s (%s), which Iceberg cannot read as one column",
				ErrIncompatible, t.Ident(), c.Name, f.Type, typ, c.Type)
		}
		out[i] = c
	}
	return out, adds, widens, nil
}
