package writers

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrReadOnly is returned (wrapped) by the changing methods of a Writer
// made by ReadOnly.
var ErrReadOnly = errors.New("read-only storage")

// ReadOnly returns w with Put, PutIfAbsent and Delete refused (an error
// wrapping ErrReadOnly, w not called): for tools that promise to change
// nothing, such as `lakesink audit`. Reads go to w; Close closes w.
func ReadOnly(w Writer) Writer { return readOnly{w} }

type readOnly struct{ Writer }

func (r readOnly) Put(_ context.Context, key string, _ io.Reader, _ int64) error {
	return fmt.Errorf("put %s: %w", key, ErrReadOnly)
}

func (r readOnly) PutIfAbsent(_ context.Context, key string, _ io.Reader, _ int64) error {
	return fmt.Errorf("put %s: %w", key, ErrReadOnly)
}

func (r readOnly) Delete(_ context.Context, key string) error {
	return fmt.Errorf("delete %s: %w", key, ErrReadOnly)
}
