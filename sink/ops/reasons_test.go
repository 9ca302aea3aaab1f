package ops

import (
	"slices"
	"testing"
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
