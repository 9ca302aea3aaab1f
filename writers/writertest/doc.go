// Package writertest is the conformance suite for writers.Writer backends:
// one behavioural script, AcceptanceTest, that every backend (memory, local,
// s3, gcs, hdfs, and each of them wrapped in the writers decorators) passes
// against its real test server. It checks the guarantees written in the
// writers package doc; a backend that passes can be plugged into the sink.
//
// # Adding a backend
//
//  1. Create writers/<name> with a type that implements writers.Writer and
//     honours the guarantees in the writers package doc. Validate keys with
//     writers.ValidateKey (and List prefixes with writers.ValidatePrefix) and
//     wrap the caller's reader in writers.ExactReader, which turns a short
//     or long reader and a cancelled context into an upload error.
//  2. In the backend's tests, start its test server (a local fake speaking
//     the real protocol; see docs/design.md) and call AcceptanceTest, as below,
//     over the bare backend and, if it has a key prefix setting (applied
//     with writers.Prefix), over a prefixed one.
//  3. Give its Config a Validate method that reports every value New would
//     reject as a writers.SettingError, add its config section to package
//     config (whose Validate calls that method on the values the factory
//     passes), and register the backend in writers/factory, which maps
//     `storage.type` to a constructor.
//
// For example:
//
//	func TestAcceptance(t *testing.T) {
//		writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer {
//			w := newTestWriter(t) // rooted at a prefix unique to t
//			t.Cleanup(func() { _ = w.Close() })
//			return w
//		})
//	}
//
// # What AcceptanceTest needs from newWriter
//
// newWriter is called once per subtest, with that subtest's t, and returns a
// Writer whose key space is empty and isolated: a fresh t.TempDir() for a
// file tree, or a prefix unique to t (the backend's prefix setting over a
// shared bucket). Objects outside that key space are never touched or listed by the
// suite, but List("") must show nothing from outside it. The suite never
// calls Close: newWriter registers any cleanup with t.Cleanup.
//
// The suite runs its subtests sequentially. It uploads about 100 MiB in
// total (20 MiB objects, to cross multipart thresholds), runs up to 16
// goroutines at a time, and waits for every goroutine it starts before a
// subtest returns, so it can run under goleak. Subtest names are stable;
// skipping one to hide a failure defeats its purpose.
//
// # Behaviour the suite pins down beyond the interface comments
//
//   - GetRange with length 0 yields no bytes; a range that runs past the end
//     yields the bytes up to the end. Offsets past the end are not tested.
//   - A key that is only a "folder" of other keys ("a" when "a/b" exists)
//     does not exist: Get, GetRange and Stat return ErrNotFound, Exists
//     false, Delete nil (and deletes nothing).
//   - A failed upload, including PutIfAbsent, leaves no trace: no temporary
//     object is listed and a later PutIfAbsent of the key succeeds.
//   - Keys may contain spaces, '+', '=', '~' and any UTF-8 letter.
//
// The exported helpers (readers that fail, cancel or block at a given byte,
// and Must*/Require* assertions) are for backends' own tests too.
package writertest
