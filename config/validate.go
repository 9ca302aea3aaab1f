package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
	_ "time/tzdata" // time zones validate the same on every host and in scratch images

	"github.com/lakesink/lakesink/partitioner"
)

// Validate checks c and returns every problem at once, joined with
// errors.Join, each an *Error formatted "<yaml path>: <problem>"; nil if c is
// usable. It does not touch the file system or network.
func (c *Config) Validate() error {
	return joinProblems(c.validate())
}

type problems []*Error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) positiveSize(path string, s Size) {
	if s <= 0 {
		p.add(path, "must be positive, got %s", s)
	}
}

func (p *problems) positiveDuration(path string, d Duration) {
	if d <= 0 {
		p.add(path, "must be positive, got %s", d)
	}
}

func (p *problems) required(path, v string) bool {
	if v == "" {
		p.add(path, "required")
		return false
	}
	return true
}

func oneOf[T ~string](path string, p *problems, v T, allowed ...T) {
	if slices.Contains(allowed, v) {
		return
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
		if a == "" {
			names[i] = `""`
		}
	}
	p.add(path, "unknown value %q (want one of %s)", string(v), strings.Join(names, ", "))
}

func (c *Config) validate() []*Error {
	var p problems
	c.validateKafka(&p)
	c.validateStreams(&p)
	c.validatePartitioning(&p)
	c.validateFiles(&p)
	c.validateStorage(&p)
	c.validateMarkers(&p)
	c.validateSchemaRegistry(&p)
	if p.required("dead_letter.topic", c.DeadLetter.Topic) {
		checkTopic(&p, "dead_letter.topic", c.DeadLetter.Topic)
	}
	if p.required("http.listen", c.HTTP.Listen) {
		if err := checkHostPort(c.HTTP.Listen, true); err != nil {
			p.add("http.listen", "%v", err)
		}
	}
	p.positiveDuration("http.commit_stall_timeout", c.HTTP.CommitStallTimeout)
	p.positiveDuration("http.health_check_interval", c.HTTP.HealthCheckInterval)
	oneOf("log.level", &p, c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", &p, c.Log.Format, "json", "text")
	p.positiveDuration("shutdown_timeout", c.ShutdownTimeout)
	return p
}

func (c *Config) validateKafka(p *problems) {
	k := c.Kafka
	if len(k.Brokers) == 0 {
		p.add("kafka.brokers", "at least one broker required")
	}
	for i, b := range k.Brokers {
		if err := checkHostPort(b, false); err != nil {
			p.add(fmt.Sprintf("kafka.brokers[%d]", i), "%v", err)
		}
	}
	p.required("kafka.client_id", k.ClientID)
	p.required("kafka.group_id", k.GroupID)
	oneOf("kafka.start_offset", p, k.StartOffset, StartEarliest, StartLatest)
	oneOf("kafka.assignor", p, k.Assignor, AssignSticky, AssignRange)
	p.positiveSize("kafka.max_record_bytes", k.MaxRecordBytes)
	p.positiveDuration("kafka.commit_interval", k.CommitInterval)
	if k.StartupTimeout < 0 {
		p.add("kafka.startup_timeout", "must not be negative (0 waits as long as it takes), got %s", k.StartupTimeout)
	}
	p.positiveDuration("kafka.session_timeout", k.SessionTimeout)
	p.positiveDuration("kafka.heartbeat_interval", k.HeartbeatInterval)
	p.positiveDuration("kafka.rebalance_timeout", k.RebalanceTimeout)
	if k.HeartbeatInterval >= k.SessionTimeout && k.SessionTimeout > 0 {
		p.add("kafka.heartbeat_interval", "must be less than kafka.session_timeout (%s), got %s", k.SessionTimeout, k.HeartbeatInterval)
	}
	if k.TLS.CertFile != "" && k.TLS.KeyFile == "" {
		p.add("kafka.tls.key_file", "required when cert_file is set")
	}
	if k.TLS.KeyFile != "" && k.TLS.CertFile == "" {
		p.add("kafka.tls.cert_file", "required when key_file is set")
	}
	oneOf("kafka.sasl.mechanism", p, k.SASL.Mechanism, SASLNone, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	if k.SASL.Mechanism != SASLNone {
		if k.SASL.Username == "" {
			p.add("kafka.sasl.username", "required when mechanism is set")
		}
		if k.SASL.Password == "" {
			p.add("kafka.sasl.password", "required when mechanism is set")
		}
	} else if k.SASL.Username != "" || k.SASL.Password != "" {
		p.add("kafka.sasl.mechanism", "required when username or password is set (want one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
	}
}

func (c *Config) validateStreams(p *problems) {
	if len(c.Streams) == 0 {
		p.add("streams", "at least one stream required")
	}
	names := map[string]string{}  // stream name → path
	topics := map[string]string{} // topic → path of its first use
	tables := map[string]string{} // table identifier → path of its stream
	for i, s := range c.Streams {
		sp := fmt.Sprintf("streams[%d]", i)
		if s.Name == "" {
			p.add(sp+".name", "required")
		} else if !validStreamName(s.Name) {
			p.add(sp+".name", "%q is not a safe path segment (want letters, digits, '.', '_', '-', starting with a letter or digit, at most 255 characters)", s.Name)
		} else if prev, dup := names[s.Name]; dup {
			p.add(sp+".name", "duplicate stream name %q (also %s)", s.Name, prev)
		} else {
			names[s.Name] = sp
		}
		if len(s.Topics) == 0 {
			p.add(sp+".topics", "at least one topic required")
		}
		for j, t := range s.Topics {
			tp := fmt.Sprintf("%s.topics[%d]", sp, j)
			if !checkTopic(p, tp, t) {
				continue
			}
			if prev, dup := topics[t]; dup {
				p.add(tp, "topic %q is already used by %s; a topic belongs to one stream", t, prev)
				continue
			}
			topics[t] = tp
			if t == c.DeadLetter.Topic {
				p.add(tp, "topic %q is also dead_letter.topic", t)
			}
			if t == c.Markers.KafkaTopic {
				p.add(tp, "topic %q is also markers.kafka_topic", t)
			}
		}
		validateStreamTime(p, sp, s)
		if s.AllowedLateness < 0 {
			p.add(sp+".allowed_lateness", "must not be negative, got %s", s.AllowedLateness)
		}
		oneOf(sp+".late_policy", p, s.LatePolicy, LateAmend, LateDeadLetter, LateCurrentHour)
		oneOf(sp+".format", p, s.Format, FormatJSON, FormatAvro, FormatProtobuf, FormatJSONSchema)
		if s.Subject != "" && s.Format != FormatJSONSchema {
			p.add(sp+".subject", "only used with format json_schema or json (got format %s)", s.Format)
		}
		// Avro and Protobuf streams may leave the columns to the writer
		// schema.
		validateInfer(p, sp, s)
		if !s.InferSchema && (len(s.Schema) > 0 || !s.Format.UsesRegistry()) {
			validateSchema(p, sp, s.Schema)
		}
		c.validateTable(p, sp, s, tables)
		validateCompaction(p, sp, s)
	}
}

// timeColumnTypes lists, per time format, the column types that can hold
// the time field's value as the record carries it.
var timeColumnTypes = map[TimeFormat][]string{
	TimeUnixMillis:  {"int64", "double", "timestamp_ms"},
	TimeUnixSeconds: {"int32", "int64", "double"},
	TimeRFC3339:     {"string", "timestamp_ms", "timestamp_us"},
}

func validateStreamTime(p *problems, sp string, s Stream) {
	t := s.Time
	switch {
	case t.Field == "" && t.Format != "":
		p.add(sp+".time.field", "required when format is set")
	case t.Field != "" && t.Format == "" && !s.Format.UsesRegistry():
		// Avro and Protobuf know their timestamp types; the format is only
		// for plain numbers (default unix_ms) and strings (RFC 3339).
		p.add(sp+".time.format", "required when field is set (want one of unix_ms, unix_s, rfc3339)")
	}
	if t.Format != "" {
		oneOf(sp+".time.format", p, t.Format, TimeUnixMillis, TimeUnixSeconds, TimeRFC3339)
	}
	if t.Field != "" {
		if err := checkJSONPath(t.Field); err != nil {
			p.add(sp+".time.field", "%v", err)
		}
	}
	if want, ok := timeColumnTypes[t.Format]; ok && t.Field != "" && !s.Format.UsesRegistry() {
		for j, col := range s.Schema {
			if col.JSONPath() == t.Field && !slices.Contains(want, col.Type) {
				p.add(fmt.Sprintf("%s.schema[%d].type", sp, j), "column %q holds time.field %q (format %s), so its type must be one of %s, got %q",
					col.Name, t.Field, t.Format, strings.Join(want, ", "), col.Type)
			}
		}
	}
	switch {
	case t.Timezone == "":
		p.add(sp+".time.timezone", "required (an IANA zone name such as UTC or Europe/Berlin)")
	case t.Timezone == "Local":
		p.add(sp+".time.timezone", `"Local" depends on the host; use an IANA zone name such as UTC or Europe/Berlin`)
	default:
		if _, err := time.LoadLocation(t.Timezone); err != nil {
			p.add(sp+".time.timezone", "unknown time zone %q (want an IANA zone name such as UTC or Europe/Berlin)", t.Timezone)
		}
	}
}

func validateSchema(p *problems, sp string, schema []SchemaColumn) {
	if len(schema) == 0 {
		p.add(sp+".schema", "at least one column required")
	}
	seen := map[string]string{}
	for j, col := range schema {
		cp := fmt.Sprintf("%s.schema[%d]", sp, j)
		switch {
		case col.Name == "":
			p.add(cp+".name", "required")
		case strings.ContainsAny(col.Name, ".") || strings.ContainsFunc(col.Name, isControl):
			p.add(cp+".name", "%q must not contain '.' or control characters", col.Name)
		default:
			key := strings.ToLower(col.Name)
			if prev, dup := seen[key]; dup {
				p.add(cp+".name", "duplicate column name %q (also %s; names compare case-insensitively, as in Hive and Spark)", col.Name, prev)
			} else {
				seen[key] = cp
			}
		}
		if col.Path != "" {
			if err := checkJSONPath(col.Path); err != nil {
				p.add(cp+".path", "%v", err)
			}
		}
		if col.Type == "" {
			p.add(cp+".type", "required (want one of %s)", strings.Join(partitioner.TypeNames, ", "))
		} else if _, err := partitioner.ParseColumnType(col.Type); err != nil {
			p.add(cp+".type", "unknown type %q (want one of %s)", col.Type, strings.Join(partitioner.TypeNames, ", "))
		}
	}
}

func (c *Config) validatePartitioning(p *problems) {
	const path = "partitioning.path"
	tmpl := c.Partitioning.Path
	if !p.required(path, tmpl) {
		return
	}
	used, err := parseTemplate(tmpl)
	if err != nil {
		p.add(path, "%v", err)
		return
	}
	var missing []string
	for _, ph := range []string{"{yyyy}", "{MM}", "{dd}", "{HH}"} {
		if !used[ph] {
			missing = append(missing, ph)
		}
	}
	if len(missing) > 0 {
		p.add(path, "must contain {yyyy}, {MM}, {dd} and {HH} so that every hour has its own folder; missing %s", strings.Join(missing, ", "))
	}
	if len(c.Streams) > 1 && !used["{stream}"] {
		p.add(path, "must contain {stream} when there is more than one stream")
	}
	if strings.HasPrefix(tmpl, "/") || strings.HasSuffix(tmpl, "/") {
		p.add(path, "must be a relative path without leading or trailing '/'")
	} else {
		for seg := range strings.SplitSeq(tmpl, "/") {
			if seg == "" || seg == "." || seg == ".." {
				p.add(path, "must not contain empty, '.' or '..' segments")
				break
			}
		}
	}
	if strings.ContainsAny(tmpl, `\`) || strings.ContainsFunc(tmpl, isControl) {
		p.add(path, `must not contain '\' or control characters`)
	}
}

// placeholders are the names partitioning.path may use.
var placeholders = []string{"{stream}", "{yyyy}", "{MM}", "{dd}", "{HH}"}

// parseTemplate returns the set of placeholders tmpl uses.
func parseTemplate(tmpl string) (map[string]bool, error) {
	used := map[string]bool{}
	for rest := tmpl; rest != ""; {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			break
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("unmatched '}' in %q", tmpl)
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("unclosed '{' in %q", tmpl)
		}
		ph := rest[i : i+j+1]
		if !slices.Contains(placeholders, ph) {
			return nil, fmt.Errorf("unknown placeholder %s (want %s)", ph, strings.Join(placeholders, " "))
		}
		used[ph] = true
		rest = rest[i+j+1:]
	}
	return used, nil
}

func (c *Config) validateFiles(p *problems) {
	f := c.Files
	oneOf("files.compression", p, f.Compression, CompressionZstd, CompressionSnappy, CompressionGzip, CompressionNone)
	p.positiveSize("files.max_file_bytes", f.MaxFileBytes)
	p.positiveSize("files.row_group_bytes", f.RowGroupBytes)
	if f.RowGroupBytes > 0 && f.MaxFileBytes > 0 && f.RowGroupBytes > f.MaxFileBytes {
		p.add("files.row_group_bytes", "must not exceed files.max_file_bytes (%s), got %s", f.MaxFileBytes, f.RowGroupBytes)
	}
	p.required("files.spool_dir", f.SpoolDir)
	if f.MaxFileAge < 0 || (f.MaxFileAge > 0 && f.MaxFileAge < Duration(time.Second)) {
		p.add("files.max_file_age", "must be 0 (off) or at least 1s, got %s", f.MaxFileAge)
	}
	p.positiveSize("files.memory_limit", f.MemoryLimit)
	if f.MemoryLimit > 0 && c.Kafka.MaxRecordBytes > 0 && f.MemoryLimit < c.Kafka.MaxRecordBytes {
		p.add("files.memory_limit", "must be at least kafka.max_record_bytes (%s), got %s", c.Kafka.MaxRecordBytes, f.MemoryLimit)
	}
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL: %v", strings.TrimPrefix(err.Error(), "parse "))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an http:// or https:// URL with a host, got %q", u.Redacted())
	}
	return nil
}

// WebhookTemplateFuncs are the functions a markers.webhook.body template may
// call besides text/template's built-ins: json renders its argument as JSON.
// The sink executes the template with these same functions.
var WebhookTemplateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

func (c *Config) validateMarkers(p *problems) {
	m := c.Markers
	p.positiveDuration("markers.idle_partition_timeout", m.IdlePartitionTimeout)
	p.positiveDuration("markers.check_interval", m.CheckInterval)
	if m.KafkaTopic != "" {
		if checkTopic(p, "markers.kafka_topic", m.KafkaTopic) && m.KafkaTopic == c.DeadLetter.Topic {
			p.add("markers.kafka_topic", "must differ from dead_letter.topic")
		}
	}
	if m.Webhook.URL != "" {
		if err := checkURL(m.Webhook.URL); err != nil {
			p.add("markers.webhook.url", "%v", err)
		}
	}
	p.positiveDuration("markers.webhook.timeout", m.Webhook.Timeout)
	if m.Webhook.Body != "" {
		if _, err := template.New("body").Funcs(WebhookTemplateFuncs).Parse(m.Webhook.Body); err != nil {
			p.add("markers.webhook.body", "%v", err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.Webhook.Headers)) {
		hp := "markers.webhook.headers." + k
		if !validHeaderName(k) {
			p.add(hp, "invalid HTTP header name %q", k)
		}
		if strings.ContainsAny(m.Webhook.Headers[k], "\r\n\x00") {
			p.add(hp, "header value must not contain CR, LF or NUL")
		}
	}
}

func (c *Config) validateSchemaRegistry(p *problems) {
	r := c.SchemaRegistry
	var users []string
	for i, s := range c.Streams {
		if s.Format.UsesRegistry() {
			users = append(users, fmt.Sprintf("streams[%d]", i))
		}
	}
	if r.URL == "" {
		if len(users) > 0 {
			p.add("schema_registry.url", "required when a stream has format avro, protobuf or json_schema (%s)", strings.Join(users, ", "))
		}
	} else if err := checkURL(r.URL); err != nil {
		p.add("schema_registry.url", "%v", err)
	}
	if r.Password != "" && r.Username == "" {
		p.add("schema_registry.username", "required when password is set")
	}
	p.positiveDuration("schema_registry.timeout", r.Timeout)
	if r.TLS.CertFile != "" && r.TLS.KeyFile == "" {
		p.add("schema_registry.tls.key_file", "required when cert_file is set")
	}
	if r.TLS.KeyFile != "" && r.TLS.CertFile == "" {
		p.add("schema_registry.tls.cert_file", "required when key_file is set")
	}
}

// checkTopic reports whether t is a legal Kafka topic name, adding a problem if not.
func checkTopic(p *problems, path, t string) bool {
	switch {
	case t == "":
		p.add(path, "required")
		return false
	case len(t) > 249 || t == "." || t == ".." || strings.ContainsFunc(t, func(r rune) bool {
		return !(r == '.' || r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}):
		p.add(path, "invalid Kafka topic name %q (want at most 249 of letters, digits, '.', '_', '-')", t)
		return false
	}
	return true
}

func validStreamName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case (r == '.' || r == '_' || r == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func checkJSONPath(s string) error {
	if strings.ContainsFunc(s, isControl) {
		return fmt.Errorf("JSON path %q must not contain control characters", s)
	}
	for seg := range strings.SplitSeq(s, ".") {
		if seg == "" {
			return fmt.Errorf("JSON path %q has an empty segment (want keys joined by '.', like device.id)", s)
		}
	}
	return nil
}

// checkHostPort checks "host:port"; an empty host is allowed only for listening.
func checkHostPort(s string, listen bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", s)
	}
	if host == "" && !listen {
		return fmt.Errorf("want host:port, got %q (no host)", s)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return isControl(r) || r == ' ' || r == '/' }) {
		return fmt.Errorf("invalid host in %q", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !listen) {
		return fmt.Errorf("invalid port in %q", s)
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
