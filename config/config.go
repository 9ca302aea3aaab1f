package config

import (
	"log/slog"
	"time"
)

// Config is the whole lakesink configuration. The yaml tags are the config
// file's keys; docs/configuration.md lists them. Get one from Default, Parse or Load; a
// Config is plain data and safe to share once nobody writes to it.
type Config struct {
	Kafka        Kafka        `yaml:"kafka"`
	Streams      []Stream     `yaml:"streams"`
	Partitioning Partitioning `yaml:"partitioning"`
	Files        Files        `yaml:"files"`
	Storage      Storage      `yaml:"storage"`
	Markers      Markers      `yaml:"markers"`
	DeadLetter   DeadLetter   `yaml:"dead_letter"`
	HTTP         HTTP         `yaml:"http"`
	Log          Log          `yaml:"log"`
	// SchemaRegistry is where avro, protobuf and json_schema streams find
	// their writer schemas (and json_schema streams with a subject the
	// subject's latest one); required when a stream has one of those
	// formats.
	SchemaRegistry SchemaRegistry `yaml:"schema_registry"`
	// ShutdownTimeout bounds a graceful shutdown (flush, upload, commit).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// Kafka configures the consumer group.
type Kafka struct {
	Brokers  []string `yaml:"brokers"` // no default: at least one is required
	ClientID string   `yaml:"client_id"`
	GroupID  string   `yaml:"group_id"`
	// StartOffset applies to partitions without a committed offset.
	StartOffset StartOffset `yaml:"start_offset"`
	// MaxRecordBytes: records with a larger value go to the dead-letter topic.
	MaxRecordBytes Size `yaml:"max_record_bytes"`
	// CommitInterval is how often durable progress is committed to Kafka.
	CommitInterval Duration `yaml:"commit_interval"`
	// SessionTimeout: a member silent this long (crashed, partitioned) is
	// removed from the group and its partitions reassigned.
	SessionTimeout Duration `yaml:"session_timeout"`
	// HeartbeatInterval is how often a member tells the coordinator it lives.
	HeartbeatInterval Duration `yaml:"heartbeat_interval"`
	// RebalanceTimeout bounds how long members have to rejoin in a rebalance.
	RebalanceTimeout Duration `yaml:"rebalance_timeout"`
	// StartupTimeout bounds how long `lakesink run` waits for the brokers
	// at start-up before it exits with an error; 0 (the default) waits as
	// long as it takes. Why wait at all: a Kafka maintenance window during
	// a rollout should not become a crash loop; /readyz says why meanwhile.
	StartupTimeout Duration `yaml:"startup_timeout"`
	// Assignor is how the group assigns partitions: sticky (each member
	// keeps its partitions and their open files across a rebalance, as far
	// as balance allows) or range (kafka-go's range assignment; every
	// rebalance throws every open file away, as lakesink did before).
	Assignor Assignor `yaml:"assignor"`
	TLS      TLS      `yaml:"tls"`
	SASL     SASL     `yaml:"sasl"`
}

// Assignor names a partition assignment strategy.
type Assignor string

// Assignors.
const (
	AssignSticky Assignor = "sticky"
	AssignRange  Assignor = "range"
)

// StartOffset is where a partition without a committed offset starts.
type StartOffset string

// Start offsets.
const (
	StartEarliest StartOffset = "earliest"
	StartLatest   StartOffset = "latest"
)

// TLS configures TLS to the brokers. Empty file names mean the system roots
// (CAFile) and no client certificate (CertFile, KeyFile: both or neither).
type TLS struct {
	Enabled  bool   `yaml:"enabled"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// SASL configures SASL authentication; an empty Mechanism disables it.
// Password is a secret: see Config.Redacted.
type SASL struct {
	Mechanism SASLMechanism `yaml:"mechanism"`
	Username  string        `yaml:"username"`
	Password  string        `yaml:"password"`
}

// SASLMechanism names a SASL mechanism; "" means no SASL.
type SASLMechanism string

// SASL mechanisms.
const (
	SASLNone        SASLMechanism = ""
	SASLPlain       SASLMechanism = "PLAIN"
	SASLScramSHA256 SASLMechanism = "SCRAM-SHA-256"
	SASLScramSHA512 SASLMechanism = "SCRAM-SHA-512"
)

// Stream maps Kafka topics to one lake table.
type Stream struct {
	// Name is the table name: a path segment and metric label, so limited to
	// letters, digits, '.', '_' and '-', starting with a letter or digit.
	Name   string     `yaml:"name"`
	Topics []string   `yaml:"topics"`
	Time   StreamTime `yaml:"time"`
	// AllowedLateness is how long after an hour's end records for it are
	// still waited for before its marker is written. Zero is allowed.
	AllowedLateness Duration `yaml:"allowed_lateness"`
	// LatePolicy says what happens to a record for an hour whose marker is
	// already out.
	LatePolicy LatePolicy `yaml:"late_policy"`
	// Format is how record values are serialized. With avro and protobuf
	// the Schema list is optional: without it the columns are derived from
	// each record's writer schema in the schema registry.
	Format StreamFormat   `yaml:"format"`
	Schema []SchemaColumn `yaml:"schema"`
	// InferSchema is set by `schema: infer` (format json only): the
	// columns are inferred from the first InferSample records of each
	// file, best effort (docs/formats.md, "Schemaless JSON"). Schema is then empty.
	InferSchema bool `yaml:"-"`
	// InferSample is how many records of each new file are sampled to
	// infer its columns, with schema: infer.
	InferSample int `yaml:"infer_sample"`
	// Subject, with format json_schema only, is the registry subject whose
	// latest version reads values that come as plain JSON, without the
	// Confluent header. Empty: such values go to the dead-letter topic
	// (bad_magic).
	Subject string `yaml:"subject"`
	// Table, when set, commits the stream's files to an Apache Iceberg
	// table too (table.go, docs/iceberg.md).
	Table *Table `yaml:"table"`
	// Compaction merges each completed hour's small files before its
	// marker (compaction.go, docs/compaction.md).
	Compaction Compaction `yaml:"compaction"`
}

// StreamFormat is the serialization of a stream's record values.
type StreamFormat string

// Stream formats.
const (
	FormatJSON     StreamFormat = "json"     // JSON objects, columns from the schema list
	FormatAvro     StreamFormat = "avro"     // Confluent wire format: magic byte, schema id, Avro binary
	FormatProtobuf StreamFormat = "protobuf" // Confluent wire format: magic byte, schema id, message indexes, Protobuf
	// FormatJSONSchema is JSON text with a JSON Schema in the registry:
	// Confluent-framed (magic byte, schema id, JSON) or, with
	// Stream.Subject, plain JSON read with the subject's latest schema.
	FormatJSONSchema StreamFormat = "json_schema"
)

// UsesRegistry reports whether the format reads schemas from the schema
// registry.
func (f StreamFormat) UsesRegistry() bool {
	return f == FormatAvro || f == FormatProtobuf || f == FormatJSONSchema
}

// StreamTime says where a record's event time comes from. With an empty
// Field the Kafka record timestamp is used (and Format must be empty).
type StreamTime struct {
	// Field is a dot-separated JSON path in the record ("ts", "meta.time").
	Field  string     `yaml:"field"`
	Format TimeFormat `yaml:"format"`
	// Timezone is an IANA zone name; hour folders are cut in this zone.
	Timezone string `yaml:"timezone"`
}

// TimeFormat is how the time field is written in the record.
type TimeFormat string

// Time formats.
const (
	TimeUnixMillis  TimeFormat = "unix_ms" // JSON number, milliseconds since the epoch
	TimeUnixSeconds TimeFormat = "unix_s"  // JSON number, seconds since the epoch (may have a fraction)
	TimeRFC3339     TimeFormat = "rfc3339" // JSON string, RFC 3339 with optional fraction
)

// LatePolicy is what is done with a record for an already completed hour.
type LatePolicy string

// Late policies.
const (
	// LateAmend writes the record into its hour as a new file and rewrites
	// the manifest with revision+1 (docs/design.md, "Late data and revisions").
	LateAmend LatePolicy = "amend"
	// LateDeadLetter sends the record to the dead-letter topic.
	LateDeadLetter LatePolicy = "dead_letter"
	// LateCurrentHour files the record under the hour that is open now.
	LateCurrentHour LatePolicy = "current_hour"
)

// SchemaRegistry is a Confluent-compatible Schema Registry. Password is a
// secret: see Config.Redacted.
type SchemaRegistry struct {
	// URL is the base URL, e.g. "https://registry:8081"; empty means none.
	URL      string `yaml:"url"`
	Username string `yaml:"username"` // basic auth; empty means none
	Password string `yaml:"password"`
	// Timeout bounds one registry request. Schemas are cached, so requests
	// happen only for schema ids not seen before.
	Timeout Duration    `yaml:"timeout"`
	TLS     RegistryTLS `yaml:"tls"`
}

// RegistryTLS configures TLS for an https schema registry URL. Empty file
// names mean the system roots (CAFile) and no client certificate (CertFile,
// KeyFile: both or neither).
type RegistryTLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // for tests only
}

// SchemaColumn is one column of a stream's table.
type SchemaColumn struct {
	Name string `yaml:"name"`
	// Path is the dot-separated JSON path of the value in the record; empty
	// means Name. Keys that themselves contain '.' cannot be addressed.
	Path string `yaml:"path"`
	// Type is one of partitioner.TypeNames.
	Type     string `yaml:"type"`
	Required bool   `yaml:"required"`
}

// Partitioning configures the lake folder layout.
type Partitioning struct {
	// Path is the hour folder template, relative to the storage root, with
	// placeholders {stream} {yyyy} {MM} {dd} {HH}.
	Path string `yaml:"path"`
}

// Files configures the Parquet files.
type Files struct {
	Compression   Compression `yaml:"compression"`
	MaxFileBytes  Size        `yaml:"max_file_bytes"`
	RowGroupBytes Size        `yaml:"row_group_bytes"`
	SpoolDir      string      `yaml:"spool_dir"`
	// MemoryLimit bounds buffered rows across all partitions and hours.
	MemoryLimit Size `yaml:"memory_limit"`
	// MaxFileAge finishes an open file this long after it was opened (wall
	// clock): what a crash or a moved partition re-reads, and how far the
	// group's committed offsets lag, is bounded by it. 0: off.
	MaxFileAge Duration `yaml:"max_file_age"`
}

// Compression is a Parquet compression codec.
type Compression string

// Compression codecs.
const (
	CompressionZstd   Compression = "zstd"
	CompressionSnappy Compression = "snappy"
	CompressionGzip   Compression = "gzip"
	CompressionNone   Compression = "none"
)

// Storage selects and configures the lake backend. Only the block named by
// Type is used and validated, with the backend's own rules (S3Storage.Backend
// and the like are what the backend gets; storage.go).
type Storage struct {
	Type StorageType `yaml:"type"`
	// Timeout bounds each storage call; an upload gets Timeout plus the
	// time to send its bytes at 1 MiB/s. A call past it fails and is
	// retried like any other failure.
	Timeout Duration     `yaml:"timeout"`
	Local   LocalStorage `yaml:"local"`
	S3      S3Storage    `yaml:"s3"`
	GCS     GCSStorage   `yaml:"gcs"`
	HDFS    HDFSStorage  `yaml:"hdfs"`
}

// StorageType names a storage backend.
type StorageType string

// Storage types.
const (
	StorageLocal StorageType = "local"
	StorageS3    StorageType = "s3"
	StorageGCS   StorageType = "gcs"
	StorageHDFS  StorageType = "hdfs"
)

// LocalStorage is a lake on a local (or mounted) file system.
type LocalStorage struct {
	Root string `yaml:"root"`
}

// S3Storage is a lake in an S3 bucket. Credentials are the static keys when
// set, else the AWS SDK's default chain (environment, shared files, instance
// roles). SecretAccessKey and SessionToken are secrets: see Config.Redacted.
type S3Storage struct {
	Bucket         string `yaml:"bucket"`
	Prefix         string `yaml:"prefix"`
	Region         string `yaml:"region"`
	Endpoint       string `yaml:"endpoint"` // for S3-compatible servers; empty means AWS
	ForcePathStyle bool   `yaml:"force_path_style"`

	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
	// SSE is server-side encryption: "", "AES256" or "aws:kms" (with
	// SSEKMSKeyID, or the bucket's default key).
	SSE          string `yaml:"sse"`
	SSEKMSKeyID  string `yaml:"sse_kms_key_id"`
	StorageClass string `yaml:"storage_class"` // "" = the bucket's default
	// PartSize is the multipart part size; files up to it go in one PUT.
	PartSize    Size `yaml:"part_size"`
	Concurrency int  `yaml:"concurrency"` // parts in flight per upload
}

// GCSStorage is a lake in a Google Cloud Storage bucket. Credentials come
// from CredentialsFile when set, else Application Default Credentials.
type GCSStorage struct {
	Bucket          string `yaml:"bucket"`
	Prefix          string `yaml:"prefix"`
	Endpoint        string `yaml:"endpoint"` // empty means Google's
	CredentialsFile string `yaml:"credentials_file"`
	// ChunkSize is the resumable-upload chunk size; smaller files go in one
	// request.
	ChunkSize Size `yaml:"chunk_size"`
}

// HDFSStorage is a lake in HDFS.
type HDFSStorage struct {
	Namenodes []string `yaml:"namenodes"` // host:port
	User      string   `yaml:"user"`
	Root      string   `yaml:"root"` // absolute
}

// Markers configures hour completion markers.
type Markers struct {
	// Enabled turns the finalizer (manifests, events, webhooks) on.
	Enabled bool `yaml:"enabled"`
	// IdlePartitionTimeout: a partition without new records for this long
	// counts as caught up (docs/design.md, "Idle partitions").
	IdlePartitionTimeout Duration `yaml:"idle_partition_timeout"`
	// CheckInterval is how often the finalizer looks for completed hours.
	CheckInterval Duration `yaml:"check_interval"`
	// KafkaTopic receives a completion event per hour; empty means none.
	KafkaTopic string  `yaml:"kafka_topic"`
	Webhook    Webhook `yaml:"webhook"`
}

// Webhook is an HTTP POST per completed hour; an empty URL disables it.
// Header values are secrets (tokens): see Config.Redacted.
type Webhook struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	// Body is a Go text/template over the completion event
	// (completion.Event) rendering the request body; empty means the event
	// as JSON (completion.DefaultWebhookBody). Airflow's POST
	// /api/v2/assets/events needs a body naming the asset_id
	// (docs/airflow.md).
	Body string `yaml:"body"`
	// Timeout bounds one delivery attempt; failed attempts are retried with
	// exponential backoff and jitter until they succeed.
	Timeout Duration `yaml:"timeout"`
}

// DeadLetter configures where undecodable records go.
type DeadLetter struct {
	Topic string `yaml:"topic"`
}

// HTTP configures the health, metrics and status endpoints.
type HTTP struct {
	Listen string `yaml:"listen"`
	// CommitStallTimeout: /readyz fails when a partition with lag has not
	// advanced its commit (offset or watermark metadata) for this long while
	// its lag grows, or its worker has not reported for this long.
	CommitStallTimeout Duration `yaml:"commit_stall_timeout"`
	// HealthCheckInterval is how often storage and the dead-letter topic are
	// probed for /readyz.
	HealthCheckInterval Duration `yaml:"health_check_interval"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | text
}

// SlogLevel maps Level to a slog.Level; unknown levels map to Info.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// DefaultPartitionPath is the default partitioning.path: Hive style.
const DefaultPartitionPath = "{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}"

// Default returns a Config with every default filled in. It has no brokers
// and no streams, so it does not pass Validate on its own. Each call returns
// a fresh copy.
func Default() *Config {
	return &Config{
		Kafka: Kafka{
			ClientID:          "lakesink",
			GroupID:           "lakesink",
			StartOffset:       StartEarliest,
			MaxRecordBytes:    1 * MiB,
			CommitInterval:    Duration(time.Second),
			SessionTimeout:    Duration(10 * time.Second),
			HeartbeatInterval: Duration(time.Second),
			RebalanceTimeout:  Duration(30 * time.Second),
			Assignor:          AssignSticky,
		},
		Partitioning: Partitioning{Path: DefaultPartitionPath},
		Files: Files{
			Compression:   CompressionZstd,
			MaxFileBytes:  256 * MiB,
			RowGroupBytes: 64 * MiB,
			SpoolDir:      "/var/lib/lakesink/spool",
			MemoryLimit:   512 * MiB,
		},
		Storage: Storage{
			Type:    StorageLocal,
			Timeout: Duration(time.Minute),
			Local:   LocalStorage{Root: "./lake"},
			S3:      S3Storage{PartSize: 16 * MiB, Concurrency: 4},
			GCS:     GCSStorage{ChunkSize: 16 * MiB},
			HDFS:    HDFSStorage{Root: "/lake"},
		},
		Markers: Markers{
			Enabled:              true,
			IdlePartitionTimeout: Duration(5 * time.Minute),
			CheckInterval:        Duration(10 * time.Second),
			Webhook:              Webhook{Timeout: Duration(10 * time.Second)},
		},
		DeadLetter: DeadLetter{Topic: "lakesink-dlq"},
		HTTP: HTTP{
			Listen:              ":8080",
			CommitStallTimeout:  Duration(5 * time.Minute),
			HealthCheckInterval: Duration(10 * time.Second),
		},
		Log:             Log{Level: "info", Format: "json"},
		SchemaRegistry:  SchemaRegistry{Timeout: Duration(10 * time.Second)},
		ShutdownTimeout: Duration(30 * time.Second),
	}
}

// DefaultStream returns a Stream with its defaults (UTC, 10m lateness, amend,
// json); every element of the config's streams list is decoded over it.
func DefaultStream() Stream {
	return Stream{
		Time:            StreamTime{Timezone: "UTC"},
		AllowedLateness: Duration(10 * time.Minute),
		LatePolicy:      LateAmend,
		Format:          FormatJSON,
		InferSample:     DefaultInferSample,
		Compaction:      DefaultCompaction(),
	}
}
