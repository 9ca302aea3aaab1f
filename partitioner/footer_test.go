package partitioner

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

func TestReadFileInfo(t *testing.T) {
	s := mustSchema(t, allTypes)
	dir := t.TempDir()
	path := filepath.Join(dir, "f.parquet")
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kolkata := mustLoad(t, "Asia/Kolkata")
	hour := time.Date(2026, 11, 25, 18, 0, 0, 0, kolkata)
	for i := range 300 {
		et := hour.Add(time.Duration(i)*time.Second + 123456789)
		if err := w.Append(allTypesRow(i), int64(77+i), et); err != nil {
			t.Fatal(err)
		}
	}
	meta := FileMeta{Stream: "clickstream", Topic: "clicks", Partition: 4, Hour: hour, Extra: map[string]string{"k": "v"}}
	info, err := w.Finish(meta)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	counter := &countingReaderAt{r: bytes.NewReader(data)}
	gotInfo, gotMeta, err := ReadFileInfo(counter, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	want := info
	want.Path = ""
	if gotInfo != want {
		t.Errorf("ReadFileInfo info = %+v, want %+v", gotInfo, want)
	}
	if gotMeta.Stream != meta.Stream || gotMeta.Topic != meta.Topic || gotMeta.Partition != meta.Partition ||
		!gotMeta.Hour.Equal(hour) || gotMeta.Hour.Format(time.RFC3339) != "2026-11-25T18:00:00+05:30" ||
		len(gotMeta.Extra) != 1 || gotMeta.Extra["k"] != "v" {
		t.Errorf("ReadFileInfo meta = %+v, want %+v", gotMeta, meta)
	}
	if counter.reads != 1 || counter.minOff < int64(len(data))-footerTail {
		t.Errorf("ReadFileInfo made %d reads down to offset %d; want one read of the tail", counter.reads, counter.minOff)
	}

	// Truncated copies.
	for _, cut := range []int{0, 4, 11, 12, 100, len(data) / 2, len(data) - 9, len(data) - 1} {
		if _, _, err := ReadFileInfo(bytes.NewReader(data[:cut]), int64(cut)); err == nil {
			t.Errorf("ReadFileInfo of the first %d bytes succeeded", cut)
		}
	}
	// Corrupt footers: a too-large length, and flipped bytes inside.
	bad := bytes.Clone(data)
	bad[len(bad)-8], bad[len(bad)-7], bad[len(bad)-6], bad[len(bad)-5] = 0xff, 0xff, 0xff, 0x7f
	if _, _, err := ReadFileInfo(bytes.NewReader(bad), int64(len(bad))); err == nil || !strings.Contains(err.Error(), "footer length") {
		t.Errorf("ReadFileInfo with a bad footer length = %v", err)
	}
	footerLen := int(uint32(data[len(data)-8]) | uint32(data[len(data)-7])<<8 | uint32(data[len(data)-6])<<16 | uint32(data[len(data)-5])<<24)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		bad := bytes.Clone(data)
		i := len(data) - 8 - footerLen + rng.IntN(footerLen)
		bad[i] ^= byte(1 + rng.IntN(255))
		_, _, _ = ReadFileInfo(bytes.NewReader(bad), int64(len(bad))) // must not panic
	}
	bad = bytes.Clone(data)
	bad[len(bad)-8-footerLen] = 0xff // garbage where the thrift struct starts
	if _, _, err := ReadFileInfo(bytes.NewReader(bad), int64(len(bad))); err == nil {
		t.Errorf("ReadFileInfo of a corrupt footer succeeded")
	}
}

func TestReadFileInfoForeignFile(t *testing.T) {
	type rec struct {
		A string `parquet:"a"`
	}
	var buf bytes.Buffer
	pw := parquet.NewGenericWriter[rec](&buf)
	if _, err := pw.Write([]rec{{"x"}}); err != nil {
		t.Fatal(err)
	}
	pw.SetKeyValueMetadata(MetaStream, "s")
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err := ReadFileInfo(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if !errors.Is(err, ErrNotLakesinkFile) || !strings.Contains(err.Error(), MetaTopic) {
		t.Fatalf("ReadFileInfo of a foreign file = %v, want ErrNotLakesinkFile naming %s", err, MetaTopic)
	}
	if _, _, err := ReadFileInfo(strings.NewReader("PAR1 not really parquet PAR1"), 28); err == nil {
		t.Fatal("ReadFileInfo of garbage succeeded")
	}
}

func FuzzReadFileInfo(f *testing.F) {
	s := mustSchema(f, allTypes)
	path := filepath.Join(f.TempDir(), "f.parquet")
	w, err := NewFileWriter(path, s, FileOptions{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 5 {
		if err := w.Append(allTypesRow(i), int64(i), hour13); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := w.Finish(FileMeta{Stream: "s", Topic: "t", Hour: hour13}); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	// A compacted file of that file.
	cpath, _, _, err := Compact(context.Background(), []CompactInput{openInput(f, path)},
		CompactOptions{Stream: "s", Hour: hour13, SpoolDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	cdata, err := os.ReadFile(cpath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cdata)
	f.Fuzz(func(t *testing.T, b []byte) {
		info, meta, err := ReadFileInfo(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if info.Bytes != int64(len(b)) {
			t.Fatalf("Bytes = %d for a %d-byte file", info.Bytes, len(b))
		}
		if meta.Sources == nil {
			return
		}
		var sum int64
		for _, s := range meta.Sources {
			if s.check() != nil {
				t.Fatalf("bad source %+v accepted", s)
			}
			sum += s.Records
		}
		if sum != info.Records || info.FirstOffset != 0 || info.LastOffset != 0 || meta.Topic != "" || meta.Partition != 0 {
			t.Fatalf("compacted file read as %+v, %+v", info, meta)
		}
	})
}

// footerFile returns the bytes of a Parquet file that has only a footer:
// enough for ReadFileInfo, which reads nothing else.
func footerFile(t testing.TB, kv map[string]string, numRows int64) []byte {
	t.Helper()
	md := format.FileMetaData{Version: 1, NumRows: numRows, Schema: []format.SchemaElement{{Name: "root"}}}
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		md.KeyValueMetadata = append(md.KeyValueMetadata, format.KeyValue{Key: k, Value: kv[k]})
	}
	b, err := thrift.Marshal(new(thrift.CompactProtocol), &md)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte("PAR1"), b...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
	return append(out, "PAR1"...)
}

var compactedFooter = map[string]string{
	MetaStream:       "clickstream",
	MetaHour:         "2026-11-25T18:30:00+05:30",
	MetaRecords:      "5",
	MetaMinEventTime: "2026-11-25T13:00:01.5Z",
	MetaMaxEventTime: "2026-11-25T13:59:59Z",
	MetaSources:      `[{"topic":"t","partition":0,"first_offset":0,"last_offset":9,"records":3},{"topic":"t","partition":1,"first_offset":5,"last_offset":5,"records":1},{"topic":"u","partition":0,"first_offset":0,"last_offset":0,"records":1}]`,
	MetaSchemaIDs:    "3,4",
}

func TestReadFileInfoCompacted(t *testing.T) {
	with := func(k, v string) map[string]string {
		m := maps.Clone(compactedFooter)
		if v == "<delete>" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	src := func(s string) map[string]string { return with(MetaSources, s) }
	max := strconv.FormatInt(math.MaxInt64, 10)
	tests := []struct {
		name    string
		kv      map[string]string
		numRows int64
		want    string // error substring; "" for success
	}{
		{"valid", compactedFooter, 5, ""},
		{"no stream", with(MetaStream, "<delete>"), 5, MetaStream},
		{"no hour", with(MetaHour, "<delete>"), 5, MetaHour},
		{"no records", with(MetaRecords, "<delete>"), 5, MetaRecords},
		{"no min", with(MetaMinEventTime, "<delete>"), 5, MetaMinEventTime},
		{"no max", with(MetaMaxEventTime, "<delete>"), 5, MetaMaxEventTime},
		{"a topic", with(MetaTopic, "t"), 5, MetaTopic},
		{"a partition", with(MetaPartition, "0"), 5, MetaPartition},
		{"a first offset", with(MetaFirstOffset, "0"), 5, MetaFirstOffset},
		{"a last offset", with(MetaLastOffset, "9"), 5, MetaLastOffset},
		{"records not a number", with(MetaRecords, "five"), 5, MetaRecords},
		{"records not the rows", compactedFooter, 6, MetaRecords},
		{"bad hour", with(MetaHour, "18:30"), 5, MetaHour},
		{"not json", src(`{`), 5, MetaSources},
		{"not an array", src(`{"topic":"t"}`), 5, MetaSources},
		{"null", src(`null`), 5, MetaSources},
		{"empty", src(`[]`), 5, MetaSources},
		{"empty topic", src(`[{"topic":"","partition":0,"first_offset":0,"last_offset":9,"records":5}]`), 5, "empty topic"},
		{"negative partition", src(`[{"topic":"t","partition":-1,"first_offset":0,"last_offset":9,"records":5}]`), 5, "partition -1"},
		{"negative offset", src(`[{"topic":"t","partition":0,"first_offset":-1,"last_offset":9,"records":5}]`), 5, "offsets"},
		{"first after last", src(`[{"topic":"t","partition":0,"first_offset":10,"last_offset":9,"records":5}]`), 5, "offsets"},
		{"source without records", src(`[{"topic":"t","partition":0,"first_offset":0,"last_offset":9,"records":0}]`), 5, "0 records"},
		{"more records than offsets", src(`[{"topic":"t","partition":0,"first_offset":0,"last_offset":3,"records":5}]`), 5, "5 records"},
		{"records every offset", src(`[{"topic":"t","partition":0,"first_offset":5,"last_offset":9,"records":5}]`), 5, ""},
		{"fractional", src(`[{"topic":"t","partition":0,"first_offset":0,"last_offset":9,"records":4.5}]`), 5, MetaSources},
		{"sum not records", src(`[{"topic":"t","partition":0,"first_offset":0,"last_offset":9,"records":4}]`), 5, "4 records"},
		{"sum overflows", src(`[{"topic":"t","partition":0,"first_offset":0,"last_offset":` + max + `,"records":` + max + `},{"topic":"t","partition":1,"first_offset":0,"last_offset":9,"records":5}]`), 5, "overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := footerFile(t, tt.kv, tt.numRows)
			info, meta, err := ReadFileInfo(bytes.NewReader(b), int64(len(b)))
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("ReadFileInfo = %v; want an error with %q", err, tt.want)
				}
				if errors.Is(err, ErrNotLakesinkFile) {
					t.Errorf("error %v wraps ErrNotLakesinkFile: a compacted file is lakesink's", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.Records != 5 || info.FirstOffset != 0 || info.LastOffset != 0 || info.Bytes != int64(len(b)) ||
				!info.MinEventTime.Equal(time.Date(2026, 11, 25, 13, 0, 1, 5e8, time.UTC)) || info.MinEventTime.Location() != time.UTC {
				t.Errorf("info = %+v", info)
			}
			if meta.Stream != "clickstream" || meta.Topic != "" || meta.Partition != 0 || meta.Hour.Format(time.RFC3339) != "2026-11-25T18:30:00+05:30" ||
				len(meta.Sources) == 0 || meta.SchemaKey == "" {
				t.Errorf("meta = %+v", meta)
			}
			if len(meta.Extra) != 1 || meta.Extra[MetaSchemaIDs] != "3,4" {
				t.Errorf("extra = %v, want only the schema ids", meta.Extra)
			}
		})
	}
}

func FuzzReadFileInfoCompacted(f *testing.F) {
	f.Add(compactedFooter[MetaSources], int64(5), int64(5), "2026-11-25T13:00:00Z")
	f.Add(`[{"topic":"t","partition":0,"first_offset":0,"last_offset":0,"records":1}]`, int64(1), int64(1), "2026-11-25T13:00:00+01:00")
	f.Add(`[{"topic":"t","partition":2147483648,"first_offset":9223372036854775807,"last_offset":9223372036854775807,"records":1}]`, int64(1), int64(1), "x")
	f.Add(`[{"topic":"t","partition":0,"first_offset":0,"last_offset":9223372036854775807,"records":9223372036854775807},{"topic":"t","partition":0,"first_offset":0,"last_offset":9,"records":2}]`, int64(1), int64(1), "")
	f.Add(`[{"topic":"\u0000","partition":0,"first_offset":1,"last_offset":1,"records":1,"extra":[1,2]}]`, int64(1), int64(1), "2026-11-25T13:00:00Z")
	f.Fuzz(func(t *testing.T, sources string, records, numRows int64, hour string) {
		kv := maps.Clone(compactedFooter)
		kv[MetaSources], kv[MetaRecords], kv[MetaHour] = sources, strconv.FormatInt(records, 10), hour
		b := footerFile(t, kv, numRows)
		info, meta, err := ReadFileInfo(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var sum int64
		for i, s := range meta.Sources {
			if err := s.check(); err != nil {
				t.Fatalf("source %d %+v accepted: %v", i, s, err)
			}
			sum += s.Records
		}
		if len(meta.Sources) == 0 || sum != info.Records || info.Records != numRows || info.FirstOffset != 0 || meta.Topic != "" {
			t.Fatalf("accepted %q with %d records, %d rows: info %+v, meta %+v", sources, records, numRows, info, meta)
		}
	})
}

type countingReaderAt struct {
	r      io.ReaderAt
	reads  int
	minOff int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if c.reads == 0 || off < c.minOff {
		c.minOff = off
	}
	c.reads++
	return c.r.ReadAt(p, off)
}
