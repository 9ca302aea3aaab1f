package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/test/testenv"
)

// TestStorageOutage stops the storage server for 20 s while the sink has
// files to upload: uploads retry, /readyz fails, and once the server is back
// everything completes with every record exactly once.
func TestStorageOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	for _, b := range backends {
		if b.name == "local" {
			continue // no server to stop
		}
		t.Run(b.name, func(t *testing.T) { runStorageOutage(t, b.open(t)) })
	}
}

func runStorageOutage(t *testing.T, b backend) {
	const outage = 20 * time.Second
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "clickstream", 3)
	k.CreateTopic(t, "iot-telemetry", 1)
	group := "lakesink-outage"
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	cfgPath := writeConfig(t, k.Addr, group, b.storage, httpAddr)
	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"), testenv.Options{Env: b.env}, "run", "-c", cfgPath)

	from := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	p := newProduced()
	// First hour while storage is up.
	produce(t, k, p, "clickstream", "clickstream", []int{0, 1, 2}, 3000, from, 1, demo.Clickstream, clickID)
	waitCommitted(t, k, group, "clickstream", 3, p, 2*time.Minute)

	b.stop()
	stopped := time.Now()
	// Two more hours while it is down: their files cannot be uploaded.
	before := map[int]int{}
	for part, n := range p.perPart["clickstream"] {
		before[part] = n
	}
	produce(t, k, p, "clickstream", "clickstream", []int{0, 1, 2}, 3000, from.Add(time.Hour), 2, demo.Clickstream, clickID)
	testenv.Eventually(t, outage, 250*time.Millisecond, "/readyz failing during the storage outage", func() error {
		code, body := httpGet(httpAddr, "/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "storage") {
			return nil
		}
		return fmt.Errorf("/readyz: %d %s", code, body)
	})
	if d := time.Until(stopped.Add(outage)); d > 0 {
		time.Sleep(d)
	}
	// Nothing past the durable data was committed meanwhile.
	committed, _ := k.CommittedOffsets(t, group, "clickstream", 3)
	for part := 0; part < 3; part++ {
		if committed[part] > int64(before[part]) {
			t.Errorf("partition %d committed to %d during the outage, past the durable data", part, committed[part])
		}
	}
	b.restart()

	waitCommitted(t, k, group, "clickstream", 3, p, 2*time.Minute)
	for h := 0; h < 3; h++ {
		hour := from.Add(time.Duration(h) * time.Hour)
		key := fmt.Sprintf("clickstream/dt=%s/hour=%s/_SUCCESS", hour.Format("2006-01-02"), hour.Format("15"))
		testenv.Eventually(t, time.Minute, 250*time.Millisecond, "marker "+key, func() error {
			ok, err := b.lake.Exists(context.Background(), key)
			if err == nil && !ok {
				err = fmt.Errorf("no marker")
			}
			return err
		})
	}
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, "/readyz recovering", func() error {
		if code, body := httpGet(httpAddr, "/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	proc.Stop(30 * time.Second)
	if err := proc.ExitErr(); err != nil {
		t.Errorf("lakesink exit: %v", err)
	}
	checkExactlyOnce(t, b.lake, "clickstream", p.valid["clickstream"])
	if b.check != nil {
		b.check(t)
	}
}

// waitCommitted waits until the group's committed offsets reach what was
// produced on every partition of topic.
func waitCommitted(t *testing.T, k *testenv.Kafka, group, topic string, parts int, p *produced, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, 250*time.Millisecond, "offsets committed on "+topic, func() error {
		committed, _, err := k.TryCommittedOffsets(group, topic, parts)
		if err != nil {
			return err
		}
		for part := 0; part < parts; part++ {
			if want := int64(p.perPart[topic][part]); want > 0 && committed[part] != want {
				return fmt.Errorf("%s/%d: committed %d, want %d", topic, part, committed[part], want)
			}
		}
		return nil
	})
}

func httpGet(addr, path string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBadStorageAtStartup: wrong credentials or a missing bucket stop the
// sink at start-up with an error naming the backend and the bucket.
func TestBadStorageAtStartup(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "lake")
	gcssrv := testenv.StartGCS(t)
	cases := []struct {
		name, storage string
		env           []string
		want          []string
	}{
		{"s3 wrong secret", fmt.Sprintf("storage:\n  type: s3\n  s3: {bucket: lake, region: %s, endpoint: %q, force_path_style: true, access_key_id: %s, secret_access_key: \"${WRONG}\"}\n",
			s3srv.Region, s3srv.Endpoint, s3srv.AccessKey), []string{"WRONG=not-the-secret"}, []string{"s3", `bucket "lake"`, "credentials"}},
		{"s3 missing bucket", fmt.Sprintf("storage:\n  type: s3\n  s3: {bucket: nolake, region: %s, endpoint: %q, force_path_style: true, access_key_id: %s, secret_access_key: %s}\n",
			s3srv.Region, s3srv.Endpoint, s3srv.AccessKey, s3srv.SecretKey), nil, []string{"s3", `bucket "nolake"`, "does not exist"}},
		{"gcs missing bucket", fmt.Sprintf("storage:\n  type: gcs\n  gcs: {bucket: nolake, endpoint: %q}\n", gcssrv.Endpoint), nil,
			[]string{"gcs", `bucket "nolake"`, "does not exist"}},
	}
	bin := testenv.Build(t, "./cmd/lakesink")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := writeConfig(t, k.Addr, "bad-storage", c.storage, "127.0.0.1:0")
			proc := testenv.Start(t, "lakesink", bin, testenv.Options{Env: c.env}, "run", "-c", cfg)
			select {
			case <-proc.Done():
			case <-time.After(90 * time.Second):
				t.Fatal("lakesink did not stop on bad storage")
			}
			if proc.ExitErr() == nil {
				t.Fatal("lakesink exited 0 with bad storage")
			}
			log := proc.Log()
			for _, w := range c.want {
				if !strings.Contains(log, w) {
					t.Errorf("start-up error lacks %q:\n%s", w, log)
				}
			}
			if strings.Contains(log, s3srv.SecretKey) {
				t.Errorf("log contains the S3 secret")
			}
		})
	}
}
