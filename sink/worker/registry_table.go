package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/retry"
	"github.com/lakesink/lakesink/sink/tables"
)

// tableEvolution evolves the table of a registry stream with derived
// columns so that it takes each writer schema the worker meets
// (tables.Table.Evolve), once per schema id, and keeps the Parquet schema
// of each with the table's field ids. Not safe for concurrent use; one per
// registry format.
type tableEvolution struct {
	fx      *formatEnv
	schemas map[int]*partitioner.Schema
}

func newTableEvolution(fx *formatEnv) *tableEvolution {
	return &tableEvolution{fx: fx, schemas: map[int]*partitioner.Schema{}}
}

// schema is the Parquet schema of writer schema id with the table's field
// ids, or nil: not evolved yet, or no table (t nil).
func (t *tableEvolution) schema(id int) *partitioner.Schema {
	if t == nil {
		return nil
	}
	return t.schemas[id]
}

// evolve makes sure the stream's table can take a file of writer schema id,
// whose Parquet schema is ws, for the record at offset. A writer schema the
// table cannot take is the record's error (incompatible_schema, to the
// dead-letter topic, as every record of that schema); a catalog that does
// not answer is waited for, like the registry, and reported as the
// catalog's state; if the wait is cut short (the generation's end, the
// drain), evolve returns interrupted's error.
func (t *tableEvolution) evolve(ctx context.Context, id int, ws *partitioner.Schema, offset int64) error {
	if _, ok := t.schemas[id]; ok {
		return nil
	}
	fx := t.fx
	var schema *partitioner.Schema
	var recErr error
	err := retry.Until(ctx, retry.NewBackoff(200*time.Millisecond, 15*time.Second), func(ctx context.Context) error {
		cols, err := fx.st.Table.Evolve(ctx, ws.Columns())
		switch {
		case err == nil:
			schema, err = partitioner.NewSchema(fx.st.Name, cols)
			recErr = err
			return nil
		case !tables.Retryable(err):
			recErr = &decode.Error{Reason: confluent.ReasonIncompatible, Detail: fmt.Sprintf("writer schema %d: %v", id, err)}
			return nil
		}
		return err
	}, func(attempt int, err error) {
		fx.health.Catalog(fx.st.Name, err)
		fx.log.Debug("table schema evolution failed, partition waits", "offset", offset, "schema_id", id, "attempt", attempt, "err", err)
	})
	if err != nil {
		return interrupted(ctx)
	}
	fx.health.Catalog(fx.st.Name, nil)
	if recErr != nil {
		fx.log.Warn("writer schema incompatible with the table: its records go to the dead-letter topic", "schema_id", id, "err", recErr)
		return recErr
	}
	t.schemas[id] = schema
	return nil
}
