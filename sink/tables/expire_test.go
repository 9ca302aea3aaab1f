package tables

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakesink/lakesink/sink/ledger"
)

// TestPlanExpiry: how many of the current snapshot's ancestors Expire
// keeps, from their ages and summaries.
func TestPlanExpiry(t *testing.T) {
	now := time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)
	m := Maintenance{OlderThan: 168 * time.Hour, KeepLast: 2}
	progress := func(group string, keys ...string) iceberg.Properties {
		entries := map[string]Entry{}
		for _, k := range keys {
			entries[k] = Entry{Generation: 1, Member: "a", Offset: 5}
		}
		b, _ := json.Marshal(entries)
		return iceberg.Properties{PropGroup: group, PropStream: "clicks", PropProgress: string(b)}
	}
	complete := func(at string) iceberg.Properties {
		return iceberg.Properties{PropGroup: "g", PropStream: "clicks", PropCompleteThrough: at}
	}
	// s is a snapshot age hours old with summary properties p (nil: none).
	type s struct {
		age float64
		p   iceberg.Properties
	}
	old := s{age: 200}
	for _, c := range []struct {
		name  string
		chain []s // newest first
		m     Maintenance
		want  int
	}{
		{"keep last only", []s{old, old, old, old, old}, m, 2},
		{"younger than the cutoff", []s{{age: 1}, {age: 2}, {age: 3}, old, old}, Maintenance{OlderThan: 168 * time.Hour, KeepLast: 1}, 3},
		{"the walk stops at the first old one beyond keep last", []s{old, {age: 1}, old, {age: 1}}, Maintenance{OlderThan: 168 * time.Hour, KeepLast: 1}, 2},
		{"all young", []s{{age: 1}, {age: 2}, {age: 3}}, m, 3},
		{"a partition's progress pins its snapshot", []s{old, old, old, {200, progress("g", "clicks/0")}, old}, m, 4},
		{"only the newest entry of a partition", []s{old, {200, progress("g", "clicks/0")}, old, {200, progress("g", "clicks/0")}, old}, Maintenance{KeepLast: 1}, 2},
		{"each partition's newest entry", []s{{200, progress("g", "clicks/1")}, old, {200, progress("g", "clicks/0", "clicks/1")}, old}, Maintenance{KeepLast: 1}, 3},
		{"another group's progress pins nothing", []s{old, old, old, {200, progress("other", "clicks/0")}}, m, 2},
		{"the oldest snapshot with the newest completion", []s{old, {200, complete("2026-12-01T11:00:00Z")}, old, {200, complete("2026-12-01T11:00:00Z")}, {200, complete("2026-12-01T10:00:00Z")}, old}, m, 4},
		{"an unparsable completion pins nothing", []s{old, old, {200, complete("soon")}}, m, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			chain := make([]table.Snapshot, len(c.chain))
			for i, x := range c.chain {
				chain[i] = table.Snapshot{SnapshotID: int64(100 - i), TimestampMs: now.Add(-time.Duration(x.age * float64(time.Hour))).UnixMilli()}
				if x.p != nil {
					chain[i].Summary = &table.Summary{Operation: table.OpAppend, Properties: x.p}
				}
			}
			if got := planExpiry(chain, "g", "clicks", c.m, now); got != c.want {
				t.Errorf("keep %d, want %d", got, c.want)
			}
		})
	}
}

// snapshotIDs returns the table's current snapshot and its ancestors,
// newest first, and the number of snapshots in the metadata.
func snapshotIDs(t *testing.T, tb *Table) ([]int64, int) {
	t.Helper()
	fresh, err := tb.cat.LoadTable(context.Background(), tb.ident)
	if err != nil {
		t.Fatal(err)
	}
	md := fresh.Metadata()
	var ids []int64
	for _, s := range table.AncestorsOf(fresh.CurrentSnapshot().SnapshotID, md.SnapshotByID) {
		ids = append(ids, s.SnapshotID)
	}
	return ids, len(md.Snapshots())
}

// TestExpireKeepsProgress expires a history where partition 0's progress
// is only in old snapshots and the completion point is in the middle:
// both stay, with every snapshot after them, and a fresh process resumes,
// fences and completes from them. Without the protection, KeepLast 2
// would expire partition 0's entries and its owner would be fenced.
func TestExpireKeepsProgress(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	tb := f.open(reg)
	ctx := context.Background()
	a0 := Owner{Topic: "clicks", Partition: 0, Generation: 1, Member: "a"}
	a1 := Owner{Topic: "clicks", Partition: 1, Generation: 1, Member: "a"}
	if _, _, err := tb.Claim(ctx, a0); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := tb.Commit(ctx, a0, []File{f.write(tb, 0, int64(5*i), 5, hour10)}, int64(5*i+5), ledger.Meta{V: 1, WM: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tb.Claim(ctx, a1); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := tb.Commit(ctx, a1, []File{f.write(tb, 1, int64(5*i), 5, hour10)}, int64(5*i+5), ledger.Meta{V: 1}); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := tb.Complete(ctx, hour10.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := 6; i < 9; i++ {
		if err := tb.Commit(ctx, a1, []File{f.write(tb, 1, int64(5*i), 5, hour10.Add(time.Hour))}, int64(5*i+5), ledger.Meta{V: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Newest first: 3 commits of 1, the completion, 6 commits of 1, the
	// claim of 1, 3 commits of 0 (the newest carries 0's progress), the
	// claim of 0.
	chain, _ := snapshotIDs(t, tb)
	if len(chain) != 15 {
		t.Fatalf("%d snapshots, want 15", len(chain))
	}
	p0 := chain[11]

	m := Maintenance{OlderThan: 168 * time.Hour, KeepLast: 2}
	res, err := tb.Expire(ctx, m, time.Now().Add(400*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := chain[12:]; !sameIDs(res.Snapshots, want) {
		t.Errorf("expired %v, want %v (older than partition 0's newest entry)", res.Snapshots, want)
	}
	if len(res.Files) != 0 {
		t.Errorf("deleted %v: every data file is still referenced", res.Files)
	}
	left, all := snapshotIDs(t, tb)
	if !slices.Equal(left, chain[:12]) || all != 12 || left[11] != p0 {
		t.Errorf("left %v (%d in all), want %v", left, all, chain[:12])
	}
	if n := testutil.ToFloat64(tb.m.SnapshotsExpired.WithLabelValues("clicks")); n != 3 {
		t.Errorf("lakesink_table_snapshots_expired_total %v, want 3", n)
	}
	// Nothing more to expire.
	if res, err := tb.Expire(ctx, m, time.Now().Add(400*time.Hour)); err != nil || len(res.Snapshots) != 0 {
		t.Errorf("Expire again: %+v, %v", res, err)
	}

	// A fresh process reads partition 0's progress from the kept history:
	// its owner commits unfenced, a new owner resumes from it, and the
	// completion is answered with the snapshot that recorded it.
	tb2 := f.open(prometheus.NewRegistry())
	if err := tb2.Commit(ctx, a0, []File{f.write(tb2, 0, 15, 5, hour10)}, 20, ledger.Meta{V: 1, WM: 3}); err != nil {
		t.Fatalf("commit by partition 0's owner after Expire: %v", err)
	}
	e, found, err := tb2.Claim(ctx, Owner{Topic: "clicks", Partition: 0, Generation: 2, Member: "b"})
	if err != nil || !found || e.Member != "a" || e.Offset != 20 || e.Meta.WM != 3 {
		t.Errorf("claim of partition 0 after Expire: %+v found %v err %v", e, found, err)
	}
	if s, err := tb2.Complete(ctx, hour10.Add(time.Hour)); err != nil || s != sc {
		t.Errorf("Complete after Expire: %d, %v; want %d", s, err, sc)
	}
}

func sameIDs(a, b []int64) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestExpireDeletesFiles compacts an hour, then expires the snapshots from
// before the compaction: the compacted inputs, referenced by the expired
// snapshots only, are deleted (one the compaction had deleted already is
// skipped); the files the current snapshot references survive, the one
// added by an expired snapshot included, and read back whole.
func TestExpireDeletesFiles(t *testing.T) {
	f := newFixture(t)
	tb := f.open(prometheus.NewRegistry())
	ctx := context.Background()
	a, in := claimFiveFiles(t, f, tb)
	if err := tb.Commit(ctx, a, in, 50, ledger.Meta{V: 1}); err != nil {
		t.Fatal(err)
	}
	merged := f.merge(tb, "clicks/2026120110/clicks+compacted-0.parquet", hour10, in[:4]...)
	if _, err := tb.Replace(ctx, keys(tb, in[:4]...), []File{merged}); err != nil {
		t.Fatal(err)
	}
	f6 := f.write(tb, 0, 50, 10, hour10.Add(time.Hour))
	if err := tb.Commit(ctx, a, []File{f6}, 60, ledger.Meta{V: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Complete(ctx, hour10.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(in[0].Path()); err != nil { // the compaction's own cleanup
		t.Fatal(err)
	}
	// Newest first: completion, commit of f6 (partition 0's progress),
	// replace, commit of in, claim.
	chain, _ := snapshotIDs(t, tb)

	res, err := tb.Expire(ctx, Maintenance{OlderThan: time.Hour, KeepLast: 1}, time.Now().Add(400*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !sameIDs(res.Snapshots, chain[2:]) {
		t.Errorf("expired %v, want %v", res.Snapshots, chain[2:])
	}
	if want := paths(in[1:4]...); !slices.Equal(res.Files, want) {
		t.Errorf("deleted %v, want %v", res.Files, want)
	}
	if res.Manifests == 0 {
		t.Error("no manifest or manifest list deleted")
	}
	for _, fl := range in[:4] {
		if _, err := os.Stat(fl.Path()); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want deleted", fl.Path(), err)
		}
	}
	for _, fl := range []File{in[4], merged, f6} {
		if _, err := os.Stat(fl.Path()); err != nil {
			t.Errorf("a file the current snapshot references: %v", err)
		}
	}
	if got, _ := dataFiles(t, tb); !slices.Equal(got, paths(in[4], merged, f6)) {
		t.Errorf("current files %v", got)
	}
	ids := rows(t, tb)
	if len(ids) != 60 {
		t.Errorf("table holds %d ids after Expire, want 60", len(ids))
	}
	if n := testutil.ToFloat64(tb.m.FilesRemoved.WithLabelValues("clicks")); n != 3 {
		t.Errorf("lakesink_table_files_removed_total %v, want 3", n)
	}
	for _, bad := range []Maintenance{{KeepLast: 0}, {KeepLast: 1, OlderThan: -time.Hour}} {
		if _, err := tb.Expire(ctx, bad, time.Now()); err == nil || !strings.Contains(err.Error(), "expire snapshots of lake.clicks") {
			t.Errorf("Expire(%+v): %v", bad, err)
		}
	}
}
