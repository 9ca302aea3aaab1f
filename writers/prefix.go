package writers

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// WithPrefix returns a Writer that stores every key under prefix in w:
// key "k" is stored as "<prefix>/k", List's prefix is applied below it and
// the listed keys have it stripped again, so the result behaves like a
// Writer rooted at prefix. It backs `storage.s3.prefix` / `storage.gcs.prefix`
// and isolates tests that share a bucket.
//
// Leading and trailing slashes of prefix are ignored; an empty prefix
// returns w itself. If the remaining prefix is not a valid key (see
// ValidateKey) every method fails with an error wrapping ErrInvalidKey, so
// validate configured prefixes up front with ValidateKey.
//
// Name returns w's name, and Close closes w: the wrapper owns w.
func WithPrefix(w Writer, prefix string) Writer {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return w
	}
	p := &prefixed{w: w, prefix: prefix + "/"}
	if err := ValidateKey(prefix); err != nil {
		p.err = fmt.Errorf("storage prefix: %w", err)
	}
	return p
}

type prefixed struct {
	w      Writer
	prefix string // ends with "/"
	err    error  // invalid prefix
}

func (p *prefixed) key(op, key string) (string, error) {
	if p.err != nil {
		return "", fmt.Errorf("%s %s: %w", op, key, p.err)
	}
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("%s %s: %w", op, key, err)
	}
	return p.prefix + key, nil
}

func (p *prefixed) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := p.key("put", key)
	if err != nil {
		return err
	}
	return p.w.Put(ctx, k, r, size)
}

func (p *prefixed) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := p.key("put if absent", key)
	if err != nil {
		return err
	}
	return p.w.PutIfAbsent(ctx, k, r, size)
}

func (p *prefixed) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := p.key("get", key)
	if err != nil {
		return nil, err
	}
	return p.w.Get(ctx, k)
}

func (p *prefixed) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	k, err := p.key("get", key)
	if err != nil {
		return nil, err
	}
	return p.w.GetRange(ctx, k, off, length)
}

func (p *prefixed) Stat(ctx context.Context, key string) (Object, error) {
	k, err := p.key("stat", key)
	if err != nil {
		return Object{}, err
	}
	o, err := p.w.Stat(ctx, k)
	if err != nil {
		return Object{}, err
	}
	o.Key = key
	return o, nil
}

func (p *prefixed) Exists(ctx context.Context, key string) (bool, error) {
	k, err := p.key("exists", key)
	if err != nil {
		return false, err
	}
	return p.w.Exists(ctx, k)
}

func (p *prefixed) List(ctx context.Context, prefix string) ([]Object, error) {
	if p.err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, p.err)
	}
	if err := ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	objs, err := p.w.List(ctx, p.prefix+prefix)
	if err != nil {
		return nil, err
	}
	for i := range objs {
		k, ok := strings.CutPrefix(objs[i].Key, p.prefix)
		if !ok {
			return nil, fmt.Errorf("list %s: backend %s returned key %q outside prefix %q", prefix, p.w.Name(), objs[i].Key, p.prefix)
		}
		objs[i].Key = k
	}
	return objs, nil
}

func (p *prefixed) Delete(ctx context.Context, key string) error {
	k, err := p.key("delete", key)
	if err != nil {
		return err
	}
	return p.w.Delete(ctx, k)
}

func (p *prefixed) Name() string { return p.w.Name() }

func (p *prefixed) Close() error { return p.w.Close() }
