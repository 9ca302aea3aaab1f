package sink

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakesink/lakesink/sink/completion"
	"github.com/lakesink/lakesink/sink/worker"
)

// Metrics are the sink's collectors: the group loop's own and those of the
// stages it wires (docs/operations.md lists every metric).
type Metrics struct {
	Rebalances         prometheus.Counter
	AssignedPartitions prometheus.Gauge
	Worker             *worker.Metrics
	Completion         *completion.Metrics
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Rebalances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakesink_group_generations_total",
			Help: "Consumer group generations joined.",
		}),
		AssignedPartitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lakesink_assigned_partitions",
			Help: "Partitions this instance owns in the current group generation.",
		}),
		Worker:     worker.NewMetrics(reg),
		Completion: completion.NewMetrics(reg),
	}
	reg.MustRegister(m.Rebalances, m.AssignedPartitions)
	return m
}
