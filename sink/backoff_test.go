package sink

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	steps := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, s := range steps {
		s *= time.Millisecond
		if d := b.next(); d < s/2 || d > s {
			t.Fatalf("wait %d = %v, want between %v and %v", i, d, s/2, s)
		}
	}
	b.reset(100 * time.Millisecond)
	if d := b.next(); d > 100*time.Millisecond {
		t.Fatalf("after reset wait = %v, want <= 100ms", d)
	}
}
