// Command lakesink-bench is the `make bench` front end of the benchmark
// harness in test/bench: it runs the lakesink binary against a backlog in
// the test broker and prints records/s, MB/s, CPU seconds and peak RSS.
//
//	lakesink-bench -lakesink bin/lakesink -broker bin/kafkabroker            # 1M clickstream, 6 partitions: JSON and Avro, each without and with an Iceberg table
//	lakesink-bench -format avro                                              # Avro only
//	lakesink-bench -schema iot -records 2000000
//	lakesink-bench -scenario memory                                          # 512 partitions, 4 open hours, 256MiB; JSON only
//	lakesink-bench -scenario busy                                            # the same backlog on 40 partitions
//	lakesink-bench -scenario skewed                                          # 512 partitions, 10 busy ones fed in bursts 1.5 s apart while the sink runs, 4 open hours, idle timeout 1s; SIGTERM at the end
//	lakesink-bench -scenario skewed -live=false -open-hours=false            # the same records as a backlog of closed hours
//	lakesink-bench -scenario compaction                                      # one closed hour in 512 files, compacted before its marker: CPU of writing against compacting
//	lakesink-bench -instances 3 -partitions 64 -format json                  # 3 instances in one group: total records/s, per-instance CPU and RSS
//	lakesink-bench -instances 3 -rolling                                     # rolling restart under live traffic, kafka.assignor range then sticky: records read again and their CPU
//	lakesink-bench -instances 3 -rolling -restart-gap 5s                     # each instance down 5 s between exit and start: two rebalances per restart
//	lakesink-bench -profile /tmp/cpu.pprof                                   # needs LAKESINK_CPUPROFILE support
//
// Through make, which builds bin/lakesink, bin/kafkabroker and this command
// and passes -records $(BENCH_RECORDS) (1000000):
//
//	make bench BENCH_ARGS='-scenario skewed'
//	make bench BENCH_ARGS='-scenario compaction'
//	make bench BENCH_ARGS='-instances 3 -rolling'
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
// The skewed scenario (the held-out one) puts its event times in
// the 4 hours from the next full hour on, which the wall clock closes
// (hour end + allowed_lateness) long after the run, and starts the sink
// before producing (-live): the 10 busy partitions take turns, a burst of
// -burst records each (default 16,000: ~6 bursts per partition), a
// partition's bursts at least -burst-gap apart (default idle timeout +
// 500ms), so that every partition is quiet longer than the idle timeout
// between its bursts.
// Once the sink has consumed every record it is stopped with SIGTERM (its
// graceful shutdown finishes and commits the open files); the time runs
// to its exit, and the lake is checked by reading every row. Targets:
// at most 1.2 files per partition-hour, peak RSS at most 300 MiB, at
// least 150k records/s, every record once.
//
// The compaction scenario writes one hour, closed by the wall clock, in
// 512 partitions (512 files of ~2,000 records each with 1M records) with
// compaction on and waits for its marker; it splits the sink's CPU into
// writing (start to all committed) and compacting (to the marker) and
// reads the compaction metrics. Targets: compaction CPU at most half of
// writing's, peak RSS at most memory_limit + 60 MiB, the marker delay
// reported, the folder holding only compacted files, every record once
// through the manifest.
//
// -rolling (or -scenario rolling) is a rolling restart: -instances
// (default 3) in one group on 12 partitions, records produced while they
// run at -rate (default 3,000 records/s, 250 records a produce request,
// each partition in turn) into the hour from the next full hour on, which
// no wall clock closes during the run, so every partition has an open
// file all the time, as in production. From -restart-after (20 s) on,
// one instance every -restart-every (30 s) gets SIGTERM; once it exited
// it is started again (after -restart-gap, default at once). Producing
// lasts the restarts and 20 s more (390,000 records by default; -records
// caps it). Once every instance was restarted and every partition's
// owner has read all its records, every instance gets SIGTERM. It runs
// once per -assignor (kafka.assignor; default range,sticky) and reports
// per run: records produced, records consumed and records read again
// (lakesink_records_consumed_total, lakesink_records_replayed_total),
// files kept and abandoned, each summed over every process life (read
// from its /metrics right before its SIGTERM and until it stops
// answering), the sink's CPU over every life (wait4) and the CPU spent on
// reading again, estimated as CPU per consumed record × records read
// again; and at the end sticky/range of the records read again. The lake
// must hold every record once (the files' rows read back) and every
// offset must be committed at its high watermark.
//
// Each run appends one JSON line to -results. Exit status 1 when a run
// failed or the lake did not hold exactly the produced records; 3 when
// every run was verified but a scenario's target was missed.
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
		scenario = flag.String("scenario", "throughput", "throughput | memory (512 partitions, records over 4 open hours, memory_limit 256MiB, markers checked) | busy (the same on 40 partitions) | skewed (the same on 10 of 512 partitions fed in bursts while the sink runs, as a sticky partitioner loads them, hours the wall clock has not closed, idle timeout 1s) | compaction (one closed hour in 512 files, compacted before its marker) | rolling (the same as -rolling)")
		rolling  = flag.Bool("rolling", false, "rolling restart under live traffic: -instances (default 3) on 12 partitions at 3,000 records/s into an open hour, restarted one after another (-restart-after, -restart-every), once per -assignor; reports records read again and the CPU spent on them")
		assigns  = flag.String("assignor", "", "range | sticky | range,sticky: kafka.assignor, one run each (default range,sticky with -rolling; otherwise the config's default, sticky)")
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
	flag.IntVar(&o.Burst, "burst", 0, "with -live: records a busy partition gets per turn (default 2000, one produce request; skewed scenario 16000)")
	flag.DurationVar(&o.BurstGap, "burst-gap", 0, "with -live: least time between two bursts of a partition (default none; skewed scenario idle timeout + 500ms)")
	flag.BoolVar(&o.OpenHours, "open-hours", false, "event times in the hours from the next full hour on, which the wall clock does not close during the run; the sink is stopped with SIGTERM once it consumed every record (default in the skewed scenario)")
	flag.IntVar(&o.Instances, "instances", 1, "lakesink instances in the group, on this machine (each its own spool, port and log)")
	flag.DurationVar(&o.RestartAfter, "restart-after", 20*time.Second, "with -rolling: the first restart this long after the instances started")
	flag.DurationVar(&o.RestartEvery, "restart-every", 30*time.Second, "with -rolling: then one restart this often")
	flag.DurationVar(&o.RestartGap, "restart-gap", 0, "with -rolling: how long an instance stays down between its exit and its next start (default: started again at once)")
	flag.IntVar(&o.Chunk, "chunk", 0, "records per produce request (default and at most 2000; -rolling 250)")
	tables := flag.String("table", "", "none | iceberg | none,iceberg: runs without and with an Iceberg table (SQLite catalog) per format (default none,iceberg in the throughput scenario, none in the memory scenario)")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if *rolling {
		if set["scenario"] && *scenario != "rolling" {
			fmt.Fprintf(os.Stderr, "lakesink-bench: -rolling is a scenario of its own, not one of -scenario %s\n", *scenario)
			os.Exit(2)
		}
		*scenario = "rolling"
	}
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
			if !set["idle-timeout"] {
				o.IdleTimeout = time.Second
			}
			// The scenario: hours the wall clock has not closed,
			// a producer's bursts further apart than the idle timeout.
			if !set["open-hours"] {
				o.OpenHours = true
			}
			if !set["live"] {
				o.Live = true
			}
			if o.Live && !set["burst"] {
				o.Burst = 16_000
			}
			if o.Live && !set["burst-gap"] {
				o.BurstGap = o.IdleTimeout + 500*time.Millisecond
			}
		}
		if o.Hours == 0 {
			o.Hours = 4
		}
		if o.MemoryLimit == "" {
			o.MemoryLimit = "256MiB"
		}
	case "compaction":
		if *formats == "" {
			*formats = bench.FormatJSON
		}
		o.Compaction = true
		o.WaitMarkers = true
		if o.Partitions == 0 {
			o.Partitions = 512
		}
		if o.Hours == 0 {
			o.Hours = 1
		}
		if o.MemoryLimit == "" {
			o.MemoryLimit = "256MiB"
		}
	case "rolling":
		// The scenario: a rolling restart of three instances
		// under live traffic into hours the wall clock has not closed,
		// so that every partition has an open file all the time.
		o.Rolling = true
		if *formats == "" {
			*formats = bench.FormatJSON
		}
		if *assigns == "" {
			*assigns = "range,sticky"
		}
		if !set["instances"] {
			o.Instances = 3
		}
		if o.Partitions == 0 {
			o.Partitions = 12
		}
		if o.Rate == 0 {
			o.Rate = 3000
		}
		if o.Chunk == 0 {
			o.Chunk = 250 // a produce request per partition every 12/rate×250 s: ~1 s at 3,000 records/s
		}
		if !set["open-hours"] {
			o.OpenHours = true
		}
		if o.Hours == 0 {
			o.Hours = 1
		}
		if !set["idle-timeout"] {
			o.IdleTimeout = 5 * time.Second // far above a partition's gap between two produce requests
		}
		// Produce for as long as the restarts take and 20 s more, at
		// the rate: 330,000 records by default; -records (make bench:
		// 1M) caps it.
		produceFor := o.RestartAfter + time.Duration(o.Instances)*max(o.RestartEvery, o.RestartGap+time.Second) + 20*time.Second
		if want := int(o.Rate * produceFor.Seconds()); o.Records == 0 || o.Records > want {
			o.Records = want
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
	assignors := []string{""}
	if *assigns != "" {
		assignors = nil
		for _, a := range strings.Split(*assigns, ",") {
			switch a = strings.TrimSpace(a); a {
			case "range", "sticky":
				assignors = append(assignors, a)
			default:
				fmt.Fprintf(os.Stderr, "lakesink-bench: -assignor %q: want range, sticky or both comma-separated\n", a)
				os.Exit(2)
			}
		}
	}
	o.Progress = os.Stderr
	o.KeepWorkDir = o.WorkDir != ""
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	failed, missed := false, false
	var summary []string
	var vs []variant
	for _, f := range fs {
		for _, t := range withTable {
			for _, a := range assignors {
				vs = append(vs, variant{f, t, a})
			}
		}
	}
	base := map[string]float64{}           // format -> records/s without a table
	replayed := map[string]*bench.Result{} // rolling: variant name with its assignor -> result
	for i, v := range vs {
		if ctx.Err() != nil {
			break
		}
		run := o
		run.Format, run.Table, run.Assignor = v.format, v.table, v.assignor
		name := v.name()
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
		line, res, met, err := runOne(ctx, run, *results)
		rate := res.RecordsPerSec
		missed = missed || !met
		if res.Rolling != nil && res.Verified {
			replayed[name] = &res
		}
		switch b := base[v.format]; {
		case o.Rolling:
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
	// The rolling restart's point: what sticky assignment saves.
	for _, v := range vs {
		if v.assignor != "sticky" {
			continue
		}
		s, r := replayed[v.name()], replayed[variant{v.format, v.table, "range"}.name()]
		if s == nil || r == nil {
			continue
		}
		name := variant{v.format, v.table, ""}.name()
		line := fmt.Sprintf("%s: records read again sticky/range %d/%d", name, s.Rolling.Replayed, r.Rolling.Replayed)
		if r.Rolling.Replayed > 0 {
			line += fmt.Sprintf(" = %.3f", float64(s.Rolling.Replayed)/float64(r.Rolling.Replayed))
		}
		line += fmt.Sprintf("; CPU reading again (est.) %.2f against %.2f CPU-s; sink CPU %.2f against %.2f CPU-s",
			s.Rolling.ReplayCPUSeconds, r.Rolling.ReplayCPUSeconds, s.Rolling.CPUSeconds, r.Rolling.CPUSeconds)
		summary = append(summary, line)
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
	if missed {
		os.Exit(3)
	}
}

// variant is one run of the command: a format, with or without a table,
// with an assignor (empty: the config's default).
type variant struct {
	format   string
	table    bool
	assignor string
}

// name is the variant's name, e.g. json+iceberg-sticky: the suffix of its
// work folder and CPU profile.
func (v variant) name() string {
	n := v.format
	if v.table {
		n += "+iceberg"
	}
	if v.assignor != "" {
		n += "-" + v.assignor
	}
	return n
}

// runOne runs the benchmark once, checks the scenario's targets, prints
// its table, appends its JSON line to results (if not empty) and returns
// its summary line, the result and whether the targets were met.
func runOne(ctx context.Context, o bench.Options, results string) (string, bench.Result, bool, error) {
	if o.WorkDir != "" {
		if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
			return o.Format + ": failed", bench.Result{}, true, err
		}
	}
	res, err := bench.Run(ctx, o)
	res.Command = strings.Join(os.Args, " ")
	switch o.Scenario {
	case "skewed":
		res.CheckSkewed()
	case "compaction":
		res.CheckCompaction()
	}
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
			res.CPUSeconds*1e6/float64(max(res.Records, 1)), res.PeakRSS(), res.FilesPerPartitionHour())
		if c := res.Compaction; c != nil {
			line += fmt.Sprintf(", compaction/writing CPU %.2f", c.Ratio)
		}
		if r := res.Rolling; r != nil {
			line = fmt.Sprintf("%s, kafka.assignor %s: %d records produced, %d consumed over all lives, %d read again (%.1f%%), files kept %d / abandoned %d, sink CPU %.2f CPU-s (%.2f µs per consumed record), reading again %.2f CPU-s (est.)",
				res.Variant(), res.Assignor, res.Records, r.Consumed, r.Replayed, float64(r.Replayed)*100/float64(max(res.Records, 1)),
				r.FilesKept, r.FilesAbandoned, r.CPUSeconds, r.CPUMicrosPerConsumed, r.ReplayCPUSeconds)
		}
		if err != nil {
			line += ", NOT VERIFIED"
		}
		if len(res.Checks) > 0 {
			n := 0
			for _, c := range res.Checks {
				if c.Pass {
					n++
				}
			}
			line += fmt.Sprintf(", targets met: %d of %d", n, len(res.Checks))
		}
	}
	return line, res, res.TargetsMet(), err
}
