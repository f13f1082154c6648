package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// ran is what a user sees of one datashift command: its output, its
// errors and its exit code, as main gives them.
type ran struct {
	out, err string
	code     int
}

func (r ran) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
}

// cli runs the datashift command in-process as main does.
func cli(t *testing.T, args ...string) ran {
	t.Helper()
	return cliIn(t, "", args...)
}

// cliIn is cli with stdin.
func cliIn(t *testing.T, stdin string, args ...string) ran {
	t.Helper()
	var errb testenv.Output
	return cliTo(t, stdin, &errb, args...)
}

// cliTo is cliIn writing its errors to errw as it goes too.
func cliTo(t *testing.T, stdin string, errw *testenv.Output, args ...string) ran {
	t.Helper()
	var out bytes.Buffer
	root := rootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(errw)
	root.SetIn(strings.NewReader(stdin))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := 0
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(errw, "datashift:", err)
		code = exitCode(err)
	}
	return ran{out: out.String(), err: errw.String(), code: code}
}

// noEnv keeps the tester's DATASHIFT_SERVER and DATASHIFT_TOKEN out.
func noEnv(t *testing.T) {
	t.Setenv("DATASHIFT_SERVER", "")
	t.Setenv("DATASHIFT_TOKEN", "")
}

// table parses a table the CLI printed: its rows by column heading.
// Columns are two spaces or more apart.
func table(t *testing.T, text string) []map[string]string {
	t.Helper()
	cols := regexp.MustCompile(`\s{2,}`)
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	head := cols.Split(lines[0], -1)
	var rows []map[string]string
	for _, l := range lines[1:] {
		cells := cols.Split(strings.TrimRight(l, " "), -1)
		if len(cells) != len(head) {
			t.Fatalf("row %q has %d cells, the heading %q %d", l, len(cells), lines[0], len(head))
		}
		row := map[string]string{}
		for i, h := range head {
			row[h] = cells[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// A job's life from the command line: submitted, updated by a second
// submit, listed, triggered and watched to its end, its run shown with
// every partition, paused and resumed, deleted.
func TestCLIJobLifecycle(t *testing.T) {
	noEnv(t)
	gate := newGate()
	n := startAPI(t, nodeOpts{token: testToken, wrap: func(s store.Store) store.Store { gate.Store = s; return gate }})
	t.Cleanup(gate.open) // before the node stops
	src := demoSource(t, 10000)
	at := []string{"--server", n.srv.URL, "--token", testToken}
	spec := writeFile(t, src.dir, "orders.yaml", src.yaml("orders", ""))

	r := cli(t, append([]string{"submit", spec}, at...)...)
	if r.code != 0 || r.out != "submitted job orders (owner "+n.node.ID()+")\n" {
		t.Fatalf("submit: %s", r)
	}
	spec = writeFile(t, src.dir, "orders.yaml", src.yaml("orders", "batch_rows: 777\n"))
	r = cli(t, append([]string{"submit", spec}, at...)...)
	if r.code != 0 || r.out != "updated job orders (owner "+n.node.ID()+")\n" {
		t.Fatalf("submit of a filed job: %s", r)
	}
	var filed jobBody
	n.anon("GET", "/api/jobs/orders", "").decode(t, &filed)
	if filed.Spec.BatchRows != 777 {
		t.Fatalf("the second submit did not update the job: batch_rows %d", filed.Spec.BatchRows)
	}

	r = cli(t, "jobs", "--server", n.srv.URL)
	rows := table(t, r.out)
	if r.code != 0 || len(rows) != 1 {
		t.Fatalf("jobs: %s", r)
	}
	if j := rows[0]; j["NAME"] != "orders" || j["SCHEDULE"] != "none" || j["NEXT FIRE"] != "-" || j["PAUSED"] != "no" || j["LAST RUN"] != "-" {
		t.Fatalf("jobs: %v", j)
	}

	// trigger --watch waits for its run and follows it to its end; the
	// gate holds the end with every partition done, for status to see.
	watched := make(chan ran, 1)
	var progress testenv.Output
	go func() { watched <- cliTo(t, "", &progress, append([]string{"trigger", "orders", "--watch"}, at...)...) }()
	select {
	case <-gate.hit:
	case r := <-watched:
		t.Fatalf("trigger --watch ended before its run: %s", r)
	case <-time.After(60 * time.Second):
		t.Fatal("the run does not end")
	}
	var runs []engine.RunRecord
	n.anon("GET", "/api/jobs/orders/runs", "").decode(t, &runs)
	if len(runs) != 1 {
		t.Fatalf("runs: %+v", runs)
	}
	id := runs[0].ID

	r = cli(t, "status", "orders", id, "--server", n.srv.URL)
	head, parts, ok := strings.Cut(r.out, "\n\n")
	if r.code != 0 || !ok {
		t.Fatalf("status: %s", r)
	}
	for _, want := range []string{"job       orders\n", "run       " + id + "\n", "state     running\n", "trigger   manual\n"} {
		if !strings.Contains(head+"\n", want) {
			t.Errorf("status does not say %q:\n%s", strings.TrimSpace(want), head)
		}
	}
	var sum int64
	prows := table(t, parts)
	if len(prows) != 4 {
		t.Fatalf("status lists %d partitions, want the 4 of ~2500 rows:\n%s", len(prows), r.out)
	}
	for i, p := range prows {
		got, err := strconv.ParseInt(p["ROWS"], 10, 64)
		if p["ID"] != fmt.Sprintf("p%04d", i) || p["STATE"] != engine.Done || p["WORKER"] != n.node.ID() || p["ATTEMPTS"] != "1" ||
			p["RANGE"] == "" || p["ERROR"] != "-" || err != nil || got <= 0 {
			t.Errorf("partition %d: %v", i, p)
		}
		sum += got
	}
	if sum != src.rows {
		t.Fatalf("the partitions' rows sum to %d, the source has %d:\n%s", sum, src.rows, r.out)
	}
	// Without RUN, the newest run; as JSON, the node's answer.
	r = cli(t, "status", "orders", "-o", "json", "--server", n.srv.URL)
	var rb runBody
	if err := json.Unmarshal([]byte(r.out), &rb); err != nil || r.code != 0 || rb.ID != id || len(rb.Partitions) != 4 {
		t.Fatalf("status -o json (%v): %s", err, r)
	}
	// The watch has seen the run's partitions before it ends.
	eventually(t, 10*time.Second, "trigger --watch shows the run's partitions", func() bool {
		return strings.Contains(progress.String(), "orders: run "+id+", 4 partitions (key-range)")
	})
	gate.open()

	select {
	case r = <-watched:
	case <-time.After(60 * time.Second):
		t.Fatal("trigger --watch does not end with the run")
	}
	want := fmt.Sprintf("orders: run %s succeeded: %d rows, ", id, src.rows)
	if r.code != 0 || !strings.HasPrefix(r.out, want) || !strings.Contains(r.out, ", 4 partitions (key-range)\n") {
		t.Fatalf("trigger --watch; want a summary beginning %q: %s", want, r)
	}
	if !strings.HasPrefix(r.err, "queued a run of job orders (run-") {
		t.Errorf("trigger --watch does not say what it queued: %s", r)
	}
	wantSum, err := engine.TableChecksum(context.Background(), "sqlite", connectors.SourceConfig{DSN: src.path, Table: "orders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := engine.TableChecksum(context.Background(), "parquet", connectors.SourceConfig{DSN: src.sinkDir("orders")}, nil); err != nil || got != wantSum {
		t.Fatalf("sink %v (%v), source %v", got, err, wantSum)
	}

	// A watched run that is over: its summary at once.
	r = cli(t, "status", "orders", "--watch", "--server", n.srv.URL)
	if r.code != 0 || !strings.HasPrefix(r.out, want) {
		t.Fatalf("status --watch of a finished run: %s", r)
	}

	r = cli(t, append([]string{"pause", "orders"}, at...)...)
	if r.code != 0 || !strings.HasPrefix(r.out, "job orders is paused (since ") {
		t.Fatalf("pause: %s", r)
	}
	rows = table(t, cli(t, "jobs", "--server", n.srv.URL).out)
	if rows[0]["PAUSED"] != "yes" || !strings.HasPrefix(rows[0]["LAST RUN"], id+" succeeded ") {
		t.Fatalf("jobs after pause: %v", rows)
	}
	r = cli(t, append([]string{"resume", "orders"}, at...)...)
	if r.code != 0 || !strings.HasPrefix(r.out, "job orders is resumed") {
		t.Fatalf("resume: %s", r)
	}
	r = cli(t, "jobs", "-o", "json", "--server", n.srv.URL)
	var list []jobBody
	if err := json.Unmarshal([]byte(r.out), &list); err != nil || len(list) != 1 || list[0].Schedule == nil || list[0].Schedule.Paused || list[0].LastRun.ID != id {
		t.Fatalf("jobs -o json after resume (%v): %s", err, r)
	}

	r = cli(t, append([]string{"delete", "orders"}, at...)...)
	if r.code != 0 || r.out != "deleted job orders\n" {
		t.Fatalf("delete: %s", r)
	}
	for _, args := range [][]string{{"status", "orders"}, {"delete", "orders"}, {"trigger", "orders"}} {
		r = cli(t, append(args, at...)...)
		if r.code != 3 || r.err != "datashift: job \"orders\": no such job\n" {
			t.Errorf("%s after delete: %s", args[0], r)
		}
	}
}

// What the node refuses is said as the node says it, once, with the exit
// code that says whose mistake it is.
func TestCLIRefusals(t *testing.T) {
	noEnv(t)
	n := startAPI(t, nodeOpts{token: testToken})
	src := demoSource(t, 100)
	at := []string{"--server", n.srv.URL, "--token", testToken}

	bad := writeFile(t, src.dir, "bad.yaml", strings.Replace(src.yaml("bad", ""), "mode: truncate", "mode: merge", 1))
	r := cli(t, append([]string{"submit", bad}, at...)...)
	if r.code != 2 || r.out != "" || r.err != "datashift: job \"bad\": sink.mode: must be append, truncate or upsert (got \"merge\")\n" {
		t.Errorf("a bad spec: %s", r)
	}
	good := writeFile(t, src.dir, "good.yaml", src.yaml("good", ""))
	r = cli(t, "submit", good, "--server", n.srv.URL)
	if r.code != 4 || !strings.HasPrefix(r.err, "datashift: this node needs a bearer token for changes") {
		t.Errorf("a write without the token: %s", r)
	}
	r = cli(t, "submit", good, "--server", n.srv.URL, "--token", "wrong")
	if r.code != 4 {
		t.Errorf("a write with the wrong token: %s", r)
	}
	// The token from the environment, read when the command runs.
	t.Setenv("DATASHIFT_TOKEN", testToken)
	if r = cli(t, "submit", good, "--server", n.srv.URL); r.code != 0 {
		t.Fatalf("submit with DATASHIFT_TOKEN: %s", r)
	}
	t.Setenv("DATASHIFT_SERVER", n.srv.URL)
	if r = cliIn(t, src.yaml("down", "schedule: {after: [good]}\n"), "submit", "-"); r.code != 0 || !strings.HasPrefix(r.out, "submitted job down") {
		t.Fatalf("submit - with DATASHIFT_SERVER: %s", r)
	}
	r = cli(t, "delete", "good")
	if r.code != 5 || !strings.HasPrefix(r.err, "datashift: job \"good\": other jobs run after it: down") {
		t.Errorf("delete of an upstream: %s", r)
	}
	r = cli(t, "status", "good")
	if r.code != 3 || !strings.Contains(r.err, `job "good" has not run yet`) {
		t.Errorf("status of a job never run: %s", r)
	}

	// The user's mistakes found before asking.
	for _, args := range [][]string{
		{"status"},
		{"trigger", "a", "b"},
		{"jobs", "-o", "yaml"},
		{"jobs", "--colour"},
		{"submit", src.dir + "/missing.yaml"},
		{"config"},
		{"config", "frob"},
		{"config", "--colour"},
		{"config", "get", "--colour"},
		{"config", "set", "slots"},
		{"jobs", "--server", "ftp://x"},
	} {
		r := cli(t, args...)
		if r.code != 2 || !strings.HasPrefix(r.err, "datashift: ") || strings.Count(r.err, "\n") != 1 {
			t.Errorf("%q: %s", args, r)
		}
	}

	// A node that is not there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r = cli(t, "jobs", "--server", addr)
	if r.code != 1 || r.err != "datashift: cannot reach the datashift node at http://"+addr+": connection refused (start one with datashift node, or set --server / DATASHIFT_SERVER)\n" {
		t.Errorf("an unreachable node: %s", r)
	}
	// Something that is not a datashift node.
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	r = cli(t, "jobs", "--server", other.URL)
	if r.code != 1 || !strings.Contains(r.err, "answered 404 Not Found, not as a datashift node does (is --server right?)") {
		t.Errorf("a server that is not a node: %s", r)
	}
}

// nodes lists the node, leading, with its slots; config get and set
// round-trip, and what the node refuses is refused by field.
func TestCLINodesAndConfig(t *testing.T) {
	noEnv(t)
	n := startAPI(t, nodeOpts{token: testToken})
	at := []string{"--server", n.srv.URL, "--token", testToken}
	var rows []map[string]string
	eventually(t, 10*time.Second, "nodes lists the node with its resources", func() bool {
		r := cli(t, "nodes", "--server", n.srv.URL)
		if r.code != 0 {
			t.Fatalf("nodes: %s", r)
		}
		rows = table(t, r.out)
		return len(rows) == 1 && rows[0]["SLOTS FREE"] == "2/2"
	})
	if nb := rows[0]; nb["ID"] != n.node.ID() || nb["LEADER"] != "*" || nb["ADDR"] != "127.0.0.1:0" || nb["RUNNING"] != "0" || nb["HEAP"] == "-" {
		t.Fatalf("nodes: %v", nb)
	}
	r := cli(t, "nodes", "-o", "json", "--server", n.srv.URL)
	var nodes nodesBody
	if err := json.Unmarshal([]byte(r.out), &nodes); err != nil || len(nodes.Nodes) != 1 || nodes.Leader != n.node.ID() {
		t.Fatalf("nodes -o json (%v): %s", err, r)
	}

	config := func() coordinator.ClusterConfig {
		t.Helper()
		r := cli(t, "config", "get", "--server", n.srv.URL)
		var cfg coordinator.ClusterConfig
		if err := json.Unmarshal([]byte(r.out), &cfg); err != nil || r.code != 0 {
			t.Fatalf("config get (%v): %s", err, r)
		}
		return cfg
	}
	if cfg := config(); cfg != (coordinator.ClusterConfig{}) {
		t.Fatalf("a new cluster's config: %+v", cfg)
	}
	r = cli(t, append([]string{"config", "set", "batch_rows=123", "log_level=debug"}, at...)...)
	if r.code != 0 {
		t.Fatalf("config set: %s", r)
	}
	want := coordinator.ClusterConfig{BatchRows: 123, LogLevel: "debug"}
	if cfg := config(); cfg != want {
		t.Fatalf("config after set: %+v, want %+v", cfg, want)
	}
	r = cli(t, append([]string{"config", "set", "log_level=", "slots=3"}, at...)...)
	want = coordinator.ClusterConfig{BatchRows: 123, Slots: 3}
	if cfg := config(); r.code != 0 || cfg != want {
		t.Fatalf("config set of one key and the reset of another: %+v, want %+v (%s)", cfg, want, r)
	}
	r = cliIn(t, `{"commit_rows": 5000}`, append([]string{"config", "set", "-"}, at...)...)
	want = coordinator.ClusterConfig{CommitRows: 5000}
	if cfg := config(); r.code != 0 || cfg != want {
		t.Fatalf("config set - replaces the config: %+v, want %+v (%s)", cfg, want, r)
	}
	r = cli(t, append([]string{"config", "set", "slots=-1"}, at...)...)
	if r.code != 2 || !strings.Contains(r.err, "slots: must be between 1 and 1024") {
		t.Errorf("a bad slots value: %s", r)
	}
	r = cli(t, "config", "set", "slots=4", "--server", n.srv.URL)
	if r.code != 4 {
		t.Errorf("config set without the token: %s", r)
	}
	if cfg := config(); cfg != want {
		t.Fatalf("refused sets changed the config: %+v", cfg)
	}
}

// The run a trigger made is the one whose record names the trigger's queue
// entry: a new run, or the failed run it continues; no other.
func TestTriggeredRun(t *testing.T) {
	run := func(id, entry string) engine.RunRecord { return engine.RunRecord{ID: id, QueueEntry: entry} }
	for _, c := range []struct {
		name, entry string
		runs        []engine.RunRecord
		want        string // "": none yet
	}{
		{"not started yet", "run-0000000002", []engine.RunRecord{run("r1", "run-0000000001")}, ""},
		{"a new run", "run-0000000002", []engine.RunRecord{run("r2", "run-0000000002"), run("r1", "run-0000000001")}, "r2"},
		{"a failed run continued", "run-0000000002", []engine.RunRecord{run("r1", "run-0000000002")}, "r1"},
		{"a later trigger's run too", "run-0000000002", []engine.RunRecord{run("r3", "run-0000000003"), run("r2", "run-0000000002")}, "r2"},
		{"a run of a cron fire", "run-0000000002", []engine.RunRecord{run("r2", "run-0000000001")}, ""},
	} {
		got, ok := triggeredRun(c.runs, c.entry)
		if (c.want == "") == ok || (ok && got.ID != c.want) {
			t.Errorf("%s: got %q (%v), want %q", c.name, got.ID, ok, c.want)
		}
	}
}

// A watched run that fails ends the watch with exit 1 and the run's error;
// here the trigger cannot start it at all (its source went after the
// submit), which is a failed run of its own.
func TestCLIWatchedRunFails(t *testing.T) {
	noEnv(t)
	n := startAPI(t, nodeOpts{})
	src := demoSource(t, 100)
	spec := writeFile(t, src.dir, "gone.yaml", src.yaml("gone", ""))
	if r := cli(t, "submit", spec, "--server", n.srv.URL); r.code != 0 {
		t.Fatalf("submit: %s", r)
	}
	if err := os.Remove(src.path); err != nil {
		t.Fatal(err)
	}
	r := cli(t, "trigger", "gone", "--watch", "--server", n.srv.URL)
	if r.code != 1 || !strings.Contains(r.out, " failed: 0 rows") || !strings.Contains(r.out, "does not exist") ||
		!strings.HasSuffix(r.err, " of job gone failed\n") || strings.Count(r.out+r.err, "does not exist") != 1 {
		t.Fatalf("trigger --watch of a run that fails: %s", r)
	}
	r = cli(t, "status", "gone", "--watch", "-o", "json", "--server", n.srv.URL)
	var rb runBody
	if err := json.Unmarshal([]byte(r.out), &rb); err != nil || r.code != 1 || rb.State != engine.RunFailed || !strings.Contains(r.err, "does not exist") {
		t.Fatalf("status --watch -o json of a failed run (%v): %s", err, r)
	}
	r = cli(t, "trigger", "gone", "-o", "json", "--server", n.srv.URL)
	var queued map[string]string
	if err := json.Unmarshal([]byte(r.out), &queued); err != nil || r.code != 0 || queued["job"] != "gone" {
		t.Fatalf("trigger -o json (%v): %s", err, r)
	}
}

// config set KEY=VALUE changes the settings as it read them: when someone
// else changes them between its read and its write, it reads them again,
// and neither change is lost.
func TestCLIConfigSetKeepsAChangeMadeMeanwhile(t *testing.T) {
	noEnv(t)
	n := startAPI(t, nodeOpts{token: testToken})
	target, err := url.Parse(n.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var raced atomic.Bool
	between := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && !raced.Swap(true) {
			if a := n.do(http.MethodPut, "/api/config", `{"commit_rows": 7777}`); a.code != http.StatusOK {
				t.Errorf("the change meanwhile: %s", a)
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer between.Close()
	r := cli(t, "config", "set", "batch_rows=123", "--server", between.URL, "--token", testToken)
	if r.code != 0 || !raced.Load() {
		t.Fatalf("config set (a change made meanwhile: %v): %s", raced.Load(), r)
	}
	var cfg coordinator.ClusterConfig
	n.anon(http.MethodGet, "/api/config", "").decode(t, &cfg)
	if want := (coordinator.ClusterConfig{BatchRows: 123, CommitRows: 7777}); cfg != want {
		t.Fatalf("the config after both changes: %+v, want %+v", cfg, want)
	}
}
