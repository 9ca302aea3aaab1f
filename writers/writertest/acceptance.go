package writertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakesink/lakesink/writers"
)

const (
	kib = 1 << 10
	mib = 1 << 20

	// largeSize is above the multipart thresholds of the S3 (5 MiB parts)
	// and GCS (8/16 MiB chunks) clients, so large objects take the
	// multipart path.
	largeSize = 20 * mib

	// gateTimeout bounds how long the suite waits for a backend to read the
	// first half of an in-flight upload.
	gateTimeout = time.Minute
)

// AcceptanceTest runs the conformance suite against the backend that
// newWriter creates. See the package doc for what newWriter must return.
func AcceptanceTest(t *testing.T, newWriter func(t *testing.T) writers.Writer) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, func(*testing.T) writers.Writer)
	}{
		{"Name", testName},
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"FailedPut", testFailedPut},
		{"Cancel", testCancel},
		{"NotFound", testNotFound},
		{"PutIfAbsent", testPutIfAbsent},
		{"List", testList},
		{"InFlight", testInFlight},
		{"Concurrent", testConcurrent},
		{"SpecialKeys", testSpecialKeys},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newWriter) })
	}
}

func testName(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	if name := newWriter(t).Name(); name == "" {
		t.Fatal("Name() is empty")
	}
}

// ranges returns the GetRange cases for an object of n bytes (n > 0).
func ranges(n int64) [][2]int64 {
	rs := [][2]int64{{0, 1}, {0, 0}, {n - 1, 1}, {n - 1, -1}, {n - 1, 10}, {n / 2, 0}}
	if n < largeSize {
		return append(rs, [][2]int64{{0, -1}, {0, n}, {n / 2, -1}, {n / 3, n / 3}, {n / 2, 2 * n}}...)
	}
	// Around the part and chunk sizes of the cloud clients, kept short
	// because full reads of a large object are slow under -race.
	for _, at := range []int64{5 * mib, 8 * mib, 16 * mib} {
		rs = append(rs, [2]int64{at - 3, 10}, [2]int64{at, 1}, [2]int64{at - 1, 2})
	}
	return append(rs, [2]int64{n - 3*mib - 5, -1}, [2]int64{n - 100, 1000})
}

func testRoundTrip(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	for _, size := range []int{0, 1, kib, largeSize} {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
			w := newWriter(t)
			key := fmt.Sprintf("roundtrip/dt=2026-11-25/obj-%d.bin", size)
			content := RandomBytes(uint64(size), size)
			MustPut(t, w, key, content)
			RequireContent(t, w, key, content)
			RequireObjects(t, w, "", []writers.Object{{Key: key, Size: int64(size)}})
			if size == 0 {
				return
			}
			for _, r := range ranges(int64(size)) {
				off, length := r[0], r[1]
				end := int64(size)
				if length >= 0 {
					end = min(end, off+length)
				}
				RequireRange(t, w, key, off, length, content[off:end])
			}
		})
	}
}

func testOverwrite(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	w := newWriter(t)
	const key = "overwrite/obj"
	for i, content := range [][]byte{RandomBytes(1, kib), []byte("two"), RandomBytes(3, 2*kib), {}, []byte("five")} {
		MustPut(t, w, key, content)
		RequireContent(t, w, key, content)
		RequireObjects(t, w, "overwrite/", []writers.Object{{Key: key, Size: int64(len(content))}})
		if t.Failed() {
			t.Fatalf("after put number %d", i+1)
		}
	}
}

// putFunc is Put or PutIfAbsent.
type putFunc func(w writers.Writer, ctx context.Context, key string, r io.Reader, size int64) error

var putFuncs = []struct {
	name string
	put  putFunc
}{
	{"Put", func(w writers.Writer, ctx context.Context, key string, r io.Reader, size int64) error {
		return w.Put(ctx, key, r, size)
	}},
	{"PutIfAbsent", func(w writers.Writer, ctx context.Context, key string, r io.Reader, size int64) error {
		return w.PutIfAbsent(ctx, key, r, size)
	}},
}

// requireFailedPutLeftNothing checks the state after a failed upload to key:
// only the objects in before are visible (previous version if the key
// existed), and, if the key did not exist, a PutIfAbsent of it now succeeds.
func requireFailedPutLeftNothing(t *testing.T, w writers.Writer, key string, previous []byte, before []writers.Object) {
	t.Helper()
	RequireObjects(t, w, "", before)
	if previous != nil {
		RequireContent(t, w, key, previous)
		return
	}
	RequireAbsent(t, w, key)
	after := []byte("written after the failed upload")
	if err := w.PutIfAbsent(t.Context(), key, bytes.NewReader(after), int64(len(after))); err != nil {
		t.Fatalf("PutIfAbsent(%q) after a failed upload: %v", key, err)
	}
	RequireContent(t, w, key, after)
}

func testFailedPut(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	type readerCase struct {
		name   string
		size   int64
		reader func(content []byte) io.Reader // content has size bytes
	}
	cases := []readerCase{
		{"reader fails", kib, func(c []byte) io.Reader { return FailingReader(bytes.NewReader(c), 100) }},
		{"reader fails at once", kib, func(c []byte) io.Reader { return FailingReader(bytes.NewReader(c), 0) }},
		{"large reader fails", 12 * mib, func(c []byte) io.Reader { return FailingReader(bytes.NewReader(c), 7*mib) }},
		{"reader fails at the end", kib, func(c []byte) io.Reader {
			return io.MultiReader(bytes.NewReader(c), FailingReader(bytes.NewReader(nil), 0))
		}},
		{"short reader", kib, func(c []byte) io.Reader { return bytes.NewReader(c[:len(c)-1]) }},
		{"empty reader", 10, func(c []byte) io.Reader { return bytes.NewReader(nil) }},
		{"long reader", kib, func(c []byte) io.Reader { return io.MultiReader(bytes.NewReader(c), strings.NewReader("x")) }},
		{"long reader for size 0", 0, func(c []byte) io.Reader { return strings.NewReader("x") }},
		{"large long reader", 6 * mib, func(c []byte) io.Reader {
			return io.MultiReader(bytes.NewReader(c), bytes.NewReader(RandomBytes(7, kib)))
		}},
		{"negative size", -1, func(c []byte) io.Reader { return strings.NewReader("x") }},
	}
	// requireErr: every backend fails the same way, ErrSizeMismatch for a
	// reader that does not match its size.
	requireErr := func(t *testing.T, name, key string, tc readerCase, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s(%q) with a %s returned nil, want an error", name, key, tc.name)
		}
		if tc.size < 0 && !errors.Is(err, writers.ErrSizeMismatch) {
			t.Fatalf("%s(%q) with a %s: %v, want an error wrapping ErrSizeMismatch", name, key, tc.name, err)
		}
	}
	for _, pf := range putFuncs {
		for _, tc := range cases {
			t.Run(pf.name+"/"+tc.name+"/new key", func(t *testing.T) {
				w := newWriter(t)
				MustPut(t, w, "failed/other", []byte("other"))
				before := MustList(t, w, "")
				const key = "failed/obj"
				content := RandomBytes(11, int(max(tc.size, 0)))
				requireErr(t, pf.name, key, tc, pf.put(w, t.Context(), key, tc.reader(content), tc.size))
				requireFailedPutLeftNothing(t, w, key, nil, before)
			})
		}
	}
	// An existing key makes PutIfAbsent fail anyway, so only Put matters here.
	for _, tc := range cases {
		t.Run("Put/"+tc.name+"/existing key", func(t *testing.T) {
			w := newWriter(t)
			const key = "failed/obj"
			previous := RandomBytes(12, 3*kib)
			MustPut(t, w, key, previous)
			before := MustList(t, w, "")
			content := RandomBytes(13, int(max(tc.size, 0)))
			requireErr(t, "Put", key, tc, w.Put(t.Context(), key, tc.reader(content), tc.size))
			requireFailedPutLeftNothing(t, w, key, previous, before)
		})
	}
}

func testCancel(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	const size = 2 * mib
	for _, pf := range putFuncs {
		for _, existing := range []bool{false, true} {
			if existing && pf.name == "PutIfAbsent" {
				continue // fails with ErrExists anyway
			}
			suffix := "/new key"
			if existing {
				suffix = "/existing key"
			}
			t.Run(pf.name+"/before"+suffix, func(t *testing.T) {
				w := newWriter(t)
				const key = "cancel/obj"
				var previous []byte
				if existing {
					previous = []byte("previous")
					MustPut(t, w, key, previous)
				}
				before := MustList(t, w, "")
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				content := RandomBytes(21, size)
				if err := pf.put(w, ctx, key, bytes.NewReader(content), size); err == nil {
					t.Fatalf("%s(%q) with a cancelled context returned nil, want an error", pf.name, key)
				}
				requireFailedPutLeftNothing(t, w, key, previous, before)
			})
			t.Run(pf.name+"/during"+suffix, func(t *testing.T) {
				w := newWriter(t)
				const key = "cancel/obj"
				var previous []byte
				if existing {
					previous = []byte("previous")
					MustPut(t, w, key, previous)
				}
				before := MustList(t, w, "")
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				content := RandomBytes(22, size)
				r := CancelingReader(bytes.NewReader(content), size/2, cancel)
				if err := pf.put(w, ctx, key, r, size); err == nil {
					t.Fatalf("%s(%q) whose context was cancelled half-way returned nil, want an error", pf.name, key)
				}
				requireFailedPutLeftNothing(t, w, key, previous, before)
			})
		}
	}
}

func testNotFound(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	t.Run("missing key", func(t *testing.T) {
		w := newWriter(t)
		RequireAbsent(t, w, "notfound/missing")
		if err := w.Delete(t.Context(), "notfound/missing"); err != nil {
			t.Fatalf("Delete of a missing key = %v, want nil", err)
		}
		RequireObjects(t, w, "", nil)
	})
	t.Run("folder is not an object", func(t *testing.T) {
		w := newWriter(t)
		MustPut(t, w, "notfound/dir/obj", []byte("x"))
		for _, key := range []string{"notfound/dir", "notfound"} {
			RequireAbsent(t, w, key)
			if err := w.Delete(t.Context(), key); err != nil {
				t.Fatalf("Delete(%q) of a folder = %v, want nil", key, err)
			}
		}
		RequireContent(t, w, "notfound/dir/obj", []byte("x"))
		RequireAbsent(t, w, "notfound/dir/ob")
		RequireAbsent(t, w, "notfound/dir/obj/more")
	})
	t.Run("deleted key", func(t *testing.T) {
		w := newWriter(t)
		MustPut(t, w, "notfound/a", []byte("a"))
		MustPut(t, w, "notfound/b", []byte("bb"))
		for range 2 {
			if err := w.Delete(t.Context(), "notfound/a"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			RequireAbsent(t, w, "notfound/a")
			RequireObjects(t, w, "", []writers.Object{{Key: "notfound/b", Size: 2}})
		}
		MustPut(t, w, "notfound/a", []byte("again"))
		RequireContent(t, w, "notfound/a", []byte("again"))
	})
}

func testPutIfAbsent(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	t.Run("sequential", func(t *testing.T) {
		w := newWriter(t)
		ctx := t.Context()
		const key = "pia/_SUCCESS"
		first, second := []byte(`{"revision":1}`), []byte(`{"revision":2, "longer":true}`)
		if err := w.PutIfAbsent(ctx, key, bytes.NewReader(first), int64(len(first))); err != nil {
			t.Fatalf("first PutIfAbsent: %v", err)
		}
		RequireContent(t, w, key, first)
		err := w.PutIfAbsent(ctx, key, bytes.NewReader(second), int64(len(second)))
		if !errors.Is(err, writers.ErrExists) {
			t.Fatalf("second PutIfAbsent = %v, want an error wrapping writers.ErrExists", err)
		}
		RequireContent(t, w, key, first)
		RequireObjects(t, w, "", []writers.Object{{Key: key, Size: int64(len(first))}})

		if err := w.Delete(ctx, key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := w.PutIfAbsent(ctx, key, bytes.NewReader(second), int64(len(second))); err != nil {
			t.Fatalf("PutIfAbsent after Delete: %v", err)
		}
		RequireContent(t, w, key, second)
	})
	t.Run("after Put", func(t *testing.T) {
		w := newWriter(t)
		MustPut(t, w, "pia/obj", []byte("put"))
		err := w.PutIfAbsent(t.Context(), "pia/obj", strings.NewReader("pia"), 3)
		if !errors.Is(err, writers.ErrExists) {
			t.Fatalf("PutIfAbsent over a Put object = %v, want an error wrapping writers.ErrExists", err)
		}
		RequireContent(t, w, "pia/obj", []byte("put"))
	})
	t.Run("race", func(t *testing.T) {
		w := newWriter(t)
		const racers = 8
		for round := range 3 {
			key := fmt.Sprintf("pia/race/hour=%02d/_SUCCESS", round)
			contents := make([][]byte, racers)
			for i := range contents {
				contents[i] = RandomBytes(uint64(100*round+i), 4*kib+i*31)
			}
			errs := make([]error, racers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range racers {
				wg.Go(func() {
					<-start
					errs[i] = w.PutIfAbsent(t.Context(), key, bytes.NewReader(contents[i]), int64(len(contents[i])))
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Fatalf("round %d: racers %d and %d both won PutIfAbsent(%q)", round, winner, i, key)
				case err == nil:
					winner = i
				case !errors.Is(err, writers.ErrExists):
					t.Fatalf("round %d: racer %d: %v, want nil or an error wrapping writers.ErrExists", round, i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: no racer won PutIfAbsent(%q)", round, key)
			}
			RequireContent(t, w, key, contents[winner])
		}
	})
}

func testList(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	w := newWriter(t)
	keys := []string{
		"list/a/b/c/d.txt",
		"list/a/b/c.txt",
		"list/a/b-x",
		"list/a/bc",
		"list/a/bd/e",
		"list/a/c",
		"list/ab/x",
		"list/b",
		"list/x/y/z/w/v.bin",
		"lists",
	}
	all := make([]writers.Object, len(keys))
	for i, k := range keys {
		size := 3*i + 1
		MustPut(t, w, k, RandomBytes(uint64(i), size))
		all[i] = writers.Object{Key: k, Size: int64(size)}
	}
	slices.SortFunc(all, func(a, b writers.Object) int { return strings.Compare(a.Key, b.Key) })
	filter := func(prefix string) []writers.Object {
		var out []writers.Object
		for _, o := range all {
			if strings.HasPrefix(o.Key, prefix) {
				out = append(out, o)
			}
		}
		return out
	}
	// Spot-check the expectation itself: lexical order puts "b-x" ('-')
	// before "b/..." ('/') and "c.txt" ('.') before "c/d.txt", unlike a
	// depth-first walk of folders.
	if got, want := keysOf(filter("list/a/b")), []string{
		"list/a/b-x", "list/a/b/c.txt", "list/a/b/c/d.txt", "list/a/bc", "list/a/bd/e",
	}; !slices.Equal(got, want) {
		t.Fatalf("suite bug: expected keys %q, want %q", got, want)
	}
	for _, prefix := range []string{
		"", "l", "list", "list/", "list/a", "list/a/", "list/a/b", "list/a/b/", "list/a/b/c",
		"list/a/b/c.", "list/a/b/c/", "list/a/b/c.txt", "list/a/bc", "list/a/bc/", "list/ab",
		"list/x/", "list/x/y/z/w/v", "list/nope", "list/nope/", "nope", "list/a/b/c.txt/",
	} {
		RequireObjects(t, w, prefix, filter(prefix))
	}
}

func keysOf(objs []writers.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}

func testInFlight(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	const size = 2 * mib
	for _, tc := range []struct {
		name string
		put  putFunc
		key  string
	}{
		{"Put new key", putFuncs[0].put, "inflight/new"},
		{"Put existing key", putFuncs[0].put, "inflight/existing"},
		{"PutIfAbsent new key", putFuncs[1].put, "inflight/new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWriter(t)
			previous := RandomBytes(31, kib)
			MustPut(t, w, "inflight/existing", previous)
			before := MustList(t, w, "")

			content := RandomBytes(32, size)
			gate := NewGatedReader(bytes.NewReader(content), size/2)
			defer gate.Release()
			done := make(chan error, 1)
			go func() { done <- tc.put(w, t.Context(), tc.key, gate, size) }()

			select {
			case <-gate.Reached():
			case err := <-done:
				t.Fatalf("upload returned %v before reading its content", err)
			case <-time.After(gateTimeout):
				gate.Release()
				<-done
				t.Fatalf("upload did not read half of its content within %v", gateTimeout)
			}
			func() {
				// Whatever happens, release the upload and wait for it.
				defer func() {
					gate.Release()
					if err := <-done; err != nil {
						t.Errorf("upload after release: %v", err)
					}
				}()
				for _, prefix := range []string{"", "inflight/", "inflight/new"} {
					RequireObjects(t, w, prefix, filterObjects(before, prefix))
				}
				if tc.key == "inflight/new" {
					RequireAbsent(t, w, tc.key)
				}
				RequireContent(t, w, "inflight/existing", previous)
			}()
			if t.Failed() {
				return
			}
			RequireContent(t, w, tc.key, content)
			want := []writers.Object{{Key: "inflight/existing", Size: int64(len(previous))}}
			if tc.key == "inflight/existing" {
				want[0].Size = size
			} else {
				want = append(want, writers.Object{Key: tc.key, Size: size})
			}
			RequireObjects(t, w, "", want)
		})
	}
}

func filterObjects(objs []writers.Object, prefix string) []writers.Object {
	var out []writers.Object
	for _, o := range objs {
		if strings.HasPrefix(o.Key, prefix) {
			out = append(out, o)
		}
	}
	return out
}

func testConcurrent(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	t.Run("distinct keys", func(t *testing.T) {
		w := newWriter(t)
		const n = 16
		errs := make([]error, n)
		contents := make([][]byte, n)
		want := make([]writers.Object, n)
		var wg sync.WaitGroup
		for i := range n {
			contents[i] = RandomBytes(uint64(200+i), 16*kib+i)
			want[i] = writers.Object{Key: fmt.Sprintf("conc/hour=13/part-%02d.parquet", i), Size: int64(len(contents[i]))}
			wg.Go(func() {
				errs[i] = w.Put(t.Context(), want[i].Key, bytes.NewReader(contents[i]), int64(len(contents[i])))
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Put(%q): %v", want[i].Key, err)
			}
		}
		for i := range n {
			RequireContent(t, w, want[i].Key, contents[i])
		}
		RequireObjects(t, w, "conc/", want)
	})
	t.Run("same key", func(t *testing.T) {
		w := newWriter(t)
		const (
			key      = "conc/same"
			nWriters = 8
			puts     = 3
			readers  = 2
		)
		contents := make([][]byte, nWriters*puts+1)
		sums := make(map[[sha256.Size]byte]int)
		for i := range contents {
			contents[i] = RandomBytes(uint64(300+i), 32*kib+17*i)
			sums[sha256.Sum256(contents[i])] = i
		}
		MustPut(t, w, key, contents[nWriters*puts]) // readers always find a version

		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			problems []string
		)
		report := func(format string, args ...any) {
			mu.Lock()
			problems = append(problems, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
		stop := make(chan struct{})
		var readerWG sync.WaitGroup
		for range readers {
			readerWG.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					rc, err := w.Get(t.Context(), key)
					if err != nil {
						report("concurrent Get(%q): %v", key, err)
						return
					}
					b, err := io.ReadAll(rc)
					_ = rc.Close()
					if err != nil {
						report("concurrent Get(%q): read: %v", key, err)
						return
					}
					if _, ok := sums[sha256.Sum256(b)]; !ok {
						report("concurrent Get(%q) returned %s, which no Put wrote (torn write?)", key, Describe(b))
						return
					}
				}
			})
		}
		for i := range nWriters {
			wg.Go(func() {
				for j := range puts {
					c := contents[i*puts+j]
					if err := w.Put(t.Context(), key, bytes.NewReader(c), int64(len(c))); err != nil {
						report("Put(%q) by writer %d: %v", key, i, err)
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		readerWG.Wait()
		for _, p := range problems {
			t.Error(p)
		}
		if t.Failed() {
			return
		}
		got := MustGet(t, w, key)
		i, ok := sums[sha256.Sum256(got)]
		if !ok || i == nWriters*puts {
			t.Fatalf("final content of %q is %s, not one of the concurrently written contents", key, Describe(got))
		}
		RequireContent(t, w, key, contents[i])
		RequireObjects(t, w, "", []writers.Object{{Key: key, Size: int64(len(contents[i]))}})
	})
}

// SpecialKeys are keys with characters that need care in URLs and paths:
// spaces, '+', '=', '~' and non-ASCII letters. AcceptanceTest round-trips
// each of them.
var SpecialKeys = []string{
	"clickstream/dt=2026-11-25/hour=13/clickstream+3+00000000000000120000.parquet",
	"special/with space/file name .txt",
	"special/unicode/日本語/ключ-ü.json",
	"special/a+b=c/x+y=z==.bin",
	"special/tilde~dash-under_score.dot.txt",
	"special/_SUCCESS",
	"special/.hidden",
}

func testSpecialKeys(t *testing.T, newWriter func(*testing.T) writers.Writer) {
	w := newWriter(t)
	var all []writers.Object
	for i, key := range SpecialKeys {
		content := RandomBytes(uint64(400+i), 100+i)
		MustPut(t, w, key, content)
		RequireContent(t, w, key, content)
		if got := MustGetRange(t, w, key, 10, 20); !bytes.Equal(got, content[10:30]) {
			t.Errorf("GetRange(%q, 10, 20) = %s, want %s", key, Describe(got), Describe(content[10:30]))
		}
		RequireObjects(t, w, key, []writers.Object{{Key: key, Size: int64(len(content))}})
		dir := key[:strings.LastIndexByte(key, '/')+1]
		found := false
		for _, o := range MustList(t, w, dir) {
			found = found || o.Key == key
		}
		if !found {
			t.Errorf("List(%q) does not show %q", dir, key)
		}
		all = append(all, writers.Object{Key: key, Size: int64(len(content))})
	}
	slices.SortFunc(all, func(a, b writers.Object) int { return strings.Compare(a.Key, b.Key) })
	RequireObjects(t, w, "", all)
	for _, key := range SpecialKeys {
		if err := w.Delete(t.Context(), key); err != nil {
			t.Fatalf("Delete(%q): %v", key, err)
		}
		RequireAbsent(t, w, key)
	}
	RequireObjects(t, w, "", nil)
}
