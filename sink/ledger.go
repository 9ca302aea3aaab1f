package sink

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

// metaVersion is the version of the commit metadata format.
const metaVersion = 1

// maxDoneMarks bounds the done list so the commit metadata stays far below
// Kafka's 4 KiB offset metadata limit. When it is reached the worker closes
// every open file, which lets the commit point catch up and empties the list.
const maxDoneMarks = 64

// doneMark says: every record of Hour with an offset below To that this
// partition has read is already durable in the lake. A worker that replays
// from the committed offset skips those records instead of writing them a
// second time.
type doneMark struct {
	Hour int64 `json:"h"` // hour start, unix ms
	To   int64 `json:"to"`
}

// commitMeta is what a partition stores in its Kafka offset-commit metadata
// (see the package doc for the protocol). Field names are short: Kafka limits
// metadata to 4 KiB.
type commitMeta struct {
	V int `json:"v"`
	// WM is the safe event-time watermark, unix ms: every record of an hour
	// that ends (plus allowed lateness) at or before WM, and that this
	// partition has read below the committed offset or in done marks, is
	// durable. The finalizer builds on it.
	WM int64 `json:"wm"`
	// RW is the raw watermark (max event time read); a worker resuming from
	// this commit restores it so that replay closes files at the same records.
	RW int64 `json:"rw"`
	// FH is the earliest hour this partition ever wrote (sticky), unix ms;
	// 0 when it has written nothing yet. The finalizer starts there.
	FH int64 `json:"fh,omitempty"`
	// LA is the wall-clock time (unix ms) the partition last read a record.
	LA int64 `json:"la,omitempty"`
	// Done lists hours made durable past the committed offset.
	Done []doneMark `json:"d,omitempty"`
	// AM lists late files of hours whose marker was already out, until the
	// marker lists them (see amend in late.go).
	AM []amend `json:"am,omitempty"`
}

func (m commitMeta) encode() string {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // plain data, cannot fail
	}
	return string(b)
}

// parseCommitMeta decodes commit metadata. Empty metadata (no commit yet, or a
// commit by another tool) gives the zero state with ok false.
func parseCommitMeta(s string) (m commitMeta, ok bool, err error) {
	if s == "" {
		return commitMeta{WM: math.MinInt64, RW: math.MinInt64}, false, nil
	}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return commitMeta{WM: math.MinInt64, RW: math.MinInt64}, false, fmt.Errorf("parse commit metadata %q: %w", s, err)
	}
	if m.V != metaVersion {
		return commitMeta{WM: math.MinInt64, RW: math.MinInt64}, false, fmt.Errorf("commit metadata version %d, want %d", m.V, metaVersion)
	}
	return m, true, nil
}

// ledger is one partition's bookkeeping of which records are durable. It is
// pure (no I/O, no clock) so the commit protocol can be tested on its own.
//
// The invariant it maintains: commitPoint returns an offset C such that every
// record below C is durable (in a file that is in the lake) or was sent to the
// dead-letter topic, and metadata from which a worker resuming at C rebuilds
// exactly the files that are not yet durable, under the same names.
type ledger struct {
	next     int64           // offset after the last record read
	open     map[int64]int64 // hour (unix ms) -> first offset of its file still being written or uploaded
	done     []doneMark
	rawWM    int64 // max event time read, unix ms
	fh       int64
	la       int64
	lateness int64   // allowed lateness, ms
	am       []amend // late files the hour markers do not list yet
}

func newLedger(start int64, meta commitMeta, latenessMs int64) *ledger {
	l := &ledger{
		next:     start,
		open:     map[int64]int64{},
		rawWM:    meta.RW,
		fh:       meta.FH,
		la:       meta.LA,
		lateness: latenessMs,
		am:       append([]amend(nil), meta.AM...),
	}
	for _, d := range meta.Done {
		if d.To > start {
			l.done = append(l.done, d)
		}
	}
	return l
}

// durableAlready reports whether the record at offset, of hour, is already
// in a durable file (a replay after a crash); such a record is skipped.
func (l *ledger) durableAlready(hour, offset int64) bool {
	for _, d := range l.done {
		if d.Hour == hour && offset < d.To {
			return true
		}
	}
	return false
}

// read notes that the record at offset (event time ms, hour) was consumed,
// at wall-clock time nowMs.
func (l *ledger) read(offset, eventMs, nowMs int64) {
	l.next = offset + 1
	if eventMs > l.rawWM {
		l.rawWM = eventMs
	}
	l.la = nowMs
}

// skipped notes a record that needs no file (dead-lettered or already durable).
func (l *ledger) skipped(offset, nowMs int64) {
	l.next = offset + 1
	l.la = nowMs
}

// opened notes that a file for hour starting at firstOffset is being written.
func (l *ledger) opened(hour, firstOffset int64) {
	l.open[hour] = firstOffset
	if l.fh == 0 || hour < l.fh {
		l.fh = hour
	}
}

// isClosed reports whether hour is closed for this partition: the watermark
// has passed its end plus the allowed lateness.
func (l *ledger) isClosed(hour int64) bool {
	return l.rawWM >= hour+hourMs+l.lateness
}

// madeDurable notes that the file of hour holding records up to lastOffset is
// in the lake.
func (l *ledger) madeDurable(hour, lastOffset int64) {
	delete(l.open, hour)
	to := lastOffset + 1
	merged := false
	for i := range l.done {
		if l.done[i].Hour == hour {
			if to > l.done[i].To {
				l.done[i].To = to
			}
			merged = true
		}
	}
	if !merged {
		l.done = append(l.done, doneMark{Hour: hour, To: to})
	}
}

// abandoned notes that the open file of hour was thrown away (revocation);
// its records will be read again by whoever owns the partition next.
func (l *ledger) abandoned(hour int64) { delete(l.open, hour) }

// commitPoint returns the offset to commit and its metadata.
func (l *ledger) commitPoint() (int64, commitMeta) {
	c := l.next
	safe := l.rawWM
	for h, first := range l.open {
		if first < c {
			c = first
		}
		// An open file of an hour the watermark already closed (late data)
		// holds the safe watermark below that hour's close.
		if bound := h + hourMs + l.lateness - 1; bound < safe {
			safe = bound
		}
	}
	m := commitMeta{V: metaVersion, WM: safe, RW: l.rawWM, FH: l.fh, LA: l.la, AM: append([]amend(nil), l.am...)}
	for _, d := range l.done {
		if d.To > c {
			m.Done = append(m.Done, d)
		}
	}
	sort.Slice(m.Done, func(i, j int) bool { return m.Done[i].Hour < m.Done[j].Hour })
	return c, m
}

// committed prunes state that the commit at offset c made unnecessary.
func (l *ledger) committed(c int64) {
	kept := l.done[:0]
	for _, d := range l.done {
		if d.To > c {
			kept = append(kept, d)
		}
	}
	l.done = kept
}

// tooManyDone reports whether the done list is at its bound.
func (l *ledger) tooManyDone() bool { return len(l.done) >= maxDoneMarks }

const hourMs = int64(3600 * 1000)
