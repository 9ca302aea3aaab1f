package bench

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/sink/registry"
)

// The in-process pipeline of one partition without Kafka: decode a JSON
// record (or its Avro twin in the Confluent wire format: the "-avro"
// cases, same columns and rows), find its hour, append the row to the
// hour's Parquet FileWriter (zstd), finishing files at 64 MiB as the sink
// would at max_file_bytes. It is the ceiling of what one core can do per
// partition.
//
//	go test -run '^$' -bench 'Pipeline' -benchmem -count 10 ./test/bench > /tmp/new.txt
//	benchstat /tmp/old.txt /tmp/new.txt
//
// (benchstat: go install golang.org/x/perf/cmd/benchstat@latest). Compare
// with the parts: BenchmarkDecodeClickstream in sink/decode,
// BenchmarkAvroDecode in sink/decode/confluent and BenchmarkFileWriterAppend
// in partitioner. Profile with
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

// rowDecoder is what decode.Decoder and confluent.Decoder have in common.
type rowDecoder interface {
	Decode(value []byte, recordTime time.Time) (row []parquet.Value, eventTime time.Time, err error)
}

// avroDecoder returns a Confluent Avro decoder with the columns of the JSON
// stream sc (whose name is a benchmark schema), as an Avro run of the
// harness configures it, and the schema id it reads: the writer schema is
// registered in a registry served by this process until the test ends.
func avroDecoder(tb testing.TB, sc config.Stream) (*confluent.Decoder, int) {
	tb.Helper()
	reg, err := startRegistry()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := reg.stop(); err != nil {
			tb.Error(err)
		}
	})
	id := reg.Register(sc.Name+"-value", "AVRO", avroSchemaText(sc.Name))
	client, err := registry.New(registry.Config{URL: reg.URL})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(client.CloseIdleConnections)
	_, spec := streamSpec(tb, sc)
	d, err := confluent.New(confluent.Spec{Stream: sc.Name, Format: confluent.Avro, Registry: client,
		Fields: spec.Fields, TimePath: spec.TimePath, TimeFormat: decode.UnixMillis, MaxBytes: spec.MaxBytes})
	if err != nil {
		tb.Fatal(err)
	}
	return d, id
}

// sampleValues generates n records of gen within one hour, always the same
// ones for the same n and hour.
func sampleValues(tb testing.TB, gen generator, n int, hour time.Time) [][]byte {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		v, err := gen(r, int64(i), hour.Add(time.Duration(i)*time.Hour/time.Duration(n)).Truncate(time.Millisecond))
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = v
	}
	return out
}

func BenchmarkPipeline(b *testing.B) {
	hour := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		sc     config.Stream
		format string
	}{
		{SchemaClickstream, demo.ClickstreamStream("clickstream"), FormatJSON},
		{SchemaIoT, demo.IoTStream("iot"), FormatJSON},
		{SchemaClickstream + "-avro", demo.ClickstreamStream("clickstream"), FormatAvro},
		{SchemaIoT + "-avro", demo.IoTStream("iot"), FormatAvro},
	} {
		b.Run(tc.name, func(b *testing.B) {
			schema, spec := streamSpec(b, tc.sc)
			var dec rowDecoder
			gen := jsonGenerator(tc.sc.Name)
			if tc.format == FormatAvro {
				d, id := avroDecoder(b, tc.sc)
				ag, err := avroGenerator(tc.sc.Name, id)
				if err != nil {
					b.Fatal(err)
				}
				dec, gen = d, ag
			} else {
				d, err := decode.New(spec)
				if err != nil {
					b.Fatal(err)
				}
				dec = d
			}
			recs := sampleValues(b, gen, 8192, hour)
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
			// The Avro decoder fetches and compiles its schema on first use.
			if _, _, err := dec.Decode(recs[0], rt); err != nil {
				b.Fatal(err)
			}
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
