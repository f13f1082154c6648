package benchmarks

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
	mem "github.com/datashift/datashift/connectors/memory"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/coordinator/store/zkstore"
	"github.com/datashift/datashift/coordinator/store/zkstore/zktest"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/demodata"
)

// countingStore counts the operations a node sends its store.
type countingStore struct {
	store.Store
	reads, writes atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, p string) ([]byte, store.Stat, error) {
	c.reads.Add(1)
	return c.Store.Get(ctx, p)
}
func (c *countingStore) Exists(ctx context.Context, p string) (bool, store.Stat, error) {
	c.reads.Add(1)
	return c.Store.Exists(ctx, p)
}
func (c *countingStore) Children(ctx context.Context, p string) ([]string, error) {
	c.reads.Add(1)
	return c.Store.Children(ctx, p)
}
func (c *countingStore) GetW(ctx context.Context, p string) ([]byte, store.Stat, <-chan store.Event, error) {
	c.reads.Add(1)
	return c.Store.GetW(ctx, p)
}
func (c *countingStore) ExistsW(ctx context.Context, p string) (bool, store.Stat, <-chan store.Event, error) {
	c.reads.Add(1)
	return c.Store.ExistsW(ctx, p)
}
func (c *countingStore) ChildrenW(ctx context.Context, p string) ([]string, <-chan store.Event, error) {
	c.reads.Add(1)
	return c.Store.ChildrenW(ctx, p)
}
func (c *countingStore) Create(ctx context.Context, p string, d []byte, f store.Flags) (string, error) {
	c.writes.Add(1)
	return c.Store.Create(ctx, p, d, f)
}
func (c *countingStore) Set(ctx context.Context, p string, d []byte, v int32) (store.Stat, error) {
	c.writes.Add(1)
	return c.Store.Set(ctx, p, d, v)
}
func (c *countingStore) Delete(ctx context.Context, p string, v int32) error {
	c.writes.Add(1)
	return c.Store.Delete(ctx, p, v)
}
func (c *countingStore) Multi(ctx context.Context, ops ...store.Op) ([]store.OpResult, error) {
	c.writes.Add(1)
	return c.Store.Multi(ctx, ops...)
}

var coordSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "note", Type: arrow.BinaryTypes.String},
}, nil)

func coordRows(n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, coordSchema)
	defer b.Release()
	for i := 1; i <= n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("row %d", i))
	}
	return b.NewRecordBatch()
}

// BenchmarkClusterCoordination runs one 64-partition job twice: on a
// 3-node cluster on ZooKeeper (leader, placement, leases, assignments), and
// with the same partitions executed by a plain pool of executors under the
// same number of slots with no coordinator at all. The difference is what
// coordination costs; it also counts the ZooKeeper operations per
// partition the three nodes sent.
func BenchmarkClusterCoordination(b *testing.B) {
	const partitions, perPartition, nodes, slots = 64, 2000, 3, 2
	res := &result{name: "cluster_coordination"}
	src := coordRows(partitions * perPartition)
	defer src.Release()
	job := func(db *mem.DB, name string) *engine.Job {
		j := &engine.Job{
			Name:       name,
			Source:     engine.SourceSpec{Type: mem.TypeName, DSN: db.DSN(), Table: "src", Key: []string{"id"}},
			Sink:       engine.SinkSpec{Type: mem.TypeName, DSN: db.DSN(), Table: "dst", Mode: connectors.Append, CreateTable: true},
			Partitions: engine.PartitionSpec{TargetRows: perPartition, Max: partitions},
			BatchRows:  500,
			CommitRows: 1000,
		}
		j.Normalize()
		return j
	}

	// The baseline: the run's steps and a pool of executors, in process.
	baseDB := mem.New("bench-coord-base")
	defer baseDB.Drop()
	baseDB.Put("src", src)
	baseline := func() time.Duration {
		ctx := context.Background()
		j := job(baseDB, "coord-base")
		edb := embedded.Memory()
		defer edb.Close()
		s, err := edb.Session()
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		rs := &coordinator.RunState{S: s}
		steps := &engine.Steps{State: rs}
		start := time.Now()
		run, parts, _, err := steps.Plan(ctx, j, false)
		if err != nil {
			b.Fatal(err)
		}
		if err := steps.Prepare(ctx, j); err != nil {
			b.Fatal(err)
		}
		if err := rs.CreateRun(ctx, run, parts); err != nil {
			b.Fatal(err)
		}
		exec, closeExec, err := engine.NewExecutor(j, parts)
		if err != nil {
			b.Fatal(err)
		}
		defer closeExec()
		todo := make(chan string)
		var wg sync.WaitGroup
		for range nodes * slots {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range todo {
					lease, p, err := rs.TakePartition(ctx, j.Name, run.ID, id, "pool")
					if err == nil {
						_, err = exec.Execute(ctx, engine.Task{Job: j, Run: run, Partition: p, Lease: lease})
					}
					if err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for _, p := range parts {
			todo <- p.ID
		}
		close(todo)
		wg.Wait()
		return time.Since(start)
	}
	baseTook := baseline()

	// The cluster: three nodes on ZooKeeper, counted.
	servers, root := zktest.Root(b)
	open := zkOpener(b, servers, root)
	var counters []*countingStore
	startNodes(b, nodes, slots, func() store.Store {
		cs := &countingStore{Store: open()}
		counters = append(counters, cs)
		return cs
	})
	client := open()
	defer client.Close()
	c := &coordinator.Cluster{S: client}
	db := mem.New("bench-coord-cluster")
	defer db.Drop()
	db.Put("src", src)
	j := job(db, "coord-cluster")
	ctx := context.Background()
	if _, err := c.SubmitJob(ctx, j); err != nil {
		b.Fatal(err)
	}
	// Count from the trigger: what registration and idling cost is not
	// the run's.
	time.Sleep(time.Second)
	var before int64
	for _, cs := range counters {
		before += cs.reads.Load() + cs.writes.Load()
	}
	var writesBefore int64
	for _, cs := range counters {
		writesBefore += cs.writes.Load()
	}
	start := time.Now()
	if _, err := c.Trigger(ctx, j.Name, "bench"); err != nil {
		b.Fatal(err)
	}
	var run engine.RunRecord
	for {
		runs, err := c.Runs(ctx, j.Name, 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(runs) > 0 && runs[0].State != engine.RunRunning {
			run = runs[0]
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	var ops, writes int64
	for _, cs := range counters {
		ops += cs.reads.Load() + cs.writes.Load()
		writes += cs.writes.Load()
	}
	ops -= before
	writes -= writesBefore
	if run.State != engine.RunSucceeded || run.Rows != int64(partitions*perPartition) {
		b.Fatalf("cluster run %s: %d rows, %s", run.State, run.Rows, run.Error)
	}
	got := db.Rows("dst")
	var want, have connectors.Checksum
	want.Add(src, nil)
	have.Add(got, nil)
	got.Release()
	if have != want {
		b.Fatalf("cluster run: sink %v, source %v", have, want)
	}
	res.add("job: %d partitions x %d rows, memory connector, %d nodes x %d slots", partitions, perPartition, nodes, slots)
	res.add("executor pool, no coordinator (baseline): %8.2fs", baseTook.Seconds())
	res.add("3-node cluster on ZooKeeper:               %8.2fs", took.Seconds())
	res.add("coordination share of the cluster run:     %8.1f%% (%.0f ms per partition over %d slots)",
		100*max(0, took.Seconds()-baseTook.Seconds())/took.Seconds(), 1000*max(0, took.Seconds()-baseTook.Seconds())*float64(nodes*slots)/partitions, nodes*slots)
	res.add("ZooKeeper operations per partition:        %8.1f (%.1f writes), all nodes, trigger to finish", float64(ops)/partitions, float64(writes)/partitions)
	res.write(b)
}

// BenchmarkClusterFailover starts three `datashift node` processes on
// ZooKeeper, kills a worker with SIGKILL while its partitions copy, and
// measures how long its partitions take to run again elsewhere, next to
// the session timeout that bounds it.
func BenchmarkClusterFailover(b *testing.B) {
	const sessionTimeout = 4 * time.Second
	res := &result{name: "cluster_failover"}
	bin := buildBinary(b)
	servers, root := zktest.Root(b)
	dir := b.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	if err := demodata.Generate(context.Background(), src, 240000); err != nil {
		b.Fatal(err)
	}
	type proc struct {
		cmd  *exec.Cmd
		addr string
		out  *strings.Builder
	}
	var procs []*proc
	for i := 0; i < 3; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p := &proc{addr: addr, out: &strings.Builder{}}
		p.cmd = exec.Command(bin, "node", "--zk", strings.Join(servers, ","), "--root", root, "--listen", addr, "--slots", "2",
			"--session-timeout", sessionTimeout.String(), "--log-level", "warn")
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		procs = append(procs, p)
	}
	defer func() {
		for _, p := range procs {
			_ = p.cmd.Process.Kill()
			_, _ = p.cmd.Process.Wait()
		}
	}()
	get := func(addr, path string, v any) error {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	for _, p := range procs {
		for deadline := time.Now().Add(20 * time.Second); ; {
			var nodes struct{ Self string }
			if err := get(p.addr, "/api/nodes", &nodes); err == nil && nodes.Self != "" {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("node on %s did not come up:\n%s", p.addr, p.out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	spec := fmt.Sprintf(`name: failover
source: {type: sqlite, dsn: %q, table: orders, key: [id]}
sink: {type: parquet, dsn: %q, mode: truncate}
partitions: {target_rows: 20000}
commit_rows: 2000
batch_rows: 1000
rate_limit: {rows_per_second: 8000}
`, src, filepath.Join(dir, "out"))
	post := func(path, body string) {
		resp, err := http.Post("http://"+procs[0].addr+path, "application/yaml", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			b.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	post("/api/jobs", spec)
	post("/api/jobs/failover/trigger", "")

	type part struct {
		ID, State, Owner string
		Attempts         int
		Checkpoint       engine.Checkpoint
	}
	type runBody struct {
		ID, State  string
		Rows       int64
		Partitions []part
	}
	var runID string
	latest := func(addr string) runBody {
		var runs []runBody
		if err := get(addr, "/api/jobs/failover/runs", &runs); err != nil || len(runs) == 0 {
			return runBody{}
		}
		runID = runs[0].ID
		var r runBody
		if err := get(addr, "/api/runs/failover/"+runID, &r); err != nil {
			return runs[0]
		}
		return r
	}
	var nodes struct {
		Leader string
		Nodes  []struct {
			ID   string
			Info struct{ Addr string }
		}
	}
	// Wait for a worker that is not the leader to hold partitions with
	// committed rows, and kill it.
	var victim *proc
	var victimID string
	var held []string
	for deadline := time.Now().Add(time.Minute); victim == nil; {
		if time.Now().After(deadline) {
			b.Fatal("no non-leader node got to a commit")
		}
		time.Sleep(50 * time.Millisecond)
		if err := get(procs[0].addr, "/api/nodes", &nodes); err != nil {
			continue
		}
		r := latest(procs[0].addr)
		for _, n := range nodes.Nodes {
			if n.ID == nodes.Leader {
				continue
			}
			held = held[:0]
			for _, p := range r.Partitions {
				if p.Owner == n.ID && p.State == engine.Running && p.Checkpoint.Commits > 0 {
					held = append(held, p.ID)
				}
			}
			if len(held) == 0 {
				continue
			}
			for _, p := range procs {
				if p.addr == n.Info.Addr {
					victim, victimID = p, n.ID
				}
			}
			break
		}
	}
	killed := time.Now()
	_ = victim.cmd.Process.Signal(syscall.SIGKILL)
	_, _ = victim.cmd.Process.Wait()
	var alive *proc
	for _, p := range procs {
		if p != victim {
			alive = p
		}
	}
	// Each held partition runs again once another node owns it.
	var resumed time.Duration
	for deadline := time.Now().Add(time.Minute); ; {
		if time.Now().After(deadline) {
			b.Fatalf("the killed node's partitions %v did not run again", held)
		}
		r := latest(alive.addr)
		again := 0
		for _, p := range r.Partitions {
			for _, h := range held {
				if p.ID == h && p.Owner != victimID && (p.State == engine.Running || p.State == engine.Done) {
					again++
				}
			}
		}
		if again == len(held) {
			resumed = time.Since(killed)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var final runBody
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if time.Now().After(deadline) {
			b.Fatal("the run did not end")
		}
		final = latest(alive.addr)
		if final.State != "" && final.State != engine.RunRunning {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if final.State != engine.RunSucceeded {
		b.Fatalf("run %s: %s", final.ID, final.State)
	}
	want, err := engine.TableChecksum(context.Background(), "sqlite", connectors.SourceConfig{DSN: src, Table: "orders"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	got, err := engine.TableChecksum(context.Background(), "parquet", connectors.SourceConfig{DSN: filepath.Join(dir, "out")}, nil)
	if err != nil || got != want {
		b.Fatalf("sink %v (%v), source %v", got, err, want)
	}
	res.add("3 nodes x 2 slots on ZooKeeper, --session-timeout %s; SIGKILL of a worker holding %d running partition(s)", sessionTimeout, len(held))
	res.add("kill to its partitions running again elsewhere: %6.2fs (%.2f x the session timeout)", resumed.Seconds(), resumed.Seconds()/sessionTimeout.Seconds())
	res.add("verified: sink = source (%v)", got)
	res.write(b)
	_ = os.Remove(filepath.Join(dir, "src.sqlite"))
}

// zkOpener opens sessions on the benchmark's ZooKeeper root.
func zkOpener(b *testing.B, servers []string, root string) func() store.Store {
	return func() store.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: root, SessionTimeout: zktest.SessionTimeout})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
}

// startNodes starts count in-process nodes of slots each, each on a
// session open makes, stopped when the benchmark ends.
func startNodes(b *testing.B, count, slots int, open func() store.Store) {
	for range count {
		s := open()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		n, err := coordinator.Start(ctx, coordinator.Config{Store: s, Slots: slots, SessionTimeout: zktest.SessionTimeout})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			n.Stop(ctx)
			s.Close()
		})
	}
}
