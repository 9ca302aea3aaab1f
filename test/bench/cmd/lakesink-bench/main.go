// Command lakesink-bench is the `make bench` front end of the benchmark
// harness in test/bench: it runs the lakesink binary against a backlog in
// the test broker and prints records/s, MB/s, CPU seconds and peak RSS.
//
//	lakesink-bench -lakesink bin/lakesink -broker bin/kafkabroker            # 1M clickstream, 6 partitions
//	lakesink-bench -schema iot -records 2000000
//	lakesink-bench -scenario memory                                          # 512 partitions, 4 open hours, 256MiB
//	lakesink-bench -profile /tmp/cpu.pprof                                   # needs LAKESINK_CPUPROFILE support
//
// Each run appends one JSON line to -results. Exit status 1 when the run
// failed or the lake did not hold exactly the produced records.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lakesink/lakesink/test/bench"
)

func main() {
	var (
		o        bench.Options
		scenario = flag.String("scenario", "throughput", "throughput | memory (512 partitions, records over 4 open hours, memory_limit 256MiB, markers checked)")
		results  = flag.String("results", "bench-results.jsonl", "append one JSON line per run to this file (empty: none)")
	)
	flag.StringVar(&o.LakesinkBin, "lakesink", "", "lakesink binary (empty: build it)")
	flag.StringVar(&o.BrokerBin, "broker", "", "test/kafkabroker binary (empty: build it)")
	flag.IntVar(&o.Records, "records", 0, "records to produce (default 1000000)")
	flag.IntVar(&o.Partitions, "partitions", 0, "topic partitions (default 6; memory scenario 512)")
	flag.StringVar(&o.Schema, "schema", bench.SchemaClickstream, "clickstream | iot")
	flag.IntVar(&o.Hours, "hours", 0, "hours of event time (default 2; memory scenario 4)")
	flag.StringVar(&o.MemoryLimit, "memory-limit", "", "files.memory_limit (default: config default; memory scenario 256MiB)")
	flag.StringVar(&o.Compression, "compression", "zstd", "files.compression")
	flag.DurationVar(&o.IdleTimeout, "idle-timeout", 300*time.Millisecond, "markers.idle_partition_timeout")
	flag.BoolVar(&o.WaitMarkers, "markers", false, "also wait for the _SUCCESS markers and check the manifests (always on in the memory scenario)")
	flag.StringVar(&o.CPUProfile, "profile", "", "ask the sink for a CPU profile at this path (env LAKESINK_CPUPROFILE; needs support in cmd/lakesink)")
	flag.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.StringVar(&o.WorkDir, "work-dir", "", "keep lake, spool and logs here (default: a temp folder, removed)")
	flag.Parse()

	o.Scenario = *scenario
	switch *scenario {
	case "throughput":
	case "memory":
		o.Interleave = true
		o.WaitMarkers = true
		if o.Partitions == 0 {
			o.Partitions = 512
		}
		if o.Hours == 0 {
			o.Hours = 4
		}
		if o.MemoryLimit == "" {
			o.MemoryLimit = "256MiB"
		}
	default:
		fmt.Fprintf(os.Stderr, "lakesink-bench: unknown -scenario %q\n", *scenario)
		os.Exit(2)
	}
	if o.WorkDir != "" {
		o.KeepWorkDir = true
		if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "lakesink-bench:", err)
			os.Exit(1)
		}
	}
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	res, err := bench.Run(ctx, o)
	res.Command = strings.Join(os.Args, " ")
	if res.Seconds > 0 {
		fmt.Print(res.Table())
		if *results != "" {
			if err := bench.AppendJSON(*results, res); err != nil {
				fmt.Fprintln(os.Stderr, "lakesink-bench: results:", err)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lakesink-bench:", err)
		os.Exit(1)
	}
}
