package worker

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

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
