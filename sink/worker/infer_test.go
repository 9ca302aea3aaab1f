package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/writers"
)

// inferWorkerForTest is a worker of a schema: infer stream over a memory
// lake, driven through process() without Kafka.
func inferWorkerForTest(t testing.TB, sample int) (*Worker, *writers.Memory) {
	t.Helper()
	cfg := testConfig()
	cfg.Streams[0].Schema = nil
	cfg.Streams[0].InferSchema = true
	cfg.Streams[0].InferSample = sample
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	lake := writers.NewMemory()
	w, _ := testWorker(t, cfg, lake)
	return w, lake
}

// finishAndRead finishes every open file of w, checks that the memory
// budget is back to zero, and returns the lake's data files by key.
func finishAndRead(t *testing.T, w *Worker, lake *writers.Memory) []lakeFile {
	t.Helper()
	for h := range w.files.byKey {
		if err := w.finish(context.Background(), h.hour, finishHourClosed); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.env.Budget.Used(); got != 0 {
		t.Errorf("memory budget holds %d bytes after the files finished, want 0", got)
	}
	files := readLake(t, lake)
	slices.SortFunc(files, func(a, b lakeFile) int { return strings.Compare(a.key, b.key) })
	return files
}

// lakeBytes returns the content of the lake object key.
func lakeBytes(t *testing.T, lake *writers.Memory, key string) []byte {
	t.Helper()
	rc, err := lake.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lakeFile is a data file read back from the lake.
type lakeFile struct {
	key  string
	rows []map[string]any
	meta partitioner.FileMeta
}

func readLake(t *testing.T, lake *writers.Memory) []lakeFile {
	t.Helper()
	ctx := context.Background()
	objs, err := lake.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var out []lakeFile
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".parquet") {
			continue
		}
		b := lakeBytes(t, lake, o.Key)
		_, meta, err := partitioner.ReadFileInfo(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("footer of %s: %v", o.Key, err)
		}
		f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		names := map[int]string{}
		for _, path := range f.Schema().Columns() {
			leaf, _ := f.Schema().Lookup(path...)
			names[leaf.ColumnIndex] = strings.Join(path, ".")
		}
		r := parquet.NewReader(f)
		lf := lakeFile{key: o.Key, meta: meta}
		buf := make([]parquet.Row, 64)
		for {
			n, err := r.ReadRows(buf)
			for _, row := range buf[:n] {
				m := map[string]any{}
				for _, v := range row {
					var x any
					switch {
					case v.IsNull():
					case v.Kind() == parquet.ByteArray:
						x = string(v.ByteArray())
					case v.Kind() == parquet.Int64:
						x = v.Int64()
					case v.Kind() == parquet.Double:
						x = v.Double()
					case v.Kind() == parquet.Boolean:
						x = v.Boolean()
					default:
						x = fmt.Sprint(v)
					}
					m[names[v.Column()]] = x
				}
				lf.rows = append(lf.rows, m)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		r.Close()
		out = append(out, lf)
	}
	return out
}

// TestInferWidensAndRolls: a record with a new field after the sample rolls
// the file; the new file's columns are the old ones widened; every record
// is in the lake once with its values; records infer cannot hold go to the
// dead-letter queue; the sample's memory is given back.
func TestInferWidensAndRolls(t *testing.T) {
	w, lake := inferWorkerForTest(t, 5)
	ctx := context.Background()
	hour := time.Now().UTC().Truncate(time.Hour)
	ts := hour.Add(time.Minute).UnixMilli()
	values := []string{
		0:  `{"id":0,"ts":%d,"user":{"name":"a"}}`,
		1:  `{"id":1,"ts":%d,"user":{"name":"b"},"n":null}`,
		2:  `{"id":2,"ts":%d}`,
		3:  `{"id":3,"ts":%d,"user":{"name":"d"}}`,
		4:  `{"id":4,"ts":%d,"user":{"name":"e"}}`, // sample full: id, ts, user.name
		5:  `{"id":5,"ts":%d,"user":{}}`,           // fits
		6:  `{"id":6,"ts":%d,"extra":"x"}`,         // new field: roll
		7:  `{"id":7.5,"ts":%d}`,                   // id widens to double
		8:  `[%d]`,                                 // not an object: dead letter
		9:  `{"":1,"ts":%d}`,                       // bad key: dead letter
		10: `{"id":10,"ts":%d,"user":{"name":"k"}}`,
	}
	for off, v := range values {
		m := kafka.Message{Topic: "events", Partition: 0, Offset: int64(off), Value: fmt.Appendf(nil, v, ts), HighWaterMark: int64(len(values))}
		if err := w.process(ctx, m); err != nil {
			t.Fatalf("process offset %d: %v", off, err)
		}
	}
	if got := w.env.Budget.Used(); got == 0 {
		t.Error("the open file's sample is not counted in the memory budget")
	}
	files := finishAndRead(t, w, lake)
	if len(files) != 2 {
		t.Fatalf("got %d files, want 2 (rolled at offset 6)", len(files))
	}
	wantCols := []string{
		`[{"name":"id","type":"int64"},{"name":"ts","type":"int64"},{"name":"user.name","type":"string"}]`,
		`[{"name":"extra","type":"string"},{"name":"id","type":"double"},{"name":"ts","type":"int64"},{"name":"user.name","type":"string"}]`,
	}
	for i, f := range files {
		if got := f.meta.Extra[partitioner.MetaInferredSchema]; got != wantCols[i] {
			t.Errorf("%s: footer columns %s, want %s", f.key, got, wantCols[i])
		}
		if !strings.HasPrefix(f.meta.Extra[partitioner.MetaSchemaFingerprint], "sha256:") {
			t.Errorf("%s: no fingerprint in the footer: %v", f.key, f.meta.Extra)
		}
	}
	if files[0].meta.Extra[partitioner.MetaSchemaFingerprint] == files[1].meta.Extra[partitioner.MetaSchemaFingerprint] {
		t.Error("widened file has the same fingerprint")
	}
	if !strings.HasSuffix(files[0].key, partitioner.FileName("events", 0, 0)) || !strings.HasSuffix(files[1].key, partitioner.FileName("events", 0, 6)) {
		t.Errorf("files %s, %s; want first offsets 0 and 6", files[0].key, files[1].key)
	}

	var got []string
	for _, f := range files {
		for _, r := range f.rows {
			got = append(got, fmt.Sprintf("id=%v user.name=%v extra=%v", r["id"], r["user.name"], r["extra"]))
		}
	}
	want := []string{
		"id=0 user.name=a extra=<nil>", "id=1 user.name=b extra=<nil>", "id=2 user.name=<nil> extra=<nil>",
		"id=3 user.name=d extra=<nil>", "id=4 user.name=e extra=<nil>", "id=5 user.name=<nil> extra=<nil>",
		"id=6 user.name=<nil> extra=x", "id=7.5 user.name=<nil> extra=<nil>", "id=10 user.name=k extra=<nil>",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows:\n got %q\nwant %q", got, want)
	}
	for _, f := range files {
		for _, r := range f.rows {
			if r["ts"] != ts {
				t.Errorf("%s: ts = %v, want %d", f.key, r["ts"], ts)
			}
		}
	}

	var reasons []string
	for _, m := range w.dead.queue {
		for _, h := range m.Headers {
			if h.Key == kafkaio.HeaderReason {
				reasons = append(reasons, string(h.Value)+"@"+strconv.FormatInt(offsetHeader(m), 10))
			}
		}
	}
	if want := []string{"bad_json@8", "bad_key@9"}; !slices.Equal(reasons, want) {
		t.Errorf("dead letters %v, want %v", reasons, want)
	}
	if c, _ := w.led.CommitPoint(); c != int64(len(values)) {
		t.Errorf("commit point %d, want %d: every record durable or dead-lettered", c, len(values))
	}
}

func offsetHeader(m kafka.Message) int64 {
	for _, h := range m.Headers {
		if h.Key == kafkaio.HeaderOffset {
			n, _ := strconv.ParseInt(string(h.Value), 10, 64)
			return n
		}
	}
	return -1
}

// TestInferSampleEndsWithFile: a file finished before its sample is full
// (idle, hour closed) gets the columns of what it holds; a worker's later
// files keep the columns it has seen (schemas only widen); an abandoned
// sample gives its memory back.
func TestInferSampleEndsWithFile(t *testing.T) {
	w, lake := inferWorkerForTest(t, 1000)
	ctx := context.Background()
	hour := time.Now().UTC().Truncate(time.Hour)
	ts := hour.Add(time.Minute).UnixMilli()
	send := func(off int64, v string) {
		t.Helper()
		m := kafka.Message{Topic: "events", Offset: off, Value: fmt.Appendf(nil, v, ts), HighWaterMark: off + 1}
		if err := w.process(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	send(0, `{"a":1,"ts":%d}`)
	send(1, `{"b":true,"ts":%d}`)
	for h := range w.files.byKey {
		if err := w.finish(ctx, h.hour, finishHourClosed); err != nil {
			t.Fatal(err)
		}
	}
	send(2, `{"c":"x","ts":%d}`)
	for h := range w.files.byKey {
		if err := w.finish(ctx, h.hour, finishHourClosed); err != nil {
			t.Fatal(err)
		}
	}
	send(3, `{"d":1,"ts":%d}`)
	w.abandonAll()
	if got := w.env.Budget.Used(); got != 0 {
		t.Errorf("memory budget holds %d bytes after abandoning, want 0", got)
	}
	files := readLake(t, lake)
	slices.SortFunc(files, func(a, b lakeFile) int { return strings.Compare(a.key, b.key) })
	var cols []string
	for _, f := range files {
		cols = append(cols, f.meta.Extra[partitioner.MetaInferredSchema])
	}
	want := []string{
		`[{"name":"a","type":"int64"},{"name":"b","type":"bool"},{"name":"ts","type":"int64"}]`,
		`[{"name":"a","type":"int64"},{"name":"b","type":"bool"},{"name":"c","type":"string"},{"name":"ts","type":"int64"}]`,
	}
	if !slices.Equal(cols, want) {
		t.Errorf("file columns:\n got %q\nwant %q", cols, want)
	}
}

// TestInferStreamConfig: Compile builds a schema: infer stream whose
// decoder only validates records and reads their event time.
func TestInferStreamConfig(t *testing.T) {
	sc := config.DefaultStream()
	sc.Name, sc.Topics, sc.InferSchema = "e", []string{"e"}, true
	sc.Time = config.StreamTime{Field: "at", Format: config.TimeRFC3339, Timezone: "UTC"}
	tmpl, err := partitioner.ParsePathTemplate(config.DefaultPartitionPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Compile(sc, tmpl, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.infer == nil || st.infer.sample != config.DefaultInferSample || len(st.spec.Fields) != 0 {
		t.Fatalf("stream = infer %+v, %d fields; want infer with the default sample and no fields", st.infer, len(st.spec.Fields))
	}
	w, err := New(testEnv(t, testConfig(), writers.NewMemory()), st, "e", 0, Generation{ID: 1, Member: "m", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	dec, ok := w.format.(*inferFormat)
	if !ok || st.Fixed() {
		t.Fatalf("format %T, fixed %v; want *inferFormat, not fixed", w.format, st.Fixed())
	}
	if _, ev, err := dec.decode(t.Context(), kafka.Message{Value: []byte(`{"at":"2026-11-25T13:00:00Z","x":[1]}`)}); err != nil || ev.Hour() != 13 {
		t.Errorf("decode = %v, %v", ev, err)
	}
	var de *decode.Error
	if _, _, err := dec.check.Decode([]byte(`{"at":"2026-11-25T13:00:00Z","pad":"`+strings.Repeat("x", 100)+`"}`), time.Time{}); !errors.As(err, &de) || de.Reason != decode.ReasonOversized {
		t.Errorf("oversized record: %v", err)
	}
}
