package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{"0", 0, ""},
		{"1048576", MiB, ""},
		{"64MiB", 64 * MiB, ""},
		{"64mib", 64 * MiB, ""},
		{"64 MiB", 64 * MiB, ""},
		{" 1KiB ", KiB, ""},
		{"1.5GiB", 3 * GiB / 2, ""},
		{"2TiB", 2 * TiB, ""},
		{"10B", 10, ""},
		{"1KB", 1000, ""},
		{"1.5KB", 1500, ""},
		{"2MB", 2_000_000, ""},
		{"3GB", 3_000_000_000, ""},
		{"4TB", 4_000_000_000_000, ""},
		{"0.5KiB", 512, ""},
		{"1.000KiB", KiB, ""},
		{"8388607TiB", 8388607 * TiB, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"", 0, "no number"},
		{"MiB", 0, "no number"},
		{"-1", 0, "negative"},
		{"-1MiB", 0, "negative"},
		{"64MiBs", 0, `unknown unit "MiBs"`},
		{"64M", 0, `unknown unit "M"`},
		{"0.1KiB", 0, "not a whole number of bytes"},
		{"1.5B", 0, "not a whole number of bytes"},
		{"1.", 0, "malformed number"},
		{".5KiB", 0, "malformed number"},
		{"1.2.3KiB", 0, "malformed number"},
		{"8388608TiB", 0, "too large"},
		{"9223372036854775808", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
		{"1e6", 0, `unknown unit "e6"`},
		{"0x10", 0, `unknown unit "x10"`},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSize(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"}, {1, "1"}, {1023, "1023"}, {KiB, "1KiB"}, {1000, "1KB"}, {1500, "1500"},
		{1_500_000, "1500KB"}, {2_000_000, "2MB"}, {1 << 40, "1TiB"}, {64 * MiB, "64MiB"}, {3 * GiB / 2, "1536MiB"}, {1024000, "1000KiB"},
		{5 * TiB, "5TiB"}, {3_000_000_000_000, "3TB"}, {1<<63 - 1, "9223372036854775807"}, {-5, "-5"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in < 0 {
			continue
		}
		back, err := ParseSize(tt.in.String())
		if err != nil || back != tt.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in.String(), back, err, tt.in)
		}
	}
}

func FuzzSizeRoundTrip(f *testing.F) {
	for _, s := range []string{"0", "64MiB", "1.5GiB", "1500", "3TB", "0.5KB", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSize(in)
		if err != nil {
			return
		}
		if s < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", in, s)
		}
		back, err := ParseSize(s.String())
		if err != nil || back != s {
			t.Fatalf("ParseSize(%q) = %d; String %q parses to %d, %v", in, s, s.String(), back, err)
		}
	})
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		str     string
		wantErr bool
	}{
		{"10m", 10 * time.Minute, "10m", false},
		{"1h30m", 90 * time.Minute, "1h30m", false},
		{"1h", time.Hour, "1h", false},
		{"90s", 90 * time.Second, "1m30s", false},
		{"250ms", 250 * time.Millisecond, "250ms", false},
		{"0s", 0, "0s", false},
		{"0", 0, "0s", false},
		{"-5s", -5 * time.Second, "-5s", false},
		{"2h0m5s", 2*time.Hour + 5*time.Second, "2h0m5s", false},
		{"10", 0, "", true},
		{"ten minutes", 0, "", true},
		{"", 0, "", true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.D() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got.D(), err, tt.want)
		}
		if got.String() != tt.str {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.want, got.String(), tt.str)
		}
		back, err := ParseDuration(got.String())
		if err != nil || back != got {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got.String(), back, err, got)
		}
	}
}

func TestUnitsInYAMLAndText(t *testing.T) {
	// Through Parse: integers, quoted and unquoted values, and wrong shapes.
	base := "kafka: {brokers: [k:9092]}\nstreams: [{name: a, topics: [a], schema: [{name: id, type: string}]}]\n"
	c, err := Parse([]byte(base+"files: {max_file_bytes: 1048576, row_group_bytes: \"512KiB\"}\nshutdown_timeout: '1m'\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Files.MaxFileBytes != MiB || c.Files.RowGroupBytes != 512*KiB || c.ShutdownTimeout != Duration(time.Minute) {
		t.Errorf("got %v %v %v", c.Files.MaxFileBytes, c.Files.RowGroupBytes, c.ShutdownTimeout)
	}
	_, err = Parse([]byte(base+"files: {max_file_bytes: [1]}\nshutdown_timeout: {a: 1}\n"), nil)
	for _, w := range []string{"line 3: files.max_file_bytes: expected a size like 64MiB, got a list", "line 4: shutdown_timeout: expected a duration like 10m, got a mapping"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
	var s Size
	if err := s.UnmarshalText([]byte("2GiB")); err != nil || s != 2*GiB {
		t.Errorf("UnmarshalText = %v, %v", s, err)
	}
	if b, _ := s.MarshalText(); string(b) != "2GiB" {
		t.Errorf("MarshalText = %s", b)
	}
	var d Duration
	if err := d.UnmarshalText([]byte("2h")); err != nil || d != Duration(2*time.Hour) {
		t.Errorf("UnmarshalText = %v, %v", d, err)
	}
	if b, _ := d.MarshalText(); string(b) != "2h" {
		t.Errorf("MarshalText = %s", b)
	}
}
