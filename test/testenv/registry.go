package testenv

import (
	"net/http/httptest"
	"testing"

	"github.com/lakesink/lakesink/test/schemaregistry"
)

// Registry is an in-memory Confluent-compatible Schema Registry
// (test/schemaregistry) serving HTTP on 127.0.0.1.
type Registry struct {
	*schemaregistry.Server
	URL string
}

// StartRegistry starts a Schema Registry for the test over HTTP on a free
// 127.0.0.1 port and stops it when the test ends.
func StartRegistry(t testing.TB, opts schemaregistry.Options) *Registry {
	t.Helper()
	srv := schemaregistry.New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &Registry{Server: srv, URL: hs.URL}
}
