// Package chaos checks guarantees 1–3 of docs/design.md under failures: while
// records are produced continuously, lakesink instances are killed with
// SIGKILL at random moments, the group scales out and in, the broker
// restarts and the storage server goes away for a while. At the end every
// record in Kafka must be in the lake exactly once, as read through the hour
// manifests, with no orphan files. A second stream gets the same records
// from a second topic and commits them to an Apache Iceberg table in a REST
// catalog on the same S3 server; its table, read back with iceberg-go, must
// hold every record exactly once too. Both streams compact each completed
// hour before its marker (docs/compaction.md), so kills also strike
// compactions in progress: the plan, the merge, the upload, the table swap
// and the removal of the inputs; at the end each hour's manifest must list
// compacted files only.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/test/lakecheck"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/factory"
)

const (
	topic      = "clickstream"
	iceTopic   = "clickstream-ice" // the same records, for the table stream
	iceStream  = "clicks_ice"
	partitions = 6
	group      = "lakesink-chaos"
)

// cluster runs lakesink instances that share one config but each its own
// spool folder.
type cluster struct {
	t       *testing.T
	bin     string
	k       *testenv.Kafka
	storage string
	table   string // the table stream's table: block
	env     []string
	mu      sync.Mutex
	running map[int]*testenv.Process
	next    int
	cfg     string             // the config of the last instance started
	killed  []*testenv.Process // kept for their logs
}

func (c *cluster) start() int {
	c.t.Helper()
	c.mu.Lock()
	id := c.next
	c.next++
	c.mu.Unlock()
	dir := c.t.TempDir()
	cfg := filepath.Join(dir, "lakesink.yaml")
	text := fmt.Sprintf(`kafka:
  brokers: [%q]
  group_id: %s
  commit_interval: 300ms
  session_timeout: 3s
  heartbeat_interval: 500ms
  rebalance_timeout: 5s
streams:
%s%s    table:
%sfiles:
  spool_dir: %q
  max_file_bytes: 192KiB
  row_group_bytes: 64KiB
  # Under 8 MiB per partition while one instance owns all 12: its files
  # are deferred (rows in a row log, encoded at finish); with two or more
  # instances they are encoded as they arrive. Kills hit both modes.
  memory_limit: 64MiB
%smarkers:
  idle_partition_timeout: 2s
  check_interval: 500ms
http: {listen: "127.0.0.1:0"}
shutdown_timeout: 10s
log: {level: info, format: json}
`, c.k.Addr, group, streamYAML("clickstream", topic), streamYAML(iceStream, iceTopic), c.table, filepath.Join(dir, "spool"), c.storage)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		c.t.Fatal(err)
	}
	p := testenv.Start(c.t, fmt.Sprintf("lakesink-%d", id), c.bin, testenv.Options{Env: c.env}, "run", "-c", cfg)
	c.mu.Lock()
	c.running[id] = p
	c.cfg = cfg
	c.mu.Unlock()
	return id
}

// streamYAML is the config of a clickstream stream on topic: the plain one
// and the one with a table differ only in name, topic and table block.
func streamYAML(name, topic string) string {
	return fmt.Sprintf(`  - name: %s
    topics: [%s]
    time: {field: ts, format: unix_ms}
    allowed_lateness: 1m
    schema:
      - {name: event_id, type: string, required: true}
      - {name: user_id, type: string}
      - {name: ts, type: timestamp_ms}
      - {name: url, type: string}
      - {name: device_id, path: device.id, type: string}
      - {name: attrs, type: json}
    compaction: {enabled: true}
`, name, topic)
}

func (c *cluster) ids() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []int
	for id := range c.running {
		ids = append(ids, id)
	}
	return ids
}

func (c *cluster) kill(id int) {
	c.mu.Lock()
	p := c.running[id]
	delete(c.running, id)
	c.killed = append(c.killed, p)
	c.mu.Unlock()
	p.Kill()
}

func (c *cluster) stop(id int) {
	c.mu.Lock()
	p := c.running[id]
	delete(c.running, id)
	c.mu.Unlock()
	p.Stop(20 * time.Second)
}

// producer writes clickstream records with unique event ids continuously,
// with event times running 10 hours over the test, retrying through broker
// restarts.
type producer struct {
	k     *testenv.Kafka
	n     int
	from  time.Time
	sent  atomic.Int64
	r     *rand.Rand
	batch int
}

func (p *producer) run(ctx context.Context, t *testing.T, pace time.Duration) error {
	var ws []*kafka.Writer
	for _, tp := range []string{topic, iceTopic} {
		w := &kafka.Writer{Addr: kafka.TCP(p.k.Addr), Topic: tp, Balancer: &kafka.RoundRobin{}, BatchSize: p.batch,
			BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll, MaxAttempts: 3}
		defer w.Close()
		ws = append(ws, w)
	}
	span := 10 * time.Hour
	for i := 0; i < p.n; {
		end := min(i+p.batch, p.n)
		msgs := make([]kafka.Message, 0, end-i)
		for j := i; j < end; j++ {
			ts := p.from.Add(time.Duration(int64(span) * int64(j) / int64(p.n))).Add(time.Duration(p.r.IntN(20_000)) * time.Millisecond)
			msgs = append(msgs, kafka.Message{Value: demo.Clickstream(p.r, int64(j), ts)})
		}
		for _, w := range ws {
			for {
				err := w.WriteMessages(ctx, msgs...)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// A failed batch may still have been written (lost ack): the
				// check compares the lake with what is in Kafka, not with what
				// was sent, so a duplicate in Kafka is not a false alarm.
				time.Sleep(200 * time.Millisecond)
			}
		}
		i = end
		p.sent.Store(int64(i))
		time.Sleep(pace)
	}
	return nil
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test: not in -short mode")
	}
	const records = 200_000
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))

	k := testenv.StartKafka(t)
	k.CreateTopic(t, topic, partitions)
	k.CreateTopic(t, iceTopic, partitions)
	s3 := testenv.StartS3(t)
	s3.CreateBucket(t, "lake")
	s3Props := iceberg.Properties{iceio.S3EndpointURL: s3.Endpoint, iceio.S3Region: s3.Region,
		iceio.S3AccessKeyID: s3.AccessKey, iceio.S3SecretAccessKey: s3.SecretKey}
	rc := testenv.StartIcebergREST(t, "s3://lake/chaos/_warehouse", s3Props)
	storage := fmt.Sprintf("storage:\n  type: s3\n  s3: {bucket: lake, prefix: chaos, region: %s, endpoint: %q, force_path_style: true, access_key_id: %s, secret_access_key: %s, part_size: 5MiB}\n",
		s3.Region, s3.Endpoint, s3.AccessKey, s3.SecretKey)
	c := &cluster{t: t, bin: testenv.Build(t, "./cmd/lakesink"), k: k, storage: storage, running: map[int]*testenv.Process{},
		table: fmt.Sprintf("      format: iceberg\n      namespace: lake\n      catalog: {type: rest, uri: %q, token: \"${CHAOS_ICEBERG_TOKEN}\"}\n", rc.URL),
		env:   []string{"CHAOS_ICEBERG_TOKEN=" + rc.Token}}

	from := time.Now().UTC().Truncate(time.Hour).Add(-12 * time.Hour)
	p := &producer{k: k, n: records, from: from, r: rand.New(rand.NewPCG(seed, 8)), batch: 1000}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	prodErr := make(chan error, 1)
	go func() { prodErr <- p.run(ctx, t, 250*time.Millisecond) }()

	c.start()
	var kills, scaleOuts, scaleIns, brokerRestarts, outages int
	pause := func(lo, hi time.Duration) { time.Sleep(lo + time.Duration(r.Int64N(int64(hi-lo)))) }
	// The script: 12 kill -9s spread between two 1 -> 3 -> 1 scale cycles, a
	// broker restart and a storage outage, in a random order of kills.
	steps := []string{"kill", "kill", "scale-out", "kill", "kill", "scale-in", "kill", "broker", "kill",
		"scale-out", "kill", "kill", "storage", "kill", "scale-in", "kill", "kill"}
	for _, step := range steps {
		pause(2*time.Second, 5*time.Second)
		ids := c.ids()
		switch step {
		case "kill":
			victim := ids[r.IntN(len(ids))]
			t.Logf("kill -9 instance %d (of %v), %d records sent", victim, ids, p.sent.Load())
			c.kill(victim)
			kills++
			if len(c.ids()) == 0 || r.IntN(2) == 0 {
				pause(0, 2*time.Second)
				c.start()
			}
		case "scale-out":
			for len(c.ids()) < 3 {
				c.start()
			}
			scaleOuts++
			t.Logf("scaled out to %v", c.ids())
		case "scale-in":
			for _, id := range ids {
				if len(c.ids()) == 1 {
					break
				}
				c.stop(id)
			}
			scaleIns++
			t.Logf("scaled in to %v", c.ids())
		case "broker":
			t.Logf("restarting the broker, %d records sent", p.sent.Load())
			k.Restart()
			brokerRestarts++
		case "storage":
			t.Logf("storage outage, %d records sent", p.sent.Load())
			s3.Stop()
			time.Sleep(8 * time.Second)
			s3.Restart()
			outages++
		}
		if len(c.ids()) == 0 {
			c.start()
		}
	}
	if err := <-prodErr; err != nil {
		t.Fatalf("producer: %v", err)
	}
	t.Logf("production done: %d records; instances %v", p.sent.Load(), c.ids())
	if kills < 10 || scaleOuts < 2 || scaleIns < 2 || brokerRestarts < 1 || outages < 1 {
		t.Fatalf("chaos too mild: %d kills, %d scale-outs, %d scale-ins, %d broker restarts, %d outages", kills, scaleOuts, scaleIns, brokerRestarts, outages)
	}

	// Converge: everything committed, every hour with data marked.
	high := k.HighWatermarks(t, topic, partitions)
	iceHigh := k.HighWatermarks(t, iceTopic, partitions)
	testenv.Eventually(t, 3*time.Minute, 500*time.Millisecond, "all offsets committed", func() error {
		for tp, hw := range map[string]map[int]int64{topic: high, iceTopic: iceHigh} {
			committed, _, err := k.TryCommittedOffsets(group, tp, partitions)
			if err != nil {
				return err
			}
			for part := 0; part < partitions; part++ {
				if committed[part] != hw[part] {
					return fmt.Errorf("%s/%d: committed %d of %d", tp, part, committed[part], hw[part])
				}
			}
		}
		return nil
	})

	sc := config.Default().Storage
	sc.Type = config.StorageS3
	sc.S3.Bucket, sc.S3.Prefix, sc.S3.Region, sc.S3.Endpoint, sc.S3.ForcePathStyle = "lake", "chaos", s3.Region, s3.Endpoint, true
	sc.S3.AccessKeyID, sc.S3.SecretAccessKey = s3.AccessKey, s3.SecretKey
	lake, err := factory.New(context.Background(), sc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lake.Close()
	lastHour := from.Add(10 * time.Hour)
	testenv.Eventually(t, 2*time.Minute, 500*time.Millisecond, "markers for every hour", func() error {
		for h := from; !h.After(lastHour); h = h.Add(time.Hour) {
			for _, st := range []string{"clickstream", iceStream} {
				key := fmt.Sprintf("%s/dt=%s/hour=%s/_SUCCESS", st, h.Format("2006-01-02"), h.Format("15"))
				if ok, err := lake.Exists(context.Background(), key); err != nil || !ok {
					return fmt.Errorf("no marker %s (%v)", key, err)
				}
			}
		}
		return nil
	})

	inKafka := readTopic(t, k, topic, high)
	checkLake(t, lake, "clickstream", inKafka)
	inKafkaIce := readTopic(t, k, iceTopic, iceHigh)
	listed := checkLake(t, lake, iceStream, inKafkaIce)
	cat, err := rest.NewCatalog(context.Background(), "chaos", rc.URL, rest.WithOAuthToken(rc.Token), rest.WithAdditionalProps(s3Props))
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, cat, inKafkaIce, listed)
	// lakesink audit over the run's hours: the lake and the table are clean.
	audit := exec.Command(c.bin, "audit", "--config", c.cfg, "--from", from.Format(time.RFC3339), "--to", lastHour.Add(time.Hour).Format(time.RFC3339))
	audit.Env = append(os.Environ(), c.env...)
	if out, err := audit.CombinedOutput(); err != nil {
		t.Errorf("lakesink audit: %v\n%s", err, out)
	} else {
		t.Logf("lakesink audit:\n%s", out)
	}
	t.Logf("%d records in Kafka, %d kills, %d scale-outs, %d scale-ins, %d broker restarts, %d storage outages",
		len(inKafka), kills, scaleOuts, scaleIns, brokerRestarts, outages)
}

// readTopic returns how many times each event id is in the topic.
func readTopic(t *testing.T, k *testenv.Kafka, topic string, high map[int]int64) map[string]int {
	t.Helper()
	out := map[string]int{}
	for part := 0; part < partitions; part++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{k.Addr}, Topic: topic, Partition: part, MaxWait: 100 * time.Millisecond, MaxBytes: 8 << 20})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		for off := int64(0); off < high[part]; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("read %s/%d@%d: %v", topic, part, off, err)
			}
			s := string(m.Value)
			i := strings.Index(s, `"event_id":"`) + len(`"event_id":"`)
			out[s[i:i+strings.IndexByte(s[i:], '"')]]++
		}
		cancel()
		r.Close()
	}
	return out
}

// checkLake reads every manifest of stream and every file they list and
// compares the event ids with what is in Kafka: each record exactly once,
// no orphans. It returns the files the manifests list.
func checkLake(t *testing.T, lake writers.Writer, stream string, inKafka map[string]int) map[string]bool {
	t.Helper()
	ctx := context.Background()
	objs, err := lake.List(ctx, stream+"/")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	inLake := map[string]int{}
	compactedHours := 0
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, "/"+partitioner.MarkerName) {
			continue
		}
		m := lakecheck.ReadManifest(t, lake, o.Key)
		compacted := 0
		for _, f := range m.Files {
			if f.Sources != nil {
				compacted++
			}
		}
		if compacted > 0 {
			compactedHours++
		} else if len(m.Files) > 1 {
			// A late file that arrived after the plan, beside one small
			// file, or an hour of late files only: possible, not usual.
			t.Logf("%s: revision %d lists %d files, none compacted", o.Key, m.Revision, len(m.Files))
		}
		for _, f := range m.Files {
			listed[f.Path] = true
			rows, _ := lakecheck.ReadParquet(t, lake, f.Path)
			if int64(len(rows)) != f.Records {
				t.Errorf("%s: %d rows, manifest says %d", f.Path, len(rows), f.Records)
			}
			for _, r := range rows {
				inLake[r["event_id"].(string)]++
			}
		}
	}
	orphans := 0
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".parquet") && !listed[o.Key] {
			orphans++
			t.Errorf("orphan file after the markers: %s", o.Key)
		}
	}
	lost, dup, extra := compareCounts(inKafka, inLake)
	if lost > 0 || dup > 0 || extra > 0 {
		t.Errorf("%s: lake vs Kafka: %d lost, %d duplicated, %d unknown (of %d records)", stream, lost, dup, extra, len(inKafka))
	}
	t.Logf("%s: %d data files listed by the manifests hold %d distinct records; %d orphans; %d hours compacted", stream, len(listed), len(inLake), orphans, compactedHours)
	if compactedHours == 0 {
		t.Errorf("%s: no hour's manifest lists a compacted file", stream)
	}
	return listed
}

// compareCounts compares how many times each event id is somewhere (got)
// with how many times it is in Kafka: records missing, records more often
// than in Kafka, and ids Kafka does not have.
func compareCounts(inKafka, got map[string]int) (lost, dup, extra int) {
	for id, n := range inKafka {
		switch g := got[id]; {
		case g < n:
			lost += n - g
		case g > n:
			dup += g - n
		}
	}
	for id := range got {
		if inKafka[id] == 0 {
			extra++
		}
	}
	return lost, dup, extra
}

// checkTable reads the table stream's table back with iceberg-go's scan:
// each record in Kafka exactly once, and its data files exactly the files
// the manifests list (keys relative to the storage root, under chaos/).
func checkTable(t *testing.T, cat catalog.Catalog, inKafka map[string]int, listed map[string]bool) {
	t.Helper()
	ctx := context.Background()
	tbl, err := cat.LoadTable(ctx, table.Identifier{"lake", iceStream})
	if err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Scan(table.WithSelectedFields("event_id")).ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	inTable := map[string]int{}
	for _, chunk := range at.Column(0).Data().Chunks() {
		for i := 0; i < chunk.Len(); i++ {
			inTable[chunk.ValueStr(i)]++
		}
	}
	lost, dup, extra := compareCounts(inKafka, inTable)
	if lost > 0 || dup > 0 || extra > 0 {
		t.Errorf("table vs Kafka: %d lost, %d duplicated, %d unknown (of %d records)", lost, dup, extra, len(inKafka))
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]int{}
	for _, task := range tasks {
		refs[strings.TrimPrefix(task.File.FilePath(), "s3://lake/chaos/")]++
	}
	for p, n := range refs {
		if n != 1 || !listed[p] {
			t.Errorf("table references %s %d times; listed by a manifest: %v", p, n, listed[p])
		}
	}
	if len(refs) != len(listed) {
		t.Errorf("table references %d files, the manifests list %d", len(refs), len(listed))
	}
	t.Logf("table lake.%s: %d snapshots, %d files, %d rows", iceStream, len(tbl.Metadata().Snapshots()), len(refs), at.NumRows())
}
