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
	key := ProbePrefix + ops.id
	body := ops.o.Now().UTC().Format(time.RFC3339Nano)
	if err := ops.o.Writer.Put(ctx, key, strings.NewReader(body), int64(len(body))); err != nil {
		return fmt.Errorf("write probe: put %s: %w", key, err)
	}
	if err := ops.o.Writer.Delete(ctx, key); err != nil {
		return fmt.Errorf("write probe: delete %s: %w", key, err)
	}
	return nil
}

// probeSpool writes, syncs and removes a small file in the spool folder.
func (ops *Ops) probeSpool() error {
	if err := os.MkdirAll(ops.o.SpoolDir, 0o755); err != nil {
		return fmt.Errorf("spool dir %s: %w", ops.o.SpoolDir, err)
	}
	p := filepath.Join(ops.o.SpoolDir, ".probe-"+ops.id)
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("spool dir %s: %w", ops.o.SpoolDir, err)
	}
	_, err = f.Write(make([]byte, 4096))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	_ = os.Remove(p)
	if err != nil {
		return fmt.Errorf("spool dir %s: %w", ops.o.SpoolDir, err)
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
