package ledger_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/sink/ledger"
)

// calendarCase is a time zone and a stretch of event time around one of
// its calendar edges.
type calendarCase struct {
	name string
	zone string
	from string // RFC 3339: the first events; six hours of events follow
}

var calendarCases = []calendarCase{
	{"utc year end", "UTC", "2026-12-31T21:00:00Z"},
	{"new york fall back", "America/New_York", "2026-11-01T03:00:00Z"},
	{"new york spring forward", "America/New_York", "2026-03-08T04:00:00Z"},
	{"new york year end", "America/New_York", "2027-01-01T02:00:00Z"},
	{"london fall back", "Europe/London", "2026-10-24T22:00:00Z"},
	{"london spring forward", "Europe/London", "2026-03-28T23:00:00Z"},
	{"lord howe fall back", "Australia/Lord_Howe", "2026-04-04T12:00:00Z"},
	{"lord howe spring forward", "Australia/Lord_Howe", "2026-10-03T13:00:00Z"},
	{"kolkata year end", "Asia/Kolkata", "2026-12-31T16:00:00Z"},
}

var calendarTemplates = []string{
	"{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}",
	"{yyyy}/{MM}/{dd}/{HH}/{stream}",
}

// TestCommitProtocolCalendars is the commit protocol's simulation
// (TestCommitProtocol) with the time zone and the path template as inputs:
// events spread over six hours around a daylight-saving transition or a
// year boundary in UTC, America/New_York, Europe/London, Australia/Lord_Howe
// (30-minute shifts) and Asia/Kolkata (+05:30), with late and early events,
// random file ends, crashes and uploads that land without their commit.
// The finalizer's view is built per folder, as the finalizer builds it:
// every file rendered into one folder goes through completion.SplitOrphans
// together. Invariants: every good record is in exactly one manifest's
// files exactly once, no file is left unproven (neither listed nor
// deletable), and no file that a commit passed is deleted or changed.
//
// With the orphan rule that ignored buckets, the fall-back nights lose
// records: both 01:00 hours render to one folder, their files interleave
// in offsets, and one hour's files were deleted as the other's orphans.
func TestCommitProtocolCalendars(t *testing.T) {
	for _, cc := range calendarCases {
		for ti, tmplSrc := range calendarTemplates {
			t.Run(fmt.Sprintf("%s/template%d", cc.name, ti), func(t *testing.T) {
				loc, err := time.LoadLocation(cc.zone)
				if err != nil {
					t.Fatal(err)
				}
				tmpl, err := partitioner.ParsePathTemplate(tmplSrc)
				if err != nil {
					t.Fatal(err)
				}
				from, err := time.Parse(time.RFC3339, cc.from)
				if err != nil {
					t.Fatal(err)
				}
				for seed := uint64(1); seed <= 12; seed++ {
					runCalendar(t, seed, loc, tmpl, from)
				}
			})
		}
	}
}

func runCalendar(t *testing.T, seed uint64, loc *time.Location, tmpl *partitioner.PathTemplate, from time.Time) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	n := 800 + r.IntN(2500)
	s := &simPartition{t: t, r: r, bad: map[int64]bool{}, lake: map[string]simFile{}, dlqSent: map[int64]int{},
		commitM: ledger.Meta{WM: math.MinInt64, RW: math.MinInt64}, lateness: int64(r.IntN(3)) * 10 * 60 * 1000,
		committed: map[string]simFile{}}
	span := 6 * time.Hour
	for i := range n {
		ev := from.Add(span * time.Duration(i) / time.Duration(n))
		switch x := r.IntN(20); {
		case x < 2: // late: up to 90 minutes behind
			ev = ev.Add(-time.Duration(r.IntN(90)+1) * time.Minute)
		case x < 4: // early
			ev = ev.Add(time.Duration(r.IntN(30)) * time.Minute)
		default:
			ev = ev.Add(time.Duration(r.IntN(300)-150) * time.Second)
		}
		s.events = append(s.events, ev.UnixMilli())
		s.hours = append(s.hours, partitioner.HourOf(ev, loc).UnixMilli())
		s.fams = append(s.fams, 0)
		if r.IntN(100) == 0 {
			s.bad[int64(i)] = true
		}
	}
	crashes := s.runToEnd()

	// The finalizer's view: the files of each folder, whatever bucket.
	byFolder := map[string][]completion.ManifestFile{}
	for name, f := range s.lake {
		bucket := time.UnixMilli(f.hour).In(loc)
		folder := tmpl.Render("s", bucket)
		byFolder[folder] = append(byFolder[folder], completion.ManifestFile{Path: name, Topic: "t",
			FirstOffset: f.offsets[0], LastOffset: f.offsets[len(f.offsets)-1], Group: f.group, Bucket: bucket})
	}
	seen := map[int64]int{}
	listed := map[string]int{}
	deleted := map[string]bool{}
	for folder, files := range byFolder {
		kept, orphans, unproven := completion.SplitOrphans(files)
		for _, u := range unproven {
			t.Fatalf("seed %d: %s: file %s (offsets %d-%d) neither listed nor proven superseded after %d crashes",
				seed, folder, u.Path, u.FirstOffset, u.LastOffset, crashes)
		}
		for _, o := range orphans {
			deleted[o.Path] = true
		}
		for _, k := range kept {
			listed[k.Path]++
			f := s.lake[k.Path]
			for _, o := range f.offsets {
				if s.hours[o] != f.hour {
					t.Fatalf("seed %d: record %d of bucket %d in a file of bucket %d", seed, o, s.hours[o], f.hour)
				}
				seen[o]++
			}
		}
	}
	if o, err := s.checkSeen(seen); err != nil {
		t.Fatalf("seed %d: record %d (event %s, bucket %s, folder %s): %v after %d crashes", seed, o,
			time.UnixMilli(s.events[o]).UTC().Format(time.RFC3339), time.UnixMilli(s.hours[o]).In(loc).Format(time.RFC3339),
			tmpl.Render("s", time.UnixMilli(s.hours[o]).In(loc)), err, crashes)
	}
	for name, f := range s.committed {
		if deleted[name] || listed[name] != 1 {
			t.Fatalf("seed %d: committed file %s deleted (%v) or listed %d times", seed, name, deleted[name], listed[name])
		}
		if !slices.Equal(s.lake[name].offsets, f.offsets) {
			t.Fatalf("seed %d: committed file %s overwritten: %v, was %v", seed, name, s.lake[name].offsets, f.offsets)
		}
	}
}
