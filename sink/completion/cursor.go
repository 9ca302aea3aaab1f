package completion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lakesink/lakesink/writers"
)

// cursorState is persisted in the lake so a restarted group resumes where
// markers stopped.
type cursorState struct {
	NextHour string `json:"next_hour"`
}

func cursorKey(stream string) string { return "_lakesink/finalizer/" + stream + ".json" }

// cursorStore keeps each stream's cursor — the start of the next hour
// bucket to finalize — in the lake, at _lakesink/finalizer/<stream>.json,
// so that a restarted group resumes where markers stopped instead of at
// the partitions' first hour: it never revisits finalized hours, even
// when their revision objects are gone (a lifecycle rule on
// _lakesink/markers). The finalizer saves it only after an hour's marker
// is published and its events delivered. Safe for concurrent use: it only
// calls the Writer.
type cursorStore struct{ w writers.Writer }

// load returns stream's persisted cursor, unix ms, and whether there is
// one.
func (s cursorStore) load(ctx context.Context, stream string) (int64, bool, error) {
	key := cursorKey(stream)
	rc, err := s.w.Get(ctx, key)
	switch {
	case errors.Is(err, writers.ErrNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	var cs cursorState
	b, err := io.ReadAll(rc)
	if err == nil {
		err = json.Unmarshal(b, &cs)
	}
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", key, err)
	}
	t, err := time.Parse(time.RFC3339, cs.NextHour)
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", key, err)
	}
	return t.UnixMilli(), true, nil
}

// save persists next (unix ms) as stream's cursor. Idempotent.
func (s cursorStore) save(ctx context.Context, stream string, next int64) error {
	b, _ := json.Marshal(cursorState{NextHour: time.UnixMilli(next).UTC().Format(time.RFC3339)})
	if err := s.w.Put(ctx, cursorKey(stream), bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("put %s: %w", cursorKey(stream), err)
	}
	return nil
}

// ReadCursor returns stream's finalizer cursor as the lake holds it: the
// start of the next hour bucket its finalizer will finalize, the zero time
// when it has none yet. Read-only (lakesink audit); safe for concurrent
// use.
func ReadCursor(ctx context.Context, w writers.Writer, stream string) (time.Time, error) {
	ms, ok, err := cursorStore{w}.load(ctx, stream)
	if err != nil || !ok {
		return time.Time{}, err
	}
	return time.UnixMilli(ms).UTC(), nil
}

// cursor returns the next hour of st to finalize: from memory, from the
// lake, or else the earliest hour any partition wrote (0 when nothing was
// written).
func (f *Finalizer) cursor(ctx context.Context, st *Stream, firstHour int64) (int64, error) {
	r := f.runs[st.Name]
	if c := r.cursor; c != 0 {
		return c, nil
	}
	c, found, err := f.cursors.load(ctx, st.Name)
	switch {
	case err != nil:
		return 0, err
	case found:
		r.cursor = c
	default:
		r.cursor = firstHour
	}
	return r.cursor, nil
}
