package partitioner

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
	// Sources lists, for a compacted file (Compact), the records of each
	// input file it holds, in merge order; nil for a plain data file. It is
	// read from MetaSources by ReadFileInfo; Finish ignores it (a
	// FileWriter writes plain files only).
	Sources []Source
	// SchemaKey fingerprints the file's Parquet schema ("sha256:" and the
	// hex digest of its footer schema elements): files with equal keys
	// have equal schemas, which CompatKey and Compact rely on. Set by
	// ReadFileInfo; Finish ignores it.
	SchemaKey string
}

// Source is the records of one input file inside a compacted file: the
// offsets first..last of one topic partition, of which Records are in the
// file (a partition's offsets have gaps: transaction markers, compacted
// topics). Every record of a source lies in one compacted file, whole.
type Source struct {
	Topic       string `json:"topic"`
	Partition   int    `json:"partition"`
	FirstOffset int64  `json:"first_offset"`
	LastOffset  int64  `json:"last_offset"`
	Records     int64  `json:"records"`
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
	// MetaSources marks a compacted file (Compact): a JSON array of
	// Source, in merge order. A compacted file has no MetaTopic,
	// MetaPartition, MetaFirstOffset or MetaLastOffset.
	MetaSources = "lakesink.sources"
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

// compactedKeys are the keys every compacted file has; partitionKeys the
// ones it must not have.
var (
	compactedKeys = []string{MetaStream, MetaHour, MetaRecords, MetaMinEventTime, MetaMaxEventTime, MetaSources}
	partitionKeys = []string{MetaTopic, MetaPartition, MetaFirstOffset, MetaLastOffset}
)

// ErrNotLakesinkFile is wrapped by ReadFileInfo's error for a Parquet file
// that lacks lakesink's footer metadata.
var ErrNotLakesinkFile = errors.New("not a lakesink data file")

const (
	footerTail = 64 << 10 // first read from the end: the whole footer, usually
	maxFooter  = 64 << 20 // refuse footers larger than this
)

// ReadFileInfo reads the footer of a Parquet file written by FileWriter (or
// Compact) and returns what Finish returned (Path left empty, Bytes = size) and the
// FileMeta it was given. It reads only the end of the file: one ReadAt of
// the last 64 KiB, and a second one only for a footer larger than that, so
// it suits ranged reads from object storage. A file that is not Parquet, is
// truncated or corrupt, or lacks a lakesink.* key gives an error; for a
// well-formed Parquet file without lakesink's keys the error wraps
// ErrNotLakesinkFile. Keys other than lakesink's come back in FileMeta.Extra.
//
// A compacted file (one with MetaSources, written by Compact) has no single
// topic partition: its FileInfo has FirstOffset and LastOffset 0 and its
// FileMeta an empty Topic and Partition 0, and FileMeta.Sources lists what it
// holds. Its sources must be well-formed (non-empty; each with a topic, a
// partition >= 0, 0 <= first <= last and 1 <= records <= last-first+1) and
// their records must sum to MetaRecords and to the file's row count; it must
// not have the plain file's topic, partition or offset keys. Otherwise the
// error names the offending key.
//
// FileMeta.SchemaKey is set for both kinds.
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
	if info, meta, err = fileInfoOf(md); err != nil {
		return FileInfo{}, FileMeta{}, fmt.Errorf("read parquet footer: %w", err)
	}
	info.Bytes = size
	return info, meta, nil
}

// fileInfoOf reads lakesink's keys from a decoded footer (Bytes left 0).
func fileInfoOf(md *format.FileMetaData) (info FileInfo, meta FileMeta, err error) {
	kv := make(map[string]string, len(md.KeyValueMetadata))
	for _, e := range md.KeyValueMetadata {
		kv[e.Key] = e.Value
	}
	if _, ok := kv[MetaSources]; ok {
		return compactedInfoOf(md, kv)
	}
	for _, k := range metaKeys {
		if _, ok := kv[k]; !ok {
			return info, meta, fmt.Errorf("%w: missing key %s", ErrNotLakesinkFile, k)
		}
	}
	bad := func(k string, err error) error {
		return fmt.Errorf("key %s=%q: %w", k, kv[k], err)
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
		return info, meta, fmt.Errorf("%s=%d but the file has %d rows", MetaRecords, info.Records, md.NumRows)
	}
	if err := parseTimes(kv, &info, &meta); err != nil {
		return info, meta, err
	}
	meta.Stream, meta.Topic, meta.Partition = kv[MetaStream], kv[MetaTopic], partition
	meta.SchemaKey = schemaKey(md.Schema)
	for _, k := range metaKeys {
		delete(kv, k)
	}
	if len(kv) > 0 {
		meta.Extra = kv
	}
	return info, meta, nil
}

// compactedInfoOf is fileInfoOf for a footer with MetaSources.
func compactedInfoOf(md *format.FileMetaData, kv map[string]string) (info FileInfo, meta FileMeta, err error) {
	for _, k := range compactedKeys {
		if _, ok := kv[k]; !ok {
			return info, meta, fmt.Errorf("compacted file: missing key %s", k)
		}
	}
	for _, k := range partitionKeys {
		if _, ok := kv[k]; ok {
			return info, meta, fmt.Errorf("compacted file has key %s: it holds several partitions' records", k)
		}
	}
	if info.Records, err = strconv.ParseInt(kv[MetaRecords], 10, 64); err != nil {
		return info, meta, fmt.Errorf("key %s=%q: %w", MetaRecords, kv[MetaRecords], err)
	}
	if info.Records != md.NumRows {
		return info, meta, fmt.Errorf("%s=%d but the file has %d rows", MetaRecords, info.Records, md.NumRows)
	}
	sources, sum, err := parseSources(kv[MetaSources])
	if err != nil {
		return info, meta, err
	}
	if sum != info.Records {
		return info, meta, fmt.Errorf("key %s: sources hold %d records, %s=%d", MetaSources, sum, MetaRecords, info.Records)
	}
	if err := parseTimes(kv, &info, &meta); err != nil {
		return info, meta, err
	}
	meta.Stream, meta.Sources = kv[MetaStream], sources
	meta.SchemaKey = schemaKey(md.Schema)
	for _, k := range compactedKeys {
		delete(kv, k)
	}
	if len(kv) > 0 {
		meta.Extra = kv
	}
	return info, meta, nil
}

// parseSources decodes and checks a MetaSources value, returning the
// sources and the sum of their records.
func parseSources(v string) ([]Source, int64, error) {
	var sources []Source
	if err := json.Unmarshal([]byte(v), &sources); err != nil {
		return nil, 0, fmt.Errorf("key %s: %w", MetaSources, err)
	}
	if len(sources) == 0 {
		return nil, 0, fmt.Errorf("key %s: no sources", MetaSources)
	}
	var sum int64
	for i, s := range sources {
		if err := s.check(); err != nil {
			return nil, 0, fmt.Errorf("key %s: source %d: %w", MetaSources, i, err)
		}
		if sum > math.MaxInt64-s.Records {
			return nil, 0, fmt.Errorf("key %s: source %d: record count overflows", MetaSources, i)
		}
		sum += s.Records
	}
	return sources, sum, nil
}

// check reports what is wrong with s, if anything.
func (s Source) check() error {
	switch {
	case s.Topic == "":
		return errors.New("empty topic")
	case s.Partition < 0:
		return fmt.Errorf("partition %d", s.Partition)
	case s.FirstOffset < 0 || s.LastOffset < s.FirstOffset:
		return fmt.Errorf("offsets %d..%d", s.FirstOffset, s.LastOffset)
	case s.Records < 1 || s.Records-1 > s.LastOffset-s.FirstOffset:
		return fmt.Errorf("%d records in offsets %d..%d", s.Records, s.FirstOffset, s.LastOffset)
	}
	return nil
}

// parseTimes reads the event-time range and the hour bucket.
func parseTimes(kv map[string]string, info *FileInfo, meta *FileMeta) error {
	times := map[string]*time.Time{MetaMinEventTime: &info.MinEventTime, MetaMaxEventTime: &info.MaxEventTime, MetaHour: &meta.Hour}
	for _, k := range []string{MetaMinEventTime, MetaMaxEventTime, MetaHour} {
		var err error
		if *times[k], err = time.Parse(time.RFC3339Nano, kv[k]); err != nil {
			return fmt.Errorf("key %s=%q: %w", k, kv[k], err)
		}
	}
	info.MinEventTime, info.MaxEventTime = info.MinEventTime.UTC(), info.MaxEventTime.UTC()
	return nil
}

// schemaKey fingerprints a footer's schema elements: the SHA-256 of their
// thrift encodings, each length-prefixed. Equal schemas give equal keys
// whatever else differs between the files (row groups, codecs, metadata).
func schemaKey(elems []format.SchemaElement) string {
	h := sha256.New()
	var proto thrift.CompactProtocol
	var n [binary.MaxVarintLen64]byte
	for i := range elems {
		b, err := thrift.Marshal(&proto, &elems[i])
		if err != nil {
			// Cannot happen for a decoded element; keep the key
			// distinct from every well-formed schema's.
			b = []byte(fmt.Sprintf("unencodable element %d: %v", i, err))
		}
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		h.Write(b)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
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
