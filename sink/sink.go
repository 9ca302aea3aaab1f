package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/registry"
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
	// on the status page (see LogRing.Handler).
	RecentLogs *LogRing
}

// stream is a configured stream, compiled for the hot path.
type stream struct {
	name     string
	topics   []string
	loc      *time.Location
	lateness time.Duration
	late     config.LatePolicy
	path     *partitioner.PathTemplate
	schema   *partitioner.Schema // nil when columns come from each writer schema
	spec     decode.Spec
	// format is json, avro or protobuf; cspec is the decoder spec of the
	// last two (formats.go).
	format config.StreamFormat
	cspec  confluent.Spec
	infer  *inferSpec // schema: infer (infer.go); else nil
}

// Sink moves records of every configured stream from Kafka into the lake and
// finalizes hours. Create with New, run with Run.
type Sink struct {
	cfg     *config.Config
	writer  writers.Writer
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	dialer  *kafka.Dialer
	client  *kafka.Client
	dlqW    *kafka.Writer

	streams     []*stream
	byTopic     map[string]*stream
	topics      []string
	startOffset int64
	fileOpts    partitioner.FileOptions

	maxFileBytes   int64
	idleTimeout    time.Duration
	commitInterval time.Duration
	tick           time.Duration

	health health
	mem    memBudget
	ops    ops // status page, lag and stall state (status.go)

	// schemas is the schema registry client, shared by the workers of
	// every avro and protobuf stream; nil without such streams.
	schemas   *registry.Client
	regHealth registryHealth
}

// New checks the configuration and builds a Sink. It does not connect yet.
func New(opts Options) (*Sink, error) {
	cfg := opts.Config
	if cfg == nil || opts.Writer == nil {
		return nil, errors.New("sink: config and writer are required")
	}
	s := &Sink{
		cfg:            cfg,
		writer:         opts.Writer,
		log:            opts.Logger,
		now:            opts.Clock,
		dialer:         opts.Dialer,
		byTopic:        map[string]*stream{},
		maxFileBytes:   int64(cfg.Files.MaxFileBytes),
		idleTimeout:    time.Duration(cfg.Markers.IdlePartitionTimeout),
		commitInterval: time.Duration(cfg.Kafka.CommitInterval),
		tick:           opts.Tick,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.dialer == nil {
		s.dialer = kafka.DefaultDialer
	}
	if s.tick <= 0 {
		s.tick = 200 * time.Millisecond
	}
	s.ops.logs = opts.RecentLogs
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = NewMetrics(reg)
	s.mem.limit = int64(cfg.Files.MemoryLimit)
	s.startOffset = kafka.FirstOffset
	if cfg.Kafka.StartOffset == config.StartLatest {
		s.startOffset = kafka.LastOffset
	}
	s.fileOpts = partitioner.FileOptions{
		Compression:   string(cfg.Files.Compression),
		RowGroupBytes: int64(cfg.Files.RowGroupBytes),
	}
	tmpl, err := partitioner.ParsePathTemplate(cfg.Partitioning.Path)
	if err != nil {
		return nil, fmt.Errorf("partitioning.path: %w", err)
	}
	if s.schemas, err = newRegistryClient(cfg); err != nil {
		return nil, err
	}
	if s.schemas != nil {
		for _, r := range confluent.Reasons() {
			s.metrics.DeadLetters.WithLabelValues(string(r))
		}
	}
	for i, sc := range cfg.Streams {
		st, err := compileStream(sc, tmpl, int(cfg.Kafka.MaxRecordBytes), s.schemas)
		if err != nil {
			return nil, fmt.Errorf("streams[%d]: %w", i, err)
		}
		s.streams = append(s.streams, st)
		for _, t := range st.topics {
			s.byTopic[t] = st
			s.topics = append(s.topics, t)
		}
	}
	transport := &kafka.Transport{Dial: s.dialer.DialFunc, ClientID: cfg.Kafka.ClientID, TLS: s.dialer.TLS, SASL: s.dialer.SASLMechanism}
	s.client = &kafka.Client{Addr: kafka.TCP(cfg.Kafka.Brokers...), Timeout: 10 * time.Second, Transport: transport}
	s.dlqW = &kafka.Writer{
		Addr:         kafka.TCP(cfg.Kafka.Brokers...),
		Topic:        cfg.DeadLetter.Topic,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		Transport:    transport,
		Balancer:     &kafka.Hash{},
	}
	return s, nil
}

func compileStream(sc config.Stream, tmpl *partitioner.PathTemplate, maxBytes int, schemas *registry.Client) (*stream, error) {
	if sc.Format.UsesRegistry() {
		return compileRegistryStream(sc, tmpl, maxBytes, schemas)
	}
	if sc.InferSchema {
		return compileInferStream(sc, tmpl, maxBytes)
	}
	cols, err := sc.Columns()
	if err != nil {
		return nil, err
	}
	schema, err := partitioner.NewSchema(sc.Name, cols)
	if err != nil {
		return nil, err
	}
	spec := decode.Spec{TimePath: sc.Time.Field, MaxBytes: maxBytes}
	if sc.Time.Field != "" {
		if spec.TimeFormat, err = decode.ParseTimeFormat(string(sc.Time.Format)); err != nil {
			return nil, fmt.Errorf("time.format: %w", err)
		}
	}
	for i, f := range sc.Schema {
		spec.Fields = append(spec.Fields, decode.Field{Column: cols[i], Path: f.Path})
	}
	st := newStream(sc, tmpl)
	st.schema, st.spec = schema, spec
	return st, nil
}

// newStream fills what every stream takes from its config the same way,
// whatever its format; the compile functions add schema and decoder specs.
func newStream(sc config.Stream, tmpl *partitioner.PathTemplate) *stream {
	return &stream{
		name:     sc.Name,
		topics:   sc.Topics,
		loc:      sc.Location(),
		lateness: time.Duration(sc.AllowedLateness),
		late:     sc.LatePolicy,
		path:     tmpl,
		format:   sc.Format,
	}
}

// Metrics returns the sink's collectors.
func (s *Sink) Metrics() *Metrics { return s.metrics }

type genInfo struct {
	id         int
	member     string
	partitions int // partitions this member owns in the generation
}

// Run consumes until ctx is cancelled, then shuts down gracefully: open files
// are finished, uploaded and committed (within the configured
// shutdown_timeout), then the group is left. Run returns nil after a clean
// shutdown.
func (s *Sink) Run(ctx context.Context) error {
	if err := s.ensureTopics(ctx); err != nil {
		return err
	}
	defer s.dlqW.Close()

	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    s.cfg.Kafka.GroupID,
		Brokers:               s.cfg.Kafka.Brokers,
		Dialer:                s.dialer,
		Topics:                s.topics,
		StartOffset:           s.startOffset,
		WatchPartitionChanges: true,
		HeartbeatInterval:     time.Duration(s.cfg.Kafka.HeartbeatInterval),
		SessionTimeout:        time.Duration(s.cfg.Kafka.SessionTimeout),
		RebalanceTimeout:      time.Duration(s.cfg.Kafka.RebalanceTimeout),
		JoinGroupBackoff:      time.Second,
		Logger:                kafka.LoggerFunc(func(f string, a ...any) { s.log.Debug(fmt.Sprintf(f, a...)) }),
		ErrorLogger:           kafka.LoggerFunc(func(f string, a ...any) { s.log.Warn(fmt.Sprintf(f, a...)) }),
	})
	if err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}

	var bg sync.WaitGroup
	fctx, stopFinalizer := context.WithCancel(context.Background())
	if s.cfg.Markers.Enabled {
		f := newFinalizer(s)
		bg.Add(1)
		go func() { defer bg.Done(); f.run(fctx) }()
	}

	drain := make(chan struct{})
	var drainOnce sync.Once
	// workersDone counts running workers; active those that have not yet
	// drained (finished, uploaded and committed) or exited.
	var workersDone, active sync.WaitGroup
	go func() {
		<-ctx.Done()
		drainOnce.Do(func() { close(drain) })
	}()

	var runErr error
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, kafka.ErrGroupClosed) {
				s.log.Warn("join group", "err", err)
				s.health.setJoined(false, err.Error())
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
					continue
				}
			}
			break
		}
		s.metrics.Rebalances.Inc()
		n := 0
		for _, as := range gen.Assignments {
			n += len(as)
		}
		s.metrics.AssignedPartitions.Set(float64(n))
		s.health.setJoined(true, "")
		s.log.Info("group joined", "generation", gen.ID, "member", gen.MemberID, "partitions", n)
		gi := genInfo{id: int(gen.ID), member: gen.MemberID, partitions: n}
		for topic, as := range gen.Assignments {
			st := s.byTopic[topic]
			for _, a := range as {
				w, err := s.newWorker(st, topic, a.ID, gi)
				if err != nil {
					runErr = err
					break
				}
				workersDone.Add(1)
				active.Add(1)
				var once sync.Once
				gen.Start(func(gctx context.Context) {
					defer workersDone.Done()
					drained := func() { once.Do(active.Done) }
					defer drained()
					if err := w.run(gctx, drain, drained); err != nil && gctx.Err() == nil {
						w.log.Error("partition worker stopped", "err", err)
						s.health.setError(fmt.Sprintf("%s/%d: %v", topic, a.ID, err))
					}
				})
			}
		}
		if runErr != nil || ctx.Err() != nil {
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
	s.health.setJoined(false, "shut down")
	return runErr
}

// ensureTopics creates the dead-letter topic if it is missing.
func (s *Sink) ensureTopics(ctx context.Context) error {
	topics := []string{s.cfg.DeadLetter.Topic}
	resp, err := s.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topics[0], NumPartitions: 1, ReplicationFactor: -1}},
	})
	if err != nil {
		return fmt.Errorf("create dead-letter topic %s: %w", topics[0], err)
	}
	if e := resp.Errors[topics[0]]; e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
		// Not fatal: the topic may be managed elsewhere and creation denied.
		s.log.Warn("create dead-letter topic", "topic", topics[0], "err", e)
	}
	return nil
}

// fetchCommitted returns the group's committed offset of a partition (-1 if
// none) and its commit metadata.
func (s *Sink) fetchCommitted(ctx context.Context, topic string, partition int) (int64, commitMeta, error) {
	resp, err := s.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		GroupID: s.cfg.Kafka.GroupID, Topics: map[string][]int{topic: {partition}},
	})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		return 0, commitMeta{}, fmt.Errorf("offset fetch %s/%d: %w", topic, partition, err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Partition != partition {
			continue
		}
		if p.Error != nil {
			return 0, commitMeta{}, fmt.Errorf("offset fetch %s/%d: %w", topic, partition, p.Error)
		}
		meta, _, err := parseCommitMeta(p.Metadata)
		if err != nil {
			s.log.Warn("ignoring foreign commit metadata", "topic", topic, "partition", partition, "err", err)
		}
		return p.CommittedOffset, meta, nil
	}
	return -1, commitMeta{WM: math.MinInt64, RW: math.MinInt64}, nil
}

// commitOffset commits one partition's offset with metadata, in the given
// generation. Kafka refuses commits from a stale generation, which is what
// fences off a worker whose partition has been given to another member.
func (s *Sink) commitOffset(ctx context.Context, genID int, member, topic string, partition int, offset int64, meta string) error {
	resp, err := s.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID:      s.cfg.Kafka.GroupID,
		GenerationID: genID,
		MemberID:     member,
		Topics:       map[string][]kafka.OffsetCommit{topic: {{Partition: partition, Offset: offset, Metadata: meta}}},
	})
	if err != nil {
		return fmt.Errorf("offset commit %s/%d: %w", topic, partition, err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return fmt.Errorf("offset commit %s/%d: %w", topic, partition, p.Error)
		}
	}
	return nil
}

func isGenerationError(err error) bool {
	return errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.UnknownMemberId) ||
		errors.Is(err, kafka.RebalanceInProgress) || errors.Is(err, kafka.FencedInstanceID)
}

// upload puts a finished spool file into the lake, retrying with capped
// exponential backoff and jitter until it succeeds or ctx ends. The partition
// waits meanwhile: nothing is committed past records that are not durable.
func (s *Sink) upload(ctx context.Context, key, path string, size int64, log *slog.Logger) error {
	wait := newBackoff(100*time.Millisecond, 10*time.Second)
	for attempt := 1; ; attempt++ {
		err := s.putFile(ctx, key, path, size)
		if err == nil {
			if attempt > 1 {
				s.health.setStorage(true, "")
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.metrics.UploadRetries.Inc()
		s.health.setStorage(false, err.Error())
		log.Warn("upload failed, retrying", "key", key, "attempt", attempt, "err", err)
		if !sleepCtx(ctx, wait.next()) {
			return ctx.Err()
		}
	}
}

func (s *Sink) putFile(ctx context.Context, key, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open spool file: %w", err)
	}
	defer f.Close()
	if err := s.writer.Put(ctx, key, f, size); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// health is the state /readyz reports.
type health struct {
	mu         sync.Mutex
	joined     bool
	joinReason string
	storageOK  atomic.Bool
	storageErr string
	lastErr    string
	dlqOK      bool
	dlqErr     string
	init       sync.Once
}

func (h *health) setup() {
	h.init.Do(func() { h.storageOK.Store(true); h.dlqOK = true })
}

func (h *health) setJoined(ok bool, reason string) {
	h.setup()
	h.mu.Lock()
	h.joined, h.joinReason = ok, reason
	h.mu.Unlock()
}

func (h *health) setStorage(ok bool, reason string) {
	h.setup()
	h.mu.Lock()
	h.storageOK.Store(ok)
	h.storageErr = reason
	h.mu.Unlock()
}

func (h *health) setDLQ(ok bool, reason string) {
	h.setup()
	h.mu.Lock()
	h.dlqOK, h.dlqErr = ok, reason
	h.mu.Unlock()
}

func (h *health) setError(reason string) {
	h.mu.Lock()
	h.lastErr = reason
	h.mu.Unlock()
}

// Readiness reports whether the sink is ready and, if not, why.
func (s *Sink) Readiness() (bool, []string) {
	h := &s.health
	h.setup()
	h.mu.Lock()
	defer h.mu.Unlock()
	var reasons []string
	if !h.joined {
		r := "consumer group not joined"
		if h.joinReason != "" {
			r += ": " + h.joinReason
		}
		reasons = append(reasons, r)
	}
	if !h.storageOK.Load() {
		reasons = append(reasons, "storage unreachable: "+h.storageErr)
	}
	if !h.dlqOK {
		reasons = append(reasons, "dead-letter topic unavailable: "+h.dlqErr)
	}
	reasons = append(reasons, s.regHealth.reasons()...)
	reasons = append(reasons, s.stalls()...)
	return len(reasons) == 0, reasons
}
