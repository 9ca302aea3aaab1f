package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/audit"
	"github.com/lakesink/lakesink/sink/tables"
	"github.com/lakesink/lakesink/writers/factory"
)

// auditRange is the default range of `lakesink audit`: the last 48 hours.
const auditRange = 48 * time.Hour

// cmdAudit runs `lakesink audit`: exit 0 when the lake is clean, 1 with the
// report when the audit found something, 2 on a usage, config or access
// error. now is the wall clock (which hours are past their lateness).
func cmdAudit(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("lakesink audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	stream := fs.String("stream", "", "audit only this stream (default: every stream)")
	from := fs.String("from", "", "start of the range, RFC 3339 (default: 48 hours before --to)")
	to := fs.String("to", "", "end of the range, RFC 3339 (default: now)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: lakesink audit --config FILE [--stream NAME] [--from RFC3339] [--to RFC3339] [--json]\n\n"+
			"Reads the lake (and tables) over a range of hours and reports what breaks exactly-once.\n"+
			"Exit 0: clean; 1: findings; 2: usage, config or access error. Read-only.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "lakesink audit: "+format+"\n", a...)
		return 2
	}
	if *path == "" {
		return fail("--config FILE is required")
	}
	if fs.NArg() > 0 {
		return fail("unexpected arguments %q", fs.Args())
	}
	end := now()
	var err error
	if *to != "" {
		if end, err = time.Parse(time.RFC3339, *to); err != nil {
			return fail("--to: %v", err)
		}
	}
	start := end.Add(-auditRange)
	if *from != "" {
		if start, err = time.Parse(time.RFC3339, *from); err != nil {
			return fail("--from: %v", err)
		}
	}
	if !start.Before(end) {
		return fail("--from %s is not before --to %s", start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid config:\n", *path)
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  %s\n", line)
		}
		return 2
	}
	if !cfg.Markers.Enabled {
		return fail("markers.enabled is false in %s: without manifests there is nothing to audit against", *path)
	}
	// Errors of backends and catalogs are not ours: they may quote a URL
	// or a request. Scrub the config's secrets from whatever is printed.
	scrub := strings.NewReplacer(secretPairs(cfg)...)
	failErr := func(err error) int { return fail("%s", scrub.Replace(err.Error())) }

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	tmpl, err := partitioner.ParsePathTemplate(cfg.Partitioning.Path)
	if err != nil {
		return failErr(fmt.Errorf("partitioning.path: %w", err))
	}
	var streams []config.Stream
	for _, sc := range cfg.Streams {
		if *stream == "" || sc.Name == *stream {
			streams = append(streams, sc)
		}
	}
	if len(streams) == 0 {
		return fail("no stream %q in %s", *stream, *path)
	}
	w, err := factory.New(ctx, cfg.Storage, nil, nil, factory.ReadOnly())
	if err != nil {
		return failErr(err)
	}
	defer w.Close()
	opts := audit.Options{Writer: w, From: start, To: end, Now: now(), Log: newLogger(cfg.Log, stderr)}
	for _, sc := range streams {
		st := audit.Stream{Name: sc.Name, Loc: sc.Location(), Lateness: time.Duration(sc.AllowedLateness), Path: tmpl}
		if sc.Table != nil {
			r, err := tables.OpenReader(ctx, sc, cfg.Storage)
			if err != nil {
				return failErr(fmt.Errorf("stream %s: table %s: %w", sc.Name, sc.TableIdent(), err))
			}
			defer r.Close()
			st.Table = r
		}
		opts.Streams = append(opts.Streams, st)
	}
	rep, err := audit.Run(ctx, opts)
	if err != nil {
		return failErr(err)
	}
	if *asJSON {
		_, err = stdout.Write(rep.JSON())
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return failErr(err)
	}
	if !rep.Clean() {
		return 1
	}
	return 0
}

// secretPairs are strings.NewReplacer's pairs replacing each secret of cfg
// with config.RedactedValue.
func secretPairs(cfg *config.Config) []string {
	var pairs []string
	for _, s := range cfg.Secrets() {
		pairs = append(pairs, s, config.RedactedValue)
	}
	return pairs
}
