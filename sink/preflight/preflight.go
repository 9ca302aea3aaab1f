// Package preflight is `lakesink validate --connect`: it probes every
// dependency a config names — the brokers (and TLS/SASL), each stream's
// topics, the consumer group's committed offsets, the dead-letter and
// completion topics, the lake, the spool folder, the schema registry and
// the subjects streams name, each table's catalog, the webhook — each
// with a deadline and all at once, and reports one line per probe, so that
// an unreachable broker or a bucket the credentials cannot write is found
// before `lakesink run`, not by it (docs/operations.md, "Checking a config
// against its dependencies").
//
// Probes leave nothing behind: the storage probe deletes the object it
// puts (ops.WriteProbe, as the readiness probe does), the spool probe its
// file; a missing topic, folder, catalog file, namespace or table is
// reported as what run will create, and created by nobody here. Whether
// the broker would let run create a missing dead-letter or completion
// topic is asked with a validate-only CreateTopics.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/lakesink/lakesink/config"
)

// Status is a check's outcome.
type Status int

// Outcomes.
const (
	// Passed: the dependency answered as run needs it.
	Passed Status = iota
	// Failed: run would fail, or wait, on this dependency.
	Failed
	// Skipped: the check needs another that failed (the topics need the
	// brokers, a subject the registry).
	Skipped
)

func (s Status) String() string {
	switch s {
	case Passed:
		return "ok"
	case Failed:
		return "FAIL"
	}
	return "skipped"
}

// Check is one probe's line of the report.
type Check struct {
	// Dependency is what was probed: "kafka brokers", "kafka topic",
	// "storage", ... (docs/operations.md lists them).
	Dependency string
	// Endpoint is where: addresses, a topic, a URL without user
	// information or query. It holds no secret.
	Endpoint string
	Status   Status
	// Result says what was found (Passed), the problem in an operator's
	// terms (Failed: "connection refused", "no answer within 10s", "403
	// Forbidden: the credentials cannot write s3://lake/raw"), or which
	// check this one needed (Skipped). It holds no secret: the config's
	// secrets are replaced by config.RedactedValue.
	Result string
	// Took is how long the probe ran.
	Took time.Duration
	// Err is a failed probe's own error, for tests and logs. Unlike
	// Result it may quote what a server or library said, secrets
	// included: do not print it.
	Err error
}

// OK reports whether the check passed.
func (c Check) OK() bool { return c.Status == Passed }

// DefaultTimeout is a probe's deadline when Options.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// Options configure Run.
type Options struct {
	// Timeout is each probe's deadline (DefaultTimeout if 0). A config
	// timeout that is shorter applies instead: storage.timeout to the
	// storage probe, schema_registry.timeout to the registry's,
	// markers.webhook.timeout to the webhook's. Checks that need another
	// start when it has passed, so the whole run takes at most twice
	// Timeout.
	Timeout time.Duration
	// Now is the wall clock (the probe object's content); nil: time.Now.
	Now func() time.Time
}

// probe is a check's work: what it found, or the problem.
type probe func(ctx context.Context) (string, error)

// item is a planned check.
type item struct {
	Check
	timeout time.Duration
	run     probe
	after   *item // runs once after has passed; else it is skipped
	done    chan struct{}
}

// plan collects the checks of a config in report order.
type plan struct {
	timeout time.Duration
	items   []*item
}

// add plans a check with the default timeout.
func (p *plan) add(dependency, endpoint string, run probe) *item {
	it := &item{Check: Check{Dependency: dependency, Endpoint: endpoint}, timeout: p.timeout, run: run, done: make(chan struct{})}
	p.items = append(p.items, it)
	return it
}

// Run probes every dependency cfg names, all at once, and returns a check
// per probe in report order: Kafka, storage, spool, schema registry,
// tables, webhook. It never panics on a probe's account (a panicking
// probe fails its check) and returns within twice the timeout even if a
// library call ignores its context: such a probe's goroutine is left
// behind, to end with the process. cfg must have passed Validate.
func Run(ctx context.Context, cfg *config.Config, o Options) []Check {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &plan{timeout: o.Timeout}
	planKafka(p, cfg)
	planStorage(p, cfg, o.Now)
	planSpool(p, cfg)
	planRegistry(p, cfg)
	planTables(p, cfg)
	planWebhook(p, cfg)

	p.run(ctx)

	scrub := strings.NewReplacer(secretPairs(cfg)...)
	out := make([]Check, len(p.items))
	for i, it := range p.items {
		c := it.Check
		c.Endpoint = scrub.Replace(c.Endpoint)
		c.Result = scrub.Replace(oneLine(c.Result))
		out[i] = c
	}
	return out
}

// run runs every item, each in its own goroutine, those with a
// prerequisite once it has passed (else they are skipped), and returns
// when all are done.
func (p *plan) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, it := range p.items {
		wg.Go(func() {
			defer close(it.done)
			if it.after != nil {
				<-it.after.done
				if it.after.Status != Passed {
					it.Status = Skipped
					it.Result = "needs " + it.after.Dependency
					return
				}
			}
			it.exec(ctx)
		})
	}
	wg.Wait()
}

// exec runs the item's probe under its deadline and fills in its check.
func (it *item) exec(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, it.timeout)
	defer cancel()
	type result struct {
		note string
		err  error
	}
	ch := make(chan result, 1)
	start := time.Now()
	go func() {
		defer func() {
			if v := recover(); v != nil {
				ch <- result{err: fmt.Errorf("probe panicked: %v", v)}
			}
		}()
		note, err := it.run(pctx)
		ch <- result{note, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-pctx.Done():
		// A probe whose calls heed the context returns at once with
		// its own error; one that does not is left behind.
		select {
		case r = <-ch:
		case <-time.After(200 * time.Millisecond):
			r.err = pctx.Err()
		}
	}
	it.Took = time.Since(start)
	if r.err != nil {
		it.Status, it.Err = Failed, r.err
		it.Result = explain(r.err, it.timeout)
		if errors.Is(pctx.Err(), context.DeadlineExceeded) {
			// Whatever the probe's calls said once their context
			// ended ("use of closed network connection"), the
			// dependency did not answer in time.
			it.Result = fmt.Sprintf("no answer within %s", it.timeout)
		}
		return
	}
	it.Status, it.Result = Passed, r.note
}

// Failures counts the failed checks.
func Failures(checks []Check) int {
	n := 0
	for _, c := range checks {
		if c.Status == Failed {
			n++
		}
	}
	return n
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

// oneLine folds a multi-line message (joined errors) into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
