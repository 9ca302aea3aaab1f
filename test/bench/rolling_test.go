package bench

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRollingSmoke runs a small rolling restart with each assignor: two
// instances, restarted one after another under live traffic into an open
// hour; every record must be in the lake once, every life accounted for,
// and range, which throws every open file away at each rebalance, must
// read records again.
func TestRollingSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the broker and lakesink processes: not in -short mode")
	}
	sb, bb := binaries(t)
	for _, assignor := range []string{"range", "sticky"} {
		t.Run(assignor, func(t *testing.T) {
			o := Options{Scenario: "rolling-smoke", Rolling: true, Assignor: assignor, Instances: 2,
				Records: 8000, Partitions: 4, Rate: 1000, Chunk: 100, OpenHours: true, Hours: 1, IdleTimeout: 5 * time.Second,
				RestartAfter: 2 * time.Second, RestartEvery: 2 * time.Second, RestartGap: 2 * time.Second,
				LakesinkBin: sb, BrokerBin: bb, WorkDir: t.TempDir(), Timeout: 2 * time.Minute}
			res, err := Run(context.Background(), o)
			if err != nil {
				t.Fatalf("run: %v\n%s\n%s", err, res.Table(), tail(filepath.Join(o.WorkDir, "lakesink-0.log"), 20))
			}
			t.Logf("\n%s", res.Table())
			r := res.Rolling
			if r == nil || !res.Verified || res.RowsRead != int64(o.Records) || res.Assignor != assignor {
				t.Fatalf("verified %v, %d rows read of %d, assignor %q, rolling %+v", res.Verified, res.RowsRead, o.Records, res.Assignor, r)
			}
			if len(r.Restarts) != 2 || len(r.Lives) != 4 {
				t.Errorf("%d restarts, %d lives; want 2 and 4", len(r.Restarts), len(r.Lives))
			}
			if r.Consumed < res.Records || r.ExtraReads != r.Consumed-res.Records || r.CPUSeconds <= 0 || r.CPUMicrosPerConsumed <= 0 {
				t.Errorf("consumed %d of %d produced (extra %d), CPU %.2f s, %.1f µs per record", r.Consumed, res.Records, r.ExtraReads, r.CPUSeconds, r.CPUMicrosPerConsumed)
			}
			for _, l := range r.Lives {
				if l.Consumed == 0 && l.Life > 0 || l.CPUSeconds <= 0 || l.Generations == 0 {
					t.Errorf("life %+v", l)
				}
			}
			if assignor == "range" && (r.ExtraReads == 0 || r.FilesAbandoned == 0 || r.FilesKept != 0) {
				t.Errorf("range: %d records read again (%d extra reads), %d files abandoned, %d kept", r.Replayed, r.ExtraReads, r.FilesAbandoned, r.FilesKept)
			}
			if !strings.Contains(res.Table(), "records read again") {
				t.Errorf("table without the records read again:\n%s", res.Table())
			}
		})
	}
}

// TestReadPosition: nx from lakesink's commit metadata.
func TestReadPosition(t *testing.T) {
	for meta, want := range map[string]int64{
		`{"v":1,"wm":1,"rw":2,"nx":1234}`: 1234,
		`{"v":1,"wm":1,"rw":2}`:           -1,
		``:                                -1,
		`not json`:                        -1,
		`{"nx":"x"}`:                      -1,
	} {
		got, ok := readPosition(meta)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("readPosition(%q) = %d, want %d", meta, got, want)
		}
	}
}
