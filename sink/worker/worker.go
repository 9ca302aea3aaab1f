package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/kafkaio"
	"github.com/lakesink/lakesink/sink/ledger"
	"github.com/lakesink/lakesink/sink/retry"
	"github.com/lakesink/lakesink/sink/tables"
)

// Generation identifies the consumer-group generation a worker runs in.
type Generation struct {
	ID     int
	Member string
	// Partitions is how many partitions this member owns in it: it sizes
	// the fetch buffers and the memory checks.
	Partitions int
}

// Worker owns one partition for the lifetime of one group generation. It is
// not safe for concurrent use; the sink runs one goroutine per worker.
//
// It is a record's path — fetch, decode, hour, append, finish, commit —
// and delegates the rest: the open files and the spool folder (fileSet),
// its share of the memory budget (memShare), dead letters (deadLetters),
// the stream's table (tableCommits), offset commits and their reports
// (offsetCommits), amendments (amends), and everything about the record
// format (format, which sees the worker only through its formatEnv).
type Worker struct {
	env       *Env
	st        *Stream
	topic     string
	partition int
	log       *slog.Logger

	format  format
	fx      *formatEnv // the format's view of the worker
	led     *ledger.Ledger
	files   *fileSet
	mem     *memShare
	dead    deadLetters
	table   *tableCommits // nil without a table
	amends  amends
	offsets offsetCommits

	hwm     int64
	nowMs   int64 // wall clock at the start of the current tick, unix ms
	stopped bool  // Run is restarting it after a failure
	// parked: its generation ended and it kept its open files for the
	// next one (keep.go); Resume or Abandon decides.
	parked bool
}

// New returns the worker of topic's partition of stream st in generation
// gen. It does not start; Run does.
func New(env *Env, st *Stream, topic string, partition int, gen Generation) (*Worker, error) {
	log := env.Log.With("topic", topic, "partition", partition)
	mem := newMemShare(env, gen.Partitions)
	w := &Worker{
		env: env, st: st, topic: topic, partition: partition, log: log,
		files:  newFileSet(env, mem, topic, partition),
		mem:    mem,
		dead:   deadLetters{env: env, stream: st.Name, log: log},
		amends: amends{env: env, st: st, topic: topic, partition: partition, log: log},
		offsets: offsetCommits{env: env, stream: st.Name, topic: topic, partition: partition,
			label: strconv.Itoa(partition), gen: gen, log: log, last: -1},
	}
	w.offsets.held = w.files.held
	if st.Table != nil {
		w.table = &tableCommits{env: env, table: st.Table, stream: st.Name, log: log,
			owner: tables.Owner{Topic: topic, Partition: partition, Generation: gen.ID, Member: gen.Member}}
	}
	w.fx = &formatEnv{
		st: st, log: log, health: env.Health, mem: env.Budget,
		sampleBytes: sampleLimit(env.MaxFileBytes), newWriter: w.files.newWriter,
	}
	f, err := newFormat(w.fx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", st.Name, err)
	}
	w.format = f
	return w, nil
}

// errRevoked stops a worker whose generation ended; its open files are
// abandoned and the next owner replays them from the committed offset.
var errRevoked = errors.New("partition revoked")

// Run consumes the partition until ctx ends (generation over: abandon open
// files) or drain is closed (shutdown: finish files, upload, commit, call
// drained, then wait for ctx to end). The wait matters: kafka-go ends a
// generation as soon as any of its goroutines returns, which would cancel
// the other partitions' final commits.
//
// A worker that fails — its spool disk is full or read-only, the brokers
// could not be asked for its commit — does not return: it abandons its open
// files, reports itself stopped (readiness names the partition and the
// error), waits with a jittered backoff and starts again from the
// committed offset. Returning would end the generation of every partition
// of this member and rejoin the group, over and over while the fault lasts;
// pausing keeps the member and its other partitions where they are. Run
// returns an error only if the drain's final upload or commit failed.
func (w *Worker) Run(ctx context.Context, drain <-chan struct{}, drained func()) error {
	wait := retry.NewBackoff(time.Second, time.Minute)
	for {
		err := w.consume(ctx, drain)
		if err == nil || ctx.Err() != nil || closed(drain) {
			drained()
			if err == nil {
				<-ctx.Done()
			}
			return err
		}
		w.env.Health.WorkerStopped(w.topic, w.partition, err)
		w.stopped = true
		select {
		case <-ctx.Done():
		case <-drain:
		case <-time.After(wait.Next()):
		}
	}
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// running notes that a worker that had stopped runs again.
func (w *Worker) running() {
	if w.stopped {
		w.stopped = false
		w.env.Health.WorkerStarted(w.topic, w.partition)
	}
}

// start reads the partition's commit and sets up the ledger.
func (w *Worker) start(ctx context.Context) (int64, error) {
	start, raw, err := w.env.Offsets.Committed(ctx, w.topic, w.partition)
	if err != nil {
		if ctx.Err() == nil {
			w.env.Health.Kafka(err)
		}
		return 0, err
	}
	meta, _, err := ledger.Parse(raw)
	if err != nil {
		w.log.Warn("ignoring foreign commit metadata", "err", err)
	}
	if w.table != nil {
		if start, meta, err = w.table.claim(ctx, start, meta); err != nil {
			return 0, err
		}
	}
	w.led = ledger.New(start, meta, w.st.Lateness.Milliseconds())
	w.offsets.last, w.offsets.lastMeta = start, raw
	w.offsets.at = w.env.Now()
	w.files.clean()
	// A worker restarting after a failure (Run's backoff loop) says so at
	// debug level: while a fault lasts, readiness and the fault log speak
	// for it, and a line per partition per restart would flood the log.
	level := slog.LevelInfo
	if w.stopped {
		level = slog.LevelDebug
	}
	w.log.Log(ctx, level, "partition assigned", "start_offset", start, "watermark", fmtMs(meta.RW))
	return start, nil
}

func (w *Worker) consume(ctx context.Context, drain <-chan struct{}) (err error) {
	w.fx.drain = drain
	var start int64
	if w.parked {
		// Resumed in a new generation (Resume): the ledger, the open
		// files and the queued dead letters are as they were; reading goes
		// on after the last record read.
		w.parked = false
		start = w.led.Next()
	} else {
		w.dead.reset() // a restart reads them again
		if start, err = w.start(ctx); err != nil {
			return err
		}
	}
	if start < 0 {
		// No commit yet: the fetcher resolves FirstOffset/LastOffset.
		start = w.env.StartOffset
	}
	f := kafkaio.StartFetcher(ctx, kafkaio.FetcherConfig{
		Dialer:    w.env.Dialer,
		Brokers:   w.env.Brokers,
		Topic:     w.topic,
		Partition: w.partition,
		MaxBytes:  w.mem.fetchBytes(),
		MaxWait:   250 * time.Millisecond,
		Queue:     w.mem.queue(),
		Log:       w.log,
		Report:    w.env.Health.Kafka,
		Leaders:   w.env.Leaders,
	}, start)
	defer f.Stop()

	defer func() {
		// The generation ended (not a shutdown, not a failure): keep the
		// open files for the next one when the partition may come back
		// (keep.go); otherwise throw them away, the next owner replays.
		if err == nil && ctx.Err() != nil && !closed(drain) && w.keeps() {
			w.parked = true
			return
		}
		w.abandonAll()
		w.mem.release()
	}()
	tick := time.NewTicker(w.env.Tick)
	defer tick.Stop()
	records := f.Records()
	for {
		// One clock read per tick, not per record; housekeeping (idle
		// flush, commits) runs on every tick, busy or not: select picks
		// among ready cases at random.
		w.nowMs = w.env.Now().UnixMilli()
	chunks:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-drain:
				return w.finishAll(ctx)
			case <-tick.C:
				break chunks
			case chunk := <-records:
				w.env.Metrics.RecordsConsumed.Add(float64(len(chunk)))
				for _, m := range chunk {
					if err := w.process(ctx, m); err != nil {
						if errors.Is(err, errDraining) {
							return w.finishAll(ctx)
						}
						return err
					}
				}
				f.Recycle(chunk)
				w.running()
			}
		}
		if err := w.housekeep(ctx); err != nil {
			if errors.Is(err, errRevoked) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if w.led.Next() >= w.hwm {
			w.running() // caught up: nothing waits that could fail
		}
	}
}

// process takes one record on its way: decode, skip what a replay already
// made durable, apply the late policy, then into its hour's file (the
// format decides whether the open file can take it), or to the dead-letter
// topic; then the hours its event time closes are finished.
//
// The caller counts records consumed (per chunk: a shared counter updated
// per record costs cache-line traffic between the cores).
func (w *Worker) process(ctx context.Context, m kafka.Message) error {
	now := w.nowMs
	w.hwm = max(w.hwm, m.HighWaterMark)
	w.led.Seen(m.Offset)
	if w.led.ReadBefore(m.Offset) {
		w.env.Metrics.RecordsReplayed.Inc()
	}
	row, ev, err := w.format.decode(ctx, m)
	if err != nil {
		if errors.Is(err, errDraining) || (ctx.Err() != nil && !isRecordError(err)) {
			return err // shutting down or revoked; the record is replayed
		}
		w.deadLetter(m, err)
		return nil
	}
	hour := partitioner.HourOf(ev, w.st.Loc)
	hms := hour.UnixMilli()
	if w.led.DurableAlready(hms, m.Offset) {
		w.env.Metrics.RecordsSkipped.Inc()
		w.led.Skipped(m.Offset, now)
		return nil
	}
	if w.led.IsClosed(hms) {
		w.env.Metrics.LateRecords.WithLabelValues(w.st.Name).Inc()
		if hour, err = lateHour(w.st, hour, w.led.RawWM()); err != nil {
			w.deadLetter(m, err)
			return nil
		}
		hms = hour.UnixMilli()
		// current_hour filed it under another hour: a replay finds it
		// durable there, not under its own hour.
		if w.led.DurableAlready(hms, m.Offset) {
			w.env.Metrics.RecordsSkipped.Inc()
			w.led.Skipped(m.Offset, now)
			return nil
		}
	}
	// The record goes to the first open file of its hour that takes it;
	// fitOther (another schema family) asks the hour's next file, or opens
	// one beside them; fitRoll, or a family beyond maxFamilies, finishes
	// the hour's files and starts over.
	key := fileKey{hour: hms}
	var f *openFile
	for {
		f = w.files.byKey[key]
		out, fit, err := w.format.fit(f, m, row)
		if err != nil {
			w.deadLetter(m, err)
			return nil
		}
		if fit == fitOK {
			row = out
			break
		}
		if fit == fitOther && key.fam+1 < maxFamilies {
			key.fam++
			continue
		}
		if err := w.finish(ctx, hms, finishSchemaRoll); err != nil {
			return err
		}
		key.fam = 0
	}
	if f == nil {
		var err error
		if f, err = w.openFile(key, hour, m.Offset); err != nil {
			return err
		}
	}
	if err := w.format.append(f, row, m, ev); err != nil {
		return w.files.failed(err)
	}
	f.records++
	oldWM := w.led.RawWM()
	w.led.Read(m.Offset, ev.UnixMilli(), now)
	if w.mem.due() {
		if err := w.boundMemory(ctx); err != nil {
			return err
		}
	}
	if f.fw.EstimatedBytes() >= w.env.MaxFileBytes {
		if err := w.finish(ctx, hms, finishMaxBytes); err != nil {
			return err
		}
	}
	if w.led.RawWM() > oldWM {
		// Close the hours this record's event time has just closed. Files of
		// hours closed earlier (late data) wait for the next housekeeping
		// tick, so that a burst of late records shares one file.
		lat := w.st.Lateness.Milliseconds()
		for k := range w.files.byKey {
			if end := k.hour + ledger.HourMs + lat; end > oldWM && end <= w.led.RawWM() {
				if err := w.finish(ctx, k.hour, finishHourClosed); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// openFile starts the spool file key of hour whose first record is at
// offset first, with the schema the format gives for the record just
// fitted.
func (w *Worker) openFile(key fileKey, hour time.Time, first int64) (*openFile, error) {
	of, err := w.files.open(key, hour, first, w.format)
	if err != nil {
		return nil, err
	}
	of.opened = time.UnixMilli(w.nowMs)
	w.led.Opened(hour.UnixMilli(), first)
	return of, nil
}

// finish closes the open files of hour hms, uploads them (retrying until
// it succeeds or the generation ends) and marks their records durable.
//
// The files of one hour (its schema families, fileKey) always finish
// together, whatever asked for one of them — the hour's close, idleness,
// max_file_bytes, memory pressure, a roll, the drain: the hour's done mark
// in the ledger (To above the last offset of every file) would otherwise
// let a replay skip records of a file that is not durable. Nothing computes
// a commit point before they all are; an error on the way stops the worker,
// which resumes from the last commit. Each file's footer lists the first
// offsets of the files it finished with (partitioner.MetaFileGroup), which
// the finalizer's orphan rule needs: files of one group overlap.
func (w *Worker) finish(ctx context.Context, hms int64, why finishReason) error {
	n, group := w.files.hour(hms)
	// Last family first: should one fail, the families still open are
	// 0..k, as fileKey says.
	for fam := n - 1; fam >= 0; fam-- {
		if err := w.finishFile(ctx, fileKey{hms, fam}, group); err != nil {
			return err
		}
		w.env.Metrics.FilesFinished.WithLabelValues(string(why)).Inc()
	}
	return nil
}

// finishFile finishes the open file key, one of group (the first offsets
// of the hour's files finishing together; nil: it alone).
func (w *Worker) finishFile(ctx context.Context, k fileKey, group []int64) error {
	f, hms := w.files.byKey[k], k.hour
	if err := w.format.seal(f); err != nil {
		return w.files.failed(err)
	}
	extra := w.format.footer(f)
	if group != nil {
		extra = maps.Clone(extra)
		if extra == nil {
			extra = map[string]string{}
		}
		maps.Copy(extra, partitioner.FormatFileGroup(group))
	}
	info, err := f.fw.Finish(partitioner.FileMeta{
		Stream: w.st.Name, Topic: w.topic, Partition: w.partition, Hour: f.hour,
		Extra: extra,
	})
	if err != nil {
		return w.files.failed(fmt.Errorf("finish %s: %w", f.spool, err))
	}
	key := w.st.Path.FileKey(w.st.Name, f.hour, w.topic, w.partition, f.first)
	if err := upload(ctx, w.env, w.log, key, f.spool, info.Bytes); err != nil {
		return err
	}
	if w.table != nil {
		// Durable once the table references it (commit).
		if err := w.table.prepare(ctx, f.spool, key, f.hour, f.first); err != nil {
			return w.files.failed(err)
		}
		w.led.Uploaded(hms, f.first, info.LastOffset)
	} else {
		w.led.MadeDurable(hms, info.LastOffset)
		w.amends.note(ctx, w.led, f.hour, f.first)
	}
	_ = os.Remove(f.spool)
	delete(w.files.byKey, k)
	m := w.env.Metrics
	m.FilesCommitted.Inc()
	m.BytesCommitted.Add(float64(info.Bytes))
	m.RecordsWritten.WithLabelValues(w.st.Name).Add(float64(info.Records))
	w.log.Info("file committed", "key", key, "records", info.Records, "bytes", info.Bytes,
		"first_offset", info.FirstOffset, "last_offset", info.LastOffset)
	return nil
}

// housekeep runs between fetch ticks: flush idle partitions' files, bound the
// done list, send dead letters and commit.
func (w *Worker) housekeep(ctx context.Context) error {
	now := w.env.Now()
	// Idle means caught up and quiet: a worker that is merely starved of CPU
	// with records still waiting must not cut its files short.
	la := w.led.LastRead()
	idle := la > 0 && now.Sub(time.UnixMilli(la)) >= w.env.IdleTimeout && w.led.Next() >= w.hwm
	if err := w.boundMemory(ctx); err != nil {
		return err
	}
	tooMany := w.led.TooManyDone()
	finished := false
	for k, f := range w.files.byKey {
		why := finishHourClosed
		switch {
		case w.led.IsClosed(k.hour):
		case idle && w.wallClosed(k.hour, now):
			why = finishIdle
		case w.env.MaxFileAge > 0 && now.Sub(f.opened) >= w.env.MaxFileAge:
			// Bounds what a crash or a moved partition re-reads, and the
			// lag of the committed offset (docs/design.md, Rebalances).
			why = finishMaxAge
		case tooMany:
			why = finishDoneList
		default:
			continue
		}
		if err := w.finish(ctx, k.hour, why); err != nil {
			return err
		}
		finished = true
	}
	w.amends.prune(ctx, w.led)
	if idle {
		// Renewed every half idle timeout: the commits that tell other
		// instances the owner is alive (sink/unconsumed).
		renew := max(w.env.IdleTimeout/2, time.Second)
		w.led.Idle(idleMark(now, w.st), now.Truncate(renew).UnixMilli())
	}
	// An idle partition commits at once what it finished and each new
	// bucket threshold it attests (the commit is skipped when neither the
	// offset nor the metadata changed), so the hours it holds back
	// complete without waiting for the commit interval.
	if now.Sub(w.offsets.at) >= w.env.CommitInterval || idle || finished {
		return w.commit(ctx)
	}
	return nil
}

// wallClosed reports whether the wall clock (now) has closed the hour
// bucket starting at hms (unix ms): its end plus the allowed lateness has
// passed, as the completion rule counts it (start + 1h + lateness).
//
// Why idleness finishes only such files: an idle partition used to finish
// every open file, which cut the file of the open hour short at each
// pause of its producer — a partition fed in bursts further apart than
// idle_partition_timeout left one small file per burst in every hour.
// Keeping the open hour's file costs completion nothing: the hour cannot
// complete before the wall clock closes it anyway, and the partition
// attests its idleness in its commit metadata (Ledger.Idle: a claim apart
// from the safe watermark, which holds only while no record arrives
// after it), so older hours complete as before. Once the wall clock
// closes the hour, the file is finished and committed at the next
// housekeeping tick and the partition counts as caught up again.
func (w *Worker) wallClosed(hms int64, now time.Time) bool {
	return hms+ledger.HourMs+w.st.Lateness.Milliseconds() <= now.UnixMilli()
}

// idleMark is the watermark an idle partition of st attests at wall-clock
// time now (Ledger.Idle): the newest bucket threshold, start + 1h +
// allowed lateness, that now has passed. Bucket starts come from the
// stream's zone (partitioner.HourOf), so the thresholds are the ones the
// completion rule compares the watermark with, and the value changes once
// per bucket.
func idleMark(now time.Time, st *Stream) int64 {
	lat := st.Lateness.Milliseconds()
	at := now.Add(-st.Lateness - time.Duration(ledger.HourMs)*time.Millisecond)
	return partitioner.HourOf(at, st.Loc).UnixMilli() + ledger.HourMs + lat
}

// commit sends pending dead letters, adds uploaded files to the stream's
// table, then commits the ledger's commit point with its metadata
// (offsetCommits). Dead letters go first so that a commit never passes a
// record that is neither in the lake nor on the dead-letter topic.
func (w *Worker) commit(ctx context.Context) error {
	if err := w.dead.flush(ctx); err != nil {
		return err
	}
	if w.table != nil {
		added := func(hour time.Time, first int64) { w.amends.note(ctx, w.led, hour, first) }
		if err := w.table.publish(ctx, w.led, added); err != nil {
			return err
		}
	}
	w.offsets.at = w.env.Now()
	c, meta := w.led.CommitPoint()
	if c < 0 {
		return nil // nothing read yet
	}
	made, err := w.offsets.commit(ctx, c, meta, w.hwm)
	if made {
		w.led.Committed(c)
	}
	return err
}

// finishAll is the graceful end: every open file is uploaded and the final
// offsets committed while the generation is still ours.
func (w *Worker) finishAll(ctx context.Context) error {
	for k := range w.files.byKey {
		if err := w.finish(ctx, k.hour, finishShutdown); err != nil {
			return err
		}
	}
	w.offsets.at = time.Time{}
	if err := w.commit(ctx); err != nil && !errors.Is(err, errRevoked) {
		return err
	}
	return nil
}

// abandonAll throws away files that were not uploaded; their records are
// above the committed offset and will be replayed by the next owner.
func (w *Worker) abandonAll() {
	if w.table != nil {
		w.table.abandon()
	}
	w.env.Metrics.FilesAbandoned.Add(float64(len(w.files.byKey)))
	for k, f := range w.files.byKey {
		w.format.drop(f)
		_ = f.fw.Abort()
		w.led.Abandoned(k.hour)
		delete(w.files.byKey, k)
	}
}

// boundMemory checks this worker's memory share (memShare.bound) and
// finishes the open file it names, with the hour's other files.
func (w *Worker) boundMemory(ctx context.Context) error {
	k, ok, err := w.mem.bound(w.files)
	if !ok {
		return err
	}
	if err := w.finish(ctx, k.hour, finishMemory); err != nil {
		return err
	}
	w.mem.account(w.files)
	return nil
}

// deadLetter queues a record that cannot go to the lake, with err's
// reason, and notes it in the ledger as needing no file (deadLetters: it
// is on the dead-letter topic before a commit passes it).
func (w *Worker) deadLetter(m kafka.Message, err error) {
	w.dead.add(m, err)
	w.led.Skipped(m.Offset, w.nowMs)
}

func fmtMs(ms int64) string {
	if ms <= 0 {
		return "none"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
