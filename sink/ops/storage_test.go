package ops

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/writers"
)

// TestStorageFollowsUploads: a lake that takes the write probe's tiny
// object but refuses every data file (a disk with room for small files
// only, S3 answering 413 EntityTooLarge) stays not ready while uploads
// fail. Each source of storage calls clears only the fault it raised: the
// probe's success never clears an upload's; an upload's success clears it
// unless another upload still fails; an upload fault whose uploads were all
// abandoned clears once none failed for uploadQuiet and none runs; the
// finalizer clears its own.
func TestStorageFollowsUploads(t *testing.T) {
	enospc := errors.New("put clickstream/dt=2026-12-06/hour=00/c+0+00000000000000000000.parquet: write: no space left on device")
	tooLarge := errors.New("put clickstream/x.parquet: api error EntityTooLarge: Your proposed upload exceeds the maximum allowed size")
	probeDown := errors.New("dial tcp 127.0.0.1:9: connection refused")

	// env is a sink's Ops on a lake whose probe puts succeed unless down,
	// with a clock the steps move and the log they wrote.
	type env struct {
		o    *Ops
		lake *failingLake
		now  *time.Time
		log  *bytes.Buffer
	}
	type step struct {
		do        func(e *env)
		wantReady bool
		// wantErr is what the storage reason must hold while not ready.
		wantErr string
	}
	// probe runs one health check (the real probe, a put and delete of a
	// tiny object) a second after the last.
	probe := func(e *env) { *e.now = e.now.Add(time.Second); e.o.checkOnce(t.Context(), time.Second) }
	uploads := func(n int) (attempts []func(error), ends []func()) {
		return make([]func(error), n), make([]func(), n)
	}
	cases := []struct {
		name  string
		steps func() []step
	}{
		{"probe succeeds while an upload keeps failing", func() []step {
			a, end := uploads(1)
			return []step{
				{do: func(e *env) { a[0], end[0] = e.o.Health.Upload() }, wantReady: true},
				{do: func(e *env) { a[0](enospc) }, wantErr: "no space left on device"},
				{do: probe, wantErr: "no space left on device"},
				{do: probe, wantErr: "no space left on device"},
				{do: func(e *env) { *e.now = e.now.Add(10 * time.Minute); a[0](enospc); probe(e) }, wantErr: "no space left on device"},
				{do: func(e *env) { a[0](nil) }, wantReady: true},
				{do: func(e *env) { end[0](); probe(e) }, wantReady: true},
			}
		}},
		{"another upload succeeds while one fails", func() []step {
			a, end := uploads(2)
			return []step{
				{do: func(e *env) {
					a[0], end[0] = e.o.Health.Upload()
					a[1], end[1] = e.o.Health.Upload()
					a[0](tooLarge)
				}, wantErr: "EntityTooLarge"},
				{do: func(e *env) { a[1](nil); end[1](); probe(e) }, wantErr: "EntityTooLarge"},
				{do: func(e *env) { a[0](tooLarge); a[0](nil) }, wantReady: true},
			}
		}},
		{"abandoned uploads: cleared after a quiet while without uploads", func() []step {
			a, end := uploads(2)
			return []step{
				{do: func(e *env) { a[0], end[0] = e.o.Health.Upload(); a[0](enospc); end[0](); end[0]() }, wantErr: "no space left on device"},
				{do: func(e *env) { *e.now = e.now.Add(uploadQuiet - 2*time.Second); probe(e) }, wantErr: "no space left on device"},
				// An upload running (not failed yet) holds the fault past
				// the quiet while: it may fail like the last one.
				{do: func(e *env) { a[1], end[1] = e.o.Health.Upload(); probe(e); probe(e) }, wantErr: "no space left on device"},
				{do: func(e *env) { end[1](); probe(e) }, wantReady: true},
			}
		}},
		{"abandoned upload: cleared by the next successful one", func() []step {
			a, end := uploads(2)
			return []step{
				{do: func(e *env) { a[0], end[0] = e.o.Health.Upload(); a[0](enospc); end[0]() }, wantErr: "no space left on device"},
				{do: func(e *env) { a[1], end[1] = e.o.Health.Upload(); a[1](nil); end[1]() }, wantReady: true},
			}
		}},
		{"the probe raises and clears its own fault; uploads do not clear it", func() []step {
			a, end := uploads(1)
			return []step{
				{do: func(e *env) { e.lake.setDown(true); probe(e) }, wantErr: "write probe: put _lakesink/probe/"},
				{do: func(e *env) { a[0], end[0] = e.o.Health.Upload(); a[0](nil); end[0]() }, wantErr: "connection refused"},
				{do: func(e *env) { e.lake.setDown(false); probe(e) }, wantReady: true},
			}
		}},
		{"both fail: the upload's error is shown, the probe's recovery changes nothing", func() []step {
			a, end := uploads(1)
			return []step{
				{do: func(e *env) { e.lake.setDown(true); probe(e); a[0], end[0] = e.o.Health.Upload(); a[0](enospc) }, wantErr: "no space left on device"},
				{do: func(e *env) { e.lake.setDown(false); probe(e) }, wantErr: "no space left on device"},
				{do: func(e *env) { a[0](nil); end[0]() }, wantReady: true},
			}
		}},
		{"the finalizer clears its own fault, not the probe", func() []step {
			return []step{
				{do: func(e *env) { e.o.Health.Storage(probeDown) }, wantErr: "connection refused"},
				{do: probe, wantErr: "connection refused"},
				{do: func(e *env) { e.o.Health.Storage(nil) }, wantReady: true},
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
			e := &env{lake: &failingLake{Writer: writers.NewMemory()}, now: &now, log: &bytes.Buffer{}}
			e.o = New(Options{Writer: e.lake, Topics: noBroker{}, DeadLetterTopic: "lakesink-dlq",
				Now: func() time.Time { return now }, Registry: prometheus.NewRegistry(),
				Log: slog.New(slog.NewTextHandler(e.log, nil))})
			e.o.Health.SetJoined(true, "")
			probe(e)
			if r := storageReason(e.o); r != "" {
				t.Fatalf("before: %s", r)
			}
			for i, st := range c.steps() {
				st.do(e)
				r := storageReason(e.o)
				switch {
				case st.wantReady && r != "":
					t.Fatalf("step %d: storage reason %q, want none", i, r)
				case !st.wantReady && (!strings.HasPrefix(r, "storage unreachable: ") || !strings.Contains(r, st.wantErr)):
					t.Fatalf("step %d: storage reason %q, want storage unreachable with %q", i, r, st.wantErr)
				}
			}
			// One fault, one line when it started and one when it cleared.
			if n := strings.Count(e.log.String(), "recovered: storage unreachable"); n != 1 {
				t.Errorf("%d recovery lines, want 1:\n%s", n, e.log)
			}
		})
	}
}

func (f *failingLake) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}
