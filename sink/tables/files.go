package tables

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// Location returns the URL of lake key as the table references it.
func (t *Table) Location(key string) string {
	return strings.TrimSuffix(t.root, "/") + "/" + key
}

// Prepare reads the footer of spool, the local copy of the data file just
// uploaded under key, into the data file entry the table will reference:
// record count, column statistics and the hour partition value, all from
// the Parquet metadata — the lake is not read. Safe for concurrent use.
func (t *Table) Prepare(ctx context.Context, spool, key string) (File, error) {
	fm := t.files.Load()
	sc, spec, props := fm.schema, fm.spec, fm.props
	df, err := table.FileToDataFile(ctx, spoolIO{spool}, t.Location(key), sc, spec, 0, props)
	if err != nil {
		return File{}, fmt.Errorf("read statistics of %s: %w", spool, err)
	}
	if _, ok := df.Partition()[spec.Field(0).FieldID]; !ok {
		return File{}, fmt.Errorf("read statistics of %s: no %s partition value (no event times?)", spool, t.part)
	}
	return File{df: df}, nil
}

// fileMeta is what a data file entry is built with.
type fileMeta struct {
	schema *iceberg.Schema
	spec   iceberg.PartitionSpec
	props  iceberg.Properties
}

func (t *Table) setFileMeta(tbl *table.Table) {
	t.files.Store(&fileMeta{schema: tbl.Schema(), spec: tbl.Spec(), props: tbl.Properties()})
}

// spoolIO is an iceberg-go IO that opens one local file whatever name it is
// asked for: the data file's statistics are read from its spool copy while
// the entry names its lake location.
type spoolIO struct{ path string }

func (s spoolIO) Open(string) (iceio.File, error) { return os.Open(s.path) }

func (s spoolIO) Remove(name string) error {
	return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrPermission}
}
