package writers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Memory is an in-memory Writer for tests of code that stores objects. It
// passes writertest.AcceptanceTest: keys are validated with ValidateKey, Put
// reads the whole content before publishing it under a lock (atomic), and
// PutIfAbsent checks and publishes under the same lock (exactly one winner).
// Objects are never mutated after being stored, so readers returned by Get
// stay valid after an overwrite or Delete. Safe for concurrent use; the zero
// value is not usable, call NewMemory.
type Memory struct {
	mu   sync.RWMutex
	objs map[string][]byte
}

// NewMemory returns an empty in-memory Writer.
func NewMemory() *Memory {
	return &Memory{objs: make(map[string][]byte)}
}

var _ Writer = (*Memory)(nil)

// Name returns "memory".
func (m *Memory) Name() string { return "memory" }

// Close does nothing; the contents stay readable.
func (m *Memory) Close() error { return nil }

// Put implements Writer.
func (m *Memory) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	b, err := m.read(ctx, key, r, size)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	m.mu.Lock()
	m.objs[key] = b
	m.mu.Unlock()
	return nil
}

// PutIfAbsent implements Writer.
func (m *Memory) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	b, err := m.read(ctx, key, r, size)
	if err != nil {
		return fmt.Errorf("put if absent %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok {
		return fmt.Errorf("put if absent %s: %w", key, ErrExists)
	}
	m.objs[key] = b
	return nil
}

// read validates key and reads exactly size bytes from r, honouring ctx.
func (m *Memory) read(ctx context.Context, key string, r io.Reader, size int64) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := readExactly(ctx, r, size)
	if err != nil {
		return nil, err
	}
	// The reader may have been slow: don't publish for a caller that gave up.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return b, nil
}

// Get implements Writer.
func (m *Memory) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return m.GetRange(ctx, key, 0, -1)
}

// GetRange implements Writer.
func (m *Memory) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	b, err := m.lookup(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	off = min(off, int64(len(b)))
	end := int64(len(b))
	if length >= 0 && off+length < end {
		end = off + length
	}
	return io.NopCloser(bytes.NewReader(b[off:end])), nil
}

// Stat implements Writer.
func (m *Memory) Stat(ctx context.Context, key string) (Object, error) {
	b, err := m.lookup(ctx, key)
	if err != nil {
		return Object{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return Object{Key: key, Size: int64(len(b))}, nil
}

// Exists implements Writer.
func (m *Memory) Exists(ctx context.Context, key string) (bool, error) {
	_, err := m.lookup(ctx, key)
	return ExistsFromStat(key, err)
}

func (m *Memory) lookup(ctx context.Context, key string) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	b, ok := m.objs[key]
	m.mu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	return b, nil
}

// List implements Writer.
func (m *Memory) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	var out []Object
	m.mu.RLock()
	for k, b := range m.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, Object{Key: k, Size: int64(len(b))})
		}
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Writer.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	m.mu.Lock()
	delete(m.objs, key)
	m.mu.Unlock()
	return nil
}
