package icebergrest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	"github.com/apache/iceberg-go/table"

	"github.com/lakesink/lakesink/test/icebergrest"
)

const testToken = "test-token"

var (
	lake   = table.Identifier{"lake"}
	clicks = table.Identifier{"lake", "clicks"}
)

// startServer serves a fresh SQLite-backed catalog with a local warehouse on
// 127.0.0.1 and returns the server and its base URL. A failed test logs the
// requests the server answered.
func startServer(t *testing.T, token string) (*icebergrest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	cat, err := icebergrest.OpenSQLite(filepath.Join(dir, "catalog.db"), iceberg.Properties{
		"warehouse": "file://" + filepath.Join(dir, "warehouse"),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := icebergrest.New(cat, token)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		if t.Failed() {
			t.Logf("requests served:\n%s", strings.Join(srv.Requests(), "\n"))
		}
		if err := cat.Close(); err != nil {
			t.Errorf("close catalog: %v", err)
		}
	})
	return srv, hs.URL
}

// connect opens iceberg-go's REST client on the server.
func connect(t *testing.T, url, token string) *rest.Catalog {
	t.Helper()
	rc, err := rest.NewCatalog(context.Background(), "rest", url, rest.WithOAuthToken(token))
	if err != nil {
		t.Fatalf("rest.NewCatalog: %v", err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

func clicksSchema() *iceberg.Schema {
	return iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.String, Required: true},
		iceberg.NestedField{ID: 2, Name: "ts", Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		iceberg.NestedField{ID: 3, Name: "n", Type: iceberg.PrimitiveTypes.Int64},
	)
}

func hourSpec() *iceberg.PartitionSpec {
	spec := iceberg.NewPartitionSpec(iceberg.PartitionField{
		SourceIDs: []int{2}, FieldID: 1000, Name: "ts_hour", Transform: iceberg.HourTransform{},
	})
	return &spec
}

// createClicks creates namespace lake and table lake.clicks, partitioned by
// hour(ts), with props.
func createClicks(t *testing.T, rc *rest.Catalog, props iceberg.Properties) *table.Table {
	t.Helper()
	ctx := context.Background()
	if err := rc.CreateNamespace(ctx, lake, nil); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	tbl, err := rc.CreateTable(ctx, clicks, clicksSchema(),
		catalog.WithPartitionSpec(hourSpec()), catalog.WithProperties(props))
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	return tbl
}

func load(t *testing.T, rc *rest.Catalog) *table.Table {
	t.Helper()
	tbl, err := rc.LoadTable(context.Background(), clicks)
	if err != nil {
		t.Fatalf("load table: %v", err)
	}
	return tbl
}

// setProperty commits a property change through tbl's handle.
func setProperty(tbl *table.Table, key, value string) (*table.Table, error) {
	tx := tbl.NewTransaction()
	if err := tx.SetProperties(iceberg.Properties{key: value}); err != nil {
		return nil, err
	}
	return tx.Commit(context.Background())
}

// appendNothing commits a snapshot that adds no files, with summary
// property writer=name: enough for a commit that asserts the branch head.
func appendNothing(tbl *table.Table, name string) (*table.Table, error) {
	tx := tbl.NewTransaction()
	if err := tx.AddFiles(context.Background(), nil, iceberg.Properties{"writer": name}, false); err != nil {
		return nil, err
	}
	return tx.Commit(context.Background())
}

func countRequests(srv *icebergrest.Server, line string) int {
	n := 0
	for _, r := range srv.Requests() {
		if r == line {
			n++
		}
	}
	return n
}

const commitLine = "POST /v1/namespaces/lake/tables/clicks"

func TestNamespacesAndTables(t *testing.T) {
	ctx := context.Background()
	srv, url := startServer(t, testToken)
	rc := connect(t, url, testToken)

	tbl := createClicks(t, rc, nil)
	if err := rc.CreateNamespace(ctx, lake, nil); !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		t.Errorf("create existing namespace: err = %v, want ErrNamespaceAlreadyExists", err)
	}
	if ok, err := rc.CheckNamespaceExists(ctx, lake); err != nil || !ok {
		t.Errorf("CheckNamespaceExists(lake) = %v, %v", ok, err)
	}
	if ok, err := rc.CheckNamespaceExists(ctx, table.Identifier{"nope"}); err != nil || ok {
		t.Errorf("CheckNamespaceExists(nope) = %v, %v", ok, err)
	}
	nss, err := rc.ListNamespaces(ctx, nil)
	if err != nil || !slices.ContainsFunc(nss, func(ns table.Identifier) bool { return slices.Equal(ns, lake) }) {
		t.Errorf("ListNamespaces = %v, %v; want lake among them", nss, err)
	}
	if _, err := rc.LoadNamespaceProperties(ctx, table.Identifier{"nope"}); !errors.Is(err, catalog.ErrNoSuchNamespace) {
		t.Errorf("load missing namespace: err = %v, want ErrNoSuchNamespace", err)
	}

	// The hour(ts) partition spec survives the trip through the REST
	// create-table request and the SQL catalog.
	spec := tbl.Spec()
	if spec.NumFields() != 1 {
		t.Fatalf("spec = %v, want one field", spec)
	}
	f := spec.Field(0)
	ts, _ := tbl.Schema().FindFieldByName("ts")
	if _, ok := f.Transform.(iceberg.HourTransform); !ok || f.SourceID() != ts.ID || f.Name != "ts_hour" {
		t.Errorf("partition field = %v, want ts_hour: hour(%d)", f, ts.ID)
	}
	if !strings.HasPrefix(tbl.Location(), "file://") || !strings.HasSuffix(tbl.Location(), "/lake.db/clicks") {
		t.Errorf("location = %q, want file://<warehouse>/lake.db/clicks", tbl.Location())
	}

	loaded := load(t, rc)
	if loaded.MetadataLocation() != tbl.MetadataLocation() {
		t.Errorf("loaded metadata %s, created %s", loaded.MetadataLocation(), tbl.MetadataLocation())
	}
	if ok, err := rc.CheckTableExists(ctx, clicks); err != nil || !ok {
		t.Errorf("CheckTableExists(clicks) = %v, %v", ok, err)
	}
	if countRequests(srv, "HEAD /v1/namespaces/lake/tables/clicks -> 204") != 1 {
		t.Errorf("CheckTableExists did not use HEAD: %q", srv.Requests())
	}
	missing := table.Identifier{"lake", "missing"}
	if ok, err := rc.CheckTableExists(ctx, missing); err != nil || ok {
		t.Errorf("CheckTableExists(missing) = %v, %v", ok, err)
	}
	if _, err := rc.LoadTable(ctx, missing); !errors.Is(err, catalog.ErrNoSuchTable) {
		t.Errorf("load missing table: err = %v, want ErrNoSuchTable", err)
	}
	if _, err := rc.CreateTable(ctx, clicks, clicksSchema()); !errors.Is(err, catalog.ErrTableAlreadyExists) {
		t.Errorf("create existing table: err = %v, want ErrTableAlreadyExists", err)
	}
	if _, err := rc.CreateTable(ctx, table.Identifier{"nope", "t"}, clicksSchema()); !errors.Is(err, catalog.ErrNoSuchNamespace) {
		t.Errorf("create table in missing namespace: err = %v, want ErrNoSuchNamespace", err)
	}

	// Listing pages through next-page-token.
	for _, name := range []string{"a", "b", "c"} {
		if _, err := rc.CreateTable(ctx, table.Identifier{"lake", name}, clicksSchema()); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for id, err := range rc.ListTables(rc.SetPageSize(ctx, 2), lake) {
		if err != nil {
			t.Fatalf("ListTables: %v", err)
		}
		names = append(names, strings.Join(id, "."))
	}
	if want := []string{"lake.a", "lake.b", "lake.c", "lake.clicks"}; !slices.Equal(names, want) {
		t.Errorf("ListTables = %q, want %q", names, want)
	}
	if n := countRequests(srv, "GET /v1/namespaces/lake/tables -> 200"); n != 2 {
		t.Errorf("ListTables took %d pages, want 2", n)
	}

	// A property change is a commit.
	updated, err := setProperty(loaded, "owner", "lakesink")
	if err != nil {
		t.Fatalf("commit property: %v", err)
	}
	if got := load(t, rc).Properties()["owner"]; got != "lakesink" {
		t.Errorf("owner = %q after commit, want lakesink", got)
	}
	if updated.MetadataLocation() == tbl.MetadataLocation() {
		t.Error("commit did not write new metadata")
	}
	if srv.Commits() != 1 {
		t.Errorf("Commits() = %d, want 1", srv.Commits())
	}

	if err := rc.DropTable(ctx, clicks); err != nil {
		t.Fatalf("drop table: %v", err)
	}
	if _, err := rc.LoadTable(ctx, clicks); !errors.Is(err, catalog.ErrNoSuchTable) {
		t.Errorf("load dropped table: err = %v, want ErrNoSuchTable", err)
	}
	if err := rc.DropTable(ctx, clicks); !errors.Is(err, catalog.ErrNoSuchTable) {
		t.Errorf("drop missing table: err = %v, want ErrNoSuchTable", err)
	}
	if _, err := setProperty(updated, "owner", "ghost"); !errors.Is(err, catalog.ErrNoSuchTable) {
		t.Errorf("commit to dropped table: err = %v, want ErrNoSuchTable", err)
	}
}

// Two handles loaded at the same version: the second commit fails with a
// 409 and succeeds after a refresh.
func TestCommitConflict(t *testing.T) {
	srv, url := startServer(t, testToken)
	rc := connect(t, url, testToken)
	createClicks(t, rc, iceberg.Properties{table.CommitNumRetriesKey: "0"})

	for round := range 2 { // first without, then with a current snapshot
		h1, h2 := load(t, rc), load(t, rc)
		t1, err := appendNothing(h1, "w1")
		if err != nil {
			t.Fatalf("round %d: writer 1: %v", round, err)
		}
		before := countRequests(srv, commitLine+" -> 409")
		_, err = appendNothing(h2, "w2")
		if !errors.Is(err, table.ErrCommitFailed) {
			t.Fatalf("round %d: stale writer 2: err = %v, want ErrCommitFailed", round, err)
		}
		if countRequests(srv, commitLine+" -> 409") != before+1 {
			t.Fatalf("round %d: no 409 answered: %q", round, srv.Requests())
		}
		if err := h2.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		t2, err := appendNothing(h2, "w2")
		if err != nil {
			t.Fatalf("round %d: writer 2 after refresh: %v", round, err)
		}
		snap := t2.CurrentSnapshot()
		if snap.ParentSnapshotID == nil || *snap.ParentSnapshotID != t1.CurrentSnapshot().SnapshotID {
			t.Errorf("round %d: writer 2's snapshot does not follow writer 1's", round)
		}
		if got := snap.Summary.Properties["writer"]; got != "w2" {
			t.Errorf("round %d: summary writer = %q, want w2", round, got)
		}
	}
	if srv.Commits() != 4 {
		t.Errorf("Commits() = %d, want 4", srv.Commits())
	}
}

func TestFailCommits(t *testing.T) {
	srv, url := startServer(t, testToken)
	rc := connect(t, url, testToken)
	createClicks(t, rc, iceberg.Properties{table.CommitNumRetriesKey: "0"})

	srv.FailCommits(1)
	_, err := setProperty(load(t, rc), "k", "v1")
	if !errors.Is(err, table.ErrCommitFailed) {
		t.Fatalf("commit with an injected failure: err = %v, want ErrCommitFailed", err)
	}
	if _, ok := load(t, rc).Properties()["k"]; ok || srv.Commits() != 0 {
		t.Fatalf("the failed commit was applied (commits %d)", srv.Commits())
	}
	if _, err := setProperty(load(t, rc), "k", "v2"); err != nil {
		t.Fatalf("commit after the injected failure: %v", err)
	}
	if got := load(t, rc).Properties()["k"]; got != "v2" || srv.Commits() != 1 {
		t.Errorf("k = %q, commits %d; want v2, 1", got, srv.Commits())
	}

	// With retries allowed, the client reloads the table and commits again.
	tbl, err := setProperty(load(t, rc), table.CommitNumRetriesKey, "2")
	if err != nil {
		t.Fatal(err)
	}
	if tbl, err = setProperty(tbl, table.CommitMinRetryWaitMsKey, "1"); err != nil {
		t.Fatal(err)
	}
	srv.FailCommits(2)
	before := countRequests(srv, commitLine+" -> 409")
	if _, err := appendNothing(tbl, "retrier"); err != nil {
		t.Fatalf("commit with 2 injected failures and 2 retries: %v", err)
	}
	if got := countRequests(srv, commitLine+" -> 409") - before; got != 2 {
		t.Errorf("%d commits answered 409, want 2: %q", got, srv.Requests())
	}
	if got := load(t, rc).CurrentSnapshot(); got == nil || got.Summary.Properties["writer"] != "retrier" {
		t.Errorf("current snapshot %v, want the retried one", got)
	}
}

func TestAuth(t *testing.T) {
	srv, url := startServer(t, testToken)
	ctx := context.Background()
	for _, token := range []string{"wrong", ""} {
		_, err := rest.NewCatalog(ctx, "rest", url, rest.WithOAuthToken(token))
		if !errors.Is(err, rest.ErrUnauthorized) {
			t.Errorf("token %q: err = %v, want rest.ErrUnauthorized", token, err)
		}
	}
	if n := countRequests(srv, "GET /v1/config -> 401"); n != 2 {
		t.Errorf("%d config requests answered 401, want 2: %q", n, srv.Requests())
	}
	connect(t, url, testToken)
}

// The error bodies follow the spec's ErrorModel; without a token the server
// needs no Authorization header.
func TestErrorModel(t *testing.T) {
	_, url := startServer(t, "")
	for _, tc := range []struct {
		method, path, body string
		code               int
		typ                string
	}{
		{"GET", "/v1/namespaces/nope/tables/t", "", 404, "NoSuchTableException"},
		{"GET", "/v1/namespaces/nope", "", 404, "NoSuchNamespaceException"},
		{"POST", "/v1/namespaces", "{", 400, "BadRequestException"},
		{"POST", "/v1/namespaces", `{"namespace":["lake"]}`, 200, ""},
		{"POST", "/v1/namespaces", `{"namespace":["lake"]}`, 409, "AlreadyExistsException"},
		{"POST", "/v1/namespaces/lake/tables", `{"name":"t"}`, 400, "BadRequestException"},
		{"POST", "/v1/namespaces/lake/tables/t", `{"requirements":[],"updates":[]}`, 404, "NoSuchTableException"},
		{"POST", "/v1/transactions/commit", `{}`, 501, "UnsupportedOperationException"},
	} {
		req, err := http.NewRequest(tc.method, url+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		rsp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
				Code    int    `json:"code"`
			} `json:"error"`
		}
		err = json.NewDecoder(rsp.Body).Decode(&e)
		_ = rsp.Body.Close()
		if rsp.StatusCode != tc.code {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, rsp.StatusCode, tc.code)
		}
		if tc.typ == "" {
			continue
		}
		if err != nil || e.Error.Type != tc.typ || e.Error.Code != tc.code || e.Error.Message == "" {
			t.Errorf("%s %s: error body %+v (%v), want type %s code %d", tc.method, tc.path, e, err, tc.typ, tc.code)
		}
	}
}
