// query.cjs runs one SQL statement with DuckDB (npm @duckdb/node-api,
// installed by `make tools` under .tools/duckdb) and prints the result rows
// as a JSON array of objects. The end-to-end tests use it as a reader of
// the lake that shares no code with lakesink: DuckDB's own Parquet reader
// over a folder glob, as Athena or Spark would read the lake.
//
//   DUCKDB_DIR=.tools/duckdb node test/duckdb/query.cjs "SELECT ..."
const { createRequire } = require('module');
const req = createRequire(require('path').resolve(process.env.DUCKDB_DIR || '.tools/duckdb') + '/');
const { DuckDBInstance } = req('@duckdb/node-api');

(async () => {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const res = await conn.runAndReadAll(process.argv[2]);
  console.log(JSON.stringify(res.getRowObjectsJson()));
})().catch((e) => {
  console.error(String(e));
  process.exit(1);
});
