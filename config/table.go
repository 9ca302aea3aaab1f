package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Table commits a stream's files to an Apache Iceberg table as well
// (docs/iceberg.md). The Parquet files, their names and folders stay as
// without it; the table references them. A stream without a table: block has
// a nil *Table.
type Table struct {
	Format TableFormat `yaml:"format"`
	// Namespace is the table's namespace in the catalog (one level).
	Namespace string `yaml:"namespace"`
	// Name is the table's name; empty means the stream's name.
	Name    string  `yaml:"name"`
	Catalog Catalog `yaml:"catalog"`
	// Maintenance expires old snapshots (compaction.go, docs/iceberg.md).
	Maintenance Maintenance `yaml:"maintenance"`
}

// TableFormat names a table format.
type TableFormat string

// Table formats.
const (
	TableIceberg TableFormat = "iceberg"
)

// Catalog says where a table's metadata pointer lives. Token is a secret:
// see Config.Redacted.
type Catalog struct {
	Type CatalogType `yaml:"type"`
	// URI is, for sql, the SQLite database file (created if missing); for
	// rest, the catalog's base URL. glue does not use it.
	URI string `yaml:"uri"`
	// Warehouse is, for rest, the warehouse passed to the catalog; for sql
	// and glue, the root under which new tables are created (a URL such as
	// s3://bucket/prefix or an absolute path). Empty: the storage root.
	Warehouse string `yaml:"warehouse"`
	// Token is the rest catalog's bearer token.
	Token string `yaml:"token"`
	// Properties are passed to the catalog as they are (iceberg-go catalog
	// and FileIO properties, e.g. glue.region, rest.sigv4-enabled).
	Properties map[string]string `yaml:"properties"`
}

// CatalogType names an Iceberg catalog implementation.
type CatalogType string

// Catalog types.
const (
	CatalogSQL  CatalogType = "sql"  // SQLite file through a pure-Go driver: no server
	CatalogREST CatalogType = "rest" // Iceberg REST catalog (Polaris, Lakekeeper, Nessie, Unity, S3 Tables, ...)
	CatalogGlue CatalogType = "glue" // AWS Glue Data Catalog
)

// TableName returns the table's name: Name, or the stream's name.
func (s Stream) TableName() string {
	if s.Table == nil {
		return ""
	}
	if s.Table.Name != "" {
		return s.Table.Name
	}
	return s.Name
}

// TableIdent returns "namespace.name" of the stream's table; "" without one.
func (s Stream) TableIdent() string {
	if s.Table == nil {
		return ""
	}
	return s.Table.Namespace + "." + s.TableName()
}

// identPart is what Iceberg engines accept unquoted in every catalog.
var identPart = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,254}$`)

// validateTable checks the stream's table: block: a table needs a catalog,
// an hour-partitionable event time column, and a storage iceberg-go can
// write metadata to.
func (c *Config) validateTable(p *problems, sp string, s Stream, seen map[string]string) {
	t := s.Table
	if t == nil {
		return
	}
	tp := sp + ".table"
	if t.Format == "" {
		p.add(tp+".format", "required (want iceberg)")
	} else {
		oneOf(tp+".format", p, t.Format, TableIceberg)
	}
	if p.required(tp+".namespace", t.Namespace) && !identPart.MatchString(t.Namespace) {
		p.add(tp+".namespace", "%q: want letters, digits and '_', not starting with a digit", t.Namespace)
	}
	if name := s.TableName(); name != "" && !identPart.MatchString(name) {
		path := tp + ".name"
		if t.Name == "" {
			path = tp + ".name (default: the stream name)"
		}
		p.add(path, "%q: want letters, digits and '_', not starting with a digit", name)
	} else if prev, dup := seen[s.TableIdent()]; dup && name != "" {
		p.add(tp+".name", "table %s is also the table of %s; a table belongs to one stream", s.TableIdent(), prev)
	} else {
		seen[s.TableIdent()] = sp
	}
	validateMaintenance(p, tp, t.Maintenance)
	cp := tp + ".catalog"
	cat := t.Catalog
	if cat.Type == "" {
		p.add(cp+".type", "required (want one of sql, rest, glue)")
	} else {
		oneOf(cp+".type", p, cat.Type, CatalogSQL, CatalogREST, CatalogGlue)
	}
	switch cat.Type {
	case CatalogSQL:
		p.required(cp+".uri", cat.URI)
	case CatalogREST:
		if p.required(cp+".uri", cat.URI) {
			if err := checkURL(cat.URI); err != nil {
				p.add(cp+".uri", "%v", err)
			}
		}
	case CatalogGlue:
		if cat.URI != "" {
			p.add(cp+".uri", "not used with type glue (set glue.region and glue.id in properties)")
		}
	}
	if cat.Token != "" && cat.Type != CatalogREST {
		p.add(cp+".token", "only used with type rest")
	}
	if c.Storage.Type == StorageHDFS {
		p.add(tp, "not supported with storage.type hdfs: iceberg-go has no HDFS file IO to write table metadata with (docs/iceberg.md)")
	}
	// The partition spec is hour(<event time column>): the event time must
	// be a timestamp column of the schema list.
	switch {
	case s.InferSchema:
		p.add(tp, "not supported with schema: infer (inferred columns are best effort); give the stream a schema list")
	case s.Time.Field == "":
		p.add(tp, "needs time.field: the table is partitioned by hour(<event time column>), and the Kafka record timestamp is not a column")
	case len(s.Schema) == 0:
		// Columns from each writer schema: the time field's column must be
		// a timestamp in the writer schemas, checked per schema at run time.
	default:
		i := slices.IndexFunc(s.Schema, func(col SchemaColumn) bool { return col.JSONPath() == s.Time.Field })
		switch {
		case i < 0:
			p.add(tp, "needs a schema column holding time.field %q: the table is partitioned by hour(<event time column>)", s.Time.Field)
		case s.Schema[i].Type != "timestamp_ms" && s.Schema[i].Type != "timestamp_us":
			p.add(fmt.Sprintf("%s.schema[%d].type", sp, i), "column %q holds the event time of a stream with a table, so its type must be timestamp_ms or timestamp_us (the table is partitioned by hour(%s)), got %q",
				s.Schema[i].Name, s.Schema[i].Name, s.Schema[i].Type)
		}
	}
	if loc, err := time.LoadLocation(s.Time.Timezone); err == nil && s.Time.Timezone != "" && !wholeHourZone(loc) {
		p.add(sp+".time.timezone", "%s is not a whole number of hours from UTC; with a table every hour folder must be one UTC hour (Iceberg's hour() is UTC)", s.Time.Timezone)
	}
}

// wholeHourZone reports whether loc's offsets from UTC, in winter and
// summer of recent years, are whole hours.
func wholeHourZone(loc *time.Location) bool {
	for y := 2020; y <= 2030; y++ {
		for _, m := range []time.Month{time.January, time.July} {
			if _, off := time.Date(y, m, 1, 12, 0, 0, 0, loc).Zone(); off%3600 != 0 {
				return false
			}
		}
	}
	return true
}

// tableSecrets redacts the secrets of a table block.
func tableSecrets(t *Table) *Table {
	if t == nil {
		return nil
	}
	r := *t
	r.Catalog.URI = redactURL(r.Catalog.URI)
	if r.Catalog.Token != "" {
		r.Catalog.Token = RedactedValue
	}
	if len(t.Catalog.Properties) > 0 {
		r.Catalog.Properties = map[string]string{}
		for k, v := range t.Catalog.Properties {
			if secretProperty(k) && v != "" {
				v = RedactedValue
			}
			r.Catalog.Properties[k] = v
		}
	}
	return &r
}

// secretProperty reports whether a catalog property holds a secret
// (s3.secret-access-key, credential, token, ...).
func secretProperty(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"secret", "token", "credential", "password", "key-id", "session"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
