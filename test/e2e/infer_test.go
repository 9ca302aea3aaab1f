package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/test/testenv"
)

// TestInferSchema runs the binary on a schemaless JSON stream (schema:
// infer, infer_sample 10): 15 records, a bad one, then 15 with two fields
// more. The lake gets two files — the second with the widened columns in
// its footer — every record exactly once with its values, the hour marker
// listing both files, and the bad record goes to the dead-letter topic.
func TestInferSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "events", 1)

	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	base := hour.Add(5 * time.Minute)
	at := func(i int) int64 { return base.Add(time.Duration(i) * time.Second).UnixMilli() }
	var vals [][]byte
	for i := range 30 {
		v := fmt.Sprintf(`{"id":%d,"ts":%d,"user":{"name":"u-%d"},"tags":["a",%d]`, i, at(i), i%3, i)
		if i >= 15 {
			v += fmt.Sprintf(`,"coupon":"c-%d","price":%d.5`, i, i)
		}
		vals = append(vals, []byte(v+"}"))
		if i == 14 {
			vals = append(vals, []byte(`{"id":"broken`))
		}
	}
	sendValues(t, k.Addr, "events", vals)

	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  group_id: lakesink-infer
  commit_interval: 200ms
streams:
  - name: events
    topics: [events]
    time: {field: ts, format: unix_ms}
    allowed_lateness: 1m
    schema: infer
    infer_sample: 10
`, k.Addr)
	root, cfgPath := writeLocalConfig(t, t.TempDir(), cfg, "127.0.0.1:0")
	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"), testenv.Options{}, "run", "-c", cfgPath)

	folder := fmt.Sprintf("events/dt=%s/hour=%s", hour.Format("2006-01-02"), hour.Format("15"))
	lake, m := awaitLocalManifest(t, root, folder, 90*time.Second)
	if len(m.Files) != 2 || m.Records != 30 {
		t.Fatalf("manifest: %d files, %d records; want 2 files (rolled when coupon and price appeared), 30 records: %+v", len(m.Files), m.Records, m.Files)
	}
	if m.Files[0].FirstOffset != 0 || m.Files[1].FirstOffset != 16 {
		t.Errorf("files start at offsets %d and %d, want 0 and 16", m.Files[0].FirstOffset, m.Files[1].FirstOffset)
	}

	wantCols := []string{
		`[{"name":"id","type":"int64"},{"name":"tags","type":"json"},{"name":"ts","type":"int64"},{"name":"user.name","type":"string"}]`,
		`[{"name":"coupon","type":"string"},{"name":"id","type":"int64"},{"name":"price","type":"double"},{"name":"tags","type":"json"},{"name":"ts","type":"int64"},{"name":"user.name","type":"string"}]`,
	}
	var fingerprints []string
	seen := map[int64]int{}
	for fi, f := range m.Files {
		meta := footer(t, filepath.Join(root, f.Path))
		if got := meta.Extra[partitioner.MetaInferredSchema]; got != wantCols[fi] {
			t.Errorf("file %d footer columns %s, want %s", fi, got, wantCols[fi])
		}
		fingerprints = append(fingerprints, meta.Extra[partitioner.MetaSchemaFingerprint])
		rows, schema := readParquet(t, lake, f.Path)
		if got := len(schema.Columns()); got != 4+2*fi {
			t.Errorf("file %d has %d columns, want %d", fi, got, 4+2*fi)
		}
		for _, r := range rows {
			id, _ := r["id"].(int64)
			seen[id]++
			if (id < 15) != (fi == 0) {
				t.Errorf("record %d is in file %d", id, fi)
			}
			want := map[string]any{
				"ts": at(int(id)), "user.name": "u-" + strconv.FormatInt(id%3, 10),
				"tags": fmt.Sprintf(`["a",%d]`, id),
			}
			if fi == 1 {
				want["coupon"] = "c-" + strconv.FormatInt(id, 10)
				want["price"] = float64(id) + 0.5
			}
			for col, v := range want {
				if r[col] != v {
					t.Errorf("record %d: %s = %#v, want %#v", id, col, r[col], v)
				}
			}
		}
	}
	if fingerprints[0] == "" || fingerprints[0] == fingerprints[1] {
		t.Errorf("fingerprints %q: want two different ones", fingerprints)
	}
	for id := range int64(30) {
		if seen[id] != 1 {
			t.Errorf("record %d is in the lake %d times, want once", id, seen[id])
		}
	}
	checkManifestsAgainstSchema(t, root)

	dl := readDeadLetters(t, k.Addr, "events", 1)
	if want := []string{"bad_json"}; !slices.Equal(keys(dl), want) || dl["bad_json"] != `{"id":"broken` {
		t.Errorf("dead letters %v, want the broken record as bad_json", dl)
	}
	proc.Stop(20 * time.Second)
	if err := proc.ExitErr(); err != nil {
		t.Errorf("lakesink exit: %v", err)
	}
}

// footer reads the footer metadata of a local data file.
func footer(t *testing.T, path string) partitioner.FileMeta {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	_, meta, err := partitioner.ReadFileInfo(f, fi.Size())
	if err != nil {
		t.Fatalf("footer of %s: %v", path, err)
	}
	return meta
}
