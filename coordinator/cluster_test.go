package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
	mem "github.com/datashift/datashift/connectors/memory"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/history"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/coordinator/store/zkstore"
	"github.com/datashift/datashift/coordinator/store/zkstore/zktest"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// A backend opens sessions on one cluster's tree: each is a node.
type backend struct {
	name string
	open func(t *testing.T) store.Store
}

func clusterBackends(t *testing.T) []backend {
	db := embedded.Memory()
	t.Cleanup(func() { db.Close() })
	servers, root := zktest.Root(t)
	return []backend{
		{"embedded", func(t *testing.T) store.Store {
			s, err := db.Session()
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"zookeeper", func(t *testing.T) store.Store {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: root, SessionTimeout: zktest.SessionTimeout})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
}

// node is a started node with the session it runs on.
type node struct {
	*coordinator.Node
	s store.Store
}

// kill ends the node as a crash would: its session goes (its ephemeral
// znodes with it) and then the node stops, writing nothing on the way.
func (n *node) kill() {
	n.s.Close()
	<-n.Done()
}

func startNode(t *testing.T, b backend, slots int) *node {
	t.Helper()
	return startNodeWith(t, b, slots, coordinator.Config{})
}

// startNodeWith starts a node with the History and Metrics of extra.
func startNodeWith(t *testing.T, b backend, slots int, extra coordinator.Config) *node {
	t.Helper()
	s := b.open(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := coordinator.Start(ctx, coordinator.Config{Store: s, Slots: slots, Log: log, Tick: 100 * time.Millisecond, ResourceEvery: 200 * time.Millisecond,
		SessionTimeout: zktest.SessionTimeout, History: extra.History, Metrics: extra.Metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Stop(ctx)
		s.Close()
	})
	return &node{n, s}
}

var ordersSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func ordersRows(n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, ordersSchema)
	defer b.Release()
	for i := 1; i <= n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("order %d ü", i))
	}
	return b.NewRecordBatch()
}

// copyJob copies a memory table of rows rows in partitions of 250 rows,
// slowly enough (rowsPerSecond) for a node to be killed mid-copy.
func copyJob(t *testing.T, name string, rows int, rowsPerSecond int64) (*engine.Job, *mem.DB, arrow.RecordBatch) {
	db := mem.New(t.Name() + "/" + name)
	t.Cleanup(db.Drop)
	src := ordersRows(rows)
	t.Cleanup(src.Release)
	db.Put("src", src)
	job := &engine.Job{
		Name:        name,
		Source:      engine.SourceSpec{Type: mem.TypeName, DSN: db.DSN(), Table: "src", Key: []string{"id"}},
		Sink:        engine.SinkSpec{Type: mem.TypeName, DSN: db.DSN(), Table: "dst", Mode: connectors.Append, CreateTable: true},
		Partitions:  engine.PartitionSpec{TargetRows: 250},
		BatchRows:   25,
		CommitRows:  50,
		RateLimit:   engine.RateLimitSpec{RowsPerSecond: rowsPerSecond},
		Retries:     engine.RetrySpec{Max: 3, Backoff: engine.Duration(10 * time.Millisecond)},
		Parallelism: 1,
	}
	job.Normalize()
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	return job, db, src
}

// waitRun waits for the job's latest run to end and returns it.
func waitRun(t *testing.T, c *coordinator.Cluster, job string, within time.Duration) engine.RunRecord {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		runs, err := c.Runs(context.Background(), job, 0)
		if err == nil && len(runs) > 0 && runs[0].State != engine.RunRunning {
			return runs[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s: no run ended within %s", job, within)
	return engine.RunRecord{}
}

// checkSink compares the sink with the source: the same rows, each once.
func checkSink(t *testing.T, db *mem.DB, src arrow.RecordBatch) {
	t.Helper()
	got := db.Rows("dst")
	if got == nil {
		t.Fatal("the sink is empty")
	}
	defer got.Release()
	var want, have connectors.Checksum
	want.Add(src, nil)
	have.Add(got, nil)
	if have != want {
		t.Fatalf("sink %v, source %v", have, want)
	}
}

// A job submitted to any node runs on all of them; the run's partitions
// say which node ran each.
func TestClusterRunsAJobOnEveryNode(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			nodes := []*node{startNode(t, b, 2), startNode(t, b, 2), startNode(t, b, 2)}
			job, db, src := copyJob(t, "spread", 3000, 0)
			c := nodes[1].Cluster()
			if _, err := c.SubmitJob(context.Background(), job); err != nil {
				t.Fatal(err)
			}
			if _, err := nodes[2].Cluster().SubmitJob(context.Background(), job); !errors.Is(err, coordinator.ErrJobExists) {
				t.Fatalf("the same name from another node: %v, want ErrJobExists", err)
			}
			if _, err := nodes[0].Cluster().Trigger(context.Background(), job.Name, "manual"); err != nil {
				t.Fatal(err)
			}
			run := waitRun(t, c, job.Name, time.Minute)
			if run.State != engine.RunSucceeded || run.Rows != src.NumRows() {
				t.Fatalf("run %s: %d rows, %s", run.State, run.Rows, run.Error)
			}
			checkSink(t, db, src)
		})
	}
}

// A worker killed mid-copy: its partitions go back to pending and run
// elsewhere from their checkpoints; the sink ends equal to the source.
func TestClusterSurvivesAWorkerKilledMidCopy(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			nodes := []*node{startNode(t, b, 2), startNode(t, b, 2), startNode(t, b, 2)}
			job, db, src := copyJob(t, "worker-dies", 3000, 1500)
			c := nodes[0].Cluster()
			submitAndTrigger(t, c, job)
			victim := waitForWorkOn(t, c, job.Name, nodes)
			victimID := victim.ID()
			victim.kill()
			run := waitRun(t, liveCluster(nodes, victim), job.Name, 2*time.Minute)
			if run.State != engine.RunSucceeded || run.Rows != src.NumRows() {
				t.Fatalf("run %s: %d rows, %s", run.State, run.Rows, run.Error)
			}
			checkSink(t, db, src)
			t.Logf("killed %s", victimID)
		})
	}
}

// The leader killed mid-run: the next in line carries on from the store.
func TestClusterSurvivesTheLeaderKilledMidRun(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			nodes := []*node{startNode(t, b, 2), startNode(t, b, 2), startNode(t, b, 2)}
			job, db, src := copyJob(t, "leader-dies", 3000, 1500)
			c := nodes[2].Cluster()
			submitAndTrigger(t, c, job)
			waitForWorkOn(t, c, job.Name, nodes)
			leader := leaderOf(t, nodes)
			leader.kill()
			run := waitRun(t, liveCluster(nodes, leader), job.Name, 2*time.Minute)
			if run.State != engine.RunSucceeded || run.Rows != src.NumRows() {
				t.Fatalf("run %s: %d rows, %s", run.State, run.Rows, run.Error)
			}
			checkSink(t, db, src)
		})
	}
}

// submitAndTrigger files job in the cluster and queues a run of it.
func submitAndTrigger(t *testing.T, c *coordinator.Cluster, job *engine.Job) {
	t.Helper()
	if _, err := c.SubmitJob(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Trigger(context.Background(), job.Name, "manual"); err != nil {
		t.Fatal(err)
	}
}

// leaderOf returns the node that leads.
func leaderOf(t *testing.T, nodes []*node) *node {
	t.Helper()
	for _, n := range nodes {
		if n.Leading() {
			return n
		}
	}
	t.Fatal("no node leads")
	return nil
}

// waitForWorkOn waits until a node runs a partition of the job that has
// committed rows, and returns that node.
func waitForWorkOn(t *testing.T, c *coordinator.Cluster, job string, nodes []*node) *node {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		runs, err := c.Runs(context.Background(), job, 0)
		if err == nil && len(runs) > 0 {
			st, err := c.Run(context.Background(), job, runs[0].ID)
			if err == nil {
				for _, p := range st.Partitions {
					if p.State == engine.Running && p.Checkpoint.Commits > 0 {
						for _, n := range nodes {
							if n.ID() == p.Owner {
								return n
							}
						}
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no partition of the job got to a commit")
	return nil
}

func logLevel() slog.Level {
	if os.Getenv("DATASHIFT_TEST_LOG") != "" {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// liveCluster is the cluster as a node other than dead sees it.
func liveCluster(nodes []*node, dead *node) *coordinator.Cluster {
	for _, n := range nodes {
		if n != dead {
			return n.Cluster()
		}
	}
	return nil
}

// The cluster's config reaches every node without a restart: slots set
// there replace each node's own, and a bad value is refused by name.
func TestClusterConfigIsAppliedLive(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			nodes := []*node{startNode(t, b, 4), startNode(t, b, 4)}
			c := nodes[0].Cluster()
			ctx := context.Background()
			if _, err := c.SetConfig(ctx, coordinator.ClusterConfig{Slots: -3, LogLevel: "loud"}, coordinator.AnyRevision); err == nil ||
				!strings.Contains(err.Error(), "slots: must be between") || !strings.Contains(err.Error(), `log_level: must be debug, info, warn or error (got "loud")`) {
				t.Fatalf("a bad config: %v", err)
			}
			rev, err := c.SetConfig(ctx, coordinator.ClusterConfig{Slots: 1, BatchRows: 77}, 0)
			if err != nil || rev != 1 {
				t.Fatalf("the first config: revision %d, %v", rev, err)
			}
			// A change against a revision that is gone is refused.
			if _, err := c.SetConfig(ctx, coordinator.ClusterConfig{Slots: 3}, 0); !errors.Is(err, coordinator.ErrConfigChanged) {
				t.Fatalf("a change against revision 0 once 1 is there: %v", err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				members, _, _, err := nodes[1].Cluster().Members(ctx)
				if err != nil {
					t.Fatal(err)
				}
				all := len(members) == 2
				for _, m := range members {
					all = all && m.Slots == 1
				}
				if all {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("members after the config changed: %+v", members)
				}
				time.Sleep(20 * time.Millisecond)
			}
			got, rev, err := nodes[1].Cluster().Config(ctx)
			if err != nil || got.Slots != 1 || got.BatchRows != 77 || rev != 1 {
				t.Fatalf("config read back: %+v revision %d, %v", got, rev, err)
			}
		})
	}
}

// Finished runs go to Redis with their partitions' summary; the store
// keeps none of their partitions, and the runs API reads Redis back.
func TestClusterKeepsHistoryInRedis(t *testing.T) {
	addr, prefix := testenv.RedisPrefix(t)
	h, err := history.OpenRedis(context.Background(), "redis://"+addr+"/0", prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	b := clusterBackends(t)[1]
	nodes := []*node{startNodeWith(t, b, 2, coordinator.Config{History: h}), startNodeWith(t, b, 2, coordinator.Config{History: h})}
	job, db, src := copyJob(t, "with-history", 1000, 0)
	c := nodes[0].Cluster()
	submitAndTrigger(t, c, job)
	run := waitRun(t, c, job.Name, time.Minute)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %s", run.State, run.Error)
	}
	checkSink(t, db, src)
	// The leader puts the run in Redis right after recording its end.
	var e *history.Entry
	for deadline := time.Now().Add(10 * time.Second); ; {
		if e, err = h.Get(context.Background(), job.Name, run.ID); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run is not in Redis: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var rows int64
	for _, p := range e.Partitions {
		rows += p.Rows
		if p.State != engine.Done || p.Owner == "" {
			t.Fatalf("partition summary %+v", p)
		}
	}
	if len(e.Partitions) != 4 || rows != src.NumRows() {
		t.Fatalf("Redis holds %d partitions with %d rows", len(e.Partitions), rows)
	}
	st, err := nodes[1].Cluster().Run(context.Background(), job.Name, run.ID)
	if err != nil || len(st.Finished) != 4 || st.Run.Rows != src.NumRows() {
		t.Fatalf("the runs API on another node: %+v, %v", st, err)
	}
}

// A drained worker (Stop, as on SIGTERM) gives its partitions back at once:
// its session stays open here, so nothing waits for it to expire, and yet
// the partitions it held run on elsewhere from their checkpoints and the
// run ends with sink = source.
func TestClusterDrainGivesPartitionsBack(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			nodes := []*node{startNode(t, b, 2), startNode(t, b, 2), startNode(t, b, 2)}
			job, db, src := copyJob(t, "drained", 3000, 1500)
			c := nodes[0].Cluster()
			submitAndTrigger(t, c, job)
			// A follower: a drained leader keeps its election znode until its
			// session ends (a node's process closes it right after the
			// drain), and this test keeps the session open.
			leader := leaderOf(t, nodes)
			var followers []*node
			for _, n := range nodes {
				if n != leader {
					followers = append(followers, n)
				}
			}
			victim := waitForWorkOn(t, c, job.Name, followers)
			victimID := victim.ID()
			others := liveCluster(nodes, victim)
			runs, err := others.Runs(context.Background(), job.Name, 0)
			if err != nil || len(runs) == 0 {
				t.Fatalf("runs: %v, %v", runs, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := victim.Stop(ctx); err != nil {
				t.Fatalf("drain of %s: %v", victimID, err)
			}
			// The victim's session is open: the leader cannot have taken
			// its partitions back for a session that ended.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				st, err := others.Run(context.Background(), job.Name, runs[0].ID)
				if err != nil || st.Run.State != engine.RunRunning {
					break // over already: nothing of it is left on the victim
				}
				left := 0
				for _, p := range st.Partitions {
					if p.State == engine.Running && p.Owner == victimID {
						left++
					}
				}
				if left == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d partitions still running on the drained node %s after 10s", left, victimID)
				}
			}
			run := waitRun(t, others, job.Name, 2*time.Minute)
			if run.State != engine.RunSucceeded || run.Rows != src.NumRows() {
				t.Fatalf("run %s: %d rows, %s", run.State, run.Rows, run.Error)
			}
			checkSink(t, db, src)
		})
	}
}

// A run's sink completion (a key's index built over the loaded table) goes
// on beside the leader's steps: while one job's completion is held, another
// job runs from trigger to end; released, the first finishes. A completion
// that fails fails its run, with the reason.
func TestClusterCompletesSinksBesideItsSteps(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			n := startNode(t, b, 2)
			c := n.Cluster()
			slow, slowDB, slowSrc := copyJob(t, "slow", 500, 0)
			quick, quickDB, quickSrc := copyJob(t, "quick", 500, 0)
			broken, brokenDB, _ := copyJob(t, "broken", 500, 0)
			held, release := make(chan struct{}), make(chan struct{})
			var holding, releasing sync.Once
			t.Cleanup(func() { releasing.Do(func() { close(release) }) })
			slowDB.SetFaults(func(step mem.Step, table, partition string, n int) error {
				if step == mem.StepComplete {
					holding.Do(func() { close(held) })
					<-release
				}
				return nil
			})
			brokenDB.SetFaults(func(step mem.Step, table, partition string, n int) error {
				if step == mem.StepComplete {
					return errors.New("injected: the index cannot be built")
				}
				return nil
			})
			submitAndTrigger(t, c, slow)
			select {
			case <-held:
			case <-time.After(30 * time.Second):
				t.Fatal("the slow job's completion did not start")
			}
			submitAndTrigger(t, c, quick)
			if run := waitRun(t, c, "quick", 30*time.Second); run.State != engine.RunSucceeded || run.Rows != 500 {
				t.Fatalf("the quick job's run while another completes: %+v", run)
			}
			checkSink(t, quickDB, quickSrc)
			runs, err := c.Runs(context.Background(), "slow", 0)
			if err != nil || len(runs) != 1 || runs[0].State != engine.RunRunning {
				t.Fatalf("the slow job's run while its completion is held: %+v, %v", runs, err)
			}
			releasing.Do(func() { close(release) })
			if run := waitRun(t, c, "slow", 30*time.Second); run.State != engine.RunSucceeded || run.Rows != 500 {
				t.Fatalf("the slow job's run once completed: %+v", run)
			}
			checkSink(t, slowDB, slowSrc)

			submitAndTrigger(t, c, broken)
			if run := waitRun(t, c, "broken", 30*time.Second); run.State != engine.RunFailed || !strings.Contains(run.Error, "complete the sink: injected: the index cannot be built") {
				t.Fatalf("the run whose completion fails: %+v", run)
			}
		})
	}
}
