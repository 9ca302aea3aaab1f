package main

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	for _, want := range []string{"committed", "parquet files", "hour markers", "complete: _SUCCESS", lake, "Iceberg table lake.clickstream", "iceberg_scan("} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
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
