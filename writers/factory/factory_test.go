package factory

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/local"
)

// TestReadOnlyLocal: a read-only local lake is neither created nor swept
// for temporary files, and refuses writes.
func TestReadOnlyLocal(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default().Storage
	cfg.Type = config.StorageLocal
	cfg.Local.Root = filepath.Join(t.TempDir(), "lake")
	if _, err := New(ctx, cfg, nil, nil, ReadOnly()); err == nil {
		t.Fatal("read-only lake at a missing root opened")
	}
	if _, err := os.Stat(cfg.Local.Root); !os.IsNotExist(err) {
		t.Fatalf("read-only New created the root: %v", err)
	}
	w, err := New(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Put(ctx, "a/b.parquet", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	// A temporary file a crashed upload left: New sweeps it, a read-only
	// New must not.
	tmp := filepath.Join(cfg.Local.Root, "a", local.TempPrefix+"crashed")
	if err := os.WriteFile(tmp, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro, err := New(ctx, cfg, nil, nil, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Put(ctx, "a/c.parquet", bytes.NewReader([]byte("x")), 1); !errors.Is(err, writers.ErrReadOnly) {
		t.Fatalf("Put on a read-only lake: %v", err)
	}
	if err := ro.Delete(ctx, "a/b.parquet"); !errors.Is(err, writers.ErrReadOnly) {
		t.Fatalf("Delete on a read-only lake: %v", err)
	}
	if ok, err := ro.Exists(ctx, "a/b.parquet"); err != nil || !ok {
		t.Fatalf("read through a read-only lake: %v %v", ok, err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("read-only New swept a temporary file: %v", err)
	}
}
