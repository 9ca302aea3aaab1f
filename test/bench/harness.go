// Package bench is lakesink's end-to-end benchmark harness: it starts the
// Kafka-protocol broker process (test/kafkabroker), produces a backlog of
// realistic records before the sink starts, runs the real lakesink binary
// against the local backend and measures, from process start to "every
// partition's committed offset equals its high watermark":
//
//   - records/s and MB/s (record value bytes),
//   - CPU seconds of the lakesink process (/proc/<pid>/stat utime+stime at
//     that moment; the wait4 rusage at exit is reported too),
//   - peak RSS (VmHWM from /proc/<pid>/status at that moment, before the
//     process is stopped).
//
// Records are JSON (format: json) or Avro in the Confluent wire format
// (format: avro, with a Schema Registry served by this process); both
// carry the same content and land in the same Parquet columns, so the two
// runs differ only in decoding.
//
// It then checks that nothing was lost or duplicated: the record counts in
// the lake's Parquet footers, per partition, equal the produced counts,
// every row read back from the files is a produced record, each exactly
// once, and (when Options.WaitMarkers is set) the _SUCCESS manifests list
// the produced counts.
//
// Two variants measure otherwise. With Options.OpenHours the event times
// lie in hours the wall clock closes long after the run, so the sink
// finishes no file for a closed hour: the run ends when the sink has
// consumed every record, it is then stopped with SIGTERM (the graceful
// shutdown finishes and commits the open files) and the time runs to its
// exit. With Options.Compaction the stream compacts its completed hours:
// the run also waits for the markers and splits the sink's CPU into
// writing and compacting (CompactionResult).
//
// The command in test/bench/cmd/lakesink-bench is the `make bench` front
// end; the package's tests run a small smoke variant in `make test`.
// Run is not safe for concurrent use with a shared WorkDir; everything else
// is plain data.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lakesink/lakesink/test/freeport"
	"github.com/segmentio/kafka-go"
)

// Schema names accepted by Options.Schema.
const (
	SchemaClickstream = "clickstream"
	SchemaIoT         = "iot"
)

// Options configure one benchmark run. Zero values take the defaults noted.
type Options struct {
	// Scenario is a free-form name written into the result ("throughput",
	// "memory", "smoke").
	Scenario string
	// LakesinkBin and BrokerBin are the binaries to run; empty: Build them
	// into WorkDir.
	LakesinkBin, BrokerBin string
	// Records to produce (default 1,000,000), Partitions of the topic
	// (default 6), Schema clickstream (default) or iot.
	Records    int
	Partitions int
	// Busy, when above 0, puts every record on that many partitions
	// spread over the topic (as a producer with a sticky partitioner
	// loads a few of many partitions); the others stay empty.
	Busy int
	// Live starts the sink before producing, and the busy partitions'
	// producers take turns chunk by chunk (a sticky partitioner's
	// bursts), so the sink reads while records arrive; the measured time
	// includes producing. Without it the sink reads a finished backlog.
	Live bool
	// Rate caps the records produced per second in a Live run (0: as
	// fast as the broker takes them).
	Rate   float64
	Schema string
	// Burst is the records a busy partition's producer sends per turn
	// in a Live run (default one produce request, 2,000 records);
	// BurstGap keeps each partition's bursts at least that far apart (0:
	// only the other partitions' bursts separate them).
	Burst    int
	BurstGap time.Duration
	// Chunk is the records per produce request (default and at most
	// 2,000); with Live and Rate, smaller chunks spread the records more
	// evenly over the partitions and the seconds.
	Chunk int
	// OpenHours puts the event times in the Hours hours from the next
	// full hour on, which the wall clock closes (hour end +
	// allowed_lateness) long after the run: no file ends because its hour
	// closed, and no marker can come (WaitMarkers is ignored). The sink
	// runs until it has consumed every record and is then stopped
	// gracefully (SIGTERM: it finishes and commits its open files, reason
	// shutdown); the measured time runs to its exit.
	OpenHours bool
	// Compaction turns on the stream's compaction (compaction: {enabled:
	// true}) and waits for the markers: the result splits the sink's CPU
	// into the write phase (process start to all committed) and the
	// compaction phase (from then to the last marker) and reads the
	// compaction metrics (Result.Compaction).
	Compaction bool
	// Format of the record values: json (default), avro or avro2. Avro
	// runs register the schema's Avro equivalent (avroSchemaText) in an
	// in-process registry, produce the very records of the JSON run
	// Avro-encoded, and give the stream the JSON run's schema list, so
	// the Parquet files have the same columns and rows; avro2 interleaves
	// a second writer schema version (FormatAvro2).
	Format string
	// Hours of event time the records cover (default 2). With Interleave
	// the records are spread at random over all Hours, so every hour stays
	// open in every partition at once (the memory scenario); otherwise they
	// come in event-time order with up to 30 s of disorder.
	Hours      int
	Interleave bool
	// Lateness is the stream's allowed_lateness (default 10m; with
	// Interleave it must exceed Hours so that no record is late).
	Lateness time.Duration
	// MemoryLimit is files.memory_limit, e.g. "256MiB" (default: the
	// config's default).
	MemoryLimit string
	// Compression is files.compression (default zstd).
	Compression string
	// IdleTimeout is markers.idle_partition_timeout (default 300ms): the
	// last open file of each partition is finished this long after the
	// partition went quiet, so it is part of the measured time.
	IdleTimeout time.Duration
	// WaitMarkers also waits (after the measurement) for every hour's
	// _SUCCESS marker and checks the manifests' counts.
	WaitMarkers bool
	// CPUProfile, if set, is passed to the sink as LAKESINK_CPUPROFILE; the
	// result says whether the binary wrote it (it needs support in
	// cmd/lakesink).
	CPUProfile string
	// Timeout bounds the whole run after producing (default 10m).
	Timeout time.Duration
	// WorkDir holds binaries, broker-less temp state, spool, lake and logs;
	// empty: a new temp folder, removed unless KeepWorkDir.
	WorkDir     string
	KeepWorkDir bool
	// Progress, if not nil, receives human-readable progress lines.
	Progress io.Writer
	// Instances of lakesink to run in the group, on the same machine
	// (default 1). Each gets its own spool folder, HTTP port and log; the
	// result sums their CPU and lists each one's CPU and peak RSS.
	Instances int
	// Table also commits the stream's files to an Apache Iceberg table in
	// an SQLite catalog in WorkDir; the run then checks the table's record
	// count too.
	Table bool
	// Assignor is the config's kafka.assignor: sticky or range (empty:
	// the config's default, sticky).
	Assignor string
	// Rolling restarts the Instances (default 3) one after another while
	// the records arrive (Live): RestartAfter (default 20s) after they
	// started, then one every RestartEvery (default 30s), each with
	// SIGTERM, waiting for its exit and starting it again. The result's
	// Rolling part sums what every instance's life read, read again and
	// cost (RollingResult; see rolling.go). RestartGap is how long an
	// instance stays down between its exit and its next start (default
	// none).
	Rolling                                bool
	RestartAfter, RestartEvery, RestartGap time.Duration
}

func (o *Options) defaults() {
	if o.Records <= 0 {
		o.Records = 1_000_000
	}
	if o.Partitions <= 0 {
		o.Partitions = 6
	}
	if o.Live && o.Busy <= 0 {
		o.Busy = o.Partitions
	}
	if o.Schema == "" {
		o.Schema = SchemaClickstream
	}
	if o.Format == "" {
		o.Format = FormatJSON
	}
	if o.Hours <= 0 {
		o.Hours = 2
	}
	if o.Lateness <= 0 {
		o.Lateness = 10 * time.Minute
		if o.Interleave {
			o.Lateness = time.Duration(o.Hours)*time.Hour + 30*time.Minute
		}
	}
	if o.Compression == "" {
		o.Compression = "zstd"
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 300 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Scenario == "" {
		o.Scenario = "throughput"
	}
	if o.Compaction {
		o.WaitMarkers = true
	}
	if o.OpenHours {
		o.WaitMarkers = false
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Rolling {
		o.Live = true
		if o.Busy <= 0 {
			o.Busy = o.Partitions
		}
		if o.Instances <= 0 {
			o.Instances = 3
		}
		if o.RestartAfter <= 0 {
			o.RestartAfter = 20 * time.Second
		}
		if o.RestartEvery <= 0 {
			o.RestartEvery = 30 * time.Second
		}
	}
}

// Result is what one run measured. Its JSON form is one line of the results
// file.
type Result struct {
	Time        string  `json:"time"` // RFC 3339, when the run started
	Scenario    string  `json:"scenario"`
	Schema      string  `json:"schema"`
	Format      string  `json:"format"` // json, avro or avro2; absent (json) in lines before Avro runs
	Records     int64   `json:"records"`
	ValueBytes  int64   `json:"value_bytes"`
	Partitions  int     `json:"partitions"`
	Busy        int     `json:"busy_partitions,omitempty"`
	Live        bool    `json:"live,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	Hours       int     `json:"hours"`
	Interleave  bool    `json:"interleave"`
	Compression string  `json:"compression"`
	MemoryLimit string  `json:"memory_limit,omitempty"`
	IdleTimeout string  `json:"idle_timeout"`

	ProduceSeconds float64 `json:"produce_seconds"`
	// Seconds from process start to all offsets committed.
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"` // value bytes, 1 MB = 1e6 bytes
	// Phases, from the sink's lakesink_records_consumed_total (0 when the
	// metric could not be read): process start to first record consumed,
	// and to the last record consumed.
	FirstConsumedSeconds float64 `json:"first_consumed_seconds"`
	AllConsumedSeconds   float64 `json:"all_consumed_seconds"`
	// ProducedAtSeconds is, in a Live run, when the last record was
	// produced, from the sink's start: AllConsumedSeconds minus it is how
	// far the sink trailed the producer.
	ProducedAtSeconds float64 `json:"produced_at_seconds,omitempty"`
	// ConsumeRecordsPerSec is Records / (AllConsumed - FirstConsumed): the
	// steady-state rate without group join and the final idle flush.
	ConsumeRecordsPerSec float64 `json:"consume_records_per_sec"`

	CPUSeconds     float64 `json:"cpu_seconds"`        // at all-committed, /proc
	BrokerCPU      float64 `json:"broker_cpu_seconds"` // broker, same interval
	CPUSecondsExit float64 `json:"cpu_seconds_exit"`   // whole life, wait4 rusage
	PeakRSSMiB     float64 `json:"peak_rss_mib"`       // VmHWM at all-committed
	PeakRSSMiBExit float64 `json:"peak_rss_mib_exit"`  // ru_maxrss at exit
	LakeFiles      int     `json:"lake_files"`
	LakeRecords    int64   `json:"lake_records"`
	// FilesFinished is lakesink_files_finished_total by reason at
	// all-committed, summed over the instances: why files ended.
	FilesFinished map[string]int64 `json:"files_finished,omitempty"`
	// Buckets is the number of (partition, hour) pairs with data;
	// MaxFilesPerBucket the most files any of them got (1 = no splits).
	Buckets           int   `json:"buckets"`
	MaxFilesPerBucket int   `json:"max_files_per_bucket"`
	ManifestRecords   int64 `json:"manifest_records"` // -1: markers not awaited
	// CompactedFiles is the number of compacted files in the lake.
	CompactedFiles int `json:"compacted_files,omitempty"`
	// RowsRead is the rows read back from the lake's files: each
	// produced record once when Verified.
	RowsRead int64 `json:"rows_read"`
	// OpenHours: the run's hours were open (Options.OpenHours); the sink
	// was stopped with SIGTERM once it had consumed every record, and
	// Seconds runs to its exit, ShutdownSeconds being SIGTERM to exit.
	// CPUSeconds is then the whole life's and FilesFinished was read until
	// the process stopped serving /metrics.
	OpenHours       bool    `json:"open_hours,omitempty"`
	ShutdownSeconds float64 `json:"shutdown_seconds,omitempty"`
	// ShutdownFromLake is how many of FilesFinished["shutdown"] were
	// counted from the lake rather than read from /metrics: the files
	// beyond the counters' last answer, which a stopping sink finishes
	// milliseconds before it stops serving (after SIGTERM only the
	// graceful shutdown finishes files).
	ShutdownFromLake int64  `json:"shutdown_from_lake,omitempty"`
	Burst            int    `json:"burst,omitempty"`
	BurstGap         string `json:"burst_gap,omitempty"`
	// Compaction is the compaction scenario's measurement.
	Compaction *CompactionResult `json:"compaction,omitempty"`
	// Checks are the scenario's targets, checked (CheckTargets).
	Checks []Check `json:"checks,omitempty"`
	// Instances is how many lakesink processes ran; InstanceCPUSeconds and
	// InstancePeakRSSMiB are each one's at all-committed (CPUSeconds is
	// their sum, PeakRSSMiB the largest).
	Instances          int       `json:"instances,omitempty"`
	InstanceCPUSeconds []float64 `json:"instance_cpu_seconds,omitempty"`
	InstancePeakRSSMiB []float64 `json:"instance_peak_rss_mib,omitempty"`
	// Iceberg: the run committed to an Iceberg table (SQLite catalog);
	// TableRecords is the table's total-records after the run.
	Iceberg      bool   `json:"table,omitempty"`
	TableRecords int64  `json:"table_records,omitempty"`
	Verified     bool   `json:"verified"`
	CPUProfile   string `json:"cpu_profile,omitempty"` // written profile, if any
	// Assignor is the run's kafka.assignor (absent: the config's
	// default); Rolling what a rolling restart measured.
	Assignor string         `json:"assignor,omitempty"`
	Rolling  *RollingResult `json:"rolling,omitempty"`

	Machine Machine `json:"machine"`
	Command string  `json:"command,omitempty"` // set by the caller
}

// CompactionResult is what a run with Options.Compaction measured.
type CompactionResult struct {
	// The sink's CPU seconds (/proc/<pid>/stat) from process start to all
	// offsets committed (writing the records; to the first compaction
	// plan if the harness sees that first), and from then to the last
	// hour's marker (compacting; the finalizer's checks and the idle
	// partitions' commits of that interval count here too), each per
	// record, and their ratio compact/write.
	WriteCPUSeconds        float64 `json:"write_cpu_seconds"`
	CompactCPUSeconds      float64 `json:"compact_cpu_seconds"`
	WriteMicrosPerRecord   float64 `json:"write_us_per_record"`
	CompactMicrosPerRecord float64 `json:"compact_us_per_record"`
	Ratio                  float64 `json:"ratio"`
	// WriteSeconds is when the write phase ended, from process start:
	// all committed or, if the harness saw the hour's compaction plan
	// first (SplitAtPlan; the plans are polled every 20 ms), the plan.
	// PhaseSeconds is the wall time from then to the last marker seen
	// (polled every 50 ms).
	WriteSeconds float64 `json:"write_seconds"`
	SplitAtPlan  bool    `json:"split_at_plan,omitempty"`
	PhaseSeconds float64 `json:"phase_seconds"`
	// From the sink's /metrics at the marker, summed over the hours:
	// lakesink_compaction_duration_seconds (plan to inputs removed: what
	// compaction held the marker back), lakesink_marker_delay_seconds
	// (hour complete to marker), lakesink_compaction_*_total.
	DurationSeconds    float64 `json:"duration_seconds"`
	MarkerDelaySeconds float64 `json:"marker_delay_seconds"`
	// Markers is how many markers the delay sums (its histogram's count):
	// the run's hours, or more if an empty hour after them closed during
	// the run.
	Markers  int64 `json:"markers"`
	Hours    int64 `json:"hours"`
	FilesIn  int64 `json:"files_in"`
	FilesOut int64 `json:"files_out"`
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
	// PeakRSSMiB is VmHWM at the marker: the whole run's peak, both
	// phases.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// FolderFiles is the data files in the hours' folders after the
	// markers, FolderCompacted how many of them are compacted files.
	FolderFiles     int `json:"folder_files"`
	FolderCompacted int `json:"folder_compacted"`
}

// Check is one target of a scenario and whether the run met it.
type Check struct {
	Target string `json:"target"`
	Got    string `json:"got"`
	Pass   bool   `json:"pass"`
}

// Machine describes where a run happened.
type Machine struct {
	NumCPU    int     `json:"nproc"`
	Model     string  `json:"cpu_model"`
	GoVersion string  `json:"go"`
	Load1     float64 `json:"load1_before"` // 1-minute load average before the run
}

// Run performs one benchmark run and verifies the lake afterwards. A run
// that measured but found the lake wrong returns the Result and an error.
func Run(ctx context.Context, o Options) (res Result, err error) {
	o.defaults()
	if o.Schema != SchemaClickstream && o.Schema != SchemaIoT {
		return res, fmt.Errorf("schema %q: want clickstream or iot", o.Schema)
	}
	if o.Format != FormatJSON && !usesRegistry(o.Format) {
		return res, fmt.Errorf("format %q: want json, avro or avro2", o.Format)
	}
	if o.Interleave && o.Lateness <= time.Duration(o.Hours)*time.Hour {
		return res, fmt.Errorf("lateness %s must exceed %d interleaved hours", o.Lateness, o.Hours)
	}
	work := o.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "lakesink-bench-"); err != nil {
			return res, err
		}
		if !o.KeepWorkDir {
			defer os.RemoveAll(work)
		}
	}
	if o.LakesinkBin == "" || o.BrokerBin == "" {
		fmt.Fprintln(o.Progress, "building lakesink and kafkabroker ...")
		if o.LakesinkBin, o.BrokerBin, err = Build(ctx, filepath.Join(work, "bin")); err != nil {
			return res, err
		}
	}
	// The sink runs in work, so relative paths must be resolved now.
	if o.LakesinkBin, err = filepath.Abs(o.LakesinkBin); err != nil {
		return res, err
	}
	if o.BrokerBin, err = filepath.Abs(o.BrokerBin); err != nil {
		return res, err
	}
	res = Result{
		Time: time.Now().UTC().Format(time.RFC3339), Scenario: o.Scenario, Schema: o.Schema, Format: o.Format,
		Partitions: o.Partitions, Busy: o.Busy, Live: o.Live, Rate: o.Rate, Hours: o.Hours, Interleave: o.Interleave, Compression: o.Compression,
		MemoryLimit: o.MemoryLimit, IdleTimeout: o.IdleTimeout.String(), ManifestRecords: -1,
		OpenHours: o.OpenHours, Machine: ThisMachine(), Assignor: o.Assignor,
	}
	if o.Live {
		res.Burst = max(o.Burst, o.chunk())
		if o.BurstGap > 0 {
			res.BurstGap = o.BurstGap.String()
		}
	}

	broker, err := startBroker(o.BrokerBin, work)
	if err != nil {
		return res, err
	}
	defer broker.stop(10 * time.Second)

	topic := o.Schema
	if err := createTopic(ctx, broker.addr, topic, o.Partitions); err != nil {
		return res, err
	}
	gen := jsonGenerator(o.Schema)
	registryURL := ""
	if usesRegistry(o.Format) {
		reg, err := startRegistry()
		if err != nil {
			return res, err
		}
		defer func() {
			if serr := reg.stop(); serr != nil {
				err = errors.Join(err, fmt.Errorf("stop the schema registry: %w", serr))
			}
		}()
		registryURL = reg.URL
		id := reg.Register(topic+"-value", "AVRO", avroSchemaText(o.Schema))
		if gen, err = avroGenerator(o.Schema, id); err != nil {
			return res, err
		}
		if o.Format == FormatAvro2 {
			gen = avroV2Generator(gen, id, reg.Register(topic+"-value", "AVRO", avroV2SchemaText(o.Schema)))
		}
	}
	fmt.Fprintf(o.Progress, "producing %d %s records (%s) into %d partitions ...\n", o.Records, o.Schema, o.Format, o.Partitions)
	// Hours end at least Lateness + 1h before now, so the finalizer may
	// write every marker once the partitions are idle. Open hours start
	// at the next full hour: none of them opens before the run or closes
	// during it, whatever minute it starts.
	to := time.Now().UTC().Truncate(time.Hour).Add(-o.Lateness - time.Hour).Truncate(time.Hour)
	from := to.Add(-time.Duration(o.Hours) * time.Hour)
	switch {
	case o.OpenHours:
		from = time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	case o.Compaction:
		// The newest hours the wall clock has closed: no empty hour
		// after them is complete, so the run's markers are theirs alone
		// (lakesink_marker_delay_seconds counts every marker).
		to = time.Now().UTC().Add(-o.Lateness - time.Hour).Truncate(time.Hour).Add(time.Hour)
		from = to.Add(-time.Duration(o.Hours) * time.Hour)
	}
	var (
		prod produced
		high map[int]int64
	)
	var start time.Time // the sink's start
	produceAll := func() error {
		t0 := time.Now()
		var err error
		if prod, err = produce(ctx, broker.addr, topic, o, from, gen); err != nil {
			return err
		}
		res.ProduceSeconds = time.Since(t0).Seconds()
		if o.Live {
			res.ProducedAtSeconds = time.Since(start).Seconds()
		}
		res.Records, res.ValueBytes = prod.records, prod.bytes
		if high, err = highWatermarks(ctx, broker.addr, topic, o.Partitions); err != nil {
			return err
		}
		for p, n := range prod.perPartition {
			if high[p] != n {
				return fmt.Errorf("partition %d: high watermark %d after producing %d", p, high[p], n)
			}
		}
		fmt.Fprintf(o.Progress, "produced %d records (%.1f MB) in %.1fs\n", res.Records, float64(res.ValueBytes)/1e6, res.ProduceSeconds)
		return nil
	}
	if !o.Live {
		if err := produceAll(); err != nil {
			return res, err
		}
	}

	lake := filepath.Join(work, "lake")
	const group = "lakesink-bench"
	rctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if o.Rolling {
		err := runRolling(rctx, o, &res, rollingEnv{
			broker: broker, work: work, lake: lake, topic: topic,
			args:       configArgs{broker: broker.addr, topic: topic, group: group, lake: lake, registryURL: registryURL},
			produceAll: produceAll, prod: &prod, high: &high,
		})
		return res, err
	}
	n := max(o.Instances, 1)
	res.Instances = n
	fmt.Fprintf(o.Progress, "starting %d lakesink instance(s) ...\n", n)
	brokerCPU0, _ := procCPUSeconds(broker.cmd.Process.Pid)
	start = time.Now()
	procs := make([]*sinkProc, n)
	exited := make(chan struct{}) // closed when any instance exits
	var exitOnce sync.Once
	for i := range procs {
		p, err := startSink(o, work, i, n, configArgs{broker: broker.addr, topic: topic, group: group, lake: lake, registryURL: registryURL})
		if err != nil {
			for _, q := range procs[:i] {
				q.stop()
			}
			return res, err
		}
		procs[i] = p
		go func() { <-p.exited; exitOnce.Do(func() { close(exited) }) }()
	}
	stopSink := func() {
		for _, p := range procs {
			p.stop()
		}
	}
	defer stopSink()
	sinkLog := procs[0].log
	var urls []string
	for _, p := range procs {
		urls = append(urls, p.metricsURL)
	}

	// With compaction, the first plan (docs/compaction.md: written once
	// per folder before the merge) ends the write phase if it comes
	// before the harness sees every offset committed: the finalizer may
	// see the hour complete between two of the harness's polls.
	var plan *planWatch
	if o.Compaction {
		plan = watchPlans(rctx, filepath.Join(lake, "_lakesink", "markers", o.Schema), procs)
		defer plan.stop()
	}

	// Live: the records arrive while the sink runs; the commits are
	// checked once they are all there.
	produced := make(chan error, 1)
	if o.Live {
		go func() { produced <- produceAll() }()
	} else {
		produced <- nil
	}
	total := int64(o.Records) // produce writes exactly o.Records
	m := &monitor{addr: broker.addr, group: group, topic: topic,
		metricsURLs: urls, total: total,
		client: &http.Client{Timeout: time.Second}}
	var firstC, allC time.Duration
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-rctx.Done():
			return res, fmt.Errorf("offsets not all committed within %s: %s\n%s", o.Timeout, m.last, tail(sinkLog, 30))
		case <-exited:
			return res, fmt.Errorf("lakesink exited early: %v\n%s", exitErrs(procs), tail(sinkLog, 30))
		case err := <-produced:
			if err != nil {
				return res, err
			}
			m.high = high
			continue
		case <-tick.C:
		}
		if allC == 0 {
			if n, ok := m.consumed(rctx); ok {
				if n > 0 && firstC == 0 {
					firstC = time.Since(start)
				}
				if n >= total {
					allC = time.Since(start)
				}
			}
		}
		if o.OpenHours {
			// Nothing is committed before the open hours' files end:
			// the sink has done its reading once it consumed every
			// record (a worker processes each chunk it took before it
			// looks at a shutdown).
			done = m.high != nil && allC > 0
		} else {
			done = m.high != nil && m.allCommitted(rctx)
		}
	}
	elapsed := time.Since(start)
	// Read the processes' counters now, before they start shutting down:
	// CPU summed, peak RSS the largest (each instance's is listed).
	u, err := procsUsage(procs)
	if err != nil {
		return res, err
	}
	res.InstanceCPUSeconds, res.InstancePeakRSSMiB = u.cpu, u.peakRSSMiB
	if bc, err := procCPUSeconds(broker.cmd.Process.Pid); err == nil {
		res.BrokerCPU = bc - brokerCPU0
	}
	res.FilesFinished = m.filesFinished(rctx)
	if o.OpenHours {
		fmt.Fprintf(o.Progress, "all records consumed after %.2fs; stopping lakesink (SIGTERM) ...\n", elapsed.Seconds())
		t0 := time.Now()
		res.FilesFinished = m.stopAndWatch(procs)
		res.ShutdownSeconds = time.Since(t0).Seconds()
		elapsed = time.Since(start)
		fmt.Fprintf(o.Progress, "lakesink exited %.2fs after SIGTERM\n", res.ShutdownSeconds)
	} else {
		fmt.Fprintf(o.Progress, "all offsets committed after %.2fs\n", elapsed.Seconds())
	}
	res.Seconds = elapsed.Seconds()
	res.RecordsPerSec = float64(res.Records) / res.Seconds
	res.MBPerSec = float64(res.ValueBytes) / 1e6 / res.Seconds
	res.FirstConsumedSeconds, res.AllConsumedSeconds = firstC.Seconds(), allC.Seconds()
	if allC > firstC && firstC > 0 {
		res.ConsumeRecordsPerSec = float64(res.Records) / (allC - firstC).Seconds()
	}
	res.CPUSeconds = u.cpuSum
	res.PeakRSSMiB = u.peakRSSMax

	var verr []error
	if o.WaitMarkers {
		fmt.Fprintln(o.Progress, "waiting for the hour markers ...")
		var cr *CompactionResult
		atMarkers := func() {
			if !o.Compaction {
				return
			}
			// The last marker is there: the compaction phase is over.
			v, err := procsUsage(procs)
			if err != nil {
				verr = append(verr, err)
				return
			}
			markerAt := time.Since(start).Seconds()
			cr = &CompactionResult{WriteCPUSeconds: u.cpuSum, WriteSeconds: res.Seconds}
			if at, pu, ok := plan.first(); ok && at.Sub(start).Seconds() < res.Seconds {
				cr.WriteCPUSeconds, cr.WriteSeconds, cr.SplitAtPlan = pu.cpuSum, at.Sub(start).Seconds(), true
			}
			cr.CompactCPUSeconds = v.cpuSum - cr.WriteCPUSeconds
			cr.PhaseSeconds = markerAt - cr.WriteSeconds
			cr.PeakRSSMiB = v.peakRSSMax
			m.compactionMetrics(rctx, cr)
		}
		n, err := waitManifests(rctx, lake, o.Schema, from, o.Hours, prod.perPartition, exited, atMarkers)
		res.ManifestRecords = n
		if err != nil {
			verr = append(verr, err)
		}
		if cr != nil {
			recs := float64(max(res.Records, 1))
			cr.WriteMicrosPerRecord = cr.WriteCPUSeconds * 1e6 / recs
			cr.CompactMicrosPerRecord = cr.CompactCPUSeconds * 1e6 / recs
			if cr.WriteCPUSeconds > 0 {
				cr.Ratio = cr.CompactCPUSeconds / cr.WriteCPUSeconds
			}
			for h := range o.Hours {
				files, compacted, err := folderFiles(lake, o.Schema, from.Add(time.Duration(h)*time.Hour))
				cr.FolderFiles += files
				cr.FolderCompacted += compacted
				if err != nil {
					verr = append(verr, err)
				}
			}
			res.Compaction = cr
		}
	}
	stopSink()
	for _, p := range procs {
		if p.waitErr != nil {
			verr = append(verr, fmt.Errorf("lakesink exit after SIGTERM: %v\n%s", p.waitErr, tail(p.log, 30)))
		}
		if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.CPUSecondsExit += tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
			res.PeakRSSMiBExit = max(res.PeakRSSMiBExit, float64(ru.Maxrss)/1024) // KiB on Linux
		}
	}
	if o.OpenHours {
		// The shutdown committed the offsets: every partition must be
		// at its high watermark now.
		res.CPUSeconds = res.CPUSecondsExit
		if !m.allCommitted(rctx) {
			verr = append(verr, fmt.Errorf("after the graceful stop: %s", m.last))
		}
	}
	ls, lerr := checkLake(lake, o, &res, prod)
	verr = append(verr, lerr...)
	if o.OpenHours && res.FilesFinished != nil {
		var n int64
		for _, v := range res.FilesFinished {
			n += v
		}
		if d := int64(ls.files) - n; d > 0 {
			res.FilesFinished["shutdown"] += d
			res.ShutdownFromLake = d
		}
	}
	if o.Table {
		res.Iceberg = true
		n, err := tableRecords(ctx, filepath.Join(work, "catalog.db"), o.Schema)
		res.TableRecords = n
		switch {
		case err != nil:
			verr = append(verr, err)
		case n != res.Records:
			verr = append(verr, fmt.Errorf("%d records in the table, %d produced", n, res.Records))
		}
	}
	if o.CPUProfile != "" {
		if st, err := os.Stat(o.CPUProfile); err == nil && st.Size() > 0 {
			res.CPUProfile = o.CPUProfile
		} else {
			fmt.Fprintln(o.Progress, "note: the lakesink binary wrote no CPU profile (LAKESINK_CPUPROFILE unsupported?)")
		}
	}
	res.Verified = len(verr) == 0
	return res, errors.Join(verr...)
}

// checkLake counts the lake's files and records into res (LakeFiles,
// LakeRecords, Buckets, …), compares the records per partition with prod
// and reads every row back (RowsRead): each produced record must be there
// exactly once, in a file of its partition.
func checkLake(lake string, o Options, res *Result, prod produced) (lakeStats, []error) {
	var verr []error
	ls, err := lakeCounts(lake)
	res.LakeFiles, res.LakeRecords, res.Buckets, res.MaxFilesPerBucket = ls.files, ls.records, ls.buckets, ls.maxPerBucket
	res.CompactedFiles = ls.compacted
	if err != nil {
		verr = append(verr, err)
	}
	for p, n := range prod.perPartition {
		if ls.perPartition[p] != n {
			verr = append(verr, fmt.Errorf("partition %d: %d records in the lake, %d produced", p, ls.perPartition[p], n))
		}
	}
	if ls.records != res.Records {
		verr = append(verr, fmt.Errorf("%d records in the lake, %d produced", ls.records, res.Records))
	}
	// Every record once, by reading the rows.
	rows, err := readOnce(lake, o.Schema, res.Records, partitionOf(o))
	res.RowsRead = rows
	if err != nil {
		verr = append(verr, err)
	}
	return ls, verr
}

// planWatch polls for the first compaction plan and reads the instances'
// usage when it appears.
type planWatch struct {
	mu    sync.Mutex
	at    time.Time
	u     usage
	found bool
	done  chan struct{}
	quit  context.CancelFunc
}

// watchPlans polls dir (the stream's _lakesink/markers) every 20 ms for
// a <hour>/compaction.json until one appears or stop is called.
func watchPlans(ctx context.Context, dir string, procs []*sinkProc) *planWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &planWatch{done: make(chan struct{}), quit: cancel}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if m, _ := filepath.Glob(filepath.Join(dir, "*", "compaction.json")); len(m) > 0 {
				u, err := procsUsage(procs)
				w.mu.Lock()
				w.at, w.u, w.found = time.Now(), u, err == nil
				w.mu.Unlock()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// first returns when the first plan was seen and the usage then.
func (w *planWatch) first() (time.Time, usage, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at, w.u, w.found
}

func (w *planWatch) stop() {
	w.quit()
	<-w.done
}

// usage is the CPU seconds and peak RSS of running instances.
type usage struct {
	cpu, peakRSSMiB    []float64 // each instance's
	cpuSum, peakRSSMax float64   // their sum, the largest
}

// procsUsage reads every instance's CPU seconds (/proc/<pid>/stat) and peak
// RSS (VmHWM) now.
func procsUsage(procs []*sinkProc) (usage, error) {
	var u usage
	for _, p := range procs {
		c, cpuErr := procCPUSeconds(p.cmd.Process.Pid)
		h, hwmErr := procPeakRSS(p.cmd.Process.Pid)
		if cpuErr != nil || hwmErr != nil {
			return u, fmt.Errorf("read /proc of lakesink: %v %v", cpuErr, hwmErr)
		}
		mib := float64(h) / (1 << 20)
		u.cpu, u.peakRSSMiB = append(u.cpu, c), append(u.peakRSSMiB, mib)
		u.cpuSum += c
		u.peakRSSMax = max(u.peakRSSMax, mib)
	}
	return u, nil
}

// sinkProc is one running lakesink instance.
type sinkProc struct {
	cmd        *exec.Cmd
	log        string
	logf       *os.File
	exited     chan struct{}
	waitErr    error
	metricsURL string
}

// startSink writes instance i's config (of n; one instance keeps the plain
// names lakesink.yaml, spool and lakesink.log) and starts it.
func startSink(o Options, work string, i, n int, a configArgs) (*sinkProc, error) {
	return startSinkLife(o, work, i, n, 0, a)
}

// startSinkLife is startSink for the life'th start of instance i (0: the
// first): the same spool folder, a new HTTP port, and after the first
// life a log of its own, lakesink-<i>-r<life>.log.
func startSinkLife(o Options, work string, i, n, life int, a configArgs) (*sinkProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	suffix := ""
	if n > 1 {
		suffix = fmt.Sprintf("-%d", i)
	}
	logName := "lakesink" + suffix
	if life > 0 {
		logName += fmt.Sprintf("-r%d", life)
	}
	cfgPath := filepath.Join(work, "lakesink"+suffix+".yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAMLSpool(o, a, work, filepath.Join(work, "spool"+suffix), port)), 0o600); err != nil {
		return nil, err
	}
	p := &sinkProc{log: filepath.Join(work, logName+".log"), exited: make(chan struct{}),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", port)}
	if p.logf, err = os.Create(p.log); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(o.LakesinkBin, "run", "-c", cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = p.logf, p.logf
	p.cmd.Dir = work
	p.cmd.Env = os.Environ()
	if o.CPUProfile != "" && i == 0 && life == 0 {
		p.cmd.Env = append(p.cmd.Env, "LAKESINK_CPUPROFILE="+o.CPUProfile)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.logf.Close()
		return nil, fmt.Errorf("start lakesink: %w", err)
	}
	go func() { p.waitErr = p.cmd.Wait(); p.logf.Close(); close(p.exited) }()
	return p, nil
}

// stop sends SIGTERM and waits (SIGKILL to the process group after 60 s).
// Idempotent.
func (p *sinkProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// exitErrs are the exit errors of the instances that have exited.
func exitErrs(procs []*sinkProc) error {
	var errs []error
	for i, p := range procs {
		select {
		case <-p.exited:
			errs = append(errs, fmt.Errorf("instance %d: %v", i, p.waitErr))
		default:
		}
	}
	return errors.Join(errs...)
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// configYAML is the sink's config for a run: one stream, local lake, small
// idle timeout and check interval so the run ends promptly. Avro streams
// (registryURL set) get the same schema list as JSON ones: fixed columns
// rather than columns derived from the writer schema, which would flatten
// device.screen and attrs into more columns and so write different files.
// Their time field is a timestamp-millis, which needs no time.format.
func configYAML(o Options, broker, topic, group, work, lake string, httpPort int, registryURL string) string {
	return configYAMLSpool(o, configArgs{broker: broker, topic: topic, group: group, lake: lake, registryURL: registryURL}, work, filepath.Join(work, "spool"), httpPort)
}

// configArgs are what every instance's config shares.
type configArgs struct {
	broker, topic, group, lake, registryURL string
}

// configYAMLSpool is configYAML with the instance's spool folder.
func configYAMLSpool(o Options, a configArgs, work, spool string, httpPort int) string {
	broker, topic, group, lake, registryURL := a.broker, a.topic, a.group, a.lake, a.registryURL
	var b strings.Builder
	fmt.Fprintf(&b, "kafka:\n  brokers: [%q]\n  group_id: %s\n", broker, group)
	if o.Assignor != "" {
		fmt.Fprintf(&b, "  assignor: %s\n", o.Assignor)
	}
	if usesRegistry(o.Format) {
		fmt.Fprintf(&b, "schema_registry:\n  url: %q\n", registryURL)
	}
	fmt.Fprintf(&b, "streams:\n  - name: %s\n    topics: [%s]\n    allowed_lateness: %s\n", o.Schema, topic, o.Lateness)
	timeFormat := func(f string) string {
		if usesRegistry(o.Format) {
			return ""
		}
		return "format: " + f + ", "
	}
	if usesRegistry(o.Format) {
		b.WriteString("    format: avro\n")
	}
	if o.Schema == SchemaIoT {
		fmt.Fprintf(&b, "    time: {field: event_time, %stimezone: UTC}\n", timeFormat("rfc3339"))
		b.WriteString(`    schema:
      - {name: device_id, type: string, required: true}
      - {name: event_time, type: timestamp_ms}
      - {name: temperature, type: double}
      - {name: humidity, type: float}
      - {name: battery, type: int32}
      - {name: online, type: bool}
      - {name: firmware, type: string}
      - {name: seq, type: int64}
`)
	} else {
		fmt.Fprintf(&b, "    time: {field: ts, %stimezone: UTC}\n", timeFormat("unix_ms"))
		b.WriteString(`    schema:
      - {name: event_id, type: string, required: true}
      - {name: user_id, type: string}
      - {name: ts, type: timestamp_ms}
      - {name: event_type, type: string}
      - {name: url, type: string}
      - {name: referrer, type: string}
      - {name: device_id, path: device.id, type: string}
      - {name: device_os, path: device.os, type: string}
      - {name: price, type: double}
      - {name: quantity, type: int32}
      - {name: attrs, type: json}
`)
	}
	if o.Table {
		fmt.Fprintf(&b, "    table: {format: iceberg, namespace: bench, catalog: {type: sql, uri: %q}}\n", filepath.Join(work, "catalog.db"))
	}
	if o.Compaction {
		b.WriteString("    compaction: {enabled: true}\n")
	}
	fmt.Fprintf(&b, "files:\n  compression: %s\n  spool_dir: %q\n", o.Compression, spool)
	if o.MemoryLimit != "" {
		fmt.Fprintf(&b, "  memory_limit: %s\n", o.MemoryLimit)
	}
	fmt.Fprintf(&b, "storage:\n  type: local\n  local: {root: %q}\n", lake)
	fmt.Fprintf(&b, "markers:\n  idle_partition_timeout: %s\n  check_interval: 500ms\n", o.IdleTimeout)
	fmt.Fprintf(&b, "dead_letter:\n  topic: lakesink-bench-dlq\n")
	fmt.Fprintf(&b, "http:\n  listen: \"127.0.0.1:%d\"\n", httpPort)
	b.WriteString("log: {level: info, format: json}\n")
	return b.String()
}

// monitor polls the broker for committed offsets and the sink for its
// consumed-records counter.
type monitor struct {
	addr, group, topic string
	high               map[int]int64
	metricsURLs        []string // one per instance
	total              int64
	client             *http.Client
	kc                 *kafka.Client
	last               string // why the last check said "not yet"
}

func (m *monitor) allCommitted(ctx context.Context) bool {
	if m.kc == nil {
		m.kc = &kafka.Client{Addr: kafka.TCP(m.addr), Timeout: 5 * time.Second}
	}
	ps := make([]int, 0, len(m.high))
	for p := range m.high {
		ps = append(ps, p)
	}
	resp, err := m.kc.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: m.group, Topics: map[string][]int{m.topic: ps}})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		m.last = "offset fetch: " + err.Error()
		return false
	}
	behind, lag := 0, int64(0)
	got := 0
	for _, p := range resp.Topics[m.topic] {
		got++
		if h := m.high[p.Partition]; p.CommittedOffset != h && h > 0 {
			behind++
			lag += h - max(p.CommittedOffset, 0)
		}
	}
	if got != len(m.high) {
		m.last = fmt.Sprintf("offset fetch answered %d of %d partitions", got, len(m.high))
		return false
	}
	m.last = fmt.Sprintf("%d partitions behind, %d records uncommitted", behind, lag)
	return behind == 0
}

// consumed reads lakesink_records_consumed_total from the sink's /metrics.
func (m *monitor) consumed(ctx context.Context) (int64, bool) {
	var sum int64
	for _, u := range m.metricsURLs {
		n, ok := m.consumedAt(ctx, u)
		if !ok {
			return 0, false
		}
		sum += n
	}
	return sum, true
}

func (m *monitor) consumedAt(ctx context.Context, url string) (int64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	return parseCounter(resp.Body, "lakesink_records_consumed_total")
}

// filesFinished reads lakesink_files_finished_total by reason from every
// instance's /metrics, summed; nil if it cannot be read.
func (m *monitor) filesFinished(ctx context.Context) map[string]int64 {
	out := map[string]int64{}
	for _, u := range m.metricsURLs {
		ff := m.filesFinishedAt(ctx, u)
		if ff == nil {
			return nil
		}
		for k, v := range ff {
			out[k] += v
		}
	}
	return out
}

// filesFinishedAt reads lakesink_files_finished_total by reason from one
// instance; nil if it cannot be read.
func (m *monitor) filesFinishedAt(ctx context.Context, url string) map[string]int64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	return parseFinished(resp.Body)
}

// parseFinished reads lakesink_files_finished_total by reason from a
// /metrics page; nil if it cannot be read.
func parseFinished(r io.Reader) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), `lakesink_files_finished_total{reason="`)
		if !ok {
			continue
		}
		reason, val, _ := strings.Cut(rest, `"} `)
		if v, err := strconv.ParseFloat(val, 64); err == nil && v > 0 {
			out[reason] += int64(v)
		}
	}
	if sc.Err() != nil {
		return nil
	}
	return out
}

// stopAndWatch sends SIGTERM to every instance and reads each one's files
// finished by reason every 50 ms until it exits (SIGKILL to its process
// group after 60 s, as sinkProc.stop): the last answer is what its
// shutdown ended with, as lakesink stops serving /metrics only after its
// workers finished, uploaded and committed. It returns their sum.
func (m *monitor) stopAndWatch(procs []*sinkProc) map[string]int64 {
	last := make([]map[string]int64, len(procs))
	for _, p := range procs {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			kill := time.After(60 * time.Second)
			for {
				if ff := m.filesFinishedAt(context.Background(), p.metricsURL); ff != nil {
					last[i] = ff
				}
				select {
				case <-p.exited:
					return
				case <-tick.C:
				case <-kill:
					_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
					<-p.exited
					return
				}
			}
		})
	}
	wg.Wait()
	out := map[string]int64{}
	for _, ff := range last {
		for k, v := range ff {
			out[k] += v
		}
	}
	return out
}

// metric sums the samples of a metric (a counter, or a histogram's _sum or
// _count) over every instance's /metrics; ok is false if an instance could
// not be read or had no sample.
func (m *monitor) metric(ctx context.Context, name string) (float64, bool) {
	var sum float64
	for _, url := range m.metricsURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, false
		}
		resp, err := m.client.Do(req)
		if err != nil {
			return 0, false
		}
		v, ok := parseSum(resp.Body, name)
		resp.Body.Close()
		if !ok {
			return 0, false
		}
		sum += v
	}
	return sum, true
}

// compactionMetrics reads the compaction and marker delay metrics into cr.
func (m *monitor) compactionMetrics(ctx context.Context, cr *CompactionResult) {
	get := func(name string) float64 { v, _ := m.metric(ctx, name); return v }
	cr.DurationSeconds = get("lakesink_compaction_duration_seconds_sum")
	cr.MarkerDelaySeconds = get("lakesink_marker_delay_seconds_sum")
	cr.Markers = int64(get("lakesink_marker_delay_seconds_count"))
	cr.Hours = int64(get("lakesink_compaction_hours_total"))
	cr.FilesIn = int64(get("lakesink_compaction_files_in_total"))
	cr.FilesOut = int64(get("lakesink_compaction_files_out_total"))
	cr.BytesIn = int64(get("lakesink_compaction_bytes_in_total"))
	cr.BytesOut = int64(get("lakesink_compaction_bytes_out_total"))
}

// parseCounter sums the samples of an unlabeled or labeled counter in
// Prometheus text format.
func parseCounter(r io.Reader, name string) (int64, bool) {
	v, ok := parseSum(r, name)
	return int64(v), ok
}

// parseSum sums the samples of an unlabeled or labeled metric in
// Prometheus text format.
func parseSum(r io.Reader, name string) (float64, bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a longer metric name
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// AppendJSON appends r as one JSON line to path (created if missing).
func AppendJSON(path string, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Table renders r for humans.
func (r Result) Table() string {
	if r.Rolling != nil {
		return r.rollingTable()
	}
	var b strings.Builder
	row := func(k, f string, a ...any) { fmt.Fprintf(&b, "  %-28s "+f+"\n", append([]any{k}, a...)...) }
	fmt.Fprintf(&b, "lakesink bench — %s, %s values (%.0f B/record), %s\n", r.Scenario, r.Variant(), float64(r.ValueBytes)/float64(max(r.Records, 1)), r.Time)
	row("machine", "%d CPU, %s, %s, load1 before %.2f", r.Machine.NumCPU, r.Machine.Model, r.Machine.GoVersion, r.Machine.Load1)
	row("records", "%d %s, %s (%.1f MB values, %.0f B/record)", r.Records, r.Schema, r.format(), float64(r.ValueBytes)/1e6, float64(r.ValueBytes)/float64(max(r.Records, 1)))
	row("layout", "%d partitions, %d hours (interleaved: %v), %s, memory_limit %s", r.Partitions, r.Hours, r.Interleave, r.Compression, orDefault(r.MemoryLimit))
	if r.OpenHours {
		row("event times", "%d open hours from the next full hour on (none closes during the run)", r.Hours)
	}
	if r.Live {
		gap := "none"
		if r.BurstGap != "" {
			gap = r.BurstGap
		}
		row("produce (live, measured)", "%.2f s, busy partitions taking turns while the sink runs, %d records a burst, at least %s between a partition's bursts (rate cap %.0f records/s; 0: none)",
			r.ProduceSeconds, r.Burst, gap, r.Rate)
	} else {
		row("produce (not measured)", "%.2f s", r.ProduceSeconds)
	}
	if r.OpenHours {
		row("start → exit after SIGTERM", "%.2f s (all consumed at %.2f s, then the graceful stop: %.2f s, open files finished and committed)", r.Seconds, r.AllConsumedSeconds, r.ShutdownSeconds)
	} else {
		row("start → all committed", "%.2f s (idle flush %s included)", r.Seconds, r.IdleTimeout)
	}
	row("records/s", "%.0f", r.RecordsPerSec)
	row("MB/s (values)", "%.1f", r.MBPerSec)
	row("start → first consumed", "%.2f s", r.FirstConsumedSeconds)
	row("start → all consumed", "%.2f s", r.AllConsumedSeconds)
	row("consume records/s", "%.0f (first → last consumed)", r.ConsumeRecordsPerSec)
	if r.OpenHours {
		row("CPU seconds", "%.2f over the whole life; %.1f µs/record", r.CPUSeconds, r.CPUSeconds*1e6/float64(max(r.Records, 1)))
		row("broker CPU seconds", "%.2f from start to all consumed (same cores)", r.BrokerCPU)
		row("peak RSS", "%.1f MiB (VmHWM at all consumed; ru_maxrss at exit, shutdown included, %.1f MiB)", r.PeakRSSMiB, r.PeakRSSMiBExit)
	} else {
		row("CPU seconds", "%.2f at all-committed (%.2f over the whole life); %.1f µs/record", r.CPUSeconds, r.CPUSecondsExit, r.CPUSeconds*1e6/float64(max(r.Records, 1)))
		row("broker CPU seconds", "%.2f in the same interval (same cores)", r.BrokerCPU)
		row("peak RSS", "%.1f MiB (VmHWM; ru_maxrss at exit %.1f MiB)", r.PeakRSSMiB, r.PeakRSSMiBExit)
	}
	if r.Instances > 1 {
		for i := range r.InstanceCPUSeconds {
			row(fmt.Sprintf("instance %d", i), "%.2f CPU-s, peak RSS %.1f MiB", r.InstanceCPUSeconds[i], r.InstancePeakRSSMiB[i])
		}
	}
	mr := "not awaited"
	if r.ManifestRecords >= 0 {
		mr = strconv.FormatInt(r.ManifestRecords, 10)
	}
	if r.CompactedFiles > 0 {
		row("lake", "%d files: %d compacted, %d for %d partition-hours (max %d per partition-hour); %d records", r.LakeFiles, r.CompactedFiles, r.LakeFiles-r.CompactedFiles, r.Buckets, r.MaxFilesPerBucket, r.LakeRecords)
	} else {
		row("lake", "%d files for %d partition-hours (%.2f per partition-hour, max %d), %d records", r.LakeFiles, r.Buckets, r.FilesPerPartitionHour(), r.MaxFilesPerBucket, r.LakeRecords)
	}
	r.finishedRows(row)
	if c := r.Compaction; c != nil {
		row("compaction: writing", "%.2f CPU-s (start → all committed, or the plan if earlier), %.2f µs/record", c.WriteCPUSeconds, c.WriteMicrosPerRecord)
		from := "all committed"
		if c.SplitAtPlan {
			from = "compaction plan"
		}
		row("compaction: compacting", "%.2f CPU-s (%s at %.2f s → marker, %.2f s), %.2f µs/record; ratio %.2f", c.CompactCPUSeconds, from, c.WriteSeconds, c.PhaseSeconds, c.CompactMicrosPerRecord, c.Ratio)
		row("compaction: metrics", "%d hour(s), %d files in (%.1f MB), %d out (%.1f MB), duration %.2f s, marker delay %.2f s (%d marker(s))",
			c.Hours, c.FilesIn, float64(c.BytesIn)/1e6, c.FilesOut, float64(c.BytesOut)/1e6, c.DurationSeconds, c.MarkerDelaySeconds, c.Markers)
		row("compaction: folder", "%d data files after the marker, %d of them compacted; peak RSS %.1f MiB at the marker", c.FolderFiles, c.FolderCompacted, c.PeakRSSMiB)
	}
	if r.Iceberg {
		row("iceberg table", "%d records (SQLite catalog, committed with the files)", r.TableRecords)
	}
	row("verified", "%v (manifests: %s records; %d rows read back, each record once when verified)", r.Verified, mr, r.RowsRead)
	for _, c := range r.Checks {
		verdict := "FAIL"
		if c.Pass {
			verdict = "pass"
		}
		row("target "+verdict, "%s: %s", c.Target, c.Got)
	}
	if r.CPUProfile != "" {
		row("cpu profile", "%s", r.CPUProfile)
	}
	return b.String()
}

// Variant names the run: its format, "+iceberg" with a table.
func (r Result) Variant() string {
	if r.Iceberg {
		return r.format() + "+iceberg"
	}
	return r.format()
}

// format is r.Format, with results written before Avro runs existed
// (no format) being JSON.
func (r Result) format() string {
	if r.Format == "" {
		return FormatJSON
	}
	return r.Format
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// freePort returns a port held for the rest of the process (test/freeport
// says why not port 0).
func freePort() (int, error) { return freeport.Get() }

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// finishedRows adds the report's rows of files finished by reason, and how
// many of the shutdowns' files were counted from the lake.
func (r Result) finishedRows(row func(k, f string, a ...any)) {
	if len(r.FilesFinished) == 0 {
		return
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r.FilesFinished)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.FilesFinished[k]))
	}
	row("files finished by", "%s", strings.Join(parts, ", "))
	if r.ShutdownFromLake > 0 {
		row("", "(%d of the shutdowns' files counted from the lake: finished after /metrics last answered)", r.ShutdownFromLake)
	}
}
