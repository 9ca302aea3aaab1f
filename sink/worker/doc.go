// Package worker is the partition worker: one per assigned partition and
// group generation, it takes each record of its partition from fetch to
// committed offset —
//
//	fetch (kafkaio.Fetcher) → format.decode → late policy → format.fit →
//	hour file (partitioner.FileWriter on the spool disk) → finish: upload
//	under the deterministic key → ledger.MadeDurable → commit (dead letters
//	first, then kafkaio.Admin.Commit with the ledger's metadata)
//
// — and keeps its side of the process's memory budget.
//
// A file is finished when the partition's watermark (the largest event time
// read) passes the hour's end plus allowed_lateness, when it reaches
// max_file_bytes, when the partition has been idle for
// markers.idle_partition_timeout, when the memory budget is exceeded, or at
// shutdown. The committed offset is the first offset of the oldest file not
// yet durable, with done marks for hours made durable past it (package
// ledger); docs/design.md ("Commit protocol") has the whole argument and a
// worked example.
//
// Rebalances: when the generation ends, the worker abandons its open files
// (never uploaded, so nothing is visible) and returns; the next owner
// resumes from the committed offset and metadata. On shutdown (drain) it
// finishes, uploads and commits everything while the generation is still
// valid. A worker that stalls longer than the session timeout without dying
// is the one case not fenced on the storage side: its commits are refused,
// but an upload in flight may land — under a deterministic name, so it is
// overwritten by the new owner's file or removed as an orphan by the
// finalizer.
//
// Replays are deterministic where it matters: file names depend only on the
// first record. Where files are cut can differ between attempts (idle
// flushes, memory pressure, page sizes that depend on the partition count,
// inferred columns); the finalizer's orphan rule keeps every record exactly
// once regardless.
//
// Files: worker.go is the record's path (Worker: Run, process, finish,
// commit); files.go the open files and the spool folder (fileSet);
// memory.go the budget and a worker's share of it (memShare); upload.go,
// deadletter.go, table.go, offsets.go and late.go what a finished file,
// a bad record, the stream's table, an offset commit and a late record
// need. The formats (format.go: the interface, fixedFormat and formatEnv,
// all a format sees of its worker) are registry*.go and infer.go, with the
// sampler they share in sample.go and the column rules in columns.go.
package worker
