package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/hamba/avro/v2"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/tables"
	"github.com/lakesink/lakesink/test/schemaregistry"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/local"
)

// icebergSetup is a lake with a catalog: the table: block of the config,
// and how the test opens the same catalog to read the tables back.
type icebergSetup struct {
	backend
	table string // the table: block, %s = stream name
	open  func(t *testing.T) catalog.Catalog
	rest  *testenv.IcebergREST // nil for sql
	root  string               // a local lake's root; else ""
	// location is the URL the table references lake key by.
	location func(key string) string
}

// TestIceberg runs clickstream and IoT into Iceberg tables through the
// built binary: an SQLite catalog over the local lake, and the REST catalog
// test server over S3 (versitygw). The tables, read back with iceberg-go's
// scan, hold every valid record exactly once; the manifests name the
// table, the snapshot that completed the hour and its partition value.
func TestIceberg(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	t.Run("sqlite-local", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "lake")
		b := localBackendAt(t, root)
		dbPath := filepath.Join(t.TempDir(), "catalog.db")
		runIceberg(t, icebergSetup{backend: b, root: root, location: func(key string) string { return root + "/" + key },
			table: fmt.Sprintf("      format: iceberg\n      namespace: lake\n      name: %%s\n      catalog: {type: sql, uri: %q}\n", dbPath),
			open: func(t *testing.T) catalog.Catalog {
				return openSQLCatalog(t, dbPath, nil)
			}})
	})
	t.Run("sqlite-gcs", func(t *testing.T) {
		// iceberg-go's GCS file IO writes the table metadata to
		// fake-gcs-server, with lakesink's storage.gcs settings.
		b := gcsBackend(t)
		dbPath := filepath.Join(t.TempDir(), "catalog.db")
		runIceberg(t, icebergSetup{backend: b, location: func(key string) string { return "gs://lake/events/" + key },
			table: fmt.Sprintf("      format: iceberg\n      namespace: lake\n      name: %%s\n      catalog: {type: sql, uri: %q}\n", dbPath),
			open: func(t *testing.T) catalog.Catalog {
				return openSQLCatalog(t, dbPath, iceberg.Properties{iceio.GCSEndpoint: b.gcsEndpoint + "/storage/v1/", iceio.GCSNoAuth: "true"})
			}})
	})
	t.Run("rest-s3", func(t *testing.T) {
		runIceberg(t, restS3Setup(t, s3Backend(t)))
	})
}

// restS3Setup puts the REST catalog's warehouse in the S3 lake's bucket.
func restS3Setup(t *testing.T, b backend) icebergSetup {
	s3 := b.s3
	props := iceberg.Properties{
		iceio.S3EndpointURL: s3.Endpoint, iceio.S3Region: s3.Region,
		iceio.S3AccessKeyID: s3.AccessKey, iceio.S3SecretAccessKey: s3.SecretKey,
	}
	rc := testenv.StartIcebergREST(t, "s3://lake/events/_warehouse", props)
	return icebergSetup{backend: b, rest: rc, location: func(key string) string { return "s3://lake/events/" + key },
		table: fmt.Sprintf("      format: iceberg\n      namespace: lake\n      name: %%s\n      catalog: {type: rest, uri: %q, token: \"${E2E_ICEBERG_TOKEN}\"}\n", rc.URL),
		open: func(t *testing.T) catalog.Catalog {
			cat, err := rest.NewCatalog(context.Background(), "e2e", rc.URL, rest.WithOAuthToken(rc.Token), rest.WithAdditionalProps(props))
			if err != nil {
				t.Fatal(err)
			}
			return cat
		}}
}

func runIceberg(t *testing.T, s icebergSetup) {
	k := testenv.StartKafka(t)
	const clickTopic, iotTopic, group = "clickstream", "iot-telemetry", "lakesink-iceberg"
	k.CreateTopic(t, clickTopic, 4)
	k.CreateTopic(t, iotTopic, 3)
	from := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	p := newProduced()
	produce(t, k, p, "clickstream", clickTopic, []int{0, 1, 2, 3}, 8000, from, 3, demo.Clickstream, clickID)
	produce(t, k, p, "iot", iotTopic, []int{0, 1, 2}, 4000, from, 3, demo.IoT, iotID)

	env := s.env
	if s.rest != nil {
		env = append(env, "E2E_ICEBERG_TOKEN="+s.rest.Token)
		// The first commits lose the compare-and-swap (409), as if another
		// writer had committed: lakesink reloads and retries.
		s.rest.FailCommits(3)
	}
	cfgPath := writeConfigTables(t, k.Addr, group, s.storage, "127.0.0.1:0", s.table)
	bin := testenv.Build(t, "./cmd/lakesink")
	proc := testenv.Start(t, "lakesink", bin, testenv.Options{Env: env}, "run", "-c", cfgPath)

	hours := []time.Time{from, from.Add(time.Hour), from.Add(2 * time.Hour)}
	awaitMarkersAndCommits(t, proc, s.lake, k, group, p, map[string]int{clickTopic: 4, iotTopic: 3}, hours)
	stopGracefully(t, proc)

	if s.root != "" {
		checkManifestsAgainstSchema(t, s.root)
	}
	checkTableEvents(t, s, k.Addr)
	cat := s.open(t)
	for _, stream := range []string{"clickstream", "iot"} {
		checkExactlyOnceUnit(t, s.lake, stream, p.valid[stream], time.Microsecond)
		checkTable(t, s, cat, stream, p.valid[stream], hours)
	}
	// lakesink audit reads the same lake and tables: nothing to report.
	if code, r := runAudit(t, bin, env, "--config", cfgPath, "--from", from.Format(time.RFC3339), "--to", from.Add(3*time.Hour).Format(time.RFC3339)); code != 0 || r.Streams[0].Table != "lake.clickstream" || r.Streams[0].TableFiles != r.Streams[0].Files {
		t.Errorf("lakesink audit: exit %d, %+v", code, r)
	}
	if s.rest != nil {
		var commits, conflicts int
		for _, r := range s.rest.Requests() {
			if strings.HasPrefix(r, "POST /v1/namespaces/lake/tables/") {
				commits++
				if strings.HasSuffix(r, "-> 409") {
					conflicts++
				}
			}
		}
		t.Logf("REST catalog: %d table commits, %d answered 409", commits, conflicts)
		if conflicts != 3 {
			t.Errorf("%d commits answered 409, want the 3 injected", conflicts)
		}
	}
}

// checkTable reads stream's table back: every valid record exactly once,
// the data files exactly those the manifests list, and each manifest names
// a snapshot of the table that records the hour's completion.
func checkTable(t *testing.T, s icebergSetup, cat catalog.Catalog, stream string, valid map[string]int64, hours []time.Time) {
	t.Helper()
	ctx := context.Background()
	tbl, err := cat.LoadTable(ctx, table.Identifier{"lake", stream})
	if err != nil {
		t.Fatalf("load table lake.%s: %v", stream, err)
	}
	idCol := map[string]string{"clickstream": "event_id", "iot": "seq"}[stream]
	seen, rows := scanColumn(t, tbl, idCol)
	lost, dup, extra := 0, 0, 0
	for id := range valid {
		switch seen[id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	for id := range seen {
		if _, ok := valid[id]; !ok {
			extra++
		}
	}
	if lost+dup+extra > 0 || rows != len(valid) {
		t.Errorf("table lake.%s: %d rows for %d valid records: %d lost, %d duplicated, %d unexpected", stream, rows, len(valid), lost, dup, extra)
	}

	// The table's files are the manifests' files.
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]bool{}
	for _, task := range tasks {
		p := task.File.FilePath()
		if inTable[p] {
			t.Errorf("table lake.%s references %s twice", stream, p)
		}
		inTable[p] = true
	}
	for _, h := range hours {
		key := fmt.Sprintf("%s/dt=%s/hour=%s/%s", stream, h.Format("2006-01-02"), h.Format("15"), partitioner.MarkerName)
		m := readManifest(t, s.lake, key)
		if m.Table != "lake."+stream || m.SnapshotID == 0 || m.TablePartition[map[string]string{"clickstream": "ts_hour", "iot": "event_time_hour"}[stream]] != h.Unix()/3600 {
			t.Errorf("%s: table %q snapshot %d partition %v", key, m.Table, m.SnapshotID, m.TablePartition)
		}
		snap := tbl.Metadata().SnapshotByID(m.SnapshotID)
		if snap == nil {
			t.Errorf("%s: snapshot %d is not in the table", key, m.SnapshotID)
		} else if ct := snap.Summary.Properties[tables.PropCompleteThrough]; m.Revision == 1 && ct != h.Add(time.Hour).Format(time.RFC3339) {
			t.Errorf("%s: snapshot %d says %s %q, want %s", key, m.SnapshotID, tables.PropCompleteThrough, ct, h.Add(time.Hour).Format(time.RFC3339))
		}
		for _, f := range m.Files {
			if !inTable[s.location(f.Path)] {
				t.Errorf("%s lists %s, which the table does not reference", key, f.Path)
			}
			delete(inTable, s.location(f.Path))
		}
	}
	for p := range inTable {
		t.Errorf("table lake.%s references %s, which no manifest lists", stream, p)
	}
}

// checkTableEvents reads the completion topic: every event of a stream with
// a table names the table, its hour's partition value and the snapshot of
// the manifest of the same hour and revision.
func checkTableEvents(t *testing.T, s icebergSetup, broker string) {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: eventsTopic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			break
		}
		var ev completion.Event
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatalf("event %s: %v", m.Value, err)
		}
		n++
		man := readManifest(t, s.lake, ev.Marker)
		if ev.Table != "lake."+ev.Stream || ev.SnapshotID == 0 || len(ev.TablePartition) != 1 {
			t.Errorf("event %s rev %d: table %q snapshot %d partition %v", ev.Marker, ev.Revision, ev.Table, ev.SnapshotID, ev.TablePartition)
		}
		if ev.Revision == man.Revision && ev.SnapshotID != man.SnapshotID {
			t.Errorf("event %s rev %d names snapshot %d, its manifest %d", ev.Marker, ev.Revision, ev.SnapshotID, man.SnapshotID)
		}
	}
	if n < 6 {
		t.Errorf("%d completion events, want at least one per stream and hour (6)", n)
	}
}

// orderV3Schema changes id from long to string: Avro resolution would
// refuse it, a registry with compatibility NONE accepts it, and the table
// cannot read it as the same column.
const orderV3Schema = `{"type": "record", "name": "Order", "namespace": "shop", "fields": [
  {"name": "id", "type": "string"},
  {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
]}`

// TestIcebergSchemaEvolution runs an Avro stream whose columns come from
// each writer schema into a table: v1 and v2 (an added optional field)
// interleaved on the same partition evolve the table, every record reads
// back once with v1's rows null in the new column, and v3 (a type the
// table cannot take) goes to the dead-letter topic, nothing lost.
func TestIcebergSchemaEvolution(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "orders", 1)
	reg := testenv.StartRegistry(t, schemaregistry.Options{})
	v1 := reg.Register("orders-value", "AVRO", orderV1Schema)
	v2 := reg.Register("orders-value", "AVRO", orderV2Schema)
	v3 := reg.Register("orders-value", "AVRO", orderV3Schema)
	s1, s2, s3 := avro.MustParse(orderV1Schema), avro.MustParse(orderV2Schema), avro.MustParse(orderV3Schema)

	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	coupons := map[int64]string{}
	bad := map[string][]byte{}
	var msgs [][]byte
	for i := range int64(60) {
		at := hour.Add(5*time.Minute + time.Duration(i)*time.Second)
		o1 := orderV1{ID: i, CreatedAt: at, SeenUs: at, Day: at.Truncate(24 * time.Hour), Device: avroDevice{ID: "d"}}
		var body []byte
		var err error
		switch i % 3 {
		case 0:
			body, err = avro.Marshal(s1, o1)
			body = append(confluent.Header(v1), body...)
		case 1:
			c := fmt.Sprint("c-", i)
			coupons[i] = c
			body, err = avro.Marshal(s2, orderV2{ID: i, CreatedAt: at, SeenUs: at, Day: o1.Day, Device: o1.Device, Coupon: &c})
			body = append(confluent.Header(v2), body...)
		default:
			body, err = avro.Marshal(s2, orderV2{ID: i, CreatedAt: at, SeenUs: at, Day: o1.Day, Device: o1.Device})
			body = append(confluent.Header(v2), body...)
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, body)
		if i == 30 {
			b, err := avro.Marshal(s3, map[string]any{"id": "x-30", "created_at": at})
			if err != nil {
				t.Fatal(err)
			}
			bad["incompatible_schema"] = append(confluent.Header(v3), b...)
			msgs = append(msgs, bad["incompatible_schema"])
		}
	}
	sendValues(t, k.Addr, "orders", msgs)

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "catalog.db")
	root, cfgPath := writeLocalConfig(t, dir, fmt.Sprintf(`kafka:
  brokers: [%q]
  group_id: lakesink-evolution
  commit_interval: 200ms
schema_registry: {url: %q}
streams:
  - name: orders
    topics: [orders]
    format: avro
    time: {field: created_at}
    allowed_lateness: 1m
    table: {format: iceberg, namespace: lake, catalog: {type: sql, uri: %q}}
`, k.Addr, reg.URL, dbPath), "127.0.0.1:0")
	testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"), testenv.Options{}, "run", "-c", cfgPath)
	folder := fmt.Sprintf("orders/dt=%s/hour=%s", hour.Format("2006-01-02"), hour.Format("15"))
	testenv.Eventually(t, 90*time.Second, 250*time.Millisecond, "orders marker", func() error {
		_, err := os.Stat(filepath.Join(root, folder, "_SUCCESS"))
		return err
	})
	checkDeadLettered(t, k.Addr, "orders", bad)

	cat := openSQLCatalog(t, dbPath, nil)
	tbl, err := cat.LoadTable(context.Background(), table.Identifier{"lake", "orders"})
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"id", "created_at", "seen_us", "day", "device.id", "coupon"} {
		if _, ok := tbl.Schema().FindFieldByName(col); !ok {
			t.Errorf("table schema lacks %s: %s", col, tbl.Schema())
		}
	}
	if f, _ := tbl.Schema().FindFieldByName("coupon"); f.Required {
		t.Errorf("coupon is required in the table")
	}
	at, err := tbl.Scan(table.WithSelectedFields("id", "coupon")).ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	seen := map[int64]int{}
	// Columns are chunked alike: one chunk per file.
	ids, cps := at.Column(0).Data().Chunks(), at.Column(1).Data().Chunks()
	for c := range ids {
		for i := 0; i < ids[c].Len(); i++ {
			id, _ := strconv.ParseInt(ids[c].ValueStr(i), 10, 64)
			seen[id]++
			want, has := coupons[id]
			got := cps[c].ValueStr(i)
			if has && got != want || !has && !cps[c].IsNull(i) {
				t.Errorf("order %d: coupon %q (null %v), want %q", id, got, cps[c].IsNull(i), want)
			}
		}
	}
	for i := range int64(60) {
		if seen[i] != 1 {
			t.Errorf("order %d in the table %d times", i, seen[i])
		}
	}
	if len(seen) != 60 {
		t.Errorf("table holds %d orders, want 60", len(seen))
	}
	// The two interleaved versions share the hour's one file, whose
	// columns (their union) map to the table's field ids.
	m := readManifest(t, mustLocal(t, root), folder+"/_SUCCESS")
	if len(m.Files) != 1 || m.Records != 60 || !slices.Equal(m.Files[0].SchemaIDs, []int{v1, v2}) {
		t.Errorf("manifest: %d files, %d records, %+v; want one file of 60 records with schema ids [%d %d]", len(m.Files), m.Records, m.Files, v1, v2)
	}
}

// openSQLCatalog opens lakesink's SQLite catalog at path for the test.
func openSQLCatalog(t *testing.T, path string, props iceberg.Properties) catalog.Catalog {
	t.Helper()
	cat, closeCat, err := tables.OpenSQLCatalog(path, props)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeCat() })
	return cat
}

// scanColumn reads column col of the table with iceberg-go's scan and
// returns how many times each value is there, and the row count.
func scanColumn(t *testing.T, tbl *table.Table, col string) (map[string]int, int) {
	t.Helper()
	at, err := tbl.Scan(table.WithSelectedFields(col)).ToArrowTable(context.Background())
	if err != nil {
		t.Fatalf("scan %s: %v", col, err)
	}
	defer at.Release()
	seen := map[string]int{}
	for _, chunk := range at.Column(0).Data().Chunks() {
		for i := 0; i < chunk.Len(); i++ {
			seen[chunk.ValueStr(i)]++
		}
	}
	return seen, int(at.NumRows())
}

func mustLocal(t *testing.T, root string) writers.Writer {
	t.Helper()
	w, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestIcebergCatalogOutage takes the REST catalog down (every request 503)
// while files wait for their table commit: the offsets stay behind the
// files, /readyz names the catalog, nothing is dead-lettered or lost; once
// the catalog is back every record is in the table exactly once.
func TestIcebergCatalogOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	const outage = 10 * time.Second
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "clickstream", 3)
	k.CreateTopic(t, "iot-telemetry", 1)
	group := "lakesink-catalog-outage"
	b := localBackend(t)
	rc := testenv.StartIcebergREST(t, "file://"+filepath.Join(t.TempDir(), "warehouse"), nil)
	tableBlock := fmt.Sprintf("      format: iceberg\n      namespace: lake\n      catalog: {type: rest, uri: %q, token: %q}\n", rc.URL, rc.Token)
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	cfgPath := writeConfigTables(t, k.Addr, group, b.storage, httpAddr, tableBlock)
	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"), testenv.Options{}, "run", "-c", cfgPath)

	from := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	p := newProduced()
	produce(t, k, p, "clickstream", "clickstream", []int{0, 1, 2}, 3000, from, 1, demo.Clickstream, clickID)
	waitCommitted(t, k, group, "clickstream", 3, p, 2*time.Minute)

	rc.SetUnavailable(true)
	down := time.Now()
	before := map[int]int{}
	for part, n := range p.perPart["clickstream"] {
		before[part] = n
	}
	produce(t, k, p, "clickstream", "clickstream", []int{0, 1, 2}, 3000, from.Add(time.Hour), 2, demo.Clickstream, clickID)
	testenv.Eventually(t, outage, 250*time.Millisecond, "/readyz naming the catalog", func() error {
		code, body := httpGet(httpAddr, "/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "table of stream clickstream: catalog commits failing") {
			return nil
		}
		return fmt.Errorf("/readyz: %d %s", code, body)
	})
	if d := time.Until(down.Add(outage)); d > 0 {
		time.Sleep(d)
	}
	committed, _ := k.CommittedOffsets(t, group, "clickstream", 3)
	for part := 0; part < 3; part++ {
		if committed[part] > int64(before[part]) {
			t.Errorf("partition %d committed to %d while its files were not in the table (%d before the outage)", part, committed[part], before[part])
		}
	}
	rc.SetUnavailable(false)
	waitCommitted(t, k, group, "clickstream", 3, p, 2*time.Minute)
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, "/readyz recovering", func() error {
		if code, body := httpGet(httpAddr, "/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	if m, err := opsScrape("http://" + httpAddr); err != nil {
		t.Error(err)
	} else if n := m.sum("lakesink_dependency_errors_total", `dependency="catalog"`); n == 0 {
		t.Error(`lakesink_dependency_errors_total{dependency="catalog"} is 0 after the outage`)
	}
	proc.Stop(30 * time.Second)
	if err := proc.ExitErr(); err != nil {
		t.Errorf("lakesink exit: %v", err)
	}
	cat, err := rest.NewCatalog(context.Background(), "e2e", rc.URL, rest.WithOAuthToken(rc.Token))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := cat.LoadTable(context.Background(), table.Identifier{"lake", "clickstream"})
	if err != nil {
		t.Fatal(err)
	}
	seen, _ := scanColumn(t, tbl, "event_id")
	for id := range p.valid["clickstream"] {
		if seen[id] != 1 {
			t.Errorf("record %s in the table %d times", id, seen[id])
		}
	}
	if len(seen) != len(p.valid["clickstream"]) {
		t.Errorf("table holds %d records, %d valid produced", len(seen), len(p.valid["clickstream"]))
	}
}
