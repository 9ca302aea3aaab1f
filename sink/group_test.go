package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/writers"
)

// running is one Sink running in the test process.
type running struct {
	s      *Sink
	cancel context.CancelFunc
	done   chan error
}

func startSink(t *testing.T, s *Sink) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	return r
}

// stop shuts the sink down gracefully and returns Run's error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of its context ending")
		return nil
	}
}

// ownedBy returns the partitions of topic s owns in its current generation.
func ownedBy(s *Sink, topic string, n int) []int {
	var out []int
	for p := range n {
		if s.owns(topic, p) {
			out = append(out, p)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSinkGroupLoop runs Run's consumer-group loop in the test process:
// one instance joins and owns every partition; a second joins and the
// partitions are split between them with no partition owned twice; the
// second shuts down gracefully and the first owns all again; the join
// errors a broker answers make the instance unready (naming the error) and
// are retried until a join succeeds; every record is in the lake exactly
// once through the manifests, across the three generations; after its
// shutdown an instance is not ready and says why.
func TestSinkGroupLoop(t *testing.T) {
	const parts = 4
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]

	// The first two JoinGroup requests are refused: the loop must report
	// them and retry.
	var refused atomic.Int32
	cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if refused.Add(1) > 2 {
			cluster.DropControl()
			return nil, nil, false
		}
		cluster.KeepControl()
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = int16(kafka.GroupAuthorizationFailed)
		return resp, nil, true
	})

	lake := writers.NewMemory()
	// Both instances share one spool folder, as two processes on one host
	// with one config do: each works in a folder of its own below it.
	spoolDir := t.TempDir()
	newSink := func() (*Sink, *prometheus.Registry) {
		cfg := testConfig(broker)
		cfg.Files.SpoolDir = spoolDir
		cfg.Kafka.SessionTimeout = config.Duration(6 * time.Second)
		reg := prometheus.NewRegistry()
		s, err := New(Options{Config: cfg, Writer: lake, Registry: reg, Tick: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return s, reg
	}
	a, _ := newSink()
	ra := startSink(t, a)
	defer func() {
		if ra != nil {
			_ = ra.stop(t)
		}
	}()

	sawRefusal := false
	waitFor(t, "instance a to own every partition", 30*time.Second, func() bool {
		if ok, reasons := a.Readiness(); !ok && strings.Contains(strings.Join(reasons, "\n"), "consumer group not joined: ") &&
			strings.Contains(strings.Join(reasons, "\n"), "Group Authorization Failed") {
			sawRefusal = true
		}
		return len(ownedBy(a, "events", parts)) == parts
	})
	if refused.Load() < 2 {
		t.Errorf("the broker refused %d joins, want 2 (the control did not run)", refused.Load())
	}
	if !sawRefusal {
		t.Error("readiness never named the refused join while the broker refused it")
	}
	if got := testutil.ToFloat64(a.metrics.AssignedPartitions); got != parts {
		t.Errorf("assigned partitions = %v, want %d", got, parts)
	}
	if ok, reasons := a.Readiness(); !ok {
		t.Errorf("not ready after joining: %v", reasons)
	}

	// Records of an hour long past on every partition: their manifest is
	// the exactly-once check at the end.
	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	produce := func(from, n int) {
		t.Helper()
		w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "events", BatchTimeout: time.Millisecond,
			Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return int(m.Key[0]) % parts })}
		var msgs []kafka.Message
		for id := from; id < from+n; id++ {
			msgs = append(msgs, kafka.Message{Key: []byte{byte(id)}, Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, id, hour.Add(time.Duration(id)*time.Second).UnixMilli())})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		_ = w.Close()
	}
	produce(0, 200)

	b, _ := newSink()
	rb := startSink(t, b)
	waitFor(t, "the partitions to be split between a and b", 45*time.Second, func() bool {
		oa, ob := ownedBy(a, "events", parts), ownedBy(b, "events", parts)
		return len(oa) > 0 && len(ob) > 0 && len(oa)+len(ob) == parts
	})
	oa, ob := ownedBy(a, "events", parts), ownedBy(b, "events", parts)
	for _, p := range oa {
		if slices.Contains(ob, p) {
			t.Errorf("partition %d owned by both instances: a %v, b %v", p, oa, ob)
		}
	}
	if got := testutil.ToFloat64(a.metrics.Rebalances); got < 2 {
		t.Errorf("a joined %v generations, want at least 2", got)
	}
	produce(200, 200)

	if err := rb.stop(t); err != nil {
		t.Errorf("b's Run = %v, want nil after a graceful shutdown", err)
	}
	if ok, reasons := b.Readiness(); ok || !slices.Contains(reasons, "consumer group not joined: shut down") {
		t.Errorf("b after shutdown: ready %v, reasons %v", ok, reasons)
	}
	if len(ownedBy(b, "events", parts)) != 0 {
		t.Errorf("b still owns %v after shutdown", ownedBy(b, "events", parts))
	}
	waitFor(t, "a to own every partition again", 45*time.Second, func() bool {
		return len(ownedBy(a, "events", parts)) == parts
	})

	key := fmt.Sprintf("events/dt=%s/hour=%s/_SUCCESS", hour.Format("2006-01-02"), hour.Format("15"))
	var m completion.Manifest
	waitFor(t, "the hour's marker listing all 400 records", 60*time.Second, func() bool {
		rc, err := lake.Get(context.Background(), key)
		if err != nil {
			return false
		}
		defer rc.Close()
		m = completion.Manifest{}
		return json.NewDecoder(rc).Decode(&m) == nil && m.Records == 400
	})
	// Exactly once: the listed files' offset ranges per partition do not
	// overlap and cover each partition's records.
	ranges := map[int][][2]int64{}
	for _, f := range m.Files {
		ranges[f.Partition] = append(ranges[f.Partition], [2]int64{f.FirstOffset, f.LastOffset})
	}
	var total int64
	for _, p := range slices.Sorted(maps.Keys(ranges)) {
		rs := ranges[p]
		slices.SortFunc(rs, func(x, y [2]int64) int { return int(x[0] - y[0]) })
		next := int64(0)
		for _, r := range rs {
			if r[0] != next {
				t.Errorf("partition %d: files %v leave a gap or overlap at offset %d", p, rs, next)
			}
			next = r[1] + 1
		}
		total += next
	}
	if total != 400 {
		t.Errorf("manifest's files cover %d offsets, want 400", total)
	}

	err = ra.stop(t)
	ra = nil
	if err != nil {
		t.Errorf("a's Run = %v", err)
	}
	// Each had its own spool folder, removed at its shutdown.
	if a.env.SpoolDir == b.env.SpoolDir || filepath.Dir(a.env.SpoolDir) != filepath.Join(spoolDir, a.cfg.Kafka.GroupID) {
		t.Errorf("spool folders a %s, b %s: want two below %s", a.env.SpoolDir, b.env.SpoolDir, spoolDir)
	}
	left, err := os.ReadDir(filepath.Join(spoolDir, a.cfg.Kafka.GroupID))
	if err != nil || len(left) != 0 {
		t.Errorf("left in the spool folder after both shut down: %v %v", left, err)
	}
}

// TestSinkWaitsForSpool: a spool folder that cannot be made at start (a
// file stands where its parent should be) is a spool fault on /readyz
// naming the path, retried, not an exit; once the disk is usable the sink
// claims its folder, joins the group and owns the partitions.
func TestSinkWaitsForSpool(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	blocker := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(cluster.ListenAddrs()[0])
	cfg.Files.SpoolDir = filepath.Join(blocker, "spool")
	s, err := New(Options{Config: cfg, Writer: writers.NewMemory(), Registry: prometheus.NewRegistry(), Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := startSink(t, s)
	waitFor(t, "readiness to name the spool fault", 20*time.Second, func() bool {
		ok, reasons := s.Readiness()
		all := strings.Join(reasons, "\n")
		return !ok && strings.Contains(all, "spool disk failing") && strings.Contains(all, blocker)
	})
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sink to own both partitions", 45*time.Second, func() bool {
		return len(ownedBy(s, "events", 2)) == 2
	})
	if ok, reasons := s.Readiness(); !ok {
		t.Errorf("not ready once the spool disk works: %v", reasons)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
}
