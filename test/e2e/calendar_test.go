package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
)

// TestCalendarNights runs the binary with both streams in
// America/New_York over the night clocks go back (2026-11-01: 01:00 EDT
// and 01:00 EST both render to hour=01) and the night they skip an hour
// (2026-03-08: no 02:00), on a local lake and on S3, with late records for
// the repeated hour. Every record is read exactly once through the
// manifests, every folder of the night has a marker, the repeated hour's
// folder has one manifest covering both buckets, there is no folder for
// the skipped hour, and nothing is outside the manifests. With one
// manifest per bucket and the bucket-blind orphan rule, the first 01:00
// hour's files were deleted as orphans of the second's.
func TestCalendarNights(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	nights := []struct {
		name string
		from time.Time // six hours of events from here
		late bool      // late records for the repeated hour, after the rest
	}{
		{"fall back", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), true},
		{"spring forward", time.Date(2026, 3, 8, 4, 0, 0, 0, time.UTC), false},
	}
	for _, b := range backends[:2] { // local, s3
		t.Run(b.name, func(t *testing.T) {
			for _, night := range nights {
				t.Run(night.name, func(t *testing.T) {
					runCalendarNight(t, b.open(t), night.from, night.late)
				})
			}
		})
	}
}

func runCalendarNight(t *testing.T, b backend, from time.Time, late bool) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	k := testenv.StartKafka(t)
	const clickTopic, iotTopic, clickParts, iotParts, group = "clickstream", "iot-telemetry", 6, 4, "lakesink-calendar"
	k.CreateTopic(t, clickTopic, clickParts)
	k.CreateTopic(t, iotTopic, iotParts)
	p := &produced{valid: map[string]map[string]int64{}, malformed: map[string]int{}, perPart: map[string]map[int]int{}}
	produce(t, k, p, "clickstream", clickTopic, []int{0, 1, 2, 3, 4, 5}, 6000, from, 6, demo.Clickstream, clickID)
	produce(t, k, p, "iot", iotTopic, []int{0, 1, 2, 3}, 3000, from, 6, demo.IoT, iotID)

	cfgPath := writeConfig(t, k.Addr, group, b.storage, "127.0.0.1:0")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	zoned := strings.Replace(string(cfg), "format: unix_ms}", "format: unix_ms, timezone: America/New_York}", 1)
	zoned = strings.Replace(zoned, "format: rfc3339, timezone: UTC}", "format: rfc3339, timezone: America/New_York}", 1)
	if strings.Count(zoned, "America/New_York") != 2 {
		t.Fatalf("config has no place for the zone:\n%s", cfg)
	}
	if err := os.WriteFile(cfgPath, []byte(zoned), 0o600); err != nil {
		t.Fatal(err)
	}

	bin := testenv.Build(t, "./cmd/lakesink")
	proc := testenv.Start(t, "lakesink", bin, testenv.Options{Env: b.env}, "run", "-c", cfgPath)

	tmpl, err := partitioner.ParsePathTemplate("{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}")
	if err != nil {
		t.Fatal(err)
	}
	var folders []string // every folder of the night, once
	for h := partitioner.HourOf(from, ny); h.Before(from.Add(6 * time.Hour)); h = partitioner.NextHour(h, ny) {
		if f := tmpl.Render("S", h); len(folders) == 0 || folders[len(folders)-1] != f {
			folders = append(folders, f)
		}
	}
	ctx := context.Background()
	topics := map[string]int{clickTopic: clickParts, iotTopic: iotParts}
	settled := func() error {
		select {
		case <-proc.Done():
			return fmt.Errorf("lakesink exited: %v", proc.ExitErr())
		default:
		}
		for _, s := range []string{"clickstream", "iot"} {
			for _, f := range folders {
				key := strings.Replace(f, "S", s, 1) + "/_SUCCESS"
				if ok, err := b.lake.Exists(ctx, key); err != nil || !ok {
					return fmt.Errorf("no marker %s (%v)", key, err)
				}
			}
			if err := allListed(ctx, t, b.lake, s); err != nil {
				return err
			}
		}
		for topic, n := range topics {
			high := k.HighWatermarks(t, topic, n)
			committed, _, err := k.TryCommittedOffsets(group, topic, n)
			if err != nil {
				return err
			}
			for part := range n {
				if high[part] > 0 && committed[part] != high[part] {
					return fmt.Errorf("%s/%d: committed %d, high watermark %d", topic, part, committed[part], high[part])
				}
			}
		}
		return nil
	}
	testenv.Eventually(t, 3*time.Minute, 500*time.Millisecond, "markers, commits and every file listed", settled)
	day := from.In(ny).Add(3 * time.Hour).Format("2006-01-02")
	if late {
		// After the repeated hour's marker: late records of both 01:00
		// hours (05:00-07:00 UTC), amendments of the one folder.
		produce(t, k, p, "clickstream", clickTopic, []int{0, 1, 2, 3, 4, 5}, 600, from.Add(2*time.Hour), 2, demo.Clickstream, clickID)
		key := fmt.Sprintf("clickstream/dt=%s/hour=01/_SUCCESS", day)
		testenv.Eventually(t, 3*time.Minute, 500*time.Millisecond, "the late records' revision", func() error {
			if err := settled(); err != nil {
				return err
			}
			if m := readManifest(t, b.lake, key); m.Revision < 2 {
				return fmt.Errorf("%s: revision %d", key, m.Revision)
			}
			return nil
		})
	}
	stopGracefully(t, proc)

	for _, stream := range []string{"clickstream", "iot"} {
		checkExactlyOnce(t, b.lake, stream, p.valid[stream])
	}
	// The night's folders as Airflow sees them.
	for _, s := range []string{"clickstream", "iot"} {
		f01 := fmt.Sprintf("%s/dt=%s/hour=01/_SUCCESS", s, day)
		m := readManifest(t, b.lake, f01)
		if want := map[bool]int{true: 2, false: 1}[late]; len(m.Ranges) != want {
			t.Errorf("%s: %d ranges %v, want %d", f01, len(m.Ranges), m.Ranges, want)
		}
		if late && s == "clickstream" && m.Revision < 2 {
			t.Errorf("%s: revision %d, want at least 2 after the late records", f01, m.Revision)
		}
		if !late {
			objs, err := b.lake.List(ctx, fmt.Sprintf("%s/dt=%s/hour=02/", s, day))
			if err != nil || len(objs) != 0 {
				t.Errorf("%s: a folder for the skipped hour 02: %v %v", s, objs, err)
			}
		}
	}
}

// allListed returns an error naming a data file of stream that no
// _SUCCESS manifest lists (yet).
func allListed(ctx context.Context, t *testing.T, lake writers.Writer, stream string) error {
	objs, err := lake.List(ctx, stream+"/")
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, "/"+partitioner.MarkerName) {
			for _, f := range readManifest(t, lake, o.Key).Files {
				listed[f.Path] = true
			}
		}
	}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".parquet") && !listed[o.Key] {
			return fmt.Errorf("%s is in no manifest yet", o.Key)
		}
	}
	return nil
}
