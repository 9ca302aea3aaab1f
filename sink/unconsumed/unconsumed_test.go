package unconsumed_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/unconsumed"
)

const (
	bound = 42 * time.Second
	idle  = 5 * time.Minute
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)} }
func po(p int, high, committed int64, meta string) kafkaio.PartitionOffsets {
	return kafkaio.PartitionOffsets{Topic: "t", Partition: p, High: high, Committed: committed, Metadata: meta}
}

// poLow is a partition never committed with the log range [low, high).
func poLow(p int, low, high int64) kafkaio.PartitionOffsets {
	return kafkaio.PartitionOffsets{Topic: "t", Partition: p, Low: low, High: high, Committed: -1}
}

// look is one look: the partitions as the group shows them, after step.
type look struct {
	step  time.Duration
	parts []kafkaio.PartitionOffsets
	// want is the unconsumed partitions of topic t after the look ("":
	// none).
	want string
}

// TestDetector runs the rules of the package comment on an injected clock:
// only waiting records whose commit does not move for longer than the
// bound (or the idle timeout plus the bound, without new records) count,
// partitions this instance owns never do, and a commit that moves clears.
func TestDetector(t *testing.T) {
	tests := []struct {
		name     string
		owned    map[int]bool
		earliest bool // kafka.start_offset: earliest
		looks    []look
	}{
		{
			name: "a live owner commits as records arrive",
			looks: []look{
				{0, []kafkaio.PartitionOffsets{po(0, 100, 50, "a")}, ""},
				{30 * time.Second, []kafkaio.PartitionOffsets{po(0, 200, 50, "b")}, ""},
				{30 * time.Second, []kafkaio.PartitionOffsets{po(0, 300, 50, "c")}, ""},
				{30 * time.Second, []kafkaio.PartitionOffsets{po(0, 400, 50, "d")}, ""},
				{30 * time.Second, []kafkaio.PartitionOffsets{po(0, 500, 400, "e")}, ""},
			},
		},
		{
			name: "records arrive and nobody commits: unconsumed after the bound, consumed again at the next commit",
			looks: []look{
				{0, []kafkaio.PartitionOffsets{po(0, 100, 50, "a"), po(1, 10, 10, "x")}, ""},
				{time.Second, []kafkaio.PartitionOffsets{po(0, 110, 50, "a"), po(1, 10, 10, "x")}, ""},
				{bound, []kafkaio.PartitionOffsets{po(0, 120, 50, "a"), po(1, 10, 10, "x")}, ""},
				{time.Second, []kafkaio.PartitionOffsets{po(0, 130, 50, "a"), po(1, 10, 10, "x")}, "0"},
				{time.Hour, []kafkaio.PartitionOffsets{po(0, 130, 50, "a"), po(1, 20, 10, "x")}, "0"},
				{bound + time.Second, []kafkaio.PartitionOffsets{po(0, 130, 50, "a"), po(1, 30, 10, "x")}, "0,1"},
				{time.Second, []kafkaio.PartitionOffsets{po(0, 130, 50, "b"), po(1, 30, 10, "x")}, "1"},
				{time.Second, []kafkaio.PartitionOffsets{po(0, 130, 130, "c"), po(1, 30, 30, "y")}, ""},
			},
		},
		{
			name: "a quiet partition with an open file counts only after the idle timeout and the bound",
			looks: []look{
				{0, []kafkaio.PartitionOffsets{po(0, 100, 50, "a")}, ""},
				{bound + time.Minute, []kafkaio.PartitionOffsets{po(0, 100, 50, "a")}, ""},
				{idle - time.Minute, []kafkaio.PartitionOffsets{po(0, 100, 50, "a")}, ""},
				{time.Second, []kafkaio.PartitionOffsets{po(0, 100, 50, "a")}, "0"},
			},
		},
		{
			name: "caught up is never unconsumed",
			looks: []look{
				{0, []kafkaio.PartitionOffsets{po(0, 100, 100, "a")}, ""},
				{time.Hour, []kafkaio.PartitionOffsets{po(0, 100, 100, "a")}, ""},
			},
		},
		{
			name:  "partitions this instance owns are left to its own stall detection",
			owned: map[int]bool{1: true},
			looks: []look{
				{0, []kafkaio.PartitionOffsets{po(0, 100, 50, "a"), po(1, 100, 50, "a")}, ""},
				{time.Second, []kafkaio.PartitionOffsets{po(0, 110, 50, "a"), po(1, 110, 50, "a")}, ""},
				{time.Hour, []kafkaio.PartitionOffsets{po(0, 120, 50, "a"), po(1, 120, 50, "a")}, "0"},
			},
		},
		{
			name:     "never committed, read from the log start: its records wait (a member killed before its first commit)",
			earliest: true,
			looks: []look{
				{0, []kafkaio.PartitionOffsets{poLow(0, 0, 100), poLow(1, 100, 100), poLow(2, 0, 0)}, ""},
				{bound + time.Minute, []kafkaio.PartitionOffsets{poLow(0, 0, 100), poLow(1, 100, 100), poLow(2, 0, 0)}, ""},
				{idle, []kafkaio.PartitionOffsets{poLow(0, 0, 100), poLow(1, 100, 100), poLow(2, 0, 0)}, "0"},
			},
		},
		{
			name: "never committed, read from the end: only records that arrive count",
			looks: []look{
				{0, []kafkaio.PartitionOffsets{po(0, 100, -1, ""), po(1, 100, -1, "")}, ""},
				{time.Hour, []kafkaio.PartitionOffsets{po(0, 100, -1, ""), po(1, 100, -1, "")}, ""},
				{time.Second, []kafkaio.PartitionOffsets{po(0, 100, -1, ""), po(1, 101, -1, "")}, ""},
				{bound + time.Second, []kafkaio.PartitionOffsets{po(0, 100, -1, ""), po(1, 101, -1, "")}, "1"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			reg := prometheus.NewRegistry()
			d := unconsumed.New(unconsumed.Options{Topics: []string{"t"}, Bound: bound, IdleTimeout: idle, FromEarliest: tt.earliest, Now: c.now, Registry: reg,
				Owned: func(topic string, p int) bool { return topic == "t" && tt.owned[p] }})
			for i, l := range tt.looks {
				c.add(l.step)
				d.Observe(l.parts)
				reasons := d.Reasons()
				n := 0
				if l.want != "" {
					n = strings.Count(l.want, ",") + 1
					if len(reasons) != 1 || !strings.HasPrefix(reasons[0], "partitions not consumed: t/"+l.want+" have had records waiting") {
						t.Fatalf("look %d: reasons %q, want partitions %s of t", i, reasons, l.want)
					}
				} else if len(reasons) != 0 {
					t.Fatalf("look %d: reasons %q, want none", i, reasons)
				}
				if got := testutil.ToFloat64(gauge(t, reg)); got != float64(n) {
					t.Fatalf("look %d: lakesink_partitions_unconsumed{topic=t} %v, want %d", i, got, n)
				}
			}
		})
	}
}

func gauge(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "lakesink_partitions_unconsumed" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "t" {
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
					g.Set(m.GetGauge().GetValue())
					return g
				}
			}
		}
	}
	t.Fatal("lakesink_partitions_unconsumed{topic=t} not registered")
	return nil
}

// TestDetectorLogs: a warning when a topic's partitions become unconsumed,
// again only after logEvery (10 minutes) while they stay, one line when
// they are consumed again.
func TestDetectorLogs(t *testing.T) {
	c := newClock()
	var buf bytes.Buffer
	d := unconsumed.New(unconsumed.Options{Topics: []string{"t"}, Bound: bound, IdleTimeout: idle, Now: c.now,
		Log: slog.New(slog.NewTextHandler(&buf, nil))})
	d.Observe([]kafkaio.PartitionOffsets{po(0, 100, 50, "a")})
	steps := []struct {
		step time.Duration
		high int64
		meta string
		want string // the line logged by this look ("": none)
	}{
		{time.Second, 101, "a", ""},
		{bound + time.Second, 102, "a", `level=WARN msg="partitions not consumed by any live group member: records wait and the group's commit does not move" topic=t partitions=0 lag=52`},
		{time.Minute, 103, "a", ""},
		{8 * time.Minute, 104, "a", ""},
		{time.Minute, 105, "a", `level=WARN msg="partitions not consumed by any live group member (still)" topic=t partitions=0 lag=55`},
		{time.Minute, 106, "a", ""},
		{time.Second, 106, "b", `level=INFO msg="recovered: partitions consumed again" topic=t`},
		{time.Minute, 106, "b", ""},
	}
	for i, s := range steps {
		buf.Reset()
		c.add(s.step)
		d.Observe([]kafkaio.PartitionOffsets{po(0, s.high, 50, s.meta)})
		got := strings.TrimSpace(buf.String())
		if s.want == "" && got != "" || s.want != "" && !strings.Contains(got, s.want) || strings.Count(got, "\n") > 0 {
			t.Errorf("look %d: logged %q, want a line with %q", i, got, s.want)
		}
	}
}

type offsets struct {
	mu  sync.Mutex
	err error
	n   int
}

func (o *offsets) GroupOffsets(context.Context, []string) ([]kafkaio.PartitionOffsets, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n++
	return []kafkaio.PartitionOffsets{po(0, 100, 100, "a")}, o.err
}

// TestCheckFaults: a failed look goes to Faults, the first look that works
// after it clears it, and looks that keep working report nothing.
func TestCheckFaults(t *testing.T) {
	o := &offsets{}
	var got []error
	d := unconsumed.New(unconsumed.Options{Offsets: o, Topics: []string{"t"}, Bound: bound, Faults: func(err error) { got = append(got, err) }})
	ctx := context.Background()
	d.Check(ctx)
	o.err = errors.New("broker down")
	d.Check(ctx)
	d.Check(ctx)
	o.err = nil
	d.Check(ctx)
	d.Check(ctx)
	if len(got) != 3 || got[0] == nil || got[1] == nil || got[2] != nil || !strings.Contains(got[0].Error(), "broker down") {
		t.Fatalf("faults %v, want two errors then nil", got)
	}
}

func TestRunStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	o := &offsets{}
	d := unconsumed.New(unconsumed.Options{Offsets: o, Topics: []string{"t"}, Bound: bound, Interval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	for {
		o.mu.Lock()
		n := o.n
		o.mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}
