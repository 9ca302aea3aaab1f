package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/test/testenv"
)

// TestMaxFileAge: under live traffic of the open hour, files.max_file_age
// bounds how far the group's committed offsets — Kafka's view of its lag,
// what KEDA scales on — trail the records: by about max_file_age (plus a
// commit interval) of records, also after a scale-up, when the new owners
// replay from commits no older than that. Without it they trail by every
// record since the open hour's files began (the whole run here, which
// fails the bound).
func TestMaxFileAge(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	const (
		parts   = 4
		perTick = 40 // records per 250 ms over 4 partitions: 40/s per partition
		age     = 3 * time.Second
		// The bound per partition: 40/s for max_file_age, a commit
		// interval (500 ms), a housekeeping tick and the sampling, with
		// room for a loaded machine.
		bound = 40 * 7
		run   = 40 * time.Second
	)
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "clickstream", parts)
	k.CreateTopic(t, "iot-telemetry", 1)
	const group = "lakesink-file-age"
	b := localBackend(t)
	cfgPath := writeConfig(t, k.Addr, group, b.storage, "127.0.0.1:0")
	editConfig(t, cfgPath, "files:\n", fmt.Sprintf("files:\n  max_file_age: %s\n", age))
	bin := testenv.Build(t, "./cmd/lakesink")
	a := testenv.Start(t, "lakesink-a", bin, testenv.Options{}, "run", "-c", cfgPath)

	// Live traffic: records of the open hour, every partition, until done.
	p := newProduced()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				produce(t, k, p, "clickstream", "clickstream", []int{0, 1, 2, 3}, perTick, time.Now().UTC(), 0, demo.Clickstream, clickID)
			}
		}
	}()
	start := time.Now()
	var bProc *testenv.Process
	worst, worstAt := int64(0), ""
	// Sample the lag once a second, after the first files had time to
	// age, and start a second instance half way: a scale-up, whose
	// rebalance (a few seconds) is left out of the samples.
	for time.Since(start) < run {
		time.Sleep(time.Second)
		el := time.Since(start)
		if bProc == nil && el >= run/2 {
			bProc = testenv.Start(t, "lakesink-b", bin, testenv.Options{}, "run", "-c", cfgPath)
		}
		if el < 2*age || (el >= run/2 && el < run/2+10*time.Second) {
			continue
		}
		high := k.HighWatermarks(t, "clickstream", parts)
		committed, _, err := k.TryCommittedOffsets(group, "clickstream", parts)
		if err != nil {
			continue
		}
		for part := 0; part < parts; part++ {
			if lag := high[part] - max(committed[part], 0); lag > worst {
				worst, worstAt = lag, fmt.Sprintf("partition %d at %s", part, el.Round(time.Second))
			}
		}
	}
	close(done)
	wg.Wait()
	t.Logf("worst lag %d records (%s); bound %d", worst, worstAt, bound)
	if worst > bound {
		t.Errorf("committed offsets trailed by %d records (%s), more than max_file_age's bound of %d", worst, worstAt, bound)
	}
	stopGracefully(t, bProc)
	stopGracefully(t, a)
}
