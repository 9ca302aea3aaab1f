package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/writers"
)

// Hour states on the status page.
const (
	HourComplete = "complete" // marker written, revision 1
	HourAmended  = "amended"  // marker rewritten for late data (revision > 1)
	HourOpen     = "open"     // data files but no marker yet
	HourEmpty    = "empty"    // no data files and no marker
)

// HourStatus is one cell of a stream's hour grid.
type HourStatus struct {
	Hour        time.Time  `json:"hour"`
	State       string     `json:"state"`
	Records     int64      `json:"records"` // from the manifest; 0 for open hours
	Files       int        `json:"files"`
	Bytes       int64      `json:"bytes"`
	Revision    int        `json:"revision,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	Error       string     `json:"error,omitempty"`
}

// StreamStatus is a stream's recent hours, oldest first.
type StreamStatus struct {
	Name   string       `json:"name"`
	Topics []string     `json:"topics"`
	Hours  []HourStatus `json:"hours"`
}

// PartitionStatus is a partition owned by this instance.
type PartitionStatus struct {
	Stream          string     `json:"stream"`
	Topic           string     `json:"topic"`
	Partition       int        `json:"partition"`
	CommittedOffset int64      `json:"committed_offset"`
	HighWatermark   int64      `json:"high_watermark"`
	Lag             int64      `json:"lag"`
	LagSeconds      float64    `json:"lag_seconds"`
	Watermark       *time.Time `json:"watermark,omitempty"`
	LastAdvance     time.Time  `json:"last_commit_advance"`
}

// RebalanceStatus is what rebalances and restarts cost this instance since
// it started (docs/design.md, Rebalances): group generations joined,
// records read a second time, open files kept across a generation and
// open files abandoned.
type RebalanceStatus struct {
	Generations     int64 `json:"generations"`
	RecordsReplayed int64 `json:"records_replayed"`
	FilesKept       int64 `json:"files_kept"`
	FilesAbandoned  int64 `json:"files_abandoned"`
}

// Status is the status page's data, also served as JSON by /api/status.
type Status struct {
	Time         time.Time         `json:"time"`
	Ready        bool              `json:"ready"`
	Reasons      []string          `json:"reasons,omitempty"`
	Streams      []StreamStatus    `json:"streams"`
	Partitions   []PartitionStatus `json:"partitions"`
	Rebalances   *RebalanceStatus  `json:"rebalances,omitempty"`
	RecentErrors []LogEntry        `json:"recent_errors"`
}

// hourCache keeps recently read hour cells, by marker key.
type hourCache struct {
	mu    sync.Mutex
	cells map[string]hourCell
}

type hourCell struct {
	at time.Time
	h  HourStatus
}

// hourCacheTTL bounds how stale a cell of the hour grid may be; it keeps a
// page refresh from reading every marker again.
const hourCacheTTL = 15 * time.Second

// Status gathers the sink's state: readiness, the last hours of every
// stream (read from the lake: the hour's _SUCCESS manifest, else a listing
// of its folder), the partitions this instance owns and the recent warnings
// and errors. hours is the number of hours per stream, the current one
// included. Safe for concurrent use; it reads storage, so it can take as
// long as a few storage calls.
func (ops *Ops) Status(ctx context.Context, hours int) Status {
	now := ops.o.Now()
	ready, reasons := ops.Readiness()
	st := Status{Time: now.UTC(), Ready: ready, Reasons: reasons, RecentErrors: ops.o.Logs.Entries()}
	if st.RecentErrors == nil {
		st.RecentErrors = []LogEntry{}
	}
	for _, str := range ops.o.Streams {
		ss := StreamStatus{Name: str.Name, Topics: str.Topics}
		// The last hours' buckets, oldest first: each one before the
		// current starts where the one after it ends (a bucket is shorter
		// than an hour at a zone's transition).
		var bs []time.Time
		for len(bs) < hours {
			if len(bs) == 0 {
				bs = append(bs, partitioner.HourOf(now, str.Loc))
				continue
			}
			bs = append(bs, partitioner.HourOf(bs[len(bs)-1].Add(-time.Nanosecond), str.Loc))
		}
		for i := len(bs) - 1; i >= 0; i-- {
			ss.Hours = append(ss.Hours, ops.hourStatus(ctx, str, bs[i], now))
		}
		st.Streams = append(st.Streams, ss)
	}
	st.Partitions = ops.partitions(now)
	if ops.o.Rebalances != nil {
		r := ops.o.Rebalances()
		st.Rebalances = &r
	}
	return st
}

func (ops *Ops) partitions(now time.Time) []PartitionStatus {
	o := &ops.parts
	o.mu.Lock()
	defer o.mu.Unlock()
	out := []PartitionStatus{}
	for _, p := range o.parts {
		if p.gen != o.gen {
			continue
		}
		ps := PartitionStatus{
			Stream: p.stream, Topic: p.topic, Partition: p.partition,
			CommittedOffset: p.committed, HighWatermark: p.high, Lag: p.lag(),
			LastAdvance: p.advanced.UTC(),
		}
		if p.lag() > 0 && p.raw > 0 {
			ps.LagSeconds = max(now.Sub(time.UnixMilli(p.raw)).Seconds(), 0)
		}
		if p.watermark > 0 {
			w := time.UnixMilli(p.watermark).UTC()
			ps.Watermark = &w
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

func (ops *Ops) hourStatus(ctx context.Context, st *completion.Stream, hour, now time.Time) HourStatus {
	folder := st.Path.Render(st.Name, hour)
	key := st.Path.MarkerKey(st.Name, hour)
	o := &ops.hours
	o.mu.Lock()
	if c, ok := o.cells[key]; ok && now.Sub(c.at) < hourCacheTTL && now.Sub(c.at) >= 0 {
		o.mu.Unlock()
		return c.h
	}
	o.mu.Unlock()

	h := HourStatus{Hour: hour.UTC()}
	if err := ops.readHour(ctx, key, folder, &h); err != nil {
		h.Error = err.Error()
	}
	o.mu.Lock()
	if o.cells == nil {
		o.cells = map[string]hourCell{}
	}
	if h.Error == "" {
		o.cells[key] = hourCell{at: now, h: h}
	}
	// Forget cells that scrolled off the grid.
	for k, c := range o.cells {
		if now.Sub(c.at) > time.Hour {
			delete(o.cells, k)
		}
	}
	o.mu.Unlock()
	return h
}

func (ops *Ops) readHour(ctx context.Context, key, folder string, h *HourStatus) error {
	rc, err := ops.o.Writer.Get(ctx, key)
	if err == nil {
		b, rerr := io.ReadAll(io.LimitReader(rc, 64<<20))
		rc.Close()
		var (
			m    completion.Manifest
			done time.Time
		)
		if rerr == nil {
			m, rerr = completion.DecodeManifest(b)
		}
		if rerr == nil && m.CompletedAt != "" {
			done, rerr = time.Parse(time.RFC3339, m.CompletedAt)
		}
		if rerr != nil {
			h.State = HourComplete
			return fmt.Errorf("read %s: %w", key, rerr)
		}
		h.State, h.Revision, h.Records, h.Files = HourComplete, m.Revision, m.Records, len(m.Files)
		if m.Revision > 1 {
			h.State = HourAmended
		}
		for _, f := range m.Files {
			h.Bytes += f.Bytes
		}
		if !done.IsZero() {
			c := done.UTC()
			h.CompletedAt = &c
		}
		return nil
	}
	if !errors.Is(err, writers.ErrNotFound) {
		h.State = HourOpen
		return fmt.Errorf("get %s: %w", key, err)
	}
	objs, err := ops.o.Writer.List(ctx, folder+"/")
	if err != nil {
		h.State = HourOpen
		return fmt.Errorf("list %s: %w", folder, err)
	}
	for _, ob := range objs {
		if strings.HasSuffix(ob.Key, ".parquet") {
			h.Files++
			h.Bytes += ob.Size
		}
	}
	h.State = HourEmpty
	if h.Files > 0 {
		h.State = HourOpen
	}
	return nil
}
