package tables

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/lakesink/lakesink/config"
)

// Probe asks the catalog of stream sc's table what Open would find, for
// `lakesink validate --connect`, and changes nothing: no namespace or table
// is created, no schema evolved, and a missing SQLite catalog file is not
// created either. It returns what it found in a few words:
//
//   - "table NS.T loaded" (with "run adds columns a, b" when the stream's
//     schema list has columns the table lacks, which Open would add);
//   - "table NS.T missing: run creates it" or "namespace NS missing: run
//     creates it and the table", when the catalog answers but has neither
//     (Open creates them; a catalog that refuses creation is found out at
//     run time only);
//   - for sql, "catalog file F missing: run creates it".
//
// The error is the catalog's (it does not answer, refuses the credentials,
// cannot read the table's metadata), or ErrIncompatible when Open would
// refuse the table: a partition spec other than hour(<event time column>),
// or a column of a type the stream's cannot be read as.
func Probe(ctx context.Context, sc config.Stream, storage config.Storage) (string, error) {
	if sc.Table == nil {
		return "", fmt.Errorf("stream %s has no table", sc.Name)
	}
	t := &Table{opts: Options{Stream: sc, Storage: storage}, stream: sc.Name,
		ident: table.Identifier{sc.Table.Namespace, sc.TableName()}, timeCol: timeColumn(sc)}
	var err error
	if t.root, err = storageRoot(storage); err != nil {
		return "", err
	}
	if c := sc.Table.Catalog; c.Type == config.CatalogSQL {
		if _, err := os.Stat(c.URI); errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("catalog file %s missing: run creates it", c.URI), nil
		} else if err != nil {
			return "", fmt.Errorf("open sql catalog: %w", err)
		}
	}
	if err := t.openCatalog(ctx); err != nil {
		return "", err
	}
	defer t.closeCatalog()
	ns := catalog.NamespaceFromIdent(t.ident)
	tbl, err := t.cat.LoadTable(ctx, t.ident)
	if errors.Is(err, catalog.ErrNoSuchTable) || errors.Is(err, catalog.ErrNoSuchNamespace) {
		// Which of the two is missing: catalogs answer a table of a
		// missing namespace either way.
		exists, nerr := t.cat.CheckNamespaceExists(ctx, ns)
		if nerr != nil {
			return "", fmt.Errorf("namespace %s: %w", strings.Join(ns, "."), nerr)
		}
		if !exists {
			return fmt.Sprintf("namespace %s missing: run creates it and table %s", strings.Join(ns, "."), t.Ident()), nil
		}
		return fmt.Sprintf("table %s missing: run creates it", t.Ident()), nil
	}
	if err != nil {
		return "", fmt.Errorf("load table %s: %w", t.Ident(), err)
	}
	if err := t.checkSpec(tbl); err != nil {
		return "", err
	}
	cols, err := sc.Columns()
	if err != nil {
		return "", err
	}
	if len(cols) == 0 {
		return fmt.Sprintf("table %s loaded", t.Ident()), nil
	}
	_, upd, err := planSchema(tbl.Schema(), cols, planRules{table: t.Ident(), source: "the stream", timeCol: t.timeCol})
	if err != nil {
		return "", err
	}
	if len(upd.adds) > 0 {
		names := make([]string, len(upd.adds))
		for i, a := range upd.adds {
			names[i] = a.name
		}
		return fmt.Sprintf("table %s loaded; run adds columns %s", t.Ident(), strings.Join(names, ", ")), nil
	}
	return fmt.Sprintf("table %s loaded", t.Ident()), nil
}
