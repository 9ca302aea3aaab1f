package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/test/testenv"
)

// TestPoisonRecords sends records that must not stop a partition — too
// large, invalid UTF-8, a number out of range for its column, an object
// where a scalar belongs — while the dead-letter topic is missing. The
// partition waits (its committed offset stays below the first poison record
// and /readyz says why) instead of dropping them; once the topic is back,
// every poison record is on it with its reason and the partition goes on.
func TestPoisonRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "clickstream", 1)
	k.CreateTopic(t, "iot-telemetry", 1)
	const group, dlq = "lakesink-poison", "lakesink-dlq"
	b := localBackend(t)
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	cfgPath := writeConfig(t, k.Addr, group, b.storage, httpAddr)
	editConfig(t, cfgPath, "  commit_interval: 500ms\n", "  commit_interval: 500ms\n  max_record_bytes: 2KiB\n")
	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"), testenv.Options{}, "run", "-c", cfgPath)

	ts := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour).UnixMilli()
	valid := func(i int) []byte {
		return fmt.Appendf(nil, `{"event_id":"ok-%d","ts":%d,"url":"/p","quantity":1}`, i, ts+int64(i))
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr), Topic: "clickstream", BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	send := func(vals ...[]byte) {
		t.Helper()
		var msgs []kafka.Message
		for _, v := range vals {
			msgs = append(msgs, kafka.Message{Value: v})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	send(valid(0), valid(1), valid(2))
	waitOffsets(t, k, group, "clickstream", 3)

	// The dead-letter topic disappears.
	if _, err := k.Client().DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{dlq}}); err != nil {
		t.Fatal(err)
	}
	poison := map[string][]byte{
		"oversized":    fmt.Appendf(nil, `{"event_id":"big","ts":%d,"url":"%s"}`, ts, strings.Repeat("x", 3000)),
		"bad_utf8":     fmt.Appendf(nil, "{\"event_id\":\"utf\",\"ts\":%d,\"url\":\"caf\xe9\"}", ts), // a Latin-1 byte
		"out_of_range": fmt.Appendf(nil, `{"event_id":"range","ts":%d,"quantity":30000000000}`, ts),
		"wrong_type":   fmt.Appendf(nil, `{"event_id":"nested","ts":%d,"url":{"path":"/"}}`, ts),
	}
	var vals [][]byte
	for _, reason := range []string{"oversized", "bad_utf8", "out_of_range", "wrong_type"} {
		vals = append(vals, poison[reason])
	}
	send(append(vals, valid(3), valid(4))...)
	// The partition waits: nothing past the first poison record (offset 3)
	// is committed while the dead-letter topic is unavailable.
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, "/readyz naming the dead-letter topic", func() error {
		code, body := httpGet(httpAddr, "/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "dead-letter topic unavailable") {
			return nil
		}
		return fmt.Errorf("/readyz: %d %s", code, body)
	})
	time.Sleep(2 * time.Second)
	if committed, _ := k.CommittedOffsets(t, group, "clickstream", 1); committed[0] > 3 {
		t.Fatalf("committed offset %d passed poison records that are not on the dead-letter topic", committed[0])
	}

	k.CreateTopic(t, dlq, 1)
	waitOffsets(t, k, group, "clickstream", 9)
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, "/readyz recovering", func() error {
		if code, body := httpGet(httpAddr, "/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})

	got := map[string]string{}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{k.Addr}, Topic: dlq, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(got) < len(poison) {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read dead letters: %v (got %v)", err, got)
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		got[h[kafkaio.HeaderReason]] = string(m.Value)
		if h[kafkaio.HeaderTopic] != "clickstream" || h[kafkaio.HeaderPartition] != "0" || h[kafkaio.HeaderOffset] == "" {
			t.Errorf("dead letter %s: origin headers %v", h[kafkaio.HeaderReason], h)
		}
	}
	for reason, v := range poison {
		if got[reason] != string(v) {
			t.Errorf("reason %s: dead letter %q, want the record unchanged (got reasons %v)", reason, got[reason], keys(got))
		}
	}
	proc.Stop(20 * time.Second)
	if err := proc.ExitErr(); err != nil {
		t.Errorf("lakesink exit: %v", err)
	}
}

// waitOffsets waits until the group has committed offset n on partition 0.
func waitOffsets(t *testing.T, k *testenv.Kafka, group, topic string, n int64) {
	t.Helper()
	testenv.Eventually(t, time.Minute, 250*time.Millisecond, fmt.Sprintf("%s committed to %d", topic, n), func() error {
		committed, _, err := k.TryCommittedOffsets(group, topic, 1)
		if err != nil {
			return err
		}
		if committed[0] != n {
			return fmt.Errorf("committed %d", committed[0])
		}
		return nil
	})
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
