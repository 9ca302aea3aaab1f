package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/tables"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
)

// TestCalendarNights runs the binary with both streams in
// America/New_York over the night clocks go back (2026-11-01: 01:00 EDT
// and 01:00 EST both render to hour=01) and the night they skip an hour
// (2026-03-08: no 02:00), on a local lake and on S3, with late records for
// the repeated hour. Every record is read exactly once through the
// manifests, every folder of the night has a marker, the repeated hour's
// folder has one manifest covering both buckets, there is no folder for
// the skipped hour, and nothing is outside the manifests. With one
// manifest per bucket and the bucket-blind orphan rule, the first 01:00
// hour's files were deleted as orphans of the second's.
func TestCalendarNights(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	nights := []struct {
		name string
		from time.Time // six hours of events from here
		late bool      // late records for the repeated hour, after the rest
	}{
		{"fall back", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), true},
		{"spring forward", time.Date(2026, 3, 8, 4, 0, 0, 0, time.UTC), false},
	}
	for _, b := range backends[:2] { // local, s3
		t.Run(b.name, func(t *testing.T) {
			for _, night := range nights {
				t.Run(night.name, func(t *testing.T) {
					runCalendarNight(t, b.open(t), night.from, night.late, nil)
				})
			}
		})
	}
	// Streams with an Iceberg table (SQLite catalog): each bucket is one
	// UTC hour partition, the repeated hour's folder is completed through
	// the end of its second bucket.
	t.Run("local-table", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "lake")
		tbl := &calendarTable{db: filepath.Join(t.TempDir(), "catalog.db"), root: root}
		runCalendarNight(t, localBackendAt(t, root), nights[0].from, nights[0].late, tbl)
	})
}

// calendarTable is the streams' Iceberg tables in an SQLite catalog over a
// local lake.
type calendarTable struct{ db, root string }

// runCalendarNight runs one night; with tbl, the streams have Iceberg
// tables, checked too.
func runCalendarNight(t *testing.T, b backend, from time.Time, late bool, tbl *calendarTable) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	k := testenv.StartKafka(t)
	const clickTopic, iotTopic, clickParts, iotParts, group = "clickstream", "iot-telemetry", 6, 4, "lakesink-calendar"
	k.CreateTopic(t, clickTopic, clickParts)
	k.CreateTopic(t, iotTopic, iotParts)
	p := newProduced()
	produce(t, k, p, "clickstream", clickTopic, []int{0, 1, 2, 3, 4, 5}, 6000, from, 6, demo.Clickstream, clickID)
	produce(t, k, p, "iot", iotTopic, []int{0, 1, 2, 3}, 3000, from, 6, demo.IoT, iotID)

	table := ""
	if tbl != nil {
		table = fmt.Sprintf("      format: iceberg\n      namespace: lake\n      name: %%s\n      catalog: {type: sql, uri: %q}\n", tbl.db)
	}
	cfgPath := writeConfigTables(t, k.Addr, group, b.storage, "127.0.0.1:0", table)
	editConfig(t, cfgPath,
		"format: unix_ms}", "format: unix_ms, timezone: America/New_York}",
		"format: rfc3339, timezone: UTC}", "format: rfc3339, timezone: America/New_York}")

	bin := testenv.Build(t, "./cmd/lakesink")
	proc := testenv.Start(t, "lakesink", bin, testenv.Options{Env: b.env}, "run", "-c", cfgPath)

	tmpl, err := partitioner.ParsePathTemplate("{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}")
	if err != nil {
		t.Fatal(err)
	}
	var folders []string // every folder of the night, once
	for h := partitioner.HourOf(from, ny); h.Before(from.Add(6 * time.Hour)); h = partitioner.NextHour(h, ny) {
		if f := tmpl.Render("S", h); len(folders) == 0 || folders[len(folders)-1] != f {
			folders = append(folders, f)
		}
	}
	ctx := context.Background()
	topics := map[string]int{clickTopic: clickParts, iotTopic: iotParts}
	settled := func() error {
		select {
		case <-proc.Done():
			return fmt.Errorf("lakesink exited: %v", proc.ExitErr())
		default:
		}
		for _, s := range []string{"clickstream", "iot"} {
			for _, f := range folders {
				key := strings.Replace(f, "S", s, 1) + "/_SUCCESS"
				if ok, err := b.lake.Exists(ctx, key); err != nil || !ok {
					return fmt.Errorf("no marker %s (%v)", key, err)
				}
			}
			if err := allListed(ctx, t, b.lake, s); err != nil {
				return err
			}
		}
		for topic, n := range topics {
			high := k.HighWatermarks(t, topic, n)
			committed, _, err := k.TryCommittedOffsets(group, topic, n)
			if err != nil {
				return err
			}
			for part := range n {
				if high[part] > 0 && committed[part] != high[part] {
					return fmt.Errorf("%s/%d: committed %d, high watermark %d", topic, part, committed[part], high[part])
				}
			}
		}
		return nil
	}
	testenv.Eventually(t, 3*time.Minute, 500*time.Millisecond, "markers, commits and every file listed", settled)
	day := from.In(ny).Add(3 * time.Hour).Format("2006-01-02")
	if late {
		// After the repeated hour's marker: late records of both 01:00
		// hours (05:00-07:00 UTC), amendments of the one folder.
		produce(t, k, p, "clickstream", clickTopic, []int{0, 1, 2, 3, 4, 5}, 600, from.Add(2*time.Hour), 2, demo.Clickstream, clickID)
		key := fmt.Sprintf("clickstream/dt=%s/hour=01/_SUCCESS", day)
		testenv.Eventually(t, 3*time.Minute, 500*time.Millisecond, "the late records' revision", func() error {
			if err := settled(); err != nil {
				return err
			}
			if m := readManifest(t, b.lake, key); m.Revision < 2 {
				return fmt.Errorf("%s: revision %d", key, m.Revision)
			}
			return nil
		})
	}
	stopGracefully(t, proc)

	unit := time.Millisecond
	if tbl != nil {
		unit = time.Microsecond // Iceberg stores micros
	}
	for _, stream := range []string{"clickstream", "iot"} {
		checkExactlyOnceUnit(t, b.lake, stream, p.valid[stream], unit)
	}
	// The night's folders as Airflow sees them.
	for _, s := range []string{"clickstream", "iot"} {
		f01 := fmt.Sprintf("%s/dt=%s/hour=01/_SUCCESS", s, day)
		m := readManifest(t, b.lake, f01)
		if want := map[bool]int{true: 2, false: 1}[late]; len(m.Ranges) != want {
			t.Errorf("%s: %d ranges %v, want %d", f01, len(m.Ranges), m.Ranges, want)
		}
		if late && s == "clickstream" && m.Revision < 2 {
			t.Errorf("%s: revision %d, want at least 2 after the late records", f01, m.Revision)
		}
		if !late {
			objs, err := b.lake.List(ctx, fmt.Sprintf("%s/dt=%s/hour=02/", s, day))
			if err != nil || len(objs) != 0 {
				t.Errorf("%s: a folder for the skipped hour 02: %v %v", s, objs, err)
			}
		}
	}
	if tbl != nil {
		checkCalendarTables(t, b.lake, tbl, p, day)
	}
	// lakesink audit proves the night's lake (and tables) consistent: every
	// file in exactly one manifest, no offset range twice within a bucket,
	// no listed file missing, no hour past its lateness without a marker.
	if code, r := runAudit(t, bin, b.env, "--config", cfgPath, "--from", from.Format(time.RFC3339),
		"--to", from.Add(6*time.Hour).Format(time.RFC3339)); code != 0 {
		t.Errorf("lakesink audit: exit %d, findings %+v", code, r.Findings)
	}
}

// allListed returns an error naming a data file of stream that no
// _SUCCESS manifest lists (yet).
func allListed(ctx context.Context, t *testing.T, lake writers.Writer, stream string) error {
	objs, err := lake.List(ctx, stream+"/")
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, "/"+partitioner.MarkerName) {
			for _, f := range readManifest(t, lake, o.Key).Files {
				listed[f.Path] = true
			}
		}
	}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".parquet") && !listed[o.Key] {
			return fmt.Errorf("%s is in no manifest yet", o.Key)
		}
	}
	return nil
}

// checkCalendarTables reads the streams' tables: every valid record once,
// the tables' files exactly the manifests' files, and the repeated hour's
// manifest names the snapshot that completed the stream through the end of
// its second bucket, and the first bucket's table partition.
func checkCalendarTables(t *testing.T, lake writers.Writer, tbl *calendarTable, p *produced, day string) {
	t.Helper()
	ctx := context.Background()
	cat := openSQLCatalog(t, tbl.db, nil)
	for _, stream := range []string{"clickstream", "iot"} {
		tb, err := cat.LoadTable(ctx, table.Identifier{"lake", stream})
		if err != nil {
			t.Fatalf("load table lake.%s: %v", stream, err)
		}
		seen, rows := scanColumn(t, tb, map[string]string{"clickstream": "event_id", "iot": "seq"}[stream])
		if rows != len(p.valid[stream]) || len(seen) != len(p.valid[stream]) {
			t.Errorf("table lake.%s: %d rows, %d distinct ids, want %d records once", stream, rows, len(seen), len(p.valid[stream]))
		}
		for id := range p.valid[stream] {
			if seen[id] != 1 {
				t.Errorf("table lake.%s: record %s %d times", stream, id, seen[id])
				break
			}
		}
		tasks, err := tb.Scan().PlanFiles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		inTable := map[string]int{}
		for _, task := range tasks {
			inTable[task.File.FilePath()]++
		}
		objs, err := lake.List(ctx, stream+"/")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if !strings.HasSuffix(o.Key, "/"+partitioner.MarkerName) {
				continue
			}
			for _, f := range readManifest(t, lake, o.Key).Files {
				if inTable[tbl.root+"/"+f.Path] != 1 {
					t.Errorf("%s lists %s, referenced %d times by the table", o.Key, f.Path, inTable[tbl.root+"/"+f.Path])
				}
				delete(inTable, tbl.root+"/"+f.Path)
			}
		}
		for f := range inTable {
			t.Errorf("table lake.%s references %s, which no manifest lists", stream, f)
		}
		key := fmt.Sprintf("%s/dt=%s/hour=01/_SUCCESS", stream, day)
		m := readManifest(t, lake, key)
		first, _ := time.Parse(time.RFC3339, m.Ranges[0].Start)
		if got := m.TablePartition[map[string]string{"clickstream": "ts_hour", "iot": "event_time_hour"}[stream]]; got != first.Unix()/3600 {
			t.Errorf("%s: table partition %d, want %d", key, got, first.Unix()/3600)
		}
		if m.Revision == 1 {
			snap := tb.Metadata().SnapshotByID(m.SnapshotID)
			if snap == nil {
				t.Fatalf("%s: snapshot %d not in the table", key, m.SnapshotID)
			}
			if ct, want := snap.Summary.Properties[tables.PropCompleteThrough], m.Ranges[len(m.Ranges)-1].End; ct != want {
				t.Errorf("%s: snapshot %d complete through %s, want the end of the folder's last bucket %s", key, m.SnapshotID, ct, want)
			}
		}
	}
}
