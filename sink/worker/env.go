package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/sink/tables"
	"github.com/lakesink/lakesink/writers"
)

// Env is what every partition worker of a process shares. The sink builds
// one and passes it to New for each assigned partition; workers only read
// it (Budget and the metrics are safe for concurrent use).
type Env struct {
	// Writer is the lake; workers never close it.
	Writer writers.Writer
	// Offsets reads and commits the group's offsets.
	Offsets Offsets
	// DeadLetters produces to the dead-letter topic DeadLetterTopic.
	DeadLetters     Producer
	DeadLetterTopic string
	// Markers answers whether an hour's marker lists a late file; nil when
	// markers are disabled.
	Markers Markers
	// Health and Progress are told what the workers see (package ops).
	Health   Health
	Progress func(Progress)
	Budget   *Budget
	Metrics  *Metrics
	Log      *slog.Logger
	// Now is the wall clock: idle detection, commit pacing, late-file
	// checks. Event time always comes from the records.
	Now func() time.Time

	// Fetching: the dialer (TLS, SASL), the brokers, where a partition
	// without a commit starts (kafka.FirstOffset or kafka.LastOffset), and
	// the partition leaders shared by the process's fetchers (nil: each
	// fetcher looks its leader up itself).
	Dialer      *kafka.Dialer
	Brokers     []string
	StartOffset int64
	Leaders     *kafkaio.Leaders

	GroupID      string
	SpoolDir     string // the process's own spool folder (package spool); each partition gets <topic>-<partition> below it
	FileOptions  partitioner.FileOptions
	MaxFileBytes int64
	MaxFileAge   time.Duration // files.max_file_age; 0: off
	// KeepFiles: a worker whose generation ends keeps its open files for
	// the next one (keep.go); the sink sets it with sticky assignment.
	KeepFiles      bool
	IdleTimeout    time.Duration // markers.idle_partition_timeout
	CommitInterval time.Duration // kafka.commit_interval
	CheckInterval  time.Duration // markers.check_interval: how often a late file's marker is looked at
	Tick           time.Duration // housekeeping interval
}

// Offsets reads and commits a group's offsets (kafkaio.Admin implements it).
type Offsets interface {
	// Committed returns the committed offset (-1: none) and its metadata.
	Committed(ctx context.Context, topic string, partition int) (int64, string, error)
	// Commit commits in a generation; Kafka refuses stale generations.
	Commit(ctx context.Context, generation int, member, topic string, partition int, offset int64, metadata string) error
}

// Table is a stream's Iceberg table (tables.Table implements it); see
// package tables for the protocol. Safe for concurrent use.
type Table interface {
	// Columns are the stream's columns with the table's field ids (none
	// for columns derived from writer schemas).
	Columns() []partitioner.Column
	// Evolve makes the table take a file with cols (derived from a writer
	// schema) and returns them with the table's field ids;
	// tables.ErrIncompatible if it cannot.
	Evolve(ctx context.Context, cols []partitioner.Column) ([]partitioner.Column, error)
	// Claim makes owner the partition's writer and returns its progress
	// in the table (found false: none).
	Claim(ctx context.Context, owner tables.Owner) (tables.Entry, bool, error)
	// Prepare reads the statistics of an uploaded file from its spool copy.
	Prepare(ctx context.Context, spool, key string) (tables.File, error)
	// Commit adds files with the partition's progress once they are
	// durable (offset, meta); tables.ErrFenced if owner lost its claim.
	Commit(ctx context.Context, owner tables.Owner, files []tables.File, offset int64, meta ledger.Meta) error
}

// Producer writes records to a topic (a *kafka.Writer); WriteMessages
// returns once they are accepted.
type Producer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Markers tells a worker about published hour markers (completion.Markers
// implements it). See late.go for why a worker asks.
type Markers interface {
	// Lists returns the latest revision of the hour's marker (0: none)
	// and whether it lists the file of topic/partition starting at first.
	Lists(ctx context.Context, stream string, hour time.Time, topic string, partition int, first int64) (int, bool, error)
	// Sent reports whether revision n's completion events were delivered.
	Sent(ctx context.Context, stream string, hour time.Time, n int) (bool, error)
}

// Health receives the state of the write path as the workers see it, for
// readiness (ops.Health implements it). Calls come from many workers at
// once.
//
// The worker reports every failure as it happens; Health decides what to
// log (a fault once when it starts, rarely while it lasts, once when it
// clears) and what readiness says.
type Health interface {
	// Kafka reports a fetch or commit-offset read: err nil when it worked.
	Kafka(err error)
	// Upload reports an upload of one file with its retries: attempt
	// after each try (err nil: it succeeded), end once it returns, done or
	// abandoned. Only a successful upload clears a fault that uploads
	// raised (ops.Health: not the write probe, whose tiny object a lake
	// may take while it refuses every data file).
	Upload() (attempt func(err error), end func())
	// Spool reports a write to the spool disk: err nil when it worked.
	Spool(err error)
	// Catalog reports a commit to stream's table: err nil when it worked.
	Catalog(stream string, err error)
	// DeadLetters reports a write to the dead-letter topic likewise.
	DeadLetters(err error)
	// RegistryWait reports a partition that waits for the schema registry
	// with err; update reports a later error, end that it stopped waiting.
	RegistryWait(err error) (update func(error), end func())
	// WorkerStopped reports a worker that stopped with err and will run
	// again after a backoff; WorkerStarted that it runs again.
	WorkerStopped(topic string, partition int, err error)
	WorkerStarted(topic string, partition int)
}

// Progress is what a worker reports after each commit attempt.
type Progress struct {
	Stream     string
	Topic      string
	Partition  int
	Generation int
	Committed  int64 // the committed offset
	High       int64 // the partition's high watermark, as last fetched
	Meta       ledger.Meta
	// Open are the records in the partition's open files per hour start
	// (unix ms): read, not yet in the lake.
	Open map[int64]int64
}
