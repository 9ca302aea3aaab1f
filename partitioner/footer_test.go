package partitioner

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
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
	f.Fuzz(func(t *testing.T, b []byte) {
		info, _, err := ReadFileInfo(bytes.NewReader(b), int64(len(b)))
		if err == nil && info.Bytes != int64(len(b)) {
			t.Fatalf("Bytes = %d for a %d-byte file", info.Bytes, len(b))
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
