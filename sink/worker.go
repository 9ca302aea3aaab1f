package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode/confluent"
)

// openFile is a data file being written for one hour of one partition.
type openFile struct {
	hour  time.Time // in the stream's location
	first int64
	fw    *partitioner.FileWriter
	spool string
	// schemaID is the registry id of the writer schema of the file's
	// records (avro, protobuf); 0 for json.
	schemaID int
	inf      *inferFile // schema: infer streams (infer.go); else nil
}

// worker owns one partition for the lifetime of one group generation. It is
// not safe for concurrent use; the sink runs one goroutine per worker.
type worker struct {
	s         *Sink
	st        *stream
	topic     string
	partition int
	genID     int
	memberID  string
	log       *slog.Logger

	dec    recordDecoder
	cdec   *confluent.Decoder // dec, for avro and protobuf streams; else nil
	drain  <-chan struct{}
	led    *ledger
	files  map[int64]*openFile // by hour start, unix ms
	dlq    []kafka.Message
	lastC  int64 // last committed offset
	lastCM string
	lastCT time.Time
	hwm    int64
	nowMs  int64 // wall clock at the start of the current tick, unix ms
	nparts int   // partitions of this member: sizes the fetch buffers

	memHeld  int64 // bytes this worker has counted in s.mem
	appended int   // records since the last memory check
	memEvery int   // memCheckEvery(nparts), on the hot path
	plabel   string

	inf *inferWorker // schema: infer streams (infer.go); else nil
}

func (s *Sink) newWorker(st *stream, topic string, partition int, gen genInfo) (*worker, error) {
	dec, cdec, err := newRecordDecoder(st, s.schemas)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", st.name, err)
	}
	return &worker{
		s: s, st: st, topic: topic, partition: partition,
		genID: gen.id, memberID: gen.member, nparts: max(gen.partitions, 1),
		memEvery: memCheckEvery(gen.partitions),
		log:      s.log.With("topic", topic, "partition", partition),
		dec:      dec,
		cdec:     cdec,
		files:    map[int64]*openFile{},
		lastC:    -1,
		plabel:   strconv.Itoa(partition),
	}, nil
}

// errRevoked stops a worker whose generation ended; its open files are
// abandoned and the next owner replays them from the committed offset.
var errRevoked = errors.New("partition revoked")

// run consumes the partition until ctx ends (generation over: abandon open
// files) or drain is closed (shutdown: finish files, upload, commit, call
// drained, then wait for ctx to end). The wait matters: kafka-go ends a
// generation as soon as any of its goroutines returns, which would cancel
// the other partitions' final commits.
func (w *worker) run(ctx context.Context, drain <-chan struct{}, drained func()) error {
	err := w.consume(ctx, drain)
	drained()
	if err == nil {
		<-ctx.Done()
	}
	return err
}

func (w *worker) consume(ctx context.Context, drain <-chan struct{}) error {
	w.drain = drain
	start, meta, err := w.s.fetchCommitted(ctx, w.topic, w.partition)
	if err != nil {
		return err
	}
	w.led = newLedger(start, meta, w.st.lateness.Milliseconds())
	if start < 0 {
		// No commit yet: the fetcher resolves FirstOffset/LastOffset.
		w.led.next = -1
	}
	w.lastC = start
	w.lastCT = w.s.now()
	w.cleanSpool()
	w.log.Info("partition assigned", "start_offset", start, "watermark", fmtMs(meta.RW))

	readerStart := start
	if start < 0 {
		readerStart = w.s.startOffset
	}
	f := startFetcher(ctx, fetcherConfig{
		dialer:    w.s.dialer,
		brokers:   w.s.cfg.Kafka.Brokers,
		topic:     w.topic,
		partition: w.partition,
		maxBytes:  w.s.fetchBytes(w.nparts),
		maxWait:   250 * time.Millisecond,
		queue:     queueCapacity(w.nparts),
		log:       w.log,
	}, readerStart)
	defer f.stop()

	defer w.abandonAll()
	defer func() { w.s.mem.release(w.memHeld) }()
	tick := time.NewTicker(w.s.tick)
	defer tick.Stop()
	records := f.records()
	for {
		// One clock read per tick, not per record; housekeeping (idle
		// flush, commits) runs on every tick, busy or not: select picks
		// among ready cases at random.
		w.nowMs = w.s.now().UnixMilli()
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
				w.s.metrics.RecordsConsumed.Add(float64(len(chunk)))
				for _, m := range chunk {
					if err := w.process(ctx, m); err != nil {
						if errors.Is(err, errDraining) {
							return w.finishAll(ctx)
						}
						return err
					}
				}
				f.recycle(chunk)
			}
		}
		if err := w.housekeep(ctx); err != nil {
			if errors.Is(err, errRevoked) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// process routes one record: decode, then into its hour's file, or to the
// dead-letter topic.
//
// The caller counts records consumed (per chunk: a shared counter updated
// per record costs cache-line traffic between the cores).
func (w *worker) process(ctx context.Context, m kafka.Message) error {
	now := w.nowMs
	if m.HighWaterMark > w.hwm {
		w.hwm = m.HighWaterMark
	}
	if w.led.next < 0 {
		w.led.next = m.Offset
	}
	row, ev, err := w.dec.Decode(m.Value, m.Time)
	if err != nil && w.cdec != nil {
		row, ev, err = w.retryDecode(ctx, m, err)
		if err != nil && !isRecordError(err) {
			return err // shutting down; the record is replayed
		}
	}
	if err != nil {
		w.deadLetter(m, err)
		w.led.skipped(m.Offset, now)
		return nil
	}
	hour := partitioner.HourOf(ev, w.st.loc)
	hms := hour.UnixMilli()
	if w.led.durableAlready(hms, m.Offset) {
		w.s.metrics.RecordsSkipped.Inc()
		w.led.skipped(m.Offset, now)
		return nil
	}
	if w.led.isClosed(hms) {
		w.s.metrics.LateRecords.WithLabelValues(w.st.name).Inc()
		var drop bool
		if hour, hms, drop = w.applyLatePolicy(m, hour); drop {
			w.led.skipped(m.Offset, now)
			return nil
		}
	}
	f := w.files[hms]
	schema, schemaID := w.st.schema, 0
	if w.cdec != nil {
		schema, schemaID = w.cdec.Schema(), w.cdec.SchemaID()
		if f != nil && f.schemaID != schemaID {
			// A new writer schema starts a new file (formats.go).
			if err := w.finish(ctx, hms); err != nil {
				return err
			}
			f = nil
		}
	}
	if w.st.infer != nil {
		// Sample, or decode into the file's inferred columns and roll to
		// a wider file if the record does not fit (infer.go).
		var done bool
		if f, row, done, err = w.inferRow(ctx, f, hms, m); err != nil || done {
			return err
		}
	}
	if f == nil {
		var err error
		if f, err = w.openFile(hour, m.Offset, schema, schemaID); err != nil {
			return err
		}
		w.files[hms] = f
		w.led.opened(hms, m.Offset)
	}
	if f.inf != nil {
		if err := w.inferAppend(f, row, m, ev); err != nil {
			return err
		}
	} else if err := f.fw.Append(row, m.Offset, ev); err != nil {
		return fmt.Errorf("append to %s: %w", f.spool, err)
	}
	oldWM := w.led.rawWM
	w.led.read(m.Offset, ev.UnixMilli(), now)
	if w.appended++; w.appended >= w.memEvery {
		if err := w.boundMemory(ctx); err != nil {
			return err
		}
	}
	if f.fw.EstimatedBytes() >= w.s.maxFileBytes {
		if err := w.finish(ctx, hms); err != nil {
			return err
		}
	}
	if w.led.rawWM > oldWM {
		// Close the hours this record's event time has just closed. Files of
		// hours closed earlier (late data) wait for the next housekeeping
		// tick, so that a burst of late records shares one file.
		lat := w.st.lateness.Milliseconds()
		for h := range w.files {
			if end := h + hourMs + lat; end > oldWM && end <= w.led.rawWM {
				if err := w.finish(ctx, h); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (w *worker) openFile(hour time.Time, first int64, schema *partitioner.Schema, schemaID int) (*openFile, error) {
	dir := w.spoolDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	p := filepath.Join(dir, fmt.Sprintf("%d-%020d.parquet", hour.Unix(), first))
	fw, err := partitioner.NewFileWriter(p, schema, w.fileOptions(schema))
	if err != nil {
		return nil, fmt.Errorf("open spool file: %w", err)
	}
	of := &openFile{hour: hour, first: first, fw: fw, spool: p, schemaID: schemaID}
	if w.st.infer != nil {
		of.inf = newInferFile()
	}
	return of, nil
}

func (w *worker) spoolDir() string {
	return filepath.Join(w.s.cfg.Files.SpoolDir, w.s.cfg.Kafka.GroupID, fmt.Sprintf("%s-%d", w.topic, w.partition))
}

// cleanSpool removes spool files left by an earlier owner of this partition
// in this process or a crashed one; their records are replayed.
func (w *worker) cleanSpool() {
	_ = os.RemoveAll(w.spoolDir())
}

// finish closes the file of hour, uploads it (retrying until it succeeds or
// the generation ends) and marks its records durable.
func (w *worker) finish(ctx context.Context, hms int64) error {
	f := w.files[hms]
	if f == nil {
		return nil
	}
	if err := w.endSample(f); err != nil {
		return err
	}
	// Dead letters below this file's records must be out before the commit
	// that this upload enables; flushing here keeps the order simple.
	info, err := f.fw.Finish(partitioner.FileMeta{
		Stream: w.st.name, Topic: w.topic, Partition: w.partition, Hour: f.hour,
		Extra: w.footerExtra(f),
	})
	if err != nil {
		return fmt.Errorf("finish %s: %w", f.spool, err)
	}
	key := w.st.path.Render(w.st.name, f.hour) + "/" + partitioner.FileName(w.topic, w.partition, f.first)
	if err := w.s.upload(ctx, key, f.spool, info.Bytes, w.log); err != nil {
		return err
	}
	_ = os.Remove(f.spool)
	delete(w.files, hms)
	w.led.madeDurable(hms, info.LastOffset)
	w.noteAmend(ctx, f.hour, f.first)
	w.s.metrics.FilesCommitted.Inc()
	w.s.metrics.BytesCommitted.Add(float64(info.Bytes))
	w.s.metrics.RecordsWritten.WithLabelValues(w.st.name).Add(float64(info.Records))
	w.log.Info("file committed", "key", key, "records", info.Records, "bytes", info.Bytes,
		"first_offset", info.FirstOffset, "last_offset", info.LastOffset)
	return nil
}

// housekeep runs between fetch ticks: flush idle partitions' files, bound the
// done list, send dead letters and commit.
func (w *worker) housekeep(ctx context.Context) error {
	now := w.s.now()
	// Idle means caught up and quiet: a worker that is merely starved of CPU
	// with records still waiting must not cut its files short.
	idle := w.led.la > 0 && now.Sub(time.UnixMilli(w.led.la)) >= w.s.idleTimeout && w.led.next >= w.hwm
	if err := w.boundMemory(ctx); err != nil {
		return err
	}
	all := idle || w.led.tooManyDone()
	for h := range w.files {
		if all || w.led.isClosed(h) {
			if err := w.finish(ctx, h); err != nil {
				return err
			}
		}
	}
	w.pruneAmends(ctx)
	if now.Sub(w.lastCT) >= w.s.commitInterval || idle {
		return w.commit(ctx)
	}
	return nil
}

// commit sends pending dead letters, then commits the ledger's commit point
// with its metadata through Client.OffsetCommit (kafka-go's Generation and
// Reader commit helpers would overwrite the metadata with "").
func (w *worker) commit(ctx context.Context) error {
	if err := w.flushDeadLetters(ctx); err != nil {
		return err
	}
	w.lastCT = w.s.now()
	c, meta := w.led.commitPoint()
	if c < 0 {
		return nil // nothing read yet
	}
	enc := meta.encode()
	if c == w.lastC && enc == w.lastCM {
		w.updateGauges(c, meta)
		return nil
	}
	if err := w.s.commitOffset(ctx, w.genID, w.memberID, w.topic, w.partition, c, enc); err != nil {
		w.s.metrics.OffsetCommitErrors.Inc()
		if isGenerationError(err) {
			return errRevoked
		}
		w.log.Warn("commit offset", "offset", c, "err", err)
		return nil
	}
	w.s.metrics.OffsetCommits.Inc()
	w.lastC, w.lastCM = c, enc
	w.led.committed(c)
	w.updateGauges(c, meta)
	return nil
}

func (w *worker) updateGauges(c int64, meta commitMeta) {
	w.s.notePartition(w.st, w.topic, w.partition, w.genID, c, w.hwm, meta)
	m := w.s.metrics
	m.CommittedOffset.WithLabelValues(w.topic, w.plabel).Set(float64(c))
	if w.hwm > 0 {
		m.PartitionHighOffset.WithLabelValues(w.topic, w.plabel).Set(float64(w.hwm))
		m.ConsumerLag.WithLabelValues(w.topic, w.plabel).Set(float64(max(w.hwm-c, 0)))
	}
	if meta.WM > 0 {
		m.Watermark.WithLabelValues(w.st.name, w.topic, w.plabel).Set(float64(meta.WM) / 1000)
	}
}

// finishAll is the graceful end: every open file is uploaded and the final
// offsets committed while the generation is still ours.
func (w *worker) finishAll(ctx context.Context) error {
	for h := range w.files {
		if err := w.finish(ctx, h); err != nil {
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
func (w *worker) abandonAll() {
	for h, f := range w.files {
		w.dropSample(f)
		_ = f.fw.Abort()
		w.led.abandoned(h)
		delete(w.files, h)
	}
}

func fmtMs(ms int64) string {
	if ms <= 0 {
		return "none"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
