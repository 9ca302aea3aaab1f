package writers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

func TestReaderAt(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	content := []byte("0123456789")
	if err := m.Put(ctx, "k", bytes.NewReader(content), int64(len(content))); err != nil {
		t.Fatal(err)
	}
	r := ReaderAt(ctx, m, "k")
	for _, c := range []struct {
		off, n int
		want   string
		err    error
	}{{0, 4, "0123", nil}, {6, 4, "6789", nil}, {8, 4, "89", io.EOF}} {
		p := make([]byte, c.n)
		n, err := r.ReadAt(p, int64(c.off))
		if string(p[:n]) != c.want || !errors.Is(err, c.err) && err != c.err {
			t.Errorf("ReadAt(%d, %d) = %q, %v; want %q, %v", c.off, c.n, p[:n], err, c.want, c.err)
		}
	}
	if _, err := ReaderAt(ctx, m, "missing").ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key: %v, want ErrNotFound", err)
	}
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	if err := m.Put(ctx, "k", bytes.NewReader([]byte("v")), 1); err != nil {
		t.Fatal(err)
	}
	r := ReadOnly(m)
	for name, err := range map[string]error{
		"Put":         r.Put(ctx, "x", bytes.NewReader([]byte("v")), 1),
		"PutIfAbsent": r.PutIfAbsent(ctx, "x", bytes.NewReader([]byte("v")), 1),
		"Delete":      r.Delete(ctx, "k"),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: %v, want ErrReadOnly", name, err)
		}
	}
	objs, err := r.List(ctx, "")
	if err != nil || len(objs) != 1 || objs[0].Key != "k" {
		t.Fatalf("List through ReadOnly: %v, %v (the lake changed?)", objs, err)
	}
}
