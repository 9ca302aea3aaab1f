package config

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lakesink/lakesink/partitioner"
)

// JSONPath returns where the column's value is read from in the record:
// Path, or Name when Path is empty.
func (c SchemaColumn) JSONPath() string {
	if c.Path != "" {
		return c.Path
	}
	return c.Name
}

// Location returns the stream's time zone. Validate has checked that it
// loads; if it does not, Location returns UTC. Each call loads the zone
// anew: call it once per stream and keep the result.
func (s Stream) Location() *time.Location {
	if s.Time.Timezone == "" || s.Time.Timezone == "Local" {
		return time.UTC
	}
	loc, err := time.LoadLocation(s.Time.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Columns returns the stream's schema as partitioner columns, in order. It
// fails only for a type Validate would have rejected.
func (s Stream) Columns() ([]partitioner.Column, error) {
	cols := make([]partitioner.Column, 0, len(s.Schema))
	for i, c := range s.Schema {
		t, err := partitioner.ParseColumnType(c.Type)
		if err != nil {
			return nil, fmt.Errorf("stream %s: schema[%d] %s: %w", s.Name, i, c.Name, err)
		}
		cols = append(cols, partitioner.Column{Name: c.Name, Type: t, Required: c.Required})
	}
	return cols, nil
}

// Topics returns every stream topic, in config order.
func (c *Config) Topics() []string {
	var ts []string
	for _, s := range c.Streams {
		ts = append(ts, s.Topics...)
	}
	return ts
}

// Summary describes c in one line for `lakesink validate`, e.g.
// "config ok: 2 streams (clickstream, iot), 3 topics, storage local ./lake".
// It never contains secrets: no credentials, header values or URLs with
// user information.
func (c *Config) Summary() string {
	names := make([]string, len(c.Streams))
	for i, s := range c.Streams {
		names[i] = s.Name
	}
	return fmt.Sprintf("config ok: %s (%s), %s, storage %s %s",
		plural(len(c.Streams), "stream"), strings.Join(names, ", "),
		plural(len(c.Topics()), "topic"), c.Storage.Type, c.Storage.Location())
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// RedactedValue replaces secrets in Config.Redacted.
const RedactedValue = "<redacted>"

// Redacted returns a deep copy of c that is safe to log: the SASL and
// schema registry passwords and every webhook header value are replaced by
// RedactedValue, and the password in any user information of the webhook,
// schema registry and storage endpoint URLs by "xxxxx" (url.URL.Redacted).
// Empty secrets stay empty, so a log still shows that none is set. c is not
// modified.
func (c *Config) Redacted() *Config {
	r := *c
	r.Kafka.Brokers = slices.Clone(c.Kafka.Brokers)
	if r.Kafka.SASL.Password != "" {
		r.Kafka.SASL.Password = RedactedValue
	}
	r.Streams = slices.Clone(c.Streams)
	for i := range r.Streams {
		r.Streams[i].Topics = slices.Clone(r.Streams[i].Topics)
		r.Streams[i].Schema = slices.Clone(r.Streams[i].Schema)
		r.Streams[i].Table = tableSecrets(r.Streams[i].Table)
	}
	r.Storage.HDFS.Namenodes = slices.Clone(c.Storage.HDFS.Namenodes)
	r.Storage.S3.Endpoint = redactURL(r.Storage.S3.Endpoint)
	if r.Storage.S3.SecretAccessKey != "" {
		r.Storage.S3.SecretAccessKey = RedactedValue
	}
	if r.Storage.S3.SessionToken != "" {
		r.Storage.S3.SessionToken = RedactedValue
	}
	r.Storage.GCS.Endpoint = redactURL(r.Storage.GCS.Endpoint)
	r.SchemaRegistry.URL = redactURL(r.SchemaRegistry.URL)
	if r.SchemaRegistry.Password != "" {
		r.SchemaRegistry.Password = RedactedValue
	}
	r.Markers.Webhook.URL = redactURL(r.Markers.Webhook.URL)
	r.Markers.Webhook.Headers = maps.Clone(c.Markers.Webhook.Headers)
	for k, v := range r.Markers.Webhook.Headers {
		if v != "" {
			r.Markers.Webhook.Headers[k] = RedactedValue
		}
	}
	return &r
}

// Secrets returns the non-empty secret values of c — what Redacted
// replaces: passwords, keys, tokens, webhook header values, secret catalog
// properties and the passwords in URL user information — for tools that
// must scrub them from error text they did not write (a backend's or a
// catalog's error may quote a URL or a request).
func (c *Config) Secrets() []string {
	var out []string
	add := func(vs ...string) {
		for _, v := range vs {
			if v != "" && v != RedactedValue {
				out = append(out, v)
			}
		}
	}
	urlPass := func(s string) string {
		if u, err := url.Parse(s); err == nil && u.User != nil {
			p, _ := u.User.Password()
			return p
		}
		return ""
	}
	add(c.Kafka.SASL.Password, c.Storage.S3.SecretAccessKey, c.Storage.S3.SessionToken, c.SchemaRegistry.Password)
	add(urlPass(c.Markers.Webhook.URL), urlPass(c.Storage.S3.Endpoint), urlPass(c.Storage.GCS.Endpoint), urlPass(c.SchemaRegistry.URL))
	for _, v := range c.Markers.Webhook.Headers {
		add(v)
	}
	for _, s := range c.Streams {
		if s.Table == nil {
			continue
		}
		add(s.Table.Catalog.Token, urlPass(s.Table.Catalog.URI))
		for k, v := range s.Table.Catalog.Properties {
			if secretProperty(k) {
				add(v)
			}
		}
	}
	return out
}

// redactURL replaces the password in s's user information, if any. A URL
// that does not parse but has an '@' is replaced entirely.
func redactURL(s string) string {
	if s == "" {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return RedactedValue
		}
		return s
	}
	if _, has := u.User.Password(); !has {
		return s
	}
	return u.Redacted()
}
