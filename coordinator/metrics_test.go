package coordinator_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/datashift/datashift/connectors"
	mem "github.com/datashift/datashift/connectors/memory"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/engine"
)

// meteredNode is a started node counting into a registry of its own, as
// each `datashift node` process does.
type meteredNode struct {
	*node
	reg *prometheus.Registry
}

func startMeteredNode(t *testing.T, b backend, slots int) *meteredNode {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := coordinator.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	n := startNodeWith(t, b, slots, coordinator.Config{Metrics: m})
	if err := reg.Register(coordinator.NewStateCollector(n.Node)); err != nil {
		t.Fatal(err)
	}
	return &meteredNode{n, reg}
}

// sample sums the values of the metric name whose labels include want
// over the nodes' registries: a counter's or gauge's value, a histogram's
// count of observations. found says whether any node reported it.
func sample(t *testing.T, nodes []*meteredNode, name string, want map[string]string) (sum float64, found bool) {
	t.Helper()
	for _, n := range nodes {
		families, err := n.reg.Gather()
		if err != nil {
			t.Fatalf("gather from %s: %v", n.ID(), err)
		}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if !hasLabels(m, want) {
					continue
				}
				found = true
				switch {
				case m.Counter != nil:
					sum += m.Counter.GetValue()
				case m.Gauge != nil:
					sum += m.Gauge.GetValue()
				case m.Histogram != nil:
					sum += float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	return sum, found
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// A run across two nodes, with two commits failing on their way (one
// before the sink applied it, one after): the nodes' counters add up to
// the rows the source has, each once, though one attempt wrote rows it
// had to write again and another committed rows it never heard were
// committed. The retries are counted, the leader sees the run go on and
// observes its duration once it ends.
func TestMetricsCountACopyOnce(t *testing.T) {
	// ZooKeeper in a subtest of its own: without it, only that one skips.
	t.Run("embedded", func(t *testing.T) { testCountOnce(t, embeddedBackend(t)) })
	t.Run("zookeeper", func(t *testing.T) { testCountOnce(t, clusterBackends(t)[1]) })
}

// embeddedBackend is clusterBackends' embedded store, without ZooKeeper.
func embeddedBackend(t *testing.T) backend {
	db := embedded.Memory()
	t.Cleanup(func() { db.Close() })
	return backend{"embedded", func(t *testing.T) store.Store {
		s, err := db.Session()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}}
}

func testCountOnce(t *testing.T, b backend) {
	nodes := []*meteredNode{startMeteredNode(t, b, 2), startMeteredNode(t, b, 2)}
	// Slow enough (2 nodes × 2000 rows/s) for the run to be seen going on.
	job, db, src := copyJob(t, "metered", 2000, 2000)
	var mu sync.Mutex
	failed := map[mem.Step]string{} // the partition each step failed once
	db.SetFaults(func(step mem.Step, table, partition string, n int) error {
		if table != "dst" || n != 2 || (step != mem.StepCommit && step != mem.StepCommitted) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if _, done := failed[step]; done {
			return nil
		}
		for _, p := range failed {
			if p == partition {
				return nil // one failure per partition, so both kinds are seen
			}
		}
		failed[step] = partition
		return connectors.Transient(errors.New("injected: the connection dropped at " + string(step)))
	})
	c := nodes[0].Cluster()
	submitAndTrigger(t, c, job)

	// While the run goes on, the leader alone says so.
	deadline := time.Now().Add(time.Minute)
	for {
		active, _ := sample(t, nodes, "datashift_runs_active", nil)
		parts, _ := sample(t, nodes, "datashift_partitions", nil)
		if active == 1 && parts == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run was never reported going on with its 8 partitions: %v runs, %v partitions", active, parts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if leaders, _ := sample(t, nodes, "datashift_leader", nil); leaders != 1 {
		t.Fatalf("datashift_leader sums to %v over the nodes, want 1", leaders)
	}

	run := waitRun(t, c, job.Name, time.Minute)
	if run.State != engine.RunSucceeded || run.Rows != src.NumRows() {
		t.Fatalf("run %s: %d rows, %s", run.State, run.Rows, run.Error)
	}
	checkSink(t, db, src)
	mu.Lock()
	if len(failed) != 2 {
		t.Fatalf("the faults did not both fire: %v", failed)
	}
	mu.Unlock()

	byJob := map[string]string{"job": job.Name}
	if rows, _ := sample(t, nodes, "datashift_rows_copied_total", byJob); rows != float64(src.NumRows()) {
		t.Fatalf("datashift_rows_copied_total = %v over the nodes, want the source's %d rows", rows, src.NumRows())
	}
	if bytes, _ := sample(t, nodes, "datashift_bytes_copied_total", byJob); bytes != float64(run.Bytes) || bytes == 0 {
		t.Fatalf("datashift_bytes_copied_total = %v over the nodes, want the run's %d bytes", bytes, run.Bytes)
	}
	if retries, _ := sample(t, nodes, "datashift_partition_retries_total", byJob); retries != 2 {
		t.Fatalf("datashift_partition_retries_total = %v, want the 2 failed commits", retries)
	}
	if bad, _ := sample(t, nodes, "datashift_bad_rows_total", byJob); bad != 0 {
		t.Fatalf("datashift_bad_rows_total = %v, want 0", bad)
	}
	// The leader ends the run after the last partition: wait for it
	// to have observed the duration, then check it is the only one.
	deadline = time.Now().Add(30 * time.Second)
	for {
		ended, _ := sample(t, nodes, "datashift_run_duration_seconds", map[string]string{"job": job.Name, "state": engine.RunSucceeded})
		if ended == 1 {
			break
		}
		if ended > 1 || time.Now().After(deadline) {
			t.Fatalf("datashift_run_duration_seconds{state=%q} has %v observations, want 1", engine.RunSucceeded, ended)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if all, _ := sample(t, nodes, "datashift_run_duration_seconds", nil); all != 1 {
		t.Fatalf("datashift_run_duration_seconds has %v observations in all, want 1", all)
	}
	for _, n := range nodes {
		if up, _ := sample(t, []*meteredNode{n}, "datashift_store_connected", nil); up != 1 {
			t.Fatalf("node %s: datashift_store_connected = %v, want 1", n.ID(), up)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		active, found := sample(t, nodes, "datashift_runs_active", nil)
		queued, _ := sample(t, nodes, "datashift_queue_depth", nil)
		if found && active == 0 && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the run: %v runs going on (reported: %v), %v queued; want 0 and 0", active, found, queued)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Each cron fire is observed by the node that takes it, with the lag its
// fire record shows (fired - tick).
func TestMetricsObserveFireLag(t *testing.T) {
	n := startMeteredNode(t, embeddedBackend(t), 1) // the scheduler is the same on ZooKeeper
	job := cronJob(t, "lagging", "* * * * * *")
	c := n.Cluster()
	if _, err := c.SubmitJob(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if lags, _ := sample(t, []*meteredNode{n}, "datashift_fire_lag_seconds", nil); lags >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no two fires observed in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := c.Pause(context.Background(), job.Name); err != nil {
		t.Fatal(err)
	}
	// A fire lands in the store just before it is observed: wait for the
	// last to be observed too.
	deadline = time.Now().Add(10 * time.Second)
	for {
		fires, err := c.Fires(context.Background(), job.Name)
		if err != nil {
			t.Fatal(err)
		}
		var want, wantSum float64
		for _, f := range fires {
			if !strings.HasPrefix(f.Outcome, coordinator.FireSkipped) {
				want++
				wantSum += f.Fired.Sub(f.Tick).Seconds()
			}
		}
		got, sum := fireLags(t, n)
		if got == want && math.Abs(sum-wantSum) < 1e-6 {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%v fire lags observed summing to %vs; the %v fire records say %vs", got, sum, want, wantSum)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fireLags is the count and sum of n's fire lag histogram.
func fireLags(t *testing.T, n *meteredNode) (count, sum float64) {
	t.Helper()
	families, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "datashift_fire_lag_seconds" {
			h := f.GetMetric()[0].GetHistogram()
			return float64(h.GetSampleCount()), h.GetSampleSum()
		}
	}
	return 0, 0
}
