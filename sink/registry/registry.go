// Package registry is a client for the Confluent Schema Registry REST API,
// as far as lakesink needs it: fetch a schema by its global id (the id in
// the Confluent wire format), fetch a subject version (for schema
// references), and register a schema (for tests and tools).
//
// # Contract
//
// A [Client] is safe for concurrent use by every partition worker. Schemas
// fetched by id are cached for the life of the Client: registry ids are
// immutable, so an id always names the same schema. A "not found" answer is
// cached for [Config.NotFoundTTL] so that a burst of records with a bad id
// costs one request, not one per record. Answers for "latest" are never
// cached. Errors are [*Error] when the registry answered with an error
// status; a missing schema wraps [ErrNotFound]. Any other error (connection
// refused, timeout, 5xx) is transient: the caller should retry, not treat
// the record as bad.
package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lakesink/lakesink/config"
)

// Schema types, as the registry spells them. An empty type means AVRO.
const (
	TypeAvro     = "AVRO"
	TypeProtobuf = "PROTOBUF"
	TypeJSON     = "JSON"
)

// ContentType is the registry's media type.
const ContentType = "application/vnd.schemaregistry.v1+json"

// Reference is a named dependency of a schema (a Protobuf import, an Avro
// named type) stored as another subject version.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// Schema is one registered schema.
type Schema struct {
	ID         int         `json:"id,omitempty"`
	Subject    string      `json:"subject,omitempty"` // set by SubjectVersion
	Version    int         `json:"version,omitempty"` // set by SubjectVersion
	Type       string      `json:"schemaType,omitempty"`
	Schema     string      `json:"schema"`
	References []Reference `json:"references,omitempty"`
}

// SchemaType returns Type, with "" meaning TypeAvro as in the registry.
func (s *Schema) SchemaType() string {
	if s.Type == "" {
		return TypeAvro
	}
	return s.Type
}

// ErrNotFound is wrapped by errors for schemas, subjects and versions that
// do not exist.
var ErrNotFound = errors.New("not found")

// Error is an error answer of the registry.
type Error struct {
	Status  int    // HTTP status
	Code    int    `json:"error_code"` // registry error code, e.g. 40403
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("schema registry: %d (code %d): %s", e.Status, e.Code, e.Message)
}

// Unwrap makes a 404 answer match ErrNotFound.
func (e *Error) Unwrap() error {
	if e.Status == http.StatusNotFound {
		return ErrNotFound
	}
	return nil
}

// Config configures a Client. URL is required.
type Config struct {
	URL      string // base URL, e.g. "https://registry:8081"
	Username string // basic auth; empty means none
	Password string // a secret: never logged
	// TLS is used for https URLs; nil means the system roots.
	TLS *tls.Config
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
	// NotFoundTTL is how long a "not found" answer for an id is remembered
	// (default 10s; negative disables).
	NotFoundTTL time.Duration
	// Clock is the wall clock for NotFoundTTL (default time.Now).
	Clock func() time.Time
	// Transport overrides the HTTP transport (tests); TLS is ignored then.
	Transport http.RoundTripper
}

// Client talks to one registry. Create with New.
type Client struct {
	base     *url.URL
	user     string
	pass     string
	http     *http.Client
	notFound time.Duration
	now      func() time.Time

	mu       sync.Mutex
	byID     map[int]*Schema
	missing  map[int]time.Time // id -> when the not-found answer expires
	versions map[string]*Schema
}

// New checks cfg and returns a Client. It does not connect.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(cfg.URL, "/"))
	if err != nil {
		return nil, fmt.Errorf("schema registry url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("schema registry url %q: want http(s)://host[:port]", u.Redacted())
	}
	c := &Client{
		base: u, user: cfg.Username, pass: cfg.Password,
		notFound: cfg.NotFoundTTL, now: cfg.Clock,
		byID: map[int]*Schema{}, missing: map[int]time.Time{}, versions: map[string]*Schema{},
	}
	if u.User != nil && c.user == "" {
		c.user = u.User.Username()
		c.pass, _ = u.User.Password()
		c.base.User = nil
	}
	if c.notFound == 0 {
		c.notFound = 10 * time.Second
	}
	if c.now == nil {
		c.now = time.Now
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		tr = t
	}
	c.http = &http.Client{Transport: tr, Timeout: timeout}
	return c, nil
}

// FromConfig returns the client for the config file's schema_registry:
// block (TLS for https URLs or when a tls: key is set), as `lakesink run`
// and `lakesink validate --connect` use it. Errors name the config key. It
// does not connect.
func FromConfig(r config.SchemaRegistry) (*Client, error) {
	rc := Config{URL: r.URL, Username: r.Username, Password: r.Password, Timeout: time.Duration(r.Timeout)}
	if strings.HasPrefix(r.URL, "https:") || r.TLS != (config.RegistryTLS{}) {
		tc, err := LoadTLS(r.TLS.CAFile, r.TLS.CertFile, r.TLS.KeyFile, r.TLS.InsecureSkipVerify)
		if err != nil {
			return nil, fmt.Errorf("schema_registry.tls: %w", err)
		}
		rc.TLS = tc
	}
	c, err := New(rc)
	if err != nil {
		return nil, fmt.Errorf("schema_registry: %w", err)
	}
	return c, nil
}

// LoadTLS builds a client TLS configuration: caFile ("" = system roots) and
// an optional client certificate (certFile and keyFile, both or neither).
func LoadTLS(caFile, certFile, keyFile string, insecureSkipVerify bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecureSkipVerify} //nolint:gosec // opt-in
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca file %s: no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("cert file and key file: set both or neither")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// SchemaByID returns the schema with the global id (GET /schemas/ids/{id}).
// The result is shared: do not modify it.
func (c *Client) SchemaByID(ctx context.Context, id int) (*Schema, error) {
	c.mu.Lock()
	if s, ok := c.byID[id]; ok {
		c.mu.Unlock()
		return s, nil
	}
	if exp, ok := c.missing[id]; ok {
		if c.now().Before(exp) {
			c.mu.Unlock()
			return nil, &Error{Status: http.StatusNotFound, Code: 40403, Message: fmt.Sprintf("schema %d not found (cached)", id)}
		}
		delete(c.missing, id)
	}
	c.mu.Unlock()

	var s Schema
	err := c.do(ctx, http.MethodGet, "/schemas/ids/"+strconv.Itoa(id), nil, &s)
	if err != nil {
		if errors.Is(err, ErrNotFound) && c.notFound > 0 {
			c.mu.Lock()
			c.missing[id] = c.now().Add(c.notFound)
			c.mu.Unlock()
		}
		return nil, fmt.Errorf("get schema %d: %w", id, err)
	}
	s.ID = id
	c.mu.Lock()
	if old, ok := c.byID[id]; ok {
		c.mu.Unlock()
		return old, nil
	}
	c.byID[id] = &s
	c.mu.Unlock()
	return &s, nil
}

// SubjectVersion returns a version of a subject
// (GET /subjects/{subject}/versions/{version}); version -1 means "latest",
// which is not cached.
func (c *Client) SubjectVersion(ctx context.Context, subject string, version int) (*Schema, error) {
	v := strconv.Itoa(version)
	if version < 0 {
		v = "latest"
	}
	key := subject + "\x00" + v
	if version >= 0 {
		c.mu.Lock()
		s, ok := c.versions[key]
		c.mu.Unlock()
		if ok {
			return s, nil
		}
	}
	var s Schema
	if err := c.do(ctx, http.MethodGet, "/subjects/"+url.PathEscape(subject)+"/versions/"+v, nil, &s); err != nil {
		return nil, fmt.Errorf("get subject %s version %s: %w", subject, v, err)
	}
	if version >= 0 {
		c.mu.Lock()
		c.versions[key] = &s
		c.mu.Unlock()
	}
	return &s, nil
}

// Subjects returns the registry's subjects (GET /subjects): the cheapest
// request that proves the registry answers and takes the credentials, for
// `lakesink validate --connect`.
func (c *Client) Subjects(ctx context.Context) ([]string, error) {
	var out []string
	if err := c.do(ctx, http.MethodGet, "/subjects", nil, &out); err != nil {
		return nil, fmt.Errorf("list subjects: %w", err)
	}
	return out, nil
}

// Register registers s under subject (POST /subjects/{subject}/versions)
// and returns its global id. Registering a schema that the subject already
// has returns its existing id.
func (c *Client) Register(ctx context.Context, subject string, s Schema) (int, error) {
	body, err := json.Marshal(Schema{Type: s.Type, Schema: s.Schema, References: s.References})
	if err != nil {
		return 0, fmt.Errorf("register %s: %w", subject, err)
	}
	var out struct {
		ID int `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "/subjects/"+url.PathEscape(subject)+"/versions", body, &out); err != nil {
		return 0, fmt.Errorf("register %s: %w", subject, err)
	}
	return out.ID, nil
}

// maxBody bounds a registry answer; schemas are small.
const maxBody = 16 << 20

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", ContentType+", application/json")
	if body != nil {
		req.Header.Set("Content-Type", ContentType)
	}
	if c.user != "" || c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if len(data) > maxBody {
		return fmt.Errorf("answer larger than %d bytes", maxBody)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(data[:min(len(data), 200)]))
		}
		return e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// CloseIdleConnections closes idle HTTP connections (call when done).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }
