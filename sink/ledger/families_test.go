package ledger_test

import (
	"slices"
	"testing"

	"github.com/lakesink/lakesink/sink/ledger"
)

// TestTwoFilesPerHour: an hour with two files open at once (the writer
// schema families of a registry stream) holds the commit point at the
// smaller first offset, whatever order they opened in; once both are
// durable (in one step) the hour's done mark covers both, and a worker
// resuming from that commit skips every record of either file and nothing
// after them.
func TestTwoFilesPerHour(t *testing.T) {
	const h = int64(1_700_000_000_000) / ledger.HourMs * ledger.HourMs
	const g = h - ledger.HourMs // another hour, holding the commit below h's files
	ev := func(hour int64) int64 { return hour + 1000 }
	for _, table := range []bool{false, true} {
		l := ledger.New(-1, ledger.Empty(), 0)
		l.Seen(99)
		l.Opened(g, 99)
		l.Read(99, ev(g), 1)
		// Family A's file opens at 100, family B's at 101; they interleave.
		l.Opened(h, 100)
		l.Read(100, ev(h), 1)
		l.Opened(h, 101)
		for o := int64(101); o <= 104; o++ {
			l.Read(o, ev(h), 1)
		}
		if c, _ := l.CommitPoint(); c != 99 {
			t.Fatalf("table %v: commit point %d with hour g open at 99, want 99", table, c)
		}
		// g's file finishes: h's two files hold the commit at the smaller first offset.
		l.MadeDurable(g, 99)
		if c, _ := l.CommitPoint(); c != 100 {
			t.Fatalf("table %v: commit point %d with files of one hour open at 100 and 101, want 100", table, c)
		}
		// A later, larger Opened does not move the hold either.
		l.Opened(h, 103)
		if c, _ := l.CommitPoint(); c != 100 {
			t.Fatalf("table %v: commit point %d after a third file opened at 103, want 100", table, c)
		}
		// A late record of g opens a file that holds the commit below h's
		// next records, so that h's done mark shows in the metadata.
		l.Opened(g, 105)
		l.Read(105, ev(g), 1)
		for o := int64(106); o <= 110; o++ {
			l.Read(o, ev(h), 1)
		}
		// The files of h finish together: A's last record is 110, B's 109.
		if table {
			l.Uploaded(h, 100, 110)
			l.Uploaded(h, 101, 109)
			if c, _ := l.CommitPoint(); c != 100 {
				t.Fatalf("commit point %d with both files uploaded but not in the table, want 100", c)
			}
			if c, m := l.PublishPoint(); c != 105 || !slices.Equal(m.Done, []ledger.DoneMark{{Hour: h, To: 111}}) {
				t.Fatalf("publish point %d %+v, want 105 with done mark {h 111}", c, m.Done)
			}
			// The table commit adds both uploads: the worker counts the
			// files it uploaded before the commit, as sink/worker does.
			l.Published(2)
		} else {
			l.MadeDurable(h, 110)
			l.MadeDurable(h, 109)
		}
		c, m := l.CommitPoint()
		if c != 105 || !slices.Equal(m.Done, []ledger.DoneMark{{Hour: h, To: 111}}) {
			t.Fatalf("table %v: commit point %d, done %+v; want 105 and {h 111}", table, c, m.Done)
		}
		// A worker resuming there skips h's records of both files, and
		// nothing else.
		r := ledger.New(c, m, 0)
		for o := int64(106); o <= 110; o++ {
			if !r.DurableAlready(h, o) {
				t.Errorf("table %v: resumed worker would write record %d of hour h again", table, o)
			}
		}
		if r.DurableAlready(h, 111) || r.DurableAlready(g, 105) {
			t.Errorf("table %v: resumed worker would skip a record that is not durable", table)
		}
	}

	// Abandoned throws away every open file of the hour: nothing holds the
	// commit point any more (the records are read again by the next owner,
	// which resumes from the last commit, not from this ledger).
	l := ledger.New(-1, ledger.Empty(), 0)
	l.Seen(0)
	l.Opened(h, 0)
	l.Read(0, ev(h), 1)
	l.Opened(h, 1)
	l.Read(1, ev(h), 1)
	l.Abandoned(h)
	if c, _ := l.CommitPoint(); c != 2 {
		t.Fatalf("commit point %d after the hour's files were abandoned, want 2", c)
	}
}
