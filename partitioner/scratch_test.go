package partitioner

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestCreateScratch: a scratch file is writable and readable, leaves no
// name in its folder, and a missing folder is an error.
func TestCreateScratch(t *testing.T) {
	dir := t.TempDir()
	f, err := createScratch(dir, ".x-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("scratch file has a name: %v", entries)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "hello" {
		t.Fatalf("read back %q, %v", b, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := createScratch(filepath.Join(dir, "missing"), ".x-*"); err == nil {
		t.Fatal("no error for a missing folder")
	}
}
