package sink

import (
	"slices"
	"testing"
)

// TestLedgerAmends checks the amend list: one entry per hour keeping the
// latest file, bounded, carried through the commit metadata, and dropped
// only for the file it names.
func TestLedgerAmends(t *testing.T) {
	l := newLedger(0, commitMeta{V: metaVersion}, 0)
	l.amended(2*hourMs, 10)
	l.amended(hourMs, 5)
	l.amended(2*hourMs, 7) // older file of the same hour: entry keeps 10
	_, m := l.commitPoint()
	want := []amend{{Hour: hourMs, First: 5}, {Hour: 2 * hourMs, First: 10}}
	if !slices.Equal(m.AM, want) {
		t.Fatalf("commit metadata am = %v, want %v", m.AM, want)
	}
	back, _, err := parseCommitMeta(m.encode())
	if err != nil || !slices.Equal(back.AM, want) {
		t.Fatalf("round trip am = %v (%v), want %v", back.AM, err, want)
	}
	resumed := newLedger(0, back, 0)
	resumed.amendDone(2*hourMs, 7) // not the entry's file: kept
	resumed.amendDone(hourMs, 5)
	if _, m := resumed.commitPoint(); !slices.Equal(m.AM, []amend{{Hour: 2 * hourMs, First: 10}}) {
		t.Fatalf("after amendDone am = %v", m.AM)
	}
	for h := int64(0); h < 3*maxAmends; h++ {
		resumed.amended(h*hourMs, 1)
	}
	if _, m := resumed.commitPoint(); len(m.AM) != maxAmends || m.AM[len(m.AM)-1].Hour != (3*maxAmends-1)*hourMs || len(m.encode()) > 1500 {
		t.Fatalf("bounded am: %d entries, %d bytes of metadata", len(m.AM), len(m.encode()))
	}
}
