package ops

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/writers"
)

// TestAddReasons: reasons of an added source make the sink unready, after
// its own, and go when the source has none.
func TestAddReasons(t *testing.T) {
	o := New(Options{})
	o.Health.SetJoined(true, "")
	var extra []string
	o.AddReasons(func() []string { return extra })
	if ok, r := o.Readiness(); !ok {
		t.Fatalf("no reasons: not ready: %v", r)
	}
	extra = []string{"partitions not consumed: t/3,4,5"}
	o.Health.SetJoined(false, "rebalancing")
	ok, r := o.Readiness()
	if want := []string{"consumer group not joined: rebalancing", "partitions not consumed: t/3,4,5"}; ok || !slices.Equal(r, want) {
		t.Fatalf("readiness %v %q, want false %q", ok, r, want)
	}
}

// TestReasonPrefixes drives every source of readiness reasons of this
// package into its failing state at once: each reason /readyz then gives
// starts with one of Reasons() (which docs/operations.md documents, as a
// test in cmd/lakesink checks), and every prefix but the two of the
// start-up handler is given by some reason.
func TestReasonPrefixes(t *testing.T) {
	now := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	o, _ := newTestOps(t, writers.NewMemory(), &now)
	h := o.Health
	boom := errors.New("boom")
	h.SetJoined(false, JoinWaitingKafka+": "+boom.Error())
	attempt, _ := h.Upload()
	attempt(boom)
	h.Spool(boom)
	h.Catalog("events", boom)
	h.DeadLetters(boom)
	h.Events("events", DepWebhook, boom)
	_, end := h.RegistryWait(boom)
	defer end()
	h.Blocked("events", boom)
	h.WorkerStopped("events", 3, boom)
	ev := now.Add(-time.Minute)
	o.NotePartition(progress(0, 1, 100, 150, ev, ev))
	now = now.Add(10 * time.Minute) // the same commit while the lag grows
	o.NotePartition(progress(0, 1, 100, 500, ev, ev))

	ok, reasons := o.Readiness()
	if ok {
		t.Fatal("ready with every source failing")
	}
	given := map[string]bool{}
	for _, r := range reasons {
		i := slices.IndexFunc(Reasons(), func(p string) bool { return strings.HasPrefix(r, p) })
		if i < 0 {
			t.Errorf("reason %q starts with none of Reasons()", r)
			continue
		}
		given[Reasons()[i]] = true
	}
	for _, p := range Reasons() {
		if !given[p] && p != ReasonStarting && p != ReasonConnectingStorage {
			t.Errorf("no reason starts with %q; reasons: %q", p, reasons)
		}
	}
}
