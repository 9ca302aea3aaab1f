// Package e2e tests the built lakesink binary end to end: a broker process,
// records produced by a real client, the sink process, and the lake read back
// through the manifests with an independent Parquet reader.
package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
)

// backend is a lake the binary writes to and the test reads back.
type backend struct {
	name    string
	storage string         // the config's storage: block
	env     []string       // extra environment for the sink process
	lake    writers.Writer // reads the same lake
	check   func(t *testing.T)
	stop    func()      // stops the storage server (nil for local)
	restart func()      // starts it again on the same address and data
	s3      *testenv.S3 // the S3 server of the s3 backend; else nil
	// gcsEndpoint is the GCS server's endpoint for the gcs backend.
	gcsEndpoint string
}

// produced remembers what the test sent.
type produced struct {
	valid     map[string]map[string]int64 // stream -> record id -> event time ms
	malformed map[string]int              // "stream|reason|value" -> count
	perPart   map[string]map[int]int      // topic -> partition -> records
}

// newProduced returns an empty record of what a test sent.
func newProduced() *produced {
	return &produced{valid: map[string]map[string]int64{}, malformed: map[string]int{}, perPart: map[string]map[int]int{}}
}

// partitionBalancer sends each message to the partition written in its key
// ("P:..."), so the test decides which partition stays empty.
var partitionBalancer = kafka.BalancerFunc(func(m kafka.Message, _ ...int) int {
	p, _ := strconv.Atoi(string(m.Key[:strings.IndexByte(string(m.Key), ':')]))
	return p
})

// produce sends n records of a stream to topic, spread over hours, round
// robin over the given partitions, about 0.5% malformed.
func produce(t *testing.T, k *testenv.Kafka, p *produced, stream, topic string, parts []int, n int, from time.Time, hours int,
	gen func(*rand.Rand, int64, time.Time) []byte, id func(seq int64, value []byte) string) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr), Topic: topic, Balancer: partitionBalancer, BatchSize: 500,
		BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	// Records of later calls for the same topic continue the numbering, so
	// event ids stay unique.
	base := 0
	for _, n := range p.perPart[topic] {
		base += n
	}
	r := rand.New(rand.NewPCG(uint64(len(stream)), 2026+uint64(base)))
	span := time.Duration(hours) * time.Hour
	if p.valid[stream] == nil {
		p.valid[stream] = map[string]int64{}
	}
	if p.perPart[topic] == nil {
		p.perPart[topic] = map[int]int{}
	}
	var batch []kafka.Message
	for i := 0; i < n; i++ {
		seq := int64(base + i)
		// In event-time order with up to 30 s of disorder: well within the
		// allowed lateness, so no record is late.
		tm := from.Add(time.Duration(int64(span) * int64(i) / int64(n))).Add(time.Duration(r.IntN(30000)) * time.Millisecond)
		if end := from.Add(span - time.Millisecond); tm.After(end) {
			tm = end
		}
		tm = tm.Truncate(time.Millisecond)
		part := parts[i%len(parts)]
		var v []byte
		if r.IntN(200) == 0 {
			var reason string
			v, reason = demo.Malformed(r, stream, seq, tm)
			p.malformed[stream+"|"+reason+"|"+string(v)]++
		} else {
			v = gen(r, seq, tm)
			p.valid[stream][id(seq, v)] = tm.UnixMilli()
		}
		p.perPart[topic][part]++
		batch = append(batch, kafka.Message{Key: fmt.Appendf(nil, "%d:%d", part, seq), Value: v, Time: tm})
		if len(batch) == 500 || i == n-1 {
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				t.Fatalf("produce %s: %v", topic, err)
			}
			batch = batch[:0]
		}
	}
}

func clickID(_ int64, v []byte) string {
	s := string(v)
	i := strings.Index(s, `"event_id":"`) + len(`"event_id":"`)
	return s[i : i+strings.IndexByte(s[i:], '"')]
}

func iotID(seq int64, _ []byte) string { return strconv.FormatInt(seq, 10) }

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { runEndToEnd(t, b.open(t)) })
	}
}

func runEndToEnd(t *testing.T, b backend) {
	k := testenv.StartKafka(t)
	const (
		clickTopic, iotTopic = "clickstream", "iot-telemetry"
		clickParts, iotParts = 6, 4
		emptyIoTPartition    = 3
		group                = "lakesink-e2e"
		dlqTopic             = "lakesink-dlq"
	)
	k.CreateTopic(t, clickTopic, clickParts)
	k.CreateTopic(t, iotTopic, iotParts)

	// Three full past hours, ending at least an hour ago, so the allowed
	// lateness (10m) has passed in wall-clock time too.
	from := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	p := newProduced()
	produce(t, k, p, "clickstream", clickTopic, []int{0, 1, 2, 3, 4, 5}, 20000, from, 3, demo.Clickstream, clickID)
	produce(t, k, p, "iot", iotTopic, []int{0, 1, 2}, 10000, from, 3, demo.IoT, iotID)
	nMalformed := 0
	for _, c := range p.malformed {
		nMalformed += c
	}
	t.Logf("produced %d valid clickstream, %d valid iot, %d malformed records", len(p.valid["clickstream"]), len(p.valid["iot"]), nMalformed)
	if nMalformed < 50 {
		t.Fatalf("only %d malformed records produced, want about 0.5%% of 30000", nMalformed)
	}

	cfgPath := writeConfig(t, k.Addr, group, b.storage, "127.0.0.1:0")

	bin := testenv.Build(t, "./cmd/lakesink")
	v := testenv.Start(t, "lakesink-validate", bin, testenv.Options{Env: b.env}, "validate", "--config", cfgPath)
	if err := v.ExitErr(); err != nil {
		t.Fatalf("lakesink validate: %v\n%s", err, v.Log())
	}
	proc := testenv.Start(t, "lakesink", bin, testenv.Options{Env: b.env}, "run", "-c", cfgPath)

	hours := []time.Time{from, from.Add(time.Hour), from.Add(2 * time.Hour)}
	awaitMarkersAndCommits(t, proc, b.lake, k, group, p, map[string]int{clickTopic: clickParts, iotTopic: iotParts}, hours)

	stopGracefully(t, proc)

	// The empty partition really stayed empty, and still did not block markers.
	if high := k.HighWatermarks(t, iotTopic, iotParts); high[emptyIoTPartition] != 0 {
		t.Fatalf("partition %d of %s should be empty, high watermark %d", emptyIoTPartition, iotTopic, high[emptyIoTPartition])
	}

	// Every valid record exactly once in the files the manifests list, and
	// nothing else in the hour folders.
	for _, stream := range []string{"clickstream", "iot"} {
		checkExactlyOnce(t, b.lake, stream, p.valid[stream])
	}

	// Every malformed record is on the dead-letter topic with its reason and
	// origin.
	checkDeadLetters(t, k, dlqTopic, p)
	if b.check != nil {
		b.check(t)
	}
}

// awaitMarkersAndCommits waits until the streams clickstream and iot have
// markers for hours and every partition of topics (topic -> partitions)
// has committed its high watermark, which must be what p produced.
// stopGracefully sends SIGTERM and requires a clean exit within 30 s.
func stopGracefully(t *testing.T, proc *testenv.Process) {
	t.Helper()
	proc.Signal(15) // SIGTERM: graceful shutdown
	select {
	case <-proc.Done():
		if err := proc.ExitErr(); err != nil {
			t.Fatalf("lakesink exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lakesink did not stop within 30s of SIGTERM")
	}
}

func awaitMarkersAndCommits(t *testing.T, proc *testenv.Process, lake writers.Writer, k *testenv.Kafka, group string, p *produced, topics map[string]int, hours []time.Time) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 3*time.Minute, 500*time.Millisecond, "markers and commits", func() error {
		select {
		case <-proc.Done():
			return fmt.Errorf("lakesink exited: %v", proc.ExitErr())
		default:
		}
		for _, s := range []string{"clickstream", "iot"} {
			for _, h := range hours {
				key := fmt.Sprintf("%s/dt=%s/hour=%s/_SUCCESS", s, h.Format("2006-01-02"), h.Format("15"))
				ok, err := lake.Exists(ctx, key)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("no marker %s", key)
				}
			}
		}
		for topic, n := range topics {
			high := k.HighWatermarks(t, topic, n)
			committed, _, err := k.TryCommittedOffsets(group, topic, n)
			if err != nil {
				return err
			}
			for part := 0; part < n; part++ {
				if high[part] != int64(p.perPart[topic][part]) {
					return fmt.Errorf("%s/%d: high watermark %d, produced %d", topic, part, high[part], p.perPart[topic][part])
				}
				if high[part] > 0 && committed[part] != high[part] {
					return fmt.Errorf("%s/%d: committed %d, high watermark %d", topic, part, committed[part], high[part])
				}
			}
		}
		return nil
	})
}

// writeConfig writes the end-to-end tests' sink config (streams clickstream
// and iot on topics clickstream and iot-telemetry) and returns its path.
func writeConfig(t *testing.T, broker, group, storage, httpListen string) string {
	t.Helper()
	return writeConfigTables(t, broker, group, storage, httpListen, "")
}

// editConfig changes the config file at path: each pair of olds gives a
// text and its replacement, and each text must occur (a test whose edit
// silently matched nothing would test the defaults instead).
func editConfig(t *testing.T, path string, olds ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(olds); i += 2 {
		s = replaceOnce(t, s, olds[i], olds[i+1])
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceOnce replaces the first old in s by new; old must occur.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("config edit: %q not found in\n%s", old, s)
	}
	return strings.Replace(s, old, new, 1)
}

// eventsWithTables is the markers' kafka_topic line when the streams have
// tables: their completion events are checked too.
func eventsWithTables(table string) string {
	if table == "" {
		return ""
	}
	return "  kafka_topic: " + eventsTopic + "\n"
}

// writeConfigTables is writeConfig with table, when not empty, as the
// table: block of both streams (%s in it is the stream name), and
// completion events on the eventsTopic.
func writeConfigTables(t *testing.T, broker, group, storage, httpListen, table string) string {
	t.Helper()
	tableOf := func(stream string) string {
		if table == "" {
			return ""
		}
		return "    table:\n" + strings.ReplaceAll(table, "%s", stream)
	}
	const clickTopic, iotTopic, dlqTopic = "clickstream", "iot-telemetry", "lakesink-dlq"
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "lakesink.yaml")
	cfgText := fmt.Sprintf(`kafka:
  brokers: [%q]
  group_id: %s
  commit_interval: 500ms
streams:
  - name: clickstream
    topics: [%s]
    time: {field: ts, format: unix_ms}
    schema:
      - {name: event_id, type: string, required: true}
      - {name: user_id, type: string}
      - {name: ts, type: timestamp_ms}
      - {name: event_type, type: string}
      - {name: url, type: string}
      - {name: referrer, type: string}
      - {name: device_id, path: device.id, type: string}
      - {name: device_os, path: device.os, type: string}
      - {name: price, type: double}
      - {name: quantity, type: int32}
      - {name: attrs, type: json}
%s  - name: iot
    topics: [%s]
    time: {field: event_time, format: rfc3339, timezone: UTC}
    schema:
      - {name: device_id, type: string, required: true}
      - {name: event_time, type: timestamp_ms}
      - {name: temperature, type: double}
      - {name: humidity, type: float}
      - {name: battery, type: int32}
      - {name: online, type: bool}
      - {name: firmware, type: string}
      - {name: seq, type: int64}
%sfiles:
  spool_dir: %q
%smarkers:
  idle_partition_timeout: 3s
  check_interval: 500ms
%sdead_letter:
  topic: %s
http:
  listen: %q
log: {level: debug, format: json}
`, broker, group, clickTopic, tableOf("clickstream"), iotTopic, tableOf("iot"), filepath.Join(dir, "spool"), storage, eventsWithTables(table), dlqTopic, httpListen)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// checkExactlyOnce reads every manifest of stream and the files they list,
// and checks that they hold exactly the valid records produced (id -> event
// time ms), each once, and that no data file is outside the manifests.
func checkExactlyOnce(t *testing.T, lake writers.Writer, stream string, valid map[string]int64) {
	t.Helper()
	checkExactlyOnceUnit(t, lake, stream, valid, time.Millisecond)
}

// checkExactlyOnceUnit is checkExactlyOnce for event-time columns in unit
// (milliseconds, or microseconds in streams with an Iceberg table).
func checkExactlyOnceUnit(t *testing.T, lake writers.Writer, stream string, valid map[string]int64, unit time.Duration) {
	t.Helper()
	seen := map[string]int{}
	walkManifests(t, lake, stream, func(path string, schema *parquet.Schema) {
		checkSchema(t, stream, path, schema, unit)
	}, func(_, path string, r map[string]any) {
		var id string
		var ts int64
		if stream == "clickstream" {
			id, ts = r["event_id"].(string), r["ts"].(int64)
		} else {
			id, ts = strconv.FormatInt(r["seq"].(int64), 10), r["event_time"].(int64)
		}
		seen[id]++
		ts = ts * int64(unit) / int64(time.Millisecond)
		if want, ok := valid[id]; !ok {
			t.Errorf("%s: unexpected record %s", path, id)
		} else if ts != want {
			t.Errorf("%s: record %s has event time %d, want %d", path, id, ts, want)
		}
	})
	lost, dup := 0, 0
	for id := range valid {
		switch seen[id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	if lost > 0 || dup > 0 {
		t.Errorf("%s: %d records lost, %d duplicated (of %d)", stream, lost, dup, len(valid))
	}
}

// walkManifests reads every manifest of stream (checkManifest) and the
// files they list, calling file once per listed file with its schema and
// row once per row with the row's folder and file; each file must hold
// the records its entry says, and no data file may be outside the
// manifests.
func walkManifests(t *testing.T, lake writers.Writer, stream string, file func(path string, schema *parquet.Schema), row func(folder, path string, r map[string]any)) {
	t.Helper()
	objs, err := lake.List(context.Background(), stream+"/")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, "/"+partitioner.MarkerName) {
			continue
		}
		folder := strings.TrimSuffix(o.Key, "/"+partitioner.MarkerName)
		m := readManifest(t, lake, o.Key)
		checkManifest(t, lake, m, o.Key, stream)
		for _, f := range m.Files {
			listed[f.Path] = true
			rows, schema := readParquet(t, lake, f.Path)
			if int64(len(rows)) != f.Records {
				t.Errorf("%s: %d rows, manifest says %d", f.Path, len(rows), f.Records)
			}
			if file != nil {
				file(f.Path, schema)
			}
			for _, r := range rows {
				row(folder, f.Path, r)
			}
		}
	}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".parquet") && !listed[o.Key] {
			t.Errorf("orphan data file not in any manifest: %s", o.Key)
		}
	}
}

func checkManifest(t *testing.T, lake writers.Writer, m completion.Manifest, key, stream string) {
	t.Helper()
	if m.Version != 1 || m.Stream != stream || m.Revision < 1 {
		t.Errorf("%s: version %d stream %q revision %d", key, m.Version, m.Stream, m.Revision)
	}
	h, err := time.Parse(time.RFC3339, m.Hour)
	if err != nil {
		t.Errorf("%s: hour %q: %v", key, m.Hour, err)
	} else if want := fmt.Sprintf("%s/dt=%s/hour=%s/_SUCCESS", stream, h.Format("2006-01-02"), h.Format("15")); want != key {
		// The folder is the hour in the stream's zone, the offset m.Hour carries.
		t.Errorf("manifest hour %s does not match its folder %s", m.Hour, key)
	}
	var total int64
	for _, f := range m.Files {
		total += f.Records
		if !strings.HasPrefix(f.Path, strings.TrimSuffix(key, partitioner.MarkerName)) {
			t.Errorf("%s lists %s from another folder", key, f.Path)
		}
		name := f.Path[strings.LastIndexByte(f.Path, '/')+1:]
		if f.Sources != nil {
			// A compacted file: its sources add up to its records.
			var n int64
			for _, s := range f.Sources {
				n += s.Records
			}
			if !partitioner.ParseCompactedFileName(name) || n != f.Records || f.Topic != "" {
				t.Errorf("%s: compacted file entry %+v does not match its name or its sources", key, f)
			}
		} else if topic, part, first, ok := partitioner.ParseFileName(name); !ok || topic != f.Topic || part != f.Partition || first != f.FirstOffset || f.LastOffset < f.FirstOffset {
			t.Errorf("%s: file entry %+v does not match its name", key, f)
		}
		st, err := lake.Stat(context.Background(), f.Path)
		if err != nil {
			t.Errorf("%s lists %s: %v", key, f.Path, err)
		} else if st.Size != f.Bytes {
			t.Errorf("%s: %s has %d bytes, manifest says %d", key, f.Path, st.Size, f.Bytes)
		}
	}
	if total != m.Records {
		t.Errorf("%s: records %d, files add up to %d", key, m.Records, total)
	}
}

// checkSchema checks that the event-time column carries Parquet's
// TIMESTAMP(MILLIS, UTC) logical type, so engines read it as a timestamp.
func checkSchema(t *testing.T, stream, path string, schema *parquet.Schema, unit time.Duration) {
	t.Helper()
	col := map[string]string{"clickstream": "ts", "iot": "event_time"}[stream]
	leaf, ok := schema.Lookup(col)
	if !ok {
		t.Fatalf("%s: no column %s", path, col)
	}
	lt := leaf.Node.Type().LogicalType()
	var ts *format.TimestampType
	if lt != nil {
		ts, _ = lt.Value.(*format.TimestampType)
	}
	want := map[time.Duration]string{time.Millisecond: "MILLIS", time.Microsecond: "MICROS"}[unit]
	if ts == nil || ts.Unit.String() != want || !ts.IsAdjustedToUTC {
		t.Errorf("%s: column %s has logical type %v, want TIMESTAMP(%s, UTC)", path, col, lt, want)
	}
}

// checkDeadLetters reads the whole dead-letter topic and matches it against
// the malformed records produced: same value, reason and origin headers.
func checkDeadLetters(t *testing.T, k *testenv.Kafka, topic string, p *produced) {
	t.Helper()
	high := k.HighWatermarks(t, topic, 1)[0]
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{k.Addr}, Topic: topic, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	got := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for off := int64(0); off < high; off++ {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read dead letters at %d of %d: %v", off, high, err)
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		for _, k := range []string{kafkaio.HeaderReason, kafkaio.HeaderError, kafkaio.HeaderTopic, kafkaio.HeaderPartition, kafkaio.HeaderOffset, kafkaio.HeaderStream} {
			if h[k] == "" {
				t.Errorf("dead letter at %d lacks header %s: %v", m.Offset, k, h)
			}
		}
		// Keyed by origin (replays carry the same key); the source key is
		// in lakesink.key.
		if want := h[kafkaio.HeaderTopic] + "/" + h[kafkaio.HeaderPartition] + "/" + h[kafkaio.HeaderOffset]; string(m.Key) != want {
			t.Errorf("dead letter key %q, want its origin %q", m.Key, want)
		}
		if part, _ := strconv.Atoi(h[kafkaio.HeaderPartition]); h[kafkaio.HeaderKey] != "" && !strings.HasPrefix(h[kafkaio.HeaderKey], strconv.Itoa(part)+":") {
			t.Errorf("dead letter source key %s does not match its partition header %s", h[kafkaio.HeaderKey], h[kafkaio.HeaderPartition])
		}
		got[h[kafkaio.HeaderStream]+"|"+h[kafkaio.HeaderReason]+"|"+string(m.Value)]++
		// The origin headers point at the very record.
		part, _ := strconv.Atoi(h[kafkaio.HeaderPartition])
		off, _ := strconv.ParseInt(h[kafkaio.HeaderOffset], 10, 64)
		if src := sourceRecord(t, k, h[kafkaio.HeaderTopic], part, off); string(src) != string(m.Value) {
			t.Errorf("dead letter says %s/%d@%d, but that record is %q, not %q", h[kafkaio.HeaderTopic], part, off, src, m.Value)
		}
	}
	for k, n := range p.malformed {
		if got[k] != n {
			t.Errorf("dead letter %q: %d on the topic, %d produced", k, got[k], n)
		}
	}
	for k, n := range got {
		if p.malformed[k] == 0 {
			t.Errorf("unexpected dead letter %q (x%d)", k, n)
		}
	}
}

// sourceRecord reads the value of one record.
func sourceRecord(t *testing.T, k *testenv.Kafka, topic string, partition int, offset int64) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", k.Addr, topic, partition)
	if err != nil {
		t.Fatalf("dial %s/%d: %v", topic, partition, err)
	}
	defer conn.Close()
	if _, err := conn.Seek(offset, kafka.SeekAbsolute); err != nil {
		t.Fatalf("seek %s/%d@%d: %v", topic, partition, offset, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := conn.ReadMessage(10 << 20)
	if err != nil {
		t.Fatalf("read %s/%d@%d: %v", topic, partition, offset, err)
	}
	if m.Offset != offset {
		t.Fatalf("read %s/%d@%d: got offset %d", topic, partition, offset, m.Offset)
	}
	return m.Value
}
