package tables

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/config"
)

// TestProbe: what validate --connect says of a stream's table as the
// catalog comes into being — no catalog file, no namespace, no table, the
// table, the table with a column the stream adds, a table the stream
// cannot write — and that the probe creates none of them.
func TestProbe(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	uri := f.stream.Table.Catalog.URI
	probe := func(sc config.Stream) (string, error) {
		t.Helper()
		return Probe(ctx, sc, f.store)
	}

	if got, err := probe(f.stream); err != nil || got != "catalog file "+uri+" missing: run creates it" {
		t.Errorf("no catalog file: %q, %v", got, err)
	}
	if _, err := os.Stat(uri); !os.IsNotExist(err) {
		t.Fatalf("Probe created the catalog file: %v", err)
	}
	_, closeCat, err := OpenSQLCatalog(uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeCat()
	if got, err := probe(f.stream); err != nil || got != "namespace lake missing: run creates it and table lake.clicks" {
		t.Errorf("no namespace: %q, %v", got, err)
	}
	f.open(prometheus.NewRegistry())
	if got, err := probe(f.stream); err != nil || got != "table lake.clicks loaded" {
		t.Errorf("the table: %q, %v", got, err)
	}
	other := f.stream
	other.Table = &config.Table{Format: config.TableIceberg, Namespace: "lake", Name: "other", Catalog: f.stream.Table.Catalog}
	if got, err := probe(other); err != nil || got != "table lake.other missing: run creates it" {
		t.Errorf("another table of the namespace: %q, %v", got, err)
	}

	wider := f.stream
	wider.Schema = append(wider.Schema[:len(wider.Schema):len(wider.Schema)], config.SchemaColumn{Name: "extra", Type: "string"})
	if got, err := probe(wider); err != nil || got != "table lake.clicks loaded; run adds columns extra" {
		t.Errorf("a column the table lacks: %q, %v", got, err)
	}
	changed := f.stream
	changed.Schema = append([]config.SchemaColumn(nil), f.stream.Schema...)
	changed.Schema[2].Type = "string" // n is an int in the table
	if got, err := probe(changed); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), `column "n"`) {
		t.Errorf("a column of another type: %q, %v; want ErrIncompatible naming n", got, err)
	}

	// Nothing of what the probes found missing was created.
	if got, err := probe(other); err != nil || !strings.Contains(got, "missing") {
		t.Errorf("after the probes: %q, %v", got, err)
	}
}
