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

// pendingFile is an uploaded file of a table stream, not yet in the table.
type pendingFile struct {
	file  tables.File
	hour  time.Time
	first int64
}

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
type Worker struct {
	env       *Env
	st        *Stream
	topic     string
	partition int
	gen       Generation
	log       *slog.Logger

	format format
	fx     *formatEnv // the format's view of the worker
	led    *ledger.Ledger
	files  *fileSet
	mem    *memShare
	dlq    []kafka.Message
	lastC  int64 // last committed offset
	lastCM string
	lastCT time.Time
	hwm    int64
	nowMs  int64 // wall clock at the start of the current tick, unix ms

	// pending are uploaded files waiting for the stream's table (nil
	// without one); owner is this worker as the table knows it.
	pending []pendingFile
	owner   tables.Owner
	// tried is the table commit that failed without an answer (it may
	// have landed): its first `files` pending files and the progress sent
	// with them. The next publish sends exactly it again; the table
	// answers success if it finds it already there.
	tried struct {
		files int
		c     int64
		meta  ledger.Meta
	}

	stopped bool // Run is restarting it after a failure
	plabel  string
}

// New returns the worker of topic's partition of stream st in generation
// gen. It does not start; Run does.
func New(env *Env, st *Stream, topic string, partition int, gen Generation) (*Worker, error) {
	mem := newMemShare(env, gen.Partitions)
	w := &Worker{
		env: env, st: st, topic: topic, partition: partition, gen: gen,
		log:    env.Log.With("topic", topic, "partition", partition),
		files:  newFileSet(env, mem, topic, partition),
		mem:    mem,
		lastC:  -1,
		plabel: strconv.Itoa(partition),
	}
	w.fx = &formatEnv{
		st: st, log: w.log, health: env.Health, mem: env.Budget,
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
	if w.st.Table != nil {
		if start, meta, err = w.claim(ctx, start, meta); err != nil {
			return 0, err
		}
	}
	w.led = ledger.New(start, meta, w.st.Lateness.Milliseconds())
	w.lastC = start
	w.lastCT = w.env.Now()
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

func (w *Worker) consume(ctx context.Context, drain <-chan struct{}) error {
	w.fx.drain = drain
	clear(w.dlq) // a restart reads them again
	w.dlq = w.dlq[:0]
	start, err := w.start(ctx)
	if err != nil {
		return err
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

	defer w.abandonAll()
	defer w.mem.release()
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
		var drop bool
		if hour, hms, drop = w.applyLatePolicy(m, hour); drop {
			return nil
		}
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
		if err := w.finish(ctx, hms); err != nil {
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
	oldWM := w.led.RawWM()
	w.led.Read(m.Offset, ev.UnixMilli(), now)
	if w.mem.due() {
		if err := w.boundMemory(ctx); err != nil {
			return err
		}
	}
	if f.fw.EstimatedBytes() >= w.env.MaxFileBytes {
		if err := w.finish(ctx, hms); err != nil {
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
				if err := w.finish(ctx, k.hour); err != nil {
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
func (w *Worker) finish(ctx context.Context, hms int64) error {
	n, group := w.files.hour(hms)
	// Last family first: should one fail, the families still open are
	// 0..k, as fileKey says.
	for fam := n - 1; fam >= 0; fam-- {
		if err := w.finishFile(ctx, fileKey{hms, fam}, group); err != nil {
			return err
		}
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
	if err := w.upload(ctx, key, f.spool, info.Bytes); err != nil {
		return err
	}
	if w.st.Table != nil {
		// Durable once the table references it (commit).
		tf, err := w.st.Table.Prepare(ctx, f.spool, key)
		if err != nil {
			return w.files.failed(err)
		}
		w.pending = append(w.pending, pendingFile{file: tf, hour: f.hour, first: f.first})
		w.led.Uploaded(hms, f.first, info.LastOffset)
	} else {
		w.led.MadeDurable(hms, info.LastOffset)
		w.noteAmend(ctx, f.hour, f.first)
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

// upload puts a finished spool file into the lake, retrying with capped
// exponential backoff and jitter until it succeeds or ctx ends. The
// partition waits meanwhile: nothing is committed past records that are not
// durable.
//
// Every attempt's outcome goes to Health (which logs a fault rate-limited):
// readiness follows the real uploads, so it stays "storage unreachable"
// from the first failed attempt until an upload succeeds.
func (w *Worker) upload(ctx context.Context, key, path string, size int64) error {
	report, end := w.env.Health.Upload()
	defer end()
	err := retry.Until(ctx, retry.NewBackoff(100*time.Millisecond, 10*time.Second), func(ctx context.Context) error {
		return w.putFile(ctx, key, path, size)
	}, func(attempt int, err error) {
		w.env.Metrics.UploadRetries.Inc()
		report(err)
		w.log.Debug("upload failed, retrying", "key", key, "attempt", attempt, "err", err)
	})
	if err == nil {
		report(nil)
	}
	return err
}

func (w *Worker) putFile(ctx context.Context, key, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open spool file: %w", err)
	}
	defer f.Close()
	if err := w.env.Writer.Put(ctx, key, f, size); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
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
	all := idle || w.led.TooManyDone()
	for k := range w.files.byKey {
		if all || w.led.IsClosed(k.hour) {
			if err := w.finish(ctx, k.hour); err != nil {
				return err
			}
		}
	}
	w.pruneAmends(ctx)
	if now.Sub(w.lastCT) >= w.env.CommitInterval || idle {
		return w.commit(ctx)
	}
	return nil
}

// commit sends pending dead letters, then commits the ledger's commit point
// with its metadata (kafkaio.Admin.Commit says why not kafka-go's helpers).
// Dead letters go first so that a commit never passes a record that is
// neither in the lake nor on the dead-letter topic.
func (w *Worker) commit(ctx context.Context) error {
	if err := w.flushDeadLetters(ctx); err != nil {
		return err
	}
	if err := w.publish(ctx); err != nil {
		return err
	}
	w.lastCT = w.env.Now()
	c, meta := w.led.CommitPoint()
	if c < 0 {
		return nil // nothing read yet
	}
	enc := meta.Encode()
	if c == w.lastC && enc == w.lastCM {
		w.report(c, meta)
		return nil
	}
	if err := w.env.Offsets.Commit(ctx, w.gen.ID, w.gen.Member, w.topic, w.partition, c, enc); err != nil {
		w.env.Metrics.OffsetCommitErrors.Inc()
		if kafkaio.IsGenerationError(err) {
			return errRevoked
		}
		w.log.Warn("commit offset", "offset", c, "err", err)
		return nil
	}
	w.env.Metrics.OffsetCommits.Inc()
	w.lastC, w.lastCM = c, enc
	w.led.Committed(c)
	w.report(c, meta)
	return nil
}

// report sets the partition's gauges and tells Progress.
func (w *Worker) report(c int64, meta ledger.Meta) {
	if w.env.Progress != nil {
		w.env.Progress(Progress{Stream: w.st.Name, Topic: w.topic, Partition: w.partition, Generation: w.gen.ID,
			Committed: c, High: w.hwm, Meta: meta})
	}
	m := w.env.Metrics
	m.CommittedOffset.WithLabelValues(w.topic, w.plabel).Set(float64(c))
	if w.hwm > 0 {
		m.PartitionHighOffset.WithLabelValues(w.topic, w.plabel).Set(float64(w.hwm))
		m.ConsumerLag.WithLabelValues(w.topic, w.plabel).Set(float64(max(w.hwm-c, 0)))
	}
	if meta.WM > 0 {
		m.Watermark.WithLabelValues(w.st.Name, w.topic, w.plabel).Set(float64(meta.WM) / 1000)
	}
}

// finishAll is the graceful end: every open file is uploaded and the final
// offsets committed while the generation is still ours.
func (w *Worker) finishAll(ctx context.Context) error {
	for k := range w.files.byKey {
		if err := w.finish(ctx, k.hour); err != nil {
			return err
		}
	}
	w.lastCT = time.Time{}
	if err := w.commit(ctx); err != nil && !errors.Is(err, errRevoked) {
		return err
	}
	return nil
}

// abandonAll throws away files that were not uploaded; their records are
// above the committed offset and will be replayed by the next owner.
func (w *Worker) abandonAll() {
	// Uploaded files not in the table are replayed like open ones; the
	// next owner re-creates them under the same names.
	w.pending = nil
	w.tried.files = 0
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
	if err := w.finish(ctx, k.hour); err != nil {
		return err
	}
	w.mem.account(w.files)
	return nil
}

func fmtMs(ms int64) string {
	if ms <= 0 {
		return "none"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
