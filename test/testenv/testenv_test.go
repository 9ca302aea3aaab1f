package testenv

import (
	"testing"
	"time"
)

func TestHourEdgeWait(t *testing.T) {
	top := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name     string
		now      time.Time
		lateness time.Duration
		want     time.Duration
	}{
		{"mid hour", top.Add(30 * time.Minute), time.Minute, 0},
		{"edge just passed", top.Add(time.Minute + 2*time.Second), time.Minute, 3 * time.Second},
		{"edge well passed", top.Add(time.Minute + hourEdgeSlack), time.Minute, 0},
		{"inside lateness", top.Add(56 * time.Second), time.Minute, 4*time.Second + hourEdgeSlack},
		{"before the top", top.Add(-30 * time.Second), time.Minute, 90*time.Second + hourEdgeSlack},
		{"edge beyond d", top.Add(-2 * time.Minute), time.Minute, 0},
		{"no lateness", top.Add(-10 * time.Second), 0, 10*time.Second + hourEdgeSlack},
		{"lateness over an hour", top.Add(-30 * time.Second), time.Hour + time.Minute, 90*time.Second + hourEdgeSlack},
		{"other zone", top.Add(30 * time.Second).In(time.FixedZone("IST", 5*3600+1800)), time.Minute, 30*time.Second + hourEdgeSlack},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := hourEdgeWait(c.now, c.lateness, 2*time.Minute); got != c.want {
				t.Errorf("hourEdgeWait(%s, %s) = %s, want %s", c.now, c.lateness, got, c.want)
			}
		})
	}
}
