package ops

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Dependencies, as named in lakesink_dependency_errors_total and the logs.
const (
	DepKafka           = "kafka"
	DepStorage         = "storage"
	DepSpool           = "spool"
	DepSchemaRegistry  = "schema_registry"
	DepDeadLetterTopic = "dead_letter_topic"
	DepCompletionTopic = "completion_topic"
	DepWebhook         = "webhook"
	DepCatalog         = "catalog" // an Iceberg table's catalog
	DepLake            = "lake"    // the lake's contents: files that block a marker (Blocked)
)

// faultLogEvery is how often a fault that lasts is logged again.
const faultLogEvery = time.Minute

// Health is the state /readyz reports, as the stages see it, and the log of
// faults: group membership (the group loop), Kafka, storage, the spool
// disk and the dead-letter topic (uploads, spool writes, dead-letter writes
// and the probes), partitions waiting for the schema registry, completion
// events that cannot be delivered, and partition workers that stopped with
// an error. Safe for concurrent use. It implements worker.Health.
//
// Each report of an error counts in lakesink_dependency_errors_total. A
// fault is logged when it starts (with the error), at most once a minute
// while it lasts (with the number of errors since), and once when it
// clears — whatever the number of partitions reporting it, so an outage
// cannot flood the log. The latest report of a dependency wins, except for
// storage, whose state combines the uploads, the write probe and the
// finalizer, each clearing only the fault it raised (storageState).
type Health struct {
	log           *slog.Logger
	now           func() time.Time
	errors        *prometheus.CounterVec
	eventsFailing *prometheus.GaugeVec

	mu         sync.Mutex
	joined     bool
	joinReason string
	faults     map[string]*fault // by key: dependency, or dependency + detail
	regWaiting int               // partitions waiting for the registry
	stopped    map[string]error  // "topic/partition" -> why its worker stopped
	store      storageState
}

// fault is one failing dependency (or one stream's events).
type fault struct {
	dep     string
	err     error // nil: healthy
	reason  string
	since   time.Time
	logged  time.Time // last log line about it; zero: none yet
	errs    int       // errors since the last log line
	blocks  bool      // counts against readiness
	started bool      // its start was logged
}

func newHealth(log *slog.Logger, now func() time.Time, reg prometheus.Registerer) *Health {
	h := &Health{log: log, now: now, faults: map[string]*fault{}, stopped: map[string]error{},
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakesink_dependency_errors_total",
			Help: "Errors of calls to other systems (and the local spool disk), by dependency.",
		}, []string{"dependency"})}
	h.eventsFailing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lakesink_completion_events_failing",
		Help: "1 while the stream's completion events cannot be delivered (its later markers wait), else 0.",
	}, []string{"stream"})
	for _, d := range []string{DepKafka, DepStorage, DepSpool, DepSchemaRegistry, DepDeadLetterTopic, DepCompletionTopic, DepWebhook, DepCatalog, DepLake} {
		h.errors.WithLabelValues(d)
	}
	reg.MustRegister(h.errors, h.eventsFailing)
	return h
}

// report records the outcome of a call for key (a dependency, or a
// dependency and what of it failed): err nil when it worked. Every error
// counts in lakesink_dependency_errors_total; reason prefixes the readiness
// reason while err is not nil.
func (h *Health) report(dep, key, reason string, blocks bool, err error) {
	if err != nil {
		h.errors.WithLabelValues(dep).Inc()
	}
	now := h.now()
	h.mu.Lock()
	logLine := h.setLocked(now, dep, key, reason, blocks, err, err != nil)
	h.mu.Unlock()
	logLine()
}

// setLocked sets the state of key to err (nil: healthy) and returns the log
// line of the transition, if any, to be written once h.mu is released.
// fresh says that a new error was reported, as opposed to a state that
// still fails while something else about it changed (storage, whose state
// combines several sources): only fresh errors count towards the "errors
// since" of the log and may bring a "still failing" line.
func (h *Health) setLocked(now time.Time, dep, key, reason string, blocks bool, err error, fresh bool) (logLine func()) {
	f := h.faults[key]
	if f == nil {
		if err == nil {
			return func() {}
		}
		f = &fault{dep: dep}
		h.faults[key] = f
	}
	was := f.err
	f.err, f.reason, f.blocks = err, reason, blocks
	switch {
	case err != nil && was == nil:
		f.since, f.errs = now, 1
		// A fault that comes back within a minute of the last line about
		// it is counted, not logged again (flapping must not flood).
		if f.logged.IsZero() || now.Sub(f.logged) >= faultLogEvery {
			f.logged, f.errs, f.started = now, 0, true
			return func() { h.log.Warn(reason, "dependency", dep, "err", err) }
		}
		f.started = false
	case err != nil && fresh:
		f.errs++
		if now.Sub(f.logged) >= faultLogEvery {
			errs, since := f.errs, f.since
			f.logged, f.errs, f.started = now, 0, true
			return func() {
				h.log.Warn(reason+" (still failing)", "dependency", dep, "err", err, "since", since.UTC().Format(time.RFC3339), "errors", errs)
			}
		}
	case err == nil && was != nil:
		started, since := f.started, f.since
		f.started = false
		if started {
			return func() {
				h.log.Info("recovered: "+reason, "dependency", dep, "after", now.Sub(since).Round(time.Second).String())
			}
		}
	}
	return func() {}
}

// SetJoined reports group membership; reason says why not joined.
func (h *Health) SetJoined(ok bool, reason string) {
	h.mu.Lock()
	h.joined, h.joinReason = ok, reason
	h.mu.Unlock()
}

// Kafka reports the outcome of a call to the brokers: err nil when it
// worked. Kafka faults are logged and counted; readiness follows group
// membership (SetJoined) and commit stalls rather than single calls.
func (h *Health) Kafka(err error) {
	h.report(DepKafka, DepKafka, "kafka unreachable", false, err)
}

// uploadQuiet is how long after its last failure an upload fault whose
// uploads all ended without succeeding is kept; see storageState.
const uploadQuiet = time.Minute

// storageState is what storage readiness is decided on. Three sources
// report into it, and each clears only the fault it raised:
//
//   - uploads (Upload): a failed attempt raises the fault. It clears when
//     an upload succeeds while no other upload's last attempt failed — or,
//     when every failing upload ended without succeeding (its generation
//     ended: a rebalance, shutdown), once none has failed for uploadQuiet
//     and none is running, as nothing is left that could succeed.
//   - the write probe (probed): a tiny put and delete, every health check;
//     its success clears only its own failure. Why: a lake can take the
//     probe's few bytes and refuse every data file (a disk with room for
//     small files only, an object store answering 413 EntityTooLarge or a
//     quota error to large puts); readiness must follow the real uploads,
//     not flip back to ready a second after each failed one. The probe
//     still finds a broken lake while no upload runs (at idle).
//   - the finalizer (Storage): its lists and small puts; cleared by a round
//     of its checks without a storage error.
//
// Storage is unreachable while any source fails; the reason shows the
// upload's error first, then the probe's, then the finalizer's.
type storageState struct {
	upload    error     // the last failed upload attempt; nil once cleared
	failedAt  time.Time // when upload was last set
	running   int       // uploads running, retry waits included
	failing   int       // running uploads whose last attempt failed
	probe     error     // the write probe's last outcome
	finalizer error     // the finalizer's last outcome
}

func (s *storageState) err() error {
	switch {
	case s.upload != nil:
		return s.upload
	case s.probe != nil:
		return s.probe
	default:
		return s.finalizer
	}
}

// storageReport applies change to the storage state and reports the
// result: fresh is the new error change reports (nil: none), counted like
// every error.
func (h *Health) storageReport(fresh error, change func(s *storageState, now time.Time)) {
	if fresh != nil {
		h.errors.WithLabelValues(DepStorage).Inc()
	}
	now := h.now()
	h.mu.Lock()
	s := &h.store
	change(s, now)
	if s.upload != nil && s.failing == 0 && s.running == 0 && now.Sub(s.failedAt) >= uploadQuiet {
		s.upload = nil
	}
	logLine := h.setLocked(now, DepStorage, DepStorage, ReasonStorage, true, s.err(), fresh != nil)
	h.mu.Unlock()
	logLine()
}

// Upload reports an upload of one file, with its retries: attempt after
// each try with its outcome (err nil: the file is in the lake), end once
// the upload returns, done or abandoned. end is idempotent. A failed
// attempt makes storage unreachable until an upload succeeds (see
// storageState); the write probe cannot clear it.
func (h *Health) Upload() (attempt func(err error), end func()) {
	h.storageReport(nil, func(s *storageState, _ time.Time) { s.running++ })
	failing, ended := false, false // guarded by h.mu (in change)
	attempt = func(err error) {
		h.storageReport(err, func(s *storageState, now time.Time) {
			if ended {
				return
			}
			if err != nil {
				if !failing {
					failing = true
					s.failing++
				}
				s.upload, s.failedAt = err, now
				return
			}
			if failing {
				failing = false
				s.failing--
			}
			if s.failing == 0 {
				s.upload = nil
			}
		})
	}
	end = func() {
		h.storageReport(nil, func(s *storageState, _ time.Time) {
			if ended {
				return
			}
			ended = true
			if failing {
				failing = false
				s.failing--
			}
			s.running--
		})
	}
	return attempt, end
}

// probed reports the write probe's outcome.
func (h *Health) probed(err error) {
	h.storageReport(err, func(s *storageState, _ time.Time) { s.probe = err })
}

// Storage reports the finalizer's storage calls (completion.Faults): err
// for a failed call, nil after a round of checks without one.
func (h *Health) Storage(err error) {
	h.storageReport(err, func(s *storageState, _ time.Time) { s.finalizer = err })
}

// Spool reports the spool disk's state: err nil after a spool file was
// written or the spool probe succeeded.
func (h *Health) Spool(err error) { h.report(DepSpool, DepSpool, ReasonSpool, true, err) }

// Catalog reports a commit to stream's Iceberg table: err nil when it
// worked. While it fails, the stream's files wait uploaded and its offsets
// are not committed past them, so the sink is not ready.
func (h *Health) Catalog(stream string, err error) {
	h.report(DepCatalog, DepCatalog+"/"+stream, fmt.Sprintf("%s %s: catalog commits failing", ReasonCatalog, stream), true, err)
}

// DeadLetters reports the dead-letter topic's state: err nil when it works.
func (h *Health) DeadLetters(err error) {
	h.report(DepDeadLetterTopic, DepDeadLetterTopic, ReasonDeadLetter, true, err)
}

// Events reports delivery of stream's completion events to dep
// (DepCompletionTopic or DepWebhook): err nil once delivered. While they
// fail the stream's later markers wait, so the sink is not ready.
func (h *Health) Events(stream, dep string, err error) {
	h.report(dep, dep+"/"+stream, fmt.Sprintf("%s %s not delivered (%s)", ReasonEvents, stream, dep), true, err)
	failing := 0.0
	if h.EventsFailing(stream) {
		failing = 1
	}
	h.eventsFailing.WithLabelValues(stream).Set(failing)
}

// EventsFailing reports whether stream's completion events are failing.
func (h *Health) EventsFailing(stream string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range []string{DepCompletionTopic, DepWebhook} {
		if f := h.faults[d+"/"+stream]; f != nil && f.err != nil {
			return true
		}
	}
	return false
}

// RegistryWait counts a partition that waits for the schema registry with
// err until end is called; update reports a later error.
func (h *Health) RegistryWait(err error) (update func(error), end func()) {
	h.mu.Lock()
	h.regWaiting++
	h.mu.Unlock()
	h.report(DepSchemaRegistry, DepSchemaRegistry, ReasonRegistry, true, err)
	var once sync.Once
	return func(err error) {
			h.report(DepSchemaRegistry, DepSchemaRegistry, ReasonRegistry, true, err)
		}, func() {
			once.Do(func() {
				h.mu.Lock()
				h.regWaiting--
				last := h.regWaiting == 0
				h.mu.Unlock()
				if last {
					h.report(DepSchemaRegistry, DepSchemaRegistry, ReasonRegistry, true, nil)
				}
			})
		}
}

// WorkerStopped reports that the worker of topic/partition stopped with err
// and waits to run again.
func (h *Health) WorkerStopped(topic string, partition int, err error) {
	h.mu.Lock()
	h.stopped[fmt.Sprintf("%s/%d", topic, partition)] = err
	h.mu.Unlock()
}

// WorkerStarted clears a stopped worker of topic/partition.
func (h *Health) WorkerStarted(topic string, partition int) {
	h.mu.Lock()
	delete(h.stopped, fmt.Sprintf("%s/%d", topic, partition))
	h.mu.Unlock()
}

// reasons lists what is not ready.
func (h *Health) reasons() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	if !h.joined {
		r := ReasonNotJoined
		if h.joinReason != "" {
			r += ": " + h.joinReason
		}
		out = append(out, r)
	}
	var faults []string
	for _, f := range h.faults {
		if f.err == nil || !f.blocks {
			continue
		}
		r := f.reason + ": " + f.err.Error()
		if f.dep == DepSchemaRegistry {
			r = fmt.Sprintf("%s (%d partitions waiting): %s", f.reason, h.regWaiting, f.err)
		}
		faults = append(faults, r)
	}
	sort.Strings(faults)
	out = append(out, faults...)
	var stopped []string
	for tp, err := range h.stopped {
		stopped = append(stopped, fmt.Sprintf("%s: %s: %v", ReasonWorkerStopped, tp, err))
	}
	sort.Strings(stopped)
	return append(out, stopped...)
}
