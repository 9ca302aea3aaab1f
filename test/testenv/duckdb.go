package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// DuckDBDir is where `make tools` installs DuckDB's npm package:
// $LAKESINK_DUCKDB_DIR, or duckdb beside ToolsBin.
func DuckDBDir() string {
	if d := os.Getenv("LAKESINK_DUCKDB_DIR"); d != "" {
		return d
	}
	return filepath.Join(filepath.Dir(ToolsBin()), "duckdb")
}

// DuckDB runs query with DuckDB (test/duckdb/query.cjs under Node) and
// returns its rows, failing the test when DuckDB is not installed or the
// query fails. DuckDB's JSON rendering gives 64-bit integers as strings:
// cast counts to INTEGER in the query to get numbers.
func DuckDB(t testing.TB, query string) []map[string]any {
	t.Helper()
	dir := DuckDBDir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Fatalf("DuckDB is not installed in %s: run `make tools` (or `make test`, which does it)", dir)
	}
	cmd := exec.Command("node", filepath.Join(RepoRoot(), "test", "duckdb", "query.cjs"), query)
	cmd.Env = append(os.Environ(), "DUCKDB_DIR="+dir)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("duckdb %q: %v\n%s", query, err, msg)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("duckdb %q: decode %q: %v", query, out, err)
	}
	return rows
}
