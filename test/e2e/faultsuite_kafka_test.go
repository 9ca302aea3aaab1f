package e2e

import (
	"errors"
	"net/http"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/test/faultproxy"
	"github.com/lakesink/lakesink/test/testenv"
)

// Kafka faults. A proxy in front of the bootstrap address sees only the
// first connections: Kafka clients then dial the address the broker
// advertises in its metadata, and kfake advertises its own listener's
// address (kfake.ListenFn could wrap the listener to advertise another one,
// but test/kafkabroker has no flag for it). So the proxy models Kafka that
// is down or hung at start-up — the client never gets past the bootstrap
// connection — and faults of a running sink are made on the broker
// process itself: SIGSTOP keeps its sockets (connections are accepted by
// the kernel) but nothing is answered, a hung broker; SIGCONT ends it.

// TestFaultKafkaAtStart — cells (a) and (b): Kafka refusing connections or
// accepting them and never answering when the sink starts. Per mode, two
// processes start against a proxy in that mode:
//   - both serve /healthz 200 and /readyz 503 with a reason naming Kafka
//     within 2 s of start (lakesink_ready 0, lakesink_dependency_errors
//     _total{dependency="kafka"} > 0), and do not exit while Kafka stays
//     away;
//   - one gets SIGTERM during the fault and must exit within
//     shutdown_timeout + 5 s;
//   - for the other the proxy then passes: it joins the group and writes
//     every record exactly once, and /readyz turns 200.
//
// With kafka.startup_timeout: 3s the process instead exits 1 after about
// 3 s with an error naming Kafka.
func TestFaultKafkaAtStart(t *testing.T) {
	skipShort(t)
	k := testenv.StartKafka(t)
	modes := []faultproxy.Mode{faultproxy.Refuse, faultproxy.Blackhole}
	concurrently(t, modes, faultproxy.Mode.String, func(t *testing.T, mode faultproxy.Mode) {
		proxy := faultproxy.New(t, k.Addr)
		proxy.SetMode(mode)
		term := newLocalFaultSink(t, k, "kafka-start-"+mode.String()+"-term", "")
		rec := newLocalFaultSink(t, k, "kafka-start-"+mode.String()+"-recover", "")
		rec.produceHours(2)
		sinks := []*faultSink{term, rec}
		for _, s := range sinks {
			s.cfg.Kafka.Brokers = []string{proxy.Addr()}
			s.start()
		}
		for _, s := range sinks {
			s.waitNotReady(2*time.Second-time.Since(s.started), "kafka")
		}
		for _, s := range sinks {
			s.checkFaultMetrics("kafka")
		}
		time.Sleep(3 * time.Second) // the fault lasts: no exit, no crash
		for _, s := range sinks {
			s.alive()
			if code, body := httpGet(s.http, "/healthz"); code != http.StatusOK {
				t.Errorf("%s: /healthz %d %s while Kafka is away", s.name, code, body)
			}
			s.waitNotReady(time.Second, "kafka")
		}
		_ = term.term()

		proxy.SetMode(faultproxy.Pass)
		rec.waitDone(faultRecover)
		rec.finish()
	})

	t.Run("startup_timeout", func(t *testing.T) {
		const startupTimeout = 3 * time.Second
		concurrently(t, modes, faultproxy.Mode.String, func(t *testing.T, mode faultproxy.Mode) {
			proxy := faultproxy.New(t, k.Addr)
			proxy.SetMode(mode)
			s := newLocalFaultSink(t, k, "kafka-timeout-"+mode.String(), "")
			s.cfg.Kafka.Brokers = []string{proxy.Addr()}
			s.cfg.Kafka.StartupTimeout = config.Duration(startupTimeout)
			s.start()
			select {
			case <-s.proc.Done():
			case <-time.After(startupTimeout + faultExitBound):
				t.Fatalf("still running %s after start with kafka.startup_timeout %s", startupTimeout+faultExitBound, startupTimeout)
			}
			took := time.Since(s.started)
			err := s.proc.ExitErr()
			if code := exitCode(err); code != 1 {
				t.Errorf("exit %v (code %d) after %s, want exit code 1", err, code, took)
			}
			if took < startupTimeout-500*time.Millisecond || took > startupTimeout+2*time.Second {
				t.Errorf("exited after %s, want about kafka.startup_timeout (%s; at most 2 s more)", took, startupTimeout)
			}
			if line := regexp.MustCompile(`(?im)^lakesink: .*kafka.*$`).FindString(s.proc.Log()); line == "" {
				t.Errorf("no error line naming kafka (\"lakesink: ...kafka...\") in the output:\n%s", s.proc.Tail(20))
			} else {
				t.Logf("exit %d after %s: %s", exitCode(err), took.Round(10*time.Millisecond), line)
			}
		})
	})
}

// TestFaultKafkaFrozen — cell (c): the broker hangs (SIGSTOP) for 10 s while
// the sink runs. The sink must not crash, /healthz, /readyz and /metrics
// keep answering, and after SIGCONT it goes on and writes every record exactly
// once. Then the broker hangs again and SIGTERM must end the sink within
// shutdown_timeout + 5 s.
func TestFaultKafkaFrozen(t *testing.T) {
	skipShort(t)
	k := testenv.StartKafka(t)
	s := newLocalFaultSink(t, k, "kafka-frozen", "")
	s.start()
	s.produceHours(1)
	s.waitDone(faultRecover)

	thaw := k.Process().Freeze(t)
	frozen := time.Now()
	for time.Since(frozen) < 10*time.Second {
		s.alive()
		if code, body := httpGet(s.http, "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz %d %s while the broker hangs", code, body)
		}
		if _, _, err := s.readyz(); err != nil {
			t.Errorf("/readyz while the broker hangs: %v", err)
		}
		s.metrics() // answers
		time.Sleep(time.Second)
	}
	thaw()
	s.produceHours(1)
	s.waitDone(faultRecover)

	thaw = k.Process().Freeze(t)
	time.Sleep(2 * time.Second)
	err := s.term()
	thaw()
	t.Logf("exit while the broker hung: %v", err)
	s.checkExact()
}

// exitCode is the process exit code in err (0 for nil, -1 if it did not
// exit normally).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}
