package demo

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/apache/iceberg-go/table"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/tables"
)

// icebergSummary prints the stream's Iceberg table — snapshots, files,
// records, the completion point — and how to query it.
func icebergSummary(ctx context.Context, out io.Writer, sc config.Stream) {
	uri := sc.Table.Catalog.URI
	cat, closeCat, err := tables.OpenSQLCatalog(uri, nil)
	if err != nil {
		fmt.Fprintf(out, "\nIceberg catalog %s: %v\n", uri, err)
		return
	}
	defer closeCat()
	tbl, err := cat.LoadTable(ctx, table.Identifier{sc.Table.Namespace, sc.TableName()})
	if err != nil {
		fmt.Fprintf(out, "\nIceberg table %s: %v\n", sc.TableIdent(), err)
		return
	}
	records, files, through := "0", "0", ""
	if s := tbl.CurrentSnapshot(); s != nil && s.Summary != nil {
		records, files = s.Summary.Properties["total-records"], s.Summary.Properties["total-data-files"]
	}
	for _, s := range tbl.Metadata().Snapshots() {
		if s.Summary != nil && s.Summary.Properties[tables.PropCompleteThrough] > through {
			through = s.Summary.Properties[tables.PropCompleteThrough] // RFC 3339 UTC: ordered as text
		}
	}
	if through == "" {
		through = "none yet"
	}
	meta := tbl.MetadataLocation()
	fmt.Fprintf(out, "\nIceberg table %s (SQLite catalog %s):\n", sc.TableIdent(), uri)
	fmt.Fprintf(out, "  %d snapshots, %s data files, %s records; complete through %s (snapshot property %s)\n",
		len(tbl.Metadata().Snapshots()), files, records, through, tables.PropCompleteThrough)
	fmt.Fprintf(out, "Query it, e.g. with DuckDB:\n  duckdb -c \"install iceberg; load iceberg; select date_trunc('hour', ts) h, count(*) from iceberg_scan('%s') group by h order by h\"\n", meta)
	fmt.Fprintf(out, "or PyIceberg:\n  python3 -c \"from pyiceberg.catalog.sql import SqlCatalog; print(SqlCatalog('%s', uri='sqlite:///%s', warehouse='file://%s').load_table('%s').scan().to_arrow().num_rows)\"\n",
		tables.SQLCatalogName, uri, filepath.Dir(uri), sc.TableIdent())
}
