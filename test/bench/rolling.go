package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// A rolling restart (Options.Rolling): the Instances run in one group
// while the records arrive (Live, at Options.Rate), and are restarted one
// after another as a rolling deploy does — SIGTERM, wait for the exit,
// after RestartGap (default none) start the same instance again (same
// config and spool folder) — RestartAfter after the start and then every
// RestartEvery, each restart also waiting until every instance has joined
// the group in its current life. Every restart is two rebalances, the
// instance leaving and joining again, unless it joins while the group
// still rebalances for its leave (the other members rejoin within a
// heartbeat interval): then it is one. With kafka.assignor: range every
// rebalance throws every open file of every member away and the records
// since each partition's commit are read again; with sticky the
// partitions that stay keep their files (docs/design.md, "Rebalances").
//
// Once every instance was restarted and every partition's records have
// all been read by its owner (the committed offset, or the commit
// metadata's read position nx, at the high watermark, and every
// partition assigned), the instances get SIGTERM: the graceful stop
// finishes and commits the open files. Then every partition's committed
// offset must be its high watermark and every record must be in the lake
// exactly once (checkLake).
//
// Each process life's counters are read from its /metrics right before
// its SIGTERM and then every 50 ms until it stops answering (the last
// answer counts), and its CPU is utime+stime from wait4 at its exit: the
// RollingResult sums them over every life.

// RollingResult is what a rolling restart measured.
type RollingResult struct {
	RestartAfter string `json:"restart_after"`
	RestartEvery string `json:"restart_every"`
	RestartGap   string `json:"restart_gap,omitempty"`
	// Restarts: which instance, when its SIGTERM was sent (seconds from
	// the first start) and how long it took to exit.
	Restarts []Restart `json:"restarts"`
	// Lives: every process, in the order they stopped.
	Lives []Life `json:"lives"`
	// Sums over the lives: lakesink_records_consumed_total,
	// lakesink_records_replayed_total (records read a second time),
	// lakesink_files_kept_total, lakesink_files_abandoned_total,
	// lakesink_group_generations_total.
	Consumed       int64 `json:"records_consumed"`
	Replayed       int64 `json:"records_replayed"`
	FilesKept      int64 `json:"files_kept"`
	FilesAbandoned int64 `json:"files_abandoned"`
	Generations    int64 `json:"generations"`
	// ExtraReads is Consumed minus the records produced: the reads beyond
	// one per record, measured without the replay counter.
	ExtraReads int64 `json:"extra_reads"`
	// CPUSeconds is every life's utime+stime (wait4 at its exit);
	// CPUMicrosPerConsumed that per consumed record; ReplayCPUSeconds the
	// CPU spent on reading again, estimated as CPU per consumed record ×
	// Replayed.
	CPUSeconds           float64 `json:"cpu_seconds"`
	CPUMicrosPerConsumed float64 `json:"cpu_us_per_consumed"`
	ReplayCPUSeconds     float64 `json:"replay_cpu_seconds"`
	// CaughtUpSeconds is from the first start to every record read (after
	// the last restart); Load1After the 1-minute load average at the end.
	CaughtUpSeconds float64 `json:"caught_up_seconds"`
	Load1After      float64 `json:"load1_after"`
}

// Restart is one restart of an instance.
type Restart struct {
	Instance    int     `json:"instance"`
	At          float64 `json:"at_seconds"`
	StopSeconds float64 `json:"stop_seconds"`
}

// Life is one process of an instance, from start to exit.
type Life struct {
	Instance int `json:"instance"`
	Life     int `json:"life"` // 0: the first start
	// Started and Stopped (SIGTERM sent) in seconds from the first
	// start; StopSeconds SIGTERM to exit.
	Started     float64 `json:"started"`
	Stopped     float64 `json:"stopped"`
	StopSeconds float64 `json:"stop_seconds"`
	// The counters of its last /metrics answer.
	Consumed       int64            `json:"records_consumed"`
	Replayed       int64            `json:"records_replayed"`
	FilesKept      int64            `json:"files_kept"`
	FilesAbandoned int64            `json:"files_abandoned"`
	Generations    int64            `json:"generations"`
	FilesFinished  map[string]int64 `json:"files_finished,omitempty"`
	// CPUSeconds and PeakRSSMiB from wait4 at its exit.
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

// rollingEnv is what Run set up for runRolling.
type rollingEnv struct {
	broker     *brokerProc
	work, lake string
	topic      string
	args       configArgs
	// produceAll produces the records and then sets *prod and *high.
	produceAll func() error
	prod       *produced
	high       *map[int]int64
}

// runRolling runs the instances through a rolling restart under live
// traffic, stops them, and checks the lake (see the comment above).
func runRolling(ctx context.Context, o Options, res *Result, env rollingEnv) error {
	n := o.Instances
	res.Instances = n
	rr := &RollingResult{RestartAfter: o.RestartAfter.String(), RestartEvery: o.RestartEvery.String()}
	if o.RestartGap > 0 {
		rr.RestartGap = o.RestartGap.String()
	}
	res.Rolling = rr
	fmt.Fprintf(o.Progress, "starting %d lakesink instances (kafka.assignor: %s); restarts from %s on, one every %s ...\n",
		n, cmp.Or(o.Assignor, "default"), o.RestartAfter, o.RestartEvery)
	brokerCPU0, _ := procCPUSeconds(env.broker.cmd.Process.Pid)
	start := time.Now()
	since := func() float64 { return time.Since(start).Seconds() }
	procs := make([]*sinkProc, n)
	lives := make([]*Life, n)
	var ended []*Life
	defer func() {
		for _, p := range procs {
			if p != nil {
				p.stop()
			}
		}
	}()
	m := &monitor{addr: env.args.broker, group: env.args.group, topic: env.topic,
		client: &http.Client{Timeout: time.Second}}
	startInst := func(i, life int) error {
		p, err := startSinkLife(o, env.work, i, n, life, env.args)
		if err != nil {
			return err
		}
		procs[i], lives[i] = p, &Life{Instance: i, Life: life, Started: since()}
		m.metricsURLs = m.metricsURLs[:0]
		for _, q := range procs {
			if q != nil {
				m.metricsURLs = append(m.metricsURLs, q.metricsURL)
			}
		}
		return nil
	}
	for i := range n {
		if err := startInst(i, 0); err != nil {
			return err
		}
	}
	produced := make(chan error, 1)
	go func() { produced <- env.produceAll() }()

	restarts := 0
	var lastCheck, readSince time.Time
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("records not all read within %s: %s", o.Timeout, m.last)
		case err := <-produced:
			if err != nil {
				return err
			}
			m.high, produced = *env.high, nil
			fmt.Fprintf(o.Progress, "%.1fs: every record produced\n", since())
			continue
		case <-tick.C:
		}
		for i, p := range procs {
			select {
			case <-p.exited:
				return fmt.Errorf("instance %d exited: %v\n%s", i, p.waitErr, tail(p.log, 30))
			default:
			}
		}
		if restarts < n {
			if time.Since(start) < o.RestartAfter+time.Duration(restarts)*o.RestartEvery || !m.allJoined(ctx, procs) {
				continue
			}
			i := restarts
			at := since()
			fmt.Fprintf(o.Progress, "%.1fs: restarting instance %d (SIGTERM, wait for the exit, start) ...\n", at, i)
			if err := m.stopLife(ctx, procs[i], lives[i], start); err != nil {
				return err
			}
			ended = append(ended, lives[i])
			rr.Restarts = append(rr.Restarts, Restart{Instance: i, At: at, StopSeconds: lives[i].StopSeconds})
			fmt.Fprintf(o.Progress, "%.1fs: instance %d exited %.2fs after SIGTERM (that life: %d records consumed, %d read again, %d files kept, %d abandoned)\n",
				since(), i, lives[i].StopSeconds, lives[i].Consumed, lives[i].Replayed, lives[i].FilesKept, lives[i].FilesAbandoned)
			if o.RestartGap > 0 {
				// The replacement takes a while to come up (a pod
				// scheduled, an image pulled): the group rebalances
				// without the instance first.
				select {
				case <-ctx.Done():
					return fmt.Errorf("records not all read within %s: %s", o.Timeout, m.last)
				case <-time.After(o.RestartGap):
				}
			}
			if err := startInst(i, lives[i].Life+1); err != nil {
				return err
			}
			restarts++
			continue
		}
		// Every instance was restarted: wait until every record has been
		// read, seen twice 2 s apart (a commit interval and more), with
		// every partition assigned.
		if m.high == nil || time.Since(lastCheck) < time.Second {
			continue
		}
		lastCheck = time.Now()
		assigned, ok := m.metric(ctx, "lakesink_assigned_partitions")
		if !m.allRead(ctx) || !ok || int(assigned) != len(m.high) {
			if ok && int(assigned) != len(m.high) {
				m.last += fmt.Sprintf("; %d of %d partitions assigned", int(assigned), len(m.high))
			}
			readSince = time.Time{}
			continue
		}
		if readSince.IsZero() {
			readSince = lastCheck
			continue
		}
		if lastCheck.Sub(readSince) >= 2*time.Second {
			break
		}
	}
	rr.CaughtUpSeconds = readSince.Sub(start).Seconds()
	fmt.Fprintf(o.Progress, "%.1fs: every record read (since %.1fs); stopping the instances (SIGTERM) ...\n", since(), rr.CaughtUpSeconds)
	t0 := time.Now()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() { errs[i] = m.stopLife(ctx, p, lives[i], start) })
	}
	wg.Wait()
	res.ShutdownSeconds = time.Since(t0).Seconds()
	res.Seconds = since()
	ended = append(ended, lives...)
	fmt.Fprintf(o.Progress, "%.1fs: every instance exited, %.2fs after SIGTERM\n", since(), res.ShutdownSeconds)
	if bc, err := procCPUSeconds(env.broker.cmd.Process.Pid); err == nil {
		res.BrokerCPU = bc - brokerCPU0
	}
	rr.Load1After = ThisMachine().Load1
	verr := slices.DeleteFunc(errs, func(e error) bool { return e == nil })

	// The sums over every life.
	res.FilesFinished = map[string]int64{}
	res.InstanceCPUSeconds = make([]float64, n)
	res.InstancePeakRSSMiB = make([]float64, n)
	for _, l := range ended {
		rr.Lives = append(rr.Lives, *l)
		rr.Consumed += l.Consumed
		rr.Replayed += l.Replayed
		rr.FilesKept += l.FilesKept
		rr.FilesAbandoned += l.FilesAbandoned
		rr.Generations += l.Generations
		rr.CPUSeconds += l.CPUSeconds
		for k, v := range l.FilesFinished {
			res.FilesFinished[k] += v
		}
		res.InstanceCPUSeconds[l.Instance] += l.CPUSeconds
		res.InstancePeakRSSMiB[l.Instance] = max(res.InstancePeakRSSMiB[l.Instance], l.PeakRSSMiB)
		res.PeakRSSMiB = max(res.PeakRSSMiB, l.PeakRSSMiB)
	}
	res.PeakRSSMiBExit = res.PeakRSSMiB
	res.CPUSeconds, res.CPUSecondsExit = rr.CPUSeconds, rr.CPUSeconds
	res.RecordsPerSec = float64(res.Records) / res.Seconds
	res.MBPerSec = float64(res.ValueBytes) / 1e6 / res.Seconds
	rr.ExtraReads = rr.Consumed - res.Records
	if rr.Consumed > 0 {
		perRecord := rr.CPUSeconds / float64(rr.Consumed)
		rr.CPUMicrosPerConsumed = perRecord * 1e6
		rr.ReplayCPUSeconds = perRecord * float64(rr.Replayed)
	}

	// The graceful stops committed every file: every partition must be at
	// its high watermark, and every record in the lake once.
	if !m.allCommitted(ctx) {
		verr = append(verr, fmt.Errorf("after the graceful stop: %s", m.last))
	}
	ls, lerr := checkLake(env.lake, o, res, *env.prod)
	verr = append(verr, lerr...)
	// A stopping instance finishes its last files after /metrics last
	// answered: count those from the lake, as Run does.
	var counted int64
	for _, v := range res.FilesFinished {
		counted += v
	}
	if d := int64(ls.files) - counted; d > 0 {
		res.FilesFinished["shutdown"] += d
		res.ShutdownFromLake = d
	}
	res.Verified = len(verr) == 0
	return errors.Join(verr...)
}

// lifeCounters are the counters of one /metrics answer.
type lifeCounters struct {
	consumed, replayed, kept, abandoned, generations int64
	finished                                         map[string]int64
}

// allJoined reports whether every instance has joined the group at least
// once in its current life. A rolling deploy moves on only once the
// instance it replaced is ready; without this, on a loaded machine an
// instance could be stopped before its first join, a life that measures
// nothing.
func (m *monitor) allJoined(ctx context.Context, procs []*sinkProc) bool {
	for _, p := range procs {
		if c, ok := m.counters(ctx, p.metricsURL); !ok || c.generations < 1 {
			return false
		}
	}
	return true
}

// counters reads an instance's counters; false if it did not answer.
func (m *monitor) counters(ctx context.Context, url string) (lifeCounters, bool) {
	var c lifeCounters
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return c, false
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return c, false
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return c, false
	}
	get := func(name string) (int64, bool) { return parseCounter(bytes.NewReader(b), name) }
	var ok bool
	if c.consumed, ok = get("lakesink_records_consumed_total"); !ok {
		return c, false
	}
	c.replayed, _ = get("lakesink_records_replayed_total")
	c.kept, _ = get("lakesink_files_kept_total")
	c.abandoned, _ = get("lakesink_files_abandoned_total")
	c.generations, _ = get("lakesink_group_generations_total")
	c.finished = parseFinished(bytes.NewReader(b))
	return c, c.finished != nil
}

// note keeps the larger of each counter (they only grow within a life).
func (l *Life) note(c lifeCounters) {
	l.Consumed = max(l.Consumed, c.consumed)
	l.Replayed = max(l.Replayed, c.replayed)
	l.FilesKept = max(l.FilesKept, c.kept)
	l.FilesAbandoned = max(l.FilesAbandoned, c.abandoned)
	l.Generations = max(l.Generations, c.generations)
	if l.FilesFinished == nil {
		l.FilesFinished = map[string]int64{}
	}
	for k, v := range c.finished {
		l.FilesFinished[k] = max(l.FilesFinished[k], v)
	}
}

// stopLife reads p's counters, sends it SIGTERM and reads them every
// 50 ms until it exits (SIGKILL to its process group after 60 s, as
// sinkProc.stop), then takes its CPU and peak RSS from wait4. An exit
// status other than 0 is an error.
func (m *monitor) stopLife(ctx context.Context, p *sinkProc, l *Life, start time.Time) error {
	if c, ok := m.counters(ctx, p.metricsURL); ok {
		l.note(c)
	}
	t0 := time.Now()
	l.Stopped = t0.Sub(start).Seconds()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	kill := time.After(60 * time.Second)
wait:
	for {
		if c, ok := m.counters(context.Background(), p.metricsURL); ok {
			l.note(c)
		}
		select {
		case <-p.exited:
			break wait
		case <-tick.C:
		case <-kill:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
			break wait
		}
	}
	l.StopSeconds = time.Since(t0).Seconds()
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		l.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		l.PeakRSSMiB = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	if p.waitErr != nil {
		return fmt.Errorf("instance %d (life %d): exit after SIGTERM: %v\n%s", l.Instance, l.Life, p.waitErr, tail(p.log, 30))
	}
	return nil
}

// allRead reports whether every partition's owner has read all its
// records: its committed offset is the high watermark, or the read
// position its commit metadata carries (nx: the offset after the last
// record read when it committed; docs/design.md, "Rebalances") is. An
// owner commits new metadata within a commit interval of reading.
func (m *monitor) allRead(ctx context.Context) bool {
	if m.kc == nil {
		m.kc = &kafka.Client{Addr: kafka.TCP(m.addr), Timeout: 5 * time.Second}
	}
	ps := slices.Sorted(maps.Keys(m.high))
	resp, err := m.kc.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: m.group, Topics: map[string][]int{m.topic: ps}})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		m.last = "offset fetch: " + err.Error()
		return false
	}
	behind, unread, got := 0, int64(0), 0
	for _, p := range resp.Topics[m.topic] {
		got++
		h := m.high[p.Partition]
		if h == 0 || p.CommittedOffset == h {
			continue
		}
		pos := max(p.CommittedOffset, 0)
		if nx, ok := readPosition(p.Metadata); ok {
			pos = max(pos, nx)
		}
		if pos < h {
			behind++
			unread += h - pos
		}
	}
	if got != len(m.high) {
		m.last = fmt.Sprintf("offset fetch answered %d of %d partitions", got, len(m.high))
		return false
	}
	m.last = fmt.Sprintf("%d partitions not read to their end, %d records unread", behind, unread)
	return behind == 0
}

// readPosition is the nx field of lakesink's commit metadata (a JSON
// object; docs/design.md); false if there is none.
func readPosition(meta string) (int64, bool) {
	if !strings.HasPrefix(meta, "{") {
		return 0, false
	}
	var v struct {
		NX int64 `json:"nx"`
	}
	if err := json.Unmarshal([]byte(meta), &v); err != nil || v.NX <= 0 {
		return 0, false
	}
	return v.NX, true
}

// rollingTable renders a rolling restart's result for humans.
func (r Result) rollingTable() string {
	rr := r.Rolling
	var b strings.Builder
	row := func(k, f string, a ...any) { fmt.Fprintf(&b, "  %-28s "+f+"\n", append([]any{k}, a...)...) }
	pct := func(n int64) float64 { return float64(n) * 100 / float64(max(r.Records, 1)) }
	fmt.Fprintf(&b, "lakesink bench — %s, kafka.assignor: %s, %s values (%.0f B/record), %s\n", r.Scenario, cmp.Or(r.Assignor, "default"), r.Variant(), float64(r.ValueBytes)/float64(max(r.Records, 1)), r.Time)
	row("machine", "%d CPU, %s, %s, load1 before %.2f, after %.2f", r.Machine.NumCPU, r.Machine.Model, r.Machine.GoVersion, r.Machine.Load1, rr.Load1After)
	row("records produced", "%d %s, %s (%.1f MB values), %d partitions, %d records a produce request, rate cap %.0f records/s, %.1f s", r.Records, r.Schema, r.format(), float64(r.ValueBytes)/1e6, r.Partitions, r.Burst, r.Rate, r.ProduceSeconds)
	if r.OpenHours {
		row("event times", "%d open hour(s) from the next full hour on (none closes during the run)", r.Hours)
	} else {
		row("event times", "%d hour(s), closed by the wall clock", r.Hours)
	}
	var rs []string
	for _, x := range rr.Restarts {
		rs = append(rs, fmt.Sprintf("#%d at %.1f s (exit after %.2f s)", x.Instance, x.At, x.StopSeconds))
	}
	gap := "started again at once"
	if rr.RestartGap != "" {
		gap = "started again " + rr.RestartGap + " after the exit"
	}
	row("rolling restart", "%d instances, first restart after %s, then every %s, %s: %s", r.Instances, rr.RestartAfter, rr.RestartEvery, gap, strings.Join(rs, ", "))
	row("run", "%.1f s: every record read at %.1f s, then SIGTERM to all, exited after %.2f s", r.Seconds, rr.CaughtUpSeconds, r.ShutdownSeconds)
	row("records consumed", "%d over all lives (%+d against produced: %.1f%%)", rr.Consumed, rr.ExtraReads, pct(rr.ExtraReads))
	row("records read again", "%d (lakesink_records_replayed_total; %.1f%% of produced)", rr.Replayed, pct(rr.Replayed))
	row("files kept / abandoned", "%d / %d (group generations joined: %d over all lives)", rr.FilesKept, rr.FilesAbandoned, rr.Generations)
	row("sink CPU", "%.2f CPU-s over all lives (wait4), %.2f µs per consumed record", rr.CPUSeconds, rr.CPUMicrosPerConsumed)
	row("CPU reading again (est.)", "%.2f CPU-s (CPU per consumed record × records read again; %.1f%% of the sink's)", rr.ReplayCPUSeconds, rr.ReplayCPUSeconds*100/max(rr.CPUSeconds, 1e-9))
	row("broker CPU seconds", "%.2f (same cores)", r.BrokerCPU)
	for _, l := range rr.Lives {
		row(fmt.Sprintf("instance %d life %d", l.Instance, l.Life), "%5.1f–%5.1f s: %d consumed, %d read again, %d kept, %d abandoned, %d generations, %.2f CPU-s, peak RSS %.0f MiB",
			l.Started, l.Stopped, l.Consumed, l.Replayed, l.FilesKept, l.FilesAbandoned, l.Generations, l.CPUSeconds, l.PeakRSSMiB)
	}
	row("lake", "%d files for %d partition-hours (%.2f per partition-hour, max %d), %d records", r.LakeFiles, r.Buckets, r.FilesPerPartitionHour(), r.MaxFilesPerBucket, r.LakeRecords)
	r.finishedRows(row)
	row("verified", "%v (every offset committed at its high watermark; %d rows read back, each record once when verified)", r.Verified, r.RowsRead)
	return b.String()
}
