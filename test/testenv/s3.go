package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3 is a versitygw process serving the S3 API (path style, SigV4) from a
// POSIX folder, so objects survive Restart.
type S3 struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	Region    string // any region works; clients sign with this one
	AccessKey string
	SecretKey string
	Dir       string // the posix backend's root: one sub-folder per bucket

	t    testing.TB
	port int
	bin  string
	proc *Process
	hc   *http.Client
}

// StartS3 starts versitygw on a free port of 127.0.0.1 with a fresh data
// folder and static credentials. The process is stopped by t.Cleanup.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	s := &S3{
		Region:    "us-east-1",
		AccessKey: "lakesinktest",
		SecretKey: "lakesinktestsecret",
		Dir:       t.TempDir(),
		t:         t,
		port:      FreePort(t),
		bin:       Tool(t, "versitygw"),
		hc:        &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
	}
	s.Endpoint = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	t.Cleanup(func() { s.hc.CloseIdleConnections() })
	s.start()
	return s
}

func (s *S3) start() {
	s.t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.proc = Start(s.t, "versitygw", s.bin, Options{},
		"--port", addr,
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", s.Region,
		"posix", s.Dir)
	if err := WaitTCP(addr, 30*time.Second); err != nil {
		s.t.Fatalf("versitygw: %v\n%s", err, s.proc.Tail(30))
	}
}

// Stop stops the server (SIGTERM). Objects stay in Dir.
func (s *S3) Stop() {
	s.proc.Stop(10 * time.Second)
	// Drop keep-alive connections to the dead process.
	s.hc.CloseIdleConnections()
}

// Restart starts the server again on the same port and folder; it stops it
// first if it is still running.
func (s *S3) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Client returns an S3 client for the server, signed with its credentials.
func (s *S3) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   s.hc,
	})
}

// CreateBucket creates bucket name, failing the test on error.
func (s *S3) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	// versitygw keeps a bucket as a folder under Dir; make sure it is there.
	if _, err := os.Stat(fmt.Sprintf("%s/%s", s.Dir, name)); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// ListMultipartUploads returns how many multipart uploads are in progress
// (created, neither completed nor aborted) in bucket.
func (s *S3) ListMultipartUploads(t testing.TB, bucket string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)}
	for {
		out, err := s.Client().ListMultipartUploads(ctx, in)
		if err != nil {
			t.Fatalf("list multipart uploads %s: %v", bucket, err)
		}
		n += len(out.Uploads)
		if !aws.ToBool(out.IsTruncated) {
			return n
		}
		if out.NextKeyMarker == nil && out.NextUploadIdMarker == nil {
			t.Fatal(errors.New("list multipart uploads: truncated without a next marker"))
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// String describes the server for logs.
func (s *S3) String() string { return fmt.Sprintf("s3(%s)", s.Endpoint) }
