// Package gcs is the Google Cloud Storage backend of writers.Writer, built on
// cloud.google.com/go/storage (JSON API for uploads, listing and metadata;
// XML API for downloads, the library's default).
//
// How the writers.Writer guarantees are met:
//
//   - Atomic Put: a GCS object only appears when its upload is finalized. Put
//     streams the content through the client's object writer (one request when
//     it fits in a chunk, a resumable upload of ChunkSize chunks otherwise) and
//     finalizes only after exactly size bytes were read. A reader error, a
//     size mismatch or a cancelled context cancels the upload's context before
//     the final request, so the object is never created (an abandoned
//     resumable session expires on the server by itself).
//   - Integrity: the client computes the CRC32C of the content as it buffers
//     it and sends it with the final request (object metadata for a
//     single-request upload, X-Goog-Hash for the last chunk of a resumable
//     one); GCS rejects an upload whose content does not match. Put also
//     computes the CRC32C of what it read and compares it (and the size) with
//     the finalized object's attributes; on a mismatch it deletes that object
//     generation and fails. (The client's Writer.CRC32C + SendCRC32C is not
//     used: it must be set before the first byte is written, which would need
//     the content read twice.)
//   - Idempotent Put: names are deterministic, so every request (including
//     uploads) is retried with exponential backoff on transient errors
//     (RetryAlways policy).
//   - PutIfAbsent uses the ifGenerationMatch=0 precondition: the server
//     decides the single winner, and retries are safe. A retry whose earlier
//     attempt did succeed would see 412; PutIfAbsent tags the object it
//     writes with a random token in its metadata and, on 412, reads the
//     object back to tell "an earlier attempt of this call won" from
//     "someone else won".
//   - Strong consistency: GCS is strongly consistent for reads and listings
//     after writes and deletes.
//
// Keys are validated with writers.ValidateKey and stored under Config.Prefix.
// A Writer is safe for concurrent use; Close releases the client.
//
// # Testing against fake-gcs-server
//
// The tests run writertest.AcceptanceTest and backend-specific tests against
// fake-gcs-server v1.56.1 (test/testenv.StartGCS). Where it differs from GCS:
//
//   - It checks a CRC32C declared in the metadata of a single-request upload,
//     but ignores the X-Goog-Hash of a resumable upload's last chunk (and
//     forgets a CRC32C declared at session start after the first chunk).
//     Put's own comparison covers that case; TestChecksumMismatch corrupts
//     uploads in transit to exercise both paths.
//   - Resumable sessions live in its memory: a restart in the middle of a
//     multi-chunk upload fails that Put (GCS keeps sessions for a week).
//     Requests that meet a stopped server are retried until it is back.
//   - Its filesystem backend stores objects as files, so "a" and "a/b"
//     cannot both exist (500, which the client retries); GCS allows it.
//   - It has no authorization; the permission-denied message is tested with
//     a stub server.
//   - It must run with -public-host set to its own address, or downloads
//     (XML API) see no objects; -external-url likewise, so that resumable
//     session URLs point back at it.
package gcs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/lakesink/lakesink/writers"
)

// DefaultChunkSize is the resumable-upload chunk size used when
// Config.ChunkSize is zero. It is also the most memory one Put buffers.
const DefaultChunkSize = 16 << 20

// chunkQuantum is GCS's resumable chunk granularity; the client rounds
// ChunkSize up to a multiple of it.
const chunkQuantum = 256 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// putIDKey is the object metadata key holding PutIfAbsent's attempt token.
const putIDKey = "lakesink-put-id"

// Config configures the backend. It is not decoded from YAML:
// config.GCSStorage.Backend builds it from the config file's storage.gcs.
type Config struct {
	// Bucket is the bucket name. Required.
	Bucket string
	// Prefix is prepended to every key ("lake" and "lake/" both store key k
	// as "lake/k"). Optional.
	Prefix string
	// Endpoint overrides the service address. "host:port" or an http:// URL
	// is taken as an emulator (fake-gcs-server): requests are not
	// authenticated. An https:// URL (e.g. a Private Service Connect
	// endpoint) keeps normal authentication. A URL without a path gets
	// "/storage/v1/". Empty: the public endpoint, or STORAGE_EMULATOR_HOST
	// when that is set (the client library honours it, unauthenticated).
	Endpoint string
	// CredentialsFile is a JSON credentials file (service account, authorized
	// user, impersonated or external account; its "type" field says which).
	// Empty: Application Default Credentials.
	CredentialsFile string
	// ChunkSize is the resumable-upload chunk size in bytes, at least
	// MinChunkSize and rounded up to a multiple of it; objects smaller than
	// it go in one request. 0: DefaultChunkSize. Each in-flight Put buffers
	// up to one chunk.
	ChunkSize int
	// MaxAttempts bounds the attempts per call (1: no retries); for an
	// upload it bounds the attempts of all its requests together. 0: no
	// bound; retries with backoff stop when the context ends or, for an
	// upload, when one chunk has been retried for 32 s (the client's chunk
	// retry deadline).
	MaxAttempts int
}

// MinChunkSize is the smallest ChunkSize: GCS's resumable-upload chunk
// granularity.
const MinChunkSize = chunkQuantum

// Validate reports every problem of c at once, each a *writers.SettingError
// naming the setting's config-file key below storage.gcs (MaxAttempts,
// which only Go callers set, as max_attempts). It checks the values as
// given: New replaces a zero ChunkSize with DefaultChunkSize first, the
// config file has an explicit one. It touches neither the network nor the
// credentials file; New does.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &writers.SettingError{Setting: "storage.gcs." + key, Problem: fmt.Sprintf(format, args...)})
	}
	if c.Bucket == "" {
		bad("bucket", "required when storage.type is gcs")
	}
	if _, err := writers.ParsePrefix(c.Prefix); err != nil {
		bad("prefix", "%v", err)
	}
	if c.ChunkSize < MinChunkSize {
		bad("chunk_size", "must be at least %s, got %s", writers.FormatSize(MinChunkSize), writers.FormatSize(int64(c.ChunkSize)))
	}
	if c.MaxAttempts < 0 {
		bad("max_attempts", "must be >= 0, got %d", c.MaxAttempts)
	}
	if c.Endpoint != "" {
		if _, _, err := endpointURL(c.Endpoint); err != nil {
			bad("endpoint", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// withDefaults returns c with a zero ChunkSize replaced by
// DefaultChunkSize.
func (c Config) withDefaults() Config {
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	return c
}

// Writer is the GCS writers.Writer. Safe for concurrent use.
type Writer struct {
	client      *storage.Client
	bucket      *storage.BucketHandle
	name        string // bucket name, for messages
	prefix      writers.Prefix
	chunkSize   int
	maxAttempts int
	logger      *slog.Logger
}

var _ writers.Writer = (*Writer)(nil)

// New connects to the bucket and checks that objects can be listed, so that
// a missing bucket or missing permission fails at start-up with a clear
// message ("gcs bucket "x" does not exist", "... permission denied: check
// storage.gcs credentials") rather than at the first upload. ctx bounds the
// check, which retries while the service is unreachable. The caller closes
// the Writer.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Writer, error) {
	return newWriter(ctx, cfg, logger)
}

// newWriter is New with extra client options appended (tests inject an HTTP
// client that corrupts or drops traffic).
func newWriter(ctx context.Context, cfg Config, logger *slog.Logger, extra ...option.ClientOption) (*Writer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gcs: %w", err)
	}
	prefix, _ := writers.ParsePrefix(cfg.Prefix) // checked by Validate
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []option.ClientOption{storage.WithDisabledClientMetrics()}
	if cfg.Endpoint != "" {
		ep, emulator, _ := endpointURL(cfg.Endpoint)
		opts = append(opts, option.WithEndpoint(ep))
		if emulator {
			opts = append(opts, option.WithoutAuthentication())
		}
	}
	opts = append(opts, extra...)
	if cfg.CredentialsFile != "" {
		typ, err := credentialsType(cfg.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("gcs: storage.gcs.credentials_file: %w", err)
		}
		opts = append(opts, option.WithAuthCredentialsFile(typ, cfg.CredentialsFile))
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gcs: new client: %w", err)
	}
	retry := []storage.RetryOption{
		storage.WithPolicy(storage.RetryAlways),
		storage.WithBackoff(gax.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2}),
	}
	if cfg.MaxAttempts > 0 {
		retry = append(retry, storage.WithMaxAttempts(cfg.MaxAttempts))
	}
	client.SetRetry(retry...)

	w := &Writer{
		client:      client,
		bucket:      client.Bucket(cfg.Bucket),
		name:        cfg.Bucket,
		prefix:      prefix,
		chunkSize:   cfg.ChunkSize,
		maxAttempts: cfg.MaxAttempts,
		logger:      logger.With("backend", "gcs", "bucket", cfg.Bucket),
	}
	if err := w.probe(ctx); err != nil {
		client.Close()
		return nil, w.bucketError(err)
	}
	w.logger.Debug("gcs writer ready", "prefix", w.prefix.String())
	return w, nil
}

// probe lists at most one object under the prefix. Listing rather than
// reading the bucket's attributes keeps the check within what the usual
// least-privilege role grants (roles/storage.objectAdmin has
// storage.objects.list but not storage.buckets.get).
func (w *Writer) probe(ctx context.Context) error {
	q := &storage.Query{Prefix: w.prefix.String()}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return err
	}
	it := w.bucket.Objects(ctx, q)
	it.PageInfo().MaxSize = 1
	if _, err := it.Next(); err != nil && !errors.Is(err, iterator.Done) {
		return err
	}
	return nil
}

// bucketError explains a failed start-up check.
func (w *Writer) bucketError(err error) error {
	var gerr *googleapi.Error
	switch {
	case errors.Is(err, storage.ErrBucketNotExist):
		return fmt.Errorf("gcs bucket %q does not exist: %w", w.name, err)
	case errors.As(err, &gerr) && (gerr.Code == http.StatusForbidden || gerr.Code == http.StatusUnauthorized):
		return fmt.Errorf("gcs bucket %q: permission denied: check storage.gcs credentials: %w", w.name, err)
	default:
		return fmt.Errorf("gcs bucket %q: %w", w.name, err)
	}
}

// endpointURL normalizes an Endpoint setting into the JSON API base URL and
// says whether it addresses an emulator (plain HTTP, no authentication).
func endpointURL(s string) (string, bool, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false, err
	}
	if u.Host == "" {
		return "", false, fmt.Errorf("%q: no host", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/storage/v1/"
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u.String(), u.Scheme == "http", nil
}

// credentialsType reads the "type" field of a JSON credentials file.
func credentialsType(path string) (option.CredentialsType, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var f struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	switch t := option.CredentialsType(f.Type); t {
	case option.ServiceAccount, option.AuthorizedUser, option.ImpersonatedServiceAccount, option.ExternalAccount:
		return t, nil
	default:
		return "", fmt.Errorf("%s: unsupported credentials type %q", path, f.Type)
	}
}

// Name returns "gcs".
func (w *Writer) Name() string { return "gcs" }

// Close releases the client's connections.
func (w *Writer) Close() error { return w.client.Close() }

func (w *Writer) object(key string) *storage.ObjectHandle {
	return w.bucket.Object(w.prefix.Object(key))
}

// Put implements writers.Writer.
func (w *Writer) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := w.put(ctx, key, r, size, ""); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// PutIfAbsent implements writers.Writer.
func (w *Writer) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	var tok [16]byte
	_, _ = rand.Read(tok[:]) // never fails
	if err := w.put(ctx, key, r, size, hex.EncodeToString(tok[:])); err != nil {
		return fmt.Errorf("put if absent %s: %w", key, err)
	}
	return nil
}

// put uploads exactly size bytes of r to key; a non-empty putID makes it
// conditional on the object not existing.
func (w *Writer) put(ctx context.Context, key string, r io.Reader, size int64, putID string) error {
	if err := writers.CheckPut(ctx, key, size); err != nil {
		return err
	}
	// Cancelling uctx before Close is what abandons the upload.
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	obj := w.object(key)
	if w.maxAttempts > 0 {
		// The client applies MaxAttempts to ordinary calls but not to
		// uploads (those retry each chunk for up to 32 s): count the failed
		// requests of this upload here. Object handles carry their own copy
		// of the retry settings, so this changes nothing else.
		var failures atomic.Int32
		limit := int32(w.maxAttempts)
		obj = obj.Retryer(storage.WithErrorFunc(func(err error) bool {
			return storage.ShouldRetry(err) && failures.Add(1) < limit
		}))
	}
	if putID != "" {
		obj = obj.If(storage.Conditions{DoesNotExist: true})
	}
	ow := obj.NewWriter(uctx)
	ow.ChunkSize = w.chunkSize
	if size < int64(ow.ChunkSize) {
		// One request, and a buffer no bigger than the object needs. The
		// extra byte lets the client see EOF within the first chunk.
		ow.ChunkSize = int((size + chunkQuantum) / chunkQuantum * chunkQuantum)
	}
	ow.ContentType = "application/octet-stream"
	if putID != "" {
		ow.Metadata = map[string]string{putIDKey: putID}
	}

	crc := crc32.New(castagnoli)
	abort := func(err error) error {
		cancel()
		_ = ow.Close() // waits for the upload goroutine; the error is uctx's
		return err
	}
	// ExactReader fails on a short or long reader and on a done ctx, so the
	// copy ends in an error, never in an early EOF that would finalize.
	if _, err := io.Copy(ow, io.TeeReader(writers.ExactReader(ctx, r, size), crc)); err != nil {
		return abort(fmt.Errorf("upload: %w", err))
	}
	if err := ctx.Err(); err != nil {
		// The reader may have been slow: don't publish for a caller that gave up.
		return abort(err)
	}
	if err := ow.Close(); err != nil {
		if putID != "" && isPreconditionFailed(err) {
			return w.checkOwnPut(ctx, key, putID)
		}
		return fmt.Errorf("upload: %w", err)
	}
	attrs := ow.Attrs()
	if want := crc.Sum32(); attrs.CRC32C != want || attrs.Size != size {
		err := fmt.Errorf("stored object (generation %d) has CRC32C %08x and %d bytes, sent %08x and %d bytes",
			attrs.Generation, attrs.CRC32C, attrs.Size, want, size)
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer dcancel()
		derr := w.object(key).If(storage.Conditions{GenerationMatch: attrs.Generation}).Delete(dctx)
		if derr != nil && !errors.Is(derr, storage.ErrObjectNotExist) && !isPreconditionFailed(derr) {
			w.logger.Error("delete corrupt object", "key", key, "generation", attrs.Generation, "err", derr)
			err = fmt.Errorf("%w; deleting it: %w", err, derr)
		}
		return err
	}
	return nil
}

// checkOwnPut handles a 412 on PutIfAbsent: it is ErrExists, unless the
// object carries putID, which means an earlier attempt of this very call
// succeeded and only its response was lost.
func (w *Writer) checkOwnPut(ctx context.Context, key, putID string) error {
	attrs, err := w.object(key).Attrs(ctx)
	switch {
	case err == nil && attrs.Metadata[putIDKey] == putID:
		w.logger.Info("put if absent: an earlier attempt of this call had succeeded", "key", key)
		return nil
	case err == nil || errors.Is(err, storage.ErrObjectNotExist):
		return writers.ErrExists
	default:
		return fmt.Errorf("key exists, and reading it back to check whether this call wrote it: %w", err)
	}
}

func isPreconditionFailed(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed
}

func isRangeNotSatisfiable(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusRequestedRangeNotSatisfiable
}

// mapErr turns the client's not-found error into writers.ErrNotFound.
func mapErr(err error) error {
	if errors.Is(err, storage.ErrObjectNotExist) {
		return writers.ErrNotFound
	}
	return err
}

// Get implements writers.Writer.
func (w *Writer) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := w.getRange(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return rc, nil
}

// GetRange implements writers.Writer. A range starting at or past the end of
// the object reads as empty.
func (w *Writer) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := w.getRange(ctx, key, off, length)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return rc, nil
}

func (w *Writer) getRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := writers.ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("negative offset %d", off)
	}
	if length < 0 {
		length = -1
	}
	r, err := w.object(key).NewRangeReader(ctx, off, length)
	if err != nil {
		if off > 0 && isRangeNotSatisfiable(err) {
			// The object exists (else 404) and is shorter than off.
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, mapErr(err)
	}
	return &replacedReader{r: r, reopen: func() (io.ReadCloser, error) {
		return w.object(key).NewRangeReader(ctx, off, length)
	}}, nil
}

// replacedReader reads an object and, when the object was replaced (a
// concurrent Put of the same key) between opening it and reading its first
// byte, so that its generation is gone, opens the new one instead. Past the
// first byte it never switches: the caller would get a mix of two versions.
// Data file keys are deterministic, so a replay may overwrite a file while
// the finalizer reads its footer; a reader must see one complete version.
type replacedReader struct {
	r      io.ReadCloser
	reopen func() (io.ReadCloser, error)
	read   int64
	tries  int
}

func (x *replacedReader) Read(p []byte) (int, error) {
	for {
		n, err := x.r.Read(p)
		x.read += int64(n)
		if err == nil || n > 0 || x.read > 0 || x.tries >= 3 || !errors.Is(err, storage.ErrObjectNotExist) {
			if err != nil && !errors.Is(err, io.EOF) {
				err = mapErr(err)
			}
			return n, err
		}
		x.tries++
		r, rerr := x.reopen()
		if rerr != nil {
			return 0, mapErr(rerr)
		}
		_ = x.r.Close()
		x.r = r
	}
}

func (x *replacedReader) Close() error { return x.r.Close() }

// Stat implements writers.Writer.
func (w *Writer) Stat(ctx context.Context, key string) (writers.Object, error) {
	if err := writers.ValidateKey(key); err != nil {
		return writers.Object{}, fmt.Errorf("stat %s: %w", key, err)
	}
	attrs, err := w.object(key).Attrs(ctx)
	if err != nil {
		return writers.Object{}, fmt.Errorf("stat %s: %w", key, mapErr(err))
	}
	return writers.Object{Key: key, Size: attrs.Size}, nil
}

// Exists implements writers.Writer.
func (w *Writer) Exists(ctx context.Context, key string) (bool, error) {
	_, err := w.Stat(ctx, key)
	return writers.ExistsFromStat(key, err)
}

// List implements writers.Writer. It pages through the bucket listing (GCS
// lists in lexical order; the result is sorted again to be sure).
func (w *Writer) List(ctx context.Context, prefix string) ([]writers.Object, error) {
	if err := writers.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	q := &storage.Query{Prefix: w.prefix.Object(prefix)}
	if err := q.SetAttrSelection([]string{"Name", "Size"}); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	it := w.bucket.Objects(ctx, q)
	var out []writers.Object
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		key, ok := w.prefix.Key(attrs.Name)
		if !ok || !strings.HasPrefix(key, prefix) {
			continue
		}
		out = append(out, writers.Object{Key: key, Size: attrs.Size})
	}
	if !slices.IsSortedFunc(out, cmpKey) {
		slices.SortFunc(out, cmpKey)
	}
	return out, nil
}

func cmpKey(a, b writers.Object) int { return strings.Compare(a.Key, b.Key) }

// Delete implements writers.Writer. Deleting a missing key succeeds.
func (w *Writer) Delete(ctx context.Context, key string) error {
	if err := writers.ValidateKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := w.object(key).Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
