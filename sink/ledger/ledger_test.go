package ledger_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/sink/ledger"
)

// simFile is a data file in the simulated lake.
type simFile struct {
	hour    int64
	offsets []int64
	group   []int64 // first offsets of the files it finished with (several families)
}

// simKey is an open file: its hour and the family of its records (the
// writer schema families of a registry stream: one file each per hour).
type simKey struct {
	hour int64
	fam  int
}

// simPartition drives the ledger the way a worker does, against a simulated
// lake, with random file closes (idle flushes, size caps), random crashes
// (everything not uploaded is lost; the next owner resumes from the last
// commit) and uploads that land without their commit.
type simPartition struct {
	t        *testing.T
	r        *rand.Rand
	hours    []int64 // record offset -> hour (unix ms)
	events   []int64 // record offset -> event time (unix ms); nil: random within its hour
	fams     []int   // record offset -> family
	bad      map[int64]bool
	lateness int64

	lake     map[string]simFile // file name -> content; a put overwrites
	dlqSent  map[int64]int
	commitC  int64
	commitM  ledger.Meta
	led      *ledger.Ledger
	open     map[simKey]*simFile // files being written
	openFst  map[simKey]int64
	dlqQueue []int64
	// pendingNames are the uploaded files the next table commit adds.
	pendingNames []string

	// table, when set, makes this a table stream: uploaded files are
	// durable once a table commit references them.
	table *simTable
	crash bool // set by commit when it crashed between its steps
	// committed are the files (with their content) that a commit passed,
	// when tracked (not nil): the files uploaded before it by its attempt.
	committed map[string]simFile
	uploaded  []string // this attempt's uploads since its last commit
}

// simTable is an Iceberg table: the files it references (with their
// content when referenced) and the progress its last commit recorded.
type simTable struct {
	files map[string]simFile
	c     int64 // -1: no progress yet
	m     ledger.Meta
}

func (s *simPartition) restart() {
	c, m := s.commitC, s.commitM
	if s.table != nil {
		c, m = ledger.Resume(c, m, s.table.c, s.table.m)
	}
	s.led = ledger.New(c, m, s.lateness)
	s.open = map[simKey]*simFile{}
	s.openFst = map[simKey]int64{}
	s.dlqQueue = nil
	s.pendingNames = nil
	s.uploaded = nil
	s.crash = false
}

// close finishes the open files of hour h, all of them together (one per
// family); a crash may strike between their uploads.
func (s *simPartition) close(h int64) {
	if s.crash {
		return
	}
	var keys []simKey
	var group []int64
	for k := range s.open {
		if k.hour == h {
			keys = append(keys, k)
			group = append(group, s.openFst[k])
		}
	}
	slices.SortFunc(keys, func(a, b simKey) int { return a.fam - b.fam })
	slices.Sort(group)
	if len(group) < 2 {
		group = nil
	}
	for i, k := range keys {
		f := s.open[k]
		name := fmt.Sprintf("%d+%020d", h, s.openFst[k])
		s.lake[name] = simFile{hour: h, offsets: slices.Clone(f.offsets), group: group}
		s.uploaded = append(s.uploaded, name)
		if i < len(keys)-1 && s.r.Float64() < 0.02 {
			s.crash = true // between the uploads of the hour's files
			return
		}
		if s.table != nil {
			s.led.Uploaded(h, s.openFst[k], f.offsets[len(f.offsets)-1])
			s.pendingNames = append(s.pendingNames, name)
		} else {
			s.led.MadeDurable(h, f.offsets[len(f.offsets)-1])
		}
		delete(s.open, k)
		delete(s.openFst, k)
	}
}

func (s *simPartition) commit() {
	if s.crash {
		return
	}
	for _, o := range s.dlqQueue {
		s.dlqSent[o]++
	}
	s.dlqQueue = nil
	// A catalog that fails leaves the files pending; the Kafka commit goes
	// on (pending files hold it back).
	if s.table != nil && len(s.pendingNames) > 0 && s.r.Float64() >= 0.1 {
		if s.r.Float64() < 0.05 {
			s.crash = true // between upload and table commit
			return
		}
		c, m := s.led.PublishPoint()
		for _, name := range s.pendingNames {
			if _, dup := s.table.files[name]; dup {
				s.t.Fatalf("file %s added to the table twice", name)
			}
			s.table.files[name] = s.lake[name]
		}
		s.table.c, s.table.m = c, m
		s.led.Published(len(s.pendingNames))
		s.pendingNames = s.pendingNames[:0]
		if s.r.Float64() < 0.05 {
			s.crash = true // between table commit and Kafka commit
			return
		}
	}
	c, m := s.led.CommitPoint()
	// The invariant: every record below the commit is durable or dead-lettered.
	durable := map[int64]bool{}
	durableFiles := s.lake
	if s.table != nil {
		durableFiles = s.table.files
	}
	for _, f := range durableFiles {
		for _, o := range f.offsets {
			durable[o] = true
		}
	}
	for o := int64(0); o < c; o++ {
		if !durable[o] && s.dlqSent[o] == 0 {
			s.t.Fatalf("commit at %d passes record %d (hour %d), which is neither durable nor dead-lettered", c, o, s.hours[o])
		}
	}
	// The watermarks: every record read of an hour the safe watermark
	// closes (end + lateness at or below it), and every record below IN of
	// an hour an idle claim closes, is durable or dead-lettered — what
	// the finalizer relies on when it completes the hour. Open and
	// unpublished files hold both down.
	for o := int64(0); o < s.led.Next(); o++ {
		end := s.hours[o] + ledger.HourMs + s.lateness
		if !s.bad[o] && !durable[o] && (end <= m.WM || (o < m.IN && end <= m.IW)) {
			s.t.Fatalf("watermark %d (idle claim %d below %d) closes hour %d, but its record %d is not durable", m.WM, m.IW, m.IN, s.hours[o], o)
		}
	}
	// Metadata survives the trip through Kafka.
	m2, ok, err := ledger.Parse(m.Encode())
	if err != nil || !ok {
		s.t.Fatalf("metadata round trip: %v", err)
	}
	if len(m.Encode()) > 4096 {
		s.t.Fatalf("commit metadata is %d bytes, over Kafka's 4 KiB", len(m.Encode()))
	}
	s.commitC, s.commitM = c, m2
	s.led.Committed(c)
	if s.committed != nil {
		for _, name := range s.uploaded {
			s.committed[name] = s.lake[name]
		}
	}
	s.uploaded = s.uploaded[:0]
}

// run processes the partition from the ledger's position to the end,
// possibly crashing; it reports whether it reached the end.
func (s *simPartition) run(crashProb float64) bool {
	for o := s.led.Next(); o < int64(len(s.hours)); o++ {
		h := s.hours[o]
		switch {
		case s.bad[o]:
			s.dlqQueue = append(s.dlqQueue, o)
			s.led.Skipped(o, 1)
		case s.led.DurableAlready(h, o):
			s.led.Skipped(o, 1)
		default:
			k := simKey{h, s.fams[o]}
			if s.open[k] == nil {
				s.open[k] = &simFile{hour: h}
				s.openFst[k] = o
				s.led.Opened(h, o)
			}
			s.open[k].offsets = append(s.open[k].offsets, o)
			old := s.led.RawWM()
			ev := h + int64(s.r.IntN(int(ledger.HourMs)))
			if s.events != nil {
				ev = s.events[o]
			}
			s.led.Read(o, ev, 1)
			if s.led.RawWM() > old {
				for fk := range s.open {
					if end := fk.hour + ledger.HourMs + s.lateness; end > old && end <= s.led.RawWM() {
						s.close(fk.hour)
					}
				}
			}
		}
		// Random closes stand for size caps and idle flushes; they are
		// not deterministic across a replay, which is the hard case.
		if s.r.Float64() < 0.01 && len(s.open) > 0 {
			for k := range s.open {
				s.close(k.hour)
				break
			}
		}
		if s.r.Float64() < 0.005 {
			// The partition is caught up and quiet: its owner attests
			// a watermark ahead of what it read (the wall clock's).
			s.led.Idle(s.led.RawWM()+int64(s.r.IntN(4))*ledger.HourMs, 1)
		}
		if s.r.Float64() < 0.02 {
			for k := range s.open {
				if s.led.IsClosed(k.hour) {
					s.close(k.hour)
				}
			}
			if s.led.TooManyDone() {
				for k := range s.open {
					s.close(k.hour)
				}
			}
			s.commit()
		}
		if s.crash || s.r.Float64() < crashProb {
			return false // kill -9: open files and queued dead letters are lost
		}
	}
	for k := range s.open {
		s.close(k.hour)
	}
	s.commit()
	for !s.crash && s.table != nil && len(s.pendingNames) > 0 {
		s.commit() // the catalog failed: try again
	}
	return !s.crash
}

// runToEnd runs the partition from the start, restarting after every
// crash, until it reaches the end; it returns the number of crashes.
func (s *simPartition) runToEnd() int {
	s.restart()
	crashes := 0
	for !s.run(0.003) {
		crashes++
		s.restart()
	}
	return crashes
}

// checkSeen checks what the manifests hold (seen: offset -> times): every
// good record once, no bad record, every bad one dead-lettered. It returns
// the first offset that breaks it.
func (s *simPartition) checkSeen(seen map[int64]int) (int64, error) {
	for o := range int64(len(s.hours)) {
		switch {
		case s.bad[o] && seen[o] != 0:
			return o, fmt.Errorf("bad record in the lake")
		case s.bad[o] && s.dlqSent[o] == 0:
			return o, fmt.Errorf("bad record never dead-lettered")
		case !s.bad[o] && seen[o] != 1:
			return o, fmt.Errorf("in the lake %d times", seen[o])
		}
	}
	return 0, nil
}

// TestCommitProtocol runs partitions with interleaved hours through random
// crashes and checks that (1) a commit never passes a record that is not
// durable (checked at every commit), and (2) after the orphan rule the lake
// holds every good record exactly once.
func TestCommitProtocol(t *testing.T) { testCommitProtocol(t, false) }

// TestCommitProtocolTable is TestCommitProtocol for a stream with a table:
// files are durable once a table commit references them, the table commit
// records the partition's progress, and a worker resumes from the Kafka
// commit and the table's progress together (Resume). Crashes also strike
// between upload and table commit and between table commit and Kafka
// commit. On top of the lake check, no file is added to the table twice,
// no referenced file is overwritten with other content, and the table
// references every good record exactly once.
func TestCommitProtocolTable(t *testing.T) { testCommitProtocol(t, true) }

func testCommitProtocol(t *testing.T, withTable bool) {
	for seed := uint64(1); seed <= 200; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			n := 500 + r.IntN(3000)
			// Seeds 1-100: one family (files of an hour never overlap);
			// 101-200: two or three interleaved writer schema families, one
			// file each per hour, the hour's files finishing together.
			fams := 1
			if seed > 100 {
				fams = 2 + r.IntN(2)
			}
			s := &simPartition{t: t, r: r, bad: map[int64]bool{}, lake: map[string]simFile{}, dlqSent: map[int64]int{},
				commitC: 0, commitM: ledger.Meta{WM: math.MinInt64, RW: math.MinInt64}, lateness: int64(r.IntN(3)) * 10 * 60 * 1000}
			if withTable {
				s.table = &simTable{files: map[string]simFile{}, c: -1}
			}
			// Hours advance slowly; records of the previous and next hour
			// interleave (late and early events).
			base := int64(1_700_000_000_000) / ledger.HourMs * ledger.HourMs
			for i := 0; i < n; i++ {
				h := base + int64(i/(100+r.IntN(400)))*ledger.HourMs
				switch r.IntN(10) {
				case 0:
					h -= ledger.HourMs
				case 1:
					h += ledger.HourMs
				}
				s.hours = append(s.hours, h)
				s.fams = append(s.fams, r.IntN(fams))
				if r.IntN(100) == 0 {
					s.bad[int64(i)] = true
				}
			}
			crashes := s.runToEnd()

			// The finalizer's view: files per hour, orphans removed.
			byHour := map[int64][]completion.ManifestFile{}
			content := map[string]simFile{}
			for name, f := range s.lake {
				mf := completion.ManifestFile{Path: name, Topic: "t", Partition: 0, FirstOffset: f.offsets[0], LastOffset: f.offsets[len(f.offsets)-1], Group: f.group}
				byHour[f.hour] = append(byHour[f.hour], mf)
				content[name] = f
			}
			seen := map[int64]int{}
			for h, files := range byHour {
				kept, _, unproven := completion.SplitOrphans(files)
				for _, u := range unproven {
					t.Fatalf("hour %d: file %s (offsets %d-%d) neither kept nor proven superseded after %d crashes", h, u.Path, u.FirstOffset, u.LastOffset, crashes)
				}
				for _, k := range kept {
					for _, o := range content[k.Path].offsets {
						if s.hours[o] != h {
							t.Fatalf("record %d of hour %d in a file of hour %d", o, s.hours[o], h)
						}
						seen[o]++
					}
				}
			}
			if o, err := s.checkSeen(seen); err != nil {
				t.Fatalf("record %d (hour %d): %v after %d crashes", o, s.hours[o], err, crashes)
			}
			if s.table == nil {
				return
			}
			inTable := map[int64]int{}
			for name, f := range s.table.files {
				if !slices.Equal(s.lake[name].offsets, f.offsets) {
					t.Fatalf("file %s in the table holds %v, the lake now %v", name, f.offsets, s.lake[name].offsets)
				}
				for _, o := range f.offsets {
					inTable[o]++
				}
			}
			for o := int64(0); o < int64(n); o++ {
				if !s.bad[o] && inTable[o] != 1 {
					t.Fatalf("record %d (hour %d) in the table %d times after %d crashes", o, s.hours[o], inTable[o], crashes)
				}
			}
		})
	}
}

// TestIdle: an idle claim is carried apart from the safe watermark, at
// least the claimed threshold and never past the close of an hour with an
// open file; the next record read ends it; it survives a restart with the
// committed metadata.
func TestIdle(t *testing.T) {
	const lat = 10 * 60 * 1000
	h := 10 * ledger.HourMs
	l := ledger.New(-1, ledger.Empty(), lat)
	l.Opened(h, 0)
	l.Read(0, h+5000, 1)
	l.Idle(h+lat, 7) // the previous hour's threshold
	if _, m := l.CommitPoint(); m.WM != h+5000 || m.IW != h+lat || m.IN != 1 {
		t.Fatalf("idle with an open file: wm %d iw %d in %d, want %d %d 1", m.WM, m.IW, m.IN, h+5000, h+lat)
	}
	l.Idle(h+3*ledger.HourMs, 8) // far ahead: held below the open hour's close
	if _, m := l.CommitPoint(); m.IW != h+ledger.HourMs+lat-1 || m.WM != h+5000 {
		t.Fatalf("idle past the open hour: iw %d wm %d, want %d %d", m.IW, m.WM, h+ledger.HourMs+lat-1, h+5000)
	}
	l.MadeDurable(h, 0)
	c, m := l.CommitPoint()
	if c != 1 || m.IW != h+3*ledger.HourMs || m.WM != h+5000 {
		t.Fatalf("after the file: commit %d iw %d wm %d, want 1 %d %d", c, m.IW, m.WM, h+3*ledger.HourMs, h+5000)
	}
	if m.IA != 8 {
		t.Fatalf("claim renewed at %d, want 8", m.IA)
	}
	r := ledger.New(c, m, lat)
	if _, m2 := r.CommitPoint(); m2.IW != m.IW || m2.IN != m.IN || m2.IA != m.IA {
		t.Fatalf("resumed: iw %d in %d ia %d, want %d %d %d", m2.IW, m2.IN, m2.IA, m.IW, m.IN, m.IA)
	}
	l.Read(1, h+6000, 2) // a record: the claim ends
	if _, m := l.CommitPoint(); m.IW != 0 || m.IN != 0 || m.IA != 0 {
		t.Fatalf("after a record: iw %d in %d ia %d, want no claim", m.IW, m.IN, m.IA)
	}
}
