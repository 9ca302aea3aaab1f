package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/local"
)

// lateStream is one stream of TestLatePolicies: its late_policy, stream
// name and topic (one partition).
type lateStream struct{ policy, name, topic string }

var lateStreams = []lateStream{
	{"amend", "late_amend", "late-amend"},
	{"dead_letter", "late_dl", "late-dl"},
	{"current_hour", "late_current", "late-current"},
}

const (
	lateGroup = "lakesink-late"
	lateDLQ   = "lakesink-dlq" // writeLocalConfig's dead-letter topic
)

// lateConfig writes the config of TestLatePolicies: one stream per late
// policy, allowed_lateness 1m, over a local lake (writeLocalConfig); it
// returns the lake root and the config path.
func lateConfig(t *testing.T, broker string) (root, cfgPath string) {
	t.Helper()
	var streams strings.Builder
	for _, s := range lateStreams {
		fmt.Fprintf(&streams, `  - name: %s
    topics: [%s]
    time: {field: ts, format: unix_ms}
    allowed_lateness: 1m
    late_policy: %s
    schema:
      - {name: id, type: int64, required: true}
      - {name: ts, type: timestamp_ms}
`, s.name, s.topic, s.policy)
	}
	head := fmt.Sprintf("kafka:\n  brokers: [%q]\n  group_id: %s\n  commit_interval: 200ms\nstreams:\n%s", broker, lateGroup, streams.String())
	return writeLocalConfig(t, t.TempDir(), head, "127.0.0.1:0")
}

// lateFolder is the hour folder of stream and h (UTC).
func lateFolder(stream string, h time.Time) string {
	return fmt.Sprintf("%s/dt=%s/hour=%s", stream, h.Format("2006-01-02"), h.Format("15"))
}

// TestLatePolicies runs the binary with one stream per late_policy (docs/
// design.md, "Late data and revisions"). Each stream's one partition gets
// records of hour h and of h+1 up to h+1h27m, which moves the partition's
// watermark past h's end plus the allowed lateness (1m); once every hour
// has its marker, three more records of hour h arrive, late for the
// partition. Then:
//
//   - amend: a new file in h's folder, and h's marker revision 2 lists it;
//   - dead_letter: the late records are on the dead-letter topic with
//     reason late and their origin, nowhere in the lake, h keeps revision
//     1 and the partition commits past them;
//   - current_hour: the late records are in the folder of h+1, the hour of
//     the partition's watermark, with their own event times; h+1 already
//     had its marker, so its revision 2 lists them.
//
// In every stream every valid record is exactly once in the files the
// manifests list, with its event time, and no data file is outside them.
func TestLatePolicies(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	for _, s := range lateStreams {
		k.CreateTopic(t, s.topic, 1)
	}
	root, cfgPath := lateConfig(t, k.Addr)
	lake, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	// The hours counted below must not change while the test runs.
	testenv.AwayFromHourEdge(t, time.Minute, 2*time.Minute)
	now := time.Now().UTC()
	h := now.Truncate(time.Hour).Add(-3 * time.Hour)
	// ids 1-20: hour h; 21-30: h+1, up to h+1h27m; 31-33: late for h.
	ts := map[int64]time.Time{}
	var onTime, late []int64
	for i := range 20 {
		ts[int64(i+1)] = h.Add(time.Duration(i) * 2 * time.Minute)
	}
	for i := range 10 {
		ts[int64(i+21)] = h.Add(time.Hour + time.Duration(i)*3*time.Minute)
	}
	for id := int64(1); id <= 30; id++ {
		onTime = append(onTime, id)
	}
	for i, m := range []time.Duration{5, 15, 45} {
		id := int64(31 + i)
		ts[id] = h.Add(m * time.Minute)
		late = append(late, id)
	}
	produce := func(ids []int64) {
		t.Helper()
		for _, s := range lateStreams {
			w := &kafka.Writer{Addr: kafka.TCP(k.Addr), Topic: s.topic, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
			var msgs []kafka.Message
			for _, id := range ids {
				msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "key-%d", id), Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, id, ts[id].UnixMilli())})
			}
			err := w.WriteMessages(context.Background(), msgs...)
			w.Close()
			if err != nil {
				t.Fatalf("produce to %s: %v", s.topic, err)
			}
		}
	}
	produce(onTime)

	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"), testenv.Options{}, "run", "-c", cfgPath)
	running := func() error {
		select {
		case <-proc.Done():
			return fmt.Errorf("lakesink exited: %v", proc.ExitErr())
		default:
			return nil
		}
	}
	// committedAll fails unless every topic's partition committed its end.
	committedAll := func() error {
		for _, s := range lateStreams {
			high := k.HighWatermarks(t, s.topic, 1)[0]
			c, _, err := k.TryCommittedOffsets(lateGroup, s.topic, 1)
			if err != nil {
				return err
			}
			if c[0] != high {
				return fmt.Errorf("%s committed %d of %d", s.topic, c[0], high)
			}
		}
		return nil
	}

	// Every hour from h to the last one the wall clock closed gets a
	// marker in every stream.
	var hours []time.Time
	for x := h; !x.Add(time.Hour + time.Minute).After(now); x = x.Add(time.Hour) {
		hours = append(hours, x)
	}
	testenv.Eventually(t, 90*time.Second, 100*time.Millisecond, "markers of every hour", func() error {
		if err := running(); err != nil {
			return err
		}
		if err := committedAll(); err != nil {
			return err
		}
		for _, s := range lateStreams {
			for _, x := range hours {
				if ok, err := lake.Exists(context.Background(), lateFolder(s.name, x)+"/"+partitioner.MarkerName); err != nil || !ok {
					return fmt.Errorf("no marker of %s %s (%v)", s.name, x, err)
				}
			}
		}
		return nil
	})
	for _, s := range lateStreams {
		for _, x := range []time.Time{h, h.Add(time.Hour)} {
			if m := readManifest(t, lake, lateFolder(s.name, x)+"/_SUCCESS"); m.Revision != 1 {
				t.Fatalf("%s %s: revision %d before the late records, want 1", s.name, x, m.Revision)
			}
		}
	}

	// The late records: every partition's watermark is at h+1h27m, past
	// h's end plus 1m.
	lateFirst := int64(len(onTime)) // their offsets in every topic
	produce(late)

	testenv.Eventually(t, 60*time.Second, 100*time.Millisecond, "the late records handled", func() error {
		if err := running(); err != nil {
			return err
		}
		if err := committedAll(); err != nil {
			return err
		}
		for _, c := range []struct {
			stream string
			hour   time.Time
		}{{"late_amend", h}, {"late_current", h.Add(time.Hour)}} {
			m, ok, err := tryManifestIn(lake, lateFolder(c.stream, c.hour))
			if err != nil || !ok || m.Revision != 2 || !listsFile(m, 0, lateFirst) {
				return fmt.Errorf("%s %s: revision %d, want 2 listing the late file at %d (%v)", c.stream, c.hour, m.Revision, lateFirst, err)
			}
		}
		if high := k.HighWatermarks(t, lateDLQ, 1)[0]; high < int64(len(late)) {
			return fmt.Errorf("%d dead letters, want %d", high, len(late))
		}
		return nil
	})

	// Where each late record must be, and the revisions of h and h+1.
	lateHour := map[string]time.Time{"late_amend": h, "late_current": h.Add(time.Hour)}
	wantRev := map[string][2]int{"late_amend": {2, 1}, "late_dl": {1, 1}, "late_current": {1, 2}}
	for _, s := range lateStreams {
		t.Run(s.policy, func(t *testing.T) {
			for i, x := range []time.Time{h, h.Add(time.Hour)} {
				m := readManifest(t, lake, lateFolder(s.name, x)+"/_SUCCESS")
				if m.Revision != wantRev[s.name][i] {
					t.Errorf("%s: revision %d, want %d", x, m.Revision, wantRev[s.name][i])
				}
			}
			valid := map[int64]time.Time{}
			for _, id := range onTime {
				valid[id] = ts[id]
			}
			if s.policy != "dead_letter" {
				for _, id := range late {
					valid[id] = ts[id]
				}
			}
			folders := checkLateStream(t, lake, s.name, valid)
			for _, id := range late {
				want, ok := lateHour[s.name]
				if !ok {
					continue
				}
				if got := folders[id]; got != lateFolder(s.name, want) {
					t.Errorf("late record %d in %s, want %s", id, got, lateFolder(s.name, want))
				}
			}
			if s.policy == "current_hour" {
				// The late file's event-time range lies outside its folder's hour.
				m := readManifest(t, lake, lateFolder(s.name, h.Add(time.Hour))+"/_SUCCESS")
				for _, f := range m.Files {
					if f.FirstOffset == lateFirst && (f.MinEventTime != ts[late[0]].Format(time.RFC3339Nano) || f.MaxEventTime != ts[late[2]].Format(time.RFC3339Nano)) {
						t.Errorf("late file %s: event times %s..%s, want %s..%s", f.Path, f.MinEventTime, f.MaxEventTime, ts[late[0]], ts[late[2]])
					}
				}
			}
			if s.policy == "dead_letter" {
				// Committed past the late records with no amend entry left:
				// no revision 2 of h can follow.
				_, meta, err := k.TryCommittedOffsets(lateGroup, s.topic, 1)
				if err != nil {
					t.Fatal(err)
				}
				var md struct {
					AM []json.RawMessage `json:"am"`
				}
				if err := json.Unmarshal([]byte(meta[0]), &md); err != nil || len(md.AM) != 0 {
					t.Errorf("commit metadata %s: %d amend entries (%v), want none", meta[0], len(md.AM), err)
				}
			}
		})
	}

	// The dead-letter topic holds exactly the late records of the
	// dead_letter stream, with reason late and their origin.
	checkLateDeadLetters(t, k, lateFirst, late, ts)
	checkManifestsAgainstSchema(t, root)
	stopGracefully(t, proc)
}

// checkLateStream reads every manifest of stream (columns id, ts) and the
// files they list: every record of valid (id -> event time) exactly once,
// with its event time, nothing else, and no data file outside the
// manifests. It returns the folder each record is in.
func checkLateStream(t *testing.T, lake writers.Writer, stream string, valid map[int64]time.Time) map[int64]string {
	t.Helper()
	folder := map[int64]string{}
	seen := map[int64]int{}
	walkManifests(t, lake, stream, nil, func(dir, path string, r map[string]any) {
		id, ts := r["id"].(int64), r["ts"].(int64)
		seen[id]++
		folder[id] = dir
		if want, ok := valid[id]; !ok {
			t.Errorf("%s: unexpected record %d", path, id)
		} else if ts != want.UnixMilli() {
			t.Errorf("%s: record %d has event time %d, want its own %d", path, id, ts, want.UnixMilli())
		}
	})
	for id := range valid {
		if seen[id] != 1 {
			t.Errorf("record %d is %d times in the manifests' files, want once", id, seen[id])
		}
	}
	return folder
}

// checkLateDeadLetters reads the whole dead-letter topic: exactly the late
// records of the dead_letter stream (at offsets first.. of its topic), each
// once, with reason late, its origin and its value.
func checkLateDeadLetters(t *testing.T, k *testenv.Kafka, first int64, late []int64, ts map[int64]time.Time) {
	t.Helper()
	high := k.HighWatermarks(t, lateDLQ, 1)[0]
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{k.Addr}, Topic: lateDLQ, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := map[int64]int{}
	for off := int64(0); off < high; off++ {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read dead letters at %d of %d: %v", off, high, err)
		}
		hs := map[string]string{}
		for _, x := range m.Headers {
			hs[x.Key] = string(x.Value)
		}
		src, _ := strconv.ParseInt(hs[kafkaio.HeaderOffset], 10, 64)
		if hs[kafkaio.HeaderReason] != "late" || hs[kafkaio.HeaderStream] != "late_dl" || hs[kafkaio.HeaderTopic] != "late-dl" ||
			hs[kafkaio.HeaderPartition] != "0" || hs[kafkaio.HeaderError] == "" || src < first || src >= first+int64(len(late)) {
			t.Errorf("dead letter %s: headers %v, want reason late from late-dl/0 at %d..%d", m.Key, hs, first, first+int64(len(late))-1)
			continue
		}
		id := late[src-first]
		if want := fmt.Sprintf(`{"id":%d,"ts":%d}`, id, ts[id].UnixMilli()); string(m.Value) != want || hs[kafkaio.HeaderKey] != fmt.Sprintf("key-%d", id) ||
			string(m.Key) != fmt.Sprintf("late-dl/0/%d", src) {
			t.Errorf("dead letter %s = %s (source key %s), want %s of key-%d", m.Key, m.Value, hs[kafkaio.HeaderKey], want, id)
		}
		got[id]++
	}
	for _, id := range late {
		if got[id] != 1 {
			t.Errorf("late record %d: %d dead letters, want 1", id, got[id])
		}
	}
}
