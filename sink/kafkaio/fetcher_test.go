package kafkaio

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func produceValues(t *testing.T, addr, topic string, partition, from, n int) {
	t.Helper()
	conn, err := kafka.DialLeader(context.Background(), "tcp", addr, topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var msgs []kafka.Message
	for i := from; i < from+n; i++ {
		msgs = append(msgs, kafka.Message{Value: []byte(fmt.Sprintf("v%d", i))})
		if len(msgs) == 100 {
			if _, err := conn.WriteMessages(msgs...); err != nil {
				t.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	if len(msgs) > 0 {
		if _, err := conn.WriteMessages(msgs...); err != nil {
			t.Fatal(err)
		}
	}
}

// collect reads records from f until it has n of them or the deadline.
func collect(t *testing.T, f *Fetcher, n int, within time.Duration) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	deadline := time.After(within)
	for len(out) < n {
		select {
		case c := <-f.Records():
			for _, m := range c {
				out = append(out, kafka.Message{Offset: m.Offset, Value: m.Value, HighWaterMark: m.HighWaterMark})
			}
			f.Recycle(c)
		case <-deadline:
			t.Fatalf("got %d records within %v, want %d", len(out), within, n)
		}
	}
	return out
}

func TestFetcher(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	produceValues(t, addr, "t", 0, 0, 1000)

	for _, tc := range []struct {
		name     string
		start    int64
		queue    int
		maxBytes int
		first    int64 // offset of the first record delivered
		n        int   // records expected before the new ones
	}{
		{"first offset", kafka.FirstOffset, 1024, 1 << 20, 0, 1000},
		{"absolute, small fetches and queue", 500, 10, 4096, 500, 500},
		{"last offset", kafka.LastOffset, 64, 1 << 20, 1000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := StartFetcher(ctx, FetcherConfig{
				Dialer: kafka.DefaultDialer, Brokers: []string{addr}, Topic: "t", Partition: 0,
				MaxBytes: tc.maxBytes, MaxWait: 50 * time.Millisecond, Queue: tc.queue, Log: slog.New(slog.DiscardHandler),
			}, tc.start)
			defer f.Stop()
			got := collect(t, f, tc.n, 10*time.Second)
			for i, m := range got {
				want := tc.first + int64(i)
				if m.Offset != want || string(m.Value) != fmt.Sprintf("v%d", want) {
					t.Fatalf("record %d: offset %d value %q, want offset %d value v%d", i, m.Offset, m.Value, want, want)
				}
				if m.HighWaterMark < m.Offset+1 {
					t.Fatalf("record %d: high watermark %d below its offset", i, m.HighWaterMark)
				}
			}
			select {
			case c := <-f.Records():
				t.Fatalf("unexpected records after the end: %d, first offset %d", len(c), c[0].Offset)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}

	t.Run("new records while waiting", func(t *testing.T) {
		f := StartFetcher(context.Background(), FetcherConfig{
			Dialer: kafka.DefaultDialer, Brokers: []string{addr}, Topic: "t", Partition: 1,
			MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond, Queue: 64, Log: slog.New(slog.DiscardHandler),
		}, kafka.FirstOffset)
		defer f.Stop()
		time.Sleep(150 * time.Millisecond) // a few empty fetches
		produceValues(t, addr, "t", 1, 0, 300)
		got := collect(t, f, 300, 10*time.Second)
		for i, m := range got {
			if m.Offset != int64(i) {
				t.Fatalf("record %d has offset %d", i, m.Offset)
			}
		}
	})
}

// TestFetcherBelowLogStart: records deleted by retention are skipped with an
// error log naming how many, not retried forever.
func TestFetcherBelowLogStart(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "r"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	produceValues(t, addr, "r", 0, 0, 200)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = "r"
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Offset = 150
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 5000
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if e := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); e != nil {
		t.Fatal(e)
	}
	var logs syncBuffer
	f := StartFetcher(context.Background(), FetcherConfig{
		Dialer: kafka.DefaultDialer, Brokers: []string{addr}, Topic: "r", Partition: 0,
		MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond, Queue: 64, Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, 100)
	defer f.Stop()
	got := collect(t, f, 50, 10*time.Second)
	if got[0].Offset != 150 || got[49].Offset != 199 {
		t.Fatalf("got offsets %d..%d, want 150..199", got[0].Offset, got[49].Offset)
	}
	if l := logs.String(); !strings.Contains(l, "log start") || !strings.Contains(l, "skipped=50") {
		t.Fatalf("no error log naming the 50 skipped records: %s", l)
	}
}

// TestFetcherReconnects: connections dropped under the Fetcher cost no
// record and need no help from the worker.
func TestFetcherReconnects(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "k"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	produceValues(t, addr, "k", 0, 0, 100)
	var (
		mu    sync.Mutex
		conns []net.Conn
		dials int
	)
	dialer := &kafka.Dialer{DialFunc: func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, address)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			dials++
			mu.Unlock()
		}
		return c, err
	}}
	f := StartFetcher(context.Background(), FetcherConfig{
		Dialer: dialer, Brokers: []string{addr}, Topic: "k", Partition: 0,
		MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond, Queue: 64, Log: slog.New(slog.DiscardHandler),
	}, kafka.FirstOffset)
	defer f.Stop()
	got := collect(t, f, 100, 10*time.Second)
	mu.Lock()
	before := dials
	for _, c := range conns {
		_ = c.Close()
	}
	mu.Unlock()
	produceValues(t, addr, "k", 0, 100, 100)
	got = append(got, collect(t, f, 100, 10*time.Second)...)
	for i, m := range got {
		if m.Offset != int64(i) || string(m.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("record %d: offset %d value %q", i, m.Offset, m.Value)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if dials <= before {
		t.Fatalf("Fetcher did not dial again after its connections were closed (%d dials)", dials)
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// kfake's cluster and kafka-go's shared transport keep background
		// goroutines for the life of the process.
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*conn).run"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// TestFetcherLeaders: Fetchers that share a Leaders dial their leaders
// from one metadata answer (one lookup connection for all of them instead
// of one each), and a Fetcher whose leader moves asks again and follows it.
func TestFetcherLeaders(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "l"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	for p := range 6 {
		produceValues(t, addrs[0], "l", p, 0, 50)
	}
	var (
		mu    sync.Mutex
		dials int
	)
	dialer := &kafka.Dialer{DialFunc: func(ctx context.Context, network, address string) (net.Conn, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, network, address)
	}}
	leaders := NewLeaders(dialer, addrs)
	var fetchers []*Fetcher
	for p := range 6 {
		f := StartFetcher(context.Background(), FetcherConfig{
			Dialer: dialer, Brokers: addrs, Topic: "l", Partition: p, Leaders: leaders,
			MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond, Queue: 64, Log: slog.New(slog.DiscardHandler),
		}, kafka.FirstOffset)
		defer f.Stop()
		fetchers = append(fetchers, f)
	}
	for p, f := range fetchers {
		got := collect(t, f, 50, 10*time.Second)
		if got[0].Offset != 0 || got[49].Offset != 49 {
			t.Fatalf("partition %d: offsets %d..%d, want 0..49", p, got[0].Offset, got[49].Offset)
		}
	}
	mu.Lock()
	if dials != 6+1 {
		t.Errorf("%d connections for 6 fetchers, want 7 (one metadata lookup, six leaders)", dials)
	}
	mu.Unlock()

	// Move partition 0's leader: the Fetcher's fetches fail on the old one,
	// and it finds the new one.
	old := cluster.LeaderFor("l", 0)
	to := (old + 1) % 3
	if err := cluster.MoveTopicPartition("l", 0, to); err != nil {
		t.Fatal(err)
	}
	produceValues(t, addrs[0], "l", 0, 50, 50)
	got := collect(t, fetchers[0], 50, 20*time.Second)
	for i, m := range got {
		if m.Offset != int64(50+i) || string(m.Value) != fmt.Sprintf("v%d", 50+i) {
			t.Fatalf("after the move, record %d: offset %d value %q", i, m.Offset, m.Value)
		}
	}
	if _, v, err := leaders.Partition(context.Background(), "l", 0, 0); err != nil || v < 2 {
		t.Fatalf("leaders not read again after the move: version %d, %v", v, err)
	}
}

// TestLeadersErrors: a topic the cluster does not have, or a partition it
// does not have, is an error naming it; a cancelled wait returns.
func TestLeadersErrors(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "e"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	leaders := NewLeaders(kafka.DefaultDialer, cluster.ListenAddrs())
	ctx := context.Background()
	if _, _, err := leaders.Partition(ctx, "e", 5, 0); err == nil || !strings.Contains(err.Error(), "partition 5 of topic e") {
		t.Fatalf("missing partition: %v", err)
	}
	if _, _, err := leaders.Partition(ctx, "e", 1, 0); err != nil {
		t.Fatal(err)
	}
	lock := leaders.topic("e").lock
	lock <- struct{}{} // someone is reading metadata
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := leaders.Partition(cctx, "e", 1, 0); err == nil {
		t.Fatal("no error for a cancelled wait")
	}
	<-lock
}

// TestLeadersUnanswered: a broker that accepts connections and never
// answers holds a metadata read only for the timeout, and the callers that
// waited meanwhile share its error instead of each reading in turn.
func TestLeadersUnanswered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	}()
	leaders := NewLeaders(kafka.DefaultDialer, []string{ln.Addr().String()})
	leaders.timeout = 300 * time.Millisecond
	const callers = 10
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			_, _, err := leaders.Partition(context.Background(), "x", 0, 0)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("no error from a broker that never answers")
		}
	}
	if n := leaders.topic("x").reads.Load(); n > callers/2 {
		t.Fatalf("%d metadata reads for %d waiting callers: each read again", n, callers)
	}
}
