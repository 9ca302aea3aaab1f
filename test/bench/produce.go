package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// produced is what produce sent.
type produced struct {
	records, bytes int64
	perPartition   map[int]int64
}

// produceChunk is the number of records per produce request: 2,000 records
// of ~320 bytes (JSON; Avro ones are smaller) stay under the broker's 1 MiB
// max.message.bytes. It is the default and the most (Options.Chunk).
const produceChunk = 2000

// chunk is the records per produce request: Options.Chunk, at most
// produceChunk.
func (o Options) chunk() int {
	if o.Chunk <= 0 {
		return produceChunk
	}
	return min(o.Chunk, produceChunk)
}

// produce writes o.Records records made by gen round robin over the
// partitions: record seq goes to partition seq % Partitions (with Busy,
// to busy partition seq % Busy). It opens one
// leader connection per partition and sends large uncompressed batches from
// a few goroutines, so producing 1M records takes seconds, not minutes.
// Event times and the random content depend only on the partition and seq,
// not on the format, so JSON and Avro runs produce the same records.
func produce(ctx context.Context, addr, topic string, o Options, from time.Time, gen generator) (produced, error) {
	span := time.Duration(o.Hours) * time.Hour
	end := from.Add(span - time.Millisecond)
	workers := 4
	var tr *turns
	if o.Live {
		// One producer per partition, taking turns chunk by chunk.
		workers = o.Partitions
		tr = newTurns(o.Busy, o.Rate, o.chunk(), max(o.Burst, o.chunk()), o.BurstGap)
	}
	var (
		mu   sync.Mutex
		out  = produced{perPartition: map[int]int64{}}
		errs []error
		wg   sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for p := w; p < o.Partitions; p += workers {
				n, b, err := producePartition(ctx, addr, topic, p, o, from, span, end, gen, tr)
				mu.Lock()
				out.records += n
				out.bytes += b
				out.perPartition[p] = n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}(w)
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func producePartition(ctx context.Context, addr, topic string, p int, o Options, from time.Time, span time.Duration, end time.Time,
	gen generator, tr *turns) (n, nbytes int64, err error) {
	first, stride := int64(p), int64(o.Partitions)
	busyIdx := -1
	if o.Busy > 0 {
		i, busy := busyIndex(p, o.Partitions, o.Busy)
		if !busy {
			return 0, 0, nil
		}
		first, stride, busyIdx = int64(i), int64(o.Busy), i
	}
	if tr != nil {
		defer tr.finished(busyIdx)
	}
	conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, p)
	if err != nil {
		return 0, 0, fmt.Errorf("dial leader of %s/%d: %w", topic, p, err)
	}
	defer conn.Close()
	r := rand.New(rand.NewPCG(2026, uint64(p)))
	chunk := o.chunk()
	batch := make([]kafka.Message, 0, chunk)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if tr != nil {
			tr.wait(busyIdx)
			defer tr.next()
		}
		_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := conn.WriteMessages(batch...); err != nil {
			return fmt.Errorf("produce to %s/%d: %w", topic, p, err)
		}
		batch = batch[:0]
		return nil
	}
	for seq := first; seq < int64(o.Records); seq += stride {
		var t time.Time
		if o.Interleave {
			t = from.Add(time.Duration(r.Int64N(int64(span))))
		} else {
			// Event-time order with up to 30 s of disorder: within the
			// allowed lateness, so no record is late.
			t = from.Add(time.Duration(int64(span) * seq / int64(o.Records))).Add(time.Duration(r.IntN(30000)) * time.Millisecond)
			if t.After(end) {
				t = end
			}
		}
		t = t.Truncate(time.Millisecond)
		v, err := gen(r, seq, t)
		if err != nil {
			return n, nbytes, err
		}
		batch = append(batch, kafka.Message{Value: v, Time: t})
		n++
		nbytes += int64(len(v))
		if len(batch) == chunk {
			if err := flush(); err != nil {
				return n, nbytes, err
			}
		}
	}
	return n, nbytes, flush()
}

// createTopic creates topic with the given number of partitions.
func createTopic(ctx context.Context, addr, topic string, partitions int) error {
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if e := resp.Errors[topic]; e != nil {
		return fmt.Errorf("create topic %s: %w", topic, e)
	}
	return nil
}

// highWatermarks returns the end offset of every partition of topic.
func highWatermarks(ctx context.Context, addr, topic string, partitions int) (map[int]int64, error) {
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := 0; p < partitions; p++ {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := c.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets %s: %w", topic, err)
	}
	out := map[int]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	if len(out) != partitions {
		return nil, fmt.Errorf("list offsets %s: %d of %d partitions answered", topic, len(out), partitions)
	}
	return out, nil
}

// busyIndex says whether partition p is one of the busy ones of a topic of
// partitions partitions, and which: busy partition i is i*partitions/busy,
// spread over the topic; it gets records i, i+busy, ….
func busyIndex(p, partitions, busy int) (int, bool) {
	i := (p*busy + busy - 1) / partitions
	return i, i < busy && i*partitions/busy == p
}

// turns makes the busy partitions' producers take turns, a burst each in
// partition order, as a producer with a sticky partitioner sends a batch
// to one partition, then the next to another: each partition's records
// arrive in bursts with gaps between them while the sink runs. A burst is
// perTurn chunks (Options.Burst); gap keeps a partition's bursts at least
// that far apart (Options.BurstGap), so that the partition is quiet longer
// than the sink's idle timeout between them however fast the broker is.
type turns struct {
	mu      sync.Mutex
	cond    *sync.Cond
	turn    int          // whose turn: a busy partition's index
	n       int          // busy partitions
	done    map[int]bool // producers that have finished
	chunk   int          // records per chunk
	perTurn int          // chunks per turn, at least 1
	inTurn  int          // chunks sent in the current turn
	gap     time.Duration
	lastEnd map[int]time.Time // when each partition's last burst ended
	// rate caps the records per second (0: as fast as the broker takes
	// them): chunk k is not sent before start + k chunks at rate.
	rate  float64
	start time.Time
	sent  int
}

// newTurns makes the turns of n producers sending chunks of chunk records;
// burst is the records of a turn (rounded up to whole chunks).
func newTurns(n int, rate float64, chunk, burst int, gap time.Duration) *turns {
	t := &turns{n: n, done: map[int]bool{}, rate: rate, start: time.Now(), chunk: chunk,
		perTurn: max(1, (burst+chunk-1)/chunk), gap: gap, lastEnd: map[int]time.Time{}}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// wait blocks until it is busy partition i's turn and, with a rate, until
// the turn's chunk is due; a turn's first chunk also waits for the gap
// after the partition's previous burst.
func (t *turns) wait(i int) {
	t.mu.Lock()
	for t.turn != i {
		t.cond.Wait()
	}
	var due time.Time
	if t.rate > 0 {
		due = t.start.Add(time.Duration(float64(t.sent*t.chunk) / t.rate * float64(time.Second)))
	}
	if e, ok := t.lastEnd[i]; ok && t.inTurn == 0 && t.gap > 0 && e.Add(t.gap).After(due) {
		due = e.Add(t.gap)
	}
	t.mu.Unlock()
	time.Sleep(time.Until(due))
}

// next notes a chunk sent and, at the end of the turn's burst, passes the
// turn to the next producer that has not finished.
func (t *turns) next() {
	t.mu.Lock()
	t.sent++
	t.inTurn++
	if t.inTurn >= t.perTurn {
		t.lastEnd[t.turn] = time.Now()
		t.advance()
	}
	t.mu.Unlock()
}

// finished takes producer i out of the rotation.
func (t *turns) finished(i int) {
	t.mu.Lock()
	t.done[i] = true
	if t.turn == i {
		t.advance()
	}
	t.mu.Unlock()
}

func (t *turns) advance() {
	t.inTurn = 0
	for range t.n {
		t.turn = (t.turn + 1) % t.n
		if !t.done[t.turn] {
			break
		}
	}
	t.cond.Broadcast()
}

// partitionOf is the partition produce puts record seq in.
func partitionOf(o Options) func(seq int64) int {
	return func(seq int64) int {
		if o.Busy > 0 {
			return int(seq%int64(o.Busy)) * o.Partitions / o.Busy
		}
		return int(seq % int64(o.Partitions))
	}
}
