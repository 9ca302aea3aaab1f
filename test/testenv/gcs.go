package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// GCS is a fake-gcs-server process (github.com/fsouza/fake-gcs-server,
// installed by `make tools`) serving the GCS JSON and XML APIs over plain
// HTTP on 127.0.0.1, storing objects in a folder so that Restart keeps them.
//
// Point a client at it with Endpoint (writers/gcs Config.Endpoint) or with
// STORAGE_EMULATOR_HOST=Host. The server is started with -public-host and
// -external-url set to its own address: without -public-host, XML-API reads
// (what cloud.google.com/go/storage uses for downloads) are routed as if for
// another host and every object reads as missing; without -external-url,
// resumable-upload session URLs point to the wrong address.
type GCS struct {
	Host     string // "127.0.0.1:PORT"
	Endpoint string // "http://127.0.0.1:PORT"
	Dir      string // the filesystem backend's root

	t    testing.TB
	port int
	bin  string
	proc *Process
}

// StartGCS starts fake-gcs-server with the filesystem backend in a new
// temporary folder and waits until it answers. It is stopped at test cleanup.
func StartGCS(t testing.TB) *GCS {
	t.Helper()
	g := &GCS{t: t, bin: Tool(t, "fake-gcs-server"), Dir: t.TempDir(), port: FreePort(t)}
	g.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(g.port))
	g.Endpoint = "http://" + g.Host
	g.start()
	return g
}

func (g *GCS) start() {
	g.t.Helper()
	port := strconv.Itoa(g.port)
	g.proc = Start(g.t, "fake-gcs-server", g.bin, Options{},
		"-scheme", "http",
		"-host", "127.0.0.1",
		"-port", port,
		"-public-host", g.Host,
		"-external-url", g.Endpoint,
		"-backend", "filesystem",
		"-filesystem-root", g.Dir,
		"-log-level", "warn",
	)
	if err := g.waitReady(30 * time.Second); err != nil {
		g.t.Fatalf("fake-gcs-server: %v\n%s", err, g.proc.Tail(30))
	}
}

// waitReady waits until the bucket listing answers 200.
func (g *GCS) waitReady(timeout time.Duration) error {
	if err := WaitTCP(g.Host, timeout); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(g.Endpoint + "/storage/v1/b?project=test")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				select {
				case <-g.proc.Done(): // another server answered on our port
					return fmt.Errorf("exited, while something else answers on %s: %v", g.Host, g.proc.ExitErr())
				default:
					return nil
				}
			}
			err = fmt.Errorf("list buckets: status %s", resp.Status)
		}
		select {
		case <-g.proc.Done():
			return fmt.Errorf("exited before it was ready: %v", g.proc.ExitErr())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CreateBucket creates a bucket through the JSON API, failing the test on
// error (also when it already exists).
func (g *GCS) CreateBucket(t testing.TB, name string) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"name": name})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.Endpoint+"/storage/v1/b?project=test", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create bucket %s: status %s: %s", name, resp.Status, b)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s). Objects stay in
// Dir; in-flight resumable upload sessions are lost.
func (g *GCS) Stop() { g.proc.Stop(5 * time.Second) }

// Restart stops the server and starts it again on the same port and folder.
func (g *GCS) Restart() {
	g.t.Helper()
	g.Stop()
	g.start()
}

// Start starts the server again after Stop, on the same port and folder.
func (g *GCS) Start() {
	g.t.Helper()
	g.start()
}

// String describes the server for logs.
func (g *GCS) String() string { return fmt.Sprintf("fake-gcs-server(%s)", g.Host) }
