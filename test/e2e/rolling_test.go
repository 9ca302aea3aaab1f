package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/test/testenv"
)

// TestRollingRestart: three instances under live traffic, restarted one
// after another (SIGTERM, wait for the exit, start again), as a rolling
// deploy does. The same scenario runs with kafka.assignor: range — every
// rebalance throws every open file away, what lakesink did before — and
// with sticky, where partitions that stay keep their files: the records
// read a second time (lakesink_records_replayed_total, summed over every
// instance's life) must be at most a tenth, and every record must be in
// the lake exactly once either way.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	replayed := map[string]float64{}
	for _, assignor := range []string{"range", "sticky"} {
		t.Run(assignor, func(t *testing.T) {
			replayed[assignor] = runRollingRestart(t, assignor)
		})
	}
	t.Logf("records read again: range %v, sticky %v", replayed["range"], replayed["sticky"])
	if replayed["range"] == 0 {
		t.Fatalf("the range run read nothing again: the scenario does not exercise rebalances")
	}
	if replayed["sticky"] > replayed["range"]/10 {
		t.Errorf("sticky assignment read %v records again, more than a tenth of range's %v", replayed["sticky"], replayed["range"])
	}
}

// runRollingRestart runs the scenario with assignor and returns the
// records read again over all instances.
func runRollingRestart(t *testing.T, assignor string) float64 {
	const (
		parts = 12
		rate  = 600 // records/s over all partitions
		run   = 80 * time.Second
	)
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "clickstream", parts)
	k.CreateTopic(t, "iot-telemetry", 1)
	group := "lakesink-rolling-" + assignor
	b := localBackend(t)
	bin := testenv.Build(t, "./cmd/lakesink")
	type instance struct {
		proc *testenv.Process
		http string
		cfg  string
	}
	insts := make([]*instance, 3)
	var total float64
	start := func(i int) {
		if insts[i] == nil {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
			cfg := writeConfig(t, k.Addr, group, b.storage, addr)
			editConfig(t, cfg, "  commit_interval: 500ms\n", "  commit_interval: 500ms\n  assignor: "+assignor+"\n  session_timeout: 6s\n  rebalance_timeout: 10s\n")
			insts[i] = &instance{http: addr, cfg: cfg}
		}
		insts[i].proc = testenv.Start(t, fmt.Sprintf("lakesink-%d", i), bin, testenv.Options{}, "run", "-c", insts[i].cfg)
	}
	// stop ends instance i gracefully and adds what it read again.
	stop := func(i int) {
		total += scrapeCounter(t, insts[i].http, "lakesink_records_replayed_total")
		stopGracefully(t, insts[i].proc)
	}
	for i := range insts {
		start(i)
	}

	// Live traffic: event time runs through 50 minutes of one past hour
	// over the run, as the current hour's would: no hour closes while the
	// instances restart, so each open file holds everything its partition
	// read since its owner last committed — what a rebalance costs a
	// caught-up stream. (With hours closing every 20 s, range's cost was
	// bounded by 20 s of records, and on a loaded machine sticky's — the
	// seconds a restarted instance takes to join — came near the tenth
	// this test checks.) The hour closes once the traffic stops and the
	// partitions are idle.
	p := newProduced()
	from := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		began := time.Now()
		all := make([]int, parts)
		for i := range all {
			all[i] = i
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			at := from.Add(time.Duration(float64(50*time.Minute) * float64(time.Since(began)) / float64(run)))
			if time.Since(began) >= run {
				return
			}
			produce(t, k, p, "clickstream", "clickstream", all, rate/10, at, 0, demo.Clickstream, clickID)
		}
	}()
	// The rolling restart, from 30 s in (a deploy comes at any minute of
	// the hour; the open files then hold 30 s of records): one instance
	// every 12 s.
	time.Sleep(30 * time.Second)
	r := rand.New(rand.NewPCG(1, 2))
	for _, i := range r.Perm(3) {
		stop(i)
		start(i)
		time.Sleep(12 * time.Second)
	}
	wg.Wait()
	cancel()

	// Quiet partitions of the closed hour finish their files; it gets its
	// marker.
	hours := []time.Time{from}
	testenv.Eventually(t, 3*time.Minute, 500*time.Millisecond, "markers", func() error {
		for _, h := range hours {
			key := fmt.Sprintf("clickstream/dt=%s/hour=%s/_SUCCESS", h.Format("2006-01-02"), h.Format("15"))
			if ok, err := b.lake.Exists(context.Background(), key); err != nil || !ok {
				return fmt.Errorf("no marker %s (%v)", key, err)
			}
		}
		return nil
	})
	for i := range insts {
		stop(i)
	}
	checkExactlyOnce(t, b.lake, "clickstream", p.valid["clickstream"])
	t.Logf("%s: %d records produced, %v read again", assignor, len(p.valid["clickstream"]), total)
	return total
}

// scrapeCounter reads a counter without labels from the /metrics of the
// instance at addr (0 when it is not there).
func scrapeCounter(t *testing.T, addr, name string) float64 {
	t.Helper()
	code, body := httpGet(addr, "/metrics")
	if code != 200 {
		t.Fatalf("GET %s/metrics: %d", addr, code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return v
		}
	}
	return 0
}
