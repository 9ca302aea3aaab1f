package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/s3"
	"github.com/lakesink/lakesink/writers/writertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	mib    = 1 << 20
	bucket = "lake"
)

// startServer starts versitygw with an empty bucket.
func startServer(t *testing.T) *testenv.S3 {
	t.Helper()
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, bucket)
	return srv
}

// testConfig is a Config for srv's bucket with 5 MiB parts (so that a few
// MiB take the multipart path) and quick retries.
func testConfig(srv *testenv.S3) s3.Config {
	return s3.Config{
		Bucket:          bucket,
		Region:          srv.Region,
		Endpoint:        srv.Endpoint,
		ForcePathStyle:  true,
		AccessKeyID:     srv.AccessKey,
		SecretAccessKey: srv.SecretKey,
		PartSize:        s3.MinPartSize,
		MaxAttempts:     3,
		MaxBackoff:      100 * time.Millisecond,
	}
}

func newWriter(t *testing.T, cfg s3.Config) *s3.Writer {
	t.Helper()
	w, err := s3.New(t.Context(), cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func requireNoUploads(t *testing.T, srv *testenv.S3) {
	t.Helper()
	if n := srv.ListMultipartUploads(t, bucket); n != 0 {
		t.Fatalf("%d multipart uploads left in progress, want 0", n)
	}
}

func TestAcceptance(t *testing.T) {
	srv := startServer(t)
	var n atomic.Int64
	uniquePrefix := func() string { return fmt.Sprintf("acceptance/%03d", n.Add(1)) }

	// Config.Prefix, 5 MiB parts: the 6, 12 and 20 MiB objects of the suite
	// are multipart uploads.
	t.Run("Prefix/PartSize=5MiB", func(t *testing.T) {
		writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
			cfg := testConfig(srv)
			cfg.Prefix = uniquePrefix()
			return newWriter(t, cfg)
		})
		requireNoUploads(t, srv)
	})
	// A prefix written with slashes around it, default 16 MiB parts, 2 in
	// flight: only the 20 MiB objects are multipart.
	t.Run("Prefix/PartSize=default", func(t *testing.T) {
		writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
			cfg := testConfig(srv)
			cfg.Prefix = "/" + uniquePrefix() + "/"
			cfg.PartSize, cfg.Concurrency = 0, 2
			return newWriter(t, cfg)
		})
		requireNoUploads(t, srv)
	})
}

func TestNewErrors(t *testing.T) {
	srv := startServer(t)
	for _, tc := range []struct {
		name string
		edit func(*s3.Config)
		want string
	}{
		{"wrong secret", func(c *s3.Config) { c.SecretAccessKey = "wrong" },
			`s3 bucket "lake": access denied: check storage.s3 credentials`},
		{"unknown access key", func(c *s3.Config) { c.AccessKeyID = "nobody" },
			`s3 bucket "lake": access denied: check storage.s3 credentials`},
		{"missing bucket", func(c *s3.Config) { c.Bucket = "missing" },
			`s3 bucket "missing" does not exist`},
		{"no bucket", func(c *s3.Config) { c.Bucket = "" }, "s3 config: storage.s3.bucket: required"},
		{"part size too small", func(c *s3.Config) { c.PartSize = mib }, "storage.s3.part_size: must be between 5MiB and 5GiB, got 1MiB"},
		{"bad sse", func(c *s3.Config) { c.SSE = "rot13" }, `storage.s3.sse: unknown value "rot13"`},
		{"kms key without kms", func(c *s3.Config) { c.SSEKMSKeyID = "key" }, `storage.s3.sse_kms_key_id: only with sse "aws:kms"`},
		{"bad storage class", func(c *s3.Config) { c.StorageClass = "COLD" }, `storage.s3.storage_class: unknown value "COLD"`},
		{"half static credentials", func(c *s3.Config) { c.SecretAccessKey = "" }, "set both or neither"},
		{"bad prefix", func(c *s3.Config) { c.Prefix = "a//b" }, "storage.s3.prefix: invalid key"},
		{"negative concurrency", func(c *s3.Config) { c.Concurrency = -1 }, "storage.s3.concurrency: must be at least 1, got -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(srv)
			tc.edit(&cfg)
			w, err := s3.New(t.Context(), cfg, nil)
			if err == nil {
				_ = w.Close()
				t.Fatalf("New succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), srv.SecretKey) {
				t.Fatalf("New error %q shows the secret key", err)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		w := newWriter(t, testConfig(srv))
		if w.Name() != "s3" {
			t.Fatalf("Name() = %q, want s3", w.Name())
		}
	})
}

// badSectorReader is a random-access reader (like an *os.File) whose reads
// touching [from, from+1MiB) fail: a bad sector in a spool file.
type badSectorReader struct {
	*bytes.Reader
	from int64
}

func (b *badSectorReader) ReadAt(p []byte, off int64) (int, error) {
	if off < b.from+mib && off+int64(len(p)) > b.from {
		return 0, writertest.ErrInjected
	}
	return b.Reader.ReadAt(p, off)
}

// cancelingReaderAt is a random-access reader that cancels a context when a
// read crosses offset at, and goes on reading.
type cancelingReaderAt struct {
	*bytes.Reader
	at     int64
	cancel context.CancelFunc
}

func (c *cancelingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off <= c.at && off+int64(len(p)) > c.at {
		c.cancel()
	}
	return c.Reader.ReadAt(p, off)
}

// TestMultipartFailureLeavesNothing: a 20 MiB upload in 5 MiB parts whose
// reader fails or whose context is cancelled in part 3 leaves neither the
// object (nor a change to the previous one) nor a multipart upload.
func TestMultipartFailureLeavesNothing(t *testing.T) {
	srv := startServer(t)
	const size = 20 * mib
	content := writertest.RandomBytes(1, size)
	cases := []struct {
		name   string
		reader func(cancel context.CancelFunc) io.Reader
		want   error
	}{
		{"sequential reader fails", func(context.CancelFunc) io.Reader {
			return writertest.FailingReader(bytes.NewReader(content), 11*mib)
		}, writertest.ErrInjected},
		{"random-access reader fails", func(context.CancelFunc) io.Reader {
			return &badSectorReader{Reader: bytes.NewReader(content), from: 11 * mib}
		}, writertest.ErrInjected},
		{"sequential reader cancels", func(cancel context.CancelFunc) io.Reader {
			return writertest.CancelingReader(bytes.NewReader(content), 11*mib, cancel)
		}, context.Canceled},
		{"random-access reader cancels", func(cancel context.CancelFunc) io.Reader {
			return &cancelingReaderAt{Reader: bytes.NewReader(content), at: 11 * mib, cancel: cancel}
		}, context.Canceled},
		{"sequential reader too short", func(context.CancelFunc) io.Reader {
			return io.MultiReader(bytes.NewReader(content[:size-1]))
		}, writers.ErrSizeMismatch},
		{"random-access reader too long", func(context.CancelFunc) io.Reader {
			return bytes.NewReader(append(content[:size:size], 'x'))
		}, writers.ErrSizeMismatch},
	}
	for i, tc := range cases {
		for _, ifAbsent := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ifAbsent=%v", tc.name, ifAbsent), func(t *testing.T) {
				cfg := testConfig(srv)
				cfg.Prefix = fmt.Sprintf("fail/%d-%v", i, ifAbsent)
				w := newWriter(t, cfg)
				previous := []byte("previous")
				if !ifAbsent {
					writertest.MustPut(t, w, "obj", previous)
				}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				put := w.Put
				if ifAbsent {
					put = w.PutIfAbsent
				}
				err := put(ctx, "obj", tc.reader(cancel), size)
				if !errors.Is(err, tc.want) {
					t.Fatalf("put = %v, want an error wrapping %v", err, tc.want)
				}
				if ifAbsent {
					writertest.RequireAbsent(t, w, "obj")
				} else {
					writertest.RequireContent(t, w, "obj", previous)
				}
				requireNoUploads(t, srv)
			})
		}
	}
}

// TestMultipartSequential uploads from readers without ReadAt, which are
// read part by part into buffers, including an object whose last part is
// one byte.
func TestMultipartSequential(t *testing.T) {
	srv := startServer(t)
	cfg := testConfig(srv)
	cfg.Concurrency = 2
	w := newWriter(t, cfg)
	for _, size := range []int{5*mib + 1, 15 * mib, 17*mib + 12345} {
		key := fmt.Sprintf("seq/%d", size)
		content := writertest.RandomBytes(uint64(size), size)
		if err := w.Put(t.Context(), key, io.MultiReader(bytes.NewReader(content)), int64(size)); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
		writertest.RequireContent(t, w, key, content)
	}
	requireNoUploads(t, srv)
}

// TestPutFromFile puts the tail of a file: the content starts at the
// file's current position, parts are read with ReadAt, and the file is left
// positioned after the content. A file with more bytes than announced is
// refused.
func TestPutFromFile(t *testing.T) {
	srv := startServer(t)
	w := newWriter(t, testConfig(srv))
	const header = 4096
	open := func(t *testing.T, content []byte) *os.File {
		t.Helper()
		path := filepath.Join(t.TempDir(), "spool")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		if _, err := f.Seek(header, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, size := range []int{100, 11*mib + 7} { // single request, multipart
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := writertest.RandomBytes(uint64(size), header+size)
			key := fmt.Sprintf("file/%d", size)

			f := open(t, append(data[:len(data):len(data)], "more"...))
			if err := w.Put(t.Context(), key, f, int64(size)); !errors.Is(err, writers.ErrSizeMismatch) {
				t.Fatalf("Put of %d bytes from a longer file = %v, want ErrSizeMismatch", size, err)
			}
			writertest.RequireAbsent(t, w, key)

			f = open(t, data)
			if err := w.Put(t.Context(), key, f, int64(size)); err != nil {
				t.Fatalf("Put: %v", err)
			}
			writertest.RequireContent(t, w, key, data[header:])
			if pos, _ := f.Seek(0, io.SeekCurrent); pos != int64(len(data)) {
				t.Fatalf("file position after Put = %d, want %d", pos, len(data))
			}
		})
	}
	requireNoUploads(t, srv)
}

// TestPutIfAbsentRace: 8 concurrent PutIfAbsent of one key, single request
// and multipart (If-None-Match on CompleteMultipartUpload): exactly one
// wins, the others get ErrExists, and the object is the winner's.
func TestPutIfAbsentRace(t *testing.T) {
	srv := startServer(t)
	w := newWriter(t, testConfig(srv))
	const racers = 8
	for _, size := range []int{4096, 5*mib + 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("race/%d/_SUCCESS", size)
			contents := make([][]byte, racers)
			errs := make([]error, racers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range racers {
				contents[i] = writertest.RandomBytes(uint64(i), size)
				wg.Go(func() {
					<-start
					errs[i] = w.PutIfAbsent(t.Context(), key, bytes.NewReader(contents[i]), int64(size))
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Fatalf("racers %d and %d both won", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, writers.ErrExists):
					t.Fatalf("racer %d: %v, want nil or ErrExists", i, err)
				}
			}
			if winner < 0 {
				t.Fatal("no racer won")
			}
			writertest.RequireContent(t, w, key, contents[winner])
			requireNoUploads(t, srv)
		})
	}
}

// TestServerRestart stops the server before a Put and starts it again
// seconds later: the SDK's retries carry the Put (single request and
// multipart) over the outage.
func TestServerRestart(t *testing.T) {
	srv := startServer(t)
	cfg := testConfig(srv)
	// Enough attempts for an outage of several seconds: the backoff caps
	// grow from 50ms to 500ms, so 40 attempts wait about 9s on average.
	cfg.MaxAttempts, cfg.MaxBackoff = 40, 500*time.Millisecond
	w := newWriter(t, cfg)
	writertest.MustPut(t, w, "before", []byte("before the outage"))

	srv.Stop()
	small := []byte("written during the outage")
	large := writertest.RandomBytes(9, 6*mib)
	done := make(chan error, 2)
	go func() { done <- w.Put(context.Background(), "during/small", bytes.NewReader(small), int64(len(small))) }()
	go func() { done <- w.Put(context.Background(), "during/large", bytes.NewReader(large), int64(len(large))) }()
	select {
	case err := <-done:
		t.Fatalf("Put returned %v while the server was down", err)
	case <-time.After(3 * time.Second):
	}
	srv.Restart()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Put across the outage: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("Put did not return within a minute of the restart")
		}
	}
	writertest.RequireContent(t, w, "before", []byte("before the outage"))
	writertest.RequireContent(t, w, "during/small", small)
	writertest.RequireContent(t, w, "during/large", large)
	requireNoUploads(t, srv)
}

// TestServerDown: with the server down for longer than the retries last,
// Put fails (no hang) and leaves nothing once the server is back.
func TestServerDown(t *testing.T) {
	srv := startServer(t)
	cfg := testConfig(srv)
	cfg.MaxAttempts, cfg.MaxBackoff = 2, 10*time.Millisecond
	w := newWriter(t, cfg)
	srv.Stop()
	if err := w.Put(t.Context(), "obj", strings.NewReader("x"), 1); err == nil {
		t.Fatal("Put with the server down succeeded")
	}
	srv.Restart()
	writertest.RequireAbsent(t, w, "obj")
}

// recordingProxy forwards to srv and records each request's method, query
// and headers, so tests can check what the backend sends.
type recordingProxy struct {
	mu   sync.Mutex
	reqs []*http.Request // clones without bodies
}

func (p *recordingProxy) find(pred func(*http.Request) bool) []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*http.Request
	for _, r := range p.reqs {
		if pred(r) {
			out = append(out, r)
		}
	}
	return out
}

func startProxy(t *testing.T, srv *testenv.S3) (*recordingProxy, string) {
	t.Helper()
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	rp.Transport = tr
	p := &recordingProxy{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, r.Clone(context.Background()))
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		hs.Close()
		tr.CloseIdleConnections()
	})
	return p, hs.URL
}

// TestRequestOptions checks on the wire that uploads carry CRC32C checksums,
// the configured encryption and storage class, and If-None-Match for
// PutIfAbsent (versitygw accepts SSE and storage classes but ignores them,
// so only the requests can show they are applied).
func TestRequestOptions(t *testing.T) {
	srv := startServer(t)
	proxy, endpoint := startProxy(t, srv)
	cfg := testConfig(srv)
	cfg.Endpoint = endpoint
	cfg.SSE, cfg.SSEKMSKeyID, cfg.StorageClass = "aws:kms", "alias/lake", "STANDARD_IA"
	w := newWriter(t, cfg)
	small := []byte("small")
	large := writertest.RandomBytes(5, 5*mib+1)
	for _, c := range [][]byte{small, large} {
		key := fmt.Sprintf("opts/%d", len(c))
		if err := w.PutIfAbsent(t.Context(), key, bytes.NewReader(c), int64(len(c))); err != nil {
			t.Fatalf("PutIfAbsent(%q): %v", key, err)
		}
		writertest.RequireContent(t, w, key, c)
	}
	isUpload := func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/opts/")
	}
	isCreate := func(r *http.Request) bool {
		_, ok := r.URL.Query()["uploads"]
		return r.Method == http.MethodPost && ok
	}
	isComplete := func(r *http.Request) bool {
		return r.Method == http.MethodPost && r.URL.Query().Get("uploadId") != ""
	}
	uploads := proxy.find(isUpload)
	if len(uploads) != 3 { // one PutObject, two UploadPart
		t.Fatalf("saw %d PUT requests, want 3", len(uploads))
	}
	for _, r := range uploads {
		if r.Header.Get("X-Amz-Checksum-Crc32c") == "" && !strings.Contains(r.Header.Get("X-Amz-Trailer"), "crc32c") {
			t.Errorf("%s %s carries no CRC32C checksum; headers %v", r.Method, r.URL, r.Header)
		}
	}
	for _, r := range append(proxy.find(func(r *http.Request) bool { return isUpload(r) && r.URL.Query().Get("uploadId") == "" }), proxy.find(isCreate)...) {
		for h, want := range map[string]string{
			"X-Amz-Server-Side-Encryption":                "aws:kms",
			"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "alias/lake",
			"X-Amz-Storage-Class":                         "STANDARD_IA",
		} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("%s %s: %s = %q, want %q", r.Method, r.URL, h, got, want)
			}
		}
	}
	singles := proxy.find(func(r *http.Request) bool { return isUpload(r) && r.URL.Query().Get("uploadId") == "" })
	completes := proxy.find(isComplete)
	if len(singles) != 1 || len(completes) != 1 || len(proxy.find(isCreate)) != 1 {
		t.Fatalf("saw %d PutObject, %d CreateMultipartUpload, %d CompleteMultipartUpload; want 1 each",
			len(singles), len(proxy.find(isCreate)), len(completes))
	}
	for _, r := range []*http.Request{singles[0], completes[0]} {
		if got := r.Header.Get("If-None-Match"); got != "*" {
			t.Errorf("%s %s: If-None-Match = %q, want *", r.Method, r.URL, got)
		}
	}
	requireNoUploads(t, srv)
}

// TestNotFoundVsMissingBucket: a missing object is ErrNotFound, a bucket
// deleted under a running writer is not (Get says so instead of "no such
// object").
func TestNotFoundVsMissingBucket(t *testing.T) {
	srv := startServer(t)
	srv.CreateBucket(t, "doomed")
	cfg := testConfig(srv)
	cfg.Bucket = "doomed"
	w := newWriter(t, cfg)
	if _, err := w.Get(t.Context(), "nope"); !errors.Is(err, writers.ErrNotFound) {
		t.Fatalf("Get of a missing key = %v, want ErrNotFound", err)
	}
	if err := os.Remove(filepath.Join(srv.Dir, "doomed")); err != nil {
		t.Fatal(err)
	}
	_, err := w.Get(t.Context(), "nope")
	if err == nil || errors.Is(err, writers.ErrNotFound) {
		t.Fatalf("Get with the bucket gone = %v, want an error that is not ErrNotFound", err)
	}
	if _, err := w.List(t.Context(), ""); err == nil {
		t.Fatal("List with the bucket gone succeeded")
	}
}
