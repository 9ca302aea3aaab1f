package bench

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
)

// The in-process pipeline of one partition without Kafka: decode a JSON
// record, find its hour, append the row to the hour's Parquet FileWriter
// (zstd), finishing files at 64 MiB as the sink would at max_file_bytes.
// It is the ceiling of what one core can do per partition.
//
//	go test -run '^$' -bench 'Pipeline' -benchmem -count 10 ./test/bench > /tmp/new.txt
//	benchstat /tmp/old.txt /tmp/new.txt
//
// (benchstat: go install golang.org/x/perf/cmd/benchstat@latest). Compare
// with the parts: BenchmarkDecodeClickstream in sink/decode and
// BenchmarkFileWriterAppend in partitioner. Profile with
//
//	go test -run '^$' -bench 'Pipeline/clickstream' -benchtime 2s -cpuprofile /tmp/pipe.pprof ./test/bench
//	go tool pprof -top -cum /tmp/pipe.pprof | head -40

// streamSpec compiles a config stream the way the sink does (sink's
// compileStream is unexported): schema, decoder spec, time zone.
func streamSpec(tb testing.TB, sc config.Stream) (*partitioner.Schema, decode.Spec) {
	tb.Helper()
	cols, err := sc.Columns()
	if err != nil {
		tb.Fatal(err)
	}
	schema, err := partitioner.NewSchema(sc.Name, cols)
	if err != nil {
		tb.Fatal(err)
	}
	spec := decode.Spec{TimePath: sc.Time.Field, MaxBytes: 1 << 20}
	if spec.TimeFormat, err = decode.ParseTimeFormat(string(sc.Time.Format)); err != nil {
		tb.Fatal(err)
	}
	for i, f := range sc.Schema {
		spec.Fields = append(spec.Fields, decode.Field{Column: cols[i], Path: f.Path})
	}
	return schema, spec
}

// sampleRecords generates n records of a stream within one hour.
func sampleRecords(schema string, n int, hour time.Time) [][]byte {
	gen := demo.Clickstream
	if schema == SchemaIoT {
		gen = demo.IoT
	}
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		out[i] = gen(r, int64(i), hour.Add(time.Duration(i)*time.Hour/time.Duration(n)).Truncate(time.Millisecond))
	}
	return out
}

func BenchmarkPipeline(b *testing.B) {
	hour := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		sc   config.Stream
	}{
		{SchemaClickstream, demo.ClickstreamStream("clickstream")},
		{SchemaIoT, demo.IoTStream("iot")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			schema, spec := streamSpec(b, tc.sc)
			dec, err := decode.New(spec)
			if err != nil {
				b.Fatal(err)
			}
			recs := sampleRecords(tc.name, 8192, hour)
			var inBytes int64
			for _, r := range recs {
				inBytes += int64(len(r))
			}
			dir := b.TempDir()
			open := func() *partitioner.FileWriter {
				w, err := partitioner.NewFileWriter(filepath.Join(dir, "bench.parquet"), schema, partitioner.FileOptions{Compression: "zstd"})
				if err != nil {
					b.Fatal(err)
				}
				return w
			}
			w := open()
			var outBytes, outRecords int64
			finish := func() {
				info, err := w.Finish(partitioner.FileMeta{Stream: tc.name, Topic: tc.name, Hour: hour})
				if err != nil {
					b.Fatal(err)
				}
				outBytes += info.Bytes
				outRecords += info.Records
			}
			rt := hour
			b.SetBytes(inBytes / int64(len(recs)))
			b.ReportAllocs()
			off := int64(0)
			for b.Loop() {
				v := recs[off%int64(len(recs))]
				row, ev, err := dec.Decode(v, rt)
				if err != nil {
					b.Fatal(err)
				}
				if h := partitioner.HourOf(ev, time.UTC); !h.Equal(hour) {
					b.Fatalf("record %d in hour %s, want %s", off, h, hour)
				}
				if err := w.Append(row, off, ev); err != nil {
					b.Fatal(err)
				}
				off++
				if w.EstimatedBytes() >= 64<<20 {
					finish()
					w = open()
				}
			}
			if w.Records() > 0 {
				finish()
			} else {
				_ = w.Abort()
			}
			if outRecords != off {
				b.Fatalf("files hold %d records, appended %d", outRecords, off)
			}
			b.ReportMetric(float64(off)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(outBytes)/float64(outRecords), "parquet-bytes/record")
		})
	}
}
