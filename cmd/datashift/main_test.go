package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/demodata"

	_ "modernc.org/sqlite"
)

// datashift runs the CLI in-process and returns what it printed.
func datashift(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func demoJob(t *testing.T, rows int64, extra string) (dir, job string) {
	t.Helper()
	dir = t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	if err := demodata.Generate(context.Background(), src, rows); err != nil {
		t.Fatal(err)
	}
	job = writeFile(t, dir, "job.yaml", `name: cli
source: {type: sqlite, dsn: `+src+`, table: orders, key: [id]}
sink: {type: parquet, dsn: `+filepath.Join(dir, "out")+`, mode: truncate}
partitions: {target_rows: 2500}
`+extra)
	return dir, job
}

// plan prints every partition with its bounds and estimated rows, the
// first open below and the last open above.
func TestPlanPrintsPartitions(t *testing.T) {
	_, job := demoJob(t, 10000, "")
	out, err := datashift(t, "plan", job)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	lines := regexp.MustCompile(`(?m)^  p\d{4} +(\S.*\S) +~(\d+) rows$`).FindAllStringSubmatch(out, -1)
	if len(lines) != 4 || !strings.Contains(out, "job cli: 4 partitions, scheme key-range") {
		t.Fatalf("want 4 partitions of ~2500 rows:\n%s", out)
	}
	if !strings.HasPrefix(lines[0][1], "[-∞, ") || !strings.HasSuffix(lines[3][1], ", +∞)") {
		t.Fatalf("first range must be open below and last open above:\n%s", out)
	}
	out, err = datashift(t, "plan", "--json", job)
	if err != nil || !strings.Contains(out, `"scheme": "key-range"`) {
		t.Fatalf("plan --json: %v\n%s", err, out)
	}
}

// run copies, prints a summary, and a second run after a finished one
// starts a new run (truncate mode keeps the sink equal to the source).
func TestRunPrintsSummaryAndSinkMatches(t *testing.T) {
	dir, job := demoJob(t, 10000, "")
	state := filepath.Join(dir, "state")
	for i := 0; i < 2; i++ {
		out, err := datashift(t, "run", job, "--state", state, "-q")
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out)
		}
		if !regexp.MustCompile(`cli: run \S+ succeeded: 10000 rows, .* rows/s\), 4 partitions \(key-range\)`).MatchString(out) {
			t.Fatalf("summary:\n%s", out)
		}
		// Planning is shown apart from the copy.
		if !regexp.MustCompile(`cli: planned in \S+ \([0-9.]+% of the run\), copied in \S+`).MatchString(out) {
			t.Fatalf("summary without planning time:\n%s", out)
		}
	}
	want, err := engine.TableChecksum(context.Background(), "sqlite", connectors.SourceConfig{DSN: filepath.Join(dir, "src.sqlite"), Table: "orders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := engine.TableChecksum(context.Background(), "parquet", connectors.SourceConfig{DSN: filepath.Join(dir, "out")}, nil)
	if err != nil || got != want {
		t.Fatalf("sink %v (%v), source %v", got, err, want)
	}
}

// A bad spec is refused before anything runs, naming every bad field,
// without printing the password.
func TestBadSpecIsRefusedWithFieldNames(t *testing.T) {
	dir := t.TempDir()
	job := writeFile(t, dir, "bad.yaml", `name: bad
source: {type: oracle, dsn: "postgres://u:hunter2@h/db", table: t}
sink: {type: parquet, dsn: `+filepath.Join(dir, "out")+`, mode: merge}
`)
	for _, cmd := range []string{"run", "check", "plan"} {
		out, err := datashift(t, cmd, job, "--state", filepath.Join(dir, "state"))
		if cmd == "plan" || cmd == "check" {
			out, err = datashift(t, cmd, job)
		}
		if err == nil {
			t.Fatalf("%s accepted a bad spec:\n%s", cmd, out)
		}
		msg := err.Error()
		for _, want := range []string{`source.type: unknown connector "oracle"`, `sink.mode: must be append, truncate or upsert (got "merge")`} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error lacks %q:\n%s", cmd, want, msg)
			}
		}
		if strings.Contains(msg+out, "hunter2") {
			t.Errorf("%s shows the password:\n%s%s", cmd, msg, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Fatalf("a refused job touched its sink: %v", err)
	}
}

func TestCheckPrintsRedactedSpec(t *testing.T) {
	_, job := demoJob(t, 10, "callbacks: [{url: \"http://u:hunter2@127.0.0.1:1/hook\"}]\n")
	out, err := datashift(t, "check", job)
	if err != nil || !strings.Contains(out, "job cli is valid") {
		t.Fatalf("check: %v\n%s", err, out)
	}
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "u:xxxxx@127.0.0.1:1/hook") {
		t.Fatalf("check shows a callback password or mangles the URL:\n%s", out)
	}
}

// Standalone state is found by the job's name in the per-user state
// folder, wherever the command runs from: another job's open state does not
// block a run, the same job's does, with a message that says why.
func TestStateIsFoundByJobName(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_STATE_HOME", home)
	t.Setenv("DATASHIFT_STATE", "")
	_, job := demoJob(t, 1000, "")
	dir := filepath.Join(home, "datashift")

	_, closeOther, err := openJobState(dir, "another-job")
	if err != nil {
		t.Fatal(err)
	}
	defer closeOther()
	if out, err := datashift(t, "run", job, "-q"); err != nil {
		t.Fatalf("run beside another job's open state: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "cli.db")); err != nil {
		t.Fatalf("the job's state is not where its name says: %v", err)
	}

	_, closeSame, err := openJobState(dir, "cli")
	if err != nil {
		t.Fatal(err)
	}
	defer closeSame()
	out, err := datashift(t, "run", job, "-q")
	if err == nil || !strings.Contains(err.Error(), `job "cli" is running in another process`) {
		t.Fatalf("run of a job whose state is in use: %v\n%s", err, out)
	}
}

// A callback nobody answers is said to be retried, and the run waits for
// it no longer than --callback-wait; the next run of the job posts it.
func TestUnreachableCallbackIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there for the first run
	dir, job := demoJob(t, 1000, "callbacks: [{url: \"http://"+addr+"/hook\"}]\n")
	state := filepath.Join(dir, "state")
	began := time.Now()
	out, err := datashift(t, "run", job, "--state", state, "-q", "--callback-wait", "2s")
	took := time.Since(began)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	for _, want := range []string{`msg="callback failed; retrying" job=cli`, `callbacks not posted within 2s; they stay in the job's state and are posted by its next run`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if took > 10*time.Second {
		t.Errorf("the run took %s with --callback-wait 2s", took)
	}

	// The next run posts the first run's end and its own.
	var mu sync.Mutex
	var heard []string
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		heard = append(heard, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
	})}
	go srv.Serve(ln)
	defer srv.Close()
	if out, err := datashift(t, "run", job, "--state", state, "-q"); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 2 || heard[0] == heard[1] {
		t.Errorf("callbacks heard by the second run's end: %v, want the first run's and its own", heard)
	}
}

// plan shows the incremental window the next run would copy, from the
// high-water mark in the job's state file, and estimates the rows of that
// window; planning a job that never ran creates no state file.
func TestPlanShowsTheIncrementalWindow(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	if err := demodata.Generate(context.Background(), src, 10000); err != nil {
		t.Fatal(err)
	}
	job := writeFile(t, dir, "job.yaml", `name: cli-incr
source: {type: sqlite, dsn: `+src+`, table: orders, key: [id]}
sink: {type: sqlite, dsn: `+filepath.Join(dir, "out.sqlite")+`, table: orders, mode: append, create_table: true}
incremental: {cursor: id}
`)
	state := filepath.Join(dir, "state")
	out, err := datashift(t, "plan", job, "--state", state)
	if err != nil || !strings.Contains(out, "incremental window: id <= 10000 (no high-water mark yet") {
		t.Fatalf("plan before any run: %v\n%s", err, out)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("plan created the state folder: %v", err)
	}
	if out, err := datashift(t, "run", job, "--state", state, "-q"); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	db, err := sql.Open("sqlite", src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO orders SELECT id + 3, customer, status, amount, created, note FROM orders WHERE id > 9997`); err != nil {
		t.Fatal(err)
	}
	out, err = datashift(t, "plan", job, "--state", state)
	if err != nil {
		t.Fatalf("plan after a run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "incremental window: 10000 <= id <= 10003, both ends inclusive (from the high-water mark); at 10000, skips the 1 row earlier runs copied; at 10003, copies only the 1 row there now") {
		t.Fatalf("plan after a run does not show the window:\n%s", out)
	}
	m := regexp.MustCompile(`job cli-incr: \d+ partitions, scheme \S+, ~(\d+) rows`).FindStringSubmatch(out)
	if m == nil || m[1] != "4" {
		t.Fatalf("plan after a run should estimate the 4 rows of the window (10000 to 10003):\n%s", out)
	}
	out, err = datashift(t, "plan", job, "--state", state, "--json")
	var plan planBody
	if err != nil || json.Unmarshal([]byte(out), &plan) != nil {
		t.Fatalf("plan --json: %v\n%s", err, out)
	}
	w := plan.Window
	if plan.Job != "cli-incr" || w == nil || w.Cursor != "id" || fmt.Sprint(w.From, w.UpTo, w.SkipAtFrom, w.OnlyAtUpTo) != "10000 10003 [10000] [10003]" ||
		!strings.HasPrefix(w.Description, "incremental window: 10000 <= id <= 10003") || len(plan.Partitions) == 0 {
		t.Fatalf("plan --json after a run: window %+v\n%s", w, out)
	}
}
