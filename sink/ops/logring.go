package ops

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LogEntry is one recorded warning or error.
type LogEntry struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	// Attrs are the record's attributes as "key=value", in order.
	Attrs []string `json:"attrs,omitempty"`
}

// LogRing keeps the last warnings and errors logged, for the status page.
// Safe for concurrent use. It records what the logger is given: secrets must
// not be logged in the first place (they are not).
type LogRing struct {
	mu   sync.Mutex
	buf  []LogEntry
	next int
	full bool
}

// NewLogRing returns a ring holding the last n entries (n >= 1).
func NewLogRing(n int) *LogRing {
	return &LogRing{buf: make([]LogEntry, max(n, 1))}
}

func (r *LogRing) add(e LogEntry) {
	r.mu.Lock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
}

// Entries returns the recorded entries, newest first.
func (r *LogRing) Entries() []LogEntry {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]LogEntry, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

// Handler wraps next: every record still goes to next, and records at WARN
// or above are also kept in r.
func (r *LogRing) Handler(next slog.Handler) slog.Handler {
	return &ringHandler{ring: r, next: next}
}

type ringHandler struct {
	ring   *LogRing
	next   slog.Handler
	attrs  []string
	groups string
}

func (h *ringHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *ringHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		e := LogEntry{Time: rec.Time, Level: rec.Level.String(), Message: rec.Message}
		e.Attrs = append(e.Attrs, h.attrs...)
		rec.Attrs(func(a slog.Attr) bool {
			e.Attrs = appendAttr(e.Attrs, h.groups, a)
			return true
		})
		h.ring.add(e)
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]string(nil), h.attrs...)
	for _, a := range as {
		c.attrs = appendAttr(c.attrs, h.groups, a)
	}
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.groups = h.groups + name + "."
	c.next = h.next.WithGroup(name)
	return &c
}

func appendAttr(dst []string, prefix string, a slog.Attr) []string {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			dst = appendAttr(dst, prefix+a.Key+".", g)
		}
		return dst
	}
	return append(dst, prefix+a.Key+"="+a.Value.String())
}
