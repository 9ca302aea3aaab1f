// Package ledger is the commit protocol's pure core: the format of the
// metadata a partition stores with its Kafka offset commit (Meta), and the
// per-partition bookkeeping (Ledger) that decides which offset may be
// committed and what a resuming worker skips.
//
// No I/O and no clock: the worker feeds it records, file opens and uploads
// with wall-clock times it read itself, so the protocol can be tested (and
// fuzzed) on its own. docs/design.md ("Commit protocol") walks through an
// example with two interleaved hours.
package ledger

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
)

// HourMs is an hour in milliseconds: hours are keyed by their start, unix ms.
const HourMs = int64(3600 * 1000)

// Version is the version of the commit metadata format.
const Version = 1

// maxDoneMarks bounds the done list so the commit metadata stays far below
// Kafka's 4 KiB offset metadata limit. When it is reached the worker closes
// every open file (TooManyDone), which lets the commit point catch up and
// empties the list.
const maxDoneMarks = 64

// maxAmends bounds the amend list in the commit metadata (Kafka's 4 KiB).
// Beyond it the oldest hours' entries are dropped, and those hours may miss a
// revision; with one entry per hour that takes late data for more than 16
// distinct closed hours within one check interval.
const maxAmends = 16

// DoneMark says: every record of Hour with an offset below To that this
// partition has read is already durable in the lake. A worker that replays
// from the committed offset skips those records instead of writing them a
// second time.
type DoneMark struct {
	Hour int64 `json:"h"` // hour start, unix ms
	To   int64 `json:"to"`
}

// Amend is a late file that the hour's marker must list: the file of this
// partition for Hour whose first offset is First. One entry per hour; a
// later file of the same hour replaces the entry (a revision listing the
// later file, built from a folder listing, lists the earlier ones too).
// docs/design.md ("Late data and revisions") has the protocol.
type Amend struct {
	Hour  int64 `json:"h"` // unix ms
	First int64 `json:"o"`
}

// Meta is what a partition stores in its Kafka offset-commit metadata. Field
// names are short: Kafka limits metadata to 4 KiB.
type Meta struct {
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
	// IW is the watermark an idle partition attests (Ledger.Idle), unix
	// ms, valid only while the partition has no record at or above IN,
	// the offset after the last record it had read then: every record of
	// an hour that ends (plus allowed lateness) at or before IW, of those
	// below IN, is durable, and the partition was caught up and quiet.
	// Both are absent without a claim.
	IW int64 `json:"iw,omitempty"`
	IN int64 `json:"in,omitempty"`
	// IA is when the owner last renewed the claim (wall clock, unix ms,
	// in steps of half markers.idle_partition_timeout): a quiet partition
	// keeping a file of the open hour holds its committed offset for the
	// rest of the hour, and the renewals are what tells other instances
	// its owner is alive (sink/unconsumed).
	IA int64 `json:"ia,omitempty"`
	// NX is the offset after the last record the owner had read when it
	// committed: a worker resuming at the committed offset reads the
	// records below NX a second time (lakesink_records_replayed_total).
	NX int64 `json:"nx,omitempty"`
	// Done lists hours made durable past the committed offset.
	Done []DoneMark `json:"d,omitempty"`
	// AM lists late files of hours whose marker was already out, until the
	// marker lists them.
	AM []Amend `json:"am,omitempty"`
}

// Empty is the state of a partition with no commit: no watermark yet.
func Empty() Meta { return Meta{WM: math.MinInt64, RW: math.MinInt64} }

// Encode renders m as the commit metadata string.
func (m Meta) Encode() string {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // plain data, cannot fail
	}
	return string(b)
}

// Parse decodes commit metadata. Empty metadata (no commit yet) gives Empty()
// with ok false; metadata that is not ours (another tool committed) gives
// Empty() and an error naming the problem.
func Parse(s string) (m Meta, ok bool, err error) {
	if s == "" {
		return Empty(), false, nil
	}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return Empty(), false, fmt.Errorf("parse commit metadata %q: %w", s, err)
	}
	if m.V != Version {
		return Empty(), false, fmt.Errorf("commit metadata version %d, want %d", m.V, Version)
	}
	return m, true, nil
}

// Ledger is one partition's bookkeeping of which records are durable. Not
// safe for concurrent use: it belongs to the partition's worker.
//
// The invariant it maintains: CommitPoint returns an offset C such that every
// record below C is durable (in a file that is in the lake) or was sent to the
// dead-letter topic, and metadata from which a worker resuming at C rebuilds
// exactly the files that are not yet durable, under the same names.
type Ledger struct {
	next     int64           // offset after the last record read; -1 before the first
	open     map[int64]int64 // hour (unix ms) -> first offset of its file still being written or uploaded
	done     []DoneMark
	rawWM    int64 // max event time read, unix ms
	fh       int64
	la       int64
	idleWM   int64   // watermark an idle partition attests (Idle), unix ms; 0: no claim
	idleNext int64   // next when the claim was made
	idleAt   int64   // when the claim was last renewed (Meta.IA)
	readTo   int64   // Meta.NX of the commit resumed from: records below it were read before
	lateness int64   // allowed lateness, ms
	am       []Amend // late files the hour markers do not list yet
	checked  map[Amend]int64
	// pending are files in the lake that a table stream has not yet
	// committed to its table: not durable yet (Uploaded, Published).
	pending []pendingFile
}

// pendingFile is an uploaded file waiting for its table commit.
type pendingFile struct{ hour, first, last int64 }

// New returns the ledger of a partition resuming at the committed offset
// start (-1: none) with its commit metadata, for a stream whose allowed
// lateness is latenessMs.
func New(start int64, meta Meta, latenessMs int64) *Ledger {
	l := &Ledger{
		next:     start,
		open:     map[int64]int64{},
		rawWM:    meta.RW,
		fh:       meta.FH,
		la:       meta.LA,
		idleWM:   meta.IW,
		idleNext: meta.IN,
		idleAt:   meta.IA,
		readTo:   meta.NX,
		lateness: latenessMs,
		am:       slices.Clone(meta.AM),
		checked:  map[Amend]int64{},
	}
	if start < 0 {
		l.next = -1
	}
	for _, d := range meta.Done {
		if d.To > start {
			l.done = append(l.done, d)
		}
	}
	return l
}

// Next is the offset after the last record read (-1 before the first).
func (l *Ledger) Next() int64 { return l.next }

// ReadBefore reports whether the record at offset was read before, by the
// owner whose commit this ledger resumed from (Meta.NX): a replayed read.
func (l *Ledger) ReadBefore(offset int64) bool { return offset < l.readTo }

// RawWM is the largest event time read, unix ms.
func (l *Ledger) RawWM() int64 { return l.rawWM }

// LastRead is the wall-clock time of the last record read, unix ms (0: none).
func (l *Ledger) LastRead() int64 { return l.la }

// Seen notes the offset of a record about to be handled, so that a partition
// that had no commit commits from its first record, not from 0.
func (l *Ledger) Seen(offset int64) {
	if l.next < 0 {
		l.next = offset
	}
}

// DurableAlready reports whether the record at offset, of hour, is already
// in a durable file (a replay after a crash); such a record is skipped.
func (l *Ledger) DurableAlready(hour, offset int64) bool {
	for _, d := range l.done {
		if d.Hour == hour && offset < d.To {
			return true
		}
	}
	return false
}

// Read notes that the record at offset (event time ms) was consumed, at
// wall-clock time nowMs.
func (l *Ledger) Read(offset, eventMs, nowMs int64) {
	l.next = offset + 1
	if eventMs > l.rawWM {
		l.rawWM = eventMs
	}
	l.la = nowMs
	l.idleWM, l.idleNext, l.idleAt = 0, 0, 0
}

// Idle notes that the partition is idle: its owner has read everything
// up to the high watermark and nothing arrived for
// markers.idle_partition_timeout. The partition then counts as caught up
// to the wall clock — the completion rule's idle clause — even while it
// holds open files (which keep their records above the committed offset,
// so the rule cannot see it caught up from the offsets alone).
//
// wmMs is the watermark the owner attests: a bucket threshold (start + 1h
// + allowed lateness) the wall clock has passed, not the wall clock
// itself, so that the commit metadata of a quiet partition changes once
// per bucket instead of at every commit (the caller computes it in the
// stream's zone). CommitPoint's metadata carries the claim apart from
// the safe watermark (Meta.IW, Meta.IN): at least wmMs, and below the
// close of every hour with an open or unpublished file, so it claims
// nothing about the records of those hours, which a replay from the
// committed offset writes again under the same names. The claim holds
// only as long as no record arrives after it: the completion rule uses
// it while the partition's high watermark is at most Meta.IN, and the
// next record read ends it here (Read, Skipped). It survives a restart
// with the committed metadata (New). atMs is the renewal time the
// metadata carries (Meta.IA); the caller steps it so that the metadata
// changes only that often.
func (l *Ledger) Idle(wmMs, atMs int64) {
	if l.next < 0 {
		return // nothing read: nothing committed to carry a claim
	}
	l.idleWM, l.idleNext, l.idleAt = max(l.idleWM, wmMs), l.next, atMs
}

// Skipped notes a record that needs no file (dead-lettered or already durable).
func (l *Ledger) Skipped(offset, nowMs int64) {
	l.next = offset + 1
	l.la = nowMs
	l.idleWM, l.idleNext, l.idleAt = 0, 0, 0
}

// Opened notes that a file for hour starting at firstOffset is being written.
//
// An hour may have several files open at once (the writer schema families
// of a registry stream, docs/formats.md): the hour holds the commit point
// at the smallest first offset of its open files. MadeDurable, Uploaded and
// Abandoned then speak for all of them — the hour's files finish (or are
// thrown away) together, in one step with no CommitPoint in between — so
// that the hour's done mark, To above the last offset of every one, never
// covers a record of a file that is not durable.
func (l *Ledger) Opened(hour, firstOffset int64) {
	if first, ok := l.open[hour]; !ok || firstOffset < first {
		l.open[hour] = firstOffset
	}
	if l.fh == 0 || hour < l.fh {
		l.fh = hour
	}
}

// IsClosed reports whether hour is closed for this partition: the watermark
// has passed its end plus the allowed lateness.
func (l *Ledger) IsClosed(hour int64) bool {
	return l.rawWM >= hour+HourMs+l.lateness
}

// MadeDurable notes that the file of hour holding records up to lastOffset is
// in the lake. With several files of hour open (Opened), the caller makes
// every one durable before it asks for a CommitPoint: the hour's open entry
// is gone after the first, and its done mark covers all of their offsets.
func (l *Ledger) MadeDurable(hour, lastOffset int64) {
	delete(l.open, hour)
	l.markDone(hour, lastOffset)
}

func (l *Ledger) markDone(hour, lastOffset int64) {
	to := lastOffset + 1
	merged := false
	for i := range l.done {
		if l.done[i].Hour == hour {
			l.done[i].To = max(l.done[i].To, to)
			merged = true
		}
	}
	if !merged {
		l.done = append(l.done, DoneMark{Hour: hour, To: to})
	}
}

// Uploaded notes that the file of hour holding records first..last is in
// the lake but, the stream having a table, not durable until the table
// references it (Published). Until then it holds the commit point at first,
// like an open file, and the safe watermark below the hour's close. As for
// MadeDurable, several files of one hour are uploaded in one step; they are
// then published together too (Published takes every file uploaded before
// the table commit was first tried).
func (l *Ledger) Uploaded(hour, first, last int64) {
	delete(l.open, hour)
	l.pending = append(l.pending, pendingFile{hour, first, last})
}

// Published notes that the table now references the first n files passed
// to Uploaded and not yet published (uploads are published in order): they
// are durable.
func (l *Ledger) Published(n int) {
	n = min(n, len(l.pending))
	for _, p := range l.pending[:n] {
		l.markDone(p.hour, p.last)
	}
	l.pending = append(l.pending[:0], l.pending[n:]...)
}

// Abandoned notes that the open files of hour were thrown away
// (revocation); their records will be read again by whoever owns the
// partition next.
func (l *Ledger) Abandoned(hour int64) { delete(l.open, hour) }

// CommitPoint returns the offset to commit and its metadata. Files waiting
// for their table commit (Uploaded) count as not durable.
func (l *Ledger) CommitPoint() (int64, Meta) { return l.point(false) }

// PublishPoint is CommitPoint as it will be once the pending files are
// published: what a table commit of those files records as the partition's
// progress, so that a worker resuming from the table skips them.
func (l *Ledger) PublishPoint() (int64, Meta) { return l.point(true) }

func (l *Ledger) point(published bool) (int64, Meta) {
	c := l.next
	capWM := int64(math.MaxInt64)
	hold := func(h, first int64) {
		c = min(c, first)
		// An open file holds the watermarks below its hour's close: the
		// safe one (an hour the watermark already closed gets late data)
		// and an idle claim.
		capWM = min(capWM, h+HourMs+l.lateness-1)
	}
	for h, first := range l.open {
		hold(h, first)
	}
	done := l.done
	if published {
		done = slices.Clone(l.done)
		for _, p := range l.pending {
			done = mergeDone(done, DoneMark{Hour: p.hour, To: p.last + 1})
		}
	} else {
		for _, p := range l.pending {
			hold(p.hour, p.first)
		}
	}
	m := Meta{V: Version, WM: min(l.rawWM, capWM), RW: l.rawWM, FH: l.fh, LA: l.la, AM: slices.Clone(l.am), NX: max(l.next, l.readTo, 0)}
	if l.idleNext > 0 {
		m.IW, m.IN, m.IA = min(max(l.rawWM, l.idleWM), capWM), l.idleNext, l.idleAt
	}
	for _, d := range done {
		if d.To > c {
			m.Done = append(m.Done, d)
		}
	}
	slices.SortFunc(m.Done, func(a, b DoneMark) int { return cmp.Compare(a.Hour, b.Hour) })
	return c, m
}

// mergeDone adds d to done, keeping one mark per hour with the larger To.
func mergeDone(done []DoneMark, d DoneMark) []DoneMark {
	for i := range done {
		if done[i].Hour == d.Hour {
			done[i].To = max(done[i].To, d.To)
			return done
		}
	}
	return append(done, d)
}

// Resume combines the two records of a table stream's partition progress:
// the Kafka commit (kc, km) and the newest progress in the table (tc, tm).
// Each is true on its own — the table's is written by the table commit,
// before the Kafka commit that follows it — so the partition resumes at the
// larger offset, with the done marks of both (a table commit after the last
// Kafka commit made more files durable than the Kafka metadata knows), the
// amend entries of both, and, at equal offsets, the lower safe watermark.
// tc < 0 means the table has no progress for the partition.
func Resume(kc int64, km Meta, tc int64, tm Meta) (int64, Meta) {
	if tc < 0 {
		return kc, km
	}
	base, other, c := km, tm, kc
	if tc > kc {
		base, other, c = tm, km, tc
	}
	m := base
	m.Done = nil
	for _, d := range append(slices.Clone(base.Done), other.Done...) {
		if d.To > c {
			m.Done = mergeDone(m.Done, d)
		}
	}
	slices.SortFunc(m.Done, func(a, b DoneMark) int { return cmp.Compare(a.Hour, b.Hour) })
	if tc == kc {
		m.WM = min(km.WM, tm.WM)
		m.RW = max(km.RW, tm.RW)
		m.LA = max(km.LA, tm.LA)
	}
	if other.FH != 0 && (m.FH == 0 || other.FH < m.FH) {
		m.FH = other.FH
	}
	m.AM = slices.Clone(base.AM)
	for _, a := range other.AM {
		i := slices.IndexFunc(m.AM, func(b Amend) bool { return b.Hour == a.Hour })
		switch {
		case i < 0:
			m.AM = append(m.AM, a)
		case a.First > m.AM[i].First:
			m.AM[i] = a
		}
	}
	slices.SortFunc(m.AM, func(a, b Amend) int { return cmp.Compare(a.Hour, b.Hour) })
	return c, m
}

// Committed prunes state that the commit at offset c made unnecessary.
func (l *Ledger) Committed(c int64) {
	l.done = slices.DeleteFunc(l.done, func(d DoneMark) bool { return d.To <= c })
}

// TooManyDone reports whether the done list is at its bound.
func (l *Ledger) TooManyDone() bool { return len(l.done) >= maxDoneMarks }

// Amended notes a late file of hour starting at first.
func (l *Ledger) Amended(hour, first int64) {
	for i := range l.am {
		if l.am[i].Hour == hour {
			if first > l.am[i].First {
				l.am[i] = Amend{Hour: hour, First: first}
			}
			return
		}
	}
	l.am = append(l.am, Amend{Hour: hour, First: first})
	slices.SortFunc(l.am, func(a, b Amend) int { return cmp.Compare(a.Hour, b.Hour) })
	if len(l.am) > maxAmends {
		l.am = slices.Delete(l.am, 0, len(l.am)-maxAmends)
	}
}

// AmendDone drops the entry of hour if it is still for first.
func (l *Ledger) AmendDone(hour, first int64) {
	l.am = slices.DeleteFunc(l.am, func(a Amend) bool { return a.Hour == hour && a.First == first })
	delete(l.checked, Amend{Hour: hour, First: first})
}

// AmendsDue returns the amend entries not looked at for everyMs, and notes
// that they are being looked at now (nowMs, wall clock). The worker checks
// each against the hour's marker at most once per interval.
func (l *Ledger) AmendsDue(nowMs, everyMs int64) []Amend {
	var due []Amend
	for _, a := range l.am {
		if at, ok := l.checked[a]; ok && nowMs-at < everyMs {
			continue
		}
		l.checked[a] = nowMs
		due = append(due, a)
	}
	for a := range l.checked {
		if !slices.Contains(l.am, a) {
			delete(l.checked, a)
		}
	}
	return due
}
