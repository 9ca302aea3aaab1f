package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
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
		// The memory scenario in small: every hour open in every partition.
		{"memory", Options{Scenario: "memory-smoke", Records: 20000, Partitions: 32, Hours: 4, Interleave: true,
			MemoryLimit: "64MiB", WaitMarkers: true}},
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
			if !res.Verified || res.Records != int64(o.Records) || res.LakeRecords != res.Records || res.ManifestRecords != res.Records {
				t.Errorf("records: produced %d, lake %d, manifests %d, verified %v", res.Records, res.LakeRecords, res.ManifestRecords, res.Verified)
			}
			// Every partition has records in every hour the backlog covers,
			// so at least one file per partition-hour.
			hours := o.Hours
			if hours == 0 {
				hours = 2 // the default
			}
			if want := o.Partitions * hours; res.Buckets != want || res.LakeFiles < want {
				t.Errorf("%d files for %d partition-hours in the lake, want %d partition-hours", res.LakeFiles, res.Buckets, want)
			}
			if res.MaxFilesPerBucket < 1 || res.LakeFiles < res.Buckets {
				t.Errorf("%d files, %d partition-hours, at most %d files per partition-hour", res.LakeFiles, res.Buckets, res.MaxFilesPerBucket)
			}
			if res.Seconds <= 0 || res.RecordsPerSec <= 0 || res.MBPerSec <= 0 {
				t.Errorf("no throughput measured: %+v", res)
			}
			if res.AllConsumedSeconds < res.FirstConsumedSeconds || res.AllConsumedSeconds > res.Seconds || res.FirstConsumedSeconds <= 0 {
				t.Errorf("phases out of order: first %.3f all %.3f committed %.3f", res.FirstConsumedSeconds, res.AllConsumedSeconds, res.Seconds)
			}
			if res.CPUSeconds <= 0 || res.CPUSecondsExit < res.CPUSeconds {
				t.Errorf("cpu seconds %.2f at commit, %.2f at exit", res.CPUSeconds, res.CPUSecondsExit)
			}
			if res.PeakRSSMiB < 5 || res.PeakRSSMiB > 4096 || res.PeakRSSMiBExit < res.PeakRSSMiB*0.9 {
				t.Errorf("peak RSS %.1f MiB at commit, %.1f MiB at exit", res.PeakRSSMiB, res.PeakRSSMiBExit)
			}
			if avg := float64(res.ValueBytes) / float64(res.Records); (o.Schema != SchemaIoT && (avg < 250 || avg > 400)) || avg < 100 {
				t.Errorf("%.0f bytes per %s record", avg, res.Schema)
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

func TestConfigYAML(t *testing.T) {
	o := Options{Schema: SchemaIoT, MemoryLimit: "256MiB", Interleave: true, Hours: 4}
	o.defaults()
	y := configYAML(o, "127.0.0.1:9092", "iot", "g", "/w", "/w/lake", 8081)
	for _, want := range []string{`brokers: ["127.0.0.1:9092"]`, "memory_limit: 256MiB", "allowed_lateness: 4h30m0s",
		"format: rfc3339", `listen: "127.0.0.1:8081"`, "idle_partition_timeout: 300ms", "compression: zstd", `root: "/w/lake"`} {
		if !strings.Contains(y, want) {
			t.Errorf("config lacks %q:\n%s", want, y)
		}
	}
}
