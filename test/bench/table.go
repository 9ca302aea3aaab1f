package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/apache/iceberg-go"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	_ "modernc.org/sqlite" // pure-Go SQLite driver of the sql catalog

	"github.com/lakesink/lakesink/sink/tables"
)

// tableRecords returns the total-records of the current snapshot of table
// bench.<name> in the SQLite catalog at path: what the table references.
func tableRecords(ctx context.Context, path, name string) (int64, error) {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	cat, err := sqlcat.NewCatalog(tables.SQLCatalogName, db, sqlcat.SQLite, iceberg.Properties{})
	if err != nil {
		return 0, fmt.Errorf("open catalog %s: %w", path, err)
	}
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
