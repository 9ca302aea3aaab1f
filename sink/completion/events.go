package completion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"text/template"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/retry"
)

// Event is the completion event of one revision of an hour: the manifest
// plus what Airflow needs to address the data. Stream, Hour and Revision
// identify it; events are delivered at least once, so consumers deduplicate
// on those three.
type Event struct {
	Manifest
	// AssetURI names the stream's data in the lake: s3://bucket/prefix/stream,
	// gs://bucket/prefix/stream, hdfs://namenode/root/stream or
	// file:///abs/root/stream.
	AssetURI string `json:"asset_uri"`
	// PartitionKey is the folder's hour in the stream's time zone without
	// offset, 2026-11-25T13:00:00 (Airflow partitioned assets): one key per
	// folder, so the folder that both 01:00 hours of a fall-back night
	// render into has one key, and a bucket that starts at a half hour
	// (Australia/Lord_Howe) has its folder's whole-hour key.
	PartitionKey string `json:"partition_key"`
	// Marker is the key of the hour's _SUCCESS, relative to the storage root.
	Marker string `json:"marker"`
}

// newEvent builds the event of manifest m of an hour whose marker is key.
func newEvent(m Manifest, hour time.Time, assetURI, key string) Event {
	return Event{Manifest: m, AssetURI: assetURI, PartitionKey: hour.Format("2006-01-02T15") + ":00:00", Marker: key}
}

// assetURI returns the URI of stream's data under the configured storage
// (config.Storage.URL).
func assetURI(st config.Storage, stream string) string { return st.URL(stream) }

// Notifier delivers completion events to the Kafka completion topic
// (markers.kafka_topic) and the webhook (markers.webhook), whichever are
// configured. It is safe for concurrent use: the finalizer delivers each
// stream's events from the stream's own goroutine.
type Notifier struct {
	log     *slog.Logger
	admin   *kafkaio.Admin
	kafka   *kafka.Writer // nil: no topic; safe for concurrent use
	topic   string
	webhook *webhook // nil: no webhook; safe for concurrent use
	mu      sync.Mutex
	created bool // the completion topic exists (guarded by mu)
	storage config.Storage
	// faults, if set, is told about failed and successful deliveries.
	faults Faults
	// backoff bounds between attempts (tests shorten them).
	minBackoff, maxBackoff time.Duration
}

// NewNotifier returns the Notifier of cfg's markers section, producing
// through admin. It does not connect; Close releases the producer.
func NewNotifier(cfg *config.Config, admin *kafkaio.Admin, log *slog.Logger) (*Notifier, error) {
	n := &Notifier{log: log, admin: admin, storage: cfg.Storage, minBackoff: 100 * time.Millisecond, maxBackoff: 30 * time.Second}
	if t := cfg.Markers.KafkaTopic; t != "" {
		n.topic = t
		// Keyed by stream: one partition per stream keeps its order.
		n.kafka = admin.Producer(t, time.Millisecond, 0)
	}
	if cfg.Markers.Webhook.URL != "" {
		wh, err := newWebhook(cfg.Markers.Webhook)
		if err != nil {
			return nil, err
		}
		n.webhook = wh
	}
	return n, nil
}

// Enabled reports whether any destination is configured.
func (n *Notifier) Enabled() bool { return n != nil && (n.kafka != nil || n.webhook != nil) }

// AssetURI returns the URI of stream's data in the configured storage.
func (n *Notifier) AssetURI(stream string) string { return assetURI(n.storage, stream) }

// Close releases the Kafka producer. Safe on a nil Notifier.
func (n *Notifier) Close() {
	if n != nil && n.kafka != nil {
		_ = n.kafka.Close()
	}
}

// SetFaults makes the Notifier report each delivery's outcome to f.
func (n *Notifier) SetFaults(f Faults) {
	if n != nil {
		n.faults = f
	}
}

// Destinations, as reported to Faults (the names of ops' dependencies).
const (
	depCompletionTopic = "completion_topic"
	depWebhook         = "webhook"
)

// Deliver sends ev to every destination, each until it is accepted
// (retrying with jittered backoff), or until ctx ends. While a destination
// refuses, the stream's later markers wait (events go out in hour order);
// Faults is told, so readiness and lakesink_dependency_errors_total show
// it.
func (n *Notifier) Deliver(ctx context.Context, ev Event) error {
	if n.kafka != nil {
		if err := n.retry(ctx, ev.Stream, depCompletionTopic, func(ctx context.Context) error { return n.sendKafka(ctx, ev) }); err != nil {
			return err
		}
	}
	if n.webhook != nil {
		if err := n.retry(ctx, ev.Stream, depWebhook, func(ctx context.Context) error { return n.webhook.send(ctx, ev) }); err != nil {
			return err
		}
	}
	return nil
}

func (n *Notifier) retry(ctx context.Context, stream, dep string, f func(context.Context) error) error {
	failed := false
	err := retry.Until(ctx, retry.NewBackoff(n.minBackoff, n.maxBackoff), f, func(attempt int, err error) {
		failed = true
		if n.faults != nil {
			n.faults.Events(stream, dep, err)
			n.log.Debug("completion event not delivered, retrying", "to", dep, "attempt", attempt, "err", err)
			return
		}
		n.log.Warn("completion event not delivered, retrying", "to", dep, "attempt", attempt, "err", err)
	})
	if err == nil && failed && n.faults != nil {
		n.faults.Events(stream, dep, nil)
	}
	return err
}

func (n *Notifier) sendKafka(ctx context.Context, ev Event) error {
	if err := n.createTopic(ctx); err != nil {
		return err
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := n.kafka.WriteMessages(ctx, kafka.Message{Key: []byte(ev.Stream), Value: b}); err != nil {
		return fmt.Errorf("produce to %s: %w", n.topic, err)
	}
	return nil
}

// createTopic creates the completion topic once (a refusal is only a
// warning: the topic may exist or be created by an operator).
func (n *Notifier) createTopic(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.created {
		return nil
	}
	err := n.admin.CreateTopic(ctx, n.topic)
	if err != nil && !errors.Is(err, kafkaio.ErrCreateRefused) {
		return err
	}
	if err != nil {
		n.log.Warn("create completion topic", "topic", n.topic, "err", err)
	}
	n.created = true
	return nil
}

// DefaultWebhookBody is the body sent when markers.webhook.body is empty:
// the event as JSON. For Airflow's POST /api/v2/assets/events, which wants
// the numeric asset_id, set a body such as
//
//	{"asset_id": 7, "partition_key": {{json .PartitionKey}}, "extra": {{json .}}}
const DefaultWebhookBody = `{{json .}}`

// webhook POSTs events to an HTTP endpoint.
type webhook struct {
	url     string
	headers map[string]string
	body    *template.Template
	client  *http.Client
}

func newWebhook(c config.Webhook) (*webhook, error) {
	src := c.Body
	if src == "" {
		src = DefaultWebhookBody
	}
	t, err := template.New("body").Funcs(config.WebhookTemplateFuncs).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("markers.webhook.body: %w", err)
	}
	return &webhook{url: c.URL, headers: c.Headers, body: t,
		client: &http.Client{Timeout: time.Duration(c.Timeout)}}, nil
}

// render executes the body template over ev.
func (h *webhook) render(ev Event) ([]byte, error) {
	var buf bytes.Buffer
	if err := h.body.Execute(&buf, ev); err != nil {
		return nil, fmt.Errorf("render webhook body: %w", err)
	}
	return buf.Bytes(), nil
}

func (h *webhook) send(ctx context.Context, ev Event) error {
	body, err := h.render(ev)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("%s/%s/%d", ev.Stream, ev.Hour, ev.Revision))
	for k, v := range h.headers {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// The URL may carry credentials: report only the error kind.
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap()
		}
		return fmt.Errorf("webhook post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook post: status %s", resp.Status)
	}
	return nil
}
