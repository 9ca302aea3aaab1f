package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/writers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// kfake's cluster and kafka-go's shared transport keep background
		// goroutines for the life of the process.
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*conn).run"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func testConfig(broker string) *config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{broker}
	cfg.Kafka.GroupID = "sink-test"
	cfg.Kafka.CommitInterval = config.Duration(200 * time.Millisecond)
	st := config.DefaultStream()
	st.Name = "events"
	st.Topics = []string{"events"}
	st.Time = config.StreamTime{Field: "ts", Format: config.TimeUnixMillis, Timezone: "UTC"}
	st.Schema = []config.SchemaColumn{{Name: "id", Type: "int64", Required: true}, {Name: "ts", Type: "timestamp_ms"}}
	cfg.Streams = []config.Stream{st}
	cfg.Markers.IdlePartitionTimeout = config.Duration(time.Second)
	cfg.Markers.CheckInterval = config.Duration(200 * time.Millisecond)
	cfg.HTTP.Listen = "127.0.0.1:0"
	return cfg
}

// TestSinkMarkers runs the sink in-process against kfake and a memory lake:
// records in two hours with an empty hour between them, on two of three
// partitions. Every hour gets its marker — the empty one with an empty file
// list — although one partition never receives a record.
func TestSinkMarkers(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	cfg := testConfig(broker)
	cfg.Files.SpoolDir = t.TempDir()

	base := time.Now().UTC().Truncate(time.Hour).Add(-6 * time.Hour)
	hours := []time.Time{base, base.Add(time.Hour), base.Add(2 * time.Hour)} // the middle one stays empty
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "events", Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int {
		return int(m.Key[0] - '0')
	}), BatchTimeout: time.Millisecond}
	var msgs []kafka.Message
	id := 0
	for _, h := range []time.Time{hours[0], hours[2]} {
		for i := 0; i < 100; i++ {
			id++
			msgs = append(msgs, kafka.Message{Key: []byte{byte('0' + id%2)}, Value: fmt.Appendf(nil, `{"id":%d,"ts":%d}`, id, h.Add(time.Duration(i)*time.Second).UnixMilli())})
		}
	}
	msgs = append(msgs, kafka.Message{Key: []byte("1"), Value: []byte(`{"id":"not a number","ts":1}`)})
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	lake := writers.NewMemory()
	reg := prometheus.NewRegistry()
	s, err := New(Options{Config: cfg, Writer: lake, Registry: reg, Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler(reg))
	defer srv.Close()
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "consumer group not joined") {
		t.Errorf("readyz before start: %d %s", code, body)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	key := func(h time.Time) string {
		return fmt.Sprintf("events/dt=%s/hour=%s/_SUCCESS", h.Format("2006-01-02"), h.Format("15"))
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range hours {
		for {
			if ok, _ := lake.Exists(context.Background(), key(h)); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no marker %s", key(h))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("readyz while running: %d %s", code, body)
	}
	want := map[time.Time]int64{hours[0]: 100, hours[1]: 0, hours[2]: 100}
	for h, n := range want {
		rc, err := lake.Get(context.Background(), key(h))
		if err != nil {
			t.Fatal(err)
		}
		var m completion.Manifest
		err = json.NewDecoder(rc).Decode(&m)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if m.Records != n || m.Files == nil || (n == 0) != (len(m.Files) == 0) {
			t.Errorf("hour %s: manifest has %d records in %d files, want %d records", h, m.Records, len(m.Files), n)
		}
		if m.Hour != h.Format(time.RFC3339) || m.Stream != "events" || m.Version != completion.ManifestVersion || m.Revision != 1 {
			t.Errorf("hour %s: manifest %+v", h, m)
		}
	}
	if got := testutil.ToFloat64(s.metrics.Worker.DeadLetters.WithLabelValues("wrong_type")); got != 1 {
		t.Errorf("dead letters (wrong_type) = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.metrics.Worker.RecordsWritten.WithLabelValues("events")); got != 200 {
		t.Errorf("records written = %v, want 200", got)
	}
	if got := testutil.ToFloat64(s.metrics.Completion.HoursCompleted.WithLabelValues("events")); got < 3 {
		t.Errorf("hours completed = %v, want at least 3", got)
	}
	_, body := get(t, srv.URL+"/metrics")
	for _, name := range []string{"lakesink_consumer_lag_records", "lakesink_records_consumed_total", "lakesink_files_committed_total", "lakesink_dead_letter_records_total", "lakesink_watermark_timestamp_seconds"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
