package ops

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/writers"
)

// TestNewMux: /healthz and /metrics answer alike from NewMux alone (what
// cmd/lakesink serves while starting) and from the full Handler.
func TestNewMux(t *testing.T) {
	now := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	o, reg := newTestOps(t, writers.NewMemory(), &now)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "lakesink_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	for name, h := range map[string]http.Handler{"NewMux": NewMux(reg), "Handler": o.Handler(reg)} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "{\"status\":\"ok\"}\n" || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("/healthz = %d %q (Content-Type %q)", resp.StatusCode, body, resp.Header.Get("Content-Type"))
			}
			if code, body := get(t, srv.URL+"/metrics"); code != http.StatusOK || !strings.Contains(body, "lakesink_test_total 1") {
				t.Errorf("/metrics = %d %q", code, body)
			}
			resp, err = http.Post(srv.URL+"/healthz", "text/plain", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
			}
		})
	}
	srv := httptest.NewServer(NewMux(reg))
	defer srv.Close()
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusNotFound {
		t.Errorf("NewMux serves /readyz (%d): that is the caller's", code)
	}
}
