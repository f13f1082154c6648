package integration

// Scheduling tests: real `datashift node` processes on the real ZooKeeper
// fire jobs by cron and after their upstreams, killed with real signals,
// seen through the HTTP API.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/demodata"
	"github.com/datashift/datashift/internal/testenv"
)

type scheduleView struct {
	Paused    bool        `json:"paused"`
	NextFires []time.Time `json:"next_fires"`
}

type jobScheduleView struct {
	Name     string       `json:"name"`
	Owner    string       `json:"owner"`
	Schedule scheduleView `json:"schedule"`
}

func postOK(t *testing.T, n *clusterNode, path string) {
	t.Helper()
	code, body, err := n.call(http.MethodPost, path, "", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST %s on %s: %d %s %v", path, n.name, code, body, err)
	}
}

// callbackServer counts the callbacks it hears by Idempotency-Key.
type callbackServer struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string][]engine.CallbackPayload
}

func newCallbackServer(t *testing.T) *callbackServer {
	s := &callbackServer{got: map[string][]engine.CallbackPayload{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p engine.CallbackPayload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Errorf("callback body: %v", err)
		}
		s.mu.Lock()
		s.got[r.Header.Get("Idempotency-Key")] = append(s.got[r.Header.Get("Idempotency-Key")], p)
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

// An every-2-seconds schedule fires once per tick for 60 s while the owner
// of a job is killed with SIGKILL and while jobs move to a node that
// joins: the fire records account for each tick once, each queued fire is
// one run, each run's end is posted once, and the sinks hold the source.
func TestClusterScheduleEveryTwoSeconds(t *testing.T) {
	c := newTestCluster(t)
	src := testenv.Postgres(t)
	dst := testenv.Postgres(t)
	want, err := makeSource(src, 100)
	if err != nil {
		t.Fatal(err)
	}
	hooks := newCallbackServer(t)
	nodes := c.startN(3, 2)
	const jobs = 3
	// Each job's ticks count from its submission: its mark is taken in it.
	from := map[string]time.Time{}
	for i := range jobs {
		mustSubmit(t, nodes[i%3], fmt.Sprintf(`name: every2-%d
source: {type: postgres, dsn: %q, table: orders, key: [id]}
sink: {type: postgres, dsn: %q, table: copy_%d, mode: upsert, create_table: true}
schedule: {cron: "*/2 * * * * *", misfire_grace: 1s, overlap: allow}
callbacks: [{url: %q}]
`, i, src, dst, i, hooks.URL))
		from[fmt.Sprintf("every2-%d", i)] = time.Now().UTC()
	}
	time.Sleep(20 * time.Second)
	var owned jobScheduleView
	if err := c.get("/api/jobs/every2-0", &owned); err != nil {
		t.Fatal(err)
	}
	var victim *clusterNode
	for _, n := range c.nodes {
		if n.id == owned.Owner {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("no node is the owner %s of every2-0", owned.Owner)
	}
	killedAt := time.Now().UTC()
	victim.kill(t)
	t.Logf("killed %s (%s), the owner of every2-0, at %s", victim.name, victim.id, killedAt.Format(time.RFC3339Nano))
	time.Sleep(15 * time.Second)
	joined := c.start(2) // the jobs even out onto it
	time.Sleep(25 * time.Second)

	var live *clusterNode
	for _, n := range c.nodes {
		if n.alive() {
			live = n
		}
	}
	for i := range jobs {
		postOK(t, live, fmt.Sprintf("/api/jobs/every2-%d/pause", i))
	}
	var jv jobScheduleView
	var owners []string
	for i := range jobs {
		if err := live.get(fmt.Sprintf("/api/jobs/every2-%d", i), &jv); err != nil {
			t.Fatal(err)
		}
		owners = append(owners, jv.Owner)
	}
	if !slices.Contains(owners, joined.id) {
		t.Errorf("no job moved to the node that joined (%s): owners %v", joined.id, owners)
	}
	// Wait for the fired runs to end: every fire queued before the pause
	// (paused, the jobs fire no more) has its run, and none is going.
	var all []engine.RunRecord
	deadline := time.Now().Add(time.Minute)
	for {
		all = all[:0]
		settled := true
		for i := range jobs {
			var fires []coordinator.FireRecord
			if err := live.get(fmt.Sprintf("/api/jobs/every2-%d/fires", i), &fires); err != nil {
				t.Fatal(err)
			}
			var runs []engine.RunRecord
			if err := live.get(fmt.Sprintf("/api/jobs/every2-%d/runs", i), &runs); err != nil {
				t.Fatal(err)
			}
			ran := map[time.Time]bool{}
			for _, r := range runs {
				settled = settled && r.State != engine.RunRunning
				ran[r.Scheduled] = true
			}
			for _, f := range fires {
				settled = settled && (f.Outcome != coordinator.FireQueued || ran[f.Tick])
			}
			all = append(all, runs...)
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fired runs still waiting or going a minute after the pause")
		}
		time.Sleep(200 * time.Millisecond)
	}

	sched, _ := engine.ParseSchedule("*/2 * * * * *", "")
	var lags []time.Duration
	runsOf := map[string]int{}
	for i := range jobs {
		job := fmt.Sprintf("every2-%d", i)
		var fires []coordinator.FireRecord
		if err := live.get("/api/jobs/"+job+"/fires", &fires); err != nil {
			t.Fatal(err)
		}
		var runs []engine.RunRecord
		if err := live.get("/api/jobs/"+job+"/runs", &runs); err != nil {
			t.Fatal(err)
		}
		byTick := map[time.Time]int{}
		for _, r := range runs {
			if r.State != engine.RunSucceeded {
				t.Errorf("%s run %s: %s %s", job, r.ID, r.State, r.Error)
			}
			byTick[r.Scheduled]++
		}
		runsOf[job] = len(runs)
		seen := map[time.Time]int{}
		var last time.Time
		for _, f := range fires {
			for tk := f.Ticks.First; !tk.After(f.Ticks.Last); tk = sched.Next(tk) {
				seen[tk]++
			}
			if f.Ticks.Last.After(last) {
				last = f.Ticks.Last
			}
			want := 0
			if f.Outcome == coordinator.FireQueued {
				want = 1
			}
			if byTick[f.Tick] != want {
				t.Errorf("%s: fire for %s (%s) made %d runs, want %d", job, f.Tick.Format(time.RFC3339), f.Outcome, byTick[f.Tick], want)
			}
			lag := f.Fired.Sub(f.Tick)
			lags = append(lags, lag)
			// Away from the failover, every tick fires on time.
			inFailover := !f.Tick.Before(killedAt.Add(-time.Second)) && f.Tick.Before(killedAt.Add(clusterSessionTimeout+5*time.Second))
			if f.Ticks.Count == 1 && !inFailover && lag > time.Second {
				t.Errorf("%s: tick %s fired %s late", job, f.Tick.Format(time.RFC3339), lag)
			}
		}
		missing := 0
		for tk := sched.Next(from[job]); !tk.After(last); tk = sched.Next(tk) {
			if seen[tk] != 1 {
				t.Errorf("%s: tick %s accounted for %d times", job, tk.Format(time.RFC3339), seen[tk])
				missing++
			}
		}
		if n := len(fires); n < 25 {
			t.Errorf("%s: %d fire records over 60 s of an every-2-seconds schedule", job, n)
		}
		t.Logf("%s: %d fire records, %d runs, ticks up to %s", job, len(fires), len(runs), last.Format(time.RFC3339))

		// The sink holds the source once, by count and checksum: upsert mode.
		if got := checksum(t, "postgres", connectors.SourceConfig{DSN: dst, Table: fmt.Sprintf("copy_%d", i)}); got != want {
			t.Errorf("%s: after %d runs upserting the source, the sink holds %v, the source %v", job, len(runs), got, want)
		}
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	t.Logf("fire lag over %d fires: p50 %s, p99 %s, max %s", len(lags), lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])

	// Each run's end posted once.
	deadline = time.Now().Add(30 * time.Second)
	for {
		hooks.mu.Lock()
		heard := len(hooks.got)
		hooks.mu.Unlock()
		if heard >= len(all) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	for _, r := range all {
		if got := heardFor(hooks.got, r.ID); len(got) != 1 || got[0].Rows != r.Rows || got[0].Ticks == nil || !got[0].Ticks.Last.Equal(r.Scheduled) {
			t.Errorf("run %s of %s: %d callbacks (%+v)", r.ID, r.Job, len(got), got)
		}
	}
	if len(hooks.got) != len(all) {
		t.Errorf("callbacks for %d runs, %d runs", len(hooks.got), len(all))
	}
}

// A thousand jobs due in the same second all fire within 2 s, each once.
func TestClusterScheduleThousandJobsInOneSecond(t *testing.T) {
	const jobs = 1000
	dir := t.TempDir() // removed after the nodes stop
	c := newTestCluster(t)
	src := filepath.Join(dir, "source.sqlite")
	if err := demodata.Generate(context.Background(), src, 10); err != nil {
		t.Fatal(err)
	}
	nodes := c.startN(3, 4)
	// Submitted between two ticks, they are all due at the next one.
	const every = 20 * time.Second
	for time.Since(time.Now().Truncate(every)) > 2*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	began := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				mustSubmit(t, nodes[(i+w)%3], fmt.Sprintf(`name: j%04d
source: {type: sqlite, dsn: %q, table: orders, key: [id]}
sink: {type: parquet, dsn: %q}
schedule: {cron: "*/20 * * * * *"}
`, i, src, filepath.Join(dir, fmt.Sprintf("out%04d", i))))
			}
		}()
	}
	for i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
	tick := began.Truncate(every).Add(every).UTC()
	if time.Now().After(tick.Add(-2 * time.Second)) {
		t.Fatalf("submitting %d jobs took %s: past the tick they were to fire at", jobs, time.Since(began))
	}
	t.Logf("%d jobs submitted in %s; due at %s", jobs, time.Since(began).Round(time.Millisecond), tick.Format(time.RFC3339))
	time.Sleep(time.Until(tick.Add(4 * time.Second)))
	var lags []time.Duration
	for i := range jobs {
		job := fmt.Sprintf("j%04d", i)
		var fires []coordinator.FireRecord
		if err := c.get("/api/jobs/"+job+"/fires", &fires); err != nil {
			t.Fatal(err)
		}
		if len(fires) != 1 || !fires[0].Tick.Equal(tick) || fires[0].Ticks.Count != 1 {
			t.Errorf("%s: fires %+v, want one for %s", job, fires, tick)
			continue
		}
		lag := fires[0].Fired.Sub(tick)
		lags = append(lags, lag)
		if lag > 2*time.Second {
			t.Errorf("%s fired %s after its tick", job, lag)
		}
	}
	if len(lags) == 0 {
		return
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	t.Logf("fire lag of %d jobs due at once: p50 %s, p99 %s, max %s", len(lags), lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])
	// Each fired once: no job has a second run or queued trigger.
	for i := 0; i < jobs; i += 97 {
		var runs []engine.RunRecord
		if err := c.get(fmt.Sprintf("/api/jobs/j%04d/runs", i), &runs); err != nil {
			t.Fatal(err)
		}
		if len(runs) > 1 {
			t.Errorf("j%04d: %d runs of one tick", i, len(runs))
		}
	}
}

// A → B → C through the API of different nodes: B and C run in order,
// after their upstream succeeded, and B does not run when A fails.
func TestClusterScheduleAfterChain(t *testing.T) {
	c := newTestCluster(t)
	src := testenv.Postgres(t)
	dst := testenv.Postgres(t)
	if _, err := makeSource(src, 1000); err != nil {
		t.Fatal(err)
	}
	nodes := c.startN(3, 2)
	spec := func(name, table, after string) string {
		s := fmt.Sprintf(`name: %s
source: {type: postgres, dsn: %q, table: %s, key: [id]}
sink: {type: postgres, dsn: %q, table: copy_%s, mode: truncate, create_table: true}
`, name, src, table, dst, name)
		if after != "" {
			s += fmt.Sprintf("schedule: {after: [%s]}\n", after)
		}
		return s
	}
	mustSubmit(t, nodes[0], spec("a", "orders", ""))
	mustSubmit(t, nodes[1], spec("b", "orders", "a"))
	mustSubmit(t, nodes[2], spec("c", "orders", "b"))
	// A cycle is refused, naming it.
	code, body, err := nodes[1].call(http.MethodPut, "/api/jobs/a", "application/yaml", spec("a", "orders", "c"))
	if err != nil || code != http.StatusBadRequest || !bytesContains(body, "would close a cycle: a runs after c runs after b runs after a") {
		t.Errorf("a cycle: %d %s %v", code, body, err)
	}
	code, body, err = nodes[2].call(http.MethodDelete, "/api/jobs/a", "", "")
	if err != nil || code != http.StatusConflict || !bytesContains(body, "other jobs run after it: b") {
		t.Errorf("deleting an upstream: %d %s %v", code, body, err)
	}
	trigger(t, nodes[2], "a")
	end := func(job string, n int) engine.RunRecord {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			var runs []engine.RunRecord
			if err := c.get("/api/jobs/"+job+"/runs", &runs); err == nil && len(runs) >= n && runs[0].State != engine.RunRunning {
				return runs[0]
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: no run #%d ended within a minute", job, n)
		return engine.RunRecord{}
	}
	ra, rb, rc := end("a", 1), end("b", 1), end("c", 1)
	for _, r := range []engine.RunRecord{ra, rb, rc} {
		if r.State != engine.RunSucceeded || r.Rows != 1000 {
			t.Fatalf("%s: %s, %d rows, %s", r.Job, r.State, r.Rows, r.Error)
		}
	}
	if rb.Upstream["a"] != ra.ID || rb.Started.Before(ra.Finished) || rc.Upstream["b"] != rb.ID || rc.Started.Before(rb.Finished) {
		t.Errorf("out of order: a %s–%s, b %s–%s after %v, c %s after %v", ra.Started, ra.Finished, rb.Started, rb.Finished, rb.Upstream, rc.Started, rc.Upstream)
	}
	// A fails (its table is gone): B does not run.
	code, body, err = nodes[0].call(http.MethodPut, "/api/jobs/a", "application/yaml", spec("a", "orders", ""))
	if err != nil || code != http.StatusOK {
		t.Fatalf("update a: %d %s %v", code, body, err)
	}
	conn, err := pgx.Connect(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "ALTER TABLE orders RENAME TO orders_gone"); err != nil {
		t.Fatal(err)
	}
	trigger(t, nodes[1], "a")
	if r := end("a", 2); r.State != engine.RunFailed {
		t.Fatalf("a without its table: %s", r.State)
	}
	time.Sleep(7 * time.Second) // past the leader's full look at the dependants
	var runs []engine.RunRecord
	if err := c.get("/api/jobs/b/runs", &runs); err != nil || len(runs) != 1 {
		t.Errorf("b after a failed: %d runs (%v), want the one before", len(runs), err)
	}
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// heardFor is what a callback server heard of a run: the payloads posted
// under each Idempotency-Key of the run (its id and when it ended).
func heardFor(got map[string][]engine.CallbackPayload, run string) []engine.CallbackPayload {
	var out []engine.CallbackPayload
	for key, ps := range got {
		if strings.HasPrefix(key, run+"~") {
			out = append(out, ps...)
		}
	}
	return out
}
