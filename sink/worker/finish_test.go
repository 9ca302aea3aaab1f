package worker

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/writers"
)

// TestFilesFinishedReasons: lakesink_files_finished_total names what ended
// each file — the one way an operator can tell why the lake holds more
// than one file per partition-hour.
func TestFilesFinishedReasons(t *testing.T) {
	h0 := time.Now().UTC().Truncate(time.Hour).Add(-5 * time.Hour)
	rec := func(off int64, ts time.Time) kafka.Message {
		return kafka.Message{Topic: "events", Offset: off, HighWaterMark: off + 1, Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, off, ts.UnixMilli())}
	}
	tests := []struct {
		name string
		// run drives w after records at offsets 0..9 of hour h0.
		run  func(t *testing.T, w *Worker)
		want finishReason
	}{
		{"hour closed", func(t *testing.T, w *Worker) {
			// A record 2 hours later: h0's end plus the lateness has passed.
			if err := w.process(t.Context(), rec(10, h0.Add(2*time.Hour))); err != nil {
				t.Fatal(err)
			}
		}, finishHourClosed},
		{"max bytes", func(t *testing.T, w *Worker) {
			w.env.MaxFileBytes = 1
			if err := w.process(t.Context(), rec(10, h0.Add(time.Minute))); err != nil {
				t.Fatal(err)
			}
		}, finishMaxBytes},
		{"memory", func(t *testing.T, w *Worker) {
			w.env.Budget.limit = 1
			if err := w.boundMemory(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, finishMemory},
		{"idle", func(t *testing.T, w *Worker) {
			w.env.Now = func() time.Time { return time.Now().Add(time.Hour) } // quiet for an hour, caught up
			w.hwm = 10
			if err := w.housekeep(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, finishIdle},
		{"max age", func(t *testing.T, w *Worker) {
			// Opened at the tick's clock; the hour is long closed by the
			// wall clock but the partition is not idle (records wait).
			w.env.MaxFileAge = 10 * time.Minute
			w.hwm = 100
			opened := time.UnixMilli(w.nowMs)
			w.env.Now = func() time.Time { return opened.Add(10*time.Minute - time.Second) }
			if err := w.housekeep(t.Context()); err != nil {
				t.Fatal(err)
			}
			if len(w.files.byKey) != 1 {
				t.Fatalf("file finished before max_file_age")
			}
			w.env.Now = func() time.Time { return opened.Add(10 * time.Minute) }
			if err := w.housekeep(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, finishMaxAge},
		{"shutdown", func(t *testing.T, w *Worker) {
			if err := w.finishAll(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, finishShutdown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := testWorker(t, testConfig(), writers.NewMemory())
			w.nowMs = time.Now().UnixMilli() // the tick's clock: the records' read time
			for off := range int64(10) {
				if err := w.process(t.Context(), rec(off, h0.Add(time.Duration(off)*time.Second))); err != nil {
					t.Fatal(err)
				}
			}
			tt.run(t, w)
			for _, r := range finishReasons {
				want := 0.0
				if r == tt.want {
					want = 1
				}
				if got := testutil.ToFloat64(w.env.Metrics.FilesFinished.WithLabelValues(string(r))); got != want {
					t.Errorf("files finished (%s) = %v, want %v", r, got, want)
				}
			}
		})
	}
}

// TestIdleKeepsOpenHour: a quiet, caught-up partition keeps the file of
// an hour the wall clock has not closed (a producer's pause must not cut
// the hour into one file per burst), attests its idleness in the commit
// metadata (ledger.Meta IW, IN) so that older hours complete, and finishes the file
// once the wall clock closes its hour. Zones with a half-hour offset
// (Asia/Kolkata) and a DST night (America/New_York, fall back: the two
// 01:00 buckets) take the thresholds from the zone's own buckets.
func TestIdleKeepsOpenHour(t *testing.T) {
	tests := []struct {
		zone string
		// hour is the bucket the records belong to; now the wall clock
		// of the first quiet look, inside that bucket.
		hour, now time.Time
		// wantWM is the attested watermark at now: the newest bucket
		// threshold (start + 1h + lateness) now has passed.
		wantWM time.Time
	}{
		{"UTC", time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 25, 10, 40, 0, 0, time.UTC),
			time.Date(2026, 11, 25, 10, 10, 0, 0, time.UTC)},
		// Buckets start at :30 UTC.
		{"Asia/Kolkata", time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), time.Date(2026, 11, 25, 10, 5, 0, 0, time.UTC),
			time.Date(2026, 11, 25, 9, 40, 0, 0, time.UTC)},
		// The second 01:00 bucket of New York's fall-back night (06:00Z);
		// the first (05:00Z) closed at 06:10Z.
		{"America/New_York", time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC),
			time.Date(2026, 11, 1, 6, 10, 0, 0, time.UTC)},
		// New year: the last bucket of 2026.
		{"UTC", time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), time.Date(2026, 12, 31, 23, 50, 0, 0, time.UTC),
			time.Date(2026, 12, 31, 23, 10, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.zone+"/"+tt.hour.Format(time.RFC3339), func(t *testing.T) {
			cfg := testConfig()
			cfg.Streams[0].Time.Timezone = tt.zone
			cfg.Streams[0].AllowedLateness = config.Duration(10 * time.Minute)
			w, _ := testWorker(t, cfg, writers.NewMemory())
			offsets := &memOffsets{offset: -1}
			w.env.Offsets = offsets
			read := tt.now.Add(-20 * time.Minute) // inside the bucket, before now
			w.nowMs = read.UnixMilli()
			for off := range int64(10) {
				m := kafka.Message{Topic: "events", Offset: off, HighWaterMark: 10,
					Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, off, tt.hour.Add(time.Duration(off)*time.Second).UnixMilli())}
				if err := w.process(t.Context(), m); err != nil {
					t.Fatal(err)
				}
			}
			w.hwm = 10
			clock := tt.now
			w.env.Now = func() time.Time { return clock }
			if err := w.housekeep(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := len(w.files.byKey); n != 1 {
				t.Fatalf("%d open files after a quiet look at %s, want the open hour's 1", n, clock.Format(time.RFC3339))
			}
			if got := testutil.ToFloat64(w.env.Metrics.FilesFinished.WithLabelValues(string(finishIdle))); got != 0 {
				t.Fatalf("files finished (idle) = %v, want 0", got)
			}
			meta, _, err := ledger.Parse(offsets.meta)
			if err != nil {
				t.Fatalf("commit metadata: %v", err)
			}
			if offsets.offset != 0 || meta.IW != tt.wantWM.UnixMilli() || meta.IN != 10 {
				t.Fatalf("committed %d, idle claim %s below %d; want 0 (the open file's first record), %s below 10",
					offsets.offset, time.UnixMilli(meta.IW).UTC().Format(time.RFC3339), meta.IN, tt.wantWM.Format(time.RFC3339))
			}

			// Half an idle timeout later the claim is renewed: the
			// metadata changes, which is how other instances see a live
			// owner behind an unmoving committed offset (sink/unconsumed).
			first := meta.IA
			clock = clock.Add(w.env.IdleTimeout/2 + time.Second)
			if err := w.housekeep(t.Context()); err != nil {
				t.Fatal(err)
			}
			meta, _, _ = ledger.Parse(offsets.meta)
			if meta.IA <= first || meta.IA > clock.UnixMilli() || len(w.files.byKey) != 1 {
				t.Fatalf("claim renewed at %d (first %d, clock %d), %d open files; want a later renewal, the file still open",
					meta.IA, first, clock.UnixMilli(), len(w.files.byKey))
			}

			// The wall clock closes the bucket: its end plus lateness.
			clock = tt.hour.Add(time.Hour + 10*time.Minute)
			if err := w.housekeep(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := len(w.files.byKey); n != 0 {
				t.Fatalf("%d open files once the wall clock closed the hour", n)
			}
			if got := testutil.ToFloat64(w.env.Metrics.FilesFinished.WithLabelValues(string(finishIdle))); got != 1 {
				t.Fatalf("files finished (idle) = %v, want 1", got)
			}
			meta, _, _ = ledger.Parse(offsets.meta)
			if offsets.offset != 10 || meta.IW != clock.UnixMilli() {
				t.Fatalf("committed %d, idle claim %s; want 10, %s", offsets.offset,
					time.UnixMilli(meta.IW).UTC().Format(time.RFC3339), clock.Format(time.RFC3339))
			}
		})
	}
}
