package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/test/testenv"
)

// compactionParts is the partition count of both topics of
// TestCompaction: the many small files per hour compaction is for.
const compactionParts = 64

// TestCompaction: 64 partitions of clickstream and of IoT over three
// hours, compaction on (the IoT stream sorted by device and time): each
// completed hour's manifest lists one compacted file with a source per
// partition, the folder holds only that file, every record is there once —
// through the manifests, through DuckDB reading the folders with a glob
// (local lake), and through the Iceberg table's scan (one data file per
// hour in the current snapshot).
func TestCompaction(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	t.Run("local", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "lake")
		runCompaction(t, compactionSetup{backend: localBackendAt(t, root), root: root})
	})
	t.Run("s3", func(t *testing.T) {
		runCompaction(t, compactionSetup{backend: s3Backend(t)})
	})
	t.Run("iceberg-sqlite-local", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "lake")
		dbPath := filepath.Join(t.TempDir(), "catalog.db")
		runCompaction(t, compactionSetup{backend: localBackendAt(t, root), root: root,
			table: fmt.Sprintf("      format: iceberg\n      namespace: lake\n      name: %%s\n      catalog: {type: sql, uri: %q}\n", dbPath),
			open:  func(t *testing.T) catalog.Catalog { return openSQLCatalog(t, dbPath, nil) },
		})
	})
}

type compactionSetup struct {
	backend
	root  string // local lake root, "" for object storage
	table string // the streams' table: block, "" for none
	open  func(t *testing.T) catalog.Catalog
}

// compactionConfig turns compaction on in a config writeConfigTables wrote.
func compactionConfig(t *testing.T, path string) {
	editConfig(t, path,
		"      - {name: attrs, type: json}\n", "      - {name: attrs, type: json}\n    compaction: {enabled: true}\n",
		"      - {name: seq, type: int64}\n", "      - {name: seq, type: int64}\n    compaction: {enabled: true, sort_by: [device_id, event_time]}\n")
}

func runCompaction(t *testing.T, s compactionSetup) {
	k := testenv.StartKafka(t)
	const clickTopic, iotTopic, group = "clickstream", "iot-telemetry", "lakesink-compaction"
	k.CreateTopic(t, clickTopic, compactionParts)
	k.CreateTopic(t, iotTopic, compactionParts)
	parts := make([]int, compactionParts)
	for i := range parts {
		parts[i] = i
	}
	from := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	p := newProduced()
	produce(t, k, p, "clickstream", clickTopic, parts, 30000, from, 3, demo.Clickstream, clickID)
	produce(t, k, p, "iot", iotTopic, parts, 15000, from, 3, demo.IoT, iotID)

	cfgPath := writeConfigTables(t, k.Addr, group, s.storage, "127.0.0.1:0", s.table)
	compactionConfig(t, cfgPath)
	bin := testenv.Build(t, "./cmd/lakesink")
	proc := testenv.Start(t, "lakesink", bin, testenv.Options{Env: s.env}, "run", "-c", cfgPath)
	hours := []time.Time{from, from.Add(time.Hour), from.Add(2 * time.Hour)}
	awaitMarkersAndCommits(t, proc, s.lake, k, group, p, map[string]int{clickTopic: compactionParts, iotTopic: compactionParts}, hours)
	stopGracefully(t, proc)

	unit := time.Millisecond
	if s.table != "" {
		unit = time.Microsecond
	}
	ctx := context.Background()
	for _, stream := range []string{"clickstream", "iot"} {
		for _, h := range hours {
			folder := fmt.Sprintf("%s/dt=%s/hour=%s", stream, h.Format("2006-01-02"), h.Format("15"))
			m := readManifest(t, s.lake, folder+"/"+partitioner.MarkerName)
			if len(m.Files) != 1 || len(m.Files[0].Sources) != compactionParts {
				t.Errorf("%s: manifest lists %d files (sources of the first: %d), want one compacted file with a source per partition",
					folder, len(m.Files), len(m.Files[0].Sources))
				continue
			}
			objs, err := s.lake.List(ctx, folder+"/")
			if err != nil {
				t.Fatal(err)
			}
			var data []string
			for _, o := range objs {
				if strings.HasSuffix(o.Key, ".parquet") {
					data = append(data, o.Key)
				}
			}
			if !slices.Equal(data, []string{m.Files[0].Path}) {
				t.Errorf("%s holds %v, want only the compacted %s", folder, data, m.Files[0].Path)
			}
			if stream == "iot" {
				checkSorted(t, s, m.Files[0].Path)
			}
		}
		checkExactlyOnceUnit(t, s.lake, stream, p.valid[stream], unit)
	}
	if s.root != "" {
		checkManifestsAgainstSchema(t, s.root)
		// DuckDB reads the folders as a glob, as Athena or Spark would:
		// the same records, each once.
		for stream, id := range map[string]string{"clickstream": "event_id", "iot": "seq"} {
			rows := testenv.DuckDB(t, fmt.Sprintf("SELECT count(*)::INTEGER AS n, count(DISTINCT %s)::INTEGER AS d FROM read_parquet('%s/%s/*/*/*.parquet')", id, s.root, stream))
			if n, d := rows[0]["n"], rows[0]["d"]; n != float64(len(p.valid[stream])) || d != n {
				t.Errorf("duckdb over the %s folders: %v rows, %v distinct ids; want %d each", stream, n, d, len(p.valid[stream]))
			}
		}
	}
	if s.open != nil {
		cat := s.open(t)
		setup := icebergSetup{backend: s.backend, root: s.root, location: func(key string) string { return s.root + "/" + key }}
		for _, stream := range []string{"clickstream", "iot"} {
			checkTable(t, setup, cat, stream, p.valid[stream], hours)
			tbl, err := cat.LoadTable(ctx, table.Identifier{"lake", stream})
			if err != nil {
				t.Fatal(err)
			}
			tasks, err := tbl.Scan().PlanFiles(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(tasks) != len(hours) {
				t.Errorf("table lake.%s: %d data files in the current snapshot, want one per hour (%d)", stream, len(tasks), len(hours))
			}
		}
	}
}

// checkSorted checks that the compacted IoT file at key holds its rows in
// sort_by order: device_id, then event time.
func checkSorted(t *testing.T, s compactionSetup, key string) {
	t.Helper()
	rows, _ := readParquet(t, s.lake, key)
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1], rows[i]
		da, db := a["device_id"].(string), b["device_id"].(string)
		if da > db || (da == db && a["event_time"].(int64) > b["event_time"].(int64)) {
			t.Errorf("%s: row %d (%s, %v) after row %d (%s, %v): not sorted by device_id, event_time",
				key, i, db, b["event_time"], i-1, da, a["event_time"])
			return
		}
	}
}
