package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/lakesink/lakesink/sink/ops"
	"github.com/lakesink/lakesink/sink/retry"
	"github.com/lakesink/lakesink/sink/tables"
)

// openTables opens the Iceberg table of every stream that has one (creating
// it if missing) and hands it to the stream's workers and finalizer. A
// catalog that does not answer is retried with backoff, as a catalog fault
// on readiness, until kafka.startup_timeout (when set) or ctx ends; a table
// that cannot take the stream's files (a column of another type, another
// partition spec) is an error at once. It returns a function that closes
// the tables.
func (s *Sink) openTables(ctx context.Context) (func(), error) {
	var opened []*tables.Table
	closeAll := func() {
		for _, t := range opened {
			_ = t.Close()
		}
	}
	start := time.Now()
	limit := time.Duration(s.cfg.Kafka.StartupTimeout)
	for i, sc := range s.cfg.Streams {
		if sc.Table == nil {
			continue
		}
		st := s.streams[i]
		cols, err := sc.Columns()
		if err != nil {
			closeAll()
			return nil, err
		}
		wait := retry.NewBackoff(500*time.Millisecond, 15*time.Second)
		for {
			t, err := tables.Open(ctx, tables.Options{
				Stream: sc, Storage: s.cfg.Storage, Group: s.cfg.Kafka.GroupID, Columns: cols,
				Timeout: time.Duration(s.cfg.Storage.Timeout), Log: s.log, Metrics: s.tableMetrics,
			})
			if err == nil {
				s.ops.Health.Catalog(sc.Name, nil)
				if err := st.SetTable(t); err != nil {
					_ = t.Close()
					closeAll()
					return nil, err
				}
				if s.finalize != nil {
					s.finalize.Streams[i].Table = t
				}
				if m := sc.Table.Maintenance; m.ExpireSnapshotsOlderThan > 0 {
					s.maintained = append(s.maintained, maintained{t, tables.Maintenance{
						OlderThan: time.Duration(m.ExpireSnapshotsOlderThan), KeepLast: m.KeepLast}})
				}
				opened = append(opened, t)
				s.log.Info("table open", "stream", sc.Name, "table", t.Ident())
				break
			}
			if ctx.Err() != nil {
				closeAll()
				return nil, ctx.Err()
			}
			if !tables.Retryable(err) || (limit > 0 && time.Since(start) >= limit) {
				closeAll()
				return nil, fmt.Errorf("streams[%d].table: %w", i, err)
			}
			s.ops.Health.SetJoined(false, fmt.Sprintf("%s %s: %v", ops.JoinWaitingCatalog, sc.TableIdent(), err))
			s.ops.Health.Catalog(sc.Name, err)
			if !retry.Sleep(ctx, wait.Next()) {
				closeAll()
				return nil, ctx.Err()
			}
		}
	}
	return closeAll, nil
}

// maintained is a table whose old snapshots expire (table.maintenance).
type maintained struct {
	t *tables.Table
	m tables.Maintenance
}

// maintainTables expires the old snapshots of the maintained tables, first
// after first and then every every, until ctx ends. Every instance does
// it: Expire is idempotent and serialized with commits, and a second
// instance finds nothing left to expire. Failures are logged and tried
// again at the next round.
func (s *Sink) maintainTables(ctx context.Context, first, every time.Duration) {
	wait := first
	for retry.Sleep(ctx, wait) {
		wait = every
		for _, mt := range s.maintained {
			res, err := mt.t.Expire(ctx, mt.m, s.now())
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("table maintenance", "table", mt.t.Ident(), "err", err)
				}
				continue
			}
			if len(res.Snapshots) > 0 || len(res.Files) > 0 {
				s.log.Info("snapshots expired", "table", mt.t.Ident(), "snapshots", len(res.Snapshots), "files_removed", len(res.Files))
			}
		}
	}
}
