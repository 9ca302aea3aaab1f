package partitioner

import (
	"testing"
	"time"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load location %s: %v", name, err)
	}
	return loc
}

func TestHourOf(t *testing.T) {
	utc := time.UTC
	kolkata := mustLoad(t, "Asia/Kolkata")
	kathmandu := mustLoad(t, "Asia/Kathmandu")
	ny := mustLoad(t, "America/New_York")
	lordHowe := mustLoad(t, "Australia/Lord_Howe") // DST shifts by 30 minutes
	u := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name string
		t    time.Time
		loc  *time.Location
		want string // RFC 3339 in loc
	}{
		{"utc mid hour", u("2026-11-25T13:47:12.5Z"), utc, "2026-11-25T13:00:00Z"},
		{"utc on the hour", u("2026-11-25T13:00:00Z"), utc, "2026-11-25T13:00:00Z"},
		{"utc last nanosecond", u("2026-11-25T13:59:59.999999999Z"), utc, "2026-11-25T13:00:00Z"},
		{"nil loc is utc", u("2026-11-25T13:30:00+02:00"), nil, "2026-11-25T11:00:00Z"},
		{"kolkata", u("2026-11-25T13:10:00Z"), kolkata, "2026-11-25T18:00:00+05:30"}, // 18:40 IST
		{"kolkata before :30 utc", u("2026-11-25T13:29:59Z"), kolkata, "2026-11-25T18:00:00+05:30"},
		{"kolkata :30 utc starts hour", u("2026-11-25T13:30:00Z"), kolkata, "2026-11-25T19:00:00+05:30"},
		{"kathmandu", u("2026-11-25T13:14:59Z"), kathmandu, "2026-11-25T18:00:00+05:45"},      // 18:59:59
		{"kathmandu next", u("2026-11-25T13:15:00Z"), kathmandu, "2026-11-25T19:00:00+05:45"}, // 19:00
		{"kathmandu across midnight", u("2026-11-25T18:20:00Z"), kathmandu, "2026-11-26T00:00:00+05:45"},
		// 2026-03-08: New York skips 02:00-03:00 EST.
		{"ny before dst start", u("2026-03-08T06:59:59Z"), ny, "2026-03-08T01:00:00-05:00"},
		{"ny at dst start", u("2026-03-08T07:00:00Z"), ny, "2026-03-08T03:00:00-04:00"},
		{"ny after dst start", u("2026-03-08T07:30:00Z"), ny, "2026-03-08T03:00:00-04:00"},
		// 2026-11-01: New York repeats 01:00-02:00.
		{"ny first 01h (EDT)", u("2026-11-01T05:30:00Z"), ny, "2026-11-01T01:00:00-04:00"},
		{"ny second 01h (EST)", u("2026-11-01T06:30:00Z"), ny, "2026-11-01T01:00:00-05:00"},
		{"ny second 01h start", u("2026-11-01T06:00:00Z"), ny, "2026-11-01T01:00:00-05:00"},
		{"ny 02h after repeat", u("2026-11-01T07:00:00Z"), ny, "2026-11-01T02:00:00-05:00"},
		// 2026-04-05 02:00 +11 Lord Howe goes back to 01:30 +10:30.
		{"lord howe before fallback", u("2026-04-04T14:45:00Z"), lordHowe, "2026-04-05T01:00:00+11:00"},
		{"lord howe after fallback", u("2026-04-04T15:15:00Z"), lordHowe, "2026-04-05T01:30:00+10:30"},
		// 2026-10-04 02:00 +10:30 Lord Howe jumps to 02:30 +11.
		{"lord howe after spring", u("2026-10-03T15:45:00Z"), lordHowe, "2026-10-04T02:30:00+11:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := HourOf(tt.t, tt.loc)
			want := u(tt.want)
			if !got.Equal(want) || got.Format(time.RFC3339) != tt.want {
				t.Errorf("HourOf(%s) = %s, want %s", tt.t.Format(time.RFC3339Nano), got.Format(time.RFC3339), tt.want)
			}
			wantLoc := tt.loc
			if wantLoc == nil {
				wantLoc = time.UTC
			}
			if got.Location() != wantLoc {
				t.Errorf("location = %v, want %v", got.Location(), wantLoc)
			}
			if got.After(tt.t) || tt.t.Sub(got) >= time.Hour {
				t.Errorf("HourOf(%s) = %s does not contain t", tt.t, got)
			}
		})
	}
}

// TestHourOfDistinctAcrossFallback walks the whole DST-end night minute by
// minute: every bucket start is a distinct instant, buckets never overlap and
// each is at most an hour long.
func TestHourOfDistinctAcrossFallback(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	start := time.Date(2026, 10, 31, 22, 0, 0, 0, time.UTC)
	var starts []time.Time
	for m := 0; m < 12*60; m++ {
		at := start.Add(time.Duration(m) * time.Minute)
		h := HourOf(at, ny)
		if n := len(starts); n == 0 || !starts[n-1].Equal(h) {
			if n > 0 && !h.After(starts[n-1]) {
				t.Fatalf("bucket start %s after %s does not move forward", h, starts[n-1])
			}
			starts = append(starts, h)
		}
	}
	if len(starts) != 12 {
		t.Fatalf("got %d buckets in 12 hours, want 12: %v", len(starts), starts)
	}
}
