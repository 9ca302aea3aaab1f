package ledger

import (
	"slices"
	"testing"
)

// TestLedgerAmends checks the amend list: one entry per hour keeping the
// latest file, bounded, carried through the commit metadata, and dropped
// only for the file it names.
func TestLedgerAmends(t *testing.T) {
	l := New(0, Meta{V: Version}, 0)
	l.Amended(2*HourMs, 10)
	l.Amended(HourMs, 5)
	l.Amended(2*HourMs, 7) // older file of the same hour: entry keeps 10
	_, m := l.CommitPoint()
	want := []Amend{{Hour: HourMs, First: 5}, {Hour: 2 * HourMs, First: 10}}
	if !slices.Equal(m.AM, want) {
		t.Fatalf("commit metadata am = %v, want %v", m.AM, want)
	}
	back, _, err := Parse(m.Encode())
	if err != nil || !slices.Equal(back.AM, want) {
		t.Fatalf("round trip am = %v (%v), want %v", back.AM, err, want)
	}
	resumed := New(0, back, 0)
	resumed.AmendDone(2*HourMs, 7) // not the entry's file: kept
	resumed.AmendDone(HourMs, 5)
	if _, m := resumed.CommitPoint(); !slices.Equal(m.AM, []Amend{{Hour: 2 * HourMs, First: 10}}) {
		t.Fatalf("after amendDone am = %v", m.AM)
	}
	for h := int64(0); h < 3*maxAmends; h++ {
		resumed.Amended(h*HourMs, 1)
	}
	if _, m := resumed.CommitPoint(); len(m.AM) != maxAmends || m.AM[len(m.AM)-1].Hour != (3*maxAmends-1)*HourMs || len(m.Encode()) > 1500 {
		t.Fatalf("bounded am: %d entries, %d bytes of metadata", len(m.AM), len(m.Encode()))
	}
}
