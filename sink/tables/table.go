package tables

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/glue"
	"github.com/apache/iceberg-go/catalog/rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	iceio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/gcs" // gs:// table locations
	_ "github.com/apache/iceberg-go/io/gocloud/s3"  // s3:// table locations
	"github.com/apache/iceberg-go/table"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	_ "modernc.org/sqlite" // the sql catalog's SQLite driver: pure Go, no cgo

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
)

// Summary property keys of the snapshots lakesink commits.
const (
	PropGroup            = "lakesink.group"
	PropProgress         = "lakesink.progress"
	PropCompleteThrough  = "lakesink.complete-through"
	PropStream           = "lakesink.stream"
	hourPartitionSuffix  = "_hour"
	defaultCommitTimeout = time.Minute
)

// SQLCatalogName is the catalog name a sql catalog keeps its tables under
// (iceberg-go and PyIceberg store it with each row): open the SQLite file
// with this name to see lakesink's tables, e.g. PyIceberg's
// SqlCatalog("lakesink", uri="sqlite:///path/catalog.db").
const SQLCatalogName = "lakesink"

// Options configure Open.
type Options struct {
	Stream  config.Stream
	Storage config.Storage
	// Group is the consumer group: progress entries are scoped to it.
	Group string
	// Columns are the stream's lake columns in config order; Open returns
	// them with the table's field ids.
	Columns []partitioner.Column
	// Timeout bounds one catalog operation (a commit with its retries);
	// default one minute.
	Timeout time.Duration
	Log     *slog.Logger
	Metrics *Metrics
}

// Table is one stream's Iceberg table. Safe for concurrent use; Close stops
// it (the sink closes it after its workers have stopped).
type Table struct {
	opts    Options
	stream  string
	ident   table.Identifier
	cat     catalog.Catalog
	db      *sql.DB // sql catalogs: the SQLite handle, closed by Close
	root    string  // URL of the storage root: data file paths are root + "/" + key
	timeCol string
	part    string // the partition field's name: <time column>_hour
	cols    []partitioner.Column
	log     *slog.Logger
	m       *Metrics
	// files is what Prepare reads statistics with: the table's schema,
	// spec and properties as of Open or the last Evolve.
	files atomic.Pointer[fileMeta]

	mu  sync.Mutex
	tbl *table.Table
	// progress is the newest entry per "topic/partition" of our group, as
	// of snapshot scanned.
	progress map[string]Entry
	scanned  int64
	// complete is the newest lakesink.complete-through and the snapshot
	// that set it.
	complete     time.Time
	completeSnap int64

	reqs      chan *request
	stop      chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

// Open connects to the stream's catalog, creates the namespace and the
// table if missing (the stream's columns, partition spec hour(<event time
// column>)), adds columns the table lacks (as optional), checks the types of
// the others — the planner Evolve uses, except that a schema list widens no
// column (planRules.widen) — and starts the commit loop.
func Open(ctx context.Context, o Options) (*Table, error) {
	sc := o.Stream
	if sc.Table == nil {
		return nil, fmt.Errorf("stream %s has no table", sc.Name)
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultCommitTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	t := &Table{
		opts: o, stream: sc.Name, ident: table.Identifier{sc.Table.Namespace, sc.TableName()},
		log: o.Log.With("table", sc.TableIdent()), m: o.Metrics,
		progress: map[string]Entry{},
		reqs:     make(chan *request, 1024),
		stop:     make(chan struct{}), done: make(chan struct{}),
	}
	var err error
	if t.root, err = storageRoot(o.Storage); err != nil {
		return nil, err
	}
	t.timeCol = timeColumn(sc)
	if t.timeCol == "" {
		return nil, fmt.Errorf("table %s: no column holds time.field %q", sc.TableIdent(), sc.Time.Field)
	}
	t.part = t.timeCol + hourPartitionSuffix
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := t.openCatalog(ctx); err != nil {
		return nil, err
	}
	if err := t.loadOrCreate(ctx); err != nil {
		t.closeCatalog()
		return nil, err
	}
	go t.loop()
	return t, nil
}

// timeColumn is the name of the stream's event time column: the schema
// list's column holding time.field, or without a list time.field itself
// (columns from each writer schema are named by their dotted paths: the
// table starts with the event time column alone and grows with the writer
// schemas, Evolve). "" when the list has no such column.
func timeColumn(sc config.Stream) string {
	if len(sc.Schema) == 0 {
		return sc.Time.Field
	}
	col := ""
	for _, c := range sc.Schema {
		if c.JSONPath() == sc.Time.Field {
			col = c.Name
		}
	}
	return col
}

// ErrIncompatible marks an error that waiting does not fix: the table
// cannot take files with the stream's (or a writer schema's) columns.
var ErrIncompatible = errors.New("incompatible with the table")

// Retryable reports whether an Open or Evolve error may go away (the
// catalog or the storage did not answer) rather than being columns the
// table cannot take.
func Retryable(err error) bool { return !errors.Is(err, ErrIncompatible) }

// Ident returns the table's identifier, "namespace.name".
func (t *Table) Ident() string { return strings.Join(t.ident, ".") }

// PartitionField is the name of the table's partition field.
func (t *Table) PartitionField() string { return t.part }

// Columns returns the stream's columns with the table's field ids, and
// timestamp_ms columns written as micros (Iceberg's unit).
func (t *Table) Columns() []partitioner.Column { return append([]partitioner.Column(nil), t.cols...) }

// Close stops the commit loop (queued requests fail with ErrClosed) and
// releases the catalog. Later calls return nil.
func (t *Table) Close() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.done
		err = t.closeCatalog()
	})
	return err
}

func (t *Table) closeCatalog() error {
	var err error
	if c, ok := t.cat.(catalog.Closer); ok {
		err = c.Close()
	}
	if t.db != nil {
		err = errors.Join(err, t.db.Close())
	}
	return err
}

// storageRoot returns the URL under which the lake's keys live
// (config.Storage.URL), or for a local lake its absolute folder path.
func storageRoot(s config.Storage) (string, error) {
	switch s.Type {
	case config.StorageLocal:
		abs, err := filepath.Abs(s.Local.Root)
		if err != nil {
			return "", fmt.Errorf("storage.local.root: %w", err)
		}
		return abs, nil
	case config.StorageS3, config.StorageGCS:
		return s.URL(), nil
	}
	return "", fmt.Errorf("storage type %s cannot hold an Iceberg table", s.Type)
}

// ioProperties are the iceberg-go FileIO properties that reach the lake's
// storage with lakesink's own storage settings.
func ioProperties(s config.Storage) iceberg.Properties {
	p := iceberg.Properties{}
	switch s.Type {
	case config.StorageS3:
		if s.S3.Region != "" {
			p[iceio.S3Region] = s.S3.Region
		}
		if s.S3.Endpoint != "" {
			p[iceio.S3EndpointURL] = s.S3.Endpoint
			if p[iceio.S3Region] == "" {
				p[iceio.S3Region] = "us-east-1"
			}
		}
		if s.S3.AccessKeyID != "" {
			p[iceio.S3AccessKeyID] = s.S3.AccessKeyID
			p[iceio.S3SecretAccessKey] = s.S3.SecretAccessKey
		}
		if s.S3.SessionToken != "" {
			p[iceio.S3SessionToken] = s.S3.SessionToken
		}
	case config.StorageGCS:
		if s.GCS.Endpoint != "" {
			p[iceio.GCSEndpoint] = strings.TrimSuffix(s.GCS.Endpoint, "/") + "/storage/v1/"
		}
		switch {
		case s.GCS.CredentialsFile != "":
			p[iceio.GCSKeyPath] = s.GCS.CredentialsFile
		case s.GCS.Endpoint != "":
			p[iceio.GCSNoAuth] = "true" // an emulator
		}
	}
	return p
}

func (t *Table) openCatalog(ctx context.Context) error {
	c := t.opts.Stream.Table.Catalog
	props := ioProperties(t.opts.Storage)
	warehouse := c.Warehouse
	if warehouse == "" && c.Type != config.CatalogREST {
		warehouse = t.root
	}
	maps.Copy(props, c.Properties)
	switch c.Type {
	case config.CatalogSQL:
		props["warehouse"] = warehouse
		cat, db, err := openSQL(c.URI, props)
		if err != nil {
			return err
		}
		t.cat, t.db = cat, db
	case config.CatalogREST:
		opts := []rest.Option{rest.WithAdditionalProps(props)}
		if c.Token != "" {
			opts = append(opts, rest.WithOAuthToken(c.Token))
		}
		if warehouse != "" {
			opts = append(opts, rest.WithWarehouseLocation(warehouse))
		}
		cat, err := rest.NewCatalog(ctx, "lakesink", c.URI, opts...)
		if err != nil {
			return fmt.Errorf("open rest catalog: %w", err)
		}
		t.cat = cat
	case config.CatalogGlue:
		var load []func(*awsconfig.LoadOptions) error
		if r := props["glue.region"]; r != "" {
			load = append(load, awsconfig.WithRegion(r))
		}
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
		if err != nil {
			return fmt.Errorf("open glue catalog: aws config: %w", err)
		}
		props["warehouse"] = warehouse
		cat, err := glue.NewCatalog(glue.WithAwsConfig(awsCfg), glue.WithAwsProperties(glue.AwsProperties(props)))
		if err != nil {
			return fmt.Errorf("open glue catalog: %w", err)
		}
		t.cat = cat
	default:
		return fmt.Errorf("catalog type %q", c.Type)
	}
	return nil
}

// OpenSQLCatalog opens the SQLite file at path as lakesink's sql catalog
// (catalog name SQLCatalogName, WAL, a 10 s busy timeout: several
// processes on one host may share it), creating it and its folder if
// missing. props are catalog and FileIO properties ("warehouse", s3.*,
// gcs.*). The caller calls close when done with the catalog: it closes the
// database, which the catalog does not own. For tools and tests that read
// lakesink's tables.
func OpenSQLCatalog(path string, props iceberg.Properties) (cat *sqlcat.Catalog, close func() error, err error) {
	cat, db, err := openSQL(path, props)
	if err != nil {
		return nil, nil, err
	}
	return cat, db.Close, nil
}

func openSQL(path string, props iceberg.Properties) (*sqlcat.Catalog, *sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("open sql catalog %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, nil, fmt.Errorf("open sql catalog %s: %w", path, err)
	}
	if props == nil {
		props = iceberg.Properties{}
	}
	cat, err := sqlcat.NewCatalog(SQLCatalogName, db, sqlcat.SQLite, props)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("open sql catalog %s: %w", path, err)
	}
	return cat, db, nil
}

func (t *Table) schema() (*iceberg.Schema, error) {
	if len(t.opts.Columns) == 0 {
		return iceberg.NewSchema(0, iceberg.NestedField{ID: 1, Name: t.timeCol, Type: iceberg.PrimitiveTypes.TimestampTz}), nil
	}
	fields := make([]iceberg.NestedField, len(t.opts.Columns))
	for i, c := range t.opts.Columns {
		typ, err := icebergType(c.Type)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		fields[i] = iceberg.NestedField{ID: i + 1, Name: c.Name, Type: typ, Required: c.Required}
	}
	return iceberg.NewSchema(0, fields...), nil
}

func (t *Table) loadOrCreate(ctx context.Context) error {
	ns := catalog.NamespaceFromIdent(t.ident)
	if err := t.cat.CreateNamespace(ctx, ns, nil); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		// A catalog may refuse namespace creation to this principal while
		// the namespace exists: let LoadTable/CreateTable decide.
		t.log.Debug("create namespace", "namespace", strings.Join(ns, "."), "err", err)
	}
	tbl, err := t.cat.LoadTable(ctx, t.ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		sc, serr := t.schema()
		if serr != nil {
			return serr
		}
		col, _ := sc.FindFieldByName(t.timeCol)
		spec := iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{col.ID}, FieldID: 1000, Name: t.part, Transform: iceberg.HourTransform{},
		})
		tbl, err = t.cat.CreateTable(ctx, t.ident, sc, catalog.WithPartitionSpec(&spec),
			catalog.WithProperties(iceberg.Properties{"format-version": "2", "write.parquet.compression-codec": "zstd"}))
		if errors.Is(err, catalog.ErrTableAlreadyExists) { // another instance won
			tbl, err = t.cat.LoadTable(ctx, t.ident)
		} else if err == nil {
			t.log.Info("table created", "location", tbl.Location())
		}
	}
	if err != nil {
		return fmt.Errorf("load table %s: %w", t.Ident(), err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tbl = tbl
	if len(t.opts.Columns) > 0 {
		r := planRules{table: t.Ident(), source: "the stream", timeCol: t.timeCol}
		if t.cols, err = t.evolveTo(ctx, t.opts.Columns, r); err != nil {
			return err
		}
	}
	if err := t.checkSpec(t.tbl); err != nil {
		return err
	}
	t.setFileMeta(t.tbl)
	t.scan()
	return nil
}

// checkSpec requires the table's partition spec to be hour(<time column>):
// each file lies in one hour, and its partition value is read from its
// statistics.
func (t *Table) checkSpec(tbl *table.Table) error {
	spec := tbl.Spec()
	col, _ := tbl.Schema().FindFieldByNameCaseInsensitive(t.timeCol)
	if spec.NumFields() == 1 {
		f := spec.Field(0)
		if _, ok := f.Transform.(iceberg.HourTransform); ok && len(f.SourceIDs) == 1 && f.SourceIDs[0] == col.ID {
			t.part = f.Name
			return nil
		}
	}
	return fmt.Errorf("%w: table %s: partition spec %s, want hour(%s) alone: lakesink's files each hold one hour of %s", ErrIncompatible, t.Ident(), spec.String(), t.timeCol, t.timeCol)
}
