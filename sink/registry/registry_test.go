package registry_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/sink/registry"
	"github.com/lakesink/lakesink/test/schemaregistry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const avroV1 = `{"type":"record","name":"E","fields":[{"name":"a","type":"long"}]}`

func newClient(t *testing.T, cfg registry.Config) *registry.Client {
	t.Helper()
	c, err := registry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRegisterAndFetch(t *testing.T) {
	srv := schemaregistry.New(schemaregistry.Options{})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := newClient(t, registry.Config{URL: hs.URL + "/"})
	ctx := context.Background()

	id, err := c.Register(ctx, "e-value", registry.Schema{Schema: avroV1})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := c.Register(ctx, "e-value", registry.Schema{Schema: avroV1})
	if err != nil || id2 != id {
		t.Fatalf("re-register: got id %d, %v; want %d", id2, err, id)
	}
	pid, err := c.Register(ctx, "p-value", registry.Schema{Type: registry.TypeProtobuf, Schema: `syntax = "proto3"; message M { int64 a = 1; }`,
		References: []registry.Reference{{Name: "x.proto", Subject: "e-value", Version: 1}}})
	if err != nil || pid == id {
		t.Fatalf("register protobuf: id %d, %v", pid, err)
	}

	if subjects, err := c.Subjects(ctx); err != nil || strings.Join(subjects, ",") != "e-value,p-value" {
		t.Errorf("Subjects = %q, %v; want e-value, p-value", subjects, err)
	}

	s, err := c.SchemaByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != id || s.Schema != avroV1 || s.SchemaType() != registry.TypeAvro {
		t.Fatalf("got %+v", s)
	}
	p, err := c.SchemaByID(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if p.SchemaType() != registry.TypeProtobuf || len(p.References) != 1 || p.References[0].Subject != "e-value" {
		t.Fatalf("got %+v", p)
	}
	v, err := c.SubjectVersion(ctx, "e-value", 1)
	if err != nil || v.ID != id || v.Version != 1 || v.Subject != "e-value" {
		t.Fatalf("subject version: %+v, %v", v, err)
	}
	latest, err := c.SubjectVersion(ctx, "e-value", -1)
	if err != nil || latest.ID != id {
		t.Fatalf("latest: %+v, %v", latest, err)
	}

	// Cached: fetching again makes no request.
	before := srv.Requests()
	for range 5 {
		if _, err := c.SchemaByID(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := c.SubjectVersion(ctx, "e-value", 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.Requests(); got != before {
		t.Fatalf("cached lookups made %d requests", got-before)
	}
}

func TestNotFound(t *testing.T) {
	srv := schemaregistry.New(schemaregistry.Options{})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := newClient(t, registry.Config{URL: hs.URL, NotFoundTTL: time.Minute, Clock: clock})
	ctx := context.Background()

	_, err := c.SchemaByID(ctx, 42)
	var re *registry.Error
	if !errors.Is(err, registry.ErrNotFound) || !errors.As(err, &re) || re.Code != 40403 {
		t.Fatalf("got %v, want a 40403 not found", err)
	}
	n := srv.Requests()
	if _, err := c.SchemaByID(ctx, 42); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("cached: %v", err)
	}
	if srv.Requests() != n {
		t.Fatal("not-found answer was not cached")
	}
	id := srv.Register("s", "", avroV1) // id 1; 42 stays unknown
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if _, err := c.SchemaByID(ctx, 42); !errors.Is(err, registry.ErrNotFound) || srv.Requests() != n+1 {
		t.Fatalf("after ttl: %v, requests %d", err, srv.Requests()-n)
	}
	if _, err := c.SchemaByID(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubjectVersion(ctx, "nope", 1); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("unknown subject: %v", err)
	}
	if _, err := c.SubjectVersion(ctx, "s", 7); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
}

func TestBasicAuth(t *testing.T) {
	srv := schemaregistry.New(schemaregistry.Options{Username: "u", Password: "p@ss"})
	id := srv.Register("s", "", avroV1)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	ctx := context.Background()

	_, err := newClient(t, registry.Config{URL: hs.URL}).SchemaByID(ctx, id)
	var re *registry.Error
	if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
		t.Fatalf("without credentials: %v", err)
	}
	_, err = newClient(t, registry.Config{URL: hs.URL, Username: "u", Password: "bad"}).SchemaByID(ctx, id)
	if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %v", err)
	}
	if strings.Contains(err.Error(), "bad") {
		t.Fatalf("error leaks the password: %v", err)
	}
	if _, err := newClient(t, registry.Config{URL: hs.URL, Username: "u", Password: "p@ss"}).SchemaByID(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Credentials in the URL work too.
	u := strings.Replace(hs.URL, "http://", "http://u:p%40ss@", 1)
	if _, err := newClient(t, registry.Config{URL: u}).SchemaByID(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	srv := schemaregistry.New(schemaregistry.Options{})
	id := srv.Register("s", "", avroV1)
	hs := httptest.NewTLSServer(srv)
	defer hs.Close()
	ctx := context.Background()

	// System roots do not trust the test certificate.
	if _, err := newClient(t, registry.Config{URL: hs.URL}).SchemaByID(ctx, id); err == nil {
		t.Fatal("untrusted certificate accepted")
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	if err := os.WriteFile(ca, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := registry.LoadTLS(ca, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, registry.Config{URL: hs.URL, TLS: tlsCfg})
	if _, err := c.SchemaByID(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.LoadTLS(filepath.Join(t.TempDir(), "missing.pem"), "", "", false); err == nil {
		t.Fatal("missing CA file accepted")
	}
	if _, err := registry.LoadTLS("", "cert.pem", "", false); err == nil {
		t.Fatal("cert without key accepted")
	}
	hs.CloseClientConnections()
	c.CloseIdleConnections()
}

func TestTransientError(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer hs.Close()
	c := newClient(t, registry.Config{URL: hs.URL})
	_, err := c.SchemaByID(context.Background(), 1)
	if err == nil || errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("got %v, want a transient error", err)
	}
	c.CloseIdleConnections()
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "registry:8081", "ftp://x", "http://"} {
		if _, err := registry.New(registry.Config{URL: u}); err == nil {
			t.Errorf("New(%q): no error", u)
		}
	}
}
