// Package partitioner is the pure, deterministic core of lakesink: it maps a
// record's event time to its hour bucket and to the bucket's folder
// (HourOf, PathTemplate), names data files (FileName, MarkerName), and builds
// Parquet files on the local spool disk with bounded memory (Schema,
// FileWriter, ReadFileInfo).
//
// # Why pure and deterministic
//
// lakesink gets exactly-once output from at-least-once Kafka delivery by
// naming every data file after the first record it holds
// (<topic>+<partition>+<first offset>.parquet): after a crash the partition is
// replayed from its last committed offset and must produce the same files
// under the same names, so that an upload overwrites what an earlier attempt
// left behind instead of adding a second copy of the same records.
//
// That only works if everything that decides where a file starts and ends is
// a function of the records alone. Nothing in this package reads the wall
// clock (no time.Now), starts goroutines or consults randomness:
//
//   - the hour of a record comes from its event time and the stream's
//     time zone (HourOf);
//   - a FileWriter's EstimatedBytes, which the sink compares with
//     files.max_file_bytes to cut files, depends only on the sequence of rows
//     appended. Memory pressure may make the sink call Flush at any moment;
//     Flush only moves already-encoded pages from memory to the spool disk and
//     never changes page or row-group boundaries, so it cannot move a file
//     boundary either;
//   - row groups end when the encoded row group reaches
//     FileOptions.RowGroupBytes, again a function of the rows.
//
// Decisions that are time-driven (an hour closed, a partition idle, shutdown)
// are taken by the sink from an injected clock, outside this package.
//
// # Concurrency
//
// Functions and *PathTemplate and *Schema values are safe for concurrent use.
// A FileWriter is not: one goroutine (the partition worker) owns it.
package partitioner
