package main

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
