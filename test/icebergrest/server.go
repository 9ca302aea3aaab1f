// Package icebergrest is a minimal Apache Iceberg REST catalog server for
// end-to-end tests. It is not a production catalog.
//
// The server translates the REST protocol onto any iceberg-go
// catalog.Catalog, normally the SQL catalog over a SQLite file (OpenSQLite),
// which writes table metadata to the catalog's warehouse (a local directory or
// an object store reached through iceberg-go's FileIO properties). It serves
// the endpoints iceberg-go's catalog/rest client needs to create namespaces
// and to create, load, commit to and drop tables, and advertises them in
// GET /v1/config, so the client refuses other operations before sending them:
//
//	GET  /v1/config
//	GET  /v1/namespaces                       (pageToken/pageSize paging)
//	POST /v1/namespaces
//	GET  /v1/namespaces/{ns}                  (and HEAD)
//	GET  /v1/namespaces/{ns}/tables           (pageToken/pageSize paging)
//	POST /v1/namespaces/{ns}/tables           (create, not stage-create)
//	GET  /v1/namespaces/{ns}/tables/{table}   (and HEAD)
//	POST /v1/namespaces/{ns}/tables/{table}   (commit)
//	DELETE /v1/namespaces/{ns}/tables/{table} (purgeRequested honoured)
//
// A commit checks the request's requirements against the table's current
// metadata and answers 409 CommitFailedException when one fails, then applies
// the updates through the backing catalog's CommitTable. Commits are
// serialised within one Server, so a conflict between writers going through
// it is always caught by that requirement check. Errors use the REST spec's
// ErrorModel, {"error": {"message", "type", "code"}}, with the status codes
// the client maps to iceberg-go's sentinel errors (404 NoSuchTableException
// and NoSuchNamespaceException, 409 AlreadyExistsException and
// CommitFailedException, 400 BadRequestException, 401 NotAuthorizedException).
//
// Not implemented: OAuth token exchange (/v1/oauth/tokens; a fixed bearer
// token is checked instead), prefixes, dropping namespaces or updating their
// properties, renaming tables, register-table, staged creates, multi-table
// transactions, views, functions, scan planning, metrics reporting and
// credential vending; anything else is answered 501. The load-table "config"
// is empty unless SetTableConfig is called.
//
// For tests, Requests logs every request with its answer, FailCommits injects
// commit conflicts and Commits counts successful commits.
package icebergrest

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// Server is an Iceberg REST catalog HTTP handler over a catalog.Catalog.
// Its methods are safe for concurrent use.
type Server struct {
	cat   catalog.Catalog
	token string
	mux   *http.ServeMux

	commitMu sync.Mutex // serialises table commits

	mu          sync.Mutex
	reqs        []string
	failCommits int
	unavailable bool
	commits     int
	tableConfig iceberg.Properties
}

// New returns a Server answering for cat. A non-empty token makes every
// request require the header "Authorization: Bearer <token>"; others are
// answered 401. An empty token disables authentication.
func New(cat catalog.Catalog, token string) *Server {
	s := &Server{cat: cat, token: token, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /v1/config", s.config)
	s.mux.HandleFunc("GET /v1/namespaces", s.listNamespaces)
	s.mux.HandleFunc("POST /v1/namespaces", s.createNamespace)
	s.mux.HandleFunc("GET /v1/namespaces/{ns}", s.loadNamespace)
	s.mux.HandleFunc("HEAD /v1/namespaces/{ns}", s.namespaceExists)
	s.mux.HandleFunc("GET /v1/namespaces/{ns}/tables", s.listTables)
	s.mux.HandleFunc("POST /v1/namespaces/{ns}/tables", s.createTable)
	s.mux.HandleFunc("GET /v1/namespaces/{ns}/tables/{tbl}", s.loadTable)
	s.mux.HandleFunc("HEAD /v1/namespaces/{ns}/tables/{tbl}", s.tableExists)
	s.mux.HandleFunc("POST /v1/namespaces/{ns}/tables/{tbl}", s.commitTable)
	s.mux.HandleFunc("DELETE /v1/namespaces/{ns}/tables/{tbl}", s.dropTable)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotImplemented, "UnsupportedOperationException",
			fmt.Sprintf("%s %s is not implemented by the icebergrest test server", r.Method, r.URL.Path))
	})
	return s
}

// endpoints is what GET /v1/config advertises, in the spec's
// "METHOD /v1/{prefix}/..." form.
var endpoints = []string{
	"GET /v1/{prefix}/namespaces",
	"POST /v1/{prefix}/namespaces",
	"GET /v1/{prefix}/namespaces/{namespace}",
	"HEAD /v1/{prefix}/namespaces/{namespace}",
	"GET /v1/{prefix}/namespaces/{namespace}/tables",
	"POST /v1/{prefix}/namespaces/{namespace}/tables",
	"GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
	"HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
	"POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
	"DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
}

// ServeHTTP checks the bearer token, serves the request and logs it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		line := fmt.Sprintf("%s %s -> %d", r.Method, r.URL.EscapedPath(), rec.status())
		s.mu.Lock()
		s.reqs = append(s.reqs, line)
		s.mu.Unlock()
	}()
	s.mu.Lock()
	down := s.unavailable
	s.mu.Unlock()
	if down {
		writeError(rec, http.StatusServiceUnavailable, "ServiceUnavailableException", "the catalog is down (SetUnavailable)")
		return
	}
	if s.token != "" {
		got := r.Header.Get("Authorization")
		if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+s.token)) != 1 {
			writeError(rec, http.StatusUnauthorized, "NotAuthorizedException", "missing or wrong bearer token")
			return
		}
	}
	s.mux.ServeHTTP(rec, r)
}

// Requests returns the requests served so far, oldest first, one
// "METHOD path -> status" line each, such as
// "POST /v1/namespaces/lake/tables/clicks -> 409". The path is the escaped
// request path without the query; multi-level namespaces appear with their
// %1F separators.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// FailCommits makes the next n table commit requests fail with 409
// CommitFailedException without looking at or applying them, as if another
// writer had won each race. n <= 0 cancels failures not yet used.
func (s *Server) FailCommits(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCommits = max(n, 0)
}

// SetUnavailable makes every request answer 503 ServiceUnavailableException
// while on is true, as a catalog in an outage would.
func (s *Server) SetUnavailable(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unavailable = on
}

// Commits returns the number of table commits applied so far (answered 200).
func (s *Server) Commits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

// SetTableConfig sets the properties sent as "config" with every table the
// server returns (create, load). The client uses them, over its own, to build
// the table's FileIO: for example s3.endpoint and S3 credentials, as a catalog
// vending storage configuration would. The default is none.
func (s *Server) SetTableConfig(props iceberg.Properties) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tableConfig = maps.Clone(props)
}

func (s *Server) takeCommitFailure() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failCommits == 0 {
		return false
	}
	s.failCommits--
	return true
}

// statusRecorder remembers the status code a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// errorModel is the spec's ErrorModel inside its IcebergErrorResponse
// wrapper.
type errorModel struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	var e errorModel
	e.Error.Message, e.Error.Type, e.Error.Code = msg, typ, code
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(e)
}

func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusBadRequest, "BadRequestException", fmt.Sprintf(format, args...))
}

// fail answers a backing-catalog error with the REST status and error type
// the spec gives it.
func fail(w http.ResponseWriter, err error) {
	msg := err.Error()
	switch {
	case errors.Is(err, catalog.ErrNoSuchTable):
		writeError(w, http.StatusNotFound, "NoSuchTableException", msg)
	case errors.Is(err, catalog.ErrNoSuchNamespace):
		writeError(w, http.StatusNotFound, "NoSuchNamespaceException", msg)
	case errors.Is(err, catalog.ErrTableAlreadyExists), errors.Is(err, catalog.ErrNamespaceAlreadyExists):
		writeError(w, http.StatusConflict, "AlreadyExistsException", msg)
	case errors.Is(err, table.ErrCommitFailed), isRequirementFailure(err):
		writeError(w, http.StatusConflict, "CommitFailedException", msg)
	case errors.Is(err, catalog.ErrInvalidIdentifier):
		writeError(w, http.StatusBadRequest, "BadRequestException", msg)
	default:
		writeError(w, http.StatusInternalServerError, "ServiceFailureException", msg)
	}
}

// isRequirementFailure recognises a failed table requirement: iceberg-go's
// Requirement.Validate returns plain errors worded "requirement failed: ...".
func isRequirementFailure(err error) bool {
	return strings.Contains(err.Error(), "requirement failed")
}

// namespace decodes the {ns} path parameter: the levels joined by the unit
// separator (the client's default namespace-separator, %1F).
func namespace(r *http.Request) table.Identifier {
	return strings.Split(r.PathValue("ns"), "\x1f")
}

func tableIdent(r *http.Request) table.Identifier {
	return append(namespace(r), r.PathValue("tbl"))
}

// page cuts items to the page the request's pageToken (an offset here) and
// pageSize select, returning the next page's token ("" after the last).
func page[T any](r *http.Request, items []T) ([]T, string, error) {
	q := r.URL.Query()
	start, end := 0, len(items)
	if tok := q.Get("pageToken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("invalid pageToken %q", tok)
		}
		start = min(n, len(items))
	}
	if ps := q.Get("pageSize"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 {
			return nil, "", fmt.Errorf("invalid pageSize %q", ps)
		}
		end = min(start+n, len(items))
	}
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next, nil
}

func compareIdents(a, b table.Identifier) int { return slices.Compare(a, b) }

func (s *Server) config(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, struct {
		Defaults  iceberg.Properties `json:"defaults"`
		Overrides iceberg.Properties `json:"overrides"`
		Endpoints []string           `json:"endpoints"`
	}{iceberg.Properties{}, iceberg.Properties{}, endpoints})
}

func (s *Server) listNamespaces(w http.ResponseWriter, r *http.Request) {
	var parent table.Identifier
	if p := r.URL.Query().Get("parent"); p != "" {
		parent = strings.Split(p, "\x1f")
	}
	nss, err := s.cat.ListNamespaces(r.Context(), parent)
	if err != nil {
		fail(w, err)
		return
	}
	slices.SortFunc(nss, compareIdents)
	nss, next, err := page(r, nss)
	if err != nil {
		badRequest(w, "list namespaces: %v", err)
		return
	}
	writeJSON(w, struct {
		Namespaces    []table.Identifier `json:"namespaces"`
		NextPageToken string             `json:"next-page-token,omitempty"`
	}{append([]table.Identifier{}, nss...), next})
}

type namespaceBody struct {
	Namespace  table.Identifier   `json:"namespace"`
	Properties iceberg.Properties `json:"properties"`
}

func (s *Server) createNamespace(w http.ResponseWriter, r *http.Request) {
	var req namespaceBody
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		badRequest(w, "create namespace: %v", err)
		return
	}
	if len(req.Namespace) == 0 {
		badRequest(w, "create namespace: empty namespace")
		return
	}
	if err := s.cat.CreateNamespace(r.Context(), req.Namespace, req.Properties); err != nil {
		fail(w, err)
		return
	}
	if req.Properties == nil {
		req.Properties = iceberg.Properties{}
	}
	writeJSON(w, req)
}

func (s *Server) loadNamespace(w http.ResponseWriter, r *http.Request) {
	ns := namespace(r)
	props, err := s.cat.LoadNamespaceProperties(r.Context(), ns)
	if err != nil {
		fail(w, err)
		return
	}
	if props == nil {
		props = iceberg.Properties{}
	}
	writeJSON(w, namespaceBody{Namespace: ns, Properties: props})
}

// namespaceExists answers HEAD: 204 when the namespace exists, else 404.
func (s *Server) namespaceExists(w http.ResponseWriter, r *http.Request) {
	ok, err := s.cat.CheckNamespaceExists(r.Context(), namespace(r))
	existsStatus(w, ok, err)
}

func existsStatus(w http.ResponseWriter, ok bool, err error) {
	switch {
	case err != nil && !errors.Is(err, catalog.ErrNoSuchNamespace) && !errors.Is(err, catalog.ErrNoSuchTable):
		w.WriteHeader(http.StatusInternalServerError)
	case ok:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

type tableIdentifier struct {
	Namespace []string `json:"namespace"`
	Name      string   `json:"name"`
}

func (s *Server) listTables(w http.ResponseWriter, r *http.Request) {
	var idents []table.Identifier
	for id, err := range s.cat.ListTables(r.Context(), namespace(r)) {
		if err != nil {
			fail(w, err)
			return
		}
		idents = append(idents, id)
	}
	slices.SortFunc(idents, compareIdents)
	idents, next, err := page(r, idents)
	if err != nil {
		badRequest(w, "list tables: %v", err)
		return
	}
	out := make([]tableIdentifier, 0, len(idents))
	for _, id := range idents {
		out = append(out, tableIdentifier{Namespace: catalog.NamespaceFromIdent(id), Name: catalog.TableNameFromIdent(id)})
	}
	writeJSON(w, struct {
		Identifiers   []tableIdentifier `json:"identifiers"`
		NextPageToken string            `json:"next-page-token,omitempty"`
	}{out, next})
}

// loadTableResult is the spec's LoadTableResult.
type loadTableResult struct {
	MetadataLocation string             `json:"metadata-location"`
	Metadata         table.Metadata     `json:"metadata"`
	Config           iceberg.Properties `json:"config"`
}

func (s *Server) loadResult(t *table.Table) loadTableResult {
	s.mu.Lock()
	cfg := maps.Clone(s.tableConfig)
	s.mu.Unlock()
	if cfg == nil {
		cfg = iceberg.Properties{}
	}
	return loadTableResult{MetadataLocation: t.MetadataLocation(), Metadata: t.Metadata(), Config: cfg}
}

// createTableRequest is the spec's CreateTableRequest. The partition spec
// and write order carry source ids of the request's schema, hence the
// unbound types; the backing catalog rebinds them when it builds the
// table's first metadata.
type createTableRequest struct {
	Name          string                        `json:"name"`
	Schema        *iceberg.Schema               `json:"schema"`
	Location      string                        `json:"location"`
	PartitionSpec *iceberg.UnboundPartitionSpec `json:"partition-spec"`
	WriteOrder    *table.UnboundSortOrder       `json:"write-order"`
	StageCreate   bool                          `json:"stage-create"`
	Properties    iceberg.Properties            `json:"properties"`
}

func (s *Server) createTable(w http.ResponseWriter, r *http.Request) {
	var req createTableRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		badRequest(w, "create table: %v", err)
		return
	}
	switch {
	case req.Name == "":
		badRequest(w, "create table: missing name")
		return
	case req.Schema == nil:
		badRequest(w, "create table %s: missing schema", req.Name)
		return
	case req.StageCreate:
		writeError(w, http.StatusNotImplemented, "UnsupportedOperationException",
			"stage-create is not implemented by the icebergrest test server")
		return
	}
	var opts []catalog.CreateTableOpt
	if req.PartitionSpec != nil {
		opts = append(opts, catalog.WithPartitionSpec(&req.PartitionSpec.PartitionSpec))
	}
	if req.WriteOrder != nil && !req.WriteOrder.IsUnsorted() {
		opts = append(opts, catalog.WithSortOrder(req.WriteOrder.SortOrder))
	}
	if req.Location != "" {
		opts = append(opts, catalog.WithLocation(req.Location))
	}
	if len(req.Properties) > 0 {
		opts = append(opts, catalog.WithProperties(req.Properties))
	}
	t, err := s.cat.CreateTable(r.Context(), append(namespace(r), req.Name), req.Schema, opts...)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, s.loadResult(t))
}

func (s *Server) loadTable(w http.ResponseWriter, r *http.Request) {
	t, err := s.cat.LoadTable(r.Context(), tableIdent(r))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, s.loadResult(t))
}

// tableExists answers HEAD: 204 when the table exists, else 404.
func (s *Server) tableExists(w http.ResponseWriter, r *http.Request) {
	ok, err := s.cat.CheckTableExists(r.Context(), tableIdent(r))
	existsStatus(w, ok, err)
}

// commitTableRequest is the spec's CommitTableRequest (its optional
// identifier is taken from the path instead).
type commitTableRequest struct {
	Requirements table.Requirements `json:"requirements"`
	Updates      table.Updates      `json:"updates"`
}

// commitTable applies a CommitTableRequest and answers the spec's
// CommitTableResponse.
func (s *Server) commitTable(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		badRequest(w, "commit table: %v", err)
		return
	}
	var req commitTableRequest
	if err := json.Unmarshal(body, &req); err != nil {
		badRequest(w, "commit table: %v", err)
		return
	}
	ident := tableIdent(r)

	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.takeCommitFailure() {
		writeError(w, http.StatusConflict, "CommitFailedException",
			fmt.Sprintf("commit to %s failed: injected by FailCommits", strings.Join(ident, ".")))
		return
	}

	current, err := s.cat.LoadTable(r.Context(), ident)
	switch {
	case errors.Is(err, catalog.ErrNoSuchTable) && !hasAssertCreate(req.Requirements):
		fail(w, err)
		return
	case errors.Is(err, catalog.ErrNoSuchTable):
		current = nil // assert-create: the backing catalog creates the table
	case err != nil:
		fail(w, err)
		return
	}
	var meta table.Metadata
	if current != nil {
		meta = current.Metadata()
	}
	for _, rq := range req.Requirements {
		if err := rq.Validate(meta); err != nil {
			writeError(w, http.StatusConflict, "CommitFailedException", err.Error())
			return
		}
	}
	if current != nil {
		// Try the updates on a second decoding of the body, so that a bad
		// update is a 400 rather than a failure inside the catalog, and the
		// updates that are committed are untouched by the trial.
		var trial commitTableRequest
		if err := json.Unmarshal(body, &trial); err != nil {
			badRequest(w, "commit table: %v", err)
			return
		}
		if _, err := table.UpdateTableMetadata(meta, trial.Updates, current.MetadataLocation()); err != nil {
			badRequest(w, "commit table %s: %v", strings.Join(ident, "."), err)
			return
		}
	}

	newMeta, loc, err := s.cat.CommitTable(r.Context(), ident, req.Requirements, req.Updates)
	if err != nil {
		fail(w, err)
		return
	}
	s.mu.Lock()
	s.commits++
	s.mu.Unlock()
	writeJSON(w, struct {
		MetadataLocation string         `json:"metadata-location"`
		Metadata         table.Metadata `json:"metadata"`
	}{loc, newMeta})
}

func hasAssertCreate(reqs []table.Requirement) bool {
	return slices.ContainsFunc(reqs, func(r table.Requirement) bool { return r.GetType() == "assert-create" })
}

// dropTable drops the table, purging its files when purgeRequested=true and
// the backing catalog can.
func (s *Server) dropTable(w http.ResponseWriter, r *http.Request) {
	ident := tableIdent(r)
	var err error
	if p, ok := s.cat.(catalog.PurgeableTable); ok && r.URL.Query().Get("purgeRequested") == "true" {
		err = p.PurgeTable(r.Context(), ident)
	} else {
		err = s.cat.DropTable(r.Context(), ident)
	}
	if err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
