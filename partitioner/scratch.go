package partitioner

import (
	"fmt"
	"os"
)

// createScratch returns a new read-write file in dir that has no name: a
// crash leaves nothing behind, and closing it frees its space. On Linux it
// is an O_TMPFILE file (no directory entry is ever made, which costs less
// than creating and unlinking a name when hundreds of partitions open files
// at once); elsewhere, or where the file system has no O_TMPFILE, a named
// temporary file unlinked at once.
func createScratch(dir, pattern string) (*os.File, error) {
	if f, ok := openTmpfile(dir); ok {
		return f, nil
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("unlink %s: %w", f.Name(), err)
	}
	return f, nil
}
