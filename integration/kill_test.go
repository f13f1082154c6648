// Package integration runs the datashift binary against real servers: a
// process killed with SIGKILL mid-copy and started again must leave the
// sink equal to the source, row for row.
package integration

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	_ "github.com/datashift/datashift/connectors/all"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/demodata"
	"github.com/datashift/datashift/internal/testenv"
)

// binary builds cmd/datashift once per test binary.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(os.TempDir(), fmt.Sprintf("datashift-it-%d", os.Getpid()))
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/datashift").CombinedOutput()
	if err != nil {
		t.Fatalf("build datashift: %v\n%s", err, out)
	}
	return bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	os.Remove(filepath.Join(os.TempDir(), fmt.Sprintf("datashift-it-%d", os.Getpid())))
	os.Exit(code)
}

func pgExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// pgQueryString runs a query of one text value.
func pgQueryString(t *testing.T, dsn, query string, args ...any) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

// killAndResume starts `datashift run` on job, SIGKILLs it at random
// moments kills times, then lets it finish, and returns how many kills
// landed while it was still copying. Each start gets its state folder from
// --state.
func killAndResume(t *testing.T, job string, kills int) int {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	return killAndResumeWith(t, kills, state, func(int) *exec.Cmd {
		return exec.Command(binary(t), "run", job, "--state", state, "-q")
	})
}

// killAndResumeWith is killAndResume with the i-th start made by start
// (the last, i == kills, runs to its end) and the state in stateDir.
//
// A kill can land after the run ended but before the process exited; the
// job is then copied, and starting it again would start a new run (in
// append mode, a second copy). So after each kill the job's state is read,
// and a run that succeeded ends the test's runs, that kill not counted.
func killAndResumeWith(t *testing.T, kills int, stateDir string, start func(i int) *exec.Cmd) int {
	t.Helper()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	landed := 0
	for i := 0; i < kills; i++ {
		cmd := start(i)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Logf("run %d finished before the kill (%v):\n%s", i, err, out.String())
			if err != nil {
				t.Fatalf("run %d failed: %v\n%s", i, err, out.String())
			}
			return landed
		case <-time.After(time.Duration(300+rng.Intn(1500)) * time.Millisecond):
			_ = cmd.Process.Kill()
			<-done
			if succeededRuns(t, stateDir) > 0 {
				t.Logf("run %d was killed after its run had succeeded", i)
				return landed
			}
			landed++
		}
	}
	cmd := start(kills)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	t.Logf("final run:\n%s", out)
	return landed
}

// succeededRuns counts the succeeded runs in the state files of stateDir.
func succeededRuns(t *testing.T, stateDir string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(stateDir, "*.db"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		db, err := embedded.Open(f)
		if err != nil {
			t.Fatalf("state %s: %v", f, err)
		}
		s, err := db.Session()
		if err != nil {
			t.Fatal(err)
		}
		hist, err := (&coordinator.RunState{S: s}).History(context.Background(), strings.TrimSuffix(filepath.Base(f), ".db"))
		s.Close()
		db.Close()
		if err != nil {
			t.Fatalf("state %s: %v", f, err)
		}
		for _, h := range hist {
			if h.State == engine.RunSucceeded {
				n++
			}
		}
	}
	return n
}

func writeJob(t *testing.T, spec string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func checksum(t *testing.T, typ string, cfg connectors.SourceConfig) connectors.Checksum {
	t.Helper()
	sum, err := engine.TableChecksum(context.Background(), typ, cfg, []string{"id", "name", "amount", "created"})
	if err != nil {
		t.Fatalf("checksum %s: %v", typ, err)
	}
	return sum
}

func TestKillPostgresToPostgres(t *testing.T) {
	src, dst := testenv.Postgres(t), testenv.Postgres(t)
	const rows = 200000
	pgExec(t, src, `CREATE TABLE orders (id bigint PRIMARY KEY, name text, amount numeric(12,2), created timestamptz)`,
		fmt.Sprintf(`INSERT INTO orders SELECT g, 'name ' || g, g / 100.0, now() - g * interval '1 minute' FROM generate_series(1, %d) g`, rows))
	// "existing" is the user's own empty table with its key and an index,
	// which the run loads without them and builds again at its end.
	for _, mode := range []string{"append", "truncate", "upsert", "existing"} {
		t.Run(mode, func(t *testing.T) {
			table, sinkMode := "orders_"+mode, mode
			var indexes, keyOID string
			if mode == "existing" {
				sinkMode = "append"
				pgExec(t, dst, `CREATE TABLE `+table+` (id bigint PRIMARY KEY, name text, amount numeric(12,2), created timestamptz)`,
					`CREATE INDEX `+table+`_created ON `+table+` (created DESC) WHERE amount > 10`)
				indexes = indexDefs(t, dst, table)
				keyOID = pgQueryString(t, dst, `SELECT to_regclass($1)::oid::text`, table+"_pkey")
			}
			job := writeJob(t, fmt.Sprintf(`
name: kill-pg-pg-%s
source: {type: postgres, dsn: %q, table: orders, key: [id]}
sink: {type: postgres, dsn: %q, table: %s, mode: %s, create_table: true}
partitions: {target_rows: 25000}
commit_rows: 5000
batch_rows: 2000
parallelism: 4
rate_limit: {rows_per_second: 60000}
`, mode, src, dst, table, sinkMode))
			landed := killAndResume(t, job, 3)
			if landed == 0 {
				t.Fatal("no kill landed while copying: the test did not test resuming")
			}
			want := checksum(t, "postgres", connectors.SourceConfig{DSN: src, Table: "orders"})
			got := checksum(t, "postgres", connectors.SourceConfig{DSN: dst, Table: table})
			if got != want || got.Rows != rows {
				t.Fatalf("after %d kills: sink %v, source %v", landed, got, want)
			}
			if got := indexDefs(t, dst, table); mode == "existing" && got != indexes {
				t.Fatalf("the table's indexes after the run:\n%s\nwant\n%s", got, indexes)
			}
			if mode == "existing" && pgQueryString(t, dst, `SELECT to_regclass($1)::oid::text`, table+"_pkey") == keyOID {
				t.Fatal("the key's index is the one the table had: the rows did not load without it")
			}
		})
	}
}

// indexDefs are table's indexes, one definition a line, and its
// constraints, as PostgreSQL writes them.
func indexDefs(t *testing.T, dsn, table string) string {
	t.Helper()
	return pgQueryString(t, dsn, `SELECT coalesce(string_agg(indexdef, E'\n' ORDER BY indexname), '') ||
  coalesce((SELECT string_agg(E'\n' || conname || ' ' || pg_get_constraintdef(oid), '' ORDER BY conname) FROM pg_constraint WHERE conrelid = to_regclass($1)), '')
FROM pg_indexes WHERE tablename = $1`, table)
}

func TestKillSQLiteToParquet(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	const rows = 200000
	if err := demodata.Generate(context.Background(), src, rows); err != nil {
		t.Fatal(err)
	}
	sink := filepath.Join(dir, "out")
	job := writeJob(t, fmt.Sprintf(`
name: kill-sqlite-parquet
source: {type: sqlite, dsn: %q, table: orders, key: [id]}
sink: {type: parquet, dsn: %q, mode: truncate}
partitions: {target_rows: 25000}
commit_rows: 5000
batch_rows: 2000
parallelism: 4
rate_limit: {rows_per_second: 60000}
`, src, sink))
	landed := killAndResume(t, job, 3)
	if landed == 0 {
		t.Fatal("no kill landed while copying")
	}
	cols := demodata.Columns
	want, err := engine.TableChecksum(context.Background(), "sqlite", connectors.SourceConfig{DSN: src, Table: "orders"}, cols)
	if err != nil {
		t.Fatal(err)
	}
	got, err := engine.TableChecksum(context.Background(), "parquet", connectors.SourceConfig{DSN: sink}, cols)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || got.Rows != rows {
		t.Fatalf("after %d kills: sink %v, source %v", landed, got, want)
	}
}

// The target already holds rows the job did not write, with ids inside the
// source's key range and outside it. An append job killed and resumed
// leaves them as they were and adds every source row once: a resume reads
// on from the sink's commit record and deletes nothing.
func TestKillAppendLeavesEarlierRows(t *testing.T) {
	const rows, earlier = 200000, 1500
	src := testenv.Postgres(t)
	pgExec(t, src, `CREATE TABLE orders (id bigint PRIMARY KEY, name text, amount numeric(12,2), created timestamptz)`,
		fmt.Sprintf(`INSERT INTO orders SELECT g, 'name ' || g, g / 100.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, %d) g`, rows))
	want := checksum(t, "postgres", connectors.SourceConfig{DSN: src, Table: "orders"})
	sinks := []struct {
		typ, dsn string
		ddl      string
		fill     string
	}{
		{typ: "postgres", dsn: testenv.Postgres(t),
			ddl:  `CREATE TABLE orders (id bigint, name text, amount numeric(12,2), created timestamptz)`,
			fill: fmt.Sprintf(`INSERT INTO orders SELECT CASE WHEN g <= 1000 THEN g * 150 ELSE %d + g END, 'earlier ' || g, g, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, %d) g`, rows, earlier)},
		{typ: "mysql", dsn: testenv.MySQL(t),
			ddl:  `CREATE TABLE orders (id BIGINT, name LONGTEXT, amount DECIMAL(12,2), created TIMESTAMP(6) NULL) CHARACTER SET utf8mb4`,
			fill: fmt.Sprintf(`INSERT INTO orders SELECT IF(seq <= 1000, seq * 150, %d + seq), CONCAT('earlier ', seq), seq, TIMESTAMP '2020-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_%d`, rows, earlier)},
	}
	for _, sk := range sinks {
		t.Run(sk.typ, func(t *testing.T) {
			if sk.typ == "postgres" {
				pgExec(t, sk.dsn, sk.ddl, sk.fill)
			} else {
				mysqlExec(t, sk.dsn, sk.ddl, sk.fill)
			}
			before := checksum(t, sk.typ, connectors.SourceConfig{DSN: sk.dsn, Table: "orders"})
			job := writeJob(t, fmt.Sprintf(`
name: kill-append-%s
source: {type: postgres, dsn: %q, table: orders, key: [id]}
sink: {type: %s, dsn: %q, table: orders, mode: append}
partitions: {target_rows: 25000}
commit_rows: 5000
batch_rows: 2000
parallelism: 4
rate_limit: {rows_per_second: 60000}
`, sk.typ, src, sk.typ, sk.dsn))
			if landed := killAndResume(t, job, 3); landed == 0 {
				t.Fatal("no kill landed while copying: the test did not test resuming")
			}
			got := checksum(t, sk.typ, connectors.SourceConfig{DSN: sk.dsn, Table: "orders"})
			if got.Rows != want.Rows+before.Rows || got.Sum != want.Sum+before.Sum {
				t.Fatalf("sink %v, want the source %v plus the %v it held", got, want, before)
			}
			kept := checksum(t, sk.typ, connectors.SourceConfig{DSN: sk.dsn, Query: `SELECT * FROM orders WHERE name LIKE 'earlier %'`})
			if kept != before {
				t.Fatalf("the rows the job did not write are now %v, were %v", kept, before)
			}
		})
	}
}

// Sources without a key — a PostgreSQL table without a primary key (read
// by ctid pages), a Parquet dataset and a CSV directory (read by file and
// row) — resume mid-way after a kill, in append and truncate mode alike;
// and so does a MariaDB table the job names no key for, read by its
// primary key.
func TestKillKeylessSources(t *testing.T) {
	const rows = 200000
	dir := t.TempDir()
	sqliteSrc := filepath.Join(dir, "src.sqlite")
	if err := demodata.Generate(context.Background(), sqliteSrc, rows); err != nil {
		t.Fatal(err)
	}
	// The file datasets, several part files each, and the keyless table are
	// made from the same rows.
	for _, typ := range []string{"parquet", "csv"} {
		job := &engine.Job{
			Name:       "make-" + typ,
			Source:     engine.SourceSpec{Type: "sqlite", DSN: sqliteSrc, Table: "orders", Key: []string{"id"}},
			Sink:       engine.SinkSpec{Type: typ, DSN: filepath.Join(dir, typ), Mode: connectors.Append},
			Partitions: engine.PartitionSpec{TargetRows: 20000},
		}
		runInProcess(t, job)
	}
	pg := testenv.Postgres(t)
	pgExec(t, pg, `CREATE TABLE heap (id bigint, customer text, status text, amount numeric(12,2), created timestamp, note text)`)
	runInProcess(t, &engine.Job{
		Name:   "make-heap",
		Source: engine.SourceSpec{Type: "sqlite", DSN: sqliteSrc, Table: "orders", Key: []string{"id"}},
		Sink:   engine.SinkSpec{Type: "postgres", DSN: pg, Table: "heap", Mode: connectors.Append},
	})
	maria := testenv.MySQL(t)
	runInProcess(t, &engine.Job{
		Name:   "make-maria",
		Source: engine.SourceSpec{Type: "sqlite", DSN: sqliteSrc, Table: "orders", Key: []string{"id"}},
		Sink:   engine.SinkSpec{Type: "mysql", DSN: maria, Table: "orders", Mode: connectors.Append, CreateTable: true},
	})
	keyless := &engine.Job{Name: "plan-maria", Source: engine.SourceSpec{Type: "mysql", DSN: maria, Table: "orders"},
		Sink: engine.SinkSpec{Type: "postgres", DSN: "postgres://127.0.0.1/x", Table: "copy"}, Partitions: engine.PartitionSpec{TargetRows: 50000}}
	keyless.Normalize()
	if _, plan, _, err := engine.Plan(context.Background(), keyless, nil); err != nil || plan.Scheme != "key-range" || len(plan.Partitions) < 4 {
		t.Fatalf("the MariaDB table named without a key is not planned by its primary key: %v, %s: %s", err, plan.Scheme, plan.Reason)
	}
	sources := []struct {
		name, spec string
		cfg        connectors.SourceConfig
		typ        string
	}{
		{"mariadb-primary-key", fmt.Sprintf(`{type: mysql, dsn: %q, table: orders}`, maria), connectors.SourceConfig{DSN: maria, Table: "orders"}, "mysql"},
		{"postgres-heap", fmt.Sprintf(`{type: postgres, dsn: %q, table: heap}`, pg), connectors.SourceConfig{DSN: pg, Table: "heap"}, "postgres"},
		{"parquet", fmt.Sprintf(`{type: parquet, dsn: %q}`, filepath.Join(dir, "parquet")), connectors.SourceConfig{DSN: filepath.Join(dir, "parquet")}, "parquet"},
		{"csv", fmt.Sprintf(`{type: csv, dsn: %q}`, filepath.Join(dir, "csv")), connectors.SourceConfig{DSN: filepath.Join(dir, "csv")}, "csv"},
	}
	for _, src := range sources {
		want, err := engine.TableChecksum(context.Background(), src.typ, src.cfg, nil)
		if err != nil || want.Rows != rows {
			t.Fatalf("source %s: %v, %v", src.name, want, err)
		}
		for _, mode := range []string{"append", "truncate"} {
			t.Run(src.name+"/"+mode, func(t *testing.T) {
				dst := testenv.Postgres(t)
				job := writeJob(t, fmt.Sprintf(`
name: kill-keyless-%s-%s
source: %s
sink: {type: postgres, dsn: %q, table: copy, mode: %s, create_table: true}
partitions: {target_rows: 50000}
commit_rows: 5000
batch_rows: 2000
parallelism: 4
rate_limit: {rows_per_second: 60000}
`, src.name, mode, src.spec, dst, mode))
				if landed := killAndResume(t, job, 3); landed == 0 {
					t.Fatal("no kill landed while copying: the test did not test resuming")
				}
				got, err := engine.TableChecksum(context.Background(), "postgres", connectors.SourceConfig{DSN: dst, Table: "copy"}, nil)
				if err != nil || got != want {
					t.Fatalf("sink %v (%v), source %v", got, err, want)
				}
			})
		}
	}
}

// A job's state is found by its name, not the directory it is started
// from: killed in one directory and started again from two others, it
// continues its one run.
func TestKillAndResumeFromOtherDirectories(t *testing.T) {
	const rows = 200000
	dir := t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	if err := demodata.Generate(context.Background(), src, rows); err != nil {
		t.Fatal(err)
	}
	jobs := filepath.Join(dir, "project", "jobs")
	if err := os.MkdirAll(jobs, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "out")
	if err := os.WriteFile(filepath.Join(jobs, "job.yaml"), []byte(fmt.Sprintf(`
name: from-anywhere
source: {type: sqlite, dsn: %q, table: orders, key: [id]}
sink: {type: parquet, dsn: %q, mode: append}
partitions: {target_rows: 25000}
commit_rows: 5000
batch_rows: 2000
parallelism: 4
rate_limit: {rows_per_second: 60000}
`, src, dst)), 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	starts := []struct{ dir, job string }{
		{jobs, "job.yaml"},
		{filepath.Join(dir, "project"), "jobs/job.yaml"},
		{dir, "project/jobs/job.yaml"},
		{"/", filepath.Join(jobs, "job.yaml")},
	}
	landed := killAndResumeWith(t, len(starts)-1, filepath.Join(home, "datashift"), func(i int) *exec.Cmd {
		cmd := exec.Command(binary(t), "run", starts[i].job, "-q")
		cmd.Dir = starts[i].dir
		cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+home, "DATASHIFT_STATE=")
		return cmd
	})
	if landed == 0 {
		t.Fatal("no kill landed while copying")
	}
	if _, err := os.Stat(filepath.Join(home, "datashift", "from-anywhere.db")); err != nil {
		t.Fatalf("the job's state file: %v", err)
	}
	cols := demodata.Columns
	want, err := engine.TableChecksum(context.Background(), "sqlite", connectors.SourceConfig{DSN: src, Table: "orders"}, cols)
	if err != nil {
		t.Fatal(err)
	}
	got, err := engine.TableChecksum(context.Background(), "parquet", connectors.SourceConfig{DSN: dst}, cols)
	if err != nil || got != want {
		t.Fatalf("after %d kills from %d directories: sink %v (%v), source %v", landed, len(starts), got, err, want)
	}
}

// runInProcess runs a job to its end with state of its own.
func runInProcess(t *testing.T, job *engine.Job) {
	t.Helper()
	job.Normalize()
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	db := embedded.Memory()
	defer db.Close()
	s, err := db.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := coordinator.RunJob(context.Background(), s, job, coordinator.RunOptions{}); err != nil {
		t.Fatalf("%s: %v", job.Name, err)
	}
}

func mysqlExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}
