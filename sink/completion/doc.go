// Package completion decides when an hour of a stream is complete and tells
// the world: it builds the hour's manifest from the files in its folder,
// removes orphans, publishes the manifest as numbered revisions and as
// _SUCCESS, and delivers completion events to a Kafka topic and a webhook.
//
// It reads only group-wide state — the committed offsets and their commit
// metadata (package ledger), the partitions' log ranges, and the lake — so
// every instance of a group runs the same Finalizer and they agree: each
// revision is published with a create-if-absent put, once, whoever gets
// there first. docs/design.md ("Hour markers", "Late data and revisions")
// explains the rule and the protocol; Finalizer's doc comment has the steps.
package completion
