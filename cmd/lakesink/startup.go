package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/retry"
)

// startup is what the process is doing before the sink runs, for /readyz.
type startup struct {
	mu     sync.Mutex
	reason string
}

func (s *startup) set(reason string) {
	s.mu.Lock()
	s.reason = reason
	s.mu.Unlock()
}

func (s *startup) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// handler serves the endpoints while the process starts: /healthz 200,
// /readyz 503 naming the start-up step, /metrics; 503 for the rest.
func (s *startup) handler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(struct {
			Ready   bool     `json:"ready"`
			Reasons []string `json:"reasons"`
		}{false, []string{s.get()}})
	})
	return mux
}

// waitKafka checks the brokers until one answers (kafkaio.CheckKafka, each
// attempt bounded by the dialer's timeout), waiting with jittered backoff
// between attempts: a Kafka maintenance window during a rollout must not
// become a crash loop. It logs the problem when it starts and at most once
// a minute while it lasts. It returns nil when Kafka answered or ctx ended
// (SIGTERM while waiting), and an error once kafka.startup_timeout (when
// set) has passed.
func waitKafka(ctx context.Context, cfg config.Kafka, d *kafka.Dialer, log *slog.Logger, st *startup) error {
	start := time.Now()
	limit := time.Duration(cfg.StartupTimeout)
	wait := retry.NewBackoff(500*time.Millisecond, 15*time.Second)
	var logged time.Time
	for attempt := 1; ; attempt++ {
		st.set("waiting for kafka")
		actx, cancel := context.WithTimeout(ctx, max(d.Timeout, time.Second))
		err := kafkaio.CheckKafka(actx, d, cfg.Brokers)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("kafka reachable", "after", time.Since(start).Round(time.Second).String())
			}
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if limit > 0 && time.Since(start) >= limit {
			return fmt.Errorf("kafka not reachable within kafka.startup_timeout (%s): %w", limit, err)
		}
		st.set("waiting for kafka: " + err.Error())
		if logged.IsZero() || time.Since(logged) >= time.Minute {
			log.Warn("waiting for kafka", "err", err, "attempt", attempt, "waited", time.Since(start).Round(time.Second).String())
			logged = time.Now()
		}
		next := wait.Next()
		if limit > 0 {
			next = min(next, max(limit-time.Since(start), 0))
		}
		if !retry.Sleep(ctx, next) {
			return nil
		}
	}
}
