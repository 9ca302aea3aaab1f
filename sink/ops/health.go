package ops

import (
	"fmt"
	"sort"
	"sync"
)

// Health is the state /readyz reports, as the stages see it: group
// membership (the group loop), storage and the dead-letter topic (uploads,
// dead-letter writes and the probes), partitions waiting for the schema
// registry, and partition workers that stopped with an error. Safe for
// concurrent use. It implements worker.Health.
type Health struct {
	mu         sync.Mutex
	joined     bool
	joinReason string
	storageErr error
	dlqErr     error
	regWaiting int // partitions waiting for the registry
	regErr     error
	stopped    map[string]error // "topic/partition" -> why its worker stopped
}

func newHealth() *Health { return &Health{stopped: map[string]error{}} }

// SetJoined reports group membership; reason says why not joined.
func (h *Health) SetJoined(ok bool, reason string) {
	h.mu.Lock()
	h.joined, h.joinReason = ok, reason
	h.mu.Unlock()
}

// Storage reports the write path's state: err nil when it works.
func (h *Health) Storage(err error) {
	h.mu.Lock()
	h.storageErr = err
	h.mu.Unlock()
}

// DeadLetters reports the dead-letter topic's state: err nil when it works.
func (h *Health) DeadLetters(err error) {
	h.mu.Lock()
	h.dlqErr = err
	h.mu.Unlock()
}

// RegistryWait counts a partition that waits for the schema registry with
// err until end is called; update reports a later error.
func (h *Health) RegistryWait(err error) (update func(error), end func()) {
	h.mu.Lock()
	h.regWaiting++
	h.regErr = err
	h.mu.Unlock()
	var once sync.Once
	return func(err error) {
			h.mu.Lock()
			h.regErr = err
			h.mu.Unlock()
		}, func() {
			once.Do(func() {
				h.mu.Lock()
				h.regWaiting--
				h.mu.Unlock()
			})
		}
}

// WorkerStopped reports that the worker of topic/partition stopped with err:
// the partition is not consumed until it is assigned again.
func (h *Health) WorkerStopped(topic string, partition int, err error) {
	h.mu.Lock()
	h.stopped[fmt.Sprintf("%s/%d", topic, partition)] = err
	h.mu.Unlock()
}

// WorkerStarted clears a stopped worker of topic/partition.
func (h *Health) WorkerStarted(topic string, partition int) {
	h.mu.Lock()
	delete(h.stopped, fmt.Sprintf("%s/%d", topic, partition))
	h.mu.Unlock()
}

// reasons lists what is not ready.
func (h *Health) reasons() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	if !h.joined {
		r := "consumer group not joined"
		if h.joinReason != "" {
			r += ": " + h.joinReason
		}
		out = append(out, r)
	}
	if h.storageErr != nil {
		out = append(out, "storage unreachable: "+h.storageErr.Error())
	}
	if h.dlqErr != nil {
		out = append(out, "dead-letter topic unavailable: "+h.dlqErr.Error())
	}
	if h.regWaiting > 0 {
		out = append(out, fmt.Sprintf("schema registry unreachable (%d partitions waiting): %s", h.regWaiting, h.regErr))
	}
	var stopped []string
	for tp, err := range h.stopped {
		stopped = append(stopped, fmt.Sprintf("partition worker stopped: %s: %v", tp, err))
	}
	sort.Strings(stopped)
	return append(out, stopped...)
}
