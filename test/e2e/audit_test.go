package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/audit"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/test/lakecheck"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
)

// runAudit runs `lakesink audit --json` and returns its exit code and
// report.
func runAudit(t *testing.T, bin string, env []string, args ...string) (int, audit.Report) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, append([]string{"audit", "--json"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("lakesink audit: %v", err)
	}
	var r audit.Report
	if code == 0 || code == 1 {
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("lakesink audit output (exit %d): %v\n%s\n%s", code, err, out.String(), errb.String())
		}
	}
	t.Logf("lakesink audit %v: exit %d, %d findings\n%s", args, code, len(r.Findings), errb.String())
	return code, r
}

// TestAudit runs the sink on two small streams, audits the lake with the
// binary (clean: exit 0), then damages it — a listed file deleted, a copy
// of a listed file beside it, a copy listed in the manifest overlapping
// its original, a manifest dropped — and requires exit 1 with a finding
// naming each.
func TestAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	const (
		clickTopic, iotTopic = "clickstream", "iot-telemetry"
		group                = "lakesink-audit"
	)
	k.CreateTopic(t, clickTopic, 3)
	k.CreateTopic(t, iotTopic, 2)
	from := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	p := newProduced()
	produce(t, k, p, "clickstream", clickTopic, []int{0, 1, 2}, 3000, from, 3, demo.Clickstream, clickID)
	produce(t, k, p, "iot", iotTopic, []int{0, 1}, 1000, from, 3, demo.IoT, iotID)

	b := localBackend(t)
	cfgPath := writeConfig(t, k.Addr, group, b.storage, "127.0.0.1:0")
	bin := testenv.Build(t, "./cmd/lakesink")
	proc := testenv.Start(t, "lakesink", bin, testenv.Options{}, "run", "-c", cfgPath)
	hours := []time.Time{from, from.Add(time.Hour), from.Add(2 * time.Hour)}
	awaitMarkersAndCommits(t, proc, b.lake, k, group, p, map[string]int{clickTopic: 3, iotTopic: 2}, hours)
	stopGracefully(t, proc)

	rangeArgs := []string{"--config", cfgPath, "--from", from.Format(time.RFC3339), "--to", from.Add(3 * time.Hour).Format(time.RFC3339)}
	code, r := runAudit(t, bin, nil, rangeArgs...)
	if code != 0 || !r.Clean() || len(r.Streams) != 2 || r.Streams[0].Files == 0 || r.Streams[0].Marked != 3 {
		t.Fatalf("audit of a clean lake: exit %d, %+v", code, r)
	}

	ctx := context.Background()
	manifest := func(h time.Time) (string, completion.Manifest) {
		key := fmt.Sprintf("clickstream/dt=%s/hour=%s/_SUCCESS", h.Format("2006-01-02"), h.Format("15"))
		return key, lakecheck.ReadManifest(t, b.lake, key)
	}
	copyObj := func(from, to string) {
		if ok, err := b.lake.Exists(ctx, to); err != nil || ok {
			t.Fatalf("copy %s to %s: the name is taken (%v)", from, to, err)
		}
		rc, err := b.lake.Get(ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		put(t, b.lake, to, data)
	}
	// Hour 0: a listed file deleted.
	_, m0 := manifest(hours[0])
	deleted := m0.Files[0].Path
	if err := b.lake.Delete(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	// Hour 1: a copy of a listed file under the name of its next offset,
	// in no manifest (what a crashed attempt leaves behind).
	_, m1 := manifest(hours[1])
	f1 := m1.Files[0]
	stray := b.lakeKey(f1, f1.FirstOffset+1)
	copyObj(f1.Path, stray)
	// Hour 2: the same, but listed by the manifest: the same offsets twice.
	k2, m2 := manifest(hours[2])
	f2 := m2.Files[0]
	dup := b.lakeKey(f2, f2.FirstOffset+1)
	copyObj(f2.Path, dup)
	e := f2
	e.Path, e.FirstOffset = dup, f2.FirstOffset+1
	m2.Files = append(m2.Files, e)
	put(t, b.lake, k2, m2.Encode())
	// iot's hour 1: the manifest dropped.
	dropped := fmt.Sprintf("iot/dt=%s/hour=%s/_SUCCESS", hours[1].Format("2006-01-02"), hours[1].Format("15"))
	if err := b.lake.Delete(ctx, dropped); err != nil {
		t.Fatal(err)
	}

	code, r = runAudit(t, bin, nil, rangeArgs...)
	if code != 1 {
		t.Fatalf("audit of a damaged lake: exit %d, want 1: %+v", code, r)
	}
	found := map[string]bool{}
	for _, f := range r.Findings {
		found[string(f.Kind)+" "+f.Key] = true
		t.Logf("finding: %+v", f)
	}
	for _, want := range []string{
		string(audit.MissingFile) + " " + deleted,
		string(audit.UnlistedFile) + " " + stray,
		string(audit.OverlappingOffsets) + " " + dup,
		string(audit.MarkerMissing) + " " + dropped,
	} {
		if !found[want] {
			t.Errorf("no finding %q", want)
		}
	}
	// --stream narrows the audit: iot's damage alone.
	if code, r := runAudit(t, bin, nil, append(rangeArgs, "--stream", "iot")...); code != 1 || len(r.Findings) != 1 || r.Findings[0].Key != dropped {
		t.Errorf("audit --stream iot: exit %d, %+v", code, r.Findings)
	}
}

// lakeKey is the key of a file of f's folder, topic and partition whose
// name says it starts at first.
func (b backend) lakeKey(f completion.ManifestFile, first int64) string {
	dir := f.Path[:len(f.Path)-len(partitioner.FileName(f.Topic, f.Partition, f.FirstOffset))]
	return dir + partitioner.FileName(f.Topic, f.Partition, first)
}

func put(t *testing.T, w writers.Writer, key string, data []byte) {
	t.Helper()
	if err := w.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}
