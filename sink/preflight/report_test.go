package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestWrite: the table's columns line up, each result starts with its
// status, a multi-line error stays on its row, skipped checks have no
// time, and the closing line counts the outcomes.
func TestWrite(t *testing.T) {
	checks := []Check{
		{Dependency: "kafka brokers", Endpoint: "k1:9092,k2:9092", Status: Passed, Result: "metadata read", Took: 3 * time.Millisecond},
		{Dependency: "kafka topic", Endpoint: "clicks (stream clicks)", Status: Skipped, Result: "needs kafka brokers"},
		{Dependency: "storage", Endpoint: "s3://lake/raw", Status: Failed, Result: "403 Forbidden:\nthe credentials cannot write s3://lake/raw", Took: 1204 * time.Millisecond},
		{Dependency: "webhook", Endpoint: "", Status: Passed, Took: 10 * time.Microsecond},
	}
	var b bytes.Buffer
	if err := Write(&b, checks); err != nil {
		t.Fatal(err)
	}
	want := `DEPENDENCY     ENDPOINT                TIME    RESULT
kafka brokers  k1:9092,k2:9092         3ms     ok: metadata read
kafka topic    clicks (stream clicks)  -       skipped: needs kafka brokers
storage        s3://lake/raw           1.204s  FAIL: 403 Forbidden:; the credentials cannot write s3://lake/raw
webhook        -                       <1ms    ok

1 of 4 checks failed (2 ok, 1 skipped)
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := Write(&b, checks[:1]); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(b.String(), "\nall 1 checks passed\n") {
		t.Errorf("all passed: %q", b.String())
	}
}

// TestEndpointURL: endpoints never show user information, and a query
// (which may carry a token) only as "?…".
func TestEndpointURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://registry:8081", "https://registry:8081"},
		{"https://user:hunter2@registry:8081/", "https://registry:8081/"},
		{"https://token@hooks.example/x", "https://hooks.example/x"},
		{"https://hooks.example/x?token=hunter2#frag", "https://hooks.example/x?…"},
		{"/var/lib/catalog.db", "/var/lib/catalog.db"},
		{"http://u:p@[::1", "<unparsable URL>"},
	} {
		if got := endpointURL(tc.in); got != tc.want {
			t.Errorf("endpointURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestExplain: the network's failures in an operator's words, whatever
// wraps them; other errors as they are.
func TestExplain(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("connect to kafka: k1:9092: %w", refused), "connection refused"},
		{fmt.Errorf("put: %w", context.DeadlineExceeded), "no answer within 3s"},
		{&net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, "no answer within 3s"},
		{fmt.Errorf("dial: %w", &net.DNSError{Name: "kafka.nowhere", Err: "no such host", IsNotFound: true}), "host kafka.nowhere not found"},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), "connection reset by the server"},
		{failf(refused, "worded"), "connection refused"},
		{failf(errors.New("x"), "topic clicks does not exist"), "topic clicks does not exist"},
		{fmt.Errorf("metadata: %w", kafka.TopicAuthorizationFailed), "metadata: " + kafka.TopicAuthorizationFailed.Error()},
	} {
		if got := explain(tc.err, 3*time.Second); got != tc.want {
			t.Errorf("explain(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestHumanBytes: free space reads as an operator writes it.
func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 1536: "1.5 KiB", 40 << 30: "40.0 GiB", 3 << 40: "3.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
