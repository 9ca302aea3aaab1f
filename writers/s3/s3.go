// Package s3 is the Amazon S3 (and S3-compatible) backend of writers.Writer,
// built on aws-sdk-go-v2.
//
// # Atomicity and integrity
//
// S3 creates an object atomically: a PutObject or a CompleteMultipartUpload
// publishes the whole object at once or nothing, so no temporary objects are
// ever visible. Put checks that the reader yields exactly size bytes before it
// publishes anything: a short or long reader, a failing reader or a cancelled
// context leaves the previous state of the key. A multipart upload that does
// not complete is aborted (with a context detached from the caller's, so a
// cancelled Put still cleans up); if even the abort fails the upload id is
// logged, and a bucket lifecycle rule (AbortIncompleteMultipartUpload) is the
// backstop. Every request body carries a CRC32C checksum (x-amz-checksum-crc32c)
// that the server verifies, per part for multipart uploads.
//
// # Sizes and memory
//
// Objects up to Config.PartSize go up in one PutObject, larger ones as a
// multipart upload of PartSize parts (raised when the object would need more
// than 10,000 parts), Config.Concurrency parts in flight. When the reader is
// an io.ReaderAt and io.Seeker (an *os.File, a *bytes.Reader), parts are read
// straight from it with io.NewSectionReader and nothing is buffered; any other
// reader is read sequentially into at most Concurrency buffers of PartSize.
//
// # Retries
//
// Transient failures (connection errors, 5xx, throttling, timeouts) are
// retried inside the SDK by a standard retryer: Config.MaxAttempts attempts
// per request, exponential backoff with full jitter capped at
// Config.MaxBackoff, and no client-wide retry quota (a long outage must not
// turn every later request into an immediate failure). Request bodies are
// always seekable, so retries resend them. Callers retry whole operations on
// top of that.
//
// PutIfAbsent uses If-None-Match: "*". One caveat inherent to S3 conditional
// writes: if the winning request succeeds on the server but its response is
// lost and the SDK retries it, the retry sees the caller's own object and the
// call returns ErrExists. Callers that must tell the two apart read the
// object back and compare contents.
//
// # Keys
//
// Keys are validated with writers.ValidateKey and stored under Config.Prefix
// (normalized by writers.ParsePrefix); List strips the prefix again and
// returns keys in lexical (byte) order, as S3 does. Keys ending in "/"
// (folder markers made by other tools) are never listed.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/lakesink/lakesink/writers"
)

const (
	// DefaultPartSize is the multipart part size when Config.PartSize is 0.
	DefaultPartSize int64 = 16 << 20
	// MinPartSize is the smallest part S3 accepts (except for the last one).
	MinPartSize int64 = 5 << 20
	// MaxPartSize is the largest part S3 accepts.
	MaxPartSize int64 = 5 << 30
	// MaxParts is the most parts a multipart upload may have.
	MaxParts = 10000
	// DefaultConcurrency is the number of parts in flight when
	// Config.Concurrency is 0.
	DefaultConcurrency = 4
	// DefaultMaxAttempts is the attempts per request when Config.MaxAttempts
	// is 0.
	DefaultMaxAttempts = 5
	// DefaultMaxBackoff caps the delay between attempts when
	// Config.MaxBackoff is 0.
	DefaultMaxBackoff = 20 * time.Second
)

// Config configures the S3 backend. The zero value of every field but Bucket
// means "default" to New; Validate checks the values as given. It is not
// decoded from YAML: config.S3Storage.Backend builds it from the config
// file's storage.s3.
type Config struct {
	Bucket string // required
	Prefix string // key prefix inside the bucket; "" = bucket root
	Region string // "" = from the environment/shared config, else us-east-1
	// Endpoint overrides the service URL ("http://127.0.0.1:7070") for
	// S3-compatible servers; "" = AWS.
	Endpoint       string
	ForcePathStyle bool // path-style URLs (http://host/bucket/key)

	// Static credentials; all empty = the SDK's default chain (environment,
	// shared files, web identity, ECS/EC2 roles).
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string

	SSE          string // server-side encryption: "", "AES256" or "aws:kms"
	SSEKMSKeyID  string // KMS key for SSE "aws:kms"; "" = the bucket's default key
	StorageClass string // "" = STANDARD (the bucket's default)

	PartSize    int64         // multipart part size; 0 = DefaultPartSize, at least MinPartSize
	Concurrency int           // parts in flight per Put; 0 = DefaultConcurrency
	MaxAttempts int           // attempts per request; 0 = DefaultMaxAttempts
	MaxBackoff  time.Duration // cap of the backoff between attempts; 0 = DefaultMaxBackoff
}

// withDefaults returns cfg with its zero PartSize, Concurrency, MaxAttempts
// and MaxBackoff replaced by the defaults.
func (cfg Config) withDefaults() Config {
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	return cfg
}

// Validate reports every problem of cfg at once, each a
// *writers.SettingError naming the setting's config-file key below
// storage.s3 (MaxAttempts and MaxBackoff, which only Go callers set, as
// max_attempts and max_backoff). It checks the values as given: New
// replaces zero sizes, counts and durations with the defaults first, the
// config file has explicit ones. It touches no network; New finds missing
// buckets and bad credentials. The Endpoint is not checked here (the
// config checks its form).
func (cfg Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &writers.SettingError{Setting: "storage.s3." + key, Problem: fmt.Sprintf(format, args...)})
	}
	if cfg.Bucket == "" {
		bad("bucket", "required when storage.type is s3")
	}
	if _, err := writers.ParsePrefix(cfg.Prefix); err != nil {
		bad("prefix", "%v", err)
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		bad("secret_access_key", "access_key_id and secret_access_key go together: set both or neither")
	}
	if cfg.SessionToken != "" && cfg.AccessKeyID == "" {
		bad("session_token", "needs access_key_id and secret_access_key")
	}
	switch types.ServerSideEncryption(cfg.SSE) {
	case "", types.ServerSideEncryptionAes256, types.ServerSideEncryptionAwsKms:
	default:
		bad("sse", `unknown value %q (want one of "", %s, %s)`, cfg.SSE, types.ServerSideEncryptionAes256, types.ServerSideEncryptionAwsKms)
	}
	if cfg.SSEKMSKeyID != "" && types.ServerSideEncryption(cfg.SSE) != types.ServerSideEncryptionAwsKms {
		bad("sse_kms_key_id", `only with sse "aws:kms"`)
	}
	if classes := types.StorageClass("").Values(); cfg.StorageClass != "" && !slices.Contains(classes, types.StorageClass(cfg.StorageClass)) {
		names := make([]string, len(classes))
		for i, c := range classes {
			names[i] = string(c)
		}
		bad("storage_class", `unknown value %q (want "" for the bucket's default or one of %s)`, cfg.StorageClass, strings.Join(names, ", "))
	}
	if cfg.PartSize < MinPartSize || cfg.PartSize > MaxPartSize {
		bad("part_size", "must be between %s and %s, got %s", writers.FormatSize(MinPartSize), writers.FormatSize(MaxPartSize), writers.FormatSize(cfg.PartSize))
	}
	if cfg.Concurrency < 1 {
		bad("concurrency", "must be at least 1, got %d", cfg.Concurrency)
	}
	if cfg.MaxAttempts < 1 {
		bad("max_attempts", "must be at least 1, got %d", cfg.MaxAttempts)
	}
	if cfg.MaxBackoff <= 0 {
		bad("max_backoff", "must be positive, got %s", cfg.MaxBackoff)
	}
	return errors.Join(errs...)
}

// Writer stores objects in one S3 bucket under a prefix. It implements
// writers.Writer; all methods are safe for concurrent use.
type Writer struct {
	cfg       Config         // with defaults
	prefix    writers.Prefix // cfg.Prefix, normalized
	client    *awss3.Client
	transport *http.Transport
	log       *slog.Logger
	bufs      sync.Pool // *[]byte part buffers for readers without ReadAt
}

var _ writers.Writer = (*Writer)(nil)

// New builds the client and checks, with HeadBucket, that the bucket exists
// and the credentials may use it; the error says which of the two is wrong.
// The caller closes the Writer.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Writer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s3 config: %w", err)
	}
	prefix, _ := writers.ParsePrefix(cfg.Prefix) // checked by Validate
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = cfg.MaxBackoff
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %q: load aws config: %w", cfg.Bucket, err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	// Own the transport, so that Close can drop its idle connections. Start
	// from the SDK's (it carries AWS_CA_BUNDLE and the SDK's dial timeouts).
	var tr *http.Transport
	if bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		tr = bc.GetTransport()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.MaxIdleConnsPerHost = max(2*cfg.Concurrency, 16)
	awsCfg.HTTPClient = &http.Client{
		Transport: tr,
		// S3 answers a wrong region with a redirect the SDK must see as an
		// error, not follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
		// Composite (multipart) checksums cannot be checked on download;
		// the parts were checked on upload. Don't log that on every Get.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	w := &Writer{
		cfg:       cfg,
		prefix:    prefix,
		client:    client,
		transport: tr,
		log:       logger.With("backend", "s3", "bucket", cfg.Bucket),
	}
	if _, err := client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		// A HEAD error has no body, so no error code: a 404 may mean an
		// unknown access key (versitygw) as well as a missing bucket. Ask
		// again with a request whose error says which.
		if _, code := errorStatus(err); code == "" || code == "NotFound" || code == "Forbidden" {
			_, lerr := client.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(cfg.Bucket), MaxKeys: aws.Int32(1)})
			if _, lcode := errorStatus(lerr); lcode != "" {
				err = lerr
			}
		}
		tr.CloseIdleConnections()
		return nil, bucketError(cfg.Bucket, err)
	}
	return w, nil
}

// credentialErrorCodes are the S3 error codes that blame the credentials
// (XAdminUserNotFound is versitygw's unknown access key, sent with a 404).
var credentialErrorCodes = map[string]bool{
	"AccessDenied":          true,
	"InvalidAccessKeyId":    true,
	"SignatureDoesNotMatch": true,
	"InvalidToken":          true,
	"ExpiredToken":          true,
	"TokenRefreshRequired":  true,
	"XAdminUserNotFound":    true,
}

// bucketError turns a failure to reach the bucket into a message that says
// what to fix.
func bucketError(bucket string, err error) error {
	status, code := errorStatus(err)
	switch {
	case code == "NoSuchBucket":
		return fmt.Errorf("s3 bucket %q does not exist: %w", bucket, err)
	case credentialErrorCodes[code] || status == http.StatusForbidden || status == http.StatusUnauthorized:
		return fmt.Errorf("s3 bucket %q: access denied: check storage.s3 credentials: %w", bucket, err)
	case status == http.StatusNotFound:
		return fmt.Errorf("s3 bucket %q does not exist: %w", bucket, err)
	case status == http.StatusMovedPermanently || code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed":
		return fmt.Errorf("s3 bucket %q: in another region: check storage.s3 region and endpoint: %w", bucket, err)
	default:
		return fmt.Errorf("s3 bucket %q: %w", bucket, err)
	}
}

// errorStatus returns the HTTP status (0 if none) and the S3 error code ("" if
// none) of an SDK error.
func errorStatus(err error) (int, string) {
	status, code := 0, ""
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}

// isNotFound reports whether err says the object does not exist. A missing
// bucket is not a missing object (except for HEAD requests, whose 404 has no
// body to tell them apart).
func isNotFound(err error) bool {
	status, code := errorStatus(err)
	switch code {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket":
		return false
	}
	return status == http.StatusNotFound
}

// isConditionFailed reports whether err is the answer to a conditional write
// whose condition did not hold: 412 Precondition Failed, or 409
// ConditionalRequestConflict when another conditional write raced ours.
func isConditionFailed(err error) bool {
	status, code := errorStatus(err)
	return status == http.StatusPreconditionFailed || code == "PreconditionFailed" || code == "ConditionalRequestConflict"
}

// isInvalidRange reports a 416: a range starting at or past the object's end.
func isInvalidRange(err error) bool {
	status, code := errorStatus(err)
	return status == http.StatusRequestedRangeNotSatisfiable || code == "InvalidRange"
}

// Name returns "s3".
func (w *Writer) Name() string { return "s3" }

// Close releases idle connections. Calls made after Close still work (they
// open new connections); the owner should not make any.
func (w *Writer) Close() error {
	w.transport.CloseIdleConnections()
	return nil
}

// Bucket returns the bucket name, for logs.
func (w *Writer) Bucket() string { return w.cfg.Bucket }

func (w *Writer) objectKey(key string) *string { return aws.String(w.prefix.Object(key)) }

// Put implements writers.Writer.
func (w *Writer) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := w.put(ctx, key, r, size, false); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// PutIfAbsent implements writers.Writer with If-None-Match: "*" (on
// CompleteMultipartUpload for large objects). See the package doc for the
// lost-response caveat.
func (w *Writer) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := w.put(ctx, key, r, size, true); err != nil {
		return fmt.Errorf("put if absent %s: %w", key, err)
	}
	return nil
}

func (w *Writer) put(ctx context.Context, key string, r io.Reader, size int64, ifAbsent bool) error {
	if err := writers.CheckPut(ctx, key, size); err != nil {
		return err
	}
	src := newSource(ctx, r, size)
	var err error
	if size <= w.cfg.PartSize {
		err = w.putSingle(ctx, key, src, ifAbsent)
	} else {
		err = w.putMultipart(ctx, key, src, ifAbsent)
	}
	if err != nil {
		return err
	}
	src.finish()
	return nil
}

// putSingle stores a small object with one PutObject.
func (w *Writer) putSingle(ctx context.Context, key string, src *source, ifAbsent bool) error {
	body, release, err := src.part(0, src.size, &w.bufs)
	if err != nil {
		return err
	}
	defer release()
	if err := src.checkEnd(); err != nil {
		return err
	}
	// The reader may have been slow: don't publish for a caller that gave up.
	if err := ctx.Err(); err != nil {
		return err
	}
	in := &awss3.PutObjectInput{
		Bucket:            aws.String(w.cfg.Bucket),
		Key:               w.objectKey(key),
		Body:              body,
		ContentLength:     aws.Int64(src.size),
		ContentType:       aws.String(contentType(key)),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	}
	w.applyStorageOptions(&in.ServerSideEncryption, &in.SSEKMSKeyId, &in.StorageClass)
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := w.client.PutObject(ctx, in); err != nil {
		if ifAbsent && isConditionFailed(err) {
			return writers.ErrExists
		}
		return err
	}
	return nil
}

func (w *Writer) applyStorageOptions(sse *types.ServerSideEncryption, kms **string, class *types.StorageClass) {
	*sse = types.ServerSideEncryption(w.cfg.SSE)
	if w.cfg.SSEKMSKeyID != "" {
		*kms = aws.String(w.cfg.SSEKMSKeyID)
	}
	*class = types.StorageClass(w.cfg.StorageClass)
}

// contentType is the Content-Type stored with key: Parquet and JSON by
// extension, octet-stream otherwise.
func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".parquet"):
		return "application/vnd.apache.parquet"
	case strings.HasSuffix(key, ".json"), strings.HasSuffix(key, "/_SUCCESS"), key == "_SUCCESS":
		return "application/json"
	default:
		return "application/octet-stream"
	}
}

// Get implements writers.Writer.
func (w *Writer) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := w.get(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return rc, nil
}

// GetRange implements writers.Writer. A range that starts at or after the
// end of the object reads nothing.
func (w *Writer) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := w.get(ctx, key, off, length)
	if err != nil {
		return nil, fmt.Errorf("get %s range %d+%d: %w", key, off, length, err)
	}
	return rc, nil
}

func (w *Writer) get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := writers.ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("negative offset %d", off)
	}
	if length == 0 {
		// HTTP cannot ask for zero bytes; check the object exists instead.
		if _, err := w.stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	in := &awss3.GetObjectInput{Bucket: aws.String(w.cfg.Bucket), Key: w.objectKey(key)}
	switch {
	case off == 0 && length < 0:
		// The whole object: no Range, so an empty object reads fine too.
	case length < 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	default:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	}
	out, err := w.client.GetObject(ctx, in)
	switch {
	case err == nil:
		return out.Body, nil
	case isNotFound(err):
		return nil, writers.ErrNotFound
	case isInvalidRange(err):
		// The range starts at or past the end; the object exists.
		return io.NopCloser(strings.NewReader("")), nil
	default:
		return nil, err
	}
}

// Stat implements writers.Writer.
func (w *Writer) Stat(ctx context.Context, key string) (writers.Object, error) {
	o, err := w.stat(ctx, key)
	if err != nil {
		return writers.Object{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return o, nil
}

func (w *Writer) stat(ctx context.Context, key string) (writers.Object, error) {
	if err := writers.ValidateKey(key); err != nil {
		return writers.Object{}, err
	}
	out, err := w.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(w.cfg.Bucket), Key: w.objectKey(key)})
	if err != nil {
		if isNotFound(err) {
			return writers.Object{}, writers.ErrNotFound
		}
		return writers.Object{}, err
	}
	return writers.Object{Key: key, Size: aws.ToInt64(out.ContentLength)}, nil
}

// Exists implements writers.Writer.
func (w *Writer) Exists(ctx context.Context, key string) (bool, error) {
	_, err := w.stat(ctx, key)
	return writers.ExistsFromStat(key, err)
}

// List implements writers.Writer with ListObjectsV2 pages of up to 1000 keys.
func (w *Writer) List(ctx context.Context, prefix string) ([]writers.Object, error) {
	if err := writers.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	p := awss3.NewListObjectsV2Paginator(w.client, &awss3.ListObjectsV2Input{
		Bucket: aws.String(w.cfg.Bucket),
		Prefix: aws.String(w.prefix.Object(prefix)),
	})
	var out []writers.Object
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			k, ok := w.prefix.Key(aws.ToString(o.Key))
			if !ok || k == "" || strings.HasSuffix(k, "/") {
				continue
			}
			out = append(out, writers.Object{Key: k, Size: aws.ToInt64(o.Size)})
		}
	}
	// S3 lists in UTF-8 byte order already; S3-compatible servers may not.
	slices.SortFunc(out, func(a, b writers.Object) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete implements writers.Writer. Deleting a missing key succeeds.
func (w *Writer) Delete(ctx context.Context, key string) error {
	if err := writers.ValidateKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	_, err := w.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(w.cfg.Bucket), Key: w.objectKey(key)})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
