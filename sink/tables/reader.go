package tables

import (
	"context"
	"fmt"
	"os"

	"github.com/apache/iceberg-go/table"

	"github.com/lakesink/lakesink/config"
)

// Reader reads a stream's table without changing it, for `lakesink audit`
// (sink/audit). Unlike Open it creates nothing and starts no commit loop.
type Reader struct {
	t   *Table
	tbl *table.Table
}

// OpenReader loads the table of stream sc from its catalog. A missing
// table or namespace is an error, and so is a missing SQLite catalog file
// (opening one would create it). Close releases the catalog.
func OpenReader(ctx context.Context, sc config.Stream, storage config.Storage) (*Reader, error) {
	if sc.Table == nil {
		return nil, fmt.Errorf("stream %s has no table", sc.Name)
	}
	t := &Table{opts: Options{Stream: sc, Storage: storage}, stream: sc.Name,
		ident: table.Identifier{sc.Table.Namespace, sc.TableName()}}
	var err error
	if t.root, err = storageRoot(storage); err != nil {
		return nil, err
	}
	if c := sc.Table.Catalog; c.Type == config.CatalogSQL {
		if _, err := os.Stat(c.URI); err != nil {
			return nil, fmt.Errorf("open sql catalog: %w", err)
		}
	}
	if err := t.openCatalog(ctx); err != nil {
		return nil, err
	}
	tbl, err := t.cat.LoadTable(ctx, t.ident)
	if err != nil {
		t.closeCatalog()
		return nil, fmt.Errorf("load table %s: %w", t.Ident(), err)
	}
	return &Reader{t: t, tbl: tbl}, nil
}

// Ident returns the table's identifier, "namespace.name".
func (r *Reader) Ident() string { return r.t.Ident() }

// Location returns the URL of lake key as the table references it.
func (r *Reader) Location(key string) string { return r.t.Location(key) }

// DataFiles returns the path of every data file the table's current
// snapshot (as loaded by OpenReader) references, once per reference: a
// file added twice comes twice.
func (r *Reader) DataFiles(ctx context.Context) ([]string, error) {
	if r.tbl.CurrentSnapshot() == nil {
		return nil, nil
	}
	tasks, err := r.tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan files of %s: %w", r.Ident(), err)
	}
	out := make([]string, 0, len(tasks))
	for _, task := range tasks {
		out = append(out, task.File.FilePath())
	}
	return out, nil
}

// Close releases the catalog.
func (r *Reader) Close() error { return r.t.closeCatalog() }
