package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/test/faultproxy"
)

// deadBroker returns an address where nothing listens, its port held
// for the test so that no other listener takes it.
func deadBroker(t *testing.T) string { return faultproxy.RefusingAddr(t) }

// silentBroker accepts connections and never answers.
func silentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func startupConfig(t *testing.T, broker string) *config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{broker}
	st := config.DefaultStream()
	st.Name, st.Topics = "events", []string{"events"}
	st.Schema = []config.SchemaColumn{{Name: "id", Type: "string"}}
	cfg.Streams = []config.Stream{st}
	cfg.Storage.Local.Root = t.TempDir()
	cfg.Files.SpoolDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	return cfg
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStartupWaitsForKafka: with the brokers down, or accepting connections
// without answering, `run` does not exit: HTTP answers from the start
// (/healthz 200, /readyz 503 saying it waits for Kafka), and a SIGTERM
// (ctx) ends it at once without an error.
func TestStartupWaitsForKafka(t *testing.T) {
	for name, broker := range map[string]string{"refused": deadBroker(t), "silent": silentBroker(t)} {
		t.Run(name, func(t *testing.T) {
			cfg := startupConfig(t, broker)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addr := make(chan string, 1)
			done := make(chan error, 1)
			go func() {
				done <- runSink(ctx, cfg, slog.New(slog.DiscardHandler), func(a string) { addr <- a })
			}()
			var base string
			select {
			case a := <-addr:
				base = "http://" + a
			case err := <-done:
				t.Fatalf("run returned %v instead of waiting for kafka", err)
			case <-time.After(5 * time.Second):
				t.Fatal("no HTTP server within 5 s")
			}
			if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
				t.Errorf("/healthz = %d, want 200", code)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				code, body := httpGet(t, base+"/readyz")
				if code == http.StatusServiceUnavailable && strings.Contains(body, "waiting for kafka: ") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("/readyz = %d %s, want 503 naming the wait for kafka and its error", code, body)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if code, _ := httpGet(t, base+"/metrics"); code != http.StatusOK {
				t.Errorf("/metrics = %d while starting, want 200", code)
			}
			select {
			case err := <-done:
				t.Fatalf("run returned %v while kafka is down", err)
			default:
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run after SIGTERM = %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("run did not return within 5 s of SIGTERM")
			}
		})
	}
}

// TestStartupTimeout: with kafka.startup_timeout set, run gives up after it
// with an error naming the setting.
func TestStartupTimeout(t *testing.T) {
	cfg := startupConfig(t, deadBroker(t))
	cfg.Kafka.StartupTimeout = config.Duration(1500 * time.Millisecond)
	start := time.Now()
	err := runSink(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "kafka not reachable within kafka.startup_timeout (1.5s)") {
		t.Fatalf("run = %v, want the start-up timeout", err)
	}
	if d := time.Since(start); d < 1400*time.Millisecond || d > 15*time.Second {
		t.Errorf("gave up after %v, want about 1.5 s", d)
	}
}

// TestStartupHandler: while starting, /healthz and /metrics answer as they
// will from the sink's handler (both are ops.NewMux), and everything else,
// /readyz included, is 503 naming the start-up step.
func TestStartupHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "lakesink_test_total", Help: "test"})
	reg.MustRegister(c)
	st := &startup{}
	st.set("connecting to storage")
	srv := httptest.NewServer(st.handler(reg))
	defer srv.Close()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/healthz", http.StatusOK, `{"status":"ok"}`},
		{"/metrics", http.StatusOK, "lakesink_test_total 0"},
		{"/readyz", http.StatusServiceUnavailable, `{"ready":false,"reasons":["connecting to storage"]}`},
		{"/api/status", http.StatusServiceUnavailable, "connecting to storage"},
	} {
		if code, body := httpGet(t, srv.URL+tc.path); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s = %d %q, want %d with %q", tc.path, code, body, tc.code, tc.body)
		}
	}
}
