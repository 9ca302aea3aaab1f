// Package tables commits a stream's finished Parquet files to an Apache
// Iceberg table (github.com/apache/iceberg-go), exactly once, and records
// the stream's hour completion on it.
//
// The files stay where and as the worker writes them; the table only
// references them (AddDataFiles with statistics read from the spool copy's
// footer, so nothing is read back from the lake). One Table serves every
// worker of its stream in a process and is safe for concurrent use: the
// workers' commits are queued and one goroutine applies them, several to a
// snapshot, so that the table gets one snapshot per batch and not one per
// file.
//
// # Schema
//
// Open makes the table read files of the stream's schema list, Evolve
// files of each writer schema, with one planner (planSchema, plan.go): a
// column the table lacks is added as optional, a file column of a type
// Iceberg promotes to the table's (partitioner.Promotes: int to long,
// float to double) is read as it is, and anything else is ErrIncompatible
// naming the column. Only Evolve widens a table column the other way; a
// schema list never changes an existing column's type.
//
// # Exactly once
//
// Each snapshot lakesink writes carries, in its summary, the group
// (lakesink.group) and, for each topic-partition it covers, a progress
// entry (lakesink.progress: the committing worker's generation and member,
// and the commit point and commit metadata the partition will have once
// these files are durable — sink/ledger's PublishPoint). A worker:
//
//  1. on assignment, claims its partitions (Claim): a snapshot whose entry
//     names the new owner and carries the partition's newest progress
//     forward. The worker resumes from that progress and its Kafka commit
//     together (ledger.Resume), so files that were added to the table after
//     the last Kafka commit are skipped on replay, not added again;
//  2. uploads finished files, then adds them (Commit) before it commits
//     the Kafka offset past them. A crash in between re-creates the same
//     files (deterministic names) and adds them once;
//  3. is fenced: a commit is applied only if the partition's newest entry in
//     the table is the worker's own claim. A zombie of an earlier
//     generation, whose commit was in flight during a rebalance, fails with
//     ErrFenced instead of adding files the new owner is already replaying.
//
// Commits are compare-and-swap on the table's current snapshot
// (AssertRefSnapshotID): on a conflict with another writer — another
// instance of the group, or anyone else — the table is reloaded, the fence
// checked again against the fresh state, and the commit retried with
// backoff (lakesink_table_commit_conflicts_total).
//
// # Completion
//
// Complete advances the snapshot summary property
// lakesink.complete-through (RFC 3339) with a snapshot of its own that adds
// no files, and returns that snapshot's id for the hour's manifest and
// completion event.
//
// # Compaction and maintenance
//
// Replace (replace.go) swaps an hour's compacted inputs for the outputs in
// one overwrite snapshot, through the same committer; it carries no
// progress, and the progress readers (readHistory) skip snapshots without
// it. Expire (expire.go) expires old snapshots but keeps everything
// readHistory reads — each partition's newest entry, the completion
// point, and every snapshot after them — and deletes the files only the
// expired snapshots referenced.
package tables
