// Command lakesink-bench is the `make bench` front end of the benchmark
// harness in test/bench: it runs the lakesink binary against a backlog in
// the test broker and prints records/s, MB/s, CPU seconds and peak RSS.
//
//	lakesink-bench -lakesink bin/lakesink -broker bin/kafkabroker            # 1M clickstream, 6 partitions: JSON and Avro, each without and with an Iceberg table
//	lakesink-bench -format avro                                              # Avro only
//	lakesink-bench -schema iot -records 2000000
//	lakesink-bench -scenario memory                                          # 512 partitions, 4 open hours, 256MiB; JSON only
//	lakesink-bench -scenario busy                                            # the same backlog on 40 partitions
//	lakesink-bench -scenario skewed                                          # 512 partitions, 10 of them busy, idle timeout 1s
//	lakesink-bench -instances 3 -partitions 64 -format json                  # 3 instances in one group: total records/s, per-instance CPU and RSS
//	lakesink-bench -profile /tmp/cpu.pprof                                   # needs LAKESINK_CPUPROFILE support
//
// -table none,iceberg (the throughput scenario's default) runs each format
// twice, without and with an Iceberg table in an SQLite catalog, and the
// summary line of the table run gives its records/s relative to the run
// without.
//
// -format is a comma-separated list of record formats, each a separate run
// with the same options and the same records: json, and avro (the same
// content Avro-encoded in the Confluent wire format, with a Schema Registry
// served by this process). It defaults to "json,avro" in the throughput
// scenario and "json" in the memory scenario. With more than one format
// the tables are followed by one summary line per format
// ("json: N records/s"), and -work-dir and -profile get a per-format
// suffix.
//
// Each run appends one JSON line to -results. Exit status 1 when a run
// failed or the lake did not hold exactly the produced records.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lakesink/lakesink/test/bench"
)

func main() {
	var (
		o        bench.Options
		scenario = flag.String("scenario", "throughput", "throughput | memory (512 partitions, records over 4 open hours, memory_limit 256MiB, markers checked) | busy (the same on 40 partitions) | skewed (the same on 10 of 512 partitions, as a sticky partitioner loads them, idle timeout 1s)")
		results  = flag.String("results", "bench-results.jsonl", "append one JSON line per run to this file (empty: none)")
		formats  = flag.String("format", "", "json | avro | avro2 (two interleaved Avro writer schema versions), comma-separated: one run per format (default json,avro,avro2; memory scenario json)")
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
	flag.BoolVar(&o.Live, "live", false, "start the sink before producing; the busy partitions take turns chunk by chunk (a sticky partitioner), so records arrive while the sink runs (default: the sink reads a finished backlog)")
	flag.Float64Var(&o.Rate, "rate", 0, "with -live: records produced per second at most (0: as fast as the broker takes them); below the busy partitions' chunks per idle timeout, every burst of a partition comes after an idle gap")
	flag.IntVar(&o.Instances, "instances", 1, "lakesink instances in the group, on this machine (each its own spool, port and log)")
	tables := flag.String("table", "", "none | iceberg | none,iceberg: runs without and with an Iceberg table (SQLite catalog) per format (default none,iceberg in the throughput scenario, none in the memory scenario)")
	flag.Parse()
	idleSet := false
	flag.Visit(func(f *flag.Flag) { idleSet = idleSet || f.Name == "idle-timeout" })

	o.Scenario = *scenario
	switch *scenario {
	case "throughput":
		if *formats == "" {
			*formats = bench.FormatJSON + "," + bench.FormatAvro + "," + bench.FormatAvro2
		}
		if *tables == "" {
			*tables = "none,iceberg"
		}
	case "memory", "busy", "skewed":
		if *formats == "" {
			*formats = bench.FormatJSON
		}
		o.Interleave = true
		o.WaitMarkers = true
		if o.Partitions == 0 {
			// memory: many partitions, each with little data per open
			// hour; busy: a backlog on few partitions, each open hour
			// holding a lot.
			o.Partitions = map[string]int{"memory": 512, "busy": 40, "skewed": 512}[*scenario]
		}
		if *scenario == "skewed" {
			o.Busy = 10
			if !idleSet {
				o.IdleTimeout = time.Second
			}
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
	var withTable []bool
	for _, v := range strings.Split(cmp.Or(*tables, "none"), ",") {
		switch v = strings.TrimSpace(v); v {
		case "none":
			withTable = append(withTable, false)
		case "iceberg":
			withTable = append(withTable, true)
		default:
			fmt.Fprintf(os.Stderr, "lakesink-bench: -table %q: want none, iceberg or both comma-separated\n", v)
			os.Exit(2)
		}
	}
	var fs []string
	for _, f := range strings.Split(*formats, ",") {
		switch f = strings.TrimSpace(f); f {
		case bench.FormatJSON, bench.FormatAvro, bench.FormatAvro2:
			fs = append(fs, f)
		default:
			fmt.Fprintf(os.Stderr, "lakesink-bench: -format %q: want json, avro, avro2 or several comma-separated\n", f)
			os.Exit(2)
		}
	}
	o.Progress = os.Stderr
	o.KeepWorkDir = o.WorkDir != ""
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	failed := false
	var summary []string
	type variant struct {
		format string
		table  bool
	}
	var vs []variant
	for _, f := range fs {
		for _, t := range withTable {
			vs = append(vs, variant{f, t})
		}
	}
	base := map[string]float64{} // format -> records/s without a table
	for i, v := range vs {
		if ctx.Err() != nil {
			break
		}
		run := o
		run.Format, run.Table = v.format, v.table
		name := v.format
		if v.table {
			name += "+iceberg"
		}
		if len(vs) > 1 {
			// A second run in the same folder would count the first
			// one's files in its lake.
			if run.WorkDir != "" {
				run.WorkDir = filepath.Join(run.WorkDir, name)
			}
			if run.CPUProfile != "" {
				run.CPUProfile = strings.TrimSuffix(run.CPUProfile, filepath.Ext(run.CPUProfile)) + "-" + name + filepath.Ext(run.CPUProfile)
			}
		}
		if i > 0 {
			fmt.Println()
		}
		line, rate, err := runOne(ctx, run, *results)
		switch b := base[v.format]; {
		case !v.table:
			base[v.format] = rate
			if a := base[bench.FormatAvro]; v.format == bench.FormatAvro2 && a > 0 && rate > 0 {
				// Writer schema versions must not cost throughput (issue 17: within 10 %).
				line += fmt.Sprintf(" — %+.1f%% vs one Avro version", (rate/a-1)*100)
			}
		case b > 0 && rate > 0:
			line += fmt.Sprintf(" — %+.1f%% vs %s without a table", (rate/b-1)*100, v.format)
		}
		summary = append(summary, line)
		if err != nil {
			failed = true
			fmt.Fprintf(os.Stderr, "lakesink-bench: %s: %v\n", name, err)
		}
	}
	if len(summary) > 1 {
		fmt.Println()
		for _, l := range summary {
			fmt.Println(l)
		}
	}
	if failed || ctx.Err() != nil {
		os.Exit(1)
	}
}

// runOne runs the benchmark once, prints its table, appends its JSON line
// to results (if not empty) and returns its summary line.
func runOne(ctx context.Context, o bench.Options, results string) (string, float64, error) {
	if o.WorkDir != "" {
		if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
			return o.Format + ": failed", 0, err
		}
	}
	res, err := bench.Run(ctx, o)
	res.Command = strings.Join(os.Args, " ")
	line := o.Format + ": failed"
	if res.Seconds > 0 {
		fmt.Print(res.Table())
		if results != "" {
			if err := bench.AppendJSON(results, res); err != nil {
				fmt.Fprintln(os.Stderr, "lakesink-bench: results:", err)
			}
		}
		line = fmt.Sprintf("%s: %.0f records/s (%.0f B/record, %.1f µs CPU/record, peak RSS %.1f MiB, %.2f files per partition-hour)",
			res.Variant(), res.RecordsPerSec, float64(res.ValueBytes)/float64(max(res.Records, 1)),
			res.CPUSeconds*1e6/float64(max(res.Records, 1)), res.PeakRSSMiB, float64(res.LakeFiles)/float64(max(res.Buckets, 1)))
		if err != nil {
			line += ", NOT VERIFIED"
		}
	}
	return line, res.RecordsPerSec, err
}
