package s3

import (
	"testing"
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
	cfg, err := Config{Bucket: "b", Prefix: "/lake/raw/"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Bucket: "b", Prefix: "lake/raw/", PartSize: DefaultPartSize, Concurrency: DefaultConcurrency,
		MaxAttempts: DefaultMaxAttempts, MaxBackoff: DefaultMaxBackoff}
	if cfg != want {
		t.Fatalf("withDefaults() = %+v, want %+v", cfg, want)
	}
}
