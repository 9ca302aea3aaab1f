package partitioner

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPathTemplate(t *testing.T) {
	kolkata := mustLoad(t, "Asia/Kolkata")
	hour := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		tmpl    string
		stream  string
		hour    time.Time
		want    string
		prefix  string
		wantErr string
	}{
		{tmpl: "{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}", stream: "clickstream", hour: hour,
			want: "clickstream/dt=2026-11-25/hour=13", prefix: "clickstream/dt="},
		{tmpl: "{stream}/{yyyy}/{MM}/{dd}/{HH}", stream: "iot", hour: time.Date(2027, 1, 2, 3, 0, 0, 0, time.UTC),
			want: "iot/2027/01/02/03", prefix: "iot/"},
		{tmpl: "{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}", stream: "s", hour: time.Date(2026, 11, 25, 18, 0, 0, 0, kolkata),
			want: "s/dt=2026-11-25/hour=18", prefix: "s/dt="},
		{tmpl: "lake/{yyyy}{MM}{dd}{HH}/{stream}", stream: "a", hour: hour,
			want: "lake/2026112513/a", prefix: "lake/"},
		{tmpl: "{stream}/{stream}-{yyyy}-{MM}-{dd}-{HH}", stream: "x", hour: hour,
			want: "x/x-2026-11-25-13", prefix: "x/x-"},
		{tmpl: "{stream}/y={yyyy}/{MM}{dd}/{HH}", stream: "s", hour: time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC),
			want: "s/y=12345/0101/00", prefix: "s/y="},
		{tmpl: "{stream}/{yyyy}/{MM}/{dd}/{HH}/{mm}", wantErr: "unknown placeholder {mm}"},
		{tmpl: "{stream}/{YYYY}/{MM}/{dd}/{HH}", wantErr: "unknown placeholder {YYYY}"},
		{tmpl: "{stream}/{yyyy/{MM}/{dd}/{HH}", wantErr: "unmatched '{'"},
		{tmpl: "{stream}/{yyyy}/{MM}/{dd}/{HH", wantErr: "unmatched '{'"},
		{tmpl: "{stream}/yyyy}/{MM}/{dd}/{HH}", wantErr: "unmatched '}'"},
		{tmpl: "{stream}/{}/{yyyy}/{MM}/{dd}/{HH}", wantErr: "unknown placeholder {}"},
		{tmpl: "{stream}/{MM}/{dd}/{HH}", wantErr: "missing placeholder {yyyy}"},
		{tmpl: "{stream}/{yyyy}/{MM}/{dd}", wantErr: "missing placeholder {HH}"},
		{tmpl: "{yyyy}/{MM}/{dd}/{HH}", wantErr: "missing placeholder {stream}"},
		{tmpl: "", wantErr: "missing placeholder"},
		{tmpl: "/{stream}/{yyyy}/{MM}/{dd}/{HH}", wantErr: "relative"},
		{tmpl: "{stream}/{yyyy}/{MM}/{dd}/{HH}/", wantErr: "empty path element"},
		{tmpl: "{stream}//{yyyy}/{MM}/{dd}/{HH}", wantErr: "empty path element"},
		{tmpl: "{stream}/../{yyyy}/{MM}/{dd}/{HH}", wantErr: `".."`},
		{tmpl: `{stream}\{yyyy}/{MM}/{dd}/{HH}`, wantErr: `'\'`},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			p, err := ParsePathTemplate(tt.tmpl)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePathTemplate(%q) error = %v, want containing %q", tt.tmpl, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePathTemplate(%q): %v", tt.tmpl, err)
			}
			if got := p.Render(tt.stream, tt.hour); got != tt.want {
				t.Errorf("Render = %q, want %q", got, tt.want)
			}
			if got := p.Prefix(tt.stream); got != tt.prefix {
				t.Errorf("Prefix = %q, want %q", got, tt.prefix)
			}
			if !strings.HasPrefix(p.Render(tt.stream, tt.hour), p.Prefix(tt.stream)) {
				t.Errorf("rendered path does not start with the prefix")
			}
			if p.String() != tt.tmpl {
				t.Errorf("String = %q, want %q", p.String(), tt.tmpl)
			}
		})
	}
}

func FuzzParsePathTemplate(f *testing.F) {
	for _, s := range []string{
		"{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}", "{stream}/{yyyy}/{MM}/{dd}/{HH}", "{", "}", "{}",
		"{stream}{yyyy}{MM}{dd}{HH}", "a/{stream}/../{yyyy}{MM}{dd}{HH}", "{stream}/{HH}{HH}{yyyy}{MM}{dd}/x",
	} {
		f.Add(s, "clickstream", int64(1795611600))
	}
	f.Fuzz(func(t *testing.T, tmpl, stream string, unix int64) {
		p, err := ParsePathTemplate(tmpl)
		if err != nil {
			return
		}
		hour := HourOf(time.Unix(unix%(400*366*24*3600), 0), time.UTC)
		a, b := p.Render(stream, hour), p.Render(stream, hour)
		if a != b {
			t.Fatalf("Render not deterministic: %q vs %q", a, b)
		}
		q, err := ParsePathTemplate(p.String())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", p.String(), err)
		}
		if q.Render(stream, hour) != a {
			t.Fatalf("re-parsed template renders differently")
		}
		if !strings.HasPrefix(a, p.Prefix(stream)) {
			t.Fatalf("Render %q does not start with Prefix %q", a, p.Prefix(stream))
		}
		if !strings.Contains(a, stream) {
			t.Fatalf("Render %q lacks the stream %q", a, stream)
		}
		// Distinct hours render to distinct folders.
		if p.Render(stream, hour.Add(time.Hour)) == a {
			t.Fatalf("hours %s and the next render to the same folder %q", hour, a)
		}
	})
}

func TestFileName(t *testing.T) {
	tests := []struct {
		topic     string
		partition int
		offset    int64
		want      string
	}{
		{"clickstream", 3, 120000, "clickstream+3+00000000000000120000.parquet"},
		{"clickstream", 4, 119876, "clickstream+4+00000000000000119876.parquet"},
		{"iot-telemetry.v2_x", 0, 0, "iot-telemetry.v2_x+0+00000000000000000000.parquet"},
		{"t", 2147483647, 9223372036854775807, "t+2147483647+09223372036854775807.parquet"},
	}
	for _, tt := range tests {
		got := FileName(tt.topic, tt.partition, tt.offset)
		if got != tt.want {
			t.Errorf("FileName(%q, %d, %d) = %q, want %q", tt.topic, tt.partition, tt.offset, got, tt.want)
		}
		topic, part, off, ok := ParseFileName(got)
		if !ok || topic != tt.topic || part != tt.partition || off != tt.offset {
			t.Errorf("ParseFileName(%q) = %q, %d, %d, %v", got, topic, part, off, ok)
		}
	}
}

func TestParseFileNameRejects(t *testing.T) {
	for _, name := range []string{
		"", MarkerName, ".parquet", "clickstream+3+00000000000000120000",
		"clickstream+3+0000000000000012000.parquet",   // 19 digits
		"clickstream+3+000000000000001200000.parquet", // 21 digits
		"clickstream+03+00000000000000120000.parquet", // non-canonical partition
		"clickstream+-3+00000000000000120000.parquet", // negative partition
		"clickstream++00000000000000120000.parquet",   // empty partition
		"+3+00000000000000120000.parquet",             // empty topic
		"click stream+3+00000000000000120000.parquet", // illegal topic char
		"a+b+3+00000000000000120000.parquet",          // '+' in topic
		"clickstream+3+-0000000000000120000.parquet",  // sign in offset
		"clickstream+3+99999999999999999999.parquet",  // offset overflow
		"clickstream+3+00000000000000120000.parquet.tmp",
		"clickstream+99999999999+00000000000000120000.parquet",
		"..+3+00000000000000120000.parquet",
		strings.Repeat("a", 250) + "+3+00000000000000120000.parquet",
		"compacted+0123456789abcdef.parquet", // a compacted file (CompactedFileName)
		CompactedFileName([]Source{{Topic: "clickstream", Partition: 3, FirstOffset: 120000, LastOffset: 120009, Records: 10}}),
	} {
		if topic, part, off, ok := ParseFileName(name); ok {
			t.Errorf("ParseFileName(%q) = %q, %d, %d, true; want false", name, topic, part, off)
		}
	}
}

func FuzzParseFileName(f *testing.F) {
	f.Add("clickstream+3+00000000000000120000.parquet")
	f.Add("a.b_c-d+0+00000000000000000000.parquet")
	f.Add("x+1+1.parquet")
	f.Fuzz(func(t *testing.T, name string) {
		topic, part, off, ok := ParseFileName(name)
		if !ok {
			return
		}
		if got := FileName(topic, part, off); got != name {
			t.Fatalf("ParseFileName(%q) = %q, %d, %d but FileName gives %q", name, topic, part, off, got)
		}
	})
}

func BenchmarkPathTemplateRender(b *testing.B) {
	p, err := ParsePathTemplate("{stream}/dt={yyyy}-{MM}-{dd}/hour={HH}")
	if err != nil {
		b.Fatal(err)
	}
	hour := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Render("clickstream", hour)
	}
}

func TestCompactedFileName(t *testing.T) {
	a := Source{Topic: "clicks", Partition: 0, FirstOffset: 100, LastOffset: 698, Records: 300}
	b := Source{Topic: "clicks", Partition: 1, FirstOffset: 0, LastOffset: 998, Records: 500}
	name := CompactedFileName([]Source{a, b})
	if !ParseCompactedFileName(name) || !strings.HasPrefix(name, "compacted+") || len(name) != len("compacted+")+16+len(".parquet") {
		t.Fatalf("CompactedFileName = %q", name)
	}
	if _, _, _, ok := ParseFileName(name); ok {
		t.Errorf("ParseFileName(%q) accepted a compacted name", name)
	}
	if again := CompactedFileName(slices.Clone([]Source{a, b})); again != name {
		t.Errorf("CompactedFileName not deterministic: %q, %q", name, again)
	}
	seen := map[string]string{name: "a,b"}
	variants := map[string][]Source{
		"b,a":       {b, a},
		"a":         {a},
		"none":      nil,
		"topic":     {{Topic: "clicks2", Partition: 0, FirstOffset: 100, LastOffset: 698, Records: 300}, b},
		"partition": {{Topic: "clicks", Partition: 2, FirstOffset: 100, LastOffset: 698, Records: 300}, b},
		"first":     {{Topic: "clicks", Partition: 0, FirstOffset: 101, LastOffset: 698, Records: 300}, b},
		"last":      {{Topic: "clicks", Partition: 0, FirstOffset: 100, LastOffset: 699, Records: 300}, b},
		"records":   {{Topic: "clicks", Partition: 0, FirstOffset: 100, LastOffset: 698, Records: 299}, b},
		// Length prefixes keep topic boundaries apart.
		"split topic": {{Topic: "c", Partition: 0}, {Topic: "licks"}},
		"joined":      {{Topic: "cl", Partition: 0}, {Topic: "icks"}},
	}
	for what, s := range variants {
		n := CompactedFileName(s)
		if !ParseCompactedFileName(n) {
			t.Errorf("%s: %q does not parse", what, n)
		}
		if prev, dup := seen[n]; dup {
			t.Errorf("%s and %s both give %q", what, prev, n)
		}
		seen[n] = what
	}
	for _, bad := range []string{
		"", "compacted+.parquet", "compacted+0123456789abcdef", "compacted+0123456789ABCDEF.parquet",
		"compacted+0123456789abcdeg.parquet", "compacted+0123456789abcde.parquet", "compacted+0123456789abcdef0.parquet",
		"Compacted+0123456789abcdef.parquet", "compacted-0123456789abcdef.parquet", "compacted+0123456789abcdef.parquet.tmp",
		FileName("compacted", 3, 5), MarkerName,
	} {
		if ParseCompactedFileName(bad) {
			t.Errorf("ParseCompactedFileName(%q) = true", bad)
		}
	}
}
