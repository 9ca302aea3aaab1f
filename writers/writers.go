// Package writers defines the storage contract every lake backend fulfils.
//
// A Writer stores immutable objects under slash-separated keys relative to the
// configured storage root ("clickstream/dt=2026-11-25/hour=13/x.parquet").
// Backends live in sub-packages (local, s3, gcs, hdfs) and all pass the
// shared conformance suite in writers/writertest.
//
// The guarantees the sink builds on (see sink's package doc for why):
//
//   - Put is atomic: a reader sees either the previous state of the key or the
//     complete new object, never a partial one. A Put that fails, whose reader
//     fails, or whose context is cancelled leaves the previous state.
//   - Put is idempotent: putting the same key again overwrites it. Because data
//     file names are deterministic, a replay after a crash overwrites, never adds.
//   - PutIfAbsent has exactly one winner among concurrent callers; the others get
//     ErrExists. Markers are written with it so that two instances never both
//     publish the same marker revision.
//   - Reads after a successful Put see the new object (strong consistency).
//   - List never shows temporary objects of in-flight Puts.
//
// All methods are safe for concurrent use.
package writers

import (
	"context"
	"errors"
	"io"
)

// ErrNotFound is returned (wrapped) by Get, GetRange and Stat when the key does
// not exist. Test with errors.Is.
var ErrNotFound = errors.New("object not found")

// ErrExists is returned (wrapped) by PutIfAbsent when the key already exists.
var ErrExists = errors.New("object already exists")

// Object describes a stored object.
type Object struct {
	Key  string // relative to the storage root
	Size int64
}

// Writer is the storage backend contract. See the package doc for the
// guarantees; every implementation must pass writertest.AcceptanceTest.
type Writer interface {
	// Put stores size bytes read from r under key, atomically and idempotently.
	// size is the exact length of the content (backends use it to choose between
	// a single request and a multipart upload); Put fails if r yields a
	// different number of bytes. The caller keeps ownership of r.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// PutIfAbsent is Put that only succeeds when key does not exist yet; it
	// returns an error wrapping ErrExists otherwise. Exactly one of several
	// concurrent callers for the same key wins.
	PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the object for reading. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange reads length bytes starting at off (length < 0: to the end).
	// The caller closes the reader.
	GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Stat returns the object's size, or an error wrapping ErrNotFound.
	Stat(ctx context.Context, key string) (Object, error)
	// Exists reports whether key exists.
	Exists(ctx context.Context, key string) (bool, error)
	// List returns every object whose key starts with prefix, in lexical key
	// order, recursively (prefix is a plain string prefix, not only a folder).
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Name is the backend's name for logs and metrics ("local", "s3", ...).
	Name() string
	// Close releases the backend's resources. The owner of the Writer closes it.
	Close() error
}
