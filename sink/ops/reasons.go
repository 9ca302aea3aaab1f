package ops

// The readiness reasons. Every reason /readyz gives starts with one of the
// Reason prefixes below (or with another package's, added through
// AddReasons: unconsumed.Reason); "consumer group not joined" is followed
// by ": " and the Join reason, or the group's error. docs/operations.md
// ("Readiness reasons") explains each and says what to do; a test keeps
// the two lists equal, so a new reason cannot go undocumented.
const (
	// Before the sink exists (cmd/lakesink's start-up handler).
	ReasonStarting          = "starting"
	ReasonConnectingStorage = "connecting to storage"

	ReasonNotJoined      = "consumer group not joined"
	ReasonStorage        = "storage unreachable"
	ReasonSpool          = "spool disk failing"
	ReasonEvents         = "completion events of stream"
	ReasonDeadLetter     = "dead-letter topic unavailable"
	ReasonRegistry       = "schema registry unreachable"
	ReasonCommitsStalled = "commits stalled"
	ReasonCatalog        = "table of stream"
	ReasonBlocked        = "markers of stream"
	ReasonWorkerStopped  = "partition worker stopped"
)

// Why the member is not in the group, after "consumer group not joined: "
// (Health.SetJoined); otherwise the error of the group's last join.
const (
	JoinWaitingKafka   = "waiting for kafka"
	JoinWaitingCatalog = "waiting for the catalog of table"
	JoinShutDown       = "shut down"
)

// Reasons lists the Reason prefixes of this package, for documentation
// checks.
func Reasons() []string {
	return []string{ReasonStarting, ReasonConnectingStorage, ReasonNotJoined, ReasonStorage, ReasonSpool, ReasonEvents,
		ReasonDeadLetter, ReasonRegistry, ReasonCommitsStalled, ReasonCatalog, ReasonBlocked, ReasonWorkerStopped}
}

// JoinReasons lists the Join reasons, for documentation checks.
func JoinReasons() []string { return []string{JoinWaitingKafka, JoinWaitingCatalog, JoinShutDown} }
