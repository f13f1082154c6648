package coordinator

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// Metrics counts what a node does, for Prometheus (docs/metrics.md): the
// rows it committed, the retries of its partitions, the runs it ended as
// leader, the fires it took. A nil *Metrics counts nothing, so a node
// without metrics pays one nil check at each point.
type Metrics struct {
	rows, bytes, badRows *prometheus.CounterVec
	retries              *prometheus.CounterVec
	runDuration          *prometheus.HistogramVec
	fireLag              prometheus.Histogram

	mu sync.Mutex
	// ended is the run last observed ending, by job: a leader whose
	// record of a run's end failed ends it again at its next step.
	ended map[string]string
}

// NewMetrics makes a node's counters and registers them with reg. The
// state the cluster is in (leader, session, partitions, queue) is
// registered apart, once the node is started: see NewStateCollector.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		ended: map[string]string{},
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "datashift_rows_copied_total",
			Help: "Rows this node committed to sinks, by job.",
		}, []string{"job"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "datashift_bytes_copied_total",
			Help: "Bytes (Arrow in-memory size) of the rows this node committed to sinks, by job.",
		}, []string{"job"}),
		badRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "datashift_bad_rows_total",
			Help: "Rows the sink refused that this node set aside within the job's bad-row budget, by job.",
		}, []string{"job"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "datashift_partition_retries_total",
			Help: "Attempts at a partition this node retried after a transient failure, by job.",
		}, []string{"job"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "datashift_run_duration_seconds",
			Help: "Time from a run's start to its end, observed by the leader that ends it, by job and the run's final state.",
			// 0.1s to about 5h: copies range from a small table to a large one.
			Buckets: prometheus.ExponentialBuckets(0.1, 3, 12),
		}, []string{"job", "state"}),
		fireLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "datashift_fire_lag_seconds",
			Help: "How late this node took a scheduled fire, after its tick was due.",
			// 10ms to about 11min: a timer's slack up to a missed tick caught up.
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 9),
		}),
	}
	for _, c := range []prometheus.Collector{m.rows, m.bytes, m.badRows, m.retries, m.runDuration, m.fireLag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// retried counts a retried attempt at one of job's partitions.
func (m *Metrics) retried(job string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(job).Inc()
}

// runEnded observes a run's duration once its leader has ended it.
func (m *Metrics) runEnded(run *engine.RunRecord) {
	if m == nil || run == nil || run.State == engine.RunRunning || run.Finished.IsZero() {
		return
	}
	m.mu.Lock()
	again := m.ended[run.Job] == run.ID
	m.ended[run.Job] = run.ID
	m.mu.Unlock()
	if again {
		return
	}
	m.runDuration.WithLabelValues(run.Job, run.State).Observe(max(0, run.Finished.Sub(run.Started).Seconds()))
}

// fired observes the lag of each fire taken at now.
func (m *Metrics) fired(fires []Fire, now time.Time) {
	if m == nil {
		return
	}
	for _, f := range fires {
		m.fireLag.Observe(max(0, now.Sub(f.Tick).Seconds()))
	}
}

// progress wraps next (nil: none) so that the executor's reports of a
// retried attempt are counted: the executor reports each retry as the
// partition going back to pending with the error retried.
func (m *Metrics) progress(next func(engine.Progress)) func(engine.Progress) {
	if m == nil {
		return next
	}
	return func(p engine.Progress) {
		if p.State == engine.Pending && p.Err != nil {
			m.retried(p.Job)
		}
		if next != nil {
			next(p)
		}
	}
}

// committed counts the rows of one partition this node executes, from the
// checkpoints saved under its lease. A checkpoint holds the partition's
// totals as the sink committed them, so only what a save adds over the
// highest totals seen is counted: an attempt that fails after its commit
// and is retried resumes from the sink's record, and its rows are counted
// once, when the checkpoint saying so is saved; rows written but never
// committed are never counted. The totals start from the checkpoint the
// lease was opened with, which the node that saved it has counted.
type committed struct {
	m    *Metrics
	job  string
	mu   sync.Mutex
	seen engine.Checkpoint
}

func (m *Metrics) committed(job string, from engine.Checkpoint) *committed {
	if m == nil {
		return nil
	}
	// The job's counters show from its first partition here, at 0 if need
	// be, so that a rate over them starts with the job rather than with
	// its first retry or bad row.
	for _, v := range []*prometheus.CounterVec{m.rows, m.bytes, m.badRows, m.retries} {
		v.WithLabelValues(job)
	}
	return &committed{m: m, job: job, seen: from}
}

// saved counts what cp adds; cp is saved under the lease.
func (c *committed) saved(cp engine.Checkpoint) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	add := func(v *prometheus.CounterVec, seen *int64, now int64) {
		if now > *seen {
			v.WithLabelValues(c.job).Add(float64(now - *seen))
			*seen = now
		}
	}
	add(c.m.rows, &c.seen.Rows, cp.Rows)
	add(c.m.bytes, &c.seen.Bytes, cp.Bytes)
	add(c.m.badRows, &c.seen.BadRows, cp.BadRows)
}

// countedLease is a lease whose saves are counted.
type countedLease struct {
	engine.Lease
	count *committed
}

var _ engine.Lease = countedLease{}

func (l countedLease) Save(ctx context.Context, cp engine.Checkpoint) error {
	err := l.Lease.Save(ctx, cp)
	if err == nil {
		l.count.saved(cp)
	}
	return err
}

// The partition states the datashift_partitions gauge always reports, so
// that a state with none shows 0 rather than no series.
var partitionStates = []string{engine.Pending, engine.Running, engine.Done, engine.Failed}

// StateCollector reports the node's view of the cluster at scrape time:
// whether it leads, whether its store session is up, and, on the leader
// only, the partitions of the runs going on by state, the runs going on
// and the queue's length. Only the leader reports the cluster-wide gauges,
// so that their sum over every node's scrape is the cluster's.
type StateCollector struct {
	n *Node
	// Timeout bounds the store reads of one scrape (default 2s): a scrape
	// of a node whose store is slow answers without the cluster's gauges
	// rather than hanging.
	Timeout time.Duration

	leader, connected, partitions, runsActive, queueDepth *prometheus.Desc
}

var _ prometheus.Collector = (*StateCollector)(nil)

// NewStateCollector reports n's view of the cluster.
func NewStateCollector(n *Node) *StateCollector {
	return &StateCollector{
		n:          n,
		Timeout:    2 * time.Second,
		leader:     prometheus.NewDesc("datashift_leader", "1 while this node leads the cluster, else 0.", nil, nil),
		connected:  prometheus.NewDesc("datashift_store_connected", "1 while this node's session on the coordinator store (ZooKeeper or embedded) is connected, else 0.", nil, nil),
		partitions: prometheus.NewDesc("datashift_partitions", "Partitions of the runs going on, by state; reported by the leader only.", []string{"state"}, nil),
		runsActive: prometheus.NewDesc("datashift_runs_active", "Runs going on; reported by the leader only.", nil, nil),
		queueDepth: prometheus.NewDesc("datashift_queue_depth", "Triggered runs waiting in the queue for the leader; reported by the leader only.", nil, nil),
	}
}

func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leader, c.connected, c.partitions, c.runsActive, c.queueDepth} {
		ch <- d
	}
}

func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	leading := c.n.Leading()
	ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, boolGauge(leading))
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, boolGauge(c.n.StoreConnected()))
	if !leading {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	snap, err := readClusterGauges(ctx, c.n.cfg.Store)
	if err != nil {
		// The scrape still answers with everything else; the error is
		// logged by the handler and the cluster's gauges are missing.
		ch <- prometheus.NewInvalidMetric(c.runsActive, err)
		return
	}
	for _, st := range partitionStates {
		ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.GaugeValue, float64(snap.partitions[st]), st)
	}
	ch <- prometheus.MustNewConstMetric(c.runsActive, prometheus.GaugeValue, float64(snap.runs))
	ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, float64(snap.queue))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// clusterGauges is what the leader reports of the whole cluster.
type clusterGauges struct {
	partitions map[string]int // of the runs going on, by state
	runs       int            // going on
	queue      int            // entries waiting
}

// readClusterGauges reads the runs going on, their partitions (records
// only, not checkpoints) and the queue.
func readClusterGauges(ctx context.Context, s store.Store) (clusterGauges, error) {
	g := clusterGauges{partitions: map[string]int{}}
	queue, err := s.Children(ctx, queuePath)
	if err != nil {
		return g, err
	}
	g.queue = len(queue)
	rs := &RunState{S: s}
	jobs, err := s.Children(ctx, runsPath)
	if err != nil {
		return g, err
	}
	for _, job := range jobs {
		recs, err := rs.runRecords(ctx, job)
		if err != nil {
			return g, err
		}
		for _, rec := range recs {
			if rec.State != engine.RunRunning {
				continue
			}
			parts, err := rs.partitions(ctx, job, rec.ID, nil, func(engine.PartitionRecord) bool { return false })
			if errors.Is(err, store.ErrNoNode) || errors.Is(err, engine.ErrNotFound) {
				continue // finished since it was read
			}
			if err != nil {
				return g, err
			}
			g.runs++
			for _, p := range parts {
				g.partitions[p.State]++
			}
		}
	}
	return g, nil
}
