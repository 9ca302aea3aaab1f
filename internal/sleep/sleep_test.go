package sleep

import (
	"context"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	if !For(t.Context(), time.Millisecond) {
		t.Error("For on a live context returned false")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if For(ctx, time.Hour) {
		t.Error("For on a cancelled context returned true")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("For on a cancelled context took %v", d)
	}
}
