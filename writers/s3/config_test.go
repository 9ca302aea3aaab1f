package s3

import (
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/writers"
)

func TestPartSizeFor(t *testing.T) {
	w := &Writer{cfg: Config{PartSize: MinPartSize}}
	for _, tc := range []struct {
		size, want int64
	}{
		{MinPartSize + 1, MinPartSize},
		{MinPartSize * MaxParts, MinPartSize},
		{MinPartSize*MaxParts + 1, 6 << 20}, // rounded up to whole MiB
		{5 << 40, 525 << 20},                // 5 TiB, the S3 maximum
	} {
		got := w.partSizeFor(tc.size)
		if got != tc.want {
			t.Errorf("partSizeFor(%d) = %d, want %d", tc.size, got, tc.want)
		}
		if parts := (tc.size + got - 1) / got; parts > MaxParts {
			t.Errorf("partSizeFor(%d) = %d gives %d parts, more than %d", tc.size, got, parts, MaxParts)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := Config{Bucket: "b", Prefix: "/lake/raw/"}.withDefaults()
	want := Config{Bucket: "b", Prefix: "/lake/raw/", PartSize: DefaultPartSize, Concurrency: DefaultConcurrency,
		MaxAttempts: DefaultMaxAttempts, MaxBackoff: DefaultMaxBackoff}
	if cfg != want {
		t.Fatalf("withDefaults() = %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() of the defaults = %v", err)
	}
}

// TestValidate: every rule, with the setting it names. An unset size,
// count or duration is a problem for Validate (New fills in defaults
// first; config files have explicit ones).
func TestValidate(t *testing.T) {
	good := Config{Bucket: "b", Prefix: "/lake/raw/", PartSize: MinPartSize, Concurrency: 1, MaxAttempts: 1, MaxBackoff: time.Second,
		AccessKeyID: "id", SecretAccessKey: "secret", SessionToken: "token", SSE: "aws:kms", SSEKMSKeyID: "key", StorageClass: "GLACIER_IR"}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(%+v) = %v", good, err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want []string
	}{
		{func(c *Config) { c.Bucket = "" }, []string{"storage.s3.bucket: required when storage.type is s3"}},
		{func(c *Config) { c.Prefix = "a/../b" }, []string{`storage.s3.prefix: invalid key "a/../b": ".." path segment`}},
		{func(c *Config) { c.SecretAccessKey = "" }, []string{"storage.s3.secret_access_key: access_key_id and secret_access_key go together"}},
		{func(c *Config) { c.AccessKeyID, c.SecretAccessKey = "", "" }, []string{"storage.s3.session_token: needs access_key_id and secret_access_key"}},
		{func(c *Config) { c.SSE = "aes" }, []string{`storage.s3.sse: unknown value "aes" (want one of "", AES256, aws:kms)`, `storage.s3.sse_kms_key_id: only with sse "aws:kms"`}},
		{func(c *Config) { c.SSE = "AES256" }, []string{`storage.s3.sse_kms_key_id: only with sse "aws:kms"`}},
		{func(c *Config) { c.StorageClass = "COLD" }, []string{`storage.s3.storage_class: unknown value "COLD" (want "" for the bucket's default or one of STANDARD, `}},
		{func(c *Config) { c.PartSize = MinPartSize - 1 }, []string{"storage.s3.part_size: must be between 5MiB and 5GiB, got 5242879"}},
		{func(c *Config) { c.PartSize = MaxPartSize + 1<<20 }, []string{"storage.s3.part_size: must be between 5MiB and 5GiB, got 5121MiB"}},
		{func(c *Config) { c.Concurrency = 0 }, []string{"storage.s3.concurrency: must be at least 1, got 0"}},
		{func(c *Config) { c.MaxAttempts = -1 }, []string{"storage.s3.max_attempts: must be at least 1, got -1"}},
		{func(c *Config) { c.MaxBackoff = 0 }, []string{"storage.s3.max_backoff: must be positive, got 0s"}},
	} {
		cfg := good
		tc.edit(&cfg)
		err := cfg.Validate()
		got := writers.SettingErrors(err)
		if len(got) != len(tc.want) {
			t.Errorf("Validate(%+v) = %v, want %d problems", cfg, err, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.HasPrefix(got[i].Error(), w) {
				t.Errorf("Validate(%+v) problem %d = %q, want it to start with %q", cfg, i, got[i], w)
			}
		}
	}
}
