package sink

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/writers"
)

func avroConfig(url string, withColumns bool) *config.Config {
	cfg := testConfig("127.0.0.1:9092")
	cfg.SchemaRegistry.URL = url
	cfg.Streams[0].Format = config.FormatAvro
	if !withColumns {
		cfg.Streams[0].Schema = nil
	}
	return cfg
}

func TestFormatsNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *config.Config
		wantErr string
		derived bool
	}{
		{name: "json", cfg: testConfig("127.0.0.1:9092")},
		{name: "avro derived", cfg: avroConfig("http://127.0.0.1:8081", false), derived: true},
		{name: "avro fixed", cfg: avroConfig("http://127.0.0.1:8081", true)},
		{name: "avro without registry", cfg: avroConfig("", false), wantErr: "schema_registry"},
		{name: "bad tls files", cfg: func() *config.Config {
			c := avroConfig("https://127.0.0.1:8081", false)
			c.SchemaRegistry.TLS.CAFile = filepath.Join(t.TempDir(), "missing.pem")
			return c
		}(), wantErr: "schema_registry.tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Files.SpoolDir = t.TempDir()
			reg := prometheus.NewRegistry()
			s, err := New(Options{Config: tt.cfg, Writer: writers.NewMemory(), Registry: reg})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st := s.streams[0]
			if (st.schema == nil) != tt.derived {
				t.Errorf("fixed schema = %v, want derived %v", st.schema, tt.derived)
			}
			usesRegistry := tt.cfg.Streams[0].Format.UsesRegistry()
			if (s.schemas != nil) != usesRegistry {
				t.Errorf("registry client = %v, want one: %v", s.schemas, usesRegistry)
			}
			// The Confluent reasons are pre-registered (at 0) only when needed.
			n := testutil.CollectAndCount(s.metrics.DeadLetters)
			if want := map[bool]int{true: len(confluent.Reasons()), false: 0}[usesRegistry]; n != want {
				t.Errorf("dead-letter series = %d, want %d", n, want)
			}
			dec, cdec, err := newRecordDecoder(st, s.schemas)
			if err != nil {
				t.Fatal(err)
			}
			if (cdec != nil) != usesRegistry || dec == nil {
				t.Errorf("decoders = %T, %v", dec, cdec)
			}
		})
	}
}

// fakeDecoder fails with err for the first fails calls, then decodes.
type fakeDecoder struct {
	calls atomic.Int32
	fails int32
	err   error
}

func (d *fakeDecoder) Decode([]byte, time.Time) ([]parquet.Value, time.Time, error) {
	if d.calls.Add(1) <= d.fails {
		return nil, time.Time{}, d.err
	}
	return []parquet.Value{parquet.Int64Value(1)}, time.UnixMilli(1000).UTC(), nil
}

func testWorker(t *testing.T, dec recordDecoder) (*worker, chan struct{}) {
	t.Helper()
	cfg := testConfig("127.0.0.1:9092")
	cfg.Files.SpoolDir = t.TempDir()
	s, err := New(Options{Config: cfg, Writer: writers.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	drain := make(chan struct{})
	return &worker{s: s, st: s.streams[0], log: slog.New(slog.DiscardHandler), dec: dec, drain: drain}, drain
}

func TestRetryDecodeWaitsForRegistry(t *testing.T) {
	transient := errors.New("schema id 7: connection refused")
	t.Run("retries the same record until the registry answers", func(t *testing.T) {
		dec := &fakeDecoder{fails: 3, err: transient}
		w, _ := testWorker(t, dec)
		_, _, first := dec.Decode(nil, time.Time{})
		sawReason := make(chan bool, 1)
		go func() {
			// While the worker waits, /readyz names the registry.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if _, reasons := w.s.Readiness(); strings.Contains(strings.Join(reasons, ";"), "schema registry unreachable (1 partitions waiting): schema id 7") {
					sawReason <- true
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			sawReason <- false
		}()
		row, ev, err := w.retryDecode(t.Context(), kafka.Message{Offset: 5}, first)
		if err != nil || len(row) != 1 || !ev.Equal(time.UnixMilli(1000)) {
			t.Fatalf("retryDecode = %v, %v, %v", row, ev, err)
		}
		if got := dec.calls.Load(); got != 4 {
			t.Errorf("Decode called %d times, want 4 (3 failures, then success)", got)
		}
		if !<-sawReason {
			t.Error("/readyz never named the schema registry while the partition waited")
		}
		for _, r := range func() []string { _, r := w.s.Readiness(); return r }() {
			if strings.Contains(r, "schema registry") {
				t.Errorf("readiness still says %q after the registry answered", r)
			}
		}
	})
	t.Run("a bad record is returned at once", func(t *testing.T) {
		bad := &decode.Error{Reason: confluent.ReasonBadMagic}
		dec := &fakeDecoder{fails: 100, err: bad}
		w, _ := testWorker(t, dec)
		if _, _, err := w.retryDecode(t.Context(), kafka.Message{}, bad); !errors.Is(err, bad) || !isRecordError(err) {
			t.Fatalf("err = %v, want the record error", err)
		}
		if dec.calls.Load() != 0 {
			t.Errorf("Decode called %d times for a bad record", dec.calls.Load())
		}
	})
	t.Run("a bad record found on retry goes to the dead-letter topic", func(t *testing.T) {
		w, _ := testWorker(t, nil)
		bad := &decode.Error{Reason: confluent.ReasonUnknownSchema}
		seq := &seqDecoder{errs: []error{transient, bad}}
		w.dec = seq
		if _, _, err := w.retryDecode(t.Context(), kafka.Message{}, transient); !errors.Is(err, bad) {
			t.Fatalf("err = %v, want %v", err, bad)
		}
	})
	t.Run("shutdown ends the wait without the record", func(t *testing.T) {
		dec := &fakeDecoder{fails: 1 << 30, err: transient}
		w, drain := testWorker(t, dec)
		time.AfterFunc(300*time.Millisecond, func() { close(drain) })
		start := time.Now()
		if _, _, err := w.retryDecode(t.Context(), kafka.Message{}, transient); !errors.Is(err, errDraining) {
			t.Fatalf("err = %v, want errDraining", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("drain took %v", d)
		}
		if isRecordError(errDraining) {
			t.Error("errDraining counts as a record error: the record would be dead-lettered")
		}
		if ready, reasons := w.s.Readiness(); strings.Contains(strings.Join(reasons, ";"), "schema registry") {
			t.Errorf("readiness %v %v still names the registry", ready, reasons)
		}
	})
}

// seqDecoder returns errs in turn, then decodes.
type seqDecoder struct{ errs []error }

func (d *seqDecoder) Decode([]byte, time.Time) ([]parquet.Value, time.Time, error) {
	if len(d.errs) > 0 {
		err := d.errs[0]
		d.errs = d.errs[1:]
		return nil, time.Time{}, err
	}
	return []parquet.Value{parquet.Int64Value(1)}, time.UnixMilli(1000), nil
}

// TestSchemaIDFooter: the schema id goes into the footer and comes back as
// the manifest's schema_id; json files have none.
func TestSchemaIDFooter(t *testing.T) {
	schema, err := partitioner.NewSchema("s", []partitioner.Column{{Name: "id", Type: partitioner.TypeInt64, Required: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{0, 1, 123456} {
		p := filepath.Join(t.TempDir(), "f.parquet")
		fw, err := partitioner.NewFileWriter(p, schema, partitioner.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := fw.Append([]parquet.Value{parquet.Int64Value(7)}, 10, time.UnixMilli(1000)); err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Finish(partitioner.FileMeta{Stream: "s", Topic: "t", Hour: time.UnixMilli(0).UTC(), Extra: schemaExtra(id)}); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		_, meta, err := partitioner.ReadFileInfo(f, fi.Size())
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := footerSchemaID(meta); got != id {
			t.Errorf("schema id %d came back as %d (extra %v)", id, got, meta.Extra)
		}
	}
	if footerSchemaID(partitioner.FileMeta{Extra: map[string]string{MetaSchemaID: "x"}}) != 0 {
		t.Error("a malformed schema id should read as none")
	}
}
