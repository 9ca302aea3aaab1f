package worker

import (
	"context"
	"errors"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/sink/retry"
)

// Registry outages: a record whose writer schema cannot be fetched is not
// bad data. The partition waits and retries the same record with capped
// exponential backoff — never skipped, never dead-lettered — and readiness
// says why meanwhile (Health.RegistryWait).

// errDraining ends a registry wait when the sink shuts down: the worker
// finishes its files and commits below the record, which is replayed.
var errDraining = errors.New("shutting down while waiting for the schema registry")

// waitRegistry handles a record whose schema could not be fetched (err):
// it decodes the same record again with capped exponential backoff and
// jitter until it decodes or turns out bad. It returns errDraining or the
// context's error if the sink shuts down or the partition is revoked
// meanwhile.
func (x *registryFormat) waitRegistry(ctx context.Context, m kafka.Message, err error) ([]parquet.Value, time.Time, error) {
	fx := x.fx
	update, end := fx.health.RegistryWait(err)
	defer end()
	// Draining ends the wait like the end of the generation does.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-fx.drain:
			cancel()
		case <-wctx.Done():
		}
	}()
	wait := retry.NewBackoff(100*time.Millisecond, 10*time.Second)
	failed := func(attempt int, err error) {
		update(err) // logs the fault, rate-limited
		fx.log.Debug("schema registry unreachable, partition waits", "offset", m.Offset, "attempt", attempt, "err", err)
	}
	fx.log.Debug("schema registry unreachable, partition waits", "offset", m.Offset, "attempt", 1, "err", err)
	var row []parquet.Value
	var ev time.Time
	var recErr error
	if !retry.Sleep(wctx, wait.Next()) {
		return nil, time.Time{}, interrupted(ctx)
	}
	werr := retry.Until(wctx, wait, func(context.Context) error {
		var derr error
		row, ev, derr = x.dec.Decode(m.Value, m.Time)
		if derr == nil || isRecordError(derr) {
			recErr = derr
			return nil
		}
		return derr
	}, func(attempt int, err error) { failed(attempt+1, err) })
	if werr != nil {
		return nil, time.Time{}, interrupted(ctx)
	}
	return row, ev, recErr
}

// interrupted is the error of a wait (for the registry, for the catalog)
// cut short: the generation's end (ctx's error) or the drain (errDraining).
func interrupted(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errDraining
}
