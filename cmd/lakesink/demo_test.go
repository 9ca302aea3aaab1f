package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
)

// TestDemo runs `lakesink demo` for a few seconds, as a new user would, and
// checks that it shows progress and leaves data files and markers.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	lake := filepath.Join(t.TempDir(), "lake")
	var out, errb bytes.Buffer
	began := time.Now()
	code := run([]string{"demo", "-lake", lake, "-duration", "6s", "-records", "3000", "-hours", "2"}, &out, &errb)
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"consumed", "in the lake", "in open files", "until", "dead-lettered", "markers", "complete: _SUCCESS", lake, "Iceberg table lake.clickstream", "iceberg_scan("} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	// Piped (stdout is not a terminal): plain lines, no carriage returns,
	// one progress line every five seconds and a last one at the end.
	if strings.ContainsAny(out.String(), "\r\x1b") {
		t.Errorf("piped demo output has carriage returns or escapes:\n%q", out.String())
	}
	if n := strings.Count(out.String(), " · in the lake "); n < 2 {
		t.Errorf("%d progress lines in 6s, want one after 5s and the last:\n%s", n, out.String())
	}
	markers := map[string]bool{}
	files := 0
	_ = filepath.WalkDir(lake, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch {
		case d.Name() == "_SUCCESS":
			rel, _ := filepath.Rel(lake, filepath.Dir(p))
			markers[rel] = true
		case strings.HasSuffix(p, ".parquet"):
			files++
		}
		return nil
	})
	// The backlog spans the two hours before the one the demo began in; an
	// hour is complete once its end plus the demo's allowed lateness (1
	// minute) has passed, so in the first minute of an hour the last one
	// is not yet.
	complete := 0
	for h := began.Truncate(time.Hour).Add(-2 * time.Hour); h.Before(began.Truncate(time.Hour)); h = h.Add(time.Hour) {
		if !h.Add(time.Hour + time.Minute).After(time.Now()) {
			complete++
		}
	}
	if len(markers) < 2*complete {
		t.Errorf("%d hour markers in the lake, want at least %d (%d complete past hours x 2 streams): %v", len(markers), 2*complete, complete, markers)
	}
	if files < 2*(6+3) {
		t.Errorf("%d parquet files, want at least one per partition and past hour", files)
	}
}

// TestDemoTerminal: in a terminal the progress line is rewritten in place
// (carriage return, erase to the end of the line) every second and ends
// with a newline; the records the line counts add up.
func TestDemoTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	opts := demo.DefaultOptions()
	opts.Lake, opts.Duration, opts.Records, opts.Hours, opts.Terminal = filepath.Join(t.TempDir(), "lake"), 4*time.Second, 2000, 1, true
	opts.Run = func(ctx context.Context, cfg *config.Config, ready func(string)) error {
		return runSink(ctx, cfg, slog.New(slog.DiscardHandler), ready)
	}
	var out bytes.Buffer
	if err := demo.Run(context.Background(), opts, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	s := out.String()
	if n := strings.Count(s, "\r  "); n < 3 {
		t.Errorf("%d rewrites of the progress line in 4s, want one a second:\n%q", n, s)
	}
	if !strings.Contains(s, "\x1b[K\n\nstopping") {
		t.Errorf("the last progress line does not end the line:\n%q", s)
	}
	// consumed = in the lake + in open files + dead-lettered, up to the
	// records read since the last report (a commit interval).
	last := s[strings.LastIndex(s, "\r")+1:]
	var consumed, lake, open, dead int64
	if _, err := fmt.Sscanf(last[strings.Index(last, "consumed"):], "consumed %d · in the lake %d · in open files %d", &consumed, &lake, &open); err != nil {
		t.Fatalf("parse %q: %v", last, err)
	}
	if _, err := fmt.Sscanf(last[strings.Index(last, "dead-lettered"):], "dead-lettered %d", &dead); err != nil {
		t.Fatalf("parse %q: %v", last, err)
	}
	if got := lake + open + dead; got > consumed || consumed-got > 100 {
		t.Errorf("in the lake %d + open %d + dead-lettered %d = %d, consumed %d", lake, open, dead, got, consumed)
	}
}
