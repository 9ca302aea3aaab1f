package icebergrest

import (
	"context"
	"fmt"
	"maps"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"

	// FileIO for s3:// and gs:// warehouses (iceberg-go registers only
	// local files itself).
	_ "github.com/apache/iceberg-go/io/gocloud/gcs"
	_ "github.com/apache/iceberg-go/io/gocloud/s3"
	_ "modernc.org/sqlite" // the pure-Go "sqlite" database/sql driver
)

// backendName is the catalog name the SQL catalog stores its rows under.
const backendName = "rest-backend"

// OpenSQLite opens, creating it when missing, an iceberg-go SQL catalog kept
// in the SQLite database file at path, through the pure-Go driver
// modernc.org/sqlite with WAL and a 10 s busy timeout on every connection.
//
// props are the catalog's properties: "warehouse" (tables default to
// <warehouse>/<namespace>.db/<table>; a file:// URL or a local path, or an
// s3:// or gs:// URL) and the FileIO properties the catalog needs to write
// metadata there, such as s3.endpoint, s3.region, s3.access-key-id and
// s3.secret-access-key.
//
// The catalog owns its database handle: Close releases it.
func OpenSQLite(path string, props iceberg.Properties) (*sqlcat.Catalog, error) {
	p := maps.Clone(props)
	if p == nil {
		p = iceberg.Properties{}
	}
	// Opened through the "sql" registrar rather than sqlcat.NewCatalog with our
	// own *sql.DB: only a catalog that opened its database closes it in Close.
	p["type"] = "sql"
	p["uri"] = "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	p[sqlcat.DriverKey] = "sqlite"
	p[sqlcat.DialectKey] = string(sqlcat.SQLite)
	cat, err := catalog.Load(context.Background(), backendName, p)
	if err != nil {
		return nil, fmt.Errorf("open sqlite catalog %s: %w", path, err)
	}
	sc, ok := cat.(*sqlcat.Catalog)
	if !ok {
		if c, ok := cat.(catalog.Closer); ok {
			_ = c.Close()
		}
		return nil, fmt.Errorf("open sqlite catalog %s: got a %T, not a SQL catalog", path, cat)
	}
	return sc, nil
}
