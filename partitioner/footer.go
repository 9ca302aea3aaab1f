package partitioner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// FileMeta describes the bucket a file belongs to; Finish writes it into the
// Parquet footer's key/value metadata.
type FileMeta struct {
	Stream    string
	Topic     string
	Partition int
	Hour      time.Time
	// Extra key/value pairs, written verbatim. Keys must not be one of the
	// lakesink.* keys that FileWriter writes itself.
	Extra map[string]string
}

// FileInfo describes a finished file, as the manifest lists it.
type FileInfo struct {
	Path         string
	Records      int64
	Bytes        int64 // size of the finished file
	FirstOffset  int64
	LastOffset   int64
	MinEventTime time.Time // UTC
	MaxEventTime time.Time // UTC
}

// Footer key/value metadata keys written by Finish.
const (
	MetaStream       = "lakesink.stream"
	MetaTopic        = "lakesink.topic"
	MetaPartition    = "lakesink.partition"
	MetaFirstOffset  = "lakesink.first_offset"
	MetaLastOffset   = "lakesink.last_offset"
	MetaRecords      = "lakesink.records"
	MetaMinEventTime = "lakesink.min_event_time" // RFC 3339 with nanoseconds, UTC
	MetaMaxEventTime = "lakesink.max_event_time" // RFC 3339 with nanoseconds, UTC
	MetaHour         = "lakesink.hour"           // RFC 3339, in the stream's zone
)

// Footer keys that lakesink's formats add through FileMeta.Extra.
const (
	// MetaSchemaID holds the registry id of the writer schema of an avro,
	// protobuf or json_schema file's records (decimal) when they all have
	// the same one; files written before MetaSchemaIDs have only this key.
	MetaSchemaID = "lakesink.schema_id"
	// MetaSchemaIDs holds the registry ids of the writer schemas of a
	// registry file's records, ascending, comma-separated ("7,9"); see
	// FormatSchemaIDs and SchemaIDs.
	MetaSchemaIDs = "lakesink.schema_ids"
	// MetaInferredSchema holds a schema: infer file's columns as JSON:
	// [{"name":"device.id","type":"string"},...].
	MetaInferredSchema = "lakesink.inferred_schema"
	// MetaSchemaFingerprint identifies the inferred column list
	// ("sha256:..."): files with equal fingerprints have equal columns.
	MetaSchemaFingerprint = "lakesink.schema_fingerprint"
)

var metaKeys = []string{MetaStream, MetaTopic, MetaPartition, MetaFirstOffset, MetaLastOffset,
	MetaRecords, MetaMinEventTime, MetaMaxEventTime, MetaHour}

// ErrNotLakesinkFile is wrapped by ReadFileInfo's error for a Parquet file
// that lacks lakesink's footer metadata.
var ErrNotLakesinkFile = errors.New("not a lakesink data file")

const (
	footerTail = 64 << 10 // first read from the end: the whole footer, usually
	maxFooter  = 64 << 20 // refuse footers larger than this
)

// ReadFileInfo reads the footer of a Parquet file written by FileWriter and
// returns what Finish returned (Path left empty, Bytes = size) and the
// FileMeta it was given. It reads only the end of the file: one ReadAt of
// the last 64 KiB, and a second one only for a footer larger than that, so
// it suits ranged reads from object storage. A file that is not Parquet, is
// truncated or corrupt, or lacks a lakesink.* key gives an error; for a
// well-formed Parquet file without lakesink's keys the error wraps
// ErrNotLakesinkFile. Keys other than lakesink's come back in FileMeta.Extra.
func ReadFileInfo(r io.ReaderAt, size int64) (info FileInfo, meta FileMeta, err error) {
	if size < 12 {
		return info, meta, fmt.Errorf("read parquet footer: file of %d bytes is too small", size)
	}
	n := min(size, footerTail)
	tail := make([]byte, n)
	if _, err := readFull(r, tail, size-n); err != nil {
		return info, meta, fmt.Errorf("read parquet footer: %w", err)
	}
	switch magic := string(tail[n-4:]); magic {
	case "PAR1":
	case "PARE":
		return info, meta, errors.New("read parquet footer: encrypted footers are not supported")
	default:
		return info, meta, fmt.Errorf("read parquet footer: bad magic %q (truncated or not parquet)", magic)
	}
	footerLen := int64(binary.LittleEndian.Uint32(tail[n-8:]))
	if footerLen == 0 || footerLen > size-12 || footerLen > maxFooter {
		return info, meta, fmt.Errorf("read parquet footer: bad footer length %d in a file of %d bytes", footerLen, size)
	}
	var footer []byte
	if footerLen <= n-8 {
		footer = tail[n-8-footerLen : n-8]
	} else {
		footer = make([]byte, footerLen)
		if _, err := readFull(r, footer, size-8-footerLen); err != nil {
			return info, meta, fmt.Errorf("read parquet footer: %w", err)
		}
	}
	md, err := decodeFooter(footer)
	if err != nil {
		return info, meta, fmt.Errorf("read parquet footer: %w", err)
	}
	kv := make(map[string]string, len(md.KeyValueMetadata))
	for _, e := range md.KeyValueMetadata {
		kv[e.Key] = e.Value
	}
	for _, k := range metaKeys {
		if _, ok := kv[k]; !ok {
			return info, meta, fmt.Errorf("read parquet footer: %w: missing key %s", ErrNotLakesinkFile, k)
		}
	}
	bad := func(k string, err error) error {
		return fmt.Errorf("read parquet footer: key %s=%q: %w", k, kv[k], err)
	}
	partition, err := strconv.Atoi(kv[MetaPartition])
	if err != nil {
		return info, meta, bad(MetaPartition, err)
	}
	ints := map[string]*int64{MetaFirstOffset: &info.FirstOffset, MetaLastOffset: &info.LastOffset, MetaRecords: &info.Records}
	for _, k := range []string{MetaFirstOffset, MetaLastOffset, MetaRecords} {
		if *ints[k], err = strconv.ParseInt(kv[k], 10, 64); err != nil {
			return info, meta, bad(k, err)
		}
	}
	if info.Records != md.NumRows {
		return info, meta, fmt.Errorf("read parquet footer: %s=%d but the file has %d rows", MetaRecords, info.Records, md.NumRows)
	}
	times := map[string]*time.Time{MetaMinEventTime: &info.MinEventTime, MetaMaxEventTime: &info.MaxEventTime, MetaHour: &meta.Hour}
	for _, k := range []string{MetaMinEventTime, MetaMaxEventTime, MetaHour} {
		if *times[k], err = time.Parse(time.RFC3339Nano, kv[k]); err != nil {
			return info, meta, bad(k, err)
		}
	}
	info.MinEventTime, info.MaxEventTime = info.MinEventTime.UTC(), info.MaxEventTime.UTC()
	info.Bytes = size
	meta.Stream, meta.Topic, meta.Partition = kv[MetaStream], kv[MetaTopic], partition
	for _, k := range metaKeys {
		delete(kv, k)
	}
	if len(kv) > 0 {
		meta.Extra = kv
	}
	return info, meta, nil
}

// decodeFooter decodes the thrift FileMetaData, turning a decoder panic on
// corrupt input into an error.
func decodeFooter(b []byte) (md *format.FileMetaData, err error) {
	defer func() {
		if p := recover(); p != nil {
			md, err = nil, fmt.Errorf("corrupt footer: %v", p)
		}
	}()
	md = new(format.FileMetaData)
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), b, md); err != nil {
		return nil, fmt.Errorf("corrupt footer: %w", err)
	}
	return md, nil
}

func readFull(r io.ReaderAt, b []byte, off int64) (int, error) {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return n, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
