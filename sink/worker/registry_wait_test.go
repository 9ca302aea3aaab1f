package worker

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/sink/decode"
	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/writers"
)

// fakeDecoder fails with err for the first fails calls, then decodes.
type fakeDecoder struct {
	calls atomic.Int32
	fails int32
	err   error
}

func (d *fakeDecoder) Decode([]byte, time.Time) ([]parquet.Value, time.Time, error) {
	if d.calls.Add(1) <= d.fails {
		return nil, time.Time{}, d.err
	}
	return []parquet.Value{parquet.Int64Value(1)}, time.UnixMilli(1000).UTC(), nil
}

// registryWorker is a worker whose registry format decodes with dec.
func registryWorker(t *testing.T, dec recordDecoder) (*registryFormat, *testHealth, chan struct{}) {
	t.Helper()
	w, drain := testWorker(t, testConfig(), writers.NewMemory())
	x := &registryFormat{fx: w.fx, dec: dec}
	w.format = x
	return x, w.env.Health.(*testHealth), drain
}

func TestWaitRegistry(t *testing.T) {
	transient := errors.New("schema id 7: connection refused")
	t.Run("retries the same record until the registry answers", func(t *testing.T) {
		dec := &fakeDecoder{fails: 3, err: transient}
		x, health, _ := registryWorker(t, dec)
		_, _, first := dec.Decode(nil, time.Time{})
		sawReason := make(chan bool, 1)
		go func() {
			// While the worker waits, /readyz names the registry.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if n, err := health.waiting(); n == 1 && strings.Contains(fmt.Sprint(err), "schema id 7") {
					sawReason <- true
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			sawReason <- false
		}()
		row, ev, err := x.waitRegistry(t.Context(), kafka.Message{Offset: 5}, first)
		if err != nil || len(row) != 1 || !ev.Equal(time.UnixMilli(1000)) {
			t.Fatalf("waitRegistry = %v, %v, %v", row, ev, err)
		}
		if got := dec.calls.Load(); got != 4 {
			t.Errorf("Decode called %d times, want 4 (3 failures, then success)", got)
		}
		if !<-sawReason {
			t.Error("health never named the schema registry while the partition waited")
		}
		if n, _ := health.waiting(); n != 0 {
			t.Errorf("%d partitions still waiting after the registry answered", n)
		}
	})
	t.Run("a bad record is returned at once", func(t *testing.T) {
		bad := &decode.Error{Reason: confluent.ReasonBadMagic}
		dec := &fakeDecoder{fails: 100, err: bad}
		x, health, _ := registryWorker(t, dec)
		if _, _, err := x.decode(t.Context(), kafka.Message{}); !errors.Is(err, bad) || !isRecordError(err) {
			t.Fatalf("err = %v, want the record error", err)
		}
		if n := dec.calls.Load(); n != 1 {
			t.Errorf("Decode called %d times for a bad record, want 1", n)
		}
		if n, _ := health.waiting(); n != 0 {
			t.Errorf("a bad record made %d partitions wait", n)
		}
	})
	t.Run("a bad record found on retry goes to the dead-letter topic", func(t *testing.T) {
		bad := &decode.Error{Reason: confluent.ReasonUnknownSchema}
		x, _, _ := registryWorker(t, &seqDecoder{errs: []error{transient, bad}})
		if _, _, err := x.decode(t.Context(), kafka.Message{}); !errors.Is(err, bad) {
			t.Fatalf("err = %v, want %v", err, bad)
		}
	})
	t.Run("shutdown ends the wait without the record", func(t *testing.T) {
		dec := &fakeDecoder{fails: 1 << 30, err: transient}
		x, health, drain := registryWorker(t, dec)
		time.AfterFunc(300*time.Millisecond, func() { close(drain) })
		start := time.Now()
		if _, _, err := x.waitRegistry(t.Context(), kafka.Message{}, transient); !errors.Is(err, errDraining) {
			t.Fatalf("err = %v, want errDraining", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("drain took %v", d)
		}
		if isRecordError(errDraining) {
			t.Error("errDraining counts as a record error: the record would be dead-lettered")
		}
		if n, _ := health.waiting(); n != 0 {
			t.Errorf("%d partitions still waiting after the drain", n)
		}
	})
}

// seqDecoder returns errs in turn, then decodes.
type seqDecoder struct{ errs []error }

func (d *seqDecoder) Decode([]byte, time.Time) ([]parquet.Value, time.Time, error) {
	if len(d.errs) > 0 {
		err := d.errs[0]
		d.errs = d.errs[1:]
		return nil, time.Time{}, err
	}
	return []parquet.Value{parquet.Int64Value(1)}, time.UnixMilli(1000), nil
}
