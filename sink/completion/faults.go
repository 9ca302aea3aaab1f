package completion

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Faults receives the finalizer's failures (ops.Health implements it): it
// logs a lasting fault rarely and decides what readiness says.
type Faults interface {
	Kafka(err error)
	// Storage reports a check that failed on the lake (err), or a round of
	// checks that reached the lake without a failure (nil), which clears
	// the finalizer's own storage fault.
	Storage(err error)
	// Events reports delivery of stream's completion events to dependency
	// ("completion_topic" or "webhook"): err nil once delivered.
	Events(stream, dependency string, err error)
	// Blocked reports that stream's markers wait for files that no
	// manifest may list and nothing proves superseded (*UnprovenError);
	// err nil once a marker of the stream was published again.
	Blocked(stream string, err error)
}

// UnprovenError is the error of a folder whose marker waits: Files overlap
// files the manifest lists, so they cannot be listed, and are not proven
// superseded (SplitOrphans), so they are not deleted. A replay that covers
// them, or an operator, resolves it (docs/operations.md).
type UnprovenError struct {
	Folder string
	Files  []ManifestFile
}

func (e *UnprovenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "folder %s: %d file(s) hold records no manifest lists and are not proven superseded, kept; the marker waits:", e.Folder, len(e.Files))
	for i, f := range e.Files {
		if i == 5 {
			fmt.Fprintf(&b, " and %d more", len(e.Files)-i)
			break
		}
		if f.Sources != nil {
			fmt.Fprintf(&b, " %s (compacted, %d sources)", f.Path, len(f.Sources))
			continue
		}
		fmt.Fprintf(&b, " %s (offsets %d-%d)", f.Path, f.FirstOffset, f.LastOffset)
	}
	return b.String()
}

// kafkaError marks an error of the group-wide Kafka view.
type kafkaError struct{ err error }

func (e kafkaError) Error() string { return e.err.Error() }
func (e kafkaError) Unwrap() error { return e.err }

// settle reports the outcome of one check of st: markers blocked by
// unproven files (cleared only by a check that met none), a failure of
// Kafka or the lake, or success.
func (f *Finalizer) settle(ctx context.Context, st *Stream, err error) {
	var ue *UnprovenError
	storageOK, storageFailed := false, false // the check reached the lake / failed on it
	switch {
	case errors.Is(err, errAwaitEvents):
		f.o.Log.Debug("finalizer", "stream", st.Name, "wait", err)
		storageOK = true
		f.unblock(st)
	case errors.As(err, &ue):
		f.block(st, ue)
		storageOK = true
	case err == nil:
		storageOK = true
		f.unblock(st)
	case ctx.Err() == nil:
		f.o.Metrics.FinalizerErrors.Inc()
		storageFailed = f.fault(st, err)
	}
	f.storageState(ctx, st, storageOK, storageFailed)
}

// storageState records whether st's last check failed on the lake and,
// once no stream's last check did, clears the finalizer's own storage
// fault (readiness follows each source of storage calls separately; the
// streams' goroutines share this one).
func (f *Finalizer) storageState(ctx context.Context, st *Stream, ok, failed bool) {
	f.storageMu.Lock()
	defer f.storageMu.Unlock()
	switch {
	case failed:
		f.storageFailing[st.Name] = true
	case ok:
		delete(f.storageFailing, st.Name)
	}
	if ok && len(f.storageFailing) == 0 && f.o.Faults != nil && ctx.Err() == nil {
		f.o.Faults.Storage(nil)
	}
}

// fault reports a failed check: to Faults (which logs a lasting fault
// rarely) when set, else as a warning. It returns whether the error was
// the lake's (reported as a storage fault).
func (f *Finalizer) fault(st *Stream, err error) (storage bool) {
	if f.o.Faults == nil {
		f.o.Log.Warn("finalizer", "stream", st.Name, "err", err)
		return false
	}
	f.o.Log.Debug("finalizer", "stream", st.Name, "err", err)
	var ke kafkaError
	if errors.As(err, &ke) {
		f.o.Faults.Kafka(fmt.Errorf("finalizer of stream %s: %w", st.Name, err))
		return false
	}
	f.o.Faults.Storage(fmt.Errorf("finalizer of stream %s: %w", st.Name, err))
	return true
}

// block reports a stream whose markers wait for unproven files: to Faults
// (readiness, a log line when it starts and rarely while it lasts) or as a
// warning, and in lakesink_unproven_files.
func (f *Finalizer) block(st *Stream, ue *UnprovenError) {
	f.o.Metrics.UnprovenFiles.WithLabelValues(st.Name).Set(float64(len(ue.Files)))
	f.runs[st.Name].blocked = true
	if f.o.Faults == nil {
		f.o.Log.Warn("markers blocked", "stream", st.Name, "err", ue)
		return
	}
	f.o.Faults.Blocked(st.Name, ue)
}

// unblock clears what block reported once a check of st met no unproven
// file.
func (f *Finalizer) unblock(st *Stream) {
	if r := f.runs[st.Name]; !r.blocked {
		return
	} else {
		r.blocked = false
	}
	f.o.Metrics.UnprovenFiles.WithLabelValues(st.Name).Set(0)
	if f.o.Faults != nil {
		f.o.Faults.Blocked(st.Name, nil)
	}
}
