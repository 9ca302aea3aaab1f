package ops

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Where the records are: the progress report of `lakesink demo`, of
// `run`'s once-a-minute log line and of /api/progress.

// OpenHour is an hour bucket of a stream whose records wait in open files.
type OpenHour struct {
	Stream  string    `json:"stream"`
	Hour    time.Time `json:"hour"`
	Records int64     `json:"records"`
	// Closes is the bucket's end plus allowed_lateness: its files are
	// finished when the partitions' watermarks pass it, or when the wall
	// clock does for a quiet partition.
	Closes time.Time `json:"closes"`
}

// NextMarker is the oldest hour of a stream without a marker and the
// earliest its marker can be written: its end plus allowed_lateness.
type NextMarker struct {
	Stream string    `json:"stream"`
	Hour   time.Time `json:"hour"`
	Due    time.Time `json:"due"`
}

// ProgressCounters are the process's counters a report starts from (the
// sink reads them from its metrics).
type ProgressCounters struct {
	Consumed, Durable, DeadLettered, Markers int64
	// OldestOpen is, per stream, the start of its oldest hour without a
	// marker (the finalizer's lakesink_oldest_open_hour_timestamp_seconds).
	OldestOpen map[string]time.Time
}

// ProgressReport says where the records this process read are: durable
// in the lake, waiting in open files (of which hours, until when), or
// dead-lettered; and the hour markers.
type ProgressReport struct {
	Time         time.Time   `json:"time"`
	Consumed     int64       `json:"consumed"`
	Durable      int64       `json:"in_lake"`
	Held         int64       `json:"in_open_files"`
	DeadLettered int64       `json:"dead_lettered"`
	Open         []OpenHour  `json:"open_hours"`
	Markers      int64       `json:"markers"`
	NextMarker   *NextMarker `json:"next_marker,omitempty"`
}

// Progress reports where the records are now: the counters (Options.Counters)
// and the open files the partitions this instance owns last reported.
// Safe for concurrent use.
func (ops *Ops) Progress() ProgressReport {
	now := ops.o.Now()
	r := ProgressReport{Time: now.UTC(), Open: []OpenHour{}}
	var c ProgressCounters
	if ops.o.Counters != nil {
		c = ops.o.Counters()
	}
	r.Consumed, r.Durable, r.DeadLettered, r.Markers = c.Consumed, c.Durable, c.DeadLettered, c.Markers
	late := map[string]time.Duration{}
	for _, s := range ops.o.Streams {
		late[s.Name] = s.Lateness
	}
	type key struct {
		stream string
		hour   int64
	}
	held := map[key]int64{}
	o := &ops.parts
	o.mu.Lock()
	for _, p := range o.parts {
		if p.gen != o.gen {
			continue
		}
		for h, n := range p.open {
			held[key{p.stream, h}] += n
		}
	}
	o.mu.Unlock()
	for k, n := range held {
		h := time.UnixMilli(k.hour).UTC()
		r.Open = append(r.Open, OpenHour{Stream: k.stream, Hour: h, Records: n, Closes: h.Add(time.Hour + late[k.stream])})
		r.Held += n
	}
	sort.Slice(r.Open, func(i, j int) bool {
		a, b := r.Open[i], r.Open[j]
		if !a.Hour.Equal(b.Hour) {
			return a.Hour.Before(b.Hour)
		}
		return a.Stream < b.Stream
	})
	for stream, h := range c.OldestOpen {
		if h.IsZero() {
			continue
		}
		due := h.Add(time.Hour + late[stream])
		if r.NextMarker == nil || due.Before(r.NextMarker.Due) {
			r.NextMarker = &NextMarker{Stream: stream, Hour: h.UTC(), Due: due.UTC()}
		}
	}
	return r
}

// OpenRecords returns the records in the open files of topic's partition
// as its worker last reported them (kept across a generation too): what
// giving the partition up costs (kafkaio.Sticky.Cost). Safe for
// concurrent use.
func (ops *Ops) OpenRecords(topic string, partition int) int64 {
	o := &ops.parts
	o.mu.Lock()
	defer o.mu.Unlock()
	var n int64
	if p := o.parts[topicPart{topic, partition}]; p != nil {
		for _, r := range p.open {
			n += r
		}
	}
	return n
}

// Line renders the report on one line, for a terminal or a log:
//
//	consumed 60190 · in the lake 48140 · in open files 11750 (clickstream 14:00Z until 15:01Z, …) · dead-lettered 301 · 12 markers, next: clickstream 13:00Z after 14:01Z
func (r ProgressReport) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "consumed %d · in the lake %d · in open files %d", r.Consumed, r.Durable, r.Held)
	if len(r.Open) > 0 {
		parts := make([]string, 0, len(r.Open))
		for _, o := range r.Open {
			parts = append(parts, fmt.Sprintf("%s %s until %s", o.Stream, hhmm(o.Hour), hhmm(o.Closes)))
		}
		if len(parts) > 4 {
			parts = append(parts[:4], fmt.Sprintf("%d more", len(parts)-4))
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, " · dead-lettered %d · %d markers", r.DeadLettered, r.Markers)
	if n := r.NextMarker; n != nil {
		fmt.Fprintf(&b, ", next: %s %s after %s", n.Stream, hhmm(n.Hour), hhmm(n.Due))
	}
	return b.String()
}

// hhmm is a time of day in UTC, as the report prints it.
func hhmm(t time.Time) string { return t.UTC().Format("15:04Z") }
