// Package sink wires lakesink's stages together and runs the consumer-group
// loop: it compiles the configured streams, builds the Kafka client, the
// partition workers' shared environment, the finalizer and the operational
// state, joins the group, and starts one partition worker per assigned
// partition in each generation.
//
// The stages, each a package with one job (dependencies point down;
// docs/design.md's package map lists every package with its imports, and
// a test keeps it true):
//
//	sink             wiring and the group loop (this package)
//	├─ worker        a partition: decode → hour files → upload → commit
//	├─ completion    hour markers (manifest, finalizer) and completion events
//	├─ ops           readiness, status page, HTTP endpoints, recent logs
//	├─ unconsumed    partitions no live group member consumes
//	├─ tables        the Iceberg table committer (worker, completion)
//	├─ kafkaio       Kafka I/O: dialer, fetcher, admin, producers
//	├─ decode        JSON, Confluent formats (confluent), schema: infer (infer)
//	├─ registry      the schema registry client
//	├─ ledger        the commit-metadata format and per-partition ledger (pure)
//	└─ retry         the jittered backoff and the wait every retry loop uses
//
// sink/audit (lakesink audit) reads a lake beside them; cmd/lakesink wires
// it.
//
// One record's path: kafkaio.Fetcher → worker.Worker.process (format
// decode, late policy, fit) → partitioner.FileWriter.Append → on a closed
// hour, size cap, idle partition or memory pressure worker.Worker.finish
// (upload to the writers.Writer under partitioner.PathTemplate.FileKey,
// ledger.Ledger.MadeDurable) → worker.Worker.commit (dead letters first,
// then kafkaio.Admin.Commit with ledger metadata) → completion.Finalizer
// reads the committed metadata of every partition and publishes the hour's
// _SUCCESS manifest and events. docs/design.md has the guarantees and why
// they hold.
//
// # Rebalances and shutdown
//
// Each worker runs in its generation (kafka-go's Generation.Start). When the
// generation ends the workers abandon their open files and return; kafka-go
// rejoins only after all of them have returned, so a partition's next owner
// cannot start while the previous one still uploads in this process.
//
// On SIGTERM every worker finishes its open files, uploads them and commits
// while the generation is still valid; then the member leaves the group.
// Workers wait for each other: kafka-go ends a generation as soon as any of
// its goroutines returns, which would cancel the others' final commits.
// After shutdown_timeout whatever is not uploaded is abandoned and replayed
// by the next owner.
package sink
