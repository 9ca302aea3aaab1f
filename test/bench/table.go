package bench

import (
	"context"
	"fmt"
	"strconv"

	"github.com/apache/iceberg-go/table"

	"github.com/lakesink/lakesink/sink/tables"
)

// tableRecords returns the total-records of the current snapshot of table
// bench.<name> in the SQLite catalog at path: what the table references.
func tableRecords(ctx context.Context, path, name string) (int64, error) {
	cat, closeCat, err := tables.OpenSQLCatalog(path, nil)
	if err != nil {
		return 0, err
	}
	defer closeCat()
	tbl, err := cat.LoadTable(ctx, table.Identifier{"bench", name})
	if err != nil {
		return 0, fmt.Errorf("load table bench.%s: %w", name, err)
	}
	s := tbl.CurrentSnapshot()
	if s == nil || s.Summary == nil {
		return 0, nil
	}
	n, err := strconv.ParseInt(s.Summary.Properties["total-records"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("table bench.%s: total-records: %w", name, err)
	}
	return n, nil
}
