package testenv

import (
	"crypto/rand"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/apache/iceberg-go"

	"github.com/lakesink/lakesink/test/icebergrest"
)

// IcebergREST is an Iceberg REST catalog (test/icebergrest) over a SQLite
// SQL catalog, serving HTTP on 127.0.0.1 and requiring a bearer token.
type IcebergREST struct {
	*icebergrest.Server
	// URL is the catalog's base URI (rest.NewCatalog appends /v1).
	URL string
	// Token is the bearer token every request must carry
	// (rest.WithOAuthToken, or "token" in the catalog properties).
	Token string
}

// StartIcebergREST starts an Iceberg REST catalog for the test and stops it
// when the test ends. Its SQLite database lives in t.TempDir(); tables go to
// warehouse (a file:// URL, or an s3:// or gs:// one with the matching FileIO
// properties, such as s3.endpoint and credentials, in props). props are the
// server's own: clients must bring their FileIO properties themselves
// (rest.WithAdditionalProps), unless the test hands them out with
// SetTableConfig.
func StartIcebergREST(t testing.TB, warehouse string, props iceberg.Properties) *IcebergREST {
	t.Helper()
	p := maps.Clone(props)
	if p == nil {
		p = iceberg.Properties{}
	}
	p["warehouse"] = warehouse
	cat, err := icebergrest.OpenSQLite(filepath.Join(t.TempDir(), "catalog.db"), p)
	if err != nil {
		t.Fatalf("iceberg rest catalog: %v", err)
	}
	token := rand.Text()
	srv := icebergrest.New(cat, token)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		if err := cat.Close(); err != nil {
			t.Errorf("iceberg rest catalog: close: %v", err)
		}
	})
	return &IcebergREST{Server: srv, URL: hs.URL, Token: token}
}
