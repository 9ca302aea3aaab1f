package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/test/faultproxy"
	"github.com/lakesink/lakesink/test/schemaregistry"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers/local"
)

const (
	orderV1Schema = `{"type": "record", "name": "Order", "namespace": "shop", "fields": [
  {"name": "id", "type": "long"},
  {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "seen_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "day", "type": {"type": "int", "logicalType": "date"}},
  {"name": "device", "type": {"type": "record", "name": "Device", "fields": [{"name": "id", "type": "string"}]}}
]}`
	// v2 adds an optional field with a default: a compatible change.
	orderV2Schema = `{"type": "record", "name": "Order", "namespace": "shop", "fields": [
  {"name": "id", "type": "long"},
  {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "seen_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "day", "type": {"type": "int", "logicalType": "date"}},
  {"name": "device", "type": {"type": "record", "name": "Device", "fields": [{"name": "id", "type": "string"}]}},
  {"name": "coupon", "type": ["null", "string"], "default": null}
]}`
	readingProto = `syntax = "proto3";
package iot;
import "google/protobuf/timestamp.proto";
message Reading {
  string device = 1;
  google.protobuf.Timestamp event_time = 2;
  double temp = 3;
  int64 seq = 4;
}
`
	// readingProtoV2 adds a field: producers of both versions write the
	// topic during a rolling deploy.
	readingProtoV2 = `syntax = "proto3";
package iot;
import "google/protobuf/timestamp.proto";
message Reading {
  string device = 1;
  google.protobuf.Timestamp event_time = 2;
  double temp = 3;
  int64 seq = 4;
  string firmware = 5;
}
`
)

type avroDevice struct {
	ID string `avro:"id"`
}

type orderV1 struct {
	ID        int64      `avro:"id"`
	CreatedAt time.Time  `avro:"created_at"`
	SeenUs    time.Time  `avro:"seen_us"`
	Day       time.Time  `avro:"day"`
	Device    avroDevice `avro:"device"`
}

type orderV2 struct {
	ID        int64      `avro:"id"`
	CreatedAt time.Time  `avro:"created_at"`
	SeenUs    time.Time  `avro:"seen_us"`
	Day       time.Time  `avro:"day"`
	Device    avroDevice `avro:"device"`
	Coupon    *string    `avro:"coupon"`
}

// TestFormatsAvroProtobuf runs an Avro stream (columns derived from the
// writer schema, v1 and v2 interleaved within an hour as during a rolling
// deploy of the producers) and a Protobuf stream (columns from the config,
// two interleaved writer schemas too) through the binary with a Schema
// Registry behind basic auth, and checks that each hour is one file of
// both versions, the rows through the manifests, the Parquet logical
// types, the schema ids per file and the dead letters of bad
// Confluent-framed records. Next to them it runs the writer schema version
// cases of versions_test.go (Avro with a list, an incompatible change
// within an hour, a version new after a file's sample, Protobuf derived).
func TestFormatsAvroProtobuf(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "orders", 1)
	k.CreateTopic(t, "readings", 1)
	reg := testenv.StartRegistry(t, schemaregistry.Options{Username: "sr-user", Password: "sr-pass"})
	v1 := reg.Register("orders-value", "AVRO", orderV1Schema)
	v2 := reg.Register("orders-value", "AVRO", orderV2Schema)
	pid := reg.Register("readings-value", "PROTOBUF", readingProto)
	pid2 := reg.Register("readings-value", "PROTOBUF", readingProtoV2)
	if v1 == v2 {
		t.Fatalf("v1 and v2 got the same id %d", v1)
	}

	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	base := hour.Add(5 * time.Minute)

	// Orders: 40 records, v1 and v2 in turn, three bad records after the
	// 20th, all in one hour.
	s1, s2 := avro.MustParse(orderV1Schema), avro.MustParse(orderV2Schema)
	type wantOrder struct {
		at     time.Time
		coupon any
	}
	wantOrders := map[int64]wantOrder{}
	bad := badRecords(t, s1, v1)
	var orderMsgs [][]byte
	for i := range int64(40) {
		at := base.Add(time.Duration(i) * time.Second).Add(123 * time.Millisecond)
		o1 := orderV1{ID: i, CreatedAt: at, SeenUs: at.Add(456 * time.Microsecond), Day: at.Truncate(24 * time.Hour), Device: avroDevice{ID: "dev-" + strconv.FormatInt(i%3, 10)}}
		var body []byte
		var err error
		w := wantOrder{at: at}
		if i%2 == 0 {
			body, err = avro.Marshal(s1, o1)
			body = append(confluent.Header(v1), body...)
		} else {
			o2 := orderV2{ID: o1.ID, CreatedAt: o1.CreatedAt, SeenUs: o1.SeenUs, Day: o1.Day, Device: o1.Device}
			if i%4 == 1 {
				c := "c-" + strconv.FormatInt(i, 10)
				o2.Coupon, w.coupon = &c, c
			}
			body, err = avro.Marshal(s2, o2)
			body = append(confluent.Header(v2), body...)
		}
		if err != nil {
			t.Fatal(err)
		}
		wantOrders[i] = w
		orderMsgs = append(orderMsgs, body)
		if i == 19 {
			for _, reason := range []string{"unknown_schema", "truncated", "bad_magic"} {
				orderMsgs = append(orderMsgs, bad[reason])
			}
		}
	}

	// Readings: 25 Protobuf records in the same hour, v1 and v2 in turn.
	var readingMsgs [][]byte
	for i := range int64(25) {
		at := base.Add(time.Duration(i)*time.Second + 789*time.Microsecond)
		id := []int{pid, pid2}[i%2]
		body := append(confluent.Header(id), 0) // message indexes [0]
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendString(body, "sensor-"+strconv.FormatInt(i%4, 10))
		var ts []byte
		ts = protowire.AppendTag(ts, 1, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(at.Unix()))
		ts = protowire.AppendTag(ts, 2, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(at.Nanosecond()))
		body = protowire.AppendTag(body, 2, protowire.BytesType)
		body = protowire.AppendBytes(body, ts)
		body = protowire.AppendTag(body, 3, protowire.Fixed64Type)
		body = protowire.AppendFixed64(body, uint64(0x4035000000000000)) // 21.0
		body = protowire.AppendTag(body, 4, protowire.VarintType)
		body = protowire.AppendVarint(body, uint64(i))
		if id == pid2 {
			body = protowire.AppendTag(body, 5, protowire.BytesType)
			body = protowire.AppendString(body, "fw-"+strconv.FormatInt(i, 10))
		}
		readingMsgs = append(readingMsgs, body)
	}
	sendValues(t, k.Addr, "orders", orderMsgs)
	sendValues(t, k.Addr, "readings", readingMsgs)
	// The writer schema version cases: Avro with a column list, Avro with
	// an incompatible change within the hour, Avro with a version new after
	// a file's sample, the readings with derived columns.
	cases := []versionCase{avroListCase(t, reg, base), avroIncompatibleCase(t, reg, base), avroRollCase(t, reg, base),
		protobufDerivedCase(readingMsgs, pid, pid2, base)}
	sendVersionCases(t, k, cases)

	root, cfgPath := formatsConfig(t, k.Addr, reg.URL, "127.0.0.1:0", cases...)
	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"),
		testenv.Options{Env: []string{"SR_PASSWORD=sr-pass"}}, "run", "-c", cfgPath)

	lake, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	folder := func(stream string) string {
		return fmt.Sprintf("%s/dt=%s/hour=%s", stream, hour.Format("2006-01-02"), hour.Format("15"))
	}
	manifests := map[string]completion.Manifest{}
	for _, stream := range []string{"orders", "readings"} {
		testenv.Eventually(t, 90*time.Second, 250*time.Millisecond, stream+" marker", func() error {
			if _, err := os.Stat(filepath.Join(root, folder(stream), "_SUCCESS")); err != nil {
				return err
			}
			return nil
		})
		manifests[stream] = readManifest(t, lake, folder(stream)+"/_SUCCESS")
	}

	// Orders: one file of both versions, its columns their union, every
	// record exactly once.
	m := manifests["orders"]
	if len(m.Files) != 1 {
		t.Fatalf("orders manifest has %d files, want 1 (v1 and v2 share it): %+v", len(m.Files), m.Files)
	}
	if f := m.Files[0]; !slices.Equal(f.SchemaIDs, []int{v1, v2}) || f.SchemaID != 0 {
		t.Errorf("schema ids %v (schema_id %d), want [%d %d] (and no schema_id)", f.SchemaIDs, f.SchemaID, v1, v2)
	}
	if m.Records != 40 {
		t.Errorf("orders manifest records = %d, want 40", m.Records)
	}
	seen := map[int64]int{}
	for _, f := range m.Files {
		rows, schema := readParquet(t, lake, f.Path)
		checkLogical(t, schema, "created_at", func(lt parquetLogical) bool { return lt.ts == "ms" })
		checkLogical(t, schema, "seen_us", func(lt parquetLogical) bool { return lt.ts == "us" })
		checkLogical(t, schema, "day", func(lt parquetLogical) bool { return lt.date })
		if leaf, ok := schema.Lookup("coupon"); !ok || !leaf.Node.Optional() {
			t.Errorf("file %s: coupon column present %v, want an optional one", f.Path, ok)
		}
		if leaf, ok := schema.Lookup("id"); !ok || leaf.Node.Optional() {
			t.Errorf("file %s: id column present %v, want a required one (in both versions)", f.Path, ok)
		}
		for _, r := range rows {
			id, _ := r["id"].(int64)
			seen[id]++
			w, ok := wantOrders[id]
			if !ok {
				t.Errorf("unexpected order row %v", r)
				continue
			}
			want := map[string]any{
				"created_at": w.at.UnixMilli(), "seen_us": w.at.Add(456 * time.Microsecond).UnixMicro(),
				"day": int32(w.at.Unix() / 86400), "device.id": "dev-" + strconv.FormatInt(id%3, 10),
				"coupon": w.coupon,
			}
			if len(r) != len(want)+1 {
				t.Errorf("order %d: columns %v, want id and %v", id, r, want)
			}
			for col, v := range want {
				if r[col] != v {
					t.Errorf("order %d: %s = %#v, want %#v", id, col, r[col], v)
				}
			}
		}
	}
	for id := range wantOrders {
		if seen[id] != 1 {
			t.Errorf("order %d is in the lake %d times, want once", id, seen[id])
		}
	}

	// Readings: one file of both versions, fixed columns, Timestamp micros.
	m = manifests["readings"]
	if len(m.Files) != 1 || !slices.Equal(m.Files[0].SchemaIDs, []int{pid, pid2}) || m.Records != 25 {
		t.Fatalf("readings manifest = %+v, want one file of 25 records with schema ids [%d %d]", m, pid, pid2)
	}
	rows, schema := readParquet(t, lake, m.Files[0].Path)
	checkLogical(t, schema, "event_time", func(lt parquetLogical) bool { return lt.ts == "us" })
	got := map[int64]int{}
	for _, r := range rows {
		seq, _ := r["seq"].(int64)
		got[seq]++
		at := base.Add(time.Duration(seq)*time.Second + 789*time.Microsecond)
		var fw any
		if seq%2 == 1 {
			fw = "fw-" + strconv.FormatInt(seq, 10)
		}
		if r["event_time"] != at.UnixMicro() || r["device"] != "sensor-"+strconv.FormatInt(seq%4, 10) || r["temp"] != 21.0 || r["firmware"] != fw {
			t.Errorf("reading %d = %v", seq, r)
		}
	}
	for i := range int64(25) {
		if got[i] != 1 {
			t.Errorf("reading %d is in the lake %d times, want once", i, got[i])
		}
	}
	for _, c := range cases {
		checkVersionCase(t, root, hour, c)
	}
	checkManifestsAgainstSchema(t, root)

	// Dead letters: the bad records, unchanged, with their reasons, and
	// none of the cases' records.
	checkDeadLettered(t, k.Addr, "orders", bad)
	if hw := k.HighWatermarks(t, "lakesink-dlq", 1); hw[0] != int64(len(bad)) {
		t.Errorf("%d dead letters, want %d", hw[0], len(bad))
	}
	proc.Stop(20 * time.Second)
	if err := proc.ExitErr(); err != nil {
		t.Errorf("lakesink exit: %v", err)
	}
}

// formatsConfig writes the config of the format tests: an avro stream
// "orders" with derived columns, a protobuf stream "readings" with fixed
// ones and the streams of cases, the registry behind basic auth (password
// from $SR_PASSWORD), a local lake under the returned root.
func formatsConfig(t *testing.T, broker, registryURL, httpListen string, cases ...versionCase) (root, cfgPath string) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  group_id: lakesink-formats
  commit_interval: 200ms
schema_registry:
  url: %q
  username: sr-user
  password: "${SR_PASSWORD}"
  timeout: 5s
streams:
  - name: orders
    topics: [orders]
    format: avro
    time: {field: created_at}
    allowed_lateness: 1m
  - name: readings
    topics: [readings]
    format: protobuf
    time: {field: event_time}
    allowed_lateness: 1m
    schema:
      - {name: device, type: string, required: true}
      - {name: event_time, type: timestamp_us}
      - {name: temp, type: double}
      - {name: seq, type: int64, required: true}
      - {name: firmware, type: string}
`, broker, registryURL) + versionCasesYAML(cases)
	return writeLocalConfig(t, dir, cfg, httpListen)
}

// writeLocalConfig completes head (the kafka, schema_registry and streams
// sections) with a local lake, spool and dead-letter topic in dir, writes
// it to dir/lakesink.yaml and returns the lake root and the config path.
func writeLocalConfig(t *testing.T, dir, head, httpListen string) (root, cfgPath string) {
	t.Helper()
	root = filepath.Join(dir, "lake")
	cfg := head + fmt.Sprintf(`files:
  spool_dir: %q
storage:
  type: local
  local: {root: %q}
markers:
  idle_partition_timeout: 2s
  check_interval: 300ms
dead_letter:
  topic: lakesink-dlq
http:
  listen: %q
log: {level: debug, format: json}
`, filepath.Join(dir, "spool"), root, httpListen)
	cfgPath = filepath.Join(dir, "lakesink.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, cfgPath
}

// checkDeadLettered reads len(bad) dead letters of topic and checks that
// each bad record is among them, unchanged, under its reason.
func checkDeadLettered(t *testing.T, broker, topic string, bad map[string][]byte) {
	t.Helper()
	dl := readDeadLetters(t, broker, topic, len(bad))
	for reason, v := range bad {
		if dl[reason] != string(v) {
			t.Errorf("dead letter %s = %q, want the record unchanged %q (got reasons %v)", reason, dl[reason], v, keys(dl))
		}
	}
}

// badRecords returns one record per Confluent framing problem, by the
// dead-letter reason it must get.
func badRecords(t *testing.T, s avro.Schema, id int) map[string][]byte {
	t.Helper()
	good, err := avro.Marshal(s, orderV1{ID: -1, CreatedAt: time.UnixMilli(0), SeenUs: time.UnixMilli(0), Day: time.UnixMilli(0)})
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"unknown_schema": append(confluent.Header(99999), good...),
		"truncated":      append(confluent.Header(id), good[:2]...),
		"bad_magic":      append([]byte{1, 0, 0, 0, byte(id)}, good...),
	}
}

func sendValues(t *testing.T, broker, topic string, vals [][]byte) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	msgs := make([]kafka.Message, len(vals))
	for i, v := range vals {
		msgs[i] = kafka.Message{Value: v}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// readDeadLetters reads n dead letters of source topic, by reason.
func readDeadLetters(t *testing.T, broker, topic string, n int) map[string]string {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "lakesink-dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := map[string]string{}
	for len(got) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read dead letters: %v (got %v)", err, keys(got))
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[kafkaio.HeaderTopic] != topic {
			continue
		}
		if h[kafkaio.HeaderOffset] == "" || h[kafkaio.HeaderError] == "" {
			t.Errorf("dead letter %s lacks origin or error headers: %v", h[kafkaio.HeaderReason], h)
		}
		got[h[kafkaio.HeaderReason]] = string(m.Value)
	}
	return got
}

// parquetLogical is a leaf column's logical type as a Parquet reader sees it.
type parquetLogical struct {
	ts   string // "ms", "us", "ns" or ""
	date bool
}

// checkLogical checks the logical type of the leaf column name.
func checkLogical(t *testing.T, schema *parquet.Schema, name string, ok func(parquetLogical) bool) {
	t.Helper()
	leaf, found := schema.Lookup(name)
	if !found {
		t.Errorf("column %s missing from %s", name, schema)
		return
	}
	var got parquetLogical
	if lt := leaf.Node.Type().LogicalType(); lt != nil {
		switch v := lt.Value.(type) {
		case *format.TimestampType:
			switch v.Unit.Value.(type) {
			case *format.MilliSeconds:
				got.ts = "ms"
			case *format.MicroSeconds:
				got.ts = "us"
			case *format.NanoSeconds:
				got.ts = "ns"
			}
		case *format.DateType:
			got.date = true
		}
	}
	if !ok(got) {
		t.Errorf("column %s has logical type %+v (%s)", name, got, leaf.Node.Type())
	}
}

// TestFormatsRegistryOutage: while the schema registry answers 503, refuses
// connections or accepts them and never answers, an Avro partition waits
// on its first record — /readyz names the registry, lakesink_ready is 0,
// lakesink_dependency_errors_total{dependency="schema_registry"} rises,
// nothing is committed, nothing is dead-lettered — and once the registry
// is back every record reaches the lake exactly once.
func TestFormatsRegistryOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	for _, mode := range []string{"http503", "refuse", "blackhole"} {
		t.Run(mode, func(t *testing.T) { runRegistryOutage(t, mode) })
	}
}

func runRegistryOutage(t *testing.T, mode string) {
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "orders", 1)
	k.CreateTopic(t, "readings", 1)
	srv := schemaregistry.New(schemaregistry.Options{Username: "sr-user", Password: "sr-pass"})
	v1 := srv.Register("orders-value", "AVRO", orderV1Schema)
	var down atomic.Bool
	down.Store(mode == "http503")
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "registry restarting", http.StatusServiceUnavailable)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	proxy := faultproxy.New(t, hs.Listener.Addr().String())
	switch mode {
	case "refuse":
		proxy.SetMode(faultproxy.Refuse)
	case "blackhole":
		proxy.SetMode(faultproxy.Blackhole)
	}

	hour := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	s1 := avro.MustParse(orderV1Schema)
	var vals [][]byte
	for i := range int64(10) {
		at := hour.Add(time.Duration(i) * time.Minute)
		body, err := avro.Marshal(s1, orderV1{ID: i, CreatedAt: at, SeenUs: at, Day: at, Device: avroDevice{ID: "d"}})
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, append(confluent.Header(v1), body...))
	}
	sendValues(t, k.Addr, "orders", vals)

	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	root, cfgPath := formatsConfig(t, k.Addr, "http://"+proxy.Addr(), httpAddr)
	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"),
		testenv.Options{Env: []string{"SR_PASSWORD=sr-pass"}}, "run", "-c", cfgPath)

	testenv.Eventually(t, 60*time.Second, 250*time.Millisecond, "/readyz naming the schema registry", func() error {
		if code, body := httpGet(httpAddr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "schema registry unreachable") {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, "registry errors counted, not ready", func() error {
		m, err := opsScrape("http://" + httpAddr)
		if err != nil {
			return err
		}
		if n := m.sum("lakesink_dependency_errors_total", `dependency="schema_registry"`); n <= 0 || m.sum("lakesink_ready", "") != 0 {
			return fmt.Errorf("schema_registry errors %v, ready %v", n, m.sum("lakesink_ready", ""))
		}
		return nil
	})
	time.Sleep(2 * time.Second) // several retries and commit intervals
	if committed, _ := k.CommittedOffsets(t, "lakesink-formats", "orders", 1); committed[0] > 0 {
		t.Fatalf("committed offset %d while the first record could not be decoded", committed[0])
	}
	if hw := k.HighWatermarks(t, "lakesink-dlq", 1); hw[0] != 0 {
		t.Fatalf("%d dead letters during a registry outage, want none", hw[0])
	}

	down.Store(false)
	proxy.SetMode(faultproxy.Pass)
	folder := fmt.Sprintf("orders/dt=%s/hour=%s", hour.Format("2006-01-02"), hour.Format("15"))
	lake, m := awaitLocalManifest(t, root, folder, 60*time.Second)
	seen := map[int64]int{}
	for _, f := range m.Files {
		if f.SchemaID != v1 {
			t.Errorf("file %s: schema id %d, want %d", f.Path, f.SchemaID, v1)
		}
		rows, _ := readParquet(t, lake, f.Path)
		for _, r := range rows {
			id, _ := r["id"].(int64)
			seen[id]++
		}
	}
	for i := range int64(10) {
		if seen[i] != 1 {
			t.Errorf("order %d is in the lake %d times, want once (all: %v)", i, seen[i], seen)
		}
	}
	if hw := k.HighWatermarks(t, "lakesink-dlq", 1); hw[0] != 0 {
		t.Errorf("%d dead letters, want none", hw[0])
	}
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, "/readyz recovering", func() error {
		if code, body := httpGet(httpAddr, "/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	proc.Stop(20 * time.Second)
	if err := proc.ExitErr(); err != nil {
		t.Errorf("lakesink exit: %v", err)
	}
}
