package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"go.uber.org/goleak"
	"google.golang.org/api/option"

	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/writertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bucketSeq makes bucket names and prefixes unique within the test process.
var bucketSeq atomic.Int64

func uniqueName(what string) string {
	return fmt.Sprintf("%s-%d-%d", what, os.Getpid(), bucketSeq.Add(1))
}

// newTestWriter connects to srv's bucket, closing the Writer at cleanup.
func newTestWriter(t testing.TB, srv *testenv.GCS, cfg Config, extra ...option.ClientOption) *Writer {
	t.Helper()
	cfg.Endpoint = srv.Endpoint
	w, err := newWriter(t.Context(), cfg, slog.New(slog.DiscardHandler), extra...)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func TestAcceptance(t *testing.T) {
	srv := testenv.StartGCS(t)
	t.Run("bucket per test", func(t *testing.T) {
		writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
			bucket := uniqueName("b")
			srv.CreateBucket(t, bucket)
			return newTestWriter(t, srv, Config{Bucket: bucket})
		})
	})
	t.Run("prefix per test", func(t *testing.T) {
		// One bucket shared by every subtest, each isolated by Config.Prefix;
		// the object outside the prefixes must never show up.
		const bucket = "shared"
		srv.CreateBucket(t, bucket)
		outside := newTestWriter(t, srv, Config{Bucket: bucket})
		writertest.MustPut(t, outside, "lake-outside/x", []byte("not yours"))
		writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
			return newTestWriter(t, srv, Config{Bucket: bucket, Prefix: "/lake/" + uniqueName("p") + "/", ChunkSize: 1 << 20})
		})
		writertest.RequireContent(t, outside, "lake-outside/x", []byte("not yours"))
	})
}

func TestNewBucketErrors(t *testing.T) {
	srv := testenv.StartGCS(t)
	_, err := New(t.Context(), Config{Bucket: "missing", Endpoint: srv.Endpoint}, nil)
	if err == nil {
		t.Fatal("New with a missing bucket returned nil error")
	}
	if want := `gcs bucket "missing" does not exist`; !strings.Contains(err.Error(), want) {
		t.Fatalf("New with a missing bucket: %v, want it to contain %q", err, want)
	}
	if !errors.Is(err, storage.ErrBucketNotExist) {
		t.Fatalf("New with a missing bucket: %v, want it to wrap storage.ErrBucketNotExist", err)
	}

	// fake-gcs-server has no authorization: a stub answering 401/403 stands
	// in for GCS refusing the credentials.
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				fmt.Fprintf(w, `{"error":{"code":%d,"message":"caller does not have storage.buckets.get access"}}`, code)
			}))
			defer stub.Close()
			_, err := New(t.Context(), Config{Bucket: "locked", Endpoint: stub.URL}, nil)
			if err == nil {
				t.Fatal("New against a server refusing access returned nil error")
			}
			want := `gcs bucket "locked": permission denied: check storage.gcs credentials`
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("New: %v, want it to contain %q", err, want)
			}
		})
	}

	t.Run("server down", func(t *testing.T) {
		addr := "127.0.0.1:" + fmt.Sprint(testenv.FreePort(t))
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		_, err := New(ctx, Config{Bucket: "b", Endpoint: addr, MaxAttempts: 2}, nil)
		if err == nil || !strings.Contains(err.Error(), `gcs bucket "b"`) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("New against a closed port = %v, want an error naming the bucket and the refused connection", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings; none: valid
	}{
		// New fills in the default chunk size before it validates.
		{"minimal", Config{Bucket: "b"}.withDefaults(), nil},
		{"everything", Config{Bucket: "b", Prefix: "/lake/raw/", Endpoint: "https://storage.example.com", ChunkSize: 1 << 20, MaxAttempts: 3}, nil},
		{"no bucket", Config{}, []string{"storage.gcs.bucket: required"}},
		{"bad prefix", Config{Bucket: "b", Prefix: "a//b"}, []string{"storage.gcs.prefix", "empty path segment"}},
		{"dot prefix", Config{Bucket: "b", Prefix: "a/../b"}, []string{"storage.gcs.prefix"}},
		{"negatives", Config{Bucket: "b", ChunkSize: -1, MaxAttempts: -2}, []string{"storage.gcs.chunk_size: must be at least 256KiB, got -1", "storage.gcs.max_attempts: must be >= 0, got -2"}},
		{"chunk size unset", Config{Bucket: "b"}, []string{"storage.gcs.chunk_size: must be at least 256KiB, got 0"}},
		{"chunk size below the quantum", Config{Bucket: "b", ChunkSize: 1 << 10}, []string{"storage.gcs.chunk_size: must be at least 256KiB, got 1KiB"}},
		{"bad endpoint", Config{Bucket: "b", Endpoint: "ftp://x"}, []string{"storage.gcs.endpoint", "scheme"}},
		{"all at once", Config{Prefix: "//x//y", ChunkSize: -1}, []string{"bucket: required", "prefix", "chunk_size"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestEndpointURL(t *testing.T) {
	for _, tc := range []struct {
		in       string
		want     string
		emulator bool
	}{
		{"127.0.0.1:4443", "http://127.0.0.1:4443/storage/v1/", true},
		{"http://127.0.0.1:4443", "http://127.0.0.1:4443/storage/v1/", true},
		{"http://127.0.0.1:4443/", "http://127.0.0.1:4443/storage/v1/", true},
		{"http://127.0.0.1:4443/storage/v1", "http://127.0.0.1:4443/storage/v1/", true},
		{"https://storage-psc.p.googleapis.com/storage/v1/", "https://storage-psc.p.googleapis.com/storage/v1/", false},
	} {
		got, emulator, err := endpointURL(tc.in)
		if err != nil || got != tc.want || emulator != tc.emulator {
			t.Errorf("endpointURL(%q) = %q, %v, %v; want %q, %v, nil", tc.in, got, emulator, err, tc.want, tc.emulator)
		}
	}
	for _, bad := range []string{"ftp://h", "http://", "http://%zz"} {
		if _, _, err := endpointURL(bad); err == nil {
			t.Errorf("endpointURL(%q) = nil error, want one", bad)
		}
	}
}

func TestCredentialsType(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sa := write("sa.json", `{"type":"service_account","project_id":"p"}`)
	if got, err := credentialsType(sa); err != nil || got != option.ServiceAccount {
		t.Errorf("credentialsType(service account) = %q, %v; want %q", got, err, option.ServiceAccount)
	}
	for name, content := range map[string]string{"bad.json": `{`, "unknown.json": `{"type":"gdch_service_account"}`} {
		if _, err := credentialsType(write(name, content)); err == nil {
			t.Errorf("credentialsType(%s) = nil error, want one", name)
		}
	}
	if _, err := credentialsType(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("credentialsType(missing file) = nil error, want one")
	}
	_, err := New(t.Context(), Config{Bucket: "b", CredentialsFile: filepath.Join(dir, "missing.json")}, nil)
	if err == nil || !strings.Contains(err.Error(), "storage.gcs.credentials_file") {
		t.Errorf("New with a missing credentials file = %v, want an error naming storage.gcs.credentials_file", err)
	}
}

// corruptingTransport flips marker to replacement in request bodies (same
// length), as a faulty NIC or proxy would, after the client computed the
// checksum.
type corruptingTransport struct {
	marker, replacement []byte
	corrupted           atomic.Int64
}

func (c *corruptingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && (req.Method == http.MethodPost || req.Method == http.MethodPut) {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if n := bytes.Count(b, c.marker); n > 0 {
			c.corrupted.Add(int64(n))
			b = bytes.ReplaceAll(b, c.marker, c.replacement)
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	return http.DefaultTransport.RoundTrip(req)
}

// contentWithMarker returns size random bytes with marker at off.
func contentWithMarker(seed uint64, size, off int, marker []byte) []byte {
	b := writertest.RandomBytes(seed, size)
	copy(b[off:], marker)
	return b
}

func TestChecksumMismatch(t *testing.T) {
	srv := testenv.StartGCS(t)
	const bucket = "crc"
	srv.CreateBucket(t, bucket)
	marker, replacement := []byte("<<lakesink-marker>>"), []byte("<<lakesink-MARKER>>")
	tr := &corruptingTransport{marker: marker, replacement: replacement}
	const chunk = 256 << 10
	w := newTestWriter(t, srv, Config{Bucket: bucket, ChunkSize: chunk}, option.WithHTTPClient(&http.Client{Transport: tr}))
	clean := newTestWriter(t, srv, Config{Bucket: bucket})

	for _, tc := range []struct {
		name     string
		size     int
		existing bool
	}{
		// One request: the client puts the CRC32C in the object metadata and
		// the server refuses the upload (the emulator checks this too).
		{"single request/new key", 10 << 10, false},
		{"single request/existing key", 10 << 10, true},
		// Resumable: the CRC32C goes in X-Goog-Hash of the last chunk, which
		// GCS checks but fake-gcs-server ignores; Put's own comparison with
		// the stored object's CRC32C catches it and removes the object.
		{"resumable/new key", 4*chunk + 100, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "crc/" + strings.ReplaceAll(tc.name, " ", "-")
			var previous []byte
			if tc.existing {
				previous = []byte("previous version")
				writertest.MustPut(t, clean, key, previous)
			}
			before := tr.corrupted.Load()
			content := contentWithMarker(uint64(tc.size), tc.size, tc.size/2, marker)
			err := w.Put(t.Context(), key, bytes.NewReader(content), int64(len(content)))
			if tr.corrupted.Load() == before {
				t.Fatal("suite bug: the transport corrupted nothing")
			}
			if err == nil {
				t.Fatalf("Put of content corrupted in transit returned nil, want an error")
			}
			t.Logf("Put error (expected): %v", err)
			if previous != nil {
				writertest.RequireContent(t, clean, key, previous)
			} else {
				writertest.RequireAbsent(t, clean, key)
			}
			// The same content without corruption goes through.
			writertest.MustPut(t, clean, key, content)
			writertest.RequireContent(t, clean, key, content)
		})
	}
}

// lostResponseTransport performs the first conditional upload request it
// sees, then pretends the connection broke before the response arrived.
type lostResponseTransport struct {
	dropped atomic.Bool
}

func (l *lostResponseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && req.URL.Query().Get("ifGenerationMatch") == "0" && l.dropped.CompareAndSwap(false, true) {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return resp, err
}

func TestPutIfAbsentLostResponse(t *testing.T) {
	srv := testenv.StartGCS(t)
	const bucket = "lost"
	srv.CreateBucket(t, bucket)
	tr := &lostResponseTransport{}
	w := newTestWriter(t, srv, Config{Bucket: bucket}, option.WithHTTPClient(&http.Client{Transport: tr}))
	other := newTestWriter(t, srv, Config{Bucket: bucket})

	const key = "hour=13/_SUCCESS"
	content := []byte(`{"revision":1}`)
	if err := w.PutIfAbsent(t.Context(), key, bytes.NewReader(content), int64(len(content))); err != nil {
		t.Fatalf("PutIfAbsent whose first response was lost = %v, want nil (the retry finds its own object)", err)
	}
	if !tr.dropped.Load() {
		t.Fatal("suite bug: no response was dropped")
	}
	writertest.RequireContent(t, other, key, content)
	err := other.PutIfAbsent(t.Context(), key, strings.NewReader("x"), 1)
	if !errors.Is(err, writers.ErrExists) {
		t.Fatalf("PutIfAbsent by another writer = %v, want ErrExists", err)
	}
}

// TestPutIfAbsentRace runs PutIfAbsent from 8 independent clients (as from 8
// sink instances) for the same key: exactly one wins.
func TestPutIfAbsentRace(t *testing.T) {
	srv := testenv.StartGCS(t)
	const bucket = "race"
	srv.CreateBucket(t, bucket)
	const racers = 8
	ws := make([]*Writer, racers)
	for i := range ws {
		ws[i] = newTestWriter(t, srv, Config{Bucket: bucket, Prefix: "lake"})
	}
	for round := range 5 {
		key := fmt.Sprintf("clickstream/dt=2026-11-25/hour=%02d/_SUCCESS", round)
		errs := make([]error, racers)
		contents := make([][]byte, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			contents[i] = []byte(fmt.Sprintf(`{"round":%d,"racer":%d}`, round, i))
			wg.Go(func() {
				<-start
				errs[i] = ws[i].PutIfAbsent(t.Context(), key, bytes.NewReader(contents[i]), int64(len(contents[i])))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: racers %d and %d both won", round, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, writers.ErrExists):
				t.Fatalf("round %d: racer %d: %v, want nil or ErrExists", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won", round)
		}
		writertest.RequireContent(t, ws[0], key, contents[winner])
	}
}

// TestServerRestart stops the server, starts calls of every kind while it is
// down, and restarts it: the client's retries carry every call through.
func TestServerRestart(t *testing.T) {
	srv := testenv.StartGCS(t)
	const bucket = "restart"
	srv.CreateBucket(t, bucket)
	const chunk = 256 << 10
	w := newTestWriter(t, srv, Config{Bucket: bucket, ChunkSize: chunk})

	contents := map[string][]byte{}
	for i := range 5 {
		key := fmt.Sprintf("seq/%02d.parquet", i)
		contents[key] = writertest.RandomBytes(uint64(i), 10<<10+i)
		writertest.MustPut(t, w, key, contents[key])
	}
	writertest.MustPut(t, w, "seq/delete-me", []byte("x"))

	srv.Stop()
	type result struct {
		op  string
		err error
	}
	ops := map[string]func(ctx context.Context) error{}
	for i := 5; i < 10; i++ {
		key := fmt.Sprintf("seq/%02d.parquet", i)
		size := 10<<10 + i
		if i == 9 {
			size = 3*chunk + 7 // resumable upload
		}
		contents[key] = writertest.RandomBytes(uint64(i), size)
		ops["Put "+key] = func(ctx context.Context) error {
			return w.Put(ctx, key, bytes.NewReader(contents[key]), int64(size))
		}
	}
	contents["seq/_SUCCESS"] = []byte(`{"revision":1}`)
	ops["PutIfAbsent seq/_SUCCESS"] = func(ctx context.Context) error {
		return w.PutIfAbsent(ctx, "seq/_SUCCESS", bytes.NewReader(contents["seq/_SUCCESS"]), int64(len(contents["seq/_SUCCESS"])))
	}
	ops["Get seq/00.parquet"] = func(ctx context.Context) error {
		rc, err := w.Get(ctx, "seq/00.parquet")
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err == nil && !bytes.Equal(b, contents["seq/00.parquet"]) {
			err = fmt.Errorf("read %s, want %s", writertest.Describe(b), writertest.Describe(contents["seq/00.parquet"]))
		}
		return err
	}
	ops["Stat seq/01.parquet"] = func(ctx context.Context) error {
		o, err := w.Stat(ctx, "seq/01.parquet")
		if err == nil && o.Size != int64(len(contents["seq/01.parquet"])) {
			err = fmt.Errorf("size %d, want %d", o.Size, len(contents["seq/01.parquet"]))
		}
		return err
	}
	ops["List seq/0"] = func(ctx context.Context) error {
		_, err := w.List(ctx, "seq/0")
		return err
	}
	ops["Delete seq/delete-me"] = func(ctx context.Context) error { return w.Delete(ctx, "seq/delete-me") }

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	results := make(chan result, len(ops))
	var wg sync.WaitGroup
	for name, op := range ops {
		wg.Go(func() { results <- result{name, op(ctx)} })
	}
	time.Sleep(1500 * time.Millisecond) // every call has met a refused connection
	select {
	case r := <-results:
		t.Fatalf("%s finished while the server was down: %v", r.op, r.err)
	default:
	}
	srv.Start()
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil {
			t.Errorf("%s across the restart: %v", r.op, r.err)
		}
	}
	if t.Failed() {
		return
	}
	var want []writers.Object
	for key, c := range contents {
		writertest.RequireContent(t, w, key, c)
		want = append(want, writers.Object{Key: key, Size: int64(len(c))})
	}
	writertest.RequireAbsent(t, w, "seq/delete-me")
	slices.SortFunc(want, cmpKey)
	writertest.RequireObjects(t, w, "seq/", want)
}

// TestMaxAttempts checks that a bounded writer gives up while the server is
// down instead of waiting for it.
func TestMaxAttempts(t *testing.T) {
	srv := testenv.StartGCS(t)
	const bucket = "attempts"
	srv.CreateBucket(t, bucket)
	w := newTestWriter(t, srv, Config{Bucket: bucket, MaxAttempts: 2})
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := w.Put(ctx, "k", strings.NewReader("v"), 1)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Put with the server down and MaxAttempts 2 = %v, want a refused connection", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Put did not give up before the context deadline")
	}
}

// TestEmulatorHostAndPrefix connects through STORAGE_EMULATOR_HOST (no
// Endpoint) and checks where Config.Prefix puts the objects.
func TestEmulatorHostAndPrefix(t *testing.T) {
	srv := testenv.StartGCS(t)
	const bucket = "env"
	srv.CreateBucket(t, bucket)
	t.Setenv("STORAGE_EMULATOR_HOST", srv.Host)
	open := func(prefix string) *Writer {
		w, err := New(t.Context(), Config{Bucket: bucket, Prefix: prefix}, nil)
		if err != nil {
			t.Fatalf("New with STORAGE_EMULATOR_HOST: %v", err)
		}
		t.Cleanup(func() { _ = w.Close() })
		return w
	}
	prefixed, root := open("/lake/raw/"), open("")
	writertest.MustPut(t, prefixed, "clickstream/_SUCCESS", []byte("{}"))
	writertest.RequireContent(t, root, "lake/raw/clickstream/_SUCCESS", []byte("{}"))
	writertest.MustPut(t, root, "lake/rawx/other", []byte("x"))
	writertest.RequireObjects(t, prefixed, "", []writers.Object{{Key: "clickstream/_SUCCESS", Size: 2}})
	writertest.RequireObjects(t, root, "lake/raw", []writers.Object{
		{Key: "lake/raw/clickstream/_SUCCESS", Size: 2}, {Key: "lake/rawx/other", Size: 1},
	})
}

func TestGetRangeEdges(t *testing.T) {
	srv := testenv.StartGCS(t)
	const bucket = "ranges"
	srv.CreateBucket(t, bucket)
	w := newTestWriter(t, srv, Config{Bucket: bucket})
	content := []byte("0123456789")
	writertest.MustPut(t, w, "k", content)
	for _, r := range [][2]int64{{10, -1}, {10, 5}, {25, -1}, {25, 1}} {
		if got := writertest.MustGetRange(t, w, "k", r[0], r[1]); len(got) != 0 {
			t.Errorf("GetRange(k, %d, %d) = %q, want empty (offset at or past the end)", r[0], r[1], got)
		}
	}
	if _, err := w.GetRange(t.Context(), "k", -1, 2); err == nil {
		t.Error("GetRange with a negative offset returned nil error")
	}
	if _, err := w.GetRange(t.Context(), "missing", 25, -1); !errors.Is(err, writers.ErrNotFound) {
		t.Errorf("GetRange past the end of a missing key = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "/abs", "a//b", "../x"} {
		if err := w.Put(t.Context(), bad, strings.NewReader("x"), 1); !errors.Is(err, writers.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
	if _, err := w.List(t.Context(), "a//"); !errors.Is(err, writers.ErrInvalidKey) {
		t.Errorf("List(a//) = %v, want ErrInvalidKey", err)
	}
}
