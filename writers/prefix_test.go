package writers_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/local"
	"github.com/lakesink/lakesink/writers/writertest"
)

func TestAcceptancePrefixOverLocal(t *testing.T) {
	writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
		w, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close() })
		return writers.WithPrefix(w, "/lake/prefix/")
	})
}

func TestPrefixLayout(t *testing.T) {
	inner := writers.NewMemory()
	other := []byte("outside")
	writertest.MustPut(t, inner, "lakes", other)           // shares the string prefix
	writertest.MustPut(t, inner, "other/lake/file", other) // unrelated
	w := writers.WithPrefix(inner, "lake")
	writertest.MustPut(t, w, "s/dt=2026-11-25/a", []byte("a"))
	writertest.RequireContent(t, inner, "lake/s/dt=2026-11-25/a", []byte("a"))
	writertest.MustPut(t, inner, "lake/t", []byte("tt"))
	writertest.RequireObjects(t, w, "", []writers.Object{{Key: "s/dt=2026-11-25/a", Size: 1}, {Key: "t", Size: 2}})
	writertest.RequireObjects(t, w, "s/", []writers.Object{{Key: "s/dt=2026-11-25/a", Size: 1}})
	if o, err := w.Stat(t.Context(), "s/dt=2026-11-25/a"); err != nil || o.Key != "s/dt=2026-11-25/a" {
		t.Fatalf("Stat = %+v, %v; want the unprefixed key", o, err)
	}
	// Keys that would leave the prefix are refused by the wrapper itself,
	// whatever the backend accepts.
	for _, key := range []string{"../lakes", "../other/lake/file", "/abs", "a//b"} {
		if err := w.Put(t.Context(), key, strings.NewReader("x"), 1); !errors.Is(err, writers.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := w.Get(t.Context(), key); !errors.Is(err, writers.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := w.List(t.Context(), "../"); !errors.Is(err, writers.ErrInvalidKey) {
		t.Errorf("List(../) = %v, want ErrInvalidKey", err)
	}
	writertest.RequireContent(t, inner, "lakes", other)
	writertest.RequireContent(t, inner, "other/lake/file", other)
	if w.Name() != "memory" {
		t.Errorf("Name() = %q, want the wrapped backend's", w.Name())
	}
}

func TestPrefixEmptyAndInvalid(t *testing.T) {
	inner := writers.NewMemory()
	for _, p := range []string{"", "/", "//"} {
		if w := writers.WithPrefix(inner, p); w != writers.Writer(inner) {
			t.Errorf("WithPrefix(%q) wraps; want the writer itself", p)
		}
	}
	for _, p := range []string{"a//b", "../up", "a/./b", "a\\b"} {
		w := writers.WithPrefix(inner, p)
		if err := w.Put(t.Context(), "k", strings.NewReader("x"), 1); !errors.Is(err, writers.ErrInvalidKey) {
			t.Errorf("WithPrefix(%q).Put = %v, want ErrInvalidKey", p, err)
		}
		if _, err := w.List(t.Context(), ""); !errors.Is(err, writers.ErrInvalidKey) {
			t.Errorf("WithPrefix(%q).List = %v, want ErrInvalidKey", p, err)
		}
		if ok, err := w.Exists(t.Context(), "k"); ok || !errors.Is(err, writers.ErrInvalidKey) {
			t.Errorf("WithPrefix(%q).Exists = %v, %v; want false, ErrInvalidKey", p, ok, err)
		}
	}
	writertest.RequireObjects(t, inner, "", nil)
}
