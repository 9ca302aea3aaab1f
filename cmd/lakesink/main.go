// Command lakesink moves event streams from Kafka into a data lake as hourly
// Parquet files and writes an hour-complete marker for each hour.
//
//	lakesink run -c lakesink.yaml       run the sink
//	lakesink validate -c lakesink.yaml  check a config file
//	lakesink validate --connect -c lakesink.yaml
//	                                    ... and probe every dependency it names
//	lakesink audit -c lakesink.yaml     check the lake over a range of hours
//	lakesink demo                       embedded broker + generator + local lake
//	lakesink version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ops"
	"github.com/lakesink/lakesink/sink/preflight"
	"github.com/lakesink/lakesink/writers/factory"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "none"
)

const usage = `lakesink moves Kafka event streams into hourly Parquet files in a data lake.

Usage:
  lakesink run -c FILE        run the sink with the config FILE
  lakesink validate -c FILE   check FILE; print a summary or every problem
                              (--connect: also probe every dependency it names)
  lakesink audit -c FILE      check the lake (and tables) over a range of hours:
                              exit 0 clean, 1 with a report of findings, 2 on errors
  lakesink demo [flags]       embedded broker + event generator + local lake
  lakesink version            print version information

Run 'lakesink COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(args[1:], stdout, stderr, time.Now)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		v, c := buildVersion()
		fmt.Fprintf(stdout, "lakesink %s (commit %s, %s)\n", v, c, runtime.Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "lakesink: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// buildVersion returns the version and commit: the -ldflags values when
// set (make build, the Dockerfile), else what the Go toolchain stamped into
// the binary — a plain `go build` in a git checkout records the module
// version and the VCS revision ("-dirty" with uncommitted changes).
func buildVersion() (string, string) {
	v, c := version, commit
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v, c
	}
	if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if c == "none" {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			c = rev[:min(12, len(rev))]
			if dirty {
				c += "-dirty"
			}
		}
	}
	return v, c
}

// configFlag registers -c and its long form --config on fs.
func configFlag(fs *flag.FlagSet) *string {
	p := new(string)
	fs.StringVar(p, "c", "", "config file (YAML)")
	fs.StringVar(p, "config", "", "config file (YAML); long form of -c")
	return p
}

func parseConfigFlags(name string, args []string, stderr io.Writer) (string, int) {
	fs := flag.NewFlagSet("lakesink "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return "", 2
	}
	if *path == "" {
		fmt.Fprintf(stderr, "lakesink %s: -c FILE is required\n", name)
		return "", 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lakesink %s: unexpected arguments %q\n", name, fs.Args())
		return "", 2
	}
	return *path, 0
}

// cmdValidate runs `lakesink validate`: the config's static checks and,
// with --connect, a probe of every dependency it names (package
// preflight). Exit 0: valid (and with --connect every probe passed); 1: an
// invalid config or a failed probe; 2: usage.
func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lakesink validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	connect := fs.Bool("connect", false, "also probe every dependency the config names (brokers, topics, group, storage, spool, registry, catalogs, webhook)")
	timeout := fs.Duration("timeout", preflight.DefaultTimeout, "with --connect: each probe's deadline")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: lakesink validate --config FILE [--connect [--timeout 10s]]\n\n"+
			"Checks FILE and prints a summary or every problem. With --connect, also probes\n"+
			"every dependency it names, in parallel, and prints a table of the results.\n"+
			"Exit 0: valid (and every probe passed); 1: invalid or a probe failed; 2: usage.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "lakesink validate: -c FILE is required")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lakesink validate: unexpected arguments %q\n", fs.Args())
		return 2
	}
	timeoutSet := false
	fs.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
	if timeoutSet && !*connect {
		fmt.Fprintln(stderr, "lakesink validate: --timeout applies to --connect only")
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "lakesink validate: --timeout %s: want a positive duration\n", *timeout)
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid config:\n", *path)
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  %s\n", line)
		}
		return 1
	}
	fmt.Fprintln(stdout, cfg.Summary())
	if !*connect {
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintln(stdout)
	checks := preflight.Run(ctx, cfg, preflight.Options{Timeout: *timeout})
	if err := preflight.Write(stdout, checks); err != nil {
		fmt.Fprintf(stderr, "lakesink validate: %v\n", err)
		return 1
	}
	if preflight.Failures(checks) > 0 {
		return 1
	}
	return 0
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func cmdRun(args []string, stderr io.Writer) int {
	path, code := parseConfigFlags("run", args, stderr)
	if code != 0 {
		return code
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid config:\n%s\n", path, err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	setMemoryLimit(cfg, log)
	if stopProfile, err := startCPUProfile(os.Getenv("LAKESINK_CPUPROFILE")); err != nil {
		fmt.Fprintf(stderr, "lakesink: %v\n", err)
		return 1
	} else {
		defer stopProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	finished := make(chan struct{})
	defer close(finished)
	go exitAfterShutdownTimeout(ctx, finished, time.Duration(cfg.ShutdownTimeout)+4*time.Second, log)
	if err := runSink(ctx, cfg, log, nil); err != nil {
		log.Error("lakesink stopped", "err", err)
		// Also in plain text: start-up errors (bad credentials, a missing
		// bucket) should read well in a terminal and in `kubectl logs`.
		fmt.Fprintf(stderr, "lakesink: %v\n", err)
		return 1
	}
	return 0
}

// exitAfterShutdownTimeout ends the process once ctx has been cancelled
// (SIGTERM) for longer than limit without finished closing: a dependency
// that hangs a library call during shutdown must not keep the process
// alive past shutdown_timeout (Kubernetes would SIGKILL it anyway, without
// a word). Nothing is lost: whatever was not committed is replayed by the
// next owner, as after a crash.
func exitAfterShutdownTimeout(ctx context.Context, finished <-chan struct{}, limit time.Duration, log *slog.Logger) {
	select {
	case <-finished:
		return
	case <-ctx.Done():
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-finished:
	case <-t.C:
		log.Error("shutdown did not finish within shutdown_timeout; exiting now, uncommitted records are replayed on restart", "waited", limit.String())
		os.Exit(1)
	}
}

// registerBuildInfo registers lakesink_build_info with reg.
func registerBuildInfo(reg prometheus.Registerer) {
	v, c := buildVersion()
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lakesink_build_info",
		Help: "Always 1; the labels name the running build.",
	}, []string{"version", "revision", "goversion"})
	info.WithLabelValues(v, c, runtime.Version()).Set(1)
	reg.MustRegister(info)
}

// runSink wires storage, sink and HTTP server together and runs until ctx
// ends. ready, if not nil, receives the HTTP listener address once serving.
func runSink(ctx context.Context, cfg *config.Config, log *slog.Logger, ready func(httpAddr string)) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg)
	v, c := buildVersion()
	// Recent warnings and errors for the status page.
	ring := ops.NewLogRing(50)
	log = slog.New(ring.Handler(log.Handler()))

	dialer, err := kafkaio.NewDialer(cfg.Kafka)
	if err != nil {
		return err
	}

	// HTTP first, so that probes get an answer from the first moment:
	// /healthz 200, /readyz 503 with the start-up step, /metrics; the
	// sink's handler takes over once it exists.
	st := &startup{}
	st.set(ops.ReasonStarting)
	var handler atomic.Pointer[http.Handler]
	sh := st.handler(reg)
	handler.Store(&sh)
	var srv *http.Server
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http listen %s: %w", cfg.HTTP.Listen, err)
		}
		srv = &http.Server{
			Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }),
			ReadHeaderTimeout: 10 * time.Second,
		}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
		}()
		log.Info("http listening", "addr", ln.Addr().String())
		if ready != nil {
			ready(ln.Addr().String())
		}
	}

	st.set(ops.ReasonConnectingStorage)
	w, err := factory.New(ctx, cfg.Storage, log, reg)
	if err != nil {
		return err
	}
	defer w.Close()
	s, err := sink.New(sink.Options{Config: cfg, Writer: w, Logger: log, Registry: reg, Dialer: dialer, RecentLogs: ring})
	if err != nil {
		return err
	}
	sinkHandler := s.Handler(reg)
	handler.Store(&sinkHandler)
	log.Info("lakesink starting", "version", v, "commit", c, "go", runtime.Version(), "config", cfg.Redacted().Summary())
	hctx, stopHealth := context.WithCancel(ctx)
	healthDone := make(chan struct{})
	go func() { defer close(healthDone); s.RunHealthChecks(hctx) }()
	err = s.Run(ctx)
	stopHealth()
	<-healthDone
	log.Info("lakesink stopped")
	return err
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lakesink demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := demo.DefaultOptions()
	fs.StringVar(&opts.Lake, "lake", opts.Lake, "local lake folder")
	fs.DurationVar(&opts.Duration, "duration", opts.Duration, "how long to run after the backlog is produced (0: until Ctrl-C)")
	fs.IntVar(&opts.Records, "records", opts.Records, "backlog records per stream, spread over the past hours")
	fs.IntVar(&opts.Hours, "hours", opts.Hours, "past hours the backlog covers")
	fs.StringVar(&opts.HTTP, "http", opts.HTTP, "listen address for /metrics, /healthz, /readyz (port 0: any free port)")
	verbose := fs.Bool("v", false, "show the sink's logs")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logOut := io.Discard
	if *verbose {
		logOut = stderr
	}
	opts.Terminal = demo.IsTerminal(stdout)
	opts.Run = func(ctx context.Context, cfg *config.Config, ready func(string)) error {
		return runSink(ctx, cfg, newLogger(config.Log{Level: "info", Format: "text"}, logOut), ready)
	}
	if err := demo.Run(ctx, opts, stdout); err != nil {
		fmt.Fprintf(stderr, "lakesink demo: %v\n", err)
		return 1
	}
	return 0
}

// startCPUProfile writes a CPU profile of the whole run to path (from
// LAKESINK_CPUPROFILE; empty: none), for the benchmark harness and for
// finding where a production instance spends its time. The profile is
// complete once the process has stopped after SIGTERM.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// setMemoryLimit gives the Go runtime a soft memory limit of 1.3 times
// files.memory_limit, unless GOMEMLIMIT is set. The sink keeps the live heap
// at seven eighths of files.memory_limit (its estimates plus what the
// collector measures, sink/worker/memory.go); the soft limit leaves about half of
// that again for garbage between collections, so the heap does not grow to
// twice the live data as with GOGC alone, and RSS stays near the soft limit
// plus the binary and runtime (about 60 MiB since iceberg-go is linked;
// docs/performance.md). Measured before that with 512 partitions ×
// 4 open hours and memory_limit 256MiB: peak RSS 366-374 MiB. 1.4x with the
// live heap at the whole limit gave 392-415 MiB, 1.3x with it gave 377-414
// (the collector fell behind: its CPU cap lets the heap pass the soft
// limit), 2x gave 540 MiB.
func setMemoryLimit(cfg *config.Config, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(cfg.Files.MemoryLimit) * 13 / 10
	debug.SetMemoryLimit(limit)
	log.Debug("go memory limit", "bytes", limit)
	// Package initialization (iceberg-go's table package parses substrait's
	// extension catalogue: about 32 MB of short-lived allocations) leaves
	// freed heap pages that the scavenger would return only slowly: give
	// them back now, before the sink's own memory is counted.
	debug.FreeOSMemory()
}
