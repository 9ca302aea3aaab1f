package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := NewBackoff(100*time.Millisecond, time.Second)
	steps := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, s := range steps {
		s *= time.Millisecond
		if d := b.Next(); d < s/2 || d > s {
			t.Fatalf("wait %d = %v, want between %v and %v", i, d, s/2, s)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("after reset wait = %v, want <= 100ms", d)
	}
}

func TestUntil(t *testing.T) {
	t.Run("retries until success", func(t *testing.T) {
		calls := 0
		var failures []int
		err := Until(t.Context(), NewBackoff(time.Millisecond, time.Millisecond), func(context.Context) error {
			if calls++; calls < 4 {
				return errors.New("not yet")
			}
			return nil
		}, func(attempt int, err error) { failures = append(failures, attempt) })
		if err != nil || calls != 4 || len(failures) != 3 || failures[2] != 3 {
			t.Fatalf("Until = %v after %d calls, failures %v; want nil after 4, failures 1..3", err, calls, failures)
		}
	})
	t.Run("stops when ctx ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		err := Until(ctx, NewBackoff(time.Hour, time.Hour), func(context.Context) error {
			calls++
			cancel()
			return errors.New("down")
		}, func(int, error) { t.Error("failure reported after ctx ended") })
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Fatalf("Until = %v after %d calls, want context.Canceled after 1", err, calls)
		}
	})
	t.Run("sleep honours ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if Sleep(ctx, time.Hour) {
			t.Fatal("Sleep returned true on a cancelled context")
		}
	})
}

func TestSleep(t *testing.T) {
	if !Sleep(t.Context(), time.Millisecond) {
		t.Error("Sleep on a live context returned false")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep on a cancelled context returned true")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Sleep on a cancelled context took %v", d)
	}
}
