package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/partitioner"
)

// testEnv is the environment the testdata files are parsed with.
var testEnv = map[string]string{
	"KAFKA_PASSWORD":         "s3cr3t-kafka",
	"AIRFLOW_TOKEN":          "tok-airflow",
	"LAKESINK_TEST_BROKER":   "kafka-env:9092",
	"LAKESINK_TEST_PASSWORD": `p@ss: w"o'rd #1 \n ${NOT_EXPANDED} [x], {y}`,
	"LAKESINK_TEST_TLS":      "true",
	"LAKESINK_TEST_EMPTY":    "",
	"LAKESINK_TEST_TOKEN":    "tok-123",
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// streamForTopic returns the stream of c that consumes topic.
func streamForTopic(c *Config, topic string) (Stream, bool) {
	for _, s := range c.Streams {
		if slices.Contains(s.Topics, topic) {
			return s, true
		}
	}
	return Stream{}, false
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d good files, want at least 5", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Parse(readTestdata(t, filepath.Base(f)), lookup(testEnv))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate after Parse: %v", err)
			}
			for _, s := range c.Streams {
				if _, err := s.Columns(); err != nil {
					t.Errorf("Columns(%s): %v", s.Name, err)
				}
			}
			// The effective config written back parses to the same config.
			out, err := c.YAML()
			if err != nil {
				t.Fatal(err)
			}
			c2, err := Parse(out, nil)
			if err != nil {
				t.Fatalf("re-Parse of YAML(): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(c, c2) {
				t.Errorf("round trip differs:\n got %+v\nwant %+v", c2, c)
			}
		})
	}
}

func TestFullExample(t *testing.T) {
	c, err := Parse(readTestdata(t, "full.good.yaml"), lookup(testEnv))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Kafka: Kafka{
			Brokers:        []string{"kafka-1:9092", "kafka-2:9092"},
			ClientID:       "lakesink-prod",
			GroupID:        "lakesink-prod",
			StartOffset:    StartLatest,
			MaxRecordBytes: 2 * MiB,
			CommitInterval: Duration(5 * time.Second),
			SessionTimeout: Duration(20 * time.Second), HeartbeatInterval: Duration(2 * time.Second), RebalanceTimeout: Duration(time.Minute), StartupTimeout: Duration(2 * time.Minute), Assignor: AssignRange,
			TLS:  TLS{Enabled: true, CAFile: "/etc/kafka/ca.pem", CertFile: "/etc/kafka/client.pem", KeyFile: "/etc/kafka/client.key"},
			SASL: SASL{Mechanism: SASLScramSHA512, Username: "lakesink", Password: "s3cr3t-kafka"},
		},
		Streams: []Stream{
			{
				Name: "clickstream", Topics: []string{"clickstream"}, Format: FormatJSON,
				Time:            StreamTime{Field: "ts", Format: TimeUnixMillis, Timezone: "UTC"},
				AllowedLateness: Duration(15 * time.Minute), LatePolicy: LateAmend,
				Schema: []SchemaColumn{
					{Name: "event_id", Type: "string", Required: true},
					{Name: "user_id", Type: "string"},
					{Name: "ts", Type: "timestamp_ms"},
					{Name: "url", Type: "string"},
					{Name: "device_id", Path: "device.id", Type: "string"},
					{Name: "price", Type: "double"},
					{Name: "attrs", Type: "json"},
				},
				InferSample: DefaultInferSample,
				Compaction:  DefaultCompaction(),
			},
			{
				Name: "iot", Topics: []string{"iot-telemetry", "iot-telemetry-eu"}, Format: FormatProtobuf,
				Time:            StreamTime{Field: "event_time", Format: TimeRFC3339, Timezone: "Europe/Berlin"},
				AllowedLateness: Duration(90 * time.Minute), LatePolicy: LateDeadLetter,
				Schema: []SchemaColumn{
					{Name: "device", Type: "string", Required: true},
					{Name: "event_time", Type: "string", Required: true},
					{Name: "temperature", Type: "float"},
					{Name: "seq", Type: "int64"},
					{Name: "battery", Type: "int32"},
					{Name: "ok", Type: "bool"},
					{Name: "received_us", Type: "timestamp_us"},
					{Name: "day", Type: "date"},
				},
				InferSample: DefaultInferSample,
				Compaction:  Compaction{Enabled: true, TargetFileBytes: 128 * MiB, MinFiles: 4, SortBy: []string{"device", "event_time"}},
			},
			{
				Name: "events", Topics: []string{"events"}, Format: FormatJSON,
				Time:            StreamTime{Field: "at", Format: TimeRFC3339, Timezone: "UTC"},
				AllowedLateness: Duration(10 * time.Minute), LatePolicy: LateAmend,
				InferSchema: true, InferSample: 500,
				Compaction: DefaultCompaction(),
			},
		},
		SchemaRegistry: SchemaRegistry{URL: "https://registry.example.com:8081", Username: "lakesink", Password: "tok-123",
			Timeout: Duration(3 * time.Second),
			TLS: RegistryTLS{CAFile: "/etc/registry/ca.pem", CertFile: "/etc/registry/client.pem", KeyFile: "/etc/registry/client.key",
				InsecureSkipVerify: true}},
		Partitioning: Partitioning{Path: "{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}"},
		Files: Files{Compression: CompressionSnappy, MaxFileBytes: 128 * MiB, RowGroupBytes: 32 * MiB,
			SpoolDir: "/data/spool", MemoryLimit: GiB, MaxFileAge: Duration(10 * time.Minute)},
		Storage: Storage{
			Type: StorageS3, Timeout: Duration(90 * time.Second),
			Local: LocalStorage{Root: "./lake"},
			S3: S3Storage{Bucket: "lake", Prefix: "events/", Region: "eu-central-1", Endpoint: "http://127.0.0.1:7070", ForcePathStyle: true,
				AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "s3cr3t", SessionToken: "tok", SSE: "aws:kms", SSEKMSKeyID: "key-1",
				StorageClass: "STANDARD_IA", PartSize: 32 * MiB, Concurrency: 8},
			GCS:  GCSStorage{Bucket: "lake-gcs", Prefix: "events/", Endpoint: "http://127.0.0.1:4443", CredentialsFile: "/etc/gcs.json", ChunkSize: 8 * MiB},
			HDFS: HDFSStorage{Namenodes: []string{"namenode:8020", "namenode-2:8020"}, User: "hdfs", Root: "/lake"},
		},
		Markers: Markers{
			Enabled: true, IdlePartitionTimeout: Duration(2 * time.Minute), CheckInterval: Duration(30 * time.Second),
			KafkaTopic: "lakesink-hours",
			Webhook: Webhook{URL: "https://airflow.example.com/api/v2/assets/events",
				Headers: map[string]string{"Authorization": "Bearer tok-airflow", "Content-Type": "application/json"},
				Body:    `{"asset_uri": {{json .AssetURI}}, "extra": {"revision": {{.Revision}}}}`,
				Timeout: Duration(5 * time.Second)},
		},
		DeadLetter:      DeadLetter{Topic: "lakesink-dead-letters"},
		HTTP:            HTTP{Listen: "127.0.0.1:9090", CommitStallTimeout: Duration(7 * time.Minute), HealthCheckInterval: Duration(20 * time.Second)},
		Log:             Log{Level: "debug", Format: "text"},
		ShutdownTimeout: Duration(45 * time.Second),
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	// Every settable field differs from its default, except those whose
	// default is the only sensible value in this example; so a field that
	// the decoder silently skipped would show up here.
	assertAllFieldsSet(t, reflect.ValueOf(*c), reflect.ValueOf(*Default()), "", map[string]bool{
		"Partitioning.Path": true, "Storage.Local.Root": true, "Storage.HDFS.Root": true, "Markers.Enabled": true,
	})
}

// assertAllFieldsSet checks that every leaf field of got differs from def,
// apart from the listed ones.
func assertAllFieldsSet(t *testing.T, got, def reflect.Value, path string, except map[string]bool) {
	t.Helper()
	for i := range got.NumField() {
		name := got.Type().Field(i).Name
		p := strings.TrimPrefix(path+"."+name, ".")
		g, d := got.Field(i), def.Field(i)
		if g.Kind() == reflect.Struct {
			assertAllFieldsSet(t, g, d, p, except)
			continue
		}
		if !except[p] && reflect.DeepEqual(g.Interface(), d.Interface()) {
			t.Errorf("%s is still the default %v; the full example should set it", p, g.Interface())
		}
	}
}

func TestMinimal(t *testing.T) {
	c, err := Parse(readTestdata(t, "minimal.good.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Kafka.Brokers = []string{"localhost:9092"}
	s := DefaultStream()
	s.Name, s.Topics = "clickstream", []string{"clickstream"}
	s.Schema = []SchemaColumn{{Name: "event_id", Type: "string"}}
	want.Streams = []Stream{s}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if got, want := c.Summary(), "config ok: 1 stream (clickstream), 1 topic, storage local ./lake"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

func TestDefaults(t *testing.T) {
	d := Default()
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"kafka.client_id", d.Kafka.ClientID, "lakesink"},
		{"kafka.group_id", d.Kafka.GroupID, "lakesink"},
		{"kafka.start_offset", d.Kafka.StartOffset, StartEarliest},
		{"kafka.max_record_bytes", d.Kafka.MaxRecordBytes, Size(1 << 20)},
		{"kafka.commit_interval", d.Kafka.CommitInterval, Duration(time.Second)},
		{"kafka.session_timeout", d.Kafka.SessionTimeout, Duration(10 * time.Second)},
		{"kafka.heartbeat_interval", d.Kafka.HeartbeatInterval, Duration(time.Second)},
		{"kafka.rebalance_timeout", d.Kafka.RebalanceTimeout, Duration(30 * time.Second)},
		{"kafka.startup_timeout", d.Kafka.StartupTimeout, Duration(0)},
		{"storage.timeout", d.Storage.Timeout, Duration(time.Minute)},
		{"partitioning.path", d.Partitioning.Path, "{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}"},
		{"files.compression", d.Files.Compression, CompressionZstd},
		{"files.max_file_bytes", d.Files.MaxFileBytes, Size(256 << 20)},
		{"files.row_group_bytes", d.Files.RowGroupBytes, Size(64 << 20)},
		{"files.spool_dir", d.Files.SpoolDir, "/var/lib/lakesink/spool"},
		{"files.memory_limit", d.Files.MemoryLimit, Size(512 << 20)},
		{"storage.type", d.Storage.Type, StorageLocal},
		{"storage.local.root", d.Storage.Local.Root, "./lake"},
		{"storage.hdfs.root", d.Storage.HDFS.Root, "/lake"},
		{"markers.enabled", d.Markers.Enabled, true},
		{"markers.idle_partition_timeout", d.Markers.IdlePartitionTimeout, Duration(5 * time.Minute)},
		{"markers.check_interval", d.Markers.CheckInterval, Duration(10 * time.Second)},
		{"markers.webhook.timeout", d.Markers.Webhook.Timeout, Duration(10 * time.Second)},
		{"dead_letter.topic", d.DeadLetter.Topic, "lakesink-dlq"},
		{"http.listen", d.HTTP.Listen, ":8080"},
		{"http.commit_stall_timeout", d.HTTP.CommitStallTimeout, Duration(5 * time.Minute)},
		{"http.health_check_interval", d.HTTP.HealthCheckInterval, Duration(10 * time.Second)},
		{"log.level", d.Log.Level, "info"},
		{"log.format", d.Log.Format, "json"},
		{"shutdown_timeout", d.ShutdownTimeout, Duration(30 * time.Second)},
		{"streams[].time.timezone", DefaultStream().Time.Timezone, "UTC"},
		{"streams[].allowed_lateness", DefaultStream().AllowedLateness, Duration(10 * time.Minute)},
		{"streams[].late_policy", DefaultStream().LatePolicy, LateAmend},
		{"streams[].format", DefaultStream().Format, FormatJSON},
		{"schema_registry.timeout", d.SchemaRegistry.Timeout, Duration(10 * time.Second)},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// Defaults alone lack only brokers and streams.
	probs := Problems(d.Validate())
	var paths []string
	for _, p := range probs {
		paths = append(paths, p.Path)
		if p.Line != 0 {
			t.Errorf("problem %q has line %d; a Config built in code has none", p, p.Line)
		}
	}
	if want := []string{"kafka.brokers", "streams"}; !slices.Equal(paths, want) {
		t.Errorf("Default().Validate() problem paths = %q, want %q", paths, want)
	}
	// Default returns a fresh copy each time.
	d.Kafka.GroupID = "changed"
	if Default().Kafka.GroupID != "lakesink" {
		t.Error("Default() shares state between calls")
	}
}

func TestEnvFile(t *testing.T) {
	c, err := Parse(readTestdata(t, "env.good.yaml"), lookup(testEnv))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"brokers", c.Kafka.Brokers, []string{"kafka-env:9092", "backup:9092"}},
		{"group_id (unquoted empty keeps default)", c.Kafka.GroupID, "lakesink"},
		{"client_id (default for empty)", c.Kafka.ClientID, "fallback"},
		{"tls.enabled (typed after expansion)", c.Kafka.TLS.Enabled, true},
		{"sasl.username ($$)", c.Kafka.SASL.Username, "svc-$user"},
		{"sasl.password (special characters, verbatim)", c.Kafka.SASL.Password, testEnv["LAKESINK_TEST_PASSWORD"]},
		{"topic default", c.Streams[0].Topics, []string{"clicks"}},
		{"max_file_bytes from default text", c.Files.MaxFileBytes, 512 * MiB},
		{"spool_dir single-quoted", c.Files.SpoolDir, "/spool/${HOME}/x"},
		{"header", c.Markers.Webhook.Headers["Authorization"], "Bearer tok-123"},
		{"literal $", c.Markers.Webhook.Headers["X-Literal"], "cost: $5 and ${NOT_A_VAR}"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestAnchors(t *testing.T) {
	c, err := Parse(readTestdata(t, "anchors.good.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Streams) != 3 {
		t.Fatalf("got %d streams, want 3", len(c.Streams))
	}
	web, app, api := c.Streams[0], c.Streams[1], c.Streams[2]
	if app.Name != "app" || !slices.Equal(app.Topics, []string{"app"}) || app.LatePolicy != LateCurrentHour {
		t.Errorf("explicit keys must override merged ones: %+v", app)
	}
	if app.AllowedLateness != Duration(20*time.Minute) || !reflect.DeepEqual(app.Schema, web.Schema) || app.Time != web.Time {
		t.Errorf("merged keys missing: %+v", app)
	}
	if api.Time != web.Time || !reflect.DeepEqual(api.Schema, web.Schema) || api.AllowedLateness != DefaultStream().AllowedLateness {
		t.Errorf("aliases: %+v", api)
	}
}

// badFiles maps each testdata/*.bad.yaml to substrings its error must contain.
var badFiles = map[string][]string{
	"unknown_key.bad.yaml":        {`line 3: kafka.tlss: unknown key (did you mean "tls"?)`},
	"unknown_nested_key.bad.yaml": {`line 7: streams[0].time.fromat: unknown key (did you mean "format"?)`},
	"type_mismatch.bad.yaml":      {"line 4: kafka.tls.enabled: cannot unmarshal !!str `maybe` into bool", "line 6: streams[0].schema[0].required: cannot unmarshal !!int `3` into bool"},
	"wrong_shape.bad.yaml":        {`line 2: kafka.brokers: expected a list, got "localhost:9092"`, "line 4: streams: expected a list, got a mapping"},
	"bad_size.bad.yaml":           {`line 1: kafka.max_record_bytes: invalid size "-1MiB": negative`, `line 5: files.max_file_bytes: invalid size "64MiBs": unknown unit "MiBs"`, `line 6: files.row_group_bytes: invalid size "0.1KiB": not a whole number of bytes`},
	"bad_duration.bad.yaml":       {`line 1: kafka.commit_interval: invalid duration "10"`, `line 3: streams[0].allowed_lateness: invalid duration "ten minutes"`, "line 4: shutdown_timeout: must be positive, got 0s"},
	"empty.bad.yaml":              {"config is empty"},
	"comments_only.bad.yaml":      {"config is empty"},
	"unset_env.bad.yaml":          {"line 3: kafka.sasl.password: environment variable LAKESINK_TEST_UNSET is not set", "line 5: streams[0].topics[0]: environment variable LAKESINK_TEST_ALSO_UNSET is not set"},
	"bad_env_syntax.bad.yaml":     {"line 2: kafka.brokers[0]: invalid reference ${1BROKER}", "line 3: kafka.client_id: unterminated ${"},
	"no_brokers.bad.yaml":         {"line 1: kafka.brokers: at least one broker required"},
	"no_streams.bad.yaml":         {"streams: at least one stream required"},
	"time_field.bad.yaml":         {"line 6: streams[1].time.field: required when format is set", "streams[2].time.format: required when field is set", `streams[3].time.format: unknown value "unix_ns" (want one of unix_ms, unix_s, rfc3339)`, `streams[4].time.field: JSON path "meta..ts" has an empty segment`},
	"time_column_type.bad.yaml":   {`line 8: streams[0].schema[1].type: column "ts" holds time.field "meta.ts" (format unix_ms), so its type must be one of int64, double, timestamp_ms, got "string"`},
	"schema_type.bad.yaml":        {`line 8: streams[0].schema[2].type: unknown type "strin" (want one of string, int32, int64, double, float, bool, timestamp_ms, timestamp_us, date, json)`, "line 9: streams[0].schema[3].type: required"},
	"schema_columns.bad.yaml":     {`streams[0].schema[1].name: duplicate column name "ID" (also streams[0].schema[0]`, `streams[0].schema[2].name: "a.b" must not contain '.'`, "streams[0].schema[3].name: required", `streams[0].schema[4].path: JSON path "x." has an empty segment`, "streams[1].schema: at least one column required"},
	"streams.bad.yaml":            {`streams[1].name: duplicate stream name "a" (also streams[0])`, `streams[1].topics[0]: topic "shared" is already used by streams[0].topics[0]`, `streams[1].topics[1]: invalid Kafka topic name "bad topic"`, `streams[2].name: "../etc" is not a safe path segment`, "streams[3].name: required", `streams[3].topics[0]: topic "lakesink-dlq" is also dead_letter.topic`, "streams[4].topics: at least one topic required", `streams[4].late_policy: unknown value "later" (want one of amend, dead_letter, current_hour)`, "streams[4].allowed_lateness: must not be negative, got -1m"},
	"timezone.bad.yaml":           {`line 3: streams[0].time.timezone: unknown time zone "Mars/Olympus"`, `streams[1].time.timezone: "Local" depends on the host`, "streams[2].time.timezone: required"},
	"s3_bucket.bad.yaml":          {"line 3: storage.s3.bucket: required when storage.type is s3", `storage.s3.prefix: must not start with '/'`, `storage.s3.endpoint: want an http:// or https:// URL with a host, got "localhost:7070"`},
	"gcs_bucket.bad.yaml":         {"line 3: storage.gcs.bucket: required when storage.type is gcs"},
	"s3_options.bad.yaml": {"storage.s3.secret_access_key: access_key_id and secret_access_key go together", `storage.s3.sse: unknown value "aes"`,
		`storage.s3.sse_kms_key_id: only with sse "aws:kms"`, "storage.s3.part_size: must be between 5MiB and 5GiB, got 1MiB", "storage.s3.concurrency: must be at least 1, got 0"},
	"group_timing.bad.yaml":       {"kafka.heartbeat_interval: must be less than kafka.session_timeout (2s), got 3s", "kafka.rebalance_timeout: must be positive, got 0s"},
	"gcs_chunk.bad.yaml":          {"storage.gcs.chunk_size: must be at least 256KiB, got 1KiB"},
	"hdfs_namenodes.bad.yaml":     {"storage.hdfs.namenodes: at least one namenode required when storage.type is hdfs", `storage.hdfs.root: must be an absolute path, got "lake"`},
	"hdfs_namenode_addr.bad.yaml": {`storage.hdfs.namenodes[0]: want host:port, got "namenode"`},
	"hdfs_root.bad.yaml": {`line 5: storage.hdfs.namenodes[1]: want host:port, got ":8020" (no host)`, `storage.hdfs.namenodes[2]: invalid port in "nn:0"`,
		`storage.hdfs.root: must be a clean absolute path ("/lake"), got "/lake/"`},
	"s3_backend.bad.yaml": {`line 9: storage.s3.prefix: invalid key "raw//events": empty path segment`,
		"line 10: storage.s3.session_token: needs access_key_id and secret_access_key",
		`line 11: storage.s3.storage_class: unknown value "COLD" (want "" for the bucket's default or one of STANDARD, `,
		"line 12: storage.s3.part_size: must be between 5MiB and 5GiB, got 6GiB", "line 13: storage.s3.concurrency: must be at least 1, got -1"},
	"gcs_backend.bad.yaml": {`line 5: storage.gcs.prefix: invalid key "raw/../events": ".." path segment`,
		`storage.gcs.endpoint: want an http:// or https:// URL with a host, got "ftp://gcs.example.com"`,
		"storage.gcs.chunk_size: must be at least 256KiB, got 0"},
	"local_root.bad.yaml":            {"storage.local.root: required when storage.type is local", "storage.timeout: must be positive, got 0s"},
	"storage_type.bad.yaml":          {`storage.type: unknown value "azure" (want one of local, s3, gcs, hdfs)`},
	"partition_placeholder.bad.yaml": {"partitioning.path: unknown placeholder {minute} (want {stream} {yyyy} {MM} {dd} {HH})"},
	"partition_hours.bad.yaml":       {"partitioning.path: must contain {yyyy}, {MM}, {dd} and {HH} so that every hour has its own folder; missing {HH}", "partitioning.path: must contain {stream} when there is more than one stream", "partitioning.path: must be a relative path"},
	"files.bad.yaml":                 {`files.compression: unknown value "lz4" (want one of zstd, snappy, gzip, none)`, "files.row_group_bytes: must not exceed files.max_file_bytes (16MiB), got 32MiB", "files.spool_dir: required", "files.memory_limit: must be at least kafka.max_record_bytes (8MiB), got 4MiB", "files.max_file_age: must be 0 (off) or at least 1s, got 500ms"},
	"markers.bad.yaml":               {"markers.idle_partition_timeout: must be positive, got 0s", "markers.check_interval: must be positive, got -5s", "markers.kafka_topic: must differ from dead_letter.topic", `markers.webhook.url: want an http:// or https:// URL with a host, got "ftp://example.com/x"`, `markers.webhook.headers.Bad Header: invalid HTTP header name "Bad Header"`, "markers.webhook.timeout: must be positive, got -1s", "markers.webhook.body: template: body:1: unclosed action"},
	"webhook_url.bad.yaml":           {"line 3: markers.webhook.url: invalid URL"},
	"sasl.bad.yaml":                  {`kafka.sasl.mechanism: unknown value "GSSAPI" (want one of "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)`},
	"sasl_missing.bad.yaml":          {"kafka.sasl.username: required when mechanism is set", "kafka.sasl.password: required when mechanism is set"},
	"sasl_no_mechanism.bad.yaml":     {"kafka.sasl.mechanism: required when username or password is set"},
	"tls_pair.bad.yaml":              {"line 3: kafka.tls.key_file: required when cert_file is set"},
	"kafka.bad.yaml":                 {`kafka.brokers[0]: want host:port, got "localhost"`, `kafka.brokers[1]: want host:port, got ":9092" (no host)`, "kafka.client_id: required", "kafka.group_id: required", `kafka.start_offset: unknown value "newest" (want one of earliest, latest)`, "kafka.startup_timeout: must not be negative (0 waits as long as it takes), got -5s", `kafka.assignor: unknown value "cooperative" (want one of sticky, range)`},
	"log_http.bad.yaml":              {`log.level: unknown value "trace" (want one of debug, info, warn, error)`, `log.format: unknown value "xml" (want one of json, text)`, "http.listen: required", "http.commit_stall_timeout: must be positive, got 0s", "http.health_check_interval: must be positive, got -1s", "dead_letter.topic: required"},
	"http_listen.bad.yaml":           {`line 3: http.listen: want host:port, got "8080"`},
	"duplicate_key.bad.yaml":         {"line 4: kafka.group_id: duplicate key (first at line 3)"},
	"not_mapping.bad.yaml":           {"line 1: the document must be a mapping of keys"},
	"syntax.bad.yaml":                {"invalid YAML"},
	"multi_doc.bad.yaml":             {"more than one YAML document"},
	"registry.bad.yaml": {`line 4: schema_registry.url: want an http:// or https:// URL with a host, got "registry:8081"`,
		"schema_registry.username: required when password is set", "schema_registry.timeout: must be positive, got 0s",
		"schema_registry.tls.key_file: required when cert_file is set", `line 9: streams[0].format: unknown value "xml" (want one of json, avro, protobuf, json_schema)`,
		`streams[1].schema[0].type: unknown type "strng"`},
	"registry_url.bad.yaml": {"schema_registry.url: required when a stream has format avro, protobuf or json_schema (streams[1], streams[2], streams[3])",
		"streams[0].time.format: required when field is set"},
	"compaction.bad.yaml": {"streams[0].compaction.target_file_bytes: must be at least 1MiB, got 64KiB",
		"streams[0].compaction.min_files: must be at least 2", `streams[0].compaction.sort_by[1]: "dev" is not a column`,
		`streams[0].compaction.sort_by[2]: "device" is listed twice`,
		"streams[0].table.maintenance.expire_snapshots_older_than: must not be negative",
		"streams[0].table.maintenance.keep_last: must be at least 1",
		"streams[1].compaction.sort_by: needs the stream's schema list"},
	"table.bad.yaml": {`line 7: streams[0].table.format: unknown value "delta" (want one of iceberg)`,
		`streams[0].table.namespace: "1lake": want letters, digits and '_'`, "streams[0].table.catalog.uri: required",
		`streams[0].schema[0].type: column "ts" holds the event time of a stream with a table, so its type must be timestamp_ms or timestamp_us`,
		"streams[0].table: not supported with storage.type hdfs",
		`streams[1].table.name (default: the stream name): "b-c": want letters`,
		`streams[1].table.catalog.uri: want an http:// or https:// URL with a host, got "catalog:8181"`,
		"streams[1].time.timezone: Asia/Kolkata is not a whole number of hours from UTC",
		"streams[2].table: needs time.field", "streams[2].table.catalog.uri: not used with type glue", "streams[2].table.catalog.token: only used with type rest",
		"streams[3].table: not supported with schema: infer",
		"streams[4].table.name: table lake.c is also the table of streams[2]", `streams[4].table.catalog.type: unknown value "oracle" (want one of sql, rest, glue)`},
	"subject.bad.yaml": {`line 4: streams[0].subject: only used with format json_schema or json (got format avro)`,
		`line 5: streams[1].subject: only used with format json_schema or json (got format protobuf)`},
	"infer.bad.yaml": {"line 4: streams[0].infer_sample: must be between 1 and 100000, got 0",
		`line 5: streams[1].schema: "infer" is only for format json`,
		`line 6: streams[2].schema: want a list of columns or "infer", got "guess"`,
		"line 7: streams[3].infer_sample: only used with schema: infer",
		"line 8: streams[4].infer_sample: must be between 1 and 100000, got 100001"},
	"three_mistakes.bad.yaml": {`line 4: kafka.group_idd: unknown key (did you mean "group_id"?)`, "line 8: streams[0].time.field: required when format is set", `line 12: files.max_file_bytes: invalid size "lots"`},
}

func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := badFiles[filepath.Base(f)]; !ok {
			t.Errorf("%s has no entry in badFiles", f)
		}
	}
	for name, wants := range badFiles {
		t.Run(name, func(t *testing.T) {
			c, err := Parse(readTestdata(t, name), lookup(testEnv))
			if err == nil {
				t.Fatalf("Parse succeeded, want errors containing %q", wants)
			}
			if c != nil {
				t.Error("Parse returned a Config along with an error")
			}
			msg := err.Error()
			for _, w := range wants {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q; got:\n%s", w, msg)
				}
			}
			probs := Problems(err)
			if len(probs) < len(wants) {
				t.Errorf("got %d problems, want at least %d:\n%s", len(probs), len(wants), msg)
			}
			for _, s := range []string{"s3cr3t", "tok-"} {
				if strings.Contains(msg, s) {
					t.Errorf("error leaks secret %q: %s", s, msg)
				}
			}
		})
	}
}

func TestThreeMistakes(t *testing.T) {
	_, err := Parse(readTestdata(t, "three_mistakes.bad.yaml"), nil)
	probs := Problems(err)
	if len(probs) != 3 {
		t.Fatalf("got %d problems, want exactly 3:\n%v", len(probs), err)
	}
	want := []struct {
		path string
		line int
	}{{"kafka.group_idd", 4}, {"streams[0].time.field", 8}, {"files.max_file_bytes", 12}}
	for i, w := range want {
		if probs[i].Path != w.path || probs[i].Line != w.line {
			t.Errorf("problem %d = %q (path %q line %d), want path %q line %d", i, probs[i], probs[i].Path, probs[i].Line, w.path, w.line)
		}
	}
}

func TestSuppressesConsequences(t *testing.T) {
	// A value that fails to decode stays at its default; Validate must not
	// then report the same path a second time.
	_, err := Parse([]byte("kafka: {brokers: [k:9092]}\nstreams:\n  - name: [x]\n    topics: [a]\n    schema: [{name: id, type: string}]\n"), nil)
	probs := Problems(err)
	if len(probs) != 1 || probs[0].Path != "streams[0].name" {
		t.Fatalf("got %q, want one problem at streams[0].name", probs)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "lakesink.yaml")
	if err := os.WriteFile(good, []byte("kafka: {brokers: [\"${LAKESINK_LOAD_BROKER}\"]}\nstreams: [{name: a, topics: [a], schema: [{name: id, type: string}]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LAKESINK_LOAD_BROKER", "from-env:9092")
	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Kafka.Brokers, []string{"from-env:9092"}) {
		t.Errorf("brokers = %q, want the environment's", c.Kafka.Brokers)
	}

	bad := filepath.Join("testdata", "three_mistakes.bad.yaml")
	_, err = Load(bad)
	if err == nil {
		t.Fatal("Load of a bad file succeeded")
	}
	for _, w := range []string{bad + ":4: kafka.group_idd: unknown key", bad + ":8: streams[0].time.field", bad + ":12: files.max_file_bytes"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	_, err = Load(filepath.Join("testdata", "empty.bad.yaml"))
	if err == nil || !strings.Contains(err.Error(), "empty.bad.yaml: config is empty") {
		t.Errorf("Load(empty) = %v, want it to name the file and say it is empty", err)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an error wrapping os.ErrNotExist", err)
	}
}

// TestLoadOversized: a file over MaxFileBytes (or an endless one such as
// /dev/zero) is rejected without being read whole; one at the limit is
// read (and then judged as YAML).
func TestLoadOversized(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#\n"), MaxFileBytes/2+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(big)
	if err == nil || !strings.Contains(err.Error(), big+": larger than 4 MiB") {
		t.Errorf("Load(%d bytes) = %v, want it rejected as too large", MaxFileBytes+2, err)
	}
	atLimit := filepath.Join(dir, "limit.yaml")
	if err := os.WriteFile(atLimit, bytes.Repeat([]byte("#\n"), MaxFileBytes/2), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(atLimit); err == nil || strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(at the limit) = %v, want it read and found empty", err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, err := Load("/dev/zero"); err == nil || !strings.Contains(err.Error(), "larger than 4 MiB") {
			t.Errorf("Load(/dev/zero) = %v, want it rejected as too large", err)
		}
	}
}

func TestValidateJoinsAll(t *testing.T) {
	c := Default()
	c.Kafka.Brokers = []string{"k:9092"}
	s := DefaultStream()
	s.Name, s.Topics, s.Schema = "a", []string{"a"}, []SchemaColumn{{Name: "id", Type: "string"}}
	c.Streams = []Stream{s}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	c.Files.Compression = "brotli"
	c.Log.Level = "loud"
	c.Streams[0].Schema[0].Type = "uuid"
	err := c.Validate()
	var e *Error
	if !errors.As(err, &e) || e.Path != "streams[0].schema[0].type" {
		t.Fatalf("errors.As first problem = %v, want streams[0].schema[0].type", e)
	}
	if got := len(Problems(err)); got != 3 {
		t.Errorf("got %d problems, want 3: %v", got, err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{Path: "a.b", Msg: "bad"}, "a.b: bad"},
		{Error{Line: 3, Path: "a.b", Msg: "bad"}, "line 3: a.b: bad"},
		{Error{File: "f.yaml", Line: 3, Path: "a.b", Msg: "bad"}, "f.yaml:3: a.b: bad"},
		{Error{File: "f.yaml", Msg: "config is empty"}, "f.yaml: config is empty"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestStreamHelpers(t *testing.T) {
	s := DefaultStream()
	s.Name = "iot"
	s.Time.Timezone = "Europe/Berlin"
	s.Schema = []SchemaColumn{{Name: "id", Type: "string", Required: true}, {Name: "t", Path: "meta.t", Type: "timestamp_us"}}
	if got := s.Location().String(); got != "Europe/Berlin" {
		t.Errorf("Location() = %s, want Europe/Berlin", got)
	}
	cols, err := s.Columns()
	if err != nil {
		t.Fatal(err)
	}
	want := []partitioner.Column{{Name: "id", Type: partitioner.TypeString, Required: true}, {Name: "t", Type: partitioner.TypeTimestampMicros}}
	if !slices.Equal(cols, want) {
		t.Errorf("Columns() = %+v, want %+v", cols, want)
	}
	if got := s.Schema[1].JSONPath(); got != "meta.t" {
		t.Errorf("JSONPath() = %q, want meta.t", got)
	}
	if got := s.Schema[0].JSONPath(); got != "id" {
		t.Errorf("JSONPath() = %q, want id", got)
	}
	s.Schema[0].Type = "strin"
	if _, err := s.Columns(); err == nil {
		t.Error("Columns() with an unknown type succeeded")
	}
	for _, tz := range []string{"", "Local", "No/Such"} {
		s.Time.Timezone = tz
		if s.Location() != time.UTC {
			t.Errorf("Location() for %q = %v, want the UTC fallback", tz, s.Location())
		}
	}
}

func TestSummaryAndLookups(t *testing.T) {
	c, err := Parse(readTestdata(t, "full.good.yaml"), lookup(testEnv))
	if err != nil {
		t.Fatal(err)
	}
	want := "config ok: 3 streams (clickstream, iot, events), 4 topics, storage s3 s3://lake/events"
	if got := c.Summary(); got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	for _, secret := range []string{testEnv["KAFKA_PASSWORD"], testEnv["AIRFLOW_TOKEN"]} {
		if strings.Contains(c.Summary(), secret) {
			t.Errorf("Summary leaks %q", secret)
		}
	}
	if s, ok := streamForTopic(c, "iot-telemetry-eu"); !ok || s.Name != "iot" {
		t.Errorf("stream of iot-telemetry-eu = %q, %v; want iot", s.Name, ok)
	}
	if _, ok := streamForTopic(c, "nope"); ok {
		t.Error("a stream consumes topic nope")
	}
	if got, want := c.Topics(), []string{"clickstream", "iot-telemetry", "iot-telemetry-eu", "events"}; !slices.Equal(got, want) {
		t.Errorf("Topics() = %q, want %q", got, want)
	}
	locs := []struct {
		s    Storage
		want string
	}{
		{Storage{Type: StorageLocal, Local: LocalStorage{Root: "/data/lake"}}, "/data/lake"},
		{Storage{Type: StorageS3, S3: S3Storage{Bucket: "b"}}, "s3://b"},
		{Storage{Type: StorageGCS, GCS: GCSStorage{Bucket: "b", Prefix: "p/"}}, "gs://b/p"},
		{Storage{Type: StorageHDFS, HDFS: HDFSStorage{Namenodes: []string{"nn:8020"}, Root: "/lake"}}, "hdfs://nn:8020/lake"},
	}
	for _, l := range locs {
		if got := l.s.Location(); got != l.want {
			t.Errorf("%s Location() = %q, want %q", l.s.Type, got, l.want)
		}
	}
}

func TestRedacted(t *testing.T) {
	c, err := Parse(readTestdata(t, "full.good.yaml"), lookup(testEnv))
	if err != nil {
		t.Fatal(err)
	}
	c.Markers.Webhook.URL = "https://user:hunter2@airflow.example.com/api"
	c.Storage.S3.Endpoint = "http://key:s3pass@127.0.0.1:7070"
	c.SchemaRegistry.URL = "https://sr:srpass@registry.example.com:8081"
	orig, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if r.Kafka.SASL.Password != RedactedValue {
		t.Errorf("password = %q, want %q", r.Kafka.SASL.Password, RedactedValue)
	}
	if r.SchemaRegistry.Password != RedactedValue {
		t.Errorf("schema registry password = %q, want %q", r.SchemaRegistry.Password, RedactedValue)
	}
	for k, v := range r.Markers.Webhook.Headers {
		if v != RedactedValue {
			t.Errorf("header %s = %q, want %q", k, v, RedactedValue)
		}
	}
	if len(r.Markers.Webhook.Headers) != 2 {
		t.Errorf("headers = %v, want both names kept", r.Markers.Webhook.Headers)
	}
	out, err := r.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cr3t-kafka", "tok-airflow", "hunter2", "s3pass", "tok-123", "srpass"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("redacted YAML contains %q:\n%s", secret, out)
		}
	}
	// Secrets lists every one of them, and nothing the redacted YAML shows.
	secrets := strings.Join(c.Secrets(), "\n")
	for _, secret := range []string{"s3cr3t-kafka", "tok-airflow", "hunter2", "s3pass", "tok-123", "srpass"} {
		if !strings.Contains(secrets, secret) {
			t.Errorf("Secrets() lacks %q: %q", secret, c.Secrets())
		}
	}
	for _, s := range c.Secrets() {
		if len(s) >= 6 && strings.Contains(string(out), s) { // short ones ("tok") are in key names
			t.Errorf("Secrets() lists %q, which the redacted YAML shows", s)
		}
	}
	if !strings.Contains(string(out), "user:xxxxx@airflow.example.com") {
		t.Errorf("redacted webhook URL lost its non-secret parts:\n%s", out)
	}
	// Mutating the copy leaves the original alone, and the original is unchanged.
	r.Kafka.Brokers[0] = "x"
	r.Streams[0].Topics[0] = "x"
	r.Streams[0].Schema[0].Name = "x"
	r.Storage.HDFS.Namenodes[0] = "x"
	r.Markers.Webhook.Headers["New"] = "x"
	after, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(orig) {
		t.Errorf("Redacted or its copy changed the original:\nbefore:\n%s\nafter:\n%s", orig, after)
	}
	// Empty secrets stay empty.
	e := Default().Redacted()
	if e.Kafka.SASL.Password != "" || e.SchemaRegistry.Password != "" || e.Markers.Webhook.Headers != nil {
		t.Errorf("empty secrets changed: %+v", e)
	}
}

func TestLogSlogLevel(t *testing.T) {
	for lvl, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "bogus": "INFO"} {
		if got := (Log{Level: lvl}).SlogLevel().String(); got != want {
			t.Errorf("SlogLevel(%q) = %s, want %s", lvl, got, want)
		}
	}
}

func BenchmarkParseFull(b *testing.B) {
	data := readTestdata(b, "full.good.yaml")
	env := lookup(testEnv)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data, env); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAliasBomb(t *testing.T) {
	// Merge keys that double at every level would visit 2^40 nodes.
	var b strings.Builder
	b.WriteString("kafka: {brokers: [k:9092]}\nstreams: [{name: a, topics: [a], schema: [{name: id, type: string}]}]\n")
	b.WriteString("log: &l0 {level: info, format: json}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "x%d: &l%d {<<: [*l%d, *l%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("http:\n  <<: *l40\n")
	start := time.Now()
	_, err := Parse([]byte(b.String()), nil)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Parse took %v", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "document too large after expanding aliases") {
		t.Errorf("got %v, want the alias budget to be exceeded", err)
	}
	if n := len(Problems(err)); n > maxProblems+1 {
		t.Errorf("got %d problems, want at most %d", n, maxProblems+1)
	}
}

func TestProblemCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("kafka: {brokers: [k:9092]}\nstreams: [{name: a, topics: [a], schema: [{name: id, type: string}]}]\n")
	for i := range 150 {
		fmt.Fprintf(&b, "unknown%d: 1\n", i)
	}
	_, err := Parse([]byte(b.String()), nil)
	probs := Problems(err)
	if len(probs) != maxProblems+1 || probs[maxProblems].Msg != "and 50 more problems" {
		t.Errorf("got %d problems ending in %v; want %d and a note on the 50 left out", len(probs), probs[len(probs)-1], maxProblems+1)
	}
}

// TestJSONSchemaStream checks the json_schema stream of registry.good.yaml:
// its format, its subject and that it needs no schema list.
func TestJSONSchemaStream(t *testing.T) {
	c, err := Parse(readTestdata(t, "registry.good.yaml"), lookup(map[string]string{"LAKESINK_TEST_PASSWORD": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	s, ok := streamForTopic(c, "payments")
	if !ok {
		t.Fatal("no stream for topic payments")
	}
	if s.Format != FormatJSONSchema || s.Subject != "payments-value" || len(s.Schema) != 0 || !s.Format.UsesRegistry() {
		t.Errorf("payments stream = format %q subject %q, %d columns; want json_schema, payments-value, none", s.Format, s.Subject, len(s.Schema))
	}
	if r, _ := streamForTopic(c, "refunds"); r.Format != FormatJSONSchema || r.Subject != "refunds-value" {
		t.Errorf("refunds stream (format json, subject) = format %q subject %q; want json_schema, refunds-value", r.Format, r.Subject)
	}
	if c, _ := streamForTopic(c, "clicks"); c.Format != FormatJSON {
		t.Errorf("clicks stream without subject = format %q, want json", c.Format)
	}
}

// TestInferStream checks schema: infer in infer.good.yaml and that it
// survives Config.YAML.
func TestInferStream(t *testing.T) {
	c, err := Parse(readTestdata(t, "infer.good.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{DefaultInferSample, 50} {
		s := c.Streams[i]
		if !s.InferSchema || s.Schema != nil || s.InferSample != want || s.Format != FormatJSON {
			t.Errorf("streams[%d] = infer %v, schema %v, sample %d, format %s; want infer, no list, %d, json", i, s.InferSchema, s.Schema, s.InferSample, s.Format, want)
		}
	}
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "schema: infer"); n != 2 {
		t.Errorf("YAML() has %d \"schema: infer\", want 2:\n%s", n, out)
	}
	// A list after a merged infer is a list again.
	c, err = Parse([]byte("kafka: {brokers: [k:9092]}\nstreams:\n  - &s {name: a, topics: [a], schema: infer}\n  - {<<: *s, name: b, topics: [b], schema: [{name: x, type: string}]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := c.Streams[0], c.Streams[1]; !a.InferSchema || b.InferSchema || len(b.Schema) != 1 {
		t.Errorf("merge: a infer %v; b infer %v with %d columns; want a infer, b a list of 1", a.InferSchema, b.InferSchema, len(b.Schema))
	}
}
