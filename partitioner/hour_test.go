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

func TestFolderHours(t *testing.T) {
	u := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name string
		zone string
		hour string   // a bucket start
		want []string // RFC 3339 in the zone
	}{
		{"utc", "UTC", "2026-11-25T13:00:00Z", []string{"2026-11-25T13:00:00Z"}},
		{"kolkata", "Asia/Kolkata", "2026-11-25T13:30:00Z", []string{"2026-11-25T19:00:00+05:30"}},
		{"ny fall back first", "America/New_York", "2026-11-01T05:00:00Z",
			[]string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"}},
		{"ny fall back second", "America/New_York", "2026-11-01T06:00:00Z",
			[]string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"}},
		{"ny fall back next hour", "America/New_York", "2026-11-01T07:00:00Z", []string{"2026-11-01T02:00:00-05:00"}},
		{"ny fall back hour before", "America/New_York", "2026-11-01T04:00:00Z", []string{"2026-11-01T00:00:00-04:00"}},
		{"ny spring forward", "America/New_York", "2026-03-08T06:00:00Z", []string{"2026-03-08T01:00:00-05:00"}},
		{"ny spring forward after", "America/New_York", "2026-03-08T07:00:00Z", []string{"2026-03-08T03:00:00-04:00"}},
		{"london fall back", "Europe/London", "2026-10-25T00:00:00Z",
			[]string{"2026-10-25T01:00:00+01:00", "2026-10-25T01:00:00Z"}},
		{"lord howe fall back", "Australia/Lord_Howe", "2026-04-04T15:00:00Z",
			[]string{"2026-04-05T01:00:00+11:00", "2026-04-05T01:30:00+10:30"}},
		{"lord howe spring", "Australia/Lord_Howe", "2026-10-03T15:30:00Z", []string{"2026-10-04T02:30:00+11:00"}},
		// A rule change: Asia/Pyongyang moved from +09:00 to +08:30 at
		// midnight of 2015-08-15, repeating 23:30-00:00 of 2015-08-14.
		{"pyongyang rule change", "Asia/Pyongyang", "2015-08-14T14:00:00Z",
			[]string{"2015-08-14T23:00:00+09:00", "2015-08-14T23:30:00+08:30"}},
		// Pacific/Apia skipped 2011-12-30 entirely (-10 to +14).
		{"apia day skipped", "Pacific/Apia", "2011-12-30T10:00:00Z", []string{"2011-12-31T00:00:00+14:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := mustLoad(t, tt.zone)
			h := HourOf(u(tt.hour), loc)
			if !h.Equal(u(tt.hour)) {
				t.Fatalf("%s is not a bucket start (HourOf: %s)", tt.hour, h.Format(time.RFC3339))
			}
			var got []string
			for _, b := range FolderHours(h, loc) {
				got = append(got, b.Format(time.RFC3339))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("FolderHours(%s) = %v, want %v", tt.hour, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("FolderHours(%s) = %v, want %v", tt.hour, got, tt.want)
				}
			}
		})
	}
}

// TestBucketsPartitionTime walks every bucket of several zones across a
// year boundary and both DST transitions: each bucket ends where the next
// starts (NextHour), is at most an hour long, and every bucket of a folder
// label is found by FolderHours from any of them.
func TestBucketsPartitionTime(t *testing.T) {
	for _, zone := range []string{"UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia", "Asia/Pyongyang"} {
		t.Run(zone, func(t *testing.T) {
			loc := mustLoad(t, zone)
			start := HourOf(time.Date(2025, 12, 25, 0, 0, 0, 0, time.UTC), loc)
			end := time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC)
			if zone == "Pacific/Apia" || zone == "Asia/Pyongyang" {
				start = HourOf(time.Date(2011, 12, 1, 0, 0, 0, 0, time.UTC), loc) // Apia's skipped day; Pyongyang moved to +8:30 in 2015
				end = time.Date(2018, 6, 1, 0, 0, 0, 0, time.UTC)
			}
			labels := map[string][]time.Time{}
			for b := start; b.Before(end); {
				n := NextHour(b, loc)
				if !n.After(b) || n.Sub(b) > time.Hour {
					t.Fatalf("bucket %s: next %s", b.Format(time.RFC3339), n.Format(time.RFC3339))
				}
				// Every instant of [b, n) maps to b.
				for _, probe := range []time.Time{b, b.Add(n.Sub(b) / 2), n.Add(-time.Nanosecond)} {
					if got := HourOf(probe, loc); !got.Equal(b) {
						t.Fatalf("HourOf(%s) = %s, want %s", probe.UTC().Format(time.RFC3339Nano), got.Format(time.RFC3339), b.Format(time.RFC3339))
					}
				}
				lbl := b.Format("2006-01-02T15")
				labels[lbl] = append(labels[lbl], b)
				b = n
			}
			for lbl, bs := range labels {
				if bs[0].Before(start.Add(folderReach)) || bs[len(bs)-1].After(end.Add(-folderReach)) {
					continue // the walk may not hold every bucket of the label
				}
				for _, b := range bs {
					got := FolderHours(b, loc)
					if len(got) != len(bs) {
						t.Fatalf("label %s: FolderHours(%s) = %v, want %v", lbl, b.Format(time.RFC3339), got, bs)
					}
					for i := range got {
						if !got[i].Equal(bs[i]) {
							t.Fatalf("label %s: FolderHours(%s) = %v, want %v", lbl, b.Format(time.RFC3339), got, bs)
						}
					}
				}
			}
		})
	}
}
