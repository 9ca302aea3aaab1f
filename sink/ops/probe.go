package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lakesink/lakesink/writers"
)

// ProbePrefix is the reserved prefix of the storage write probe's objects:
// _lakesink/probe/<instance id>. Nothing else is written there; a probe
// object left by a crash is overwritten by nobody and is safe to delete.
const ProbePrefix = "_lakesink/probe/"

// RunHealthChecks probes the write path every http.health_check_interval
// until ctx ends, feeding Readiness:
//
//   - storage: a small object is put under ProbePrefix and deleted again.
//     Why a write: a lake that answers lookups but refuses writes (a full
//     disk, read-only credentials) must not look healthy. The probe's
//     success clears only a fault the probe raised: a lake that takes its
//     few bytes may still refuse every data file, and only a successful
//     upload clears an upload's fault (Health.Upload);
//   - the spool disk: a small file is written, synced and removed in the
//     group's spool folder, and the bytes under it are measured
//     (lakesink_spool_disk_bytes);
//   - the dead-letter topic: it must exist with a leader for every
//     partition.
//
// Each probe has the interval as its deadline. Run it in its own goroutine;
// it returns when ctx ends.
func (ops *Ops) RunHealthChecks(ctx context.Context) {
	every := ops.o.HealthCheckInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ops.checkOnce(ctx, every)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (ops *Ops) checkOnce(ctx context.Context, timeout time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := ops.probeStorage(pctx)
	if ctx.Err() != nil {
		return
	}
	ops.Health.probed(err)
	if ops.o.SpoolDir != "" {
		ops.Health.Spool(ops.probeSpool())
		ops.spoolBytes.Set(float64(dirBytes(ops.o.SpoolDir)))
	}
	if err := ops.o.Topics.CheckTopic(pctx, ops.o.DeadLetterTopic); ctx.Err() == nil {
		ops.Health.DeadLetters(err)
	}
}

// probeStorage puts and deletes the probe object. It returns by ctx's
// deadline even if the Writer does not (a backend whose calls ignore
// contexts, against a server that never answers); while such a call is
// still running, later probes fail at once rather than pile up.
func (ops *Ops) probeStorage(ctx context.Context) error {
	ops.probeMu.Lock()
	if !ops.probeSince.IsZero() {
		since := ops.probeSince
		ops.probeMu.Unlock()
		return fmt.Errorf("write probe: the probe started at %s has not returned", since.UTC().Format(time.RFC3339))
	}
	ops.probeSince = ops.o.Now()
	ops.probeMu.Unlock()
	done := make(chan error, 1)
	go func() {
		err := ops.putProbe(ctx)
		ops.probeMu.Lock()
		ops.probeSince = time.Time{}
		ops.probeMu.Unlock()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("write probe: %w", ctx.Err())
	}
}

func (ops *Ops) putProbe(ctx context.Context) error {
	return WriteProbe(ctx, ops.o.Writer, ProbePrefix+ops.id, ops.o.Now())
}

// ProbeError is a failed step of WriteProbe: Step is "put" or "delete".
// Its text is "write probe: <step> <key>: <cause>".
type ProbeError struct {
	Step, Key string
	Err       error
}

func (e *ProbeError) Error() string {
	return "write probe: " + e.Step + " " + e.Key + ": " + e.Err.Error()
}

func (e *ProbeError) Unwrap() error { return e.Err }

// WriteProbe puts a small object (now, as text) at key and deletes it
// again: what the readiness probe and `lakesink validate --connect` do to
// learn that the lake takes writes. A failed step is a *ProbeError. If the
// put fails nothing is deleted; if the delete fails the object stays (the
// key is the caller's, under ProbePrefix, and is overwritten by its next
// probe).
func WriteProbe(ctx context.Context, w writers.Writer, key string, now time.Time) error {
	body := now.UTC().Format(time.RFC3339Nano)
	if err := w.Put(ctx, key, strings.NewReader(body), int64(len(body))); err != nil {
		return &ProbeError{Step: "put", Key: key, Err: err}
	}
	if err := w.Delete(ctx, key); err != nil {
		return &ProbeError{Step: "delete", Key: key, Err: err}
	}
	return nil
}

// probeSpool writes, syncs and removes a small file in the spool folder,
// creating the folder first.
func (ops *Ops) probeSpool() error {
	if err := os.MkdirAll(ops.o.SpoolDir, 0o755); err != nil {
		return fmt.Errorf("spool dir %s: %w", ops.o.SpoolDir, err)
	}
	return SpoolProbe(ops.o.SpoolDir, ".probe-"+ops.id)
}

// SpoolProbeBytes is the size of SpoolProbe's file.
const SpoolProbeBytes = 4096

// SpoolProbe writes SpoolProbeBytes to the file name in dir, syncs it and
// removes it: the spool disk takes writes (it is not read-only, full, or
// refused to this user). dir must exist. The error names dir.
func SpoolProbe(dir, name string) error {
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("spool dir %s: %w", dir, err)
	}
	_, err = f.Write(make([]byte, SpoolProbeBytes))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	_ = os.Remove(p)
	if err != nil {
		return fmt.Errorf("spool dir %s: %w", dir, err)
	}
	return nil
}

// dirBytes is the size of the files below dir (0 if it cannot be read).
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// newID returns a random instance id for probe names.
func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
