package writers_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/lakesink/lakesink/writers"
)

func TestSettingErrors(t *testing.T) {
	a := &writers.SettingError{Setting: "storage.s3.bucket", Problem: "required"}
	b := &writers.SettingError{Setting: "storage.s3.part_size", Problem: "must be between 5MiB and 5GiB, got 1MiB"}
	if got := a.Error(); got != "storage.s3.bucket: required" {
		t.Errorf("Error() = %q", got)
	}
	err := fmt.Errorf("s3 config: %w", errors.Join(a, errors.New("not a setting"), errors.Join(b)))
	got := writers.SettingErrors(err)
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("SettingErrors = %v, want [%v %v]", got, a, b)
	}
	if got := writers.SettingErrors(nil); got != nil {
		t.Errorf("SettingErrors(nil) = %v", got)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0", -1: "-1", 1: "1", 1234: "1234", 1 << 10: "1KiB", 256 << 10: "256KiB",
		5 << 20: "5MiB", 5 << 30: "5GiB", 1500e3: "1500KB", 3e12: "3TB", 1e3 * 1 << 10: "1000KiB",
	} {
		if got := writers.FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
