package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/writers"
)

// dlqProducer is the dead-letter topic: it refuses writes while fail is
// set and keeps what it accepted.
type dlqProducer struct {
	mu       sync.Mutex
	fail     bool
	attempts int
	accepted []kafka.Message
}

func (p *dlqProducer) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.fail {
		return errors.New("dead-letter topic unavailable")
	}
	p.accepted = append(p.accepted, msgs...)
	return nil
}

func (p *dlqProducer) delivered() []kafka.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.accepted)
}

// commitLog records every offset commit together with how many dead
// letters the dead-letter topic had accepted when it was made.
type commitLog struct {
	dlq     *dlqProducer
	commits []loggedCommit
}

type loggedCommit struct {
	offset      int64
	deadLetters int
}

func (c *commitLog) Committed(context.Context, string, int) (int64, string, error) {
	return -1, "", nil
}

func (c *commitLog) Commit(_ context.Context, _ int, _, _ string, _ int, offset int64, _ string) error {
	c.commits = append(c.commits, loggedCommit{offset, len(c.dlq.delivered())})
	return nil
}

// TestLatePolicies (docs/design.md, "Late data and revisions"): a record
// whose hour the partition's watermark has closed (end + allowed lateness)
// goes, by the stream's late_policy,
//
//   - amend: into its own hour, in a new file named by its offset;
//   - dead_letter: to the dead-letter topic with reason late and its
//     origin, nowhere in the lake, and no commit passes it before the
//     topic accepted it;
//   - current_hour: into the file of the hour the partition's watermark is
//     in (not merely some open hour), with its own event time.
//
// Under every policy it is counted in lakesink_late_records_total, every
// other record is in its hour's file once, and the commit point passes
// every record once the files are finished.
func TestLatePolicies(t *testing.T) {
	h := time.Now().UTC().Truncate(time.Hour).Add(-6 * time.Hour)
	const lateOffset = 7
	// Lateness 10m. Offsets 0-4: hour h. 5: h+1h30m closes h (h+1h10m).
	// 6: h+2h05m, hour h+2, which does not close h+1 (h+2h10m): the
	// watermark's hour h+2 is not the only open hour. 7: late for h, with
	// its own event time h+20m. 8: hour h+2 again.
	type record struct {
		id int64
		ts time.Time
	}
	records := []record{
		{0, h.Add(1 * time.Minute)}, {1, h.Add(2 * time.Minute)}, {2, h.Add(3 * time.Minute)},
		{3, h.Add(4 * time.Minute)}, {4, h.Add(5 * time.Minute)},
		{5, h.Add(90 * time.Minute)},
		{6, h.Add(125 * time.Minute)},
		{lateOffset, h.Add(20 * time.Minute)},
		{8, h.Add(126 * time.Minute)},
	}
	// file is a data file expected in the lake: its hour, first offset and ids.
	type file struct {
		hour  time.Time
		first int64
		ids   []int64
	}
	for _, tc := range []struct {
		policy config.LatePolicy
		files  []file
	}{
		{config.LateAmend, []file{
			{h, 0, []int64{0, 1, 2, 3, 4}},
			{h, lateOffset, []int64{lateOffset}}, // a new file in its own hour
			{h.Add(time.Hour), 5, []int64{5}},
			{h.Add(2 * time.Hour), 6, []int64{6, 8}},
		}},
		{config.LateDeadLetter, []file{
			{h, 0, []int64{0, 1, 2, 3, 4}},
			{h.Add(time.Hour), 5, []int64{5}},
			{h.Add(2 * time.Hour), 6, []int64{6, 8}},
		}},
		{config.LateCurrentHour, []file{
			{h, 0, []int64{0, 1, 2, 3, 4}},
			{h.Add(time.Hour), 5, []int64{5}},
			{h.Add(2 * time.Hour), 6, []int64{6, lateOffset, 8}}, // the watermark's hour
		}},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			cfg := testConfig()
			cfg.Streams[0].AllowedLateness = config.Duration(10 * time.Minute)
			cfg.Streams[0].LatePolicy = tc.policy
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			lake := writers.NewMemory()
			w, _ := testWorker(t, cfg, lake)
			dlq := &dlqProducer{fail: true}
			commits := &commitLog{dlq: dlq}
			w.env.DeadLetters, w.env.DeadLetterTopic, w.env.Offsets = dlq, "lakesink-dlq", commits
			ctx := context.Background()

			for off, r := range records {
				m := kafka.Message{Topic: "events", Partition: 0, Offset: int64(off), HighWaterMark: int64(len(records)),
					Key: []byte("k" + strconv.Itoa(off)), Time: r.ts.Add(time.Second),
					Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, r.id, r.ts.UnixMilli())}
				if err := w.process(ctx, m); err != nil {
					t.Fatalf("process offset %d: %v", off, err)
				}
			}
			if got := testutil.ToFloat64(w.env.Metrics.LateRecords.WithLabelValues("events")); got != 1 {
				t.Errorf("lakesink_late_records_total = %v, want 1", got)
			}
			wantDL := 0.0
			if tc.policy == config.LateDeadLetter {
				wantDL = 1
			}
			if got := testutil.ToFloat64(w.env.Metrics.DeadLetters.WithLabelValues("late")); got != wantDL {
				t.Errorf("dead letters with reason late counted %v, want %v", got, wantDL)
			}

			// Finish every file: then the commit point passes every record
			// — but only once its dead letter is on the topic.
			for k := range w.files.byKey {
				if err := w.finish(ctx, k.hour, finishHourClosed); err != nil {
					t.Fatal(err)
				}
			}
			if c, _ := w.led.CommitPoint(); c != int64(len(records)) {
				t.Errorf("commit point %d, want %d", c, len(records))
			}
			if tc.policy == config.LateDeadLetter {
				// The topic refuses: the commit waits (until its context
				// ends) and commits nothing.
				cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				err := w.commit(cctx)
				cancel()
				if err == nil || len(commits.commits) != 0 {
					t.Fatalf("dead-letter topic down: commit = %v, commits %v; want an error and none", err, commits.commits)
				}
				dlq.mu.Lock()
				dlq.fail = false
				dlq.mu.Unlock()
			}
			if err := w.commit(ctx); err != nil {
				t.Fatal(err)
			}
			if len(commits.commits) != 1 || commits.commits[0].offset != int64(len(records)) {
				t.Fatalf("commits %v, want one at %d", commits.commits, len(records))
			}
			if got, want := commits.commits[0].deadLetters, int(wantDL); got != want {
				t.Errorf("the commit past the late record was made with %d dead letters delivered, want %d", got, want)
			}

			// Dead letters: only the late record, under dead_letter, with
			// reason late and its origin.
			dls := dlq.delivered()
			if tc.policy != config.LateDeadLetter {
				if len(dls) != 0 || dlq.attempts != 0 {
					t.Errorf("%d dead letters (%d writes), want none", len(dls), dlq.attempts)
				}
			} else {
				if len(dls) != 1 {
					t.Fatalf("%d dead letters, want 1", len(dls))
				}
				hs := map[string]string{}
				for _, x := range dls[0].Headers {
					hs[x.Key] = string(x.Value)
				}
				want := map[string]string{kafkaio.HeaderReason: "late", kafkaio.HeaderStream: "events", kafkaio.HeaderTopic: "events",
					kafkaio.HeaderPartition: "0", kafkaio.HeaderOffset: strconv.Itoa(lateOffset), kafkaio.HeaderKey: "k" + strconv.Itoa(lateOffset)}
				for k, v := range want {
					if hs[k] != v {
						t.Errorf("dead letter header %s = %q, want %q", k, hs[k], v)
					}
				}
				if hs[kafkaio.HeaderError] == "" {
					t.Error("dead letter without lakesink.error")
				}
				wantValue := fmt.Sprintf(`{"id":%d,"ts":%d}`, lateOffset, records[lateOffset].ts.UnixMilli())
				if string(dls[0].Value) != wantValue || string(dls[0].Key) != "events/0/"+strconv.Itoa(lateOffset) {
					t.Errorf("dead letter %s = %s, want the record %s keyed by its origin", dls[0].Key, dls[0].Value, wantValue)
				}
			}

			// The lake: exactly the expected files, each record once in
			// its file with its own event time.
			got := map[string][]int64{}
			for _, f := range readLake(t, lake) {
				for _, r := range f.rows {
					id := r["id"].(int64)
					got[f.key] = append(got[f.key], id)
					if want := records[id].ts.UnixMilli(); r["ts"] != want {
						t.Errorf("%s: record %d has event time %v, want its own %d", f.key, id, r["ts"], want)
					}
				}
			}
			want := map[string][]int64{}
			for _, f := range tc.files {
				want[w.st.Path.FileKey("events", f.hour, "events", 0, f.first)] = f.ids
			}
			if !maps.EqualFunc(got, want, slices.Equal) {
				t.Errorf("lake files:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestLateCurrentHourReplay: a worker resuming from its commit skips a
// late record that current_hour put into a file of another hour that is
// already durable. The late record's own hour has no done mark; the hour
// it was filed under has. Here that file was finished early (as memory
// pressure or max_file_bytes would) while an older hour's file, opened
// before the late record, held the commit below it — possible when the
// allowed lateness exceeds an hour.
func TestLateCurrentHourReplay(t *testing.T) {
	cfg := testConfig()
	cfg.Streams[0].AllowedLateness = config.Duration(90 * time.Minute)
	cfg.Streams[0].LatePolicy = config.LateCurrentHour
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	lake := writers.NewMemory()
	ctx := context.Background()
	h := time.Now().UTC().Truncate(time.Hour).Add(-6 * time.Hour)
	x := h.Add(time.Hour)
	ts := []time.Time{
		0: h.Add(10 * time.Minute),             // hour h: its file holds the commit at 0
		1: x.Add(30 * time.Minute),             // hour x = h+1: the watermark's hour
		2: h.Add(-2*time.Hour + 5*time.Minute), // late (its hour closed at h+30m): filed under x
		3: x.Add(40 * time.Minute),             // hour x, after x's first file finished
	}
	send := func(w *Worker, off int) {
		t.Helper()
		m := kafka.Message{Topic: "events", Offset: int64(off), HighWaterMark: int64(len(ts)),
			Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, off, ts[off].UnixMilli())}
		if err := w.process(ctx, m); err != nil {
			t.Fatalf("process offset %d: %v", off, err)
		}
	}

	w, _ := testWorker(t, cfg, lake)
	for off := range 3 {
		send(w, off)
	}
	if err := w.finish(ctx, x.UnixMilli(), finishHourClosed); err != nil { // finished early
		t.Fatal(err)
	}
	send(w, 3)
	c, meta := w.led.CommitPoint()
	if c != 0 {
		t.Fatalf("commit point %d, want 0 (hour h's file is open)", c)
	}
	w.abandonAll() // the process dies

	// The next owner resumes from the commit and reads 0..3 again.
	w2, _ := testWorker(t, cfg, lake)
	resumed, _, err := ledger.Parse(meta.Encode())
	if err != nil {
		t.Fatal(err)
	}
	w2.led = ledger.New(c, resumed, w2.st.Lateness.Milliseconds())
	for off := range len(ts) {
		send(w2, off)
	}
	for k := range w2.files.byKey {
		if err := w2.finish(ctx, k.hour, finishHourClosed); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := w2.led.CommitPoint(); c != int64(len(ts)) {
		t.Errorf("commit point %d after the replay, want %d", c, len(ts))
	}
	got := map[string][]int64{}
	seen := map[int64]int{}
	for _, f := range readLake(t, lake) {
		for _, r := range f.rows {
			got[f.key] = append(got[f.key], r["id"].(int64))
			seen[r["id"].(int64)]++
		}
	}
	key := func(hour time.Time, first int64) string { return w.st.Path.FileKey("events", hour, "events", 0, first) }
	want := map[string][]int64{key(h, 0): {0}, key(x, 1): {1, 2}, key(x, 3): {3}}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("lake files after the replay:\n got %v\nwant %v", got, want)
	}
	for id := range int64(len(ts)) {
		if seen[id] != 1 {
			t.Errorf("record %d is %d times in the lake, want once", id, seen[id])
		}
	}
}
