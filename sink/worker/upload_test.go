package worker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakesink/lakesink/writers"
)

// cutWriter fails its first puts after reading part of the body, as a
// connection lost mid-upload does, then passes them to the lake.
type cutWriter struct {
	writers.Writer
	fail atomic.Int32
	puts atomic.Int32
}

func (c *cutWriter) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	c.puts.Add(1)
	if c.fail.Add(-1) >= 0 {
		_, _ = io.CopyN(io.Discard, r, size/2)
		return errors.New("connection reset by peer")
	}
	return c.Writer.Put(ctx, key, r, size)
}

// TestUpload: a put cut off mid-body is retried from the file's first
// byte, and readiness hears of the fault and of its end; a spool file that
// is gone is a spool fault returned at once — no put, no storage fault —
// instead of an endless retry that would hold a shutdown's drain until its
// timeout.
func TestUpload(t *testing.T) {
	cfg := testConfig()
	body := bytes.Repeat([]byte("parquet!"), 4096)
	path := filepath.Join(t.TempDir(), "f.parquet")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)

	t.Run("cut", func(t *testing.T) {
		lake := writers.NewMemory()
		w := &cutWriter{Writer: lake}
		w.fail.Store(2)
		env := testEnv(t, cfg, w)
		if err := upload(ctx, env, log, "k", path, int64(len(body))); err != nil {
			t.Fatal(err)
		}
		rc, err := lake.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, body) || w.puts.Load() != 3 {
			t.Errorf("the lake holds %d of %d bytes after %d puts, want all after 3", len(got), len(body), w.puts.Load())
		}
		if h := env.Health.(*testHealth); h.storage != nil {
			t.Errorf("storage fault %v after the upload succeeded", h.storage)
		}
	})

	t.Run("spool file gone", func(t *testing.T) {
		w := &cutWriter{Writer: writers.NewMemory()}
		env := testEnv(t, cfg, w)
		gone := filepath.Join(t.TempDir(), "gone.parquet")
		err := upload(ctx, env, log, "k", gone, 10)
		h := env.Health.(*testHealth)
		if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "open spool file") || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("upload of a missing spool file = %v (ctx %v), want an open spool file error at once", err, ctx.Err())
		}
		if h.spool == nil || h.storage != nil || w.puts.Load() != 0 {
			t.Errorf("spool fault %v, storage fault %v, %d puts: want a spool fault only", h.spool, h.storage, w.puts.Load())
		}
	})
}
