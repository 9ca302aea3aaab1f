package writers_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/writertest"
)

func TestExactReader(t *testing.T) {
	content := writertest.RandomBytes(1, 100_000)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		r       io.Reader
		size    int64
		wantErr error // nil: content[:size] and EOF
	}{
		{"exact", context.Background(), bytes.NewReader(content), int64(len(content)), nil},
		{"exact one byte at a time", context.Background(), iotest.OneByteReader(bytes.NewReader(content[:1000])), 1000, nil},
		{"exact with data and EOF together", context.Background(), iotest.DataErrReader(bytes.NewReader(content)), int64(len(content)), nil},
		{"empty", context.Background(), strings.NewReader(""), 0, nil},
		{"short", context.Background(), bytes.NewReader(content[:10]), 11, writers.ErrSizeMismatch},
		{"long", context.Background(), bytes.NewReader(content), int64(len(content)) - 1, writers.ErrSizeMismatch},
		{"long from zero", context.Background(), strings.NewReader("x"), 0, writers.ErrSizeMismatch},
		{"negative size", context.Background(), strings.NewReader(""), -1, writers.ErrSizeMismatch},
		{"reader fails", context.Background(), writertest.FailingReader(bytes.NewReader(content), 500), 1000, writertest.ErrInjected},
		{"reader fails after the content", context.Background(),
			io.MultiReader(bytes.NewReader(content[:10]), writertest.FailingReader(strings.NewReader(""), 0)), 10, writertest.ErrInjected},
		{"cancelled", cancelled, bytes.NewReader(content), 10, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := io.ReadAll(writers.ExactReader(tc.ctx, tc.r, tc.size))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("read = %v, want an error wrapping %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, content[:tc.size]) {
				t.Fatalf("read %s, want %s", writertest.Describe(got), writertest.Describe(content[:tc.size]))
			}
		})
	}
}

func TestExactReaderCancelledDuringRead(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	content := writertest.RandomBytes(2, 10_000)
	r := writers.ExactReader(ctx, writertest.CancelingReader(bytes.NewReader(content), 5000, cancel), int64(len(content)))
	if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) {
		t.Fatalf("read = %v, want context.Canceled", err)
	}
	// Sticky.
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after error = %v, want context.Canceled again", err)
	}
}
