package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/test/testenv"
)

// Local disk faults — cells (e) and (f), made with real mounts (root
// needed; skipped otherwise): a small tmpfs filled with a junk file
// (ENOSPC), a folder bind-mounted read-only over itself (EROFS), and for
// the lake a tmpfs with room for small files only. Each
// fault lasts over 10 s, during which the sink must stay in its group (at
// most one more generation), log at most a handful of lines and use little
// CPU; afterwards the output must be exact.

// faultQuiet is how long a local fault is held while the noise is counted,
// and faultMaxLines how many log lines that may bring.
const (
	faultQuiet    = 10 * time.Second
	faultMaxLines = 10
)

// diskFault is one way to break a folder: break it, and return the repair.
type diskFault struct {
	name  string
	errno string // as the error text says it
	// prepare runs before the sink starts (dir exists and is empty).
	prepare func(t *testing.T, dir string)
	// inject breaks dir and returns the repair.
	inject func(t *testing.T, dir string) (repair func())
	// records is produced per hour batch (0: faultRecords).
	records int
}

var diskFaults = []diskFault{
	{
		name: "full", errno: "no space left on device",
		prepare: func(t *testing.T, dir string) { testenv.MountTmpfs(t, dir, 4<<20) },
		inject:  func(t *testing.T, dir string) func() { return testenv.FillDisk(t, dir) },
	},
	{
		name: "readonly", errno: "read-only file system",
		prepare: func(*testing.T, string) {},
		inject:  func(t *testing.T, dir string) func() { return testenv.BindReadOnly(t, dir).Writable },
	},
}

// smallFilesOnly is a lake disk with room for the write probe's tiny
// object but not for a data file: a 16 KiB tmpfs against data files of
// about 36 KB (6,000 records per batch, 1,000 per file), grown to 4 MiB by
// the repair. The probe's put and delete succeed throughout, so only the
// failed uploads can say that the lake is broken.
var smallFilesOnly = diskFault{
	name: "small-files-only", errno: "no space left on device",
	prepare: func(t *testing.T, dir string) { testenv.MountTmpfs(t, dir, 16<<10) },
	inject: func(t *testing.T, dir string) func() {
		return func() { testenv.ResizeTmpfs(t, dir, 4<<20) }
	},
	records: 6000,
}

// newDir makes an empty folder for a fault.
func newDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFaultLocalLake — cell (e): storage.type local on a full disk, on a
// read-only mount, and on a disk with room for small files only. Uploads
// fail while lookups still work: /readyz must say "storage unreachable"
// (the uploads; the write probe too, unless its tiny object fits) from the
// first failed upload in every sample until the repair, lakesink_ready 0,
// storage errors counted, nothing committed; after the repair, exact
// output.
func TestFaultLocalLake(t *testing.T) {
	skipShort(t)
	k := testenv.StartKafka(t)
	faults := append(slices.Clone(diskFaults), smallFilesOnly)
	concurrently(t, faults, func(f diskFault) string { return f.name }, func(t *testing.T, f diskFault) {
		root := newDir(t, "lake")
		f.prepare(t, root)
		s := newLocalFaultSink(t, k, "lake-"+f.name, root)
		if f.records > 0 {
			s.records = f.records
		}
		s.start()
		s.waitReady(60 * time.Second)
		gen0 := s.generations()
		repair := f.inject(t, root)
		s.produceHours(2)
		t.Logf("readiness reason: %s", s.waitNotReady(30*time.Second, "storage unreachable", f.errno))
		s.quietDuringFault(faultQuiet, faultMaxLines, gen0, "storage unreachable", f.errno)
		s.checkFaultMetrics("storage")
		if _, err := s.lake.List(t.Context(), "clickstream/"); err != nil {
			t.Errorf("listing the lake during the fault: %v (reads should still work)", err)
		}
		s.checkNothingCommitted()
		repair()
		s.waitDone(faultRecover)
		s.finish()
	})
}

// TestFaultSpool — cell (f): files.spool_dir on a full disk, and on a
// read-only mount. /readyz must name the spool path and the error ("spool
// disk failing" or "partition worker stopped"), lakesink_dependency_errors
// _total{dependency="spool"} > 0; the member stays in the group and quiet;
// after the repair, exact output.
func TestFaultSpool(t *testing.T) {
	skipShort(t)
	k := testenv.StartKafka(t)
	concurrently(t, diskFaults, func(f diskFault) string { return f.name }, func(t *testing.T, f diskFault) {
		spool := newDir(t, "spool")
		f.prepare(t, spool)
		s := newLocalFaultSink(t, k, "spool-"+f.name, "")
		s.cfg.Files.SpoolDir = spool
		s.start()
		s.waitReady(60 * time.Second)
		gen0 := s.generations()
		repair := f.inject(t, spool)
		s.produceHours(2)
		reason := s.waitReason(30*time.Second, "naming the spool path, "+f.errno+" and the spool or worker",
			func(r string) bool {
				return strings.Contains(r, spool) && strings.Contains(r, f.errno) &&
					(strings.HasPrefix(r, "spool disk failing") || strings.HasPrefix(r, "partition worker stopped"))
			})
		t.Logf("readiness reason: %s", reason)
		s.checkFaultMetrics("spool")
		s.quietDuringFault(faultQuiet, faultMaxLines, gen0)
		s.checkNothingCommitted()
		repair()
		s.waitDone(faultRecover)
		s.finish()
	})
}
