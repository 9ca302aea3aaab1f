package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ops"
	"github.com/lakesink/lakesink/sink/registry"
	"github.com/lakesink/lakesink/sink/retry"
	"github.com/lakesink/lakesink/sink/spool"
	"github.com/lakesink/lakesink/sink/tables"
	"github.com/lakesink/lakesink/sink/unconsumed"
	"github.com/lakesink/lakesink/sink/worker"
	"github.com/lakesink/lakesink/writers"
)

// Options are a Sink's dependencies. Config and Writer are required.
type Options struct {
	Config *config.Config
	// Writer is the lake. The Sink does not close it.
	Writer   writers.Writer
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Clock gives the wall time for idle detection, commit pacing and
	// marker timestamps; event time always comes from the records.
	Clock func() time.Time
	// Dialer for Kafka connections (TLS, SASL); nil: kafka.DefaultDialer.
	Dialer *kafka.Dialer
	// Tick is the housekeeping interval of partition workers (default 200ms).
	Tick time.Duration
	// RecentLogs, if set, is the ring of recent warnings and errors shown
	// on the status page (see ops.LogRing.Handler).
	RecentLogs *ops.LogRing
}

// Sink moves records of every configured stream from Kafka into the lake and
// finalizes hours. Create with New, run with Run.
type Sink struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *Metrics
	dialer  *kafka.Dialer
	admin   *kafkaio.Admin
	dlqW    *kafka.Writer

	streams  []*worker.Stream
	byTopic  map[string]*worker.Stream
	topics   []string
	env      *worker.Env
	ops      *ops.Ops
	finalize *completion.Options // nil when markers are disabled

	// unconsumed finds partitions no live member consumes; owned is
	// what this instance owns in its current generation (nil: nothing).
	unconsumed *unconsumed.Detector
	owned      atomic.Pointer[map[string]map[int]bool]
	// held is the last generation's assignment (heldPartitions).
	held atomic.Pointer[map[string][]int]

	// compactions are the streams' compaction settings, whose spool
	// folder Run sets once it has claimed one (claimSpool).
	compactions []*completion.Compaction

	tableMetrics *tables.Metrics
	// maintained are the open tables whose snapshots expire (openTables).
	maintained []maintained
	now        func() time.Time
}

// New checks the configuration and builds a Sink. It does not connect yet.
func New(opts Options) (*Sink, error) {
	cfg := opts.Config
	if cfg == nil || opts.Writer == nil {
		return nil, errors.New("sink: config and writer are required")
	}
	s := &Sink{cfg: cfg, log: opts.Logger, dialer: opts.Dialer, byTopic: map[string]*worker.Stream{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	now := opts.Clock
	if now == nil {
		now = time.Now
	}
	s.now = now
	if s.dialer == nil {
		s.dialer = kafka.DefaultDialer
	}
	tick := opts.Tick
	if tick <= 0 {
		tick = 200 * time.Millisecond
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(reg)
	s.tableMetrics = tables.NewMetrics(reg)

	tmpl, err := partitioner.ParsePathTemplate(cfg.Partitioning.Path)
	if err != nil {
		return nil, fmt.Errorf("partitioning.path: %w", err)
	}
	schemas, err := newRegistryClient(cfg)
	if err != nil {
		return nil, err
	}
	if schemas != nil {
		for _, r := range confluent.Reasons() {
			s.metrics.Worker.DeadLetters.WithLabelValues(string(r))
		}
	}
	var cstreams []*completion.Stream
	for i, sc := range cfg.Streams {
		st, err := worker.Compile(sc, tmpl, int(cfg.Kafka.MaxRecordBytes), schemas)
		if err != nil {
			return nil, fmt.Errorf("streams[%d]: %w", i, err)
		}
		s.streams = append(s.streams, st)
		for _, t := range st.Topics {
			s.byTopic[t] = st
			s.topics = append(s.topics, t)
		}
		cs := &completion.Stream{Name: st.Name, Topics: st.Topics, Loc: st.Loc, Lateness: st.Lateness, Path: st.Path}
		if c := sc.Compaction; c.Enabled {
			cs.Compaction = &completion.Compaction{
				TargetBytes: int64(c.TargetFileBytes), MinFiles: c.MinFiles, SortBy: c.SortBy,
				File: partitioner.FileOptions{Compression: string(cfg.Files.Compression), RowGroupBytes: int64(cfg.Files.RowGroupBytes)},
				// An eighth of files.memory_limit; the workers' budget is
				// the rest (compactionShare).
				MemoryLimit: compactionShare(cfg) / int64(compacting(cfg)),
				// SpoolDir is set by Run, in the process's spool folder.
			}
			s.compactions = append(s.compactions, cs.Compaction)
		}
		cstreams = append(cstreams, cs)
	}

	s.admin = kafkaio.NewAdmin(cfg.Kafka.Brokers, cfg.Kafka.GroupID, cfg.Kafka.ClientID, s.dialer)
	s.dlqW = s.admin.Producer(cfg.DeadLetter.Topic, 5*time.Millisecond, 1000)
	s.ops = ops.New(ops.Options{
		Streams: cstreams, Writer: opts.Writer, Topics: s.admin, DeadLetterTopic: cfg.DeadLetter.Topic,
		HealthCheckInterval: time.Duration(cfg.HTTP.HealthCheckInterval),
		CommitStallTimeout:  time.Duration(cfg.HTTP.CommitStallTimeout),
		Now:                 now, Logs: opts.RecentLogs, Registry: reg, Log: s.log,
		SpoolDir:   filepath.Join(cfg.Files.SpoolDir, cfg.Kafka.GroupID),
		Rebalances: s.rebalanceStatus,
		Counters:   s.progressCounters,
	})
	bound := unconsumed.Bound(time.Duration(cfg.Kafka.SessionTimeout), time.Duration(cfg.Kafka.RebalanceTimeout), time.Duration(cfg.Kafka.CommitInterval))
	s.unconsumed = unconsumed.New(unconsumed.Options{
		Offsets: s.admin, Topics: s.topics, Bound: bound,
		IdleTimeout:  time.Duration(cfg.Markers.IdlePartitionTimeout),
		FromEarliest: cfg.Kafka.StartOffset != config.StartLatest,
		Interval:     min(max(bound/4, time.Second), 30*time.Second),
		Owned:        s.owns, Now: now, Log: s.log, Registry: reg,
		Faults: s.ops.Health.Kafka,
	})
	s.ops.AddReasons(s.unconsumed.Reasons)
	startOffset := kafka.FirstOffset
	if cfg.Kafka.StartOffset == config.StartLatest {
		startOffset = kafka.LastOffset
	}
	s.env = &worker.Env{
		Writer:          opts.Writer,
		Offsets:         s.admin,
		DeadLetters:     s.dlqW,
		DeadLetterTopic: cfg.DeadLetter.Topic,
		Health:          s.ops.Health,
		Progress: func(p worker.Progress) {
			s.ops.NotePartition(ops.Progress{Stream: p.Stream, Topic: p.Topic, Partition: p.Partition, Generation: p.Generation,
				Committed: p.Committed, High: p.High, Meta: p.Meta.Encode(), Watermark: p.Meta.WM, Raw: p.Meta.RW, Open: p.Open})
		},
		Budget:         worker.NewBudget(int64(cfg.Files.MemoryLimit) - compactionShare(cfg)),
		Metrics:        s.metrics.Worker,
		Log:            s.log,
		Now:            now,
		Dialer:         s.dialer,
		Brokers:        cfg.Kafka.Brokers,
		StartOffset:    startOffset,
		Leaders:        kafkaio.NewLeaders(s.dialer, cfg.Kafka.Brokers),
		GroupID:        cfg.Kafka.GroupID,
		FileOptions:    partitioner.FileOptions{Compression: string(cfg.Files.Compression), RowGroupBytes: int64(cfg.Files.RowGroupBytes)},
		MaxFileBytes:   int64(cfg.Files.MaxFileBytes),
		MaxFileAge:     time.Duration(cfg.Files.MaxFileAge),
		IdleTimeout:    time.Duration(cfg.Markers.IdlePartitionTimeout),
		CommitInterval: time.Duration(cfg.Kafka.CommitInterval),
		CheckInterval:  time.Duration(cfg.Markers.CheckInterval),
		Tick:           tick,
		KeepFiles:      cfg.Kafka.Assignor == config.AssignSticky,
	}
	if cfg.Markers.Enabled {
		s.env.Markers = completion.NewMarkers(opts.Writer)
		s.finalize = &completion.Options{
			Streams: cstreams, Writer: opts.Writer, Offsets: s.admin,
			CheckInterval:  time.Duration(cfg.Markers.CheckInterval),
			IdleTimeout:    time.Duration(cfg.Markers.IdlePartitionTimeout),
			WebhookTimeout: time.Duration(cfg.Markers.Webhook.Timeout),
			Log:            s.log, Now: now, Metrics: s.metrics.Completion,
		}
	}
	return s, nil
}

// compactionShare is the part of files.memory_limit that compaction's
// merges may hold: an eighth when a stream compacts, else nothing, split
// evenly between the compacting streams (the finalizer checks streams
// side by side, each merging one file at a time). The workers' memory
// budget is the rest, so the two together stay within the limit.
func compactionShare(cfg *config.Config) int64 {
	if compacting(cfg) == 0 {
		return 0
	}
	return int64(cfg.Files.MemoryLimit) / 8
}

// compacting counts the streams with compaction enabled.
func compacting(cfg *config.Config) int {
	n := 0
	for _, sc := range cfg.Streams {
		if sc.Compaction.Enabled {
			n++
		}
	}
	return n
}

// owns reports whether this instance owns topic/partition in its current
// generation.
func (s *Sink) owns(topic string, partition int) bool {
	m := s.owned.Load()
	return m != nil && (*m)[topic][partition]
}

// newRegistryClient returns the schema registry client for cfg, or nil when
// no stream needs one. It does not connect.
func newRegistryClient(cfg *config.Config) (*registry.Client, error) {
	need := false
	for _, sc := range cfg.Streams {
		need = need || sc.Format.UsesRegistry()
	}
	if !need {
		return nil, nil
	}
	return registry.FromConfig(cfg.SchemaRegistry)
}

// Metrics returns the sink's collectors.
func (s *Sink) Metrics() *Metrics { return s.metrics }

// Readiness reports whether the sink is ready and, if not, why.
func (s *Sink) Readiness() (bool, []string) { return s.ops.Readiness() }

// Handler serves the operational endpoints (see ops.Ops.Handler), with
// metrics from gatherer.
func (s *Sink) Handler(gatherer prometheus.Gatherer) http.Handler { return s.ops.Handler(gatherer) }

// RunHealthChecks probes storage and the dead-letter topic until ctx ends
// (see ops.Ops.RunHealthChecks). Run it in its own goroutine next to Run.
func (s *Sink) RunHealthChecks(ctx context.Context) { s.ops.RunHealthChecks(ctx) }

// Run waits for the brokers (see waitKafka), then consumes until ctx is
// cancelled, then shuts down gracefully: open files
// are finished, uploaded and committed (within the configured
// shutdown_timeout), then the group is left. Run returns nil after a clean
// shutdown.
func (s *Sink) Run(ctx context.Context) error {
	s.ops.Health.SetJoined(false, ops.JoinWaitingKafka)
	folder := s.claimSpool(ctx)
	if folder == nil {
		s.log.Info("stopped before the spool folder was usable")
		return nil
	}
	// Released last, when no worker or compaction writes there any more.
	defer func() {
		if err := folder.Release(); err != nil {
			s.log.Warn("spool folder left behind; the next start removes it", "err", err)
		}
	}()
	if err := s.waitKafka(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		s.log.Info("stopped before kafka was reachable")
		return nil
	}
	if err := s.ensureTopics(ctx); err != nil {
		return err
	}
	defer s.dlqW.Close()
	closeTables, err := s.openTables(ctx)
	if err != nil {
		if ctx.Err() != nil {
			s.log.Info("stopped before the tables were open")
			return nil
		}
		return err
	}
	// Closed after the workers and the finalizer have stopped.
	defer closeTables()

	// Sticky first (worker/keep.go); range beside it, so that a group with
	// members of an older lakesink (kafka-go's default balancers only)
	// still agrees on one protocol: the coordinator picks one every member
	// lists (kafkaio.Sticky).
	balancers := []kafka.GroupBalancer{kafka.RangeGroupBalancer{}}
	if s.cfg.Kafka.Assignor == config.AssignSticky {
		balancers = []kafka.GroupBalancer{kafkaio.Sticky{Owned: s.heldPartitions, Cost: s.ops.OpenRecords}, kafka.RangeGroupBalancer{}}
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		GroupBalancers:        balancers,
		ID:                    s.cfg.Kafka.GroupID,
		Brokers:               s.cfg.Kafka.Brokers,
		Dialer:                s.dialer,
		Topics:                s.topics,
		StartOffset:           s.env.StartOffset,
		WatchPartitionChanges: true,
		HeartbeatInterval:     time.Duration(s.cfg.Kafka.HeartbeatInterval),
		SessionTimeout:        time.Duration(s.cfg.Kafka.SessionTimeout),
		RebalanceTimeout:      time.Duration(s.cfg.Kafka.RebalanceTimeout),
		JoinGroupBackoff:      time.Second,
		// kafka-go's lines are unstructured and may span lines: one line
		// each, its errors counted and logged as Kafka faults (once when
		// they start, at most once a minute while they last).
		Logger: kafka.LoggerFunc(func(f string, a ...any) { s.log.Debug(oneLine(fmt.Sprintf(f, a...)), "component", "kafka-go") }),
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			s.ops.Health.Kafka(errors.New(oneLine(fmt.Sprintf(f, a...))))
		}),
	})
	if err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}

	var bg sync.WaitGroup
	fctx, stopFinalizer := context.WithCancel(context.Background())
	if s.finalize != nil {
		o := *s.finalize
		n, err := completion.NewNotifier(s.cfg, s.admin, s.log)
		if err != nil {
			s.log.Error("completion events disabled", "err", err)
		}
		n.SetFaults(s.ops.Health)
		o.Notifier = n
		o.Faults = s.ops.Health
		f := completion.NewFinalizer(o)
		bg.Add(1)
		go func() { defer bg.Done(); f.Run(fctx) }()
	}
	if len(s.maintained) > 0 {
		bg.Add(1)
		go func() { defer bg.Done(); s.maintainTables(fctx, time.Minute, time.Hour) }()
	}
	// Where the records are, once a minute at info level (the demo shows
	// the same report live).
	bg.Add(1)
	go func() { defer bg.Done(); s.logProgress(fctx, time.Minute) }()
	// Every instance looks for partitions no live member consumes.
	bg.Add(1)
	go func() { defer bg.Done(); s.unconsumed.Run(fctx) }()

	drain := make(chan struct{})
	var drainOnce sync.Once
	// workersDone counts running workers; active those that have not yet
	// drained (finished, uploaded and committed) or exited.
	var workersDone, active sync.WaitGroup
	go func() {
		<-ctx.Done()
		s.log.Info("shutting down: finishing, uploading and committing open files", "timeout", time.Duration(s.cfg.ShutdownTimeout))
		drainOnce.Do(func() { close(drain) })
	}()

	health := s.ops.Health
	joinWait := retry.NewBackoff(time.Second, 30*time.Second)
	var runErr error
	// prev are the workers of the last generation: those that kept their
	// open files (worker/keep.go) resume if their partition comes back
	// unchanged, the others' files are abandoned.
	prev := map[topicPartition]*worker.Worker{}
	defer func() {
		for _, w := range prev {
			w.Abandon() // shutting down: a parked worker has no generation to commit in
		}
	}()
generations:
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			s.owned.Store(nil)
			if ctx.Err() == nil && !errors.Is(err, kafka.ErrGroupClosed) {
				health.Kafka(fmt.Errorf("join group %s: %w", s.cfg.Kafka.GroupID, err))
				health.SetJoined(false, err.Error())
				if retry.Sleep(ctx, joinWait.Next()) {
					continue
				}
			}
			break
		}
		joinWait.Reset()
		health.Kafka(nil)
		s.metrics.Rebalances.Inc()
		n := 0
		owned := map[string]map[int]bool{}
		for topic, as := range gen.Assignments {
			n += len(as)
			owned[topic] = map[int]bool{}
			for _, a := range as {
				owned[topic][a.ID] = true
			}
		}
		s.owned.Store(&owned)
		s.metrics.AssignedPartitions.Set(float64(n))
		health.SetJoined(true, "")
		s.log.Info("group joined", "generation", gen.ID, "member", gen.MemberID, "partitions", n)
		held := map[string][]int{}
		for topic, as := range gen.Assignments {
			for _, a := range as {
				held[topic] = append(held[topic], a.ID)
			}
		}
		s.held.Store(&held)
		g := worker.Generation{ID: int(gen.ID), Member: gen.MemberID, Partitions: n}
		cur := map[topicPartition]*worker.Worker{}
		for topic, as := range gen.Assignments {
			for _, a := range as {
				w, err := s.workerFor(ctx, prev, topic, a.ID, g)
				if err != nil {
					runErr = err
					break generations
				}
				cur[topicPartition{topic, a.ID}] = w
				health.WorkerStarted(topic, a.ID)
				workersDone.Add(1)
				active.Add(1)
				var once sync.Once
				gen.Start(func(gctx context.Context) {
					defer workersDone.Done()
					drained := func() { once.Do(active.Done) }
					defer drained()
					if err := w.Run(gctx, drain, drained); err != nil && gctx.Err() == nil {
						s.log.Error("partition worker stopped", "topic", topic, "partition", a.ID, "err", err)
						health.WorkerStopped(topic, a.ID, err)
					}
				})
			}
		}
		for tp, w := range prev {
			if _, ok := cur[tp]; !ok {
				w.Abandon() // moved to another member
			}
		}
		prev = cur
		if ctx.Err() != nil {
			break
		}
	}
	// Shutdown: workers drain (finish, upload, commit) while the generation
	// is still ours, then we leave the group.
	drainOnce.Do(func() { close(drain) })
	done := make(chan struct{})
	go func() { active.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Duration(s.cfg.ShutdownTimeout)):
		s.log.Warn("shutdown timeout: abandoning open files; they are replayed on restart")
	}
	group.Close() // ends the generation: drained workers return
	workersDone.Wait()
	stopFinalizer()
	bg.Wait()
	health.SetJoined(false, ops.JoinShutDown)
	return runErr
}

// claimSpool claims the process's own folder below
// files.spool_dir/<group> (see package spool), removing those of processes
// that are gone, and points the workers and compaction at it. A spool disk
// that cannot be used is a spool fault on /readyz, retried until it can or
// ctx ends (nil).
func (s *Sink) claimSpool(ctx context.Context) *spool.Folder {
	root := filepath.Join(s.cfg.Files.SpoolDir, s.cfg.Kafka.GroupID)
	var folder *spool.Folder
	err := retry.Until(ctx, retry.NewBackoff(time.Second, 30*time.Second), func(context.Context) error {
		f, removed, err := spool.Claim(root)
		if len(removed) > 0 {
			s.log.Info("removed the spool folders of processes that are gone; their records are read again from Kafka", "folders", removed)
		}
		if f != nil {
			if err != nil {
				s.log.Warn("spool folder of a process that is gone not removed", "err", err)
			}
			folder = f
			return nil
		}
		return err
	}, func(attempt int, err error) {
		s.ops.Health.Spool(err)
		if attempt == 1 {
			s.log.Warn("spool folder unusable; retrying", "err", err)
		}
	})
	if err != nil {
		return nil
	}
	s.ops.Health.Spool(nil)
	s.env.SpoolDir = folder.Dir()
	for _, c := range s.compactions {
		c.SpoolDir = filepath.Join(folder.Dir(), "_compaction")
	}
	return folder
}

// progressCounters reads the counters of progress reports (ops.Progress)
// from the sink's metrics.
func (s *Sink) progressCounters() ops.ProgressCounters {
	c := ops.ProgressCounters{OldestOpen: map[string]time.Time{}}
	sum := func(col prometheus.Collector) (n int64) {
		collect(col, func(m *dto.Metric) { n += int64(m.GetCounter().GetValue()) })
		return n
	}
	w := s.metrics.Worker
	c.Consumed, c.Durable, c.DeadLettered = sum(w.RecordsConsumed), sum(w.RecordsWritten), sum(w.DeadLetters)
	if cm := s.metrics.Completion; cm != nil {
		c.Markers = sum(cm.HoursCompleted)
		collect(cm.OldestOpenHour, func(m *dto.Metric) {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stream" && m.GetGauge().GetValue() > 0 {
					c.OldestOpen[l.GetValue()] = time.Unix(int64(m.GetGauge().GetValue()), 0)
				}
			}
		})
	}
	return c
}

// logProgress logs where the records are every every, until ctx ends.
func (s *Sink) logProgress(ctx context.Context, every time.Duration) {
	for retry.Sleep(ctx, every) {
		r := s.ops.Progress()
		attrs := []any{"consumed", r.Consumed, "in_lake", r.Durable, "in_open_files", r.Held,
			"dead_lettered", r.DeadLettered, "markers", r.Markers}
		if len(r.Open) > 0 {
			hours := make([]string, len(r.Open))
			for i, o := range r.Open {
				hours[i] = fmt.Sprintf("%s %s (%d records) until %s", o.Stream, o.Hour.Format(time.RFC3339), o.Records, o.Closes.Format(time.RFC3339))
			}
			attrs = append(attrs, "open_hours", hours)
		}
		if n := r.NextMarker; n != nil {
			attrs = append(attrs, "next_marker", fmt.Sprintf("%s %s after %s", n.Stream, n.Hour.Format(time.RFC3339), n.Due.Format(time.RFC3339)))
		}
		s.log.Info("progress", attrs...)
	}
}

// collect calls f with every metric c has now.
func collect(c prometheus.Collector, f func(*dto.Metric)) {
	ch := make(chan prometheus.Metric, 16)
	go func() { c.Collect(ch); close(ch) }()
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			f(&d)
		}
	}
}

// rebalanceStatus reads the rebalance counters for the status page.
func (s *Sink) rebalanceStatus() ops.RebalanceStatus {
	v := func(c prometheus.Counter) int64 {
		var m dto.Metric
		if err := c.Write(&m); err != nil {
			return 0
		}
		return int64(m.GetCounter().GetValue())
	}
	w := s.metrics.Worker
	return ops.RebalanceStatus{Generations: v(s.metrics.Rebalances), RecordsReplayed: v(w.RecordsReplayed),
		FilesKept: v(w.FilesKept), FilesAbandoned: v(w.FilesAbandoned)}
}

// topicPartition names a partition of a topic.
type topicPartition struct {
	topic     string
	partition int
}

// workerFor returns the worker of topic's partition in generation g: the
// last generation's worker when it kept its open files and the partition's
// commit has not changed since (worker.Worker.Resume), else a new one
// (abandoning the old one's files).
func (s *Sink) workerFor(ctx context.Context, prev map[topicPartition]*worker.Worker, topic string, partition int, g worker.Generation) (*worker.Worker, error) {
	if w := prev[topicPartition{topic, partition}]; w != nil && w.Parked() {
		delete(prev, topicPartition{topic, partition})
		ok, err := w.Resume(ctx, g)
		if err != nil {
			s.log.Warn("resume partition", "topic", topic, "partition", partition, "err", err)
		}
		if ok {
			return w, nil
		}
		w.Abandon()
	}
	return worker.New(s.env, s.byTopic[topic], topic, partition, g)
}

// heldPartitions is what this member holds for the sticky assignment's
// user data (kafkaio.Sticky.Owned): the partitions of its last generation,
// whose workers run or keep their files for the next one. Called by
// kafka-go's goroutine at every join.
func (s *Sink) heldPartitions() map[string][]int {
	if m := s.held.Load(); m != nil {
		return *m
	}
	return nil
}

// ensureTopics creates the dead-letter topic if it is missing. A broker that
// refuses (the topic may be managed elsewhere) is only a warning; a broker
// that cannot answer yet (just started, leadership moving) is retried with
// backoff, as a Kafka fault, until it answers or ctx ends.
func (s *Sink) ensureTopics(ctx context.Context) error {
	topic := s.cfg.DeadLetter.Topic
	err := retry.Until(ctx, retry.NewBackoff(200*time.Millisecond, 10*time.Second), func(ctx context.Context) error {
		err := s.admin.CreateTopic(ctx, topic)
		if errors.Is(err, kafkaio.ErrCreateRefused) {
			s.log.Warn("create dead-letter topic", "topic", topic, "err", err)
			return nil
		}
		return err
	}, func(_ int, err error) {
		s.ops.Health.Kafka(fmt.Errorf("create dead-letter topic %s: %w", topic, err))
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("create dead-letter topic %s: %w", topic, err)
	}
	return nil
}

// oneLine folds a multi-line log message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
