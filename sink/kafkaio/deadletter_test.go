package kafkaio

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestDeadLetter: the dead letter of a record names its reason and origin
// in headers, keeps value, timestamp and headers, and is keyed by its
// origin, so replays after a crash carry the same key.
func TestDeadLetter(t *testing.T) {
	src := kafka.Message{Topic: "clicks", Partition: 3, Offset: 1207, Key: []byte("user-9"), Value: []byte("{bad"),
		Time: time.Date(2026, 11, 25, 13, 0, 0, 5e6, time.UTC), Headers: []kafka.Header{{Key: "trace", Value: []byte("t1")}}}
	dl := DeadLetter(src, "clickstream", "bad_json", "unexpected end of input")
	if string(dl.Key) != "clicks/3/1207" {
		t.Errorf("key = %q, want clicks/3/1207", dl.Key)
	}
	if again := DeadLetter(src, "clickstream", "bad_json", "unexpected end of input"); string(again.Key) != string(dl.Key) {
		t.Errorf("a replay's key %q differs from %q", again.Key, dl.Key)
	}
	h := map[string]string{}
	for _, x := range dl.Headers {
		h[x.Key] = string(x.Value)
	}
	want := map[string]string{HeaderReason: "bad_json", HeaderError: "unexpected end of input", HeaderStream: "clickstream",
		HeaderTopic: "clicks", HeaderPartition: "3", HeaderOffset: "1207", HeaderTimestamp: "2026-11-25T13:00:00.005Z",
		HeaderKey: "user-9", "trace": "t1"}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
	if string(dl.Value) != "{bad" || !dl.Time.Equal(src.Time) {
		t.Errorf("value %q time %v, want the source's", dl.Value, dl.Time)
	}
	if nokey := DeadLetter(kafka.Message{Topic: "t", Offset: 1}, "s", "r", "d"); len(nokey.Headers) != 7 {
		t.Errorf("a record without key got %d headers, want 7 (no lakesink.key)", len(nokey.Headers))
	}
}
