// Package sink moves records from Kafka into the lake: consumer-group
// membership, one worker per assigned partition, decoding, the commit
// protocol, dead-letter routing, the hour finalizer and the HTTP endpoints.
//
// # The commit protocol
//
// A partition worker reads records in offset order, decodes each one, and
// appends it to the open file of its event-time hour (one open file per hour
// per partition). A file is finished when the partition's watermark (the
// largest event time read) passes the hour's end plus allowed_lateness, when
// it reaches max_file_bytes, when the partition has been idle for
// markers.idle_partition_timeout, or at shutdown. A finished file is
// uploaded under a deterministic name — <topic>+<partition>+<first offset>.parquet
// — with an atomic put.
//
// Offsets are committed through kafka.Client.OffsetCommit with the
// generation id and member id of the current group generation, so Kafka
// rejects a commit from a member that lost the partition (the only fencing
// there is; see "Rebalances" below). kafka-go's Generation.CommitOffsets and
// Reader.CommitMessages are not used: they overwrite the metadata with "".
//
// The committed offset C is the first offset of the oldest file still being
// written or uploaded, or the next offset to read when there is none. So
// every record below C is durable in the lake or was sent to the dead-letter
// topic (dead letters are flushed before every commit). Because hours
// interleave, records above C can already be durable: a partition reading
// hours 13 and 14 at once may finish 13's file while 14's, which started
// earlier, stays open. The commit metadata (JSON, well under Kafka's 4 KiB)
// therefore carries "done marks" — hour h is durable for every offset below
// To — and a worker resuming at C skips exactly those records. It also
// carries:
//
//   - wm, the safe watermark: every record of an hour ending (plus lateness)
//     at or before wm that the partition has read is durable. The finalizer
//     of any instance reads it to decide whether an hour is complete.
//   - rw, the raw watermark, which a resuming worker restores so that replay
//     closes files at the same records as the first attempt.
//   - fh, the first hour the partition ever wrote, where the finalizer starts.
//   - la, the wall time of the last record read, for idle detection.
//
// Example with two hours interleaved on one partition: records 100–149 are
// hour 13, 150 is hour 14, 151–199 alternate. At 200 the watermark passes
// 13:00 + 1h + lateness, so hour 13's file (+100, records 100–198) is
// finished and uploaded; hour 14's file (+150) stays open. The commit is
// C = 150 with done mark {13:00, to 199}. If the process dies now, the next
// owner starts at 150, skips the hour-13 records 151–197 (below 199) and
// rebuilds hour 14's file from 150 under the same name +150.
//
// Replays are deterministic where it matters: file names depend only on the
// first record, and size-based file ends depend only on the rows. Time-based
// ends (idle flushes) can differ between attempts; the files the first
// attempt uploaded but never committed then overlap files of the replay. The
// finalizer removes such orphans before it writes an hour's marker: per
// partition, in order of first offset, a file starting at or below the last
// offset of a file kept before it holds only records another file holds (see
// splitOrphans for the argument).
//
// # Rebalances
//
// Each worker runs in its generation (kafka-go's Generation.Start). When the
// generation ends — a member joined or left, the coordinator moved — the
// workers abandon their open files (never uploaded, so nothing is visible)
// and return; kafka-go rejoins only after all of them have returned, so a
// partition's next owner cannot start while the previous one still uploads
// in this process. The next owner resumes from the committed offset and
// metadata. A member that stalls for longer than the session timeout without
// dying (a long GC pause, a frozen VM) is the one case the protocol does not
// fence on the storage side: its commits are rejected, but an upload already
// in flight may still land. It lands under a deterministic name with records
// the new owner also writes, so at worst it is an orphan that the finalizer
// removes, or it is overwritten by the new owner's file of the same name.
//
// # Shutdown
//
// On SIGTERM every worker finishes its open files, uploads them and commits
// while the generation is still valid; then the member leaves the group.
// Workers wait for each other: kafka-go ends a generation as soon as any of
// its goroutines returns, which would cancel the others' final commits.
// After shutdown_timeout whatever is not uploaded is abandoned and replayed
// by the next owner.
package sink
