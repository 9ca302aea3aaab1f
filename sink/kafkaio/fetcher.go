package kafkaio

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/sink/retry"
)

// Fetcher reads one topic partition from its leader and hands the records to
// the partition's worker in chunks over a bounded channel.
//
// Why not kafka.Reader: the Reader passes every message through its own
// channel and, measured with the benchmark broker on 2 cores, sent the
// broker several times the fetch work of a plain fetch loop for the same
// records (2.7 vs 0.6 CPU seconds per million records). The Fetcher is the
// Reader's read loop without the per-message hand-off: one Fetch request at
// a time on one connection (kafka-go's Conn.ReadBatchWith), the records
// parsed on the Fetcher's goroutine while the worker decodes and encodes the
// previous chunk on another core.
//
// Memory: at most chunkCap records per chunk and queue chunks waiting, plus
// the one being filled: the same bound the sink accounts for a reader
// (see package worker). A fetch response is parsed from the connection's
// buffer as it arrives, never held whole.
//
// Errors never reach the worker: like kafka.Reader, the Fetcher retries
// forever with capped backoff (re-dialling the leader after connection,
// leadership and unknown-partition errors) and logs; the worker simply sees
// no records. An offset below the log start (deleted by retention) skips to
// the log start and logs an error with the number of records lost upstream.
type Fetcher struct {
	dialer    *kafka.Dialer
	brokers   []string
	topic     string
	partition int
	maxBytes  int
	maxWait   time.Duration
	chunkCap  int
	log       *slog.Logger
	report    func(error)
	failing   bool // the last fetch or dial failed
	leaders   *Leaders
	version   uint64 // of the leaders' answer the last dial used
	stale     uint64 // version found wrong by a failed dial or fetch; 0: none

	out    chan []kafka.Message
	free   chan []kafka.Message // chunks the worker has finished with
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// FetcherConfig sizes a Fetcher.
type FetcherConfig struct {
	Dialer    *kafka.Dialer
	Brokers   []string
	Topic     string
	Partition int
	MaxBytes  int           // fetch.max.bytes of one request
	MaxWait   time.Duration // fetch.max.wait.ms: how long the broker may hold an empty fetch
	Queue     int           // records queued for the worker
	Log       *slog.Logger
	// Report, if set, is told every fetch or dial error, and nil once
	// records are fetched again after one (the worker's Health.Kafka).
	Report func(error)
	// Leaders, if set, tells the Fetcher where its partition leads (one
	// metadata request for all the Fetchers sharing it). Nil: each dial
	// looks its leader up on its own (kafka-go's DialLeader).
	Leaders *Leaders
}

// bufferedDialer returns a copy of d whose plain TCP connections are read
// through a buffer of size bytes. Why: kafka-go reads a fetch response
// through its connection's 4 KiB bufio.Reader, one read(2) per 4 KiB — about
// 80,000 system calls for a million 320-byte records, measured at 8 % of the
// sink's CPU. With the buffer below it, kafka-go's small reads are memory
// copies. TLS connections are left alone: crypto/tls already reads whole
// records.
func bufferedDialer(d *kafka.Dialer, size int) *kafka.Dialer {
	c := *d
	if d.TLS != nil || size <= 4096 {
		return &c
	}
	dial := d.DialFunc
	if dial == nil {
		dial = (&net.Dialer{
			LocalAddr:     d.LocalAddr,
			FallbackDelay: d.FallbackDelay,
			KeepAlive:     d.KeepAlive,
		}).DialContext
	}
	c.DialFunc = func(ctx context.Context, network, address string) (net.Conn, error) {
		conn, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return &bufConn{Conn: conn, r: bufio.NewReaderSize(conn, size)}, nil
	}
	return &c
}

// bufConn is a net.Conn whose reads go through r. Deadlines apply to the
// reads that reach the socket; buffered bytes are returned at once.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// StartFetcher starts fetching at offset (an absolute offset, or
// kafka.FirstOffset / kafka.LastOffset). The caller must call Stop.
func StartFetcher(ctx context.Context, c FetcherConfig, offset int64) *Fetcher {
	chunk := min(256, max(c.Queue, 1))
	depth := max(c.Queue/chunk, 1)
	f := &Fetcher{
		dialer: bufferedDialer(c.Dialer, min(256<<10, c.MaxBytes/4)), brokers: c.Brokers, topic: c.Topic, partition: c.Partition,
		maxBytes: c.MaxBytes, maxWait: c.MaxWait, chunkCap: chunk, log: c.Log, report: c.Report, leaders: c.Leaders,
		out:  make(chan []kafka.Message, depth),
		free: make(chan []kafka.Message, depth+2),
	}
	ctx, f.cancel = context.WithCancel(ctx)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.run(ctx, offset)
	}()
	return f
}

// records returns the channel of record chunks, in offset order. A chunk is
// the caller's until it passes it to recycle.
func (f *Fetcher) Records() <-chan []kafka.Message { return f.out }

// recycle returns a chunk the caller has finished with, so that its backing
// array is reused. The messages' byte slices must no longer be used.
func (f *Fetcher) Recycle(c []kafka.Message) {
	clear(c)
	select {
	case f.free <- c[:0]:
	default:
	}
}

// stop ends the Fetcher and waits for its goroutine. Idempotent.
func (f *Fetcher) Stop() {
	f.cancel()
	f.wg.Wait()
}

func (f *Fetcher) run(ctx context.Context, offset int64) {
	const first = 100 * time.Millisecond
	wait := retry.NewBackoff(first, 5*time.Second)
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !retry.Sleep(ctx, wait.Next()) {
			return
		}
		conn, err := f.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.logErr(attempt, "dial partition leader", err)
			f.stale = f.version
			continue
		}
		// Unblock a read in progress when the Fetcher stops.
		stopWatch := context.AfterFunc(ctx, func() { _ = conn.Close() })
		offset, err = f.readLoop(ctx, conn, offset)
		stopWatch()
		_ = conn.Close()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The leader may have moved: the next dial asks the cluster.
			f.logErr(attempt, "fetch", err)
			f.stale = f.version
		}
		if err == nil {
			attempt = -1 // progress was made: reconnect at once
			wait.Reset()
			f.stale = 0
		}
	}
}

// logErr logs a fetch or dial error at debug level and reports it: the
// first attempts after a leader change fail routinely, and Report's owner
// decides how often a lasting fault is worth a line.
func (f *Fetcher) logErr(attempt int, what string, err error) {
	f.log.Debug(what, "err", err, "attempt", attempt+1)
	f.failing = true
	if f.report != nil {
		f.report(fmt.Errorf("%s %s/%d: %w", what, f.topic, f.partition, err))
	}
}

// fetched notes records fetched: a fault reported before is over.
func (f *Fetcher) fetched() {
	if f.failing {
		f.failing = false
		if f.report != nil {
			f.report(nil)
		}
	}
}

func (f *Fetcher) dial(ctx context.Context) (*kafka.Conn, error) {
	if f.leaders != nil {
		p, v, err := f.leaders.Partition(ctx, f.topic, f.partition, f.stale)
		if v != 0 {
			f.version = v
		}
		if err != nil {
			return nil, err
		}
		return f.dialer.DialPartition(ctx, "tcp", "", p)
	}
	var errs []error
	for _, b := range f.brokers {
		conn, err := f.dialer.DialLeader(ctx, "tcp", b, f.topic, f.partition)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// readLoop fetches from conn until an error that needs a new connection. It
// returns the next offset to fetch and that error (nil when the new
// connection should be dialled at once).
func (f *Fetcher) readLoop(ctx context.Context, conn *kafka.Conn, offset int64) (int64, error) {
	var err error
	switch offset {
	case kafka.FirstOffset:
		offset, err = conn.Seek(0, kafka.SeekStart)
	case kafka.LastOffset:
		offset, err = conn.Seek(0, kafka.SeekEnd)
	default:
		_, err = conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck)
	}
	if err != nil {
		return offset, fmt.Errorf("seek: %w", err)
	}
	for {
		_, _ = conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck)
		var err error
		offset, err = f.readBatch(ctx, conn, offset)
		switch {
		case err == nil, errors.Is(err, io.EOF):
			f.fetched()
			continue
		case ctx.Err() != nil:
			return offset, nil
		case errors.Is(err, kafka.RequestTimedOut):
			continue
		case errors.Is(err, kafka.OffsetOutOfRange):
			first, last, oerr := f.logRange(ctx)
			if oerr != nil {
				return offset, fmt.Errorf("offset %d out of range; read offsets: %w", offset, oerr)
			}
			// kafka-go's connection is not reliably usable after a failed
			// fetch: go on from a new one either way.
			switch {
			case offset < first:
				f.log.Error("offset below the log start (deleted by retention): skipping to the log start; these records are lost upstream",
					"offset", offset, "log_start", first, "skipped", first-offset)
				return first, nil
			case offset < last:
				return offset, nil
			default:
				return offset, fmt.Errorf("offset %d is past the end of the log (%d)", offset, last)
			}
		default:
			// Connection, leadership or unknown-partition errors: dial the
			// current leader again.
			return offset, err
		}
	}
}

// logRange returns the partition's log start and end offsets. It asks on a
// connection of its own: kafka-go's connection is not reliably usable for
// another request after a fetch that failed.
func (f *Fetcher) logRange(ctx context.Context) (first, last int64, err error) {
	conn, err := f.dial(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn.ReadOffsets()
}

// readBatch sends one fetch at offset and passes its records on in chunks.
// It returns the offset after the last record passed on.
func (f *Fetcher) readBatch(ctx context.Context, conn *kafka.Conn, offset int64) (int64, error) {
	_ = conn.SetReadDeadline(time.Now().Add(f.maxWait + 10*time.Second))
	batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: f.maxBytes, MaxWait: f.maxWait})
	defer batch.Close()
	chunk := f.newChunk()
	var err error
	for {
		var m kafka.Message
		if m, err = batch.ReadMessage(); err != nil {
			break
		}
		chunk = append(chunk, m)
		offset = m.Offset + 1
		if len(chunk) == f.chunkCap {
			if !f.send(ctx, chunk) {
				return offset, ctx.Err()
			}
			chunk = f.newChunk()
		}
	}
	if len(chunk) > 0 && !f.send(ctx, chunk) {
		return offset, ctx.Err()
	}
	return offset, err
}

func (f *Fetcher) newChunk() []kafka.Message {
	select {
	case c := <-f.free:
		return c
	default:
		return make([]kafka.Message, 0, f.chunkCap)
	}
}

func (f *Fetcher) send(ctx context.Context, c []kafka.Message) bool {
	select {
	case f.out <- c:
		return true
	case <-ctx.Done():
		return false
	}
}
