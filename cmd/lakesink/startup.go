package main

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/sink/ops"
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

// handler serves the endpoints while the process starts: /healthz and
// /metrics as the sink's handler does (ops.NewMux), and for the rest,
// /readyz included, 503 naming the start-up step.
func (s *startup) handler(gatherer prometheus.Gatherer) http.Handler {
	mux := ops.NewMux(gatherer)
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
