package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/registry"
)

// Avro, Protobuf and JSON Schema streams (Confluent wire format, schemas
// from a Schema Registry; see package confluent for the decoding rules).
//
//   - Columns: the stream's schema list when it has one, else derived from
//     each record's writer schema.
//   - Files: every file holds records of one writer schema id. A record whose
//     schema id differs from that of the open file of its hour finishes that
//     file (uploaded, as at the size cap) and starts a new one with the new
//     Parquet schema. The id is written to the file footer under
//     MetaSchemaID and listed per file in the hour manifest (schema_id).
//   - Registry outages: a record whose schema cannot be fetched is not bad
//     data. The partition waits and retries the same record with capped
//     exponential backoff (never skipped, never dead-lettered); /readyz says
//     why meanwhile. Unknown ids, truncated records, wrong magic bytes and
//     writer schemas that do not fit the stream go to the dead-letter topic
//     with their reason.

// MetaSchemaID is the Parquet footer key holding the writer schema id of an
// avro or protobuf file's records (decimal).
const MetaSchemaID = "lakesink.schema_id"

// recordDecoder turns one record value into a row in column order and its
// event time. A bad record's error is a *decode.Error; any other error is
// transient (the schema registry could not be asked). *decode.Decoder and
// *confluent.Decoder implement it.
type recordDecoder interface {
	Decode(value []byte, recordTime time.Time) ([]parquet.Value, time.Time, error)
}

// newRecordDecoder builds a worker's decoder for st. For avro and protobuf
// streams the second result is the same decoder, typed, for its schema
// accessors; it is nil for json.
func newRecordDecoder(st *stream, schemas *registry.Client) (recordDecoder, *confluent.Decoder, error) {
	if !st.format.UsesRegistry() {
		d, err := decode.New(st.spec)
		if err != nil {
			return nil, nil, err
		}
		return d, nil, nil
	}
	if schemas == nil {
		return nil, nil, errors.New("format " + string(st.format) + " needs schema_registry.url")
	}
	d, err := confluent.New(st.cspec)
	if err != nil {
		return nil, nil, err
	}
	return d, d, nil
}

// compileRegistryStream compiles an avro or protobuf stream. Its columns
// come from the schema list if any (stream.schema fixed), else from each
// writer schema (stream.schema nil).
func compileRegistryStream(sc config.Stream, tmpl *partitioner.PathTemplate, maxBytes int, schemas *registry.Client) (*stream, error) {
	format, err := confluent.ParseFormat(string(sc.Format))
	if err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	if schemas == nil {
		return nil, fmt.Errorf("format %s: schema_registry.url is required", sc.Format)
	}
	spec := confluent.Spec{
		Stream: sc.Name, Format: format, Registry: schemas,
		TimePath: sc.Time.Field, TimeFormat: decode.UnixMillis, MaxBytes: maxBytes,
	}
	if sc.Time.Format != "" {
		if spec.TimeFormat, err = decode.ParseTimeFormat(string(sc.Time.Format)); err != nil {
			return nil, fmt.Errorf("time.format: %w", err)
		}
	}
	if sc.Subject != "" {
		// One pin per stream: every partition reads plain JSON values
		// with the same version of the subject.
		spec.Subject = confluent.NewSubject(sc.Subject)
	}
	var schema *partitioner.Schema
	if len(sc.Schema) > 0 {
		cols, err := sc.Columns()
		if err != nil {
			return nil, err
		}
		if schema, err = partitioner.NewSchema(sc.Name, cols); err != nil {
			return nil, err
		}
		for i, f := range sc.Schema {
			spec.Fields = append(spec.Fields, decode.Field{Column: cols[i], Path: f.Path})
		}
	}
	// Fail at start-up rather than in the first worker.
	if _, err := confluent.New(spec); err != nil {
		return nil, err
	}
	st := newStream(sc, tmpl)
	st.schema, st.cspec = schema, spec
	return st, nil
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
	r := cfg.SchemaRegistry
	rc := registry.Config{URL: r.URL, Username: r.Username, Password: r.Password, Timeout: time.Duration(r.Timeout)}
	if strings.HasPrefix(r.URL, "https:") || r.TLS != (config.RegistryTLS{}) {
		tc, err := registry.LoadTLS(r.TLS.CAFile, r.TLS.CertFile, r.TLS.KeyFile, r.TLS.InsecureSkipVerify)
		if err != nil {
			return nil, fmt.Errorf("schema_registry.tls: %w", err)
		}
		rc.TLS = tc
	}
	c, err := registry.New(rc)
	if err != nil {
		return nil, fmt.Errorf("schema_registry: %w", err)
	}
	return c, nil
}

// schemaExtra is the footer metadata of a file of writer schema id (none
// for json files).
func schemaExtra(id int) map[string]string {
	if id == 0 {
		return nil
	}
	return map[string]string{MetaSchemaID: strconv.Itoa(id)}
}

// errDraining ends a registry wait when the sink shuts down: the worker
// finishes its files and commits below the record, which is replayed.
var errDraining = errors.New("shutting down while waiting for the schema registry")

// isRecordError reports whether err is about the record itself (it goes to
// the dead-letter topic) rather than the registry being unreachable.
func isRecordError(err error) bool {
	var de *decode.Error
	return errors.As(err, &de)
}

// retryDecode handles a failed Decode of an avro or protobuf record. A bad
// record's error is returned as it is. If the registry could not be asked,
// the same record is decoded again with capped exponential backoff and
// jitter until it decodes or turns out bad; it returns errDraining or the
// context's error if the sink shuts down or the partition is revoked
// meanwhile.
func (w *worker) retryDecode(ctx context.Context, m kafka.Message, err error) ([]parquet.Value, time.Time, error) {
	if isRecordError(err) {
		return nil, time.Time{}, err
	}
	rh := &w.s.regHealth
	rh.begin(err)
	defer rh.end()
	wait := newBackoff(100*time.Millisecond, 10*time.Second)
	for attempt := 1; ; attempt++ {
		w.log.Warn("schema registry unreachable, partition waits", "offset", m.Offset, "attempt", attempt, "err", err)
		t := time.NewTimer(wait.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, time.Time{}, ctx.Err()
		case <-w.drain:
			t.Stop()
			return nil, time.Time{}, errDraining
		case <-t.C:
		}
		row, ev, derr := w.dec.Decode(m.Value, m.Time)
		if derr == nil || isRecordError(derr) {
			return row, ev, derr
		}
		err = derr
		rh.update(err)
	}
}

// registryHealth tracks partitions waiting for the schema registry, for
// /readyz. Safe for concurrent use.
type registryHealth struct {
	mu      sync.Mutex
	waiting int // partitions in retryDecode
	lastErr string
}

// begin counts a partition that starts waiting; end uncounts it.
func (h *registryHealth) begin(err error) {
	h.mu.Lock()
	h.waiting++
	h.lastErr = err.Error()
	h.mu.Unlock()
}

// update records the latest error of a waiting partition.
func (h *registryHealth) update(err error) {
	h.mu.Lock()
	h.lastErr = err.Error()
	h.mu.Unlock()
}

func (h *registryHealth) end() {
	h.mu.Lock()
	h.waiting--
	h.mu.Unlock()
}

// reasons returns the readiness problem while any partition waits.
func (h *registryHealth) reasons() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiting == 0 {
		return nil
	}
	return []string{fmt.Sprintf("schema registry unreachable (%d partitions waiting): %s", h.waiting, h.lastErr)}
}
