package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/test/testenv"
)

// TestUnconsumedPartitions: a live member of the sink's group that holds
// partitions and never consumes them (another deployment with the same
// group_id; from the group's offsets it looks like the member kfake keeps
// after it was killed while joining, see docs/development.md). Records
// that arrive on its partitions wait with no commit, so the sink reports
// exactly those partitions — /readyz 503 naming them,
// lakesink_partitions_unconsumed — and never its own; once the member
// leaves, the sink takes them over and the report clears. The log has a
// warning when it starts and a line when it clears.
func TestUnconsumedPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "clickstream", 6)
	k.CreateTopic(t, "iot-telemetry", 1)
	const group = "lakesink-unconsumed"
	b := localBackend(t)
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	cfgPath := writeConfig(t, k.Addr, group, b.storage, httpAddr)
	// Short timeouts: partitions count as unconsumed after session +
	// rebalance timeout + 2 commit intervals = 3s + 3s + 1s.
	editConfig(t, cfgPath, "  commit_interval: 500ms\n",
		"  commit_interval: 500ms\n  session_timeout: 3s\n  heartbeat_interval: 500ms\n  rebalance_timeout: 3s\n")
	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"), testenv.Options{}, "run", "-c", cfgPath)
	testenv.Eventually(t, time.Minute, 100*time.Millisecond, "the sink owns all 7 partitions", func() error {
		if got := metric(httpAddr, "lakesink_assigned_partitions"); got != 7 {
			return fmt.Errorf("%v partitions assigned", got)
		}
		return nil
	})

	// The other member: joins, holds its partitions, never reads.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	other, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: group, Brokers: []string{k.Addr}, Topics: []string{"clickstream", "iot-telemetry"},
		SessionTimeout: 3 * time.Second, HeartbeatInterval: 500 * time.Millisecond, RebalanceTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// held is the other member's latest generation: its clickstream
	// partitions and how many partitions it holds in all.
	type holding struct {
		clicks []int
		n      int
	}
	held := make(chan holding, 1)
	go func() {
		for {
			gen, err := other.Next(ctx)
			if err != nil {
				return
			}
			var ps holding
			for topic, as := range gen.Assignments {
				ps.n += len(as)
				for _, a := range as {
					if topic == "clickstream" {
						ps.clicks = append(ps.clicks, a.ID)
					}
				}
			}
			gen.Start(func(gctx context.Context) { <-gctx.Done() })
			select {
			case <-held:
			default:
			}
			held <- ps
		}
	}()
	var theirs []int
	testenv.Eventually(t, time.Minute, 100*time.Millisecond, "the other member holds clickstream partitions and the sink the rest", func() error {
		var h holding
		select {
		case h = <-held:
			held <- h
		default:
			return fmt.Errorf("the other member has no generation yet")
		}
		theirs = slices.Sorted(slices.Values(h.clicks))
		if len(theirs) == 0 || len(theirs) == 6 {
			return fmt.Errorf("the other member holds clickstream partitions %v", theirs)
		}
		if got := metric(httpAddr, "lakesink_assigned_partitions"); int(got) != 7-h.n {
			return fmt.Errorf("the sink owns %v partitions, the other member %d", got, h.n)
		}
		return nil
	})

	// Records to every clickstream partition: the sink's are consumed,
	// the other member's wait.
	p := newProduced()
	produce(t, k, p, "clickstream", "clickstream", []int{0, 1, 2, 3, 4, 5}, 600, time.Now().UTC().Add(-time.Minute), 0, demo.Clickstream, clickID)

	want := make([]string, len(theirs))
	for i, p := range theirs {
		want[i] = strconv.Itoa(p)
	}
	prefix := "partitions not consumed: clickstream/" + strings.Join(want, ",") + " have had records waiting"
	testenv.Eventually(t, 2*time.Minute, 250*time.Millisecond, "/readyz and lakesink_partitions_unconsumed naming the other member's partitions", func() error {
		code, reasons := readyz(httpAddr)
		if code != http.StatusServiceUnavailable || !slices.ContainsFunc(reasons, func(r string) bool { return strings.HasPrefix(r, prefix) }) {
			return fmt.Errorf("/readyz %d %q, want 503 with %q", code, reasons, prefix)
		}
		for _, r := range reasons {
			if strings.HasPrefix(r, "partitions not consumed:") && !strings.HasPrefix(r, prefix) {
				return fmt.Errorf("/readyz reports other partitions too: %q", r)
			}
		}
		if got := metricLabeled(httpAddr, "lakesink_partitions_unconsumed", `topic="clickstream"`); got != float64(len(theirs)) {
			return fmt.Errorf("lakesink_partitions_unconsumed{topic=clickstream} %v, want %d", got, len(theirs))
		}
		return nil
	})
	logged := func(msg, attrs string) func() error {
		return func() error {
			for _, l := range strings.Split(proc.Log(), "\n") {
				if strings.Contains(l, msg) && strings.Contains(l, attrs) {
					return nil
				}
			}
			return fmt.Errorf("no log line %q with %s", msg, attrs)
		}
	}
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, "the warning", logged(
		"partitions not consumed by any live group member", `"topic":"clickstream","partitions":"`+strings.Join(want, ",")+`"`))

	// The other member leaves: the sink takes its partitions over.
	cancel()
	if err := other.Close(); err != nil {
		t.Logf("close the other member: %v", err)
	}
	testenv.Eventually(t, 2*time.Minute, 250*time.Millisecond, "the report clearing once the sink consumes every partition", func() error {
		if code, reasons := readyz(httpAddr); code != http.StatusOK {
			return fmt.Errorf("/readyz %d %q", code, reasons)
		}
		if got := metric(httpAddr, "lakesink_partitions_unconsumed"); got != 0 {
			return fmt.Errorf("lakesink_partitions_unconsumed %v", got)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, "the recovery line", logged(
		"recovered: partitions consumed again", `"topic":"clickstream"`))
}

// readyz is /readyz's status code and reasons.
func readyz(addr string) (int, []string) {
	code, body := httpGet(addr, "/readyz")
	var r struct {
		Reasons []string `json:"reasons"`
	}
	_ = json.Unmarshal([]byte(body), &r)
	return code, r.Reasons
}

// metricLabeled returns the sample of a metric whose labels contain
// labels (0 if absent).
func metricLabeled(addr, name, labels string) float64 {
	code, body := httpGet(addr, "/metrics")
	if code != http.StatusOK {
		return 0
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, labels) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return v
		}
	}
	return 0
}

// TestKilledWhileJoining is issue 22's sequence through the binary: A
// joins and is killed (kill -9); B starts and is killed while its
// JoinGroup waits for A to be expired; C starts. When A's session times
// out, the group's next generation gives B — dead, its JoinGroup never
// answered — half the partitions. The broker must expire B after its
// session timeout too, as a real Kafka broker does (kfake alone kept it in
// about half of the runs; test/kafkabroker/kfakenet), so that C ends up
// with every partition and consumes every record.
func TestKilledWhileJoining(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "clickstream", 6)
	k.CreateTopic(t, "iot-telemetry", 1)
	const group = "lakesink-killed-joining"
	b := localBackend(t)
	p := newProduced()
	// Records of an hour the wall clock has closed: a quiet partition's
	// files of it are finished and committed (the open hour's would stay
	// open until it closes, and with them the committed offsets).
	produce(t, k, p, "clickstream", "clickstream", []int{0, 1, 2, 3, 4, 5}, 600, time.Now().UTC().Add(-3*time.Hour), 0, demo.Clickstream, clickID)
	bin := testenv.Build(t, "./cmd/lakesink")
	start := func(name string) (*testenv.Process, string) {
		httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
		return testenv.Start(t, name, bin, testenv.Options{}, "run", "-c", writeConfig(t, k.Addr, group, b.storage, httpAddr)), httpAddr
	}
	describe := func() (string, int, error) {
		resp, err := k.Client().DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err != nil {
			return "", 0, err
		}
		if len(resp.Groups) != 1 || resp.Groups[0].Error != nil {
			return "", 0, fmt.Errorf("describe group %s: %+v", group, resp.Groups)
		}
		return resp.Groups[0].GroupState, len(resp.Groups[0].Members), nil
	}

	a, aHTTP := start("lakesink-a")
	testenv.Eventually(t, time.Minute, 100*time.Millisecond, "A owns every partition", func() error {
		if got := metric(aHTTP, "lakesink_assigned_partitions"); got != 7 {
			return fmt.Errorf("%v partitions assigned", got)
		}
		return nil
	})
	a.Kill()

	bProc, _ := start("lakesink-b")
	testenv.Eventually(t, time.Minute, 50*time.Millisecond, "B's JoinGroup waiting for the dead A", func() error {
		state, n, err := describe()
		if err != nil {
			return err
		}
		if state != "PreparingRebalance" || n != 2 {
			return fmt.Errorf("group %s with %d members", state, n)
		}
		return nil
	})
	bProc.Kill()

	_, cHTTP := start("lakesink-c")
	testenv.Eventually(t, 3*time.Minute, 250*time.Millisecond, "C owning every partition and every record committed", func() error {
		if got := metric(cHTTP, "lakesink_assigned_partitions"); got != 7 {
			_, reasons := readyz(cHTTP)
			return fmt.Errorf("C owns %v of 7 partitions (readiness reasons %q)", got, reasons)
		}
		committed, _, err := k.TryCommittedOffsets(group, "clickstream", 6)
		if err != nil {
			return err
		}
		for part, n := range p.perPart["clickstream"] {
			if committed[part] != int64(n) {
				return fmt.Errorf("clickstream/%d committed %d of %d", part, committed[part], n)
			}
		}
		return nil
	})
}
