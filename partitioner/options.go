package partitioner

import (
	"errors"
	"fmt"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// Defaults of FileOptions.
const (
	DefaultRowGroupBytes   = 64 << 20
	DefaultPageBufferBytes = 32 << 10
	DefaultPageMemoryBytes = 1 << 20
)

// FileOptions configure a FileWriter. The zero value is usable.
//
// Memory of one FileWriter with the defaults, measured by
// TestFileWriterMemory (linux/amd64, Go 1.26, parquet-go v0.32.0, the
// 7-column clickstream schema of the benchmark, zstd):
//
//	open, 10 rows                          ~43 KiB (overhead + 16 KiB arena)
//	open, 500 rows                        ~240 KiB
//	open, 60000 rows, row group filling   ~350 KiB
//
// parquet-go's own defaults (256 KiB page buffers, 32 KiB write buffer,
// in-memory page buffers) would hold a busy file's whole encoded row group,
// up to RowGroupBytes, in memory; what bounds it here: PageBufferBytes (32 KiB) caps the unencoded
// values per column, page buffers spill to disk past PageMemoryBytes, and
// the write buffer exists only while a row group is being written.
// BufferedBytes reports the estimate the sink accounts against its memory
// limit.
type FileOptions struct {
	// Compression codec of every column chunk: "zstd" (default when
	// empty), "snappy", "gzip" or "none".
	Compression string
	// RowGroupBytes ends a row group once its encoded pages plus unencoded
	// values reach this size. Default DefaultRowGroupBytes.
	RowGroupBytes int64
	// PageBufferBytes is the unencoded size of a data page: each column
	// holds up to this many bytes of values in memory before encoding and
	// compressing them into a page. Smaller pages mean less memory per open
	// file and slightly larger files. Default DefaultPageBufferBytes.
	PageBufferBytes int
	// PageMemoryBytes bounds the encoded pages of the current row group
	// kept in memory; beyond it they move to an unlinked spool file in
	// SpoolDir until the row group is written. Default
	// DefaultPageMemoryBytes.
	PageMemoryBytes int64
	// SpoolDir holds the page spool file. Default: the data file's folder.
	SpoolDir string
	// Deferred writes the rows to a row log on the spool disk (an unnamed
	// file in SpoolDir, created once the rows outgrow the log's 16 KiB
	// buffer) instead of encoding them as they arrive,
	// and encodes the whole file at Finish. An open deferred writer holds
	// about 17 KiB of memory (its row log buffer) whatever its size and column count, against
	// tens to hundreds of KiB for an encoding one: it is how thousands of
	// files can stay open in a small memory limit without being ended
	// early. The price: the rows cross the spool disk twice, and the
	// encoding work of the whole file is done at Finish. The file's rows
	// are the same; its row groups are cut as an encoding writer would cut
	// them.
	Deferred bool
	// EncodeSlots, when not nil, bounds how many deferred writers that
	// share it encode at once: Finish holds one slot (a buffered channel
	// of capacity N allows N) from encoding the first row to closing the
	// file, so the memory of encoding does not grow with the number of
	// files finishing together.
	EncodeSlots chan struct{}
}

var fastZstd = &zstd.Codec{Level: zstd.SpeedFastest}

func (o FileOptions) withDefaults() (FileOptions, compress.Codec, error) {
	var codec compress.Codec
	switch o.Compression {
	case "", "zstd":
		// zstd's fastest level: at ingest rates it costs about half the CPU
		// of the default level for files 5-10% larger.
		codec = fastZstd
	case "snappy":
		codec = &parquet.Snappy
	case "gzip":
		codec = &parquet.Gzip
	case "none":
		codec = &parquet.Uncompressed
	default:
		return o, nil, fmt.Errorf("unknown compression %q (want zstd, snappy, gzip or none)", o.Compression)
	}
	if o.RowGroupBytes < 0 || o.PageBufferBytes < 0 || o.PageMemoryBytes < 0 {
		return o, nil, errors.New("negative size in file options")
	}
	if o.RowGroupBytes == 0 {
		o.RowGroupBytes = DefaultRowGroupBytes
	}
	if o.PageBufferBytes == 0 {
		o.PageBufferBytes = DefaultPageBufferBytes
	}
	if o.PageMemoryBytes == 0 {
		o.PageMemoryBytes = DefaultPageMemoryBytes
	}
	return o, codec, nil
}
