package sink

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/worker"
	"github.com/lakesink/lakesink/writers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func avroConfig(url string, withColumns bool) *config.Config {
	cfg := testConfig("127.0.0.1:9092")
	cfg.SchemaRegistry.URL = url
	cfg.Streams[0].Format = config.FormatAvro
	if !withColumns {
		cfg.Streams[0].Schema = nil
	}
	return cfg
}

// TestFormatsNew: New compiles each format, with the registry client only
// where needed.
func TestFormatsNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *config.Config
		wantErr string
		derived bool
	}{
		{name: "json", cfg: testConfig("127.0.0.1:9092")},
		{name: "avro derived", cfg: avroConfig("http://127.0.0.1:8081", false), derived: true},
		{name: "avro fixed", cfg: avroConfig("http://127.0.0.1:8081", true)},
		{name: "avro without registry", cfg: avroConfig("", false), wantErr: "schema_registry"},
		{name: "bad tls files", cfg: func() *config.Config {
			c := avroConfig("https://127.0.0.1:8081", false)
			c.SchemaRegistry.TLS.CAFile = filepath.Join(t.TempDir(), "missing.pem")
			return c
		}(), wantErr: "schema_registry.tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Files.SpoolDir = t.TempDir()
			reg := prometheus.NewRegistry()
			s, err := New(Options{Config: tt.cfg, Writer: writers.NewMemory(), Registry: reg})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st := s.streams[0]
			if st.Fixed() == tt.derived {
				t.Errorf("fixed columns = %v, want derived %v", st.Fixed(), tt.derived)
			}
			usesRegistry := tt.cfg.Streams[0].Format.UsesRegistry()
			// The Confluent reasons are pre-registered (at 0) only when needed.
			n := testutil.CollectAndCount(s.metrics.Worker.DeadLetters)
			if want := map[bool]int{true: len(confluent.Reasons()), false: 0}[usesRegistry]; n != want {
				t.Errorf("dead-letter series = %d, want %d", n, want)
			}
			// Every stream's worker can be built.
			if _, err := worker.New(s.env, st, "events", 0, worker.Generation{ID: 1, Member: "m", Partitions: 1}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
