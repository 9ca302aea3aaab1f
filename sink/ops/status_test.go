package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/writers"
)

func TestLogRing(t *testing.T) {
	var out bytes.Buffer
	ring := NewLogRing(3)
	log := slog.New(ring.Handler(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelError})))
	log = log.With("topic", "clicks").WithGroup("g")
	log.Info("not kept")
	for i := range 5 {
		log.Warn("warning", "i", i)
	}
	log.Error("boom", slog.Group("s", "k", "v"))
	got := ring.Entries()
	if len(got) != 3 {
		t.Fatalf("got %d entries, want 3", len(got))
	}
	if got[0].Message != "boom" || got[0].Level != "ERROR" || strings.Join(got[0].Attrs, " ") != "topic=clicks g.s.k=v" {
		t.Errorf("newest entry = %+v", got[0])
	}
	if got[1].Message != "warning" || strings.Join(got[1].Attrs, " ") != "topic=clicks g.i=4" || strings.Join(got[2].Attrs, " ") != "topic=clicks g.i=3" {
		t.Errorf("entries = %+v", got)
	}
	// The wrapped handler still decides what is printed: only the error.
	if n := strings.Count(out.String(), "\n"); n != 1 || !strings.Contains(out.String(), `"msg":"boom"`) {
		t.Errorf("wrapped handler printed %q", out.String())
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				log.Warn("concurrent")
				_ = ring.Entries()
			}
		}()
	}
	wg.Wait()
	if len(ring.Entries()) != 3 {
		t.Errorf("ring grew past its size")
	}
}

// noBroker is a dead-letter topic check that cannot reach a broker.
type noBroker struct{}

func (noBroker) CheckTopic(context.Context, string) error {
	return errors.New("metadata lakesink-dlq: dial tcp 127.0.0.1:1: connection refused")
}

// newTestOps is an Ops over a memory lake with a fake clock and one stream.
func newTestOps(t *testing.T, lake writers.Writer, now *time.Time) (*Ops, *prometheus.Registry) {
	t.Helper()
	tmpl, err := partitioner.ParsePathTemplate(config.DefaultPartitionPath)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o := New(Options{
		Streams: []*completion.Stream{{Name: "events", Topics: []string{"events"}, Loc: time.UTC, Path: tmpl}},
		Writer:  lake, Topics: noBroker{}, DeadLetterTopic: "lakesink-dlq",
		CommitStallTimeout: 5 * time.Minute, Now: func() time.Time { return *now },
		Logs: NewLogRing(10), Registry: reg,
		Rebalances: func() RebalanceStatus {
			return RebalanceStatus{Generations: 3, RecordsReplayed: 440, FilesKept: 7, FilesAbandoned: 2}
		},
	})
	return o, reg
}

// progress is a worker's report of events/partition in generation gen.
func progress(partition, gen int, committed, high int64, wm, rw time.Time) Progress {
	return Progress{Stream: "events", Topic: "events", Partition: partition, Generation: gen, Committed: committed, High: high,
		Meta: fmt.Sprintf(`{"v":1,"wm":%d,"rw":%d}`, wm.UnixMilli(), rw.UnixMilli()), Watermark: wm.UnixMilli(), Raw: rw.UnixMilli()}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCommitStall(t *testing.T) {
	now := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	s, _ := newTestOps(t, writers.NewMemory(), &now)
	note := func(partition, gen int, committed, high int64, rw time.Time) {
		s.NotePartition(progress(partition, gen, committed, high, rw.Add(-time.Second), rw))
	}
	ev := now.Add(-30 * time.Second)

	note(0, 1, 100, 150, ev)
	if got := testutil.ToFloat64(s.lagSeconds.WithLabelValues("events", "0")); got != 30 {
		t.Errorf("lag seconds = %v, want 30", got)
	}
	if r := s.stalls(); len(r) != 0 {
		t.Fatalf("stalls right after a commit: %v", r)
	}
	// Same commit, lag grows, but not for long enough yet.
	now = now.Add(4 * time.Minute)
	note(0, 1, 100, 400, ev)
	if r := s.stalls(); len(r) != 0 {
		t.Fatalf("stalls before the timeout: %v", r)
	}
	now = now.Add(2 * time.Minute)
	note(0, 1, 100, 500, ev)
	r := s.stalls()
	if len(r) != 1 || !strings.Contains(r[0], "events/0 has not committed for 6m0s while its lag grew from 50 to 400 records") {
		t.Fatalf("stalls = %v", r)
	}
	if ok, reasons := s.Readiness(); ok || !strings.Contains(strings.Join(reasons, ";"), "commits stalled") {
		t.Errorf("readiness with a stall: %v %v", ok, reasons)
	}
	// The commit advances: no stall.
	note(0, 1, 450, 500, now.Add(-time.Second))
	if r := s.stalls(); len(r) != 0 {
		t.Fatalf("stalls after the commit advanced: %v", r)
	}
	// Lag constant (nothing new produced, records in an open hour): no stall.
	now = now.Add(10 * time.Minute)
	note(0, 1, 450, 500, now.Add(-10*time.Minute))
	if r := s.stalls(); len(r) != 0 {
		t.Fatalf("stalls with constant lag: %v", r)
	}
	// A worker that stops reporting while it has lag (blocked) stalls.
	now = now.Add(6 * time.Minute)
	r = s.stalls()
	if len(r) != 1 || !strings.Contains(r[0], "has not reported progress") {
		t.Fatalf("stalls of a silent worker = %v", r)
	}
	// A newer generation without this partition hides it.
	note(1, 2, 10, 10, now)
	if r := s.stalls(); len(r) != 0 {
		t.Fatalf("stalls of a partition from an old generation: %v", r)
	}
	// Caught up: lag seconds is 0.
	if got := testutil.ToFloat64(s.lagSeconds.WithLabelValues("events", "1")); got != 0 {
		t.Errorf("lag seconds when caught up = %v, want 0", got)
	}
}

// failingLake fails every call while down is set.
type failingLake struct {
	writers.Writer
	mu       sync.Mutex
	down     bool
	readOnly bool
}

func (f *failingLake) Exists(ctx context.Context, key string) (bool, error) {
	if err := f.err(); err != nil {
		return false, err
	}
	return f.Writer.Exists(ctx, key)
}

// Put fails while down or, with readOnly, always: a lake that answers
// lookups but refuses writes.
func (f *failingLake) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	f.mu.Lock()
	ro := f.readOnly
	f.mu.Unlock()
	if ro {
		return errors.New("put: AccessDenied: read-only credentials")
	}
	if err := f.err(); err != nil {
		return err
	}
	return f.Writer.Put(ctx, key, r, size)
}

func (f *failingLake) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("dial tcp 127.0.0.1:9: connection refused")
	}
	return nil
}

func TestStorageProbe(t *testing.T) {
	now := time.Now()
	lake := &failingLake{Writer: writers.NewMemory()}
	s, _ := newTestOps(t, lake, &now)
	s.Health.SetJoined(true, "")
	ctx := context.Background()
	// The dead-letter check cannot reach a broker here; only look at storage.
	storage := func() string { return storageReason(s) }
	s.checkOnce(ctx, time.Second)
	if r := storage(); r != "" {
		t.Fatalf("storage reason while up: %s", r)
	}
	lake.mu.Lock()
	lake.down = true
	lake.mu.Unlock()
	s.checkOnce(ctx, time.Second)
	if r := storage(); !strings.HasPrefix(r, "storage unreachable: write probe: put _lakesink/probe/") || !strings.HasSuffix(r, "dial tcp 127.0.0.1:9: connection refused") {
		t.Fatalf("storage reason while down: %q", r)
	}
	lake.mu.Lock()
	lake.down = false
	lake.mu.Unlock()
	s.checkOnce(ctx, time.Second)
	if r := storage(); r != "" {
		t.Fatalf("storage reason after recovery: %s", r)
	}
	// Reads work, writes do not (full disk, read-only credentials): not
	// ready, and the probe object is gone once writes work again.
	lake.mu.Lock()
	lake.readOnly = true
	lake.mu.Unlock()
	s.checkOnce(ctx, time.Second)
	if r := storage(); !strings.Contains(r, "storage unreachable: write probe: put _lakesink/probe/") || !strings.Contains(r, "AccessDenied") {
		t.Fatalf("storage reason with a read-only lake: %q", r)
	}
	lake.mu.Lock()
	lake.readOnly = false
	lake.mu.Unlock()
	s.checkOnce(ctx, time.Second)
	if r := storage(); r != "" {
		t.Fatalf("storage reason after writes work again: %s", r)
	}
	if objs, _ := lake.List(ctx, ProbePrefix); len(objs) != 0 {
		t.Errorf("probe objects left: %v", objs)
	}
	_, reasons := s.Readiness()
	if !strings.Contains(strings.Join(reasons, ";"), "dead-letter topic unavailable") {
		t.Errorf("no broker, but the dead-letter topic counts as available: %v", reasons)
	}
}

func put(t *testing.T, w writers.Writer, key, body string) {
	t.Helper()
	if err := w.Put(context.Background(), key, strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
}

// TestStatusMarkers: the status page reads _SUCCESS with the finalizer's
// decoder (completion.DecodeManifest); a marker that does not decode shows
// as a complete hour with the error, and completed_at is kept.
func TestStatusMarkers(t *testing.T) {
	now := time.Date(2026, 11, 25, 14, 20, 0, 0, time.UTC)
	lake := writers.NewMemory()
	s, _ := newTestOps(t, lake, &now)
	folder := func(h int) string { return fmt.Sprintf("events/dt=2026-11-25/hour=%02d", h) }
	put(t, lake, folder(11)+"/_SUCCESS", string(completion.Manifest{Version: 1, Revision: 1, Records: 5,
		CompletedAt: "2026-11-25T12:11:00+01:00", Files: []completion.ManifestFile{{Bytes: 9}}}.Encode()))
	put(t, lake, folder(12)+"/_SUCCESS", `{"version":1,"revision":1,"records":"many"}`)
	put(t, lake, folder(13)+"/_SUCCESS", `{"version":1,"revision":1,"completed_at":"yesterday"}`)
	st := s.Status(t.Context(), 4)
	hours := st.Streams[0].Hours
	if h := hours[0]; h.State != HourComplete || h.Records != 5 || h.Files != 1 || h.Bytes != 9 || h.Error != "" ||
		h.CompletedAt == nil || !h.CompletedAt.Equal(time.Date(2026, 11, 25, 11, 11, 0, 0, time.UTC)) || h.CompletedAt.Location() != time.UTC {
		t.Errorf("hour 11: %+v", h)
	}
	for _, h := range hours[1:3] {
		if h.State != HourComplete || !strings.HasPrefix(h.Error, "read events/dt=2026-11-25/hour=") {
			t.Errorf("hour %s with an unreadable marker: %+v, want complete with a read error", h.Hour, h)
		}
	}
}

func TestStatusPage(t *testing.T) {
	now := time.Date(2026, 11, 25, 14, 20, 0, 0, time.UTC)
	lake := writers.NewMemory()
	s, reg := newTestOps(t, lake, &now)
	folder := func(h int) string { return fmt.Sprintf("events/dt=2026-11-25/hour=%02d", h) }
	put(t, lake, folder(11)+"/_SUCCESS", `{"version":1,"revision":1,"records":1200,"completed_at":"2026-11-25T12:11:00Z","files":[{"bytes":100},{"bytes":50}]}`)
	put(t, lake, folder(12)+"/_SUCCESS", `{"version":1,"revision":2,"records":7,"files":[{"bytes":10}]}`)
	put(t, lake, folder(13)+"/events+0+00000000000000000010.parquet", "xxxx")
	put(t, lake, folder(14)+"/events+0+00000000000000000020.parquet", "yy")
	s.NotePartition(progress(0, 3, 10, 25, now.Add(-time.Hour), now.Add(-90*time.Second)))
	slog.New(s.o.Logs.Handler(slog.DiscardHandler)).Error("upload failed", "key", "events/x.parquet")

	srv := httptest.NewServer(s.Handler(reg))
	defer srv.Close()

	code, body := get(t, srv.URL+"/api/status?hours=5")
	if code != http.StatusOK {
		t.Fatalf("/api/status: %d %s", code, body)
	}
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Streams) != 1 || len(st.Streams[0].Hours) != 5 {
		t.Fatalf("streams: %+v", st.Streams)
	}
	want := []struct {
		hour    int
		state   string
		records int64
		files   int
		bytes   int64
	}{{10, HourEmpty, 0, 0, 0}, {11, HourComplete, 1200, 2, 150}, {12, HourAmended, 7, 1, 10}, {13, HourOpen, 0, 1, 4}, {14, HourOpen, 0, 1, 2}}
	for i, w := range want {
		h := st.Streams[0].Hours[i]
		if h.Hour.Hour() != w.hour || h.State != w.state || h.Records != w.records || h.Files != w.files || h.Bytes != w.bytes || h.Error != "" {
			t.Errorf("hour %d: got %+v, want %+v", i, h, w)
		}
	}
	if len(st.Partitions) != 1 || st.Partitions[0].Lag != 15 || st.Partitions[0].LagSeconds != 90 || st.Partitions[0].Watermark == nil {
		t.Errorf("partitions: %+v", st.Partitions)
	}
	if len(st.RecentErrors) != 1 || st.RecentErrors[0].Message != "upload failed" {
		t.Errorf("recent errors: %+v", st.RecentErrors)
	}
	if st.Ready || len(st.Reasons) == 0 {
		t.Errorf("ready before joining: %v %v", st.Ready, st.Reasons)
	}
	if r := st.Rebalances; r == nil || *r != (RebalanceStatus{3, 440, 7, 2}) {
		t.Errorf("rebalances: %+v", r)
	}

	code, page := get(t, srv.URL+"/")
	if code != http.StatusOK {
		t.Fatalf("/: %d", code)
	}
	for _, s := range []string{
		`data-hour="2026-11-25T11:00:00Z" data-state="complete" data-records="1200"`,
		`data-hour="2026-11-25T12:00:00Z" data-state="amended" data-records="7"`,
		`data-hour="2026-11-25T13:00:00Z" data-state="open"`,
		"1.2k", "upload failed", "key=events/x.parquet", "not ready", "1m30s",
		"3 generations joined", "440 records read again", "7 open files kept", "2 abandoned",
	} {
		if !strings.Contains(page, s) {
			t.Errorf("status page lacks %q", s)
		}
	}
	if n := strings.Count(page, `class="cell `); n != 24 {
		t.Errorf("status page has %d hour cells, want 24", n)
	}
	// Cached: a marker appearing within the TTL shows after it.
	put(t, lake, folder(13)+"/_SUCCESS", `{"version":1,"revision":1,"records":3,"files":[{"bytes":4}]}`)
	if h := s.Status(context.Background(), 2).Streams[0].Hours[0]; h.State != HourOpen {
		t.Errorf("cached hour: %+v", h)
	}
	now = now.Add(hourCacheTTL)
	if h := s.Status(context.Background(), 2).Streams[0].Hours[0]; h.State != HourComplete || h.Records != 3 {
		t.Errorf("hour after the cache expired: %+v", h)
	}
	resp, err := http.Get(srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nope: %d", resp.StatusCode)
	}
}

// stuckLake's Put ignores its context and returns only when released, like
// a backend without context support against a silent server.
type stuckLake struct {
	writers.Writer
	release chan struct{}
}

func (s *stuckLake) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	<-s.release
	return s.Writer.Put(ctx, key, r, size)
}

// TestStorageProbeHung: a probe whose Put does not return is reported as a
// failure by its deadline, later probes fail at once instead of piling up,
// and once the call returns the probe works again.
func TestStorageProbeHung(t *testing.T) {
	now := time.Now()
	lake := &stuckLake{Writer: writers.NewMemory(), release: make(chan struct{})}
	s, _ := newTestOps(t, lake, &now)
	storage := func() string { return storageReason(s) }
	start := time.Now()
	s.checkOnce(t.Context(), 100*time.Millisecond)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("probe took %v with a 100ms deadline", d)
	}
	if r := storage(); !strings.Contains(r, "write probe: context deadline exceeded") {
		t.Fatalf("reason with a hung probe: %q", r)
	}
	s.checkOnce(t.Context(), 100*time.Millisecond)
	if r := storage(); !strings.Contains(r, "has not returned") {
		t.Fatalf("reason while the hung probe lasts: %q", r)
	}
	close(lake.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.checkOnce(t.Context(), time.Second)
		if storage() == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage still failing after the call returned: %q", storage())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// storageReason is the readiness reason about storage ("" when none).
func storageReason(s *Ops) string {
	_, reasons := s.Readiness()
	for _, r := range reasons {
		if strings.HasPrefix(r, "storage") {
			return r
		}
	}
	return ""
}
