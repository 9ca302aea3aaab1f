package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	if code == 0 {
		err := goleak.Find(
			// kafka-go's shared transport and net/http keep idle connections.
			goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
			goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*conn).run"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce          sync.Once
	sinkBin, brokerBin string
	buildErr           error
	buildDir           string // removed by TestMain
)

// binaries builds lakesink and kafkabroker once per test process.
func binaries(t testing.TB) (string, string) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "lakesink-bench-bin-")
		if buildErr == nil {
			sinkBin, brokerBin, buildErr = Build(context.Background(), buildDir)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return sinkBin, brokerBin
}

// TestHarnessSmoke runs the whole harness on a small backlog: the binary
// must commit everything, the lake and the manifests must hold exactly the
// produced records, the measurements must be plausible, and the JSON line
// must round-trip.
func TestHarnessSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the broker and lakesink processes: not in -short mode")
	}
	sb, bb := binaries(t)
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"clickstream", Options{Scenario: "smoke", Records: 20000, Partitions: 6, WaitMarkers: true}},
		{"iot", Options{Scenario: "smoke", Schema: SchemaIoT, Records: 10000, Partitions: 3, Hours: 1, WaitMarkers: true}},
		// The same records as "clickstream", Avro-encoded, with the
		// registry in this process.
		{"clickstream-avro", Options{Scenario: "smoke", Format: FormatAvro, Records: 20000, Partitions: 6, WaitMarkers: true}},
		{"clickstream-avro2", Options{Scenario: "smoke", Format: FormatAvro2, Records: 20000, Partitions: 6, WaitMarkers: true}},
		// The memory scenario in small: every hour open in every partition.
		{"memory", Options{Scenario: "memory-smoke", Records: 20000, Partitions: 32, Hours: 4, Interleave: true,
			MemoryLimit: "64MiB", WaitMarkers: true}},
		// Two instances in one group, and a table.
		{"instances", Options{Scenario: "smoke", Records: 20000, Partitions: 6, WaitMarkers: true, Instances: 2, Table: true}},
		// The skewed scenario in small: 2 busy partitions of 16 fed in
		// bursts further apart than the idle timeout, hours the wall
		// clock has not closed, a graceful stop at the end.
		{"open-hours", Options{Scenario: "skewed-smoke", Records: 20000, Partitions: 16, Busy: 2, Live: true, OpenHours: true,
			Interleave: true, Hours: 2, Burst: 4000, BurstGap: 1500 * time.Millisecond, IdleTimeout: time.Second}},
		// The compaction scenario in small: one closed hour in 16 files.
		{"compaction", Options{Scenario: "compaction-smoke", Records: 20000, Partitions: 16, Hours: 1, Compaction: true, MemoryLimit: "64MiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.LakesinkBin, o.BrokerBin = sb, bb
			o.WorkDir = t.TempDir()
			o.Timeout = 2 * time.Minute
			res, err := Run(context.Background(), o)
			if err != nil {
				t.Fatalf("run: %v\n%s\n%s", err, res.Table(), tail(filepath.Join(o.WorkDir, "lakesink.log"), 20))
			}
			t.Logf("\n%s", res.Table())
			wantManifest := res.Records
			if o.OpenHours {
				wantManifest = -1 // no marker can come
			}
			if !res.Verified || res.Records != int64(o.Records) || res.LakeRecords != res.Records || res.ManifestRecords != wantManifest || res.RowsRead != res.Records {
				t.Errorf("records: produced %d, lake %d, manifests %d, rows read %d, verified %v", res.Records, res.LakeRecords, res.ManifestRecords, res.RowsRead, res.Verified)
			}
			// Every (busy) partition has records in every hour the backlog
			// covers, so at least one file per partition-hour; compaction
			// leaves one file for the hour.
			hours := o.Hours
			if hours == 0 {
				hours = 2 // the default
			}
			parts := o.Partitions
			if o.Busy > 0 {
				parts = o.Busy
			}
			switch c := res.Compaction; {
			case o.Compaction && c == nil:
				t.Errorf("compaction not measured")
			case o.Compaction:
				if res.LakeFiles != 1 || res.CompactedFiles != 1 || c.FolderFiles != 1 || c.FolderCompacted != 1 || c.FilesIn != int64(parts) || c.FilesOut != 1 {
					t.Errorf("compaction: %d files in the lake, %d compacted; %+v", res.LakeFiles, res.CompactedFiles, *c)
				}
				if c.WriteCPUSeconds <= 0 || c.CompactCPUSeconds < 0 || c.PhaseSeconds <= 0 || c.Markers < 1 || c.DurationSeconds <= 0 {
					t.Errorf("compaction measurement: %+v", *c)
				}
			default:
				if want := parts * hours; res.Buckets != want || res.LakeFiles < want {
					t.Errorf("%d files for %d partition-hours in the lake, want %d partition-hours", res.LakeFiles, res.Buckets, want)
				}
				if res.MaxFilesPerBucket < 1 || res.LakeFiles < res.Buckets {
					t.Errorf("%d files, %d partition-hours, at most %d files per partition-hour", res.LakeFiles, res.Buckets, res.MaxFilesPerBucket)
				}
			}
			if o.OpenHours && (res.LakeFiles != res.Buckets || res.FilesFinished["shutdown"] != int64(res.LakeFiles) || res.ShutdownSeconds <= 0) {
				// The idle timeout passes between the bursts, but the open
				// hours' files stay open until the graceful stop.
				t.Errorf("open hours: %d files for %d partition-hours, finished by %v, shutdown %.2f s", res.LakeFiles, res.Buckets, res.FilesFinished, res.ShutdownSeconds)
			}
			if res.Seconds <= 0 || res.RecordsPerSec <= 0 || res.MBPerSec <= 0 {
				t.Errorf("no throughput measured: %+v", res)
			}
			if res.AllConsumedSeconds < res.FirstConsumedSeconds || res.AllConsumedSeconds > res.Seconds || res.FirstConsumedSeconds <= 0 {
				t.Errorf("phases out of order: first %.3f all %.3f committed %.3f", res.FirstConsumedSeconds, res.AllConsumedSeconds, res.Seconds)
			}
			if n := max(o.Instances, 1); res.Instances != n || len(res.InstanceCPUSeconds) != n || len(res.InstancePeakRSSMiB) != n {
				t.Errorf("%d instances reported (%d CPU, %d RSS figures), want %d", res.Instances, len(res.InstanceCPUSeconds), len(res.InstancePeakRSSMiB), n)
			}
			if o.Table && res.TableRecords != res.Records {
				t.Errorf("%d records in the table, %d produced", res.TableRecords, res.Records)
			}
			if res.CPUSeconds <= 0 || res.CPUSecondsExit < res.CPUSeconds {
				t.Errorf("cpu seconds %.2f at commit, %.2f at exit", res.CPUSeconds, res.CPUSecondsExit)
			}
			if res.PeakRSSMiB < 5 || res.PeakRSSMiB > 4096 || res.PeakRSSMiBExit < res.PeakRSSMiB*0.9 {
				t.Errorf("peak RSS %.1f MiB at commit, %.1f MiB at exit", res.PeakRSSMiB, res.PeakRSSMiBExit)
			}
			// JSON clickstream ~320 B, IoT ~160 B; Avro clickstream ~150 B.
			lo, hi := 250.0, 400.0
			switch {
			case o.Schema == SchemaIoT:
				lo, hi = 100, 250
			case o.Format == FormatAvro, o.Format == FormatAvro2:
				lo, hi = 120, 200
			}
			if avg := float64(res.ValueBytes) / float64(res.Records); avg < lo || avg > hi {
				t.Errorf("%.0f bytes per %s %s record, want %.0f to %.0f", avg, res.Schema, res.Format, lo, hi)
			}
			if o.Scenario == "memory-smoke" && res.LakeFiles != res.Buckets {
				// Hours open on every partition in a small limit: files are
				// deferred, none is ended early for memory.
				t.Errorf("%d files for %d partition-hours under memory pressure, want one each", res.LakeFiles, res.Buckets)
			}
			if o.Format == FormatAvro2 && res.LakeFiles > res.Buckets {
				// Interleaved writer schema versions share the files.
				t.Errorf("%d files for %d partition-hours of two interleaved writer schema versions, want one each", res.LakeFiles, res.Buckets)
			}
			if want := cmp.Or(o.Format, FormatJSON); res.Format != want {
				t.Errorf("result format %q, want %q", res.Format, want)
			}

			results := filepath.Join(t.TempDir(), "results.jsonl")
			for range 2 {
				if err := AppendJSON(results, res); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(results)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) != 2 {
				t.Fatalf("%d result lines, want 2", len(lines))
			}
			var back Result
			if err := json.Unmarshal([]byte(lines[1]), &back); err != nil {
				t.Fatal(err)
			}
			if back.Records != res.Records || back.PeakRSSMiB != res.PeakRSSMiB || back.Machine.NumCPU != res.Machine.NumCPU {
				t.Errorf("JSON round trip: %+v != %+v", back, res)
			}
		})
	}
}

// TestRunRejectsBadOptions: options that cannot give a meaningful run fail
// before anything starts.
func TestRunRejectsBadOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"unknown schema":      {Schema: "logs"},
		"unknown format":      {Format: "protobuf"},
		"late interleaved":    {Interleave: true, Hours: 4, Lateness: time.Hour},
		"lateness equal span": {Interleave: true, Hours: 2, Lateness: 2 * time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Run(context.Background(), o); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"1234 (lakesink) S 1 1234 1234 0 -1 4194560 9000 0 0 0 250 75 0 0 20 0 12 0 100 2000000 5000 ...", 3.25, true},
		// A command with spaces and parentheses.
		{"77 (a b) c)) R 1 77 77 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1", 0.03, true},
		{"77 (x) R 1 2 3", 0, false},
		{"no paren", 0, false},
		{"1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 2 0", 0, false},
	} {
		got, err := parseStatCPU([]byte(tc.in))
		if (err == nil) != tc.ok || (tc.ok && (got < tc.want-1e-9 || got > tc.want+1e-9)) {
			t.Errorf("parseStatCPU(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	// The live process: some CPU was spent to get here.
	if s, err := procCPUSeconds(os.Getpid()); err != nil || s < 0 {
		t.Errorf("procCPUSeconds(self) = %v, %v", s, err)
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tlakesink\nVmPeak:\t  900000 kB\nVmHWM:\t   102400 kB\nVmRSS:\t   51200 kB\n"
	if got, err := parseStatusKB([]byte(status), "VmHWM"); err != nil || got != 100<<20 {
		t.Errorf("VmHWM = %d, %v; want %d", got, err, 100<<20)
	}
	for _, bad := range []string{"VmRSS:\t 1 kB\n", "VmHWM:\t 12\n", "VmHWM:\t x kB\n"} {
		if got, err := parseStatusKB([]byte(bad), "VmHWM"); err == nil {
			t.Errorf("parseStatusKB(%q) = %d, want an error", bad, got)
		}
	}
	if n, err := procPeakRSS(os.Getpid()); err != nil || n <= 0 {
		t.Errorf("procPeakRSS(self) = %d, %v", n, err)
	}
}

func TestParseCounter(t *testing.T) {
	text := `# HELP lakesink_records_consumed_total Records read.
# TYPE lakesink_records_consumed_total counter
lakesink_records_consumed_total 1.234567e+06
lakesink_records_consumed_total_extra 99
lakesink_records_written_total{stream="a"} 10
lakesink_records_written_total{stream="b",x="}"} 5
`
	for _, tc := range []struct {
		name string
		want int64
		ok   bool
	}{
		{"lakesink_records_consumed_total", 1234567, true},
		{"lakesink_records_written_total", 15, true},
		{"lakesink_nothing_total", 0, false},
	} {
		got, ok := parseCounter(strings.NewReader(text), tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseCounter(%s) = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestConfigYAML: the generated configs pass lakesink's own validation and
// say what the run needs; Avro streams keep the JSON run's columns.
func TestConfigYAML(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     Options
		want  []string
		avoid []string
	}{
		{"iot json memory", Options{Schema: SchemaIoT, MemoryLimit: "256MiB", Interleave: true, Hours: 4},
			[]string{"memory_limit: 256MiB", "allowed_lateness: 4h30m0s", "format: rfc3339", "{name: humidity, type: float}"},
			[]string{"schema_registry", "format: avro"}},
		{"clickstream json", Options{},
			[]string{"format: unix_ms", "{name: device_id, path: device.id, type: string}", "{name: attrs, type: json}"},
			[]string{"schema_registry", "format: avro", "memory_limit"}},
		{"clickstream avro", Options{Format: FormatAvro},
			[]string{"format: avro", `url: "http://127.0.0.1:8085"`, "time: {field: ts, timezone: UTC}",
				"{name: device_id, path: device.id, type: string}", "{name: attrs, type: json}"},
			[]string{"unix_ms"}},
		{"iot avro", Options{Format: FormatAvro, Schema: SchemaIoT},
			[]string{"format: avro", "time: {field: event_time, timezone: UTC}", "{name: seq, type: int64}"},
			[]string{"rfc3339", "compaction"}},
		{"compaction", Options{Compaction: true, MemoryLimit: "256MiB"},
			[]string{"compaction: {enabled: true}", "memory_limit: 256MiB"}, []string{"assignor"}},
		{"range assignor", Options{Assignor: "range"}, []string{"assignor: range"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.defaults()
			reg := ""
			if o.Format == FormatAvro {
				reg = "http://127.0.0.1:8085"
			}
			y := configYAML(o, "127.0.0.1:9092", o.Schema, "g", "/w", "/w/lake", 8081, reg)
			cfg, err := config.Parse([]byte(y), nil)
			if err != nil {
				t.Fatalf("config does not validate: %v\n%s", err, y)
			}
			want := append([]string{`brokers: ["127.0.0.1:9092"]`, `listen: "127.0.0.1:8081"`, "idle_partition_timeout: 300ms",
				"compression: zstd", `root: "/w/lake"`}, tc.want...)
			for _, w := range want {
				if !strings.Contains(y, w) {
					t.Errorf("config lacks %q:\n%s", w, y)
				}
			}
			for _, a := range tc.avoid {
				if strings.Contains(y, a) {
					t.Errorf("config has %q:\n%s", a, y)
				}
			}
			// The stream's columns are those of the demo stream, whatever
			// the format.
			demoStream := demo.ClickstreamStream(o.Schema)
			if o.Schema == SchemaIoT {
				demoStream = demo.IoTStream(o.Schema)
			}
			if got := cfg.Streams[0]; !slices.Equal(got.Schema, demoStream.Schema) || string(got.Format) != o.Format {
				t.Errorf("stream %+v, want format %s and the columns %+v", got, o.Format, demoStream.Schema)
			}
			if got, want := string(cfg.Kafka.Assignor), cmp.Or(o.Assignor, string(config.AssignSticky)); got != want {
				t.Errorf("kafka.assignor %q, want %q", got, want)
			}
			if got := cfg.Streams[0].Compaction.Enabled; got != o.Compaction {
				t.Errorf("compaction enabled %v, want %v", got, o.Compaction)
			}
		})
	}
}

func TestBusyIndex(t *testing.T) {
	for _, tc := range []struct{ partitions, busy int }{{512, 10}, {6, 6}, {40, 7}, {3, 1}} {
		seen := map[int]int{}
		for p := range tc.partitions {
			if i, ok := busyIndex(p, tc.partitions, tc.busy); ok {
				if prev, dup := seen[i]; dup {
					t.Errorf("%d/%d: partitions %d and %d are both busy partition %d", tc.partitions, tc.busy, prev, p, i)
				}
				seen[i] = p
			}
		}
		if len(seen) != tc.busy {
			t.Errorf("%d partitions, %d busy: found %d busy partitions %v", tc.partitions, tc.busy, len(seen), seen)
		}
	}
}

// TestPartitionOf: the records produce puts in a partition are the ones
// partitionOf names it for, with and without busy partitions.
func TestPartitionOf(t *testing.T) {
	for _, o := range []Options{{Partitions: 6}, {Partitions: 512, Busy: 10}, {Partitions: 40, Busy: 7}} {
		of := partitionOf(o)
		for p := range o.Partitions {
			first, stride := int64(p), int64(o.Partitions)
			if o.Busy > 0 {
				i, busy := busyIndex(p, o.Partitions, o.Busy)
				if !busy {
					continue
				}
				first, stride = int64(i), int64(o.Busy)
			}
			for seq := first; seq < 1000; seq += stride {
				if got := of(seq); got != p {
					t.Fatalf("%+v: record %d goes to partition %d, partitionOf says %d", o, seq, p, got)
				}
			}
		}
	}
}

// TestTurnsBursts: producers take turns a burst of chunks each, and a
// partition's next burst waits for the gap after its previous one.
func TestTurnsBursts(t *testing.T) {
	const gap = 60 * time.Millisecond
	tr := newTurns(2, 0, produceChunk, 2*produceChunk, gap)
	var (
		mu    sync.Mutex
		order []int
		ends  = map[int]time.Time{}
		waits []time.Duration
	)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			defer tr.finished(i)
			for c := range 4 {
				tr.wait(i)
				mu.Lock()
				if e, ok := ends[i]; ok && c%2 == 0 {
					waits = append(waits, time.Since(e))
				}
				order = append(order, i)
				if c%2 == 1 {
					ends[i] = time.Now()
				}
				mu.Unlock()
				tr.next()
			}
		})
	}
	wg.Wait()
	if want := []int{0, 0, 1, 1, 0, 0, 1, 1}; !slices.Equal(order, want) {
		t.Errorf("chunks in the order %v, want %v", order, want)
	}
	if len(waits) != 2 {
		t.Fatalf("%d second bursts, want 2", len(waits))
	}
	for _, w := range waits {
		if w < gap-5*time.Millisecond {
			t.Errorf("a partition's next burst came %v after its last, want at least %v", w, gap)
		}
	}
}

// TestChecks: the scenarios' targets pass and fail where they should.
func TestChecks(t *testing.T) {
	good := Result{Records: 100, RowsRead: 100, Verified: true, LakeFiles: 40, Buckets: 40, PeakRSSMiB: 250, PeakRSSMiBExit: 260,
		RecordsPerSec: 160_000, OpenHours: true}
	good.CheckSkewed()
	if !good.TargetsMet() || len(good.Checks) != 4 {
		t.Errorf("skewed: %+v", good.Checks)
	}
	bad := good
	bad.LakeFiles, bad.PeakRSSMiBExit = 49, 301
	bad.CheckSkewed()
	if n := failed(bad.Checks); n != 2 {
		t.Errorf("skewed with 49 files and 301 MiB: %d failed, want 2: %+v", n, bad.Checks)
	}

	c := Result{Records: 100, RowsRead: 100, ManifestRecords: 100, Verified: true, MemoryLimit: "256MiB",
		Compaction: &CompactionResult{WriteCPUSeconds: 10, CompactCPUSeconds: 4, Ratio: 0.4, PeakRSSMiB: 310,
			Hours: 1, DurationSeconds: 2, MarkerDelaySeconds: 3, Markers: 1, FilesIn: 512, FilesOut: 1, FolderFiles: 1, FolderCompacted: 1}}
	c.CheckCompaction()
	if !c.TargetsMet() || len(c.Checks) != 5 {
		t.Errorf("compaction: %+v", c.Checks)
	}
	c.Compaction.Ratio, c.Compaction.PeakRSSMiB, c.Compaction.FolderFiles = 0.6, 317, 2
	c.CheckCompaction()
	if n := failed(c.Checks); n != 3 {
		t.Errorf("compaction at 0.6, 317 MiB and an uncompacted file: %d failed, want 3: %+v", n, c.Checks)
	}
	none := Result{MemoryLimit: "256MiB"}
	none.CheckCompaction()
	if none.TargetsMet() {
		t.Error("compaction without a measurement met its targets")
	}
}

func failed(cs []Check) int {
	n := 0
	for _, c := range cs {
		if !c.Pass {
			n++
		}
	}
	return n
}
