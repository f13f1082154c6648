package benchmarks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/coordinator/store/zkstore/zktest"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// BenchmarkScaling copies the pair benchmarks' PostgreSQL table pair_src
// into a PostgreSQL table with the same DDL and primary key, with
// `datashift run` at parallelism 1, 2, 4, 8, 16 and 64, and on clusters of
// `datashift node` processes on ZooKeeper (1 node, 3 nodes, and 1 node
// with the 3 nodes' slots), and writes benchmarks/results/scaling.md: wall
// time, speedup, the CPU of datashift and of PostgreSQL's backends, and
// the wait events PostgreSQL's backends were in, to see where adding
// partitions stops paying and why.
//
// DATASHIFT_BENCH_ROWS sizes the table (default 10M), DATASHIFT_BENCH_REPEATS
// the runs of each configuration (default 1 here: a pass is nine copies of
// the whole table), DATASHIFT_BENCH_SLOTS the slots of each node (default 2).
// DATASHIFT_BENCH_DB_PREFIX (default datashift_bench) names the databases,
// PREFIX_src and PREFIX_dst; this benchmark alone reads it, so a small test
// run does not rebuild the 10M-row pair_src another benchmark keeps there.
func BenchmarkScaling(b *testing.B) {
	rows := benchRows()
	prefix := os.Getenv("DATASHIFT_BENCH_DB_PREFIX")
	if prefix == "" {
		prefix = "datashift_bench"
	}
	srcDB, dstDB := prefix+"_src", prefix+"_dst"
	src := benchDatabase(b, srcDB)
	dst := benchDatabase(b, dstDB)
	loadBefore := loadAverage()
	pairSourcePG(b, src, rows)
	bin := buildBinary(b)
	const target = "scaling_dst"
	reset, sink := pgSink(dst, target)
	want := checksum(b, "postgres", connectors.SourceConfig{DSN: src, Table: pairTable})
	if want.Rows != rows {
		b.Fatalf("%s holds %d rows, want %d", pairTable, want.Rows, rows)
	}
	source := fmt.Sprintf("{type: postgres, dsn: %q, table: %s, key: [id]}", src, pairTable)
	sinkSpec := fmt.Sprintf("{type: postgres, dsn: %q, table: %s, mode: append}", dst, target)

	configs := []*scaleConfig{}
	for _, p := range []int{1, 2, 4, 8, 16, 64} {
		configs = append(configs, &scaleConfig{parallelism: p, partitions: max(p, 8)})
	}
	slots := envInt("DATASHIFT_BENCH_SLOTS", 2)
	var notes []string
	zkServers := strings.Split(testenv.ZooKeeperAddr(), ",")
	if c, err := net.DialTimeout("tcp", zkServers[0], 2*time.Second); err == nil {
		c.Close()
		// 1 node against 3 with the same slots each (scaling out), and
		// 1 node with the slots of the 3 (the same partitions at once, in
		// one process): the pair of the last two tells what the nodes
		// themselves change.
		for _, n := range [][2]int{{1, slots}, {3, slots}, {1, 3 * slots}} {
			configs = append(configs, &scaleConfig{nodes: n[0], slots: n[1], parallelism: n[0] * n[1], partitions: max(8, 2*n[0]*n[1])})
		}
	} else if testenv.Required() {
		b.Fatalf("ZooKeeper at %s is not reachable (run scripts/services.sh): %v", testenv.ZooKeeperAddr(), err)
	} else {
		notes = append(notes, fmt.Sprintf("The cluster configurations were skipped: ZooKeeper at %s was not reachable (%v).", testenv.ZooKeeperAddr(), err))
		b.Logf("ZooKeeper at %s is not reachable: the cluster configurations are skipped", testenv.ZooKeeperAddr())
	}

	work := b.TempDir()
	repeats := envInt("DATASHIFT_BENCH_REPEATS", 1)
	for i := 0; i < repeats; i++ {
		for k := range configs {
			c := configs[(i+k)%len(configs)]
			reset(b)
			var s scaleSample
			if c.nodes == 0 {
				s = scaleStandalone(b, bin, filepath.Join(work, fmt.Sprintf("run-p%d-%d", c.parallelism, i)), source, sinkSpec, c, rows, srcDB, dstDB)
			} else {
				s = scaleCluster(b, bin, filepath.Join(work, fmt.Sprintf("cluster-%dx%d-%d", c.nodes, c.slots, i)), source, sinkSpec, c, rows, srcDB, dstDB)
			}
			if got := sink(b); got != want {
				b.Fatalf("%s, run %d: the sink holds %v, the source %v", c.name(), i+1, got, want)
			}
			c.samples = append(c.samples, s)
			fmt.Printf("scaling %-34s %7.2fs %9.0f rows/s  CPU %5.1fs  PostgreSQL CPU %5.1fs  RSS %6.1f MiB  %d partitions, %d retries  %s\n",
				c.name(), s.wall.Seconds(), float64(rows)/s.wall.Seconds(), s.cpu.Seconds(), s.pgCPU.Seconds(),
				float64(s.rssKiB)/1024, s.partitions, s.retries, topWaits(s.waits, 4))
		}
	}
	text := scalingReport(b, configs, rows, repeats, slots, srcDB, dstDB, loadBefore, want, notes)
	if err := os.MkdirAll("results", 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("results", "scaling.md"), []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	fmt.Print(text)
}

// scaleConfig is one way of running the copy, and its runs.
type scaleConfig struct {
	// nodes is 0 for `datashift run`, else the cluster's nodes of slots
	// each.
	nodes, slots int
	// parallelism is the partitions at once: --parallelism, or the
	// cluster's slots.
	parallelism int
	// partitions is the job's partitions.max (and the table's rows over
	// it its partitions.target_rows).
	partitions int
	samples    []scaleSample
}

func (c *scaleConfig) name() string {
	if c.nodes == 0 {
		return fmt.Sprintf("datashift run, parallelism %d", c.parallelism)
	}
	return fmt.Sprintf("cluster, %d node(s) x %d slots", c.nodes, c.slots)
}

// scaleSample is one run: what measure gives (for a cluster, the nodes'
// CPU and the largest node's peak RSS), and what the run's record and the
// wait sampler tell.
type scaleSample struct {
	sample
	partitions, retries int
	// reason is the plan's, as the run's record gives it.
	reason string
	// placed is how many partitions each node ran (a cluster's).
	placed []int
	waits  waitStats
}

// scaleJob writes the job's spec into dir.
func scaleJob(b *testing.B, dir, name, source, sink string, c *scaleConfig, rows int64) string {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	job := filepath.Join(dir, "job.yaml")
	spec := fmt.Sprintf("name: %s\nsource: %s\nsink: %s\npartitions: {target_rows: %d, max: %d}\nparallelism: %d\n",
		name, source, sink, max(rows/int64(c.partitions), 1), c.partitions, c.parallelism)
	if err := os.WriteFile(job, []byte(spec), 0o644); err != nil {
		b.Fatal(err)
	}
	return job
}

var partitionsLine = regexp.MustCompile(`, (\d+) partitions \(`)

// scaleStandalone is one `datashift run --parallelism P` under measure.
func scaleStandalone(b *testing.B, bin, dir, source, sink string, c *scaleConfig, rows int64, srcDB, dstDB string) scaleSample {
	b.Helper()
	const name = "bench-scaling"
	job := scaleJob(b, dir, name, source, sink, c, rows)
	state := filepath.Join(dir, "state")
	w := startWaitSampler(b, srcDB, dstDB)
	m, out := measure(b, nil, bin, "run", job, "--parallelism", strconv.Itoa(c.parallelism), "-q", "--state", state)
	s := scaleSample{sample: m, waits: w.stop(b)}
	if !strings.Contains(out, fmt.Sprintf("succeeded: %d rows", rows)) {
		b.Fatalf("datashift run did not copy %d rows:\n%s", rows, out)
	}
	if p := partitionsLine.FindStringSubmatch(out); p != nil {
		s.partitions, _ = strconv.Atoi(p[1])
	}
	s.retries, s.reason = standaloneRun(b, state, name)
	return s
}

// standaloneRun reads the partitions' attempts beyond their first, and the
// plan's reason, from the finished run in the job's state file.
func standaloneRun(b *testing.B, dir, job string) (retries int, reason string) {
	b.Helper()
	db, err := embedded.Open(filepath.Join(dir, job+".db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s, err := db.Session()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c := &coordinator.Cluster{S: s}
	runs, err := c.Runs(ctx, job, 1)
	if err != nil || len(runs) == 0 {
		b.Fatalf("the runs of %s in %s: %v (%d)", job, dir, err, len(runs))
	}
	st, err := c.Run(ctx, job, runs[0].ID)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range st.Finished {
		retries += max(0, p.Attempts-1)
	}
	return retries, st.Run.Reason
}

// scaleCluster starts c.nodes `datashift node` processes on a fresh
// ZooKeeper root, submits the job with `datashift submit`, runs it with
// `datashift trigger --watch`, and stops the nodes with SIGTERM. The time
// is from the trigger to the end the run's record gives (the watch polls
// twice a second, so its own exit is up to half a second later).
func scaleCluster(b *testing.B, bin, dir, source, sink string, c *scaleConfig, rows int64, srcDB, dstDB string) scaleSample {
	b.Helper()
	const name = "bench-scaling"
	job := scaleJob(b, dir, name, source, sink, c, rows)
	servers, root := zktest.Root(b)
	nodes := startBenchNodes(b, bin, servers, root, c.nodes, c.slots)
	defer func() {
		for _, n := range nodes {
			n.stop(b)
		}
	}()
	server := "http://" + nodes[0].addr
	if out, err := exec.Command(bin, "submit", job, "--server", server).CombinedOutput(); err != nil {
		b.Fatalf("datashift submit: %v\n%s", err, out)
	}

	cpu0 := make([]time.Duration, len(nodes))
	for i, n := range nodes {
		cpu0[i] = procCPU(n.cmd.Process.Pid)
	}
	pg0, _ := serverCPU()
	w := startWaitSampler(b, srcDB, dstDB)
	start := time.Now()
	trigger := exec.Command(bin, "trigger", name, "--watch", "-o", "json", "--server", server)
	var stdout, stderr bytes.Buffer
	trigger.Stdout, trigger.Stderr = &stdout, &stderr
	err := trigger.Run()
	watched := time.Since(start)
	waits := w.stop(b)
	pg1, _ := serverCPU()
	if err != nil {
		b.Fatalf("datashift trigger --watch: %v\n%s\n%s\nnode 1:\n%s", err, tail(stdout.String(), 20), tail(stderr.String(), 20), tail(nodes[0].out.String(), 20))
	}
	type runBody struct {
		engine.RunRecord
		Partitions []struct {
			Owner    string `json:"owner"`
			Attempts int    `json:"attempts"`
		} `json:"partitions"`
	}
	var run runBody
	if err := json.Unmarshal(stdout.Bytes(), &run); err != nil {
		b.Fatalf("the watched run: %v\n%s", err, tail(stdout.String(), 20))
	}
	if run.State != engine.RunSucceeded || run.Rows != rows {
		b.Fatalf("run %s %s with %d rows, want %d: %s", run.ID, run.State, run.Rows, rows, run.Error)
	}
	// The partitions as the finished run keeps them: the watch's last
	// answer can come while the run's partitions are being cleared, and
	// list fewer (seen once, 8 of 12).
	watchedParts := len(run.Partitions)
	out, err := exec.Command(bin, "status", name, run.ID, "-o", "json", "--server", server).Output()
	if err != nil {
		b.Fatalf("datashift status %s %s: %v\n%s", name, run.ID, err, out)
	}
	run = runBody{}
	if err := json.Unmarshal(out, &run); err != nil {
		b.Fatalf("the finished run: %v\n%s", err, tail(string(out), 20))
	}
	if watchedParts != len(run.Partitions) {
		b.Logf("run %s: the watch's last answer listed %d partitions, the finished run %d", run.ID, watchedParts, len(run.Partitions))
	}
	s := scaleSample{waits: waits, partitions: len(run.Partitions), reason: run.Reason}
	s.wall = watched
	if !run.Finished.IsZero() && run.Finished.After(start) {
		s.wall = run.Finished.Sub(start)
	}
	s.pgCPU = pg1 - pg0
	s.planShare = math.NaN()
	owners := map[string]int{}
	for _, p := range run.Partitions {
		s.retries += max(0, p.Attempts-1)
		owners[p.Owner]++
	}
	for i, n := range nodes {
		s.cpu += procCPU(n.cmd.Process.Pid) - cpu0[i]
		s.rssKiB = max(s.rssKiB, procPeakRSS(n.cmd.Process.Pid))
		s.placed = append(s.placed, owners[n.id])
	}
	return s
}

// benchNode is one `datashift node` process.
type benchNode struct {
	cmd    *exec.Cmd
	addr   string
	id     string
	out    *testenv.Output
	exited chan struct{}
	once   sync.Once
}

// startBenchNodes starts count nodes of slots each on ZooKeeper's root and
// waits until they all publish their free slots and one leads. They are
// stopped with SIGTERM when the benchmark ends, if not before.
func startBenchNodes(b *testing.B, bin string, servers []string, root string, count, slots int) []*benchNode {
	b.Helper()
	var nodes []*benchNode
	for range count {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		n := &benchNode{addr: ln.Addr().String(), out: &testenv.Output{}, exited: make(chan struct{})}
		ln.Close()
		n.cmd = exec.Command(bin, "node", "--zk", strings.Join(servers, ","), "--root", root, "--listen", n.addr,
			"--slots", strconv.Itoa(slots), "--log-level", "warn")
		n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
		if err := n.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		go func() {
			_ = n.cmd.Wait()
			close(n.exited)
		}()
		b.Cleanup(func() { n.stop(b) })
		nodes = append(nodes, n)
	}
	type nodesBody struct {
		Leader string
		Self   string
		Nodes  []struct {
			ID        string
			Info      struct{ Addr string }
			Resources *struct{ Slots, Free int }
		}
	}
	ready := func() bool {
		var body nodesBody
		resp, err := http.Get("http://" + nodes[0].addr + "/api/nodes")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
			return false
		}
		if body.Leader == "" || len(body.Nodes) != count {
			return false
		}
		for _, m := range body.Nodes {
			if m.Resources == nil || m.Resources.Free != slots {
				return false
			}
			for _, n := range nodes {
				if n.addr == m.Info.Addr {
					n.id = m.ID
				}
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !ready(); {
		for i, n := range nodes {
			select {
			case <-n.exited:
				b.Fatalf("node %d on %s exited: %v\n%s", i+1, n.addr, n.cmd.ProcessState, tail(n.out.String(), 20))
			default:
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the %d nodes did not come up in 30 s:\n%s", count, tail(nodes[0].out.String(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nodes
}

// stop sends the node SIGTERM (a drain) and waits for it to exit; one that
// has not after 45 s (its drain timeout is 30 s) is killed.
func (n *benchNode) stop(b *testing.B) {
	n.once.Do(func() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
			if code := n.cmd.ProcessState.ExitCode(); code != 0 {
				b.Logf("node on %s exited with %d after SIGTERM:\n%s", n.addr, code, tail(n.out.String(), 20))
			}
		case <-time.After(45 * time.Second):
			b.Errorf("node on %s did not stop in 45 s after SIGTERM; killed:\n%s", n.addr, tail(n.out.String(), 20))
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
	})
}

// procStat returns the fields of /proc/PID/stat after the command's name
// (the first is the state, field 3), or nil.
func procStat(pid int) []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
}

// procCPU is the user+system time process pid has used so far (0 when it
// is gone).
func procCPU(pid int) time.Duration {
	f := procStat(pid)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[14-3], 64)
	stime, _ := strconv.ParseFloat(f[15-3], 64)
	return time.Duration((utime + stime) / clockTicks * float64(time.Second))
}

// procPeakRSS is process pid's peak resident set (VmHWM) in KiB.
func procPeakRSS(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	if m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(raw); m != nil {
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		return n
	}
	return 0
}

// waitStats is what the wait sampler saw of the run's backends.
type waitStats struct {
	// counts are backend-samples by "side event": side is src or dst,
	// event wait_event_type:wait_event, or CPU for an active backend in
	// no wait event; other backend types than client backends are named.
	counts map[string]int
	// samples is the samples taken, peak the most backends in one.
	samples, peak int
	// srcCPU and dstCPU are the CPU of the backends in the source and
	// target database, as last read from /proc while sampling.
	srcCPU, dstCPU time.Duration
}

func (w *waitStats) add(o waitStats) {
	if w.counts == nil {
		w.counts = map[string]int{}
	}
	for k, v := range o.counts {
		w.counts[k] += v
	}
	w.samples += o.samples
	w.peak = max(w.peak, o.peak)
}

// waitSampler samples pg_stat_activity every 100 ms while a run goes.
type waitSampler struct {
	quit chan struct{}
	done chan struct{}
	st   waitStats
	err  error
}

// startWaitSampler samples the backends of the source and target databases
// until stop: datashift's own (application_name datashift) and the server's
// workers there (autovacuum), not other clients sharing the databases.
func startWaitSampler(b *testing.B, srcDB, dstDB string) *waitSampler {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", testenv.PostgresAddr()))
	if err != nil {
		b.Fatal(err)
	}
	w := &waitSampler{quit: make(chan struct{}), done: make(chan struct{}), st: waitStats{counts: map[string]int{}}}
	type seen struct {
		dst bool
		cpu time.Duration
	}
	cpu := map[int32]seen{}
	go func() {
		defer close(w.done)
		defer conn.Close(ctx)
		defer func() {
			for _, s := range cpu {
				if s.dst {
					w.st.dstCPU += s.cpu
				} else {
					w.st.srcCPU += s.cpu
				}
			}
		}()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			rows, err := conn.Query(ctx, `SELECT pid, datname, coalesce(wait_event_type, ''), coalesce(wait_event, ''),
					coalesce(state, ''), coalesce(backend_type, '')
				FROM pg_stat_activity
				WHERE datname IN ($1, $2) AND pid <> pg_backend_pid()
				  AND (application_name = 'datashift' OR backend_type <> 'client backend')`, srcDB, dstDB)
			if err != nil {
				w.err = err
				return
			}
			n := 0
			for rows.Next() {
				var pid int32
				var db, typ, event, state, backend string
				if err := rows.Scan(&pid, &db, &typ, &event, &state, &backend); err != nil {
					w.err = err
					rows.Close()
					return
				}
				n++
				if c := procCPU(int(pid)); c > 0 && isPostgres(strconv.Itoa(int(pid))) {
					cpu[pid] = seen{dst: db == dstDB, cpu: max(cpu[pid].cpu, c)}
				}
				key := typ + ":" + event
				if event == "" {
					if state != "active" {
						continue
					}
					key = "CPU"
				}
				side := "src"
				if db == dstDB {
					side = "dst"
				}
				key = side + " " + key
				if state != "active" && state != "" {
					key += " (" + state + ")" // idle: a pooled connection, not the copy waiting
				}
				if backend != "client backend" {
					key += " (" + backend + ")"
				}
				w.st.counts[key]++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				w.err = err
				return
			}
			w.st.samples++
			w.st.peak = max(w.st.peak, n)
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *waitSampler) stop(b *testing.B) waitStats {
	b.Helper()
	close(w.quit)
	<-w.done
	if w.err != nil {
		b.Fatalf("sampling pg_stat_activity: %v", w.err)
	}
	return w.st
}

// topWaits is the n largest shares of the backend-samples of backends
// running a statement, then the share of those idle (in datashift's pool,
// or between a partition's statements) all together.
func topWaits(w waitStats, n int) string {
	total, idle := 0, 0
	keys := make([]string, 0, len(w.counts))
	for k, v := range w.counts {
		total += v
		if strings.Contains(k, "(idle") {
			idle += v
			continue
		}
		keys = append(keys, k)
	}
	if total == 0 {
		return "—"
	}
	slices.SortFunc(keys, func(a, b string) int {
		if w.counts[a] != w.counts[b] {
			return w.counts[b] - w.counts[a]
		}
		return strings.Compare(a, b)
	})
	var out []string
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, fmt.Sprintf("%s %.0f%%", k, 100*float64(w.counts[k])/float64(total)))
	}
	if idle > 0 {
		out = append(out, fmt.Sprintf("idle %.0f%%", 100*float64(idle)/float64(total)))
	}
	return strings.Join(out, ", ")
}

// scalingReport is results/scaling.md.
func scalingReport(b *testing.B, configs []*scaleConfig, rows int64, repeats, slots int, srcDB, dstDB, loadBefore string, verified connectors.Checksum, notes []string) string {
	b.Helper()
	var maxConns string
	if conn, err := pgx.Connect(context.Background(), benchDatabase(b, srcDB)); err == nil {
		_ = conn.QueryRow(context.Background(), `SHOW max_connections`).Scan(&maxConns)
		conn.Close(context.Background())
	}
	info := machineInfo(b)
	if i := strings.Index(info, "; load average"); i >= 0 {
		info = info[:i]
	}
	var base time.Duration
	for _, c := range configs {
		if c.nodes == 0 && c.parallelism == 1 {
			base = median(pluckScale(c.samples, func(s scaleSample) time.Duration { return s.wall }))
		}
	}

	var w strings.Builder
	fmt.Fprintf(&w, "# Scaling with parallelism and nodes: PostgreSQL → PostgreSQL\n\n")
	fmt.Fprintf(&w, "Measured %s by `BenchmarkScaling` (benchmarks/scaling_test.go; `make bench BENCH=Scaling`).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "- datashift %s; Go %s\n", datashiftVersion(), runtime.Version())
	fmt.Fprintf(&w, "- Machine: %s; PostgreSQL max_connections %s; load average (1, 5, 15 min) %s before the first run, %s after the last\n",
		info, maxConns, loadBefore, loadAverage())
	if note := os.Getenv("DATASHIFT_BENCH_NOTE"); note != "" {
		fmt.Fprintf(&w, "- Note: %s\n", note)
	}
	fmt.Fprintf(&w, "- Table: %s.%s, %d rows (`%s`, the pair benchmarks' table), copied into %s.scaling_dst, "+
		"recreated empty with the same DDL and primary key before every run; the job's sink is `mode: append`, as in the pairs.\n",
		srcDB, pairTable, rows, strings.Join(strings.Fields(benchDDL), " "), dstDB)
	fmt.Fprintf(&w, "- Method: each configuration ran %d time(s) (DATASHIFT_BENCH_REPEATS; the default is 1 for this benchmark, "+
		"as a pass copies the whole table nine times), the configurations taking turns; with more runs the table shows medians. "+
		"Every sink was checked against the source after every run, row count and checksum of every column; "+
		"a mismatch fails the benchmark. All of them verified: %v.\n", repeats, verified)
	fmt.Fprintf(&w, "- `datashift run`: `datashift run job.yaml --parallelism P -q --state DIR` (a fresh DIR each run), the job with "+
		"`partitions: {target_rows: ROWS/N, max: N}`, N = max(P, 8). Wall time is the process's, start to exit; CPU (user+system) "+
		"and peak RSS its own, from GNU time.\n")
	fmt.Fprintf(&w, "- Cluster: `datashift node --zk %s --root R --slots %d` processes of the same binary on loopback, a fresh "+
		"ZooKeeper root R for each run, the nodes started before it and stopped with SIGTERM after it; the job filed with "+
		"`datashift submit` and run with `datashift trigger --watch`; N = max(8, 2 × the slots of all nodes). Slots are per node, "+
		"so 3 nodes have 3 times the partitions at once of 1: the third cluster row is 1 node with the 3 nodes' slots, "+
		"the same partitions at once in one process. Wall time is from the trigger to the end in the run's record (the watch "+
		"itself polls every 500 ms); CPU is the nodes' summed over that time (from /proc; the trigger's own client is left out), "+
		"peak RSS the largest node's over its life (VmHWM). Partitions per node are in the notes.\n", testenv.ZooKeeperAddr(), slots)
	fmt.Fprintf(&w, "- PostgreSQL CPU: the whole server's CPU meanwhile (every postgres process, and the backends that exited; "+
		"the server is shared, so anything else it did too); in brackets that of the run's backends in the source and target "+
		"databases, as last read from /proc while sampling (each backend's last 100 ms or less are missing). "+
		"Cores busy is (datashift CPU + PostgreSQL CPU) / wall time, of %d cores.\n", nproc())
	fmt.Fprintf(&w, "- Wait events: `pg_stat_activity` every 100 ms during the run, for the backends in %s and %s that are "+
		"datashift's (application_name) or the server's own (autovacuum); each backend in each sample counts once, "+
		"as its wait_event_type:wait_event, or CPU when it is active and in no wait event (an idle backend in no wait "+
		"event is not counted); the table shows the largest shares of all counted, src and dst for the source's and the "+
		"target's backends; those of backends not running a statement (state idle or idle in transaction: a connection "+
		"in datashift's pool, or between a partition's statements) are summed as idle, last. Client:ClientRead of an active backend is a target's COPY "+
		"waiting for datashift's next rows, Client:ClientWrite a source's COPY waiting for datashift to take its rows, Lock:extend the target table's relation extension lock, "+
		"LWLock:WALWrite and IO:WALSync the WAL. Peak backends is the most of them in one sample.\n", srcDB, dstDB)
	fmt.Fprintf(&w, "- Retries are partition attempts beyond the first, from the run's record.\n")
	for _, n := range notes {
		fmt.Fprintf(&w, "- %s\n", n)
	}
	fmt.Fprintf(&w, "\n| Setup | Parallelism | Nodes | Partitions | Median wall | Rows/s | Speedup | datashift CPU | PostgreSQL CPU (src, dst) | Cores busy | Peak RSS | Peak backends | Retries | Top wait events |\n")
	fmt.Fprintf(&w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	best, bestAt := 0.0, ""
	for _, c := range configs {
		if len(c.samples) == 0 {
			continue
		}
		wall := median(pluckScale(c.samples, func(s scaleSample) time.Duration { return s.wall }))
		cpu := median(pluckScale(c.samples, func(s scaleSample) time.Duration { return s.cpu }))
		pg := median(pluckScale(c.samples, func(s scaleSample) time.Duration { return s.pgCPU }))
		srcCPU := median(pluckScale(c.samples, func(s scaleSample) time.Duration { return s.waits.srcCPU }))
		dstCPU := median(pluckScale(c.samples, func(s scaleSample) time.Duration { return s.waits.dstCPU }))
		var rss int64
		var waits waitStats
		retries := 0
		for _, s := range c.samples {
			rss = max(rss, s.rssKiB)
			waits.add(s.waits)
			retries += s.retries
		}
		speedup := math.NaN()
		if base > 0 {
			speedup = base.Seconds() / wall.Seconds()
		}
		if speedup > best {
			best, bestAt = speedup, c.name()
		}
		setup, nodes, par := "`datashift run`", "—", strconv.Itoa(c.parallelism)
		if c.nodes > 0 {
			setup, nodes = fmt.Sprintf("cluster, %d slots/node", c.slots), strconv.Itoa(c.nodes)
			par = fmt.Sprintf("%d (%d × %d slots)", c.parallelism, c.nodes, c.slots)
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %d | %.2f s | %.0f | %s | %.1f s | %.1f s (%.1f, %.1f) | %.2f | %.0f MiB | %d | %d | %s |\n",
			setup, par, nodes, c.samples[len(c.samples)-1].partitions, wall.Seconds(), float64(rows)/wall.Seconds(), ratio(speedup),
			cpu.Seconds(), pg.Seconds(), srcCPU.Seconds(), dstCPU.Seconds(), (cpu+pg).Seconds()/wall.Seconds(),
			float64(rss)/1024, waits.peak, retries, topWaits(waits, 4))
	}
	fmt.Fprintf(&w, "\nSpeedup is over `datashift run` at parallelism 1 (rows/s over its rows/s); the fastest was %s, ×%.2f.\n\n", bestAt, best)
	for _, c := range configs {
		if len(c.samples) == 0 {
			continue
		}
		fmt.Fprintf(&w, "- %s: runs %v", c.name(), rounded(pluckScale(c.samples, func(s scaleSample) time.Duration { return s.wall })))
		if c.nodes > 0 {
			var placed []string
			for _, s := range c.samples {
				placed = append(placed, strings.Trim(strings.Join(strings.Fields(fmt.Sprint(s.placed)), "/"), "[]"))
			}
			fmt.Fprintf(&w, "; partitions per node %s", strings.Join(placed, ", "))
		}
		fmt.Fprintf(&w, "; plan: %s\n", c.samples[len(c.samples)-1].reason)
	}
	return w.String()
}

func pluckScale[T any](s []scaleSample, f func(scaleSample) T) []T {
	out := make([]T, len(s))
	for i, x := range s {
		out[i] = f(x)
	}
	return out
}
