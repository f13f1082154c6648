package integration

// Cluster tests: real `datashift node` processes on the real ZooKeeper and
// PostgreSQL, killed and paused with real signals, seen only through their
// HTTP API.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator/store/zkstore/zktest"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// clusterSessionTimeout is every node's --session-timeout: how long a
// killed or paused node goes unnoticed.
const clusterSessionTimeout = 4 * time.Second

// sourceRows is the size of the copy tests' source table.
const sourceRows = 2_000_000

// ---- nodes ----------------------------------------------------------------

// testCluster is the nodes a test started on its own ZooKeeper root, or,
// without ZooKeeper, on a state folder of its own.
type testCluster struct {
	t       *testing.T
	servers string
	root    string
	state   string   // the --state folder when there is no ZooKeeper
	extra   []string // more flags for every node
	nodes   []*clusterNode
}

// clusterNode is one `datashift node` process.
type clusterNode struct {
	name   string // n1, n2, … in the order started, for messages
	addr   string // its API, 127.0.0.1:port
	id     string // its member id when it joined
	cmd    *exec.Cmd
	out    *testenv.Output
	exited chan struct{} // closed once the process is gone

	mu     sync.Mutex
	paused bool // SIGSTOPped: it answers no request
}

// newTestCluster gives t a fresh ZooKeeper root; every node started on it
// is stopped at cleanup, before the root is removed.
func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	servers, root := zktest.Root(t)
	c := &testCluster{t: t, servers: strings.Join(servers, ","), root: root}
	t.Cleanup(c.stopAll)
	return c
}

// newLocalCluster is newTestCluster for nodes without --zk: each keeps
// the state in the test's folder, as a cluster of one.
func newLocalCluster(t *testing.T) *testCluster {
	t.Helper()
	c := &testCluster{t: t, state: t.TempDir()}
	t.Cleanup(c.stopAll)
	return c
}

// args are a node's command line.
func (c *testCluster) args(addr string, slots int) []string {
	args := []string{"node", "--listen", addr, "--slots", strconv.Itoa(slots),
		"--session-timeout", clusterSessionTimeout.String(), "--drain-timeout", "10s"}
	if c.servers != "" {
		args = append(args, "--zk", c.servers, "--root", c.root)
	} else {
		args = append(args, "--state", c.state)
	}
	return append(args, c.extra...)
}

// startFails starts a node that must exit by itself, and returns its exit
// code and output.
func (c *testCluster) startFails(slots int) (int, string) {
	c.t.Helper()
	cmd := exec.Command(binary(c.t), c.args(freeAddr(c.t), slots)...)
	dieWithTest(cmd)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		c.t.Fatalf("the node did not exit within 20s:\n%s", out)
	}
	if err == nil {
		return 0, string(out)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start starts a node with slots and returns once GET /api/nodes lists it.
func (c *testCluster) start(slots int) *clusterNode {
	c.t.Helper()
	n := &clusterNode{name: fmt.Sprintf("n%d", len(c.nodes)+1), addr: freeAddr(c.t), out: &testenv.Output{}, exited: make(chan struct{})}
	n.cmd = exec.Command(binary(c.t), c.args(n.addr, slots)...)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	dieWithTest(n.cmd)
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		_ = n.cmd.Wait()
		close(n.exited)
	}()
	c.nodes = append(c.nodes, n)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var v nodesView
		if err := n.get("/api/nodes", &v); err == nil && v.Self != "" && v.node(v.Self) != nil {
			n.id = v.Self
			c.t.Logf("%s: node %s on %s, pid %d", n.name, n.id, n.addr, n.cmd.Process.Pid)
			return n
		}
		select {
		case <-n.exited:
			c.t.Fatalf("%s exited before it joined:\n%s", n.name, n.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not join within 30s:\n%s", n.name, n.out)
		}
	}
}

// startN starts count nodes of slots each.
func (c *testCluster) startN(count, slots int) []*clusterNode {
	c.t.Helper()
	var out []*clusterNode
	for range count {
		out = append(out, c.start(slots))
	}
	return out
}

func (n *clusterNode) alive() bool {
	select {
	case <-n.exited:
		return false
	default:
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.paused
}

// kill sends SIGKILL and waits for the process to be gone.
func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	n.signalAndWait(t, syscall.SIGKILL, 10*time.Second)
}

// stop sends SIGTERM and waits for the node to drain and leave.
func (n *clusterNode) stop(t *testing.T) {
	t.Helper()
	n.signalAndWait(t, syscall.SIGTERM, 20*time.Second)
}

func (n *clusterNode) signalAndWait(t *testing.T, sig syscall.Signal, within time.Duration) {
	t.Helper()
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.exited:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of %s:\n%s", n.name, within, sig, n.out)
	}
}

// pause sends SIGSTOP; resume sends SIGCONT.
func (n *clusterNode) pause() {
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	_ = n.cmd.Process.Signal(syscall.SIGSTOP)
}

func (n *clusterNode) resume() {
	_ = n.cmd.Process.Signal(syscall.SIGCONT)
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
}

// stopAll drains every node that is still running (SIGTERM), kills those
// that have not left after 15s, and logs the nodes' output if the test
// failed (or always, with DATASHIFT_NODE_LOGS=1).
func (c *testCluster) stopAll() {
	for _, n := range c.nodes {
		select {
		case <-n.exited:
			continue
		default:
		}
		_ = n.cmd.Process.Signal(syscall.SIGCONT) // a paused node must run to hear SIGTERM
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(15 * time.Second)
	for _, n := range c.nodes {
		select {
		case <-n.exited:
		case <-deadline:
			c.t.Errorf("%s did not stop within 15s of SIGTERM: killed", n.name)
			_ = n.cmd.Process.Signal(syscall.SIGKILL)
			<-n.exited
		}
	}
	for _, n := range c.nodes {
		<-n.exited // those killed after the deadline
		if c.t.Failed() || os.Getenv("DATASHIFT_NODE_LOGS") == "1" {
			c.t.Logf("---- %s (%s, first id %s) output:\n%s", n.name, n.addr, n.id, n.out)
		}
	}
}

// ---- HTTP -------------------------------------------------------------------

var apiClient = &http.Client{Timeout: 5 * time.Second}

// call makes one request of the node's API and returns the status and body.
func (n *clusterNode) call(method, path, contentType, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+n.addr+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// get decodes a 200 answer to GET path into v.
func (n *clusterNode) get(path string, v any) error {
	code, body, err := n.call(http.MethodGet, path, "", "")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %d %s", path, n.name, code, body)
	}
	return json.Unmarshal(body, v)
}

// get asks the nodes that are up, in turn, until one answers.
func (c *testCluster) get(path string, v any) error {
	err := fmt.Errorf("GET %s: no node is up", path)
	for _, n := range c.nodes {
		if !n.alive() {
			continue
		}
		if err = n.get(path, v); err == nil {
			return nil
		}
	}
	return err
}

// submit posts a YAML job spec to node n and returns the status and the
// answer.
func submit(t *testing.T, n *clusterNode, spec string) (int, jobView) {
	t.Helper()
	code, body, err := n.call(http.MethodPost, "/api/jobs", "application/yaml", spec)
	if err != nil {
		t.Fatalf("submit to %s: %v", n.name, err)
	}
	var v jobView
	if code == http.StatusCreated {
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("submit to %s: %v: %s", n.name, err, body)
		}
	}
	return code, v
}

// mustSubmit submits a job that must be accepted.
func mustSubmit(t *testing.T, n *clusterNode, spec string) jobView {
	t.Helper()
	code, v := submit(t, n, spec)
	if code != http.StatusCreated {
		t.Fatalf("submit to %s: status %d, want 201", n.name, code)
	}
	return v
}

// trigger queues a run of job through node n.
func trigger(t *testing.T, n *clusterNode, job string) {
	t.Helper()
	code, body, err := n.call(http.MethodPost, "/api/jobs/"+job+"/trigger", "", "")
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("trigger %s on %s: %d %s %v", job, n.name, code, body, err)
	}
}

type jobView struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
}

type nodesView struct {
	Leader string     `json:"leader"`
	Self   string     `json:"self"`
	Nodes  []nodeView `json:"nodes"`
}

type nodeView struct {
	ID   string `json:"id"`
	Info struct {
		Addr string `json:"addr"`
		PID  int    `json:"pid"`
	} `json:"info"`
	Resources *struct {
		Running []string `json:"running"` // JOB/RUN/PARTITION
	} `json:"resources"`
}

// node returns the member id, or nil when it is not one.
func (v nodesView) node(id string) *nodeView {
	for i := range v.Nodes {
		if v.Nodes[i].ID == id {
			return &v.Nodes[i]
		}
	}
	return nil
}

func (v nodesView) ids() []string {
	var out []string
	for _, n := range v.Nodes {
		out = append(out, n.ID)
	}
	return out
}

// leader returns the node process that leads now.
func (c *testCluster) leader() (*clusterNode, nodesView) {
	c.t.Helper()
	var v nodesView
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.get("/api/nodes", &v); err == nil && v.Leader != "" {
			if n := v.node(v.Leader); n != nil {
				for _, p := range c.nodes {
					if p.addr == n.Info.Addr {
						return p, v
					}
				}
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no leader within 30s (last: %+v)", v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- runs -------------------------------------------------------------------

type partView struct {
	ID         string            `json:"id"`
	State      string            `json:"state"`
	Owner      string            `json:"owner"`
	Attempts   int               `json:"attempts"`
	Lease      int64             `json:"lease"`
	Error      string            `json:"error"`
	Checkpoint engine.Checkpoint `json:"checkpoint"`
}

type runView struct {
	engine.RunRecord
	Partitions []partView `json:"partitions"`
}

// runWatch follows one run by polling GET /api/runs on the nodes that are
// up, and keeps what it saw of each partition: a finished run's
// partitions leave ZooKeeper, so who ran what is known only from the
// polls made while the run went.
type runWatch struct {
	c     *testCluster
	job   string
	id    string
	last  runView
	parts map[string]*partSeen
}

// partSeen is what the polls saw of one partition.
type partSeen struct {
	owners   []string // each owner in the order first seen
	maxLease int64
	maxTries int
	states   []string // each state seen, in order: done is the last
	// rowsAt is the checkpoint's rows the first time each lease was seen.
	rowsAt map[int64]int64
}

func (p *partSeen) ownedBy(id string) bool { return slices.Contains(p.owners, id) }

// watchRun waits for the job's first run to appear and follows it.
func (c *testCluster) watchRun(job string) *runWatch {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var runs []engine.RunRecord
		if err := c.get("/api/jobs/"+job+"/runs", &runs); err == nil && len(runs) > 0 {
			c.t.Logf("run %s of %s: %s", runs[0].ID, job, runs[0].State)
			return &runWatch{c: c, job: job, id: runs[0].ID, parts: map[string]*partSeen{}}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no run of %s within 30s of its trigger", job)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// poll reads the run once and records what it saw; false if no node
// answered.
func (w *runWatch) poll() bool {
	t := w.c.t
	t.Helper()
	var v runView
	if err := w.c.get("/api/runs/"+w.job+"/"+w.id, &v); err != nil {
		return false
	}
	for _, p := range v.Partitions {
		s := w.parts[p.ID]
		if s == nil {
			s = &partSeen{rowsAt: map[int64]int64{}}
			w.parts[p.ID] = s
		}
		if p.Owner != "" && !s.ownedBy(p.Owner) {
			s.owners = append(s.owners, p.Owner)
		}
		if p.Lease < s.maxLease || p.Attempts < s.maxTries {
			t.Errorf("partition %s went back from lease %d (attempt %d) to lease %d (attempt %d)", p.ID, s.maxLease, s.maxTries, p.Lease, p.Attempts)
		}
		s.maxLease, s.maxTries = max(s.maxLease, p.Lease), max(s.maxTries, p.Attempts)
		if _, ok := s.rowsAt[p.Lease]; !ok {
			s.rowsAt[p.Lease] = p.Checkpoint.Rows
		}
		if n := len(s.states); n == 0 || s.states[n-1] != p.State {
			if n > 0 && s.states[n-1] == engine.Done {
				t.Errorf("partition %s was done, and is %s again (owner %s, lease %d)", p.ID, p.State, p.Owner, p.Lease)
			}
			s.states = append(s.states, p.State)
		}
	}
	w.last = v
	return true
}

// waitFor polls until cond holds of the run, and fails if it ends first
// or timeout passes.
func (w *runWatch) waitFor(what string, timeout time.Duration, cond func(runView) bool) runView {
	w.c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if w.poll() {
			if cond(w.last) {
				return w.last
			}
			if w.last.State != engine.RunRunning {
				w.c.t.Fatalf("run %s ended %s (%s) before %s", w.id, w.last.State, w.last.Error, what)
			}
		}
		if time.Now().After(deadline) {
			w.c.t.Fatalf("run %s: not %s within %s (last: %s, %d rows)", w.id, what, timeout, w.last.State, copied(w.last))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitEnd polls until the run is over and returns its final record.
func (w *runWatch) waitEnd(timeout time.Duration) engine.RunRecord {
	w.c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if w.poll() && w.last.State != engine.RunRunning {
			return w.last.RunRecord
		}
		if time.Now().After(deadline) {
			w.c.t.Fatalf("run %s did not end within %s (last: %s, %d rows)", w.id, timeout, w.last.State, copied(w.last))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// owners is every node seen owning a partition of the run.
func (w *runWatch) owners() []string {
	var out []string
	for _, p := range w.parts {
		for _, o := range p.owners {
			if !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	slices.Sort(out)
	return out
}

// copied is the rows the run's partitions have committed, as v shows them.
func copied(v runView) int64 {
	var rows int64
	for _, p := range v.Partitions {
		rows += p.Checkpoint.Rows
	}
	return rows
}

// held returns the partitions running on node id in v.
func held(v runView, id string) []partView {
	var out []partView
	for _, p := range v.Partitions {
		if p.State == engine.Running && p.Owner == id {
			out = append(out, p)
		}
	}
	return out
}

// committedOn reports whether a partition running on node id has
// committed rows.
func committedOn(id string) func(runView) bool {
	return func(v runView) bool {
		for _, p := range held(v, id) {
			if p.Checkpoint.Commits > 0 {
				return true
			}
		}
		return false
	}
}

// checkTakenOver checks that each partition the lost node held was taken
// again by another node under a newer lease, from its checkpoint, and that
// no partition it did not hold was taken again.
func (w *runWatch) checkTakenOver(lost string, heldThen []partView) {
	t := w.c.t
	t.Helper()
	wasHeld := map[string]bool{}
	for _, h := range heldThen {
		wasHeld[h.ID] = true
		s := w.parts[h.ID]
		var after []string
		for _, o := range s.owners {
			if o != lost {
				after = append(after, o)
			}
		}
		switch {
		case s.maxLease <= h.Lease || s.maxTries <= 1:
			t.Errorf("partition %s, held by %s under lease %d, was not taken again (lease %d, attempts %d seen)", h.ID, lost, h.Lease, s.maxLease, s.maxTries)
		case len(after) == 0:
			t.Errorf("partition %s was not seen on another node than %s (owners %v)", h.ID, lost, s.owners)
		}
		// The first poll that saw a newer lease saw the checkpoint kept:
		// at least the rows committed when the node was lost.
		for lease, rows := range s.rowsAt {
			if lease > h.Lease && rows < h.Checkpoint.Rows {
				t.Errorf("partition %s: lease %d started at %d rows, below the %d committed under lease %d", h.ID, lease, rows, h.Checkpoint.Rows, h.Lease)
			}
		}
	}
	for id, s := range w.parts {
		if !wasHeld[id] && !s.ownedBy(lost) && (s.maxLease > 1 || s.maxTries > 1) {
			t.Errorf("partition %s, never on %s, was taken %d times (lease %d; owners %v)", id, lost, s.maxTries, s.maxLease, s.owners)
		}
	}
}

// ---- data -------------------------------------------------------------------

// copyCluster starts three nodes of two slots each and, meanwhile, makes
// the source: table orders of sourceRows rows, made by the server's own
// SQL. It returns the cluster, the source's and an empty sink database's
// DSNs, and the source's checksum.
func copyCluster(t *testing.T) (c *testCluster, src, dst string, want connectors.Checksum) {
	t.Helper()
	c = newTestCluster(t)
	src, dst = testenv.Postgres(t), testenv.Postgres(t)
	var (
		took time.Duration
		err  error
		made = make(chan struct{})
	)
	go func() {
		defer close(made)
		began := time.Now()
		want, err = makeSource(src, sourceRows)
		took = time.Since(began)
	}()
	t.Cleanup(func() { <-made }) // before the database is dropped
	c.startN(3, 2)
	<-made
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("source: %v, made and summed in %s", want, took.Round(time.Millisecond))
	if want.Rows != sourceRows {
		t.Fatalf("source: %v, want %d rows", want, sourceRows)
	}
	return c, src, dst, want
}

// makeSource fills the database at dsn with table orders of rows rows and
// returns its checksum.
func makeSource(dsn string, rows int) (connectors.Checksum, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return connectors.Checksum{}, err
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		`CREATE TABLE orders (id bigint NOT NULL, name text, amount numeric(12,2), created timestamptz)`,
		fmt.Sprintf(`INSERT INTO orders SELECT g, 'name ' || g, (g %% 100000) / 100.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, %d) g`, rows),
		`ALTER TABLE orders ADD PRIMARY KEY (id)`,
		`ANALYZE orders`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return connectors.Checksum{}, fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return engine.TableChecksum(ctx, "postgres", connectors.SourceConfig{DSN: dsn, Table: "orders"}, []string{"id", "name", "amount", "created"})
}

// copyJob is the spec of a PostgreSQL→PostgreSQL copy of orders, its
// partitions of 50,000 rows; rate, if not 0, caps each node's rows per
// second.
func copyJob(name, src, dst string, rate int) string {
	spec := fmt.Sprintf(`name: %s
source: {type: postgres, dsn: %q, table: orders, key: [id]}
sink: {type: postgres, dsn: %q, table: orders_copy, mode: append, create_table: true}
partitions: {target_rows: 50000}
commit_rows: 10000
batch_rows: 5000
`, name, src, dst)
	if rate > 0 {
		spec += fmt.Sprintf("rate_limit: {rows_per_second: %d}\n", rate)
	}
	return spec
}

// checkCopy checks the run succeeded with every source row and that the
// sink equals the source.
func checkCopy(t *testing.T, run engine.RunRecord, dst string, want connectors.Checksum) {
	t.Helper()
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %s (%s)", run.ID, run.State, run.Error)
	}
	if run.Rows != want.Rows {
		t.Errorf("run %s copied %d rows, the source has %d", run.ID, run.Rows, want.Rows)
	}
	if got := checksum(t, "postgres", connectors.SourceConfig{DSN: dst, Table: "orders_copy"}); got != want {
		t.Errorf("sink %v, source %v", got, want)
	}
	// The sink created the table and loaded it bare; the run's end added
	// its primary key.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var pk string
	if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(pg_get_constraintdef(oid), ', '), '') FROM pg_constraint
WHERE conrelid = 'orders_copy'::regclass AND contype = 'p'`).Scan(&pk); err != nil || pk != "PRIMARY KEY (id)" {
		t.Errorf("the sink's primary key: %q, %v", pk, err)
	}
}

// checkOneRun checks the job has run exactly once.
func checkOneRun(t *testing.T, c *testCluster, job string) {
	t.Helper()
	var runs []engine.RunRecord
	if err := c.get("/api/jobs/"+job+"/runs", &runs); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].State != engine.RunSucceeded {
		t.Errorf("runs of %s: %+v, want one that succeeded", job, runs)
	}
}

// submitIdle files two jobs that are never triggered, so that with the
// job under test each of three nodes owns one and a lost node has a job to
// move.
func submitIdle(t *testing.T, n *clusterNode, src, dst string) {
	t.Helper()
	for _, name := range []string{"idle-1", "idle-2"} {
		mustSubmit(t, n, copyJob(name, src, dst, 0))
	}
}

// checkJobsOnLive waits until every job is filed under a live member: a
// lost node's jobs move to the others.
func checkJobsOnLive(t *testing.T, c *testCluster) {
	t.Helper()
	var jobs []jobView
	var nv nodesView
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c.get("/api/jobs", &jobs) == nil && c.get("/api/nodes", &nv) == nil {
			var stray []jobView
			for _, j := range jobs {
				if nv.node(j.Owner) == nil {
					stray = append(stray, j)
				}
			}
			if len(stray) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("jobs filed under nodes that are gone: %+v (nodes %v)", stray, nv.ids())
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ---- tests ------------------------------------------------------------------

// Any node takes a job; a name is taken once in the cluster, whichever
// node is asked; and jobs are filed evenly over the nodes.
func TestClusterJobs(t *testing.T) {
	src, dst := testenv.Postgres(t), testenv.Postgres(t)
	pgExec(t, src, `CREATE TABLE orders (id bigint PRIMARY KEY, name text)`)
	c := newTestCluster(t)
	nodes := c.startN(3, 1)
	spec := func(name string) string {
		return fmt.Sprintf("name: %s\nsource: {type: postgres, dsn: %q, table: orders, key: [id]}\nsink: {type: postgres, dsn: %q, table: orders, mode: append, create_table: true}\n", name, src, dst)
	}

	first := mustSubmit(t, nodes[0], spec("job-00"))
	for _, n := range nodes[1:] {
		if code, _ := submit(t, n, spec("job-00")); code != http.StatusConflict {
			t.Errorf("job-00 again, to %s: status %d, want 409", n.name, code)
		}
	}
	var got jobView
	if err := nodes[2].get("/api/jobs/job-00", &got); err != nil || got.Owner != first.Owner {
		t.Errorf("job-00 on %s: %+v (%v), filed under %s", nodes[2].name, got, err, first.Owner)
	}

	// The same name to all three at once: one takes it.
	codes := make([]int, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { codes[i], _ = submit(t, n, spec("job-race")) })
	}
	wg.Wait()
	slices.Sort(codes)
	if !slices.Equal(codes, []int{http.StatusCreated, http.StatusConflict, http.StatusConflict}) {
		t.Errorf("job-race to the three nodes at once: statuses %v, want one 201 and two 409", codes)
	}
	if code, _, err := nodes[1].call(http.MethodDelete, "/api/jobs/job-race", "", ""); err != nil || code != http.StatusNoContent {
		t.Fatalf("delete job-race: %d %v", code, err)
	}

	// 29 more, round-robin: 30 in all.
	for i := 1; i < 30; i++ {
		mustSubmit(t, nodes[i%3], spec(fmt.Sprintf("job-%02d", i)))
	}
	var jobs []jobView
	deadline := time.Now().Add(20 * time.Second)
	for {
		per := map[string]int{}
		for _, n := range nodes {
			if err := n.get("/api/jobs", &jobs); err != nil {
				t.Fatal(err)
			}
			if len(jobs) != 30 {
				t.Fatalf("%s lists %d jobs, want 30: %+v", n.name, len(jobs), jobs)
			}
		}
		for _, j := range jobs {
			per[j.Owner]++
		}
		lo, hi := 30, 0
		for _, n := range nodes {
			lo, hi = min(lo, per[n.id]), max(hi, per[n.id])
		}
		if len(per) == 3 && hi-lo <= 1 {
			t.Logf("jobs per node: %v", per)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs per node after 20s: %v, want the three nodes within one of each other", per)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A 2M-row copy on three nodes runs on all three and leaves the sink equal
// to the source.
func TestClusterCopy(t *testing.T) {
	c, src, dst, want := copyCluster(t)
	nodes := c.nodes
	mustSubmit(t, nodes[1], copyJob("copy", src, dst, 0))
	started := time.Now()
	trigger(t, nodes[2], "copy")
	w := c.watchRun("copy")
	run := w.waitEnd(2 * time.Minute)
	t.Logf("run %s: %s, %d rows in %s, %d partitions seen", run.ID, run.State, run.Rows, time.Since(started).Round(time.Millisecond), len(w.parts))
	checkCopy(t, run, dst, want)
	if len(w.parts) < 30 {
		t.Errorf("saw %d partitions, want the 40 of %d rows by 50,000", len(w.parts), sourceRows)
	}
	ids := []string{nodes[0].id, nodes[1].id, nodes[2].id}
	slices.Sort(ids)
	if owners := w.owners(); !slices.Equal(owners, ids) {
		t.Errorf("partitions ran on %v, want all of %v", owners, ids)
	}
	w.checkTakenOver("", nil) // no partition was taken twice
	checkOneRun(t, c, "copy")
}

// A worker killed mid-copy: the leader gives its partitions to the others
// once its session expires, and they go on from their checkpoints.
func TestClusterKillWorker(t *testing.T) {
	c, src, dst, want := copyCluster(t)
	lead, _ := c.leader()
	mustSubmit(t, lead, copyJob("kill-worker", src, dst, 50000))
	submitIdle(t, lead, src, dst)
	trigger(t, lead, "kill-worker")
	w := c.watchRun("kill-worker")

	var victim *clusterNode
	for _, n := range c.nodes {
		if n != lead {
			victim = n
			break
		}
	}
	v := w.waitFor(victim.id+" running a partition with commits", 30*time.Second, committedOn(victim.id))
	heldThen := held(v, victim.id)
	victim.kill(t)
	killed := time.Now()
	t.Logf("killed %s (%s) holding %d partitions, %d rows copied", victim.name, victim.id, len(heldThen), copied(v))

	run := w.waitEnd(90 * time.Second)
	t.Logf("run %s: %s, %d rows, %s after the kill", run.ID, run.State, run.Rows, time.Since(killed).Round(time.Millisecond))
	checkCopy(t, run, dst, want)
	w.checkTakenOver(victim.id, heldThen)
	var nv nodesView
	if err := c.get("/api/nodes", &nv); err != nil || nv.node(victim.id) != nil || len(nv.Nodes) != 2 {
		t.Errorf("nodes after the kill: %v (%v), want two, without %s", nv.ids(), err, victim.id)
	}
	checkOneRun(t, c, "kill-worker")
	checkJobsOnLive(t, c)
}

// The leader killed mid-run: the next node in line leads, gives the dead
// leader's partitions to the others and ends the run.
func TestClusterKillLeader(t *testing.T) {
	c, src, dst, want := copyCluster(t)
	lead, _ := c.leader()
	mustSubmit(t, lead, copyJob("kill-leader", src, dst, 50000))
	submitIdle(t, lead, src, dst)
	trigger(t, lead, "kill-leader")
	w := c.watchRun("kill-leader")

	v := w.waitFor("the leader "+lead.id+" running a partition with commits", 30*time.Second, committedOn(lead.id))
	heldThen := held(v, lead.id)
	lead.kill(t)
	killed := time.Now()
	t.Logf("killed the leader %s (%s) holding %d partitions, %d rows copied", lead.name, lead.id, len(heldThen), copied(v))

	next, nv := c.leader()
	for next == lead {
		time.Sleep(100 * time.Millisecond)
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("%s still leads 30s after its kill", lead.id)
		}
		next, nv = c.leader()
	}
	t.Logf("%s (%s) leads %s after the kill; nodes %v", next.name, nv.Leader, time.Since(killed).Round(time.Millisecond), nv.ids())

	run := w.waitEnd(90 * time.Second)
	t.Logf("run %s: %s, %d rows, %s after the kill", run.ID, run.State, run.Rows, time.Since(killed).Round(time.Millisecond))
	checkCopy(t, run, dst, want)
	w.checkTakenOver(lead.id, heldThen)
	checkOneRun(t, c, "kill-leader")
	checkJobsOnLive(t, c)
}

// A leader paused (SIGSTOP) past its session timeout and then resumed
// (SIGCONT) while the others went on without it: what it does on waking,
// as the leader and the worker it was, lands nothing. Another node led
// meanwhile and still leads; the paused node comes back as a new member;
// its partitions went to others once, and no other partition moved; the
// run ends once with the sink equal to the source.
func TestClusterPausedLeader(t *testing.T) {
	c, src, dst, want := copyCluster(t)
	lead, _ := c.leader()
	oldID := lead.id
	mustSubmit(t, lead, copyJob("paused-leader", src, dst, 50000))
	submitIdle(t, lead, src, dst)
	trigger(t, lead, "paused-leader")
	w := c.watchRun("paused-leader")

	v := w.waitFor("the leader "+oldID+" running a partition with commits", 30*time.Second, committedOn(oldID))
	heldThen := held(v, oldID)
	lead.pause()
	paused := time.Now()
	t.Logf("paused the leader %s (%s) holding %d partitions, %d rows copied", lead.name, oldID, len(heldThen), copied(v))

	// While it sleeps: another node leads, the paused one is no member,
	// and its partitions run elsewhere under newer leases.
	var nv nodesView
	for {
		if err := c.get("/api/nodes", &nv); err == nil && nv.Leader != "" && nv.Leader != oldID && nv.node(oldID) == nil {
			break
		}
		if time.Since(paused) > 30*time.Second {
			t.Fatalf("30s after the pause: nodes %v, leader %s", nv.ids(), nv.Leader)
		}
		time.Sleep(100 * time.Millisecond)
	}
	newLeader := nv.Leader
	t.Logf("%s leads %s after the pause; nodes %v", newLeader, time.Since(paused).Round(time.Millisecond), nv.ids())
	w.waitFor("the paused node's partitions running elsewhere", 30*time.Second, func(v runView) bool {
		for _, h := range heldThen {
			for _, p := range v.Partitions {
				if p.ID == h.ID && (p.Lease <= h.Lease || p.Owner == oldID) {
					return false
				}
			}
		}
		return true
	})
	// Let the others' copy go on a little, then wake it.
	time.Sleep(time.Second)
	lead.resume()
	resumed := time.Now()
	t.Logf("resumed %s after %s", lead.name, resumed.Sub(paused).Round(time.Millisecond))

	// It comes back as a new member, and leads nothing.
	var self nodesView
	for {
		if err := lead.get("/api/nodes", &self); err == nil && self.Self != "" && self.Self != oldID && self.node(self.Self) != nil {
			break
		}
		if time.Since(resumed) > 30*time.Second {
			t.Fatalf("30s after the resume %s says it is %q (nodes %v)", lead.name, self.Self, self.ids())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if self.Leader != newLeader || self.node(oldID) != nil {
		t.Errorf("after the resume: leader %s, nodes %v; want %s leading, without %s", self.Leader, self.ids(), newLeader, oldID)
	}
	if p := self.node(self.Self); p.Info.PID != lead.cmd.Process.Pid {
		t.Errorf("member %s has pid %d, want the resumed node's %d", self.Self, p.Info.PID, lead.cmd.Process.Pid)
	}
	t.Logf("%s is back as %s, %s after the resume", lead.name, self.Self, time.Since(resumed).Round(time.Millisecond))

	// From the resume to the run's end: no partition goes back to the old
	// id, the leader stays, the old id is never a member again, and the
	// resumed node runs only partitions given to its new id (none it held
	// before the pause, unless given to it again).
	newID := self.Self
	runsOnNew := map[string]bool{}
	for w.poll(); w.last.State == engine.RunRunning; w.poll() {
		for _, p := range w.last.Partitions {
			if p.Owner == oldID {
				t.Errorf("after the resume, partition %s is on %s again (lease %d, %s)", p.ID, oldID, p.Lease, p.State)
			}
		}
		if err := c.get("/api/nodes", &nv); err == nil {
			if nv.Leader != newLeader || nv.node(oldID) != nil {
				t.Errorf("after the resume: leader %s, nodes %v", nv.Leader, nv.ids())
			}
			if n := nv.node(newID); n != nil && n.Resources != nil {
				for _, k := range n.Resources.Running {
					runsOnNew[k[strings.LastIndex(k, "/")+1:]] = true
				}
			}
		}
		if time.Since(resumed) > 90*time.Second {
			t.Fatalf("run %s did not end within 90s of the resume", w.id)
		}
		time.Sleep(100 * time.Millisecond)
	}
	run := w.last.RunRecord
	t.Logf("run %s: %s, %d rows, %s after the resume", run.ID, run.State, run.Rows, time.Since(resumed).Round(time.Millisecond))
	checkCopy(t, run, dst, want)
	w.checkTakenOver(oldID, heldThen)
	for id := range runsOnNew {
		if s := w.parts[id]; s == nil || !s.ownedBy(newID) {
			t.Errorf("%s ran partition %s, which was never given to it", newID, id)
		}
	}
	checkOneRun(t, c, "paused-leader")
	checkJobsOnLive(t, c)
}
