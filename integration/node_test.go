package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// source makes the source table of rows rows for a test.
func source(t *testing.T, dsn string, rows int) connectors.Checksum {
	t.Helper()
	want, err := makeSource(dsn, rows)
	if err != nil || want.Rows != int64(rows) {
		t.Fatalf("source: %v, %v", want, err)
	}
	return want
}

// Without --zk a node is a cluster of one on an embedded store file, with
// the same API: a submitted job runs to its end, and the node started
// again on the same state still has the job and its run.
func TestNodeWithoutZooKeeper(t *testing.T) {
	src, dst := testenv.Postgres(t), testenv.Postgres(t)
	want := source(t, src, 100000)
	c := newLocalCluster(t)
	n := c.start(2)
	mustSubmit(t, n, copyJob("local", src, dst, 0))
	trigger(t, n, "local")
	run := c.watchRun("local").waitEnd(time.Minute)
	checkCopy(t, run, dst, want)

	n.stop(t)
	again := c.start(2)
	var job jobView
	if err := again.get("/api/jobs/local", &job); err != nil || job.Name != "local" {
		t.Fatalf("the job after a restart: %+v, %v", job, err)
	}
	var runs []engine.RunRecord
	if err := again.get("/api/jobs/local/runs", &runs); err != nil || len(runs) != 1 || runs[0].ID != run.ID || runs[0].State != engine.RunSucceeded {
		t.Fatalf("the runs after a restart: %+v, %v; want run %s succeeded", runs, err, run.ID)
	}
	// A second node on the same state is refused, naming the file.
	code, body := c.startFails(2)
	if code == 0 || !strings.Contains(body, "node.db") {
		t.Fatalf("a second node on the same state: exit %d:\n%s", code, body)
	}
}

// With --redis, finished runs go to Redis with their partitions, and any
// node's API reads them back from there; the store keeps only a summary
// of the newest runs' partitions, which answers when Redis lost a run.
func TestClusterHistoryInRedis(t *testing.T) {
	src, dst := testenv.Postgres(t), testenv.Postgres(t)
	want := source(t, src, 100000)
	addr, prefix := testenv.RedisPrefix(t)
	c := newTestCluster(t)
	c.extra = []string{"--redis", "redis://" + addr + "/0", "--redis-prefix", prefix}
	nodes := c.startN(3, 2)
	mustSubmit(t, nodes[0], copyJob("kept", src, dst, 0))
	trigger(t, nodes[1], "kept")
	run := c.watchRun("kept").waitEnd(time.Minute)
	checkCopy(t, run, dst, want)

	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	// The leader writes Redis just after the store says the run is over.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ids, err := rdb.ZRange(ctx, prefix+"runs:kept", 0, -1).Result()
		if err == nil && len(ids) == 1 && ids[0] == run.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs of job kept in Redis: %v, %v; want [%s]", ids, err, run.ID)
		}
	}
	for _, n := range nodes {
		var v runView
		if err := n.get("/api/runs/kept/"+run.ID, &v); err != nil {
			t.Fatal(err)
		}
		var rows int64
		for _, p := range v.Partitions {
			if p.State != engine.Done || p.Owner == "" {
				t.Errorf("%s: partition %+v of the finished run", n.name, p)
			}
			rows += p.Checkpoint.Rows
		}
		if v.State != engine.RunSucceeded || len(v.Partitions) < 2 || rows != want.Rows {
			t.Errorf("%s: run %s from the history: %s, %d partitions, %d rows; want succeeded, %d rows over its partitions", n.name, run.ID, v.State, len(v.Partitions), rows, want.Rows)
		}
	}
	// With the run's entry gone from Redis, the run is still known from
	// the store's record and its partitions' summary.
	var before runView
	if err := nodes[2].get("/api/runs/kept/"+run.ID, &before); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, prefix+"run:kept:"+run.ID).Err(); err != nil {
		t.Fatal(err)
	}
	var v runView
	if err := nodes[2].get("/api/runs/kept/"+run.ID, &v); err != nil || v.State != engine.RunSucceeded || len(v.Partitions) != len(before.Partitions) {
		t.Fatalf("the run once Redis lost it: %s with %d partitions, %v; want the store's record with its %d partitions", v.State, len(v.Partitions), err, len(before.Partitions))
	}
	var rows int64
	for _, p := range v.Partitions {
		rows += p.Checkpoint.Rows
	}
	if rows != want.Rows {
		t.Errorf("the store's summary of the run's partitions holds %d rows, want %d", rows, want.Rows)
	}
}

// No line a node logs shows a DSN's password (at debug level, for the
// lines that may come there), not in the errors of a run refused for its source; nor does any answer of
// its API about the job.
func TestNodeLogsHideDSNPasswords(t *testing.T) {
	const secret = "Hunter2Secret"
	src, dst := testenv.Postgres(t), testenv.Postgres(t)
	source(t, src, 20000)
	// PostgreSQL trusts the tests' connections: any password works.
	withPassword := func(dsn string) string {
		return strings.Replace(dsn, "postgres@", "postgres:"+secret+"@", 1)
	}
	if withPassword(src) == src {
		t.Fatalf("no user to give a password to in %s", src)
	}
	c := newLocalCluster(t)
	c.extra = []string{"--log-level", "debug"}
	n := c.start(2)
	mustSubmit(t, n, copyJob("pw", withPassword(src), withPassword(dst), 0))
	trigger(t, n, "pw")
	if run := c.watchRun("pw").waitEnd(time.Minute); run.State != engine.RunSucceeded {
		t.Fatalf("the first run: %+v", run)
	}
	// The source table gone, the next trigger is refused in planning,
	// with the driver's error in the log and in the run's record.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP TABLE orders"); err != nil {
		t.Fatal(err)
	}
	trigger(t, n, "pw")
	var runs []engine.RunRecord
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if err := n.get("/api/jobs/pw/runs", &runs); err != nil {
			t.Fatal(err)
		}
		if len(runs) == 2 && runs[0].State == engine.RunFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run without a source table: %+v", runs)
		}
	}
	if !strings.Contains(runs[0].Error, "orders") {
		t.Errorf("the refused run's error does not name the table: %q", runs[0].Error)
	}
	for _, path := range []string{"/api/jobs", "/api/jobs/pw", "/api/jobs/pw/runs", "/api/runs/pw/" + runs[0].ID, "/api/runs/pw/" + runs[1].ID} {
		code, body, err := n.call(http.MethodGet, path, "", "")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s: %d %s %v", path, code, body, err)
		}
		if strings.Contains(string(body), secret) {
			t.Errorf("GET %s shows the password:\n%s", path, body)
		}
	}
	n.stop(t)
	log := n.out.String()
	if !strings.Contains(log, "trigger refused") || !strings.Contains(log, "run finished") {
		t.Fatalf("the node's log has no run or no refusal, so it proves nothing:\n%s", log)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, secret) {
			t.Errorf("the node logged the password: %s", line)
		}
	}
}
