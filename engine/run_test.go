package engine_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/datashift/datashift/connectors"
	_ "github.com/datashift/datashift/connectors/mysql"
	_ "github.com/datashift/datashift/connectors/postgres"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// columns compared between source and sink: every store holds them alike.
var compared = []string{"id", "name", "amount", "created", "flag"}

// An endpoint is a table in a store: made and filled by native SQL (not by
// our own sinks, so the fixture does not share their bugs), or empty.
type endpoint struct {
	typ, dsn, table string
	exec            func(t *testing.T, stmts ...string)
}

func pgEndpoint(t *testing.T) endpoint {
	dsn := testenv.Postgres(t)
	return endpoint{typ: "postgres", dsn: dsn, table: "orders", exec: func(t *testing.T, stmts ...string) {
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
	}}
}

func sqlEndpoint(t *testing.T, typ, driver, dsn string) endpoint {
	return endpoint{typ: typ, dsn: dsn, table: "orders", exec: func(t *testing.T, stmts ...string) {
		t.Helper()
		db, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}}
}

func mysqlEndpoint(t *testing.T) endpoint {
	dsn := testenv.MySQL(t)
	e := sqlEndpoint(t, "mysql", "mysql", dsn+"?time_zone=%27%2B00%3A00%27")
	e.dsn = dsn
	return e
}

func sqliteEndpoint(t *testing.T) endpoint {
	return sqlEndpoint(t, "sqlite", "sqlite", filepath.Join(t.TempDir(), "db.sqlite"))
}

func parquetEndpoint(t *testing.T) endpoint {
	return endpoint{typ: "parquet", dsn: filepath.Join(t.TempDir(), "orders.parquet.d")}
}

func mustExecSQLite(t *testing.T, path string, stmts ...string) {
	sqlEndpoint(t, "sqlite", "sqlite", path).exec(t, stmts...)
}

// fill creates the source table with n rows, ids 1..n, by the store's own SQL.
func (e endpoint) fill(t *testing.T, n int) {
	t.Helper()
	switch e.typ {
	case "postgres":
		e.exec(t, `CREATE TABLE orders (id bigint PRIMARY KEY, name text, amount numeric(12,2), created timestamptz NOT NULL, flag boolean, updated_at bigint NOT NULL DEFAULT 0)`,
			fmt.Sprintf(`INSERT INTO orders (id, name, amount, created, flag)
				SELECT g, CASE WHEN g %% 10 = 0 THEN NULL ELSE 'náme ' || g || ' 🚀' END, (g * 37 %% 100000) / 100.0,
				       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', g %% 3 = 0
				FROM generate_series(1, %d) g`, n))
	case "mysql":
		e.exec(t, `CREATE TABLE orders (id BIGINT PRIMARY KEY, name LONGTEXT, amount DECIMAL(12,2), created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), flag BOOLEAN, updated_at BIGINT NOT NULL DEFAULT 0) CHARACTER SET utf8mb4`,
			`SET time_zone = '+00:00'`,
			fmt.Sprintf(`INSERT INTO orders (id, name, amount, created, flag)
				SELECT seq, CASE WHEN seq %% 10 = 0 THEN NULL ELSE CONCAT('náme ', seq, ' 🚀') END, (seq * 37 %% 100000) / 100.0,
				       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND, seq %% 3 = 0
				FROM seq_1_to_%d`, n))
	case "sqlite":
		e.exec(t, `CREATE TABLE orders (id INTEGER PRIMARY KEY, name TEXT, amount DECIMAL_TEXT(12,2), created TIMESTAMPTZ_TEXT NOT NULL, flag BOOLEAN, updated_at INTEGER NOT NULL DEFAULT 0)`,
			fmt.Sprintf(`WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < %d)
				INSERT INTO orders (id, name, amount, created, flag)
				SELECT x, CASE WHEN x %% 10 = 0 THEN NULL ELSE 'náme ' || x || ' 🚀' END, printf('%%d.%%02d', (x * 37 %% 100000) / 100, (x * 37) %% 100),
				       strftime('%%Y-%%m-%%dT%%H:%%M:%%S', 1704067200 + x, 'unixepoch') || '.000000Z', x %% 3 = 0
				FROM g`, n))
	default:
		t.Fatalf("no fixture for %s", e.typ)
	}
}

func (e endpoint) checksum(t *testing.T) connectors.Checksum {
	t.Helper()
	sum, err := engine.TableChecksum(context.Background(), e.typ, connectors.SourceConfig{DSN: e.dsn, Table: e.table}, compared)
	if err != nil {
		t.Fatalf("checksum of %s: %v", e.typ, err)
	}
	return sum
}

func copyJob(src, dst endpoint, mode connectors.WriteMode) *engine.Job {
	j := &engine.Job{
		Name:        "copy-" + src.typ + "-" + dst.typ,
		Source:      engine.SourceSpec{Type: src.typ, DSN: src.dsn, Table: src.table, Key: []string{"id"}, Columns: append(compared, "updated_at")},
		Sink:        engine.SinkSpec{Type: dst.typ, DSN: dst.dsn, Table: dst.table, Mode: mode, CreateTable: true},
		Partitions:  engine.PartitionSpec{TargetRows: 3000},
		BatchRows:   500,
		CommitRows:  1000,
		Parallelism: 3,
		Retries:     engine.RetrySpec{Max: 2, Backoff: engine.Duration(10 * time.Millisecond)},
	}
	j.Normalize()
	return j
}

// runInterrupted runs job, cancelling it once about rowsBeforeCancel rows
// have been written (anywhere in a batch, commit or checkpoint), and reports
// whether the cancel landed before the run ended.
func runInterrupted(t *testing.T, h *home, job *engine.Job, rowsBeforeCancel int64) bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	seen := map[string]int64{}
	var written int64
	_, err := h.run(job, proc{ctx: ctx, RunOptions: coordinator.RunOptions{Progress: func(p engine.Progress) {
		mu.Lock()
		defer mu.Unlock()
		written += max(p.Rows-seen[p.Partition], 0)
		seen[p.Partition] = p.Rows
		if written >= rowsBeforeCancel {
			cancel()
		}
	}}})
	if err == nil {
		return false
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run failed: %v", err)
	}
	return true
}

const fixtureRows = 20000

// testResume copies src to dst, interrupting the run twice at random
// points and resuming it, and checks that the sink holds every source row
// exactly once.
func testResume(t *testing.T, src, dst endpoint, mode connectors.WriteMode) *engine.RunRecord {
	return testResumeJob(t, src, dst, mode, func(*engine.Job) {})
}

// testResumeJob is testResume of copyJob changed by edit.
func testResumeJob(t *testing.T, src, dst endpoint, mode connectors.WriteMode, edit func(*engine.Job)) *engine.RunRecord {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	src.fill(t, fixtureRows)
	want := src.checksum(t)
	if want.Rows != fixtureRows {
		t.Fatalf("source has %d rows", want.Rows)
	}
	job := copyJob(src, dst, mode)
	edit(job)
	h := newHome(t)
	switch mode {
	case connectors.Truncate:
		// Rows the truncate must remove, ids the source does not have.
		prefill(t, dst, 100)
	case connectors.Upsert:
		// Stale versions of source rows the upsert must overwrite.
		prefill(t, dst, 0)
	}
	// The first run is cancelled at a random row short of the end (a cancel
	// after the run finished would make the next run a new one, a second
	// append); the second as soon as its resumed partitions write.
	interrupted := 0
	for _, after := range []int64{int64(1 + rng.Intn(fixtureRows*6/10)), 1} {
		if !runInterrupted(t, h, job, after) {
			t.Fatal("the run finished before it was interrupted")
		}
		interrupted++
	}
	run, err := h.run(job, proc{})
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if got := dst.checksum(t); got != want {
		t.Fatalf("after %d interruptions: sink %v, source %v", interrupted, got, want)
	}
	if run.State != engine.RunSucceeded || run.Rows != fixtureRows {
		t.Fatalf("run %s with %d rows", run.State, run.Rows)
	}
	return run
}

// A job that names no key is split, read and resumed by its table's
// primary key, and its sink is keyed by it (an upsert matches rows by it):
// a MariaDB table, which has no other way to resume, and PostgreSQL and
// SQLite ones, which would otherwise be read by heap pages and rowid. The key the run was planned by is kept in the run, so
// the interrupted run continues under it.
func TestJobWithoutKeyRunsByThePrimaryKey(t *testing.T) {
	for _, tc := range []struct {
		src  func(*testing.T) endpoint
		mode connectors.WriteMode
	}{{mysqlEndpoint, connectors.Append}, {mysqlEndpoint, connectors.Upsert}, {pgEndpoint, connectors.Upsert}, {sqliteEndpoint, connectors.Upsert}} {
		src := tc.src(t)
		t.Run(src.typ+"/"+string(tc.mode), func(t *testing.T) {
			run := testResumeJob(t, src, pgEndpoint(t), tc.mode, func(j *engine.Job) { j.Source.Key = nil })
			if run.Scheme != "key-range" || !strings.HasPrefix(run.Reason, "by the table's primary key (id), as the job names no key; ") {
				t.Errorf("run planned by %s: %s", run.Scheme, run.Reason)
			}
			if len(run.PrimaryKey) != 1 || run.PrimaryKey[0] != "id" || len(run.Spec.Source.Key) != 0 {
				t.Errorf("the run is keyed by %v, with %v pinned; want [id], with the key unset as the job has it", run.PrimaryKey, run.Spec.Source.Key)
			}
		})
	}
}

// Without a primary key, or with its columns left out of those read, a
// job that names no key stays keyless.
func TestJobWithoutKeyOrPrimaryKeyStaysKeyless(t *testing.T) {
	for _, tc := range []struct {
		name, ddl string
		columns   []string
	}{
		{"no primary key", `CREATE TABLE orders (id BIGINT NOT NULL, name LONGTEXT)`, nil},
		{"key not read", `CREATE TABLE orders (id BIGINT PRIMARY KEY, name LONGTEXT)`, []string{"name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := mysqlEndpoint(t), pgEndpoint(t)
			src.exec(t, tc.ddl, `INSERT INTO orders SELECT seq, CONCAT('n', seq) FROM seq_1_to_3000`)
			job := &engine.Job{
				Name:       "keyless",
				Source:     engine.SourceSpec{Type: "mysql", DSN: src.dsn, Table: src.table, Columns: tc.columns},
				Sink:       engine.SinkSpec{Type: "postgres", DSN: dst.dsn, Table: dst.table, Mode: connectors.Append, CreateTable: true},
				Partitions: engine.PartitionSpec{TargetRows: 500},
			}
			job.Normalize()
			run, err := runOnce(t, job, coordinator.RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if run.Scheme != "single" || len(run.PrimaryKey) != 0 || run.Rows != 3000 {
				t.Errorf("run planned by %s (key %v): %s; %d rows", run.Scheme, run.PrimaryKey, run.Reason, run.Rows)
			}
			cols := tc.columns
			if cols == nil {
				cols = []string{"id", "name"}
			}
			sum := func(e endpoint) connectors.Checksum {
				t.Helper()
				s, err := engine.TableChecksum(context.Background(), e.typ, connectors.SourceConfig{DSN: e.dsn, Table: e.table}, cols)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			copied := sum(dst)
			if want := sum(src); copied != want {
				t.Fatalf("sink %v, source %v", copied, want)
			}
			// An upsert has no rows to match by: check and run refuse it,
			// and the sink is left as it was.
			job.Sink.Mode = connectors.Upsert
			want := `job "keyless": source.key: is required for sink.mode upsert (the columns rows are matched by): the job names none, and the mysql table "orders" has no primary key among the columns read`
			if err := engine.Check(context.Background(), job); err == nil || err.Error() != want {
				t.Errorf("check of the upsert: %v\nwant %s", err, want)
			}
			if _, err := runOnce(t, job, coordinator.RunOptions{}); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("run of the upsert: %v\nwant %s", err, want)
			}
			if after := sum(dst); after != copied {
				t.Errorf("the sink holds %v after the refused upsert, want %v as the first run left it", after, copied)
			}
		})
	}
}

// prefill writes rows into the sink before the copy: with offset 0, stale
// versions of source ids 1..2000; otherwise ids past the source's.
func prefill(t *testing.T, dst endpoint, offset int) {
	t.Helper()
	fake := sqliteEndpoint(t)
	fake.fill(t, 2000)
	fake.exec(t, fmt.Sprintf(`UPDATE orders SET id = id + %d, name = 'stale', amount = 0`, offset*1000))
	pre := copyJob(fake, dst, connectors.Append)
	pre.Name = "prefill"
	if _, err := runOnce(t, pre, coordinator.RunOptions{}); err != nil {
		t.Fatalf("prefill: %v", err)
	}
}

func TestResumePostgresToPostgres(t *testing.T) {
	for _, mode := range []connectors.WriteMode{connectors.Append, connectors.Truncate, connectors.Upsert} {
		t.Run(string(mode), func(t *testing.T) { testResume(t, pgEndpoint(t), pgEndpoint(t), mode) })
	}
}

func TestResumeMariaDBToPostgres(t *testing.T) {
	for _, mode := range []connectors.WriteMode{connectors.Append, connectors.Truncate, connectors.Upsert} {
		t.Run(string(mode), func(t *testing.T) { testResume(t, mysqlEndpoint(t), pgEndpoint(t), mode) })
	}
}

func TestResumePostgresToMariaDB(t *testing.T) {
	for _, mode := range []connectors.WriteMode{connectors.Append, connectors.Truncate, connectors.Upsert} {
		t.Run(string(mode), func(t *testing.T) { testResume(t, pgEndpoint(t), mysqlEndpoint(t), mode) })
	}
}

func TestResumeSQLiteToParquet(t *testing.T) {
	for _, mode := range []connectors.WriteMode{connectors.Append, connectors.Truncate} {
		t.Run(string(mode), func(t *testing.T) {
			dst := parquetEndpoint(t)
			if mode == connectors.Truncate {
				// An earlier run's parts that the truncate must remove.
				old := sqliteEndpoint(t)
				old.fill(t, 500)
				if _, err := runOnce(t, copyJob(old, dst, connectors.Append), coordinator.RunOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			testResume(t, sqliteEndpoint(t), dst, mode)
		})
	}
}

func TestResumeSQLiteToSQLite(t *testing.T) {
	testResume(t, sqliteEndpoint(t), sqliteEndpoint(t), connectors.Upsert)
}

// crashAt is a process that dies the n-th time its node reaches the store
// step ("save": a sink commit is in, its checkpoint not saved yet; "saved",
// "take", "end", "finish"; see crashingStore). done ends it.
func crashAt(step string, n int) (p proc, c *crasher, done func()) {
	c = &crasher{step: step, n: n}
	p, done = crashing(c, nil)
	return p, c, done
}

func TestResumeAfterCommitWithoutCheckpoint(t *testing.T) {
	for _, dst := range []func(*testing.T) endpoint{pgEndpoint, mysqlEndpoint, parquetEndpoint, sqliteEndpoint} {
		d := dst(t)
		t.Run(d.typ, func(t *testing.T) {
			src := pgEndpoint(t)
			src.fill(t, fixtureRows)
			job := copyJob(src, d, connectors.Append)
			h := newHome(t)
			crash, c, done := crashAt("save", 5)
			_, err := h.run(job, crash)
			done()
			if err == nil || !c.dead() {
				t.Fatalf("crashed run: %v", err)
			}
			if _, err := h.run(job, proc{}); err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			if got, want := d.checksum(t), src.checksum(t); got != want {
				t.Fatalf("sink %v, source %v", got, want)
			}
		})
	}
}

func TestIncrementalSync(t *testing.T) {
	src, dst := pgEndpoint(t), pgEndpoint(t)
	src.fill(t, 5000)
	src.exec(t, `UPDATE orders SET updated_at = id`)
	job := copyJob(src, dst, connectors.Upsert)
	job.Incremental = &engine.IncrementalSpec{Cursor: "updated_at"}
	h := newHome(t)
	var moved []int64
	run := func() {
		t.Helper()
		r, err := h.run(job, proc{})
		if err != nil {
			t.Fatalf("incremental run: %v", err)
		}
		moved = append(moved, r.Rows)
		if got, want := dst.checksum(t), src.checksum(t); got != want {
			t.Fatalf("after run %d: sink %v, source %v", len(moved), got, want)
		}
	}
	run()
	// New rows and changed rows, with cursor values past the mark.
	src.exec(t, `INSERT INTO orders (id, name, amount, created, flag, updated_at)
		SELECT g, 'new ' || g, 1.50, now(), true, 10000 + g FROM generate_series(5001, 5100) g`,
		`UPDATE orders SET name = 'changed', updated_at = 20000 + id WHERE id % 500 = 0`)
	run()
	run() // nothing new: the upsert reads the row at the mark again
	if want := []int64{5000, 110, 1}; fmt.Sprint(moved) != fmt.Sprint(want) {
		t.Fatalf("rows moved per run %v, want %v", moved, want)
	}
}

// A value the sink cannot hold fails the run with the column and the row's
// key, or, within a bad_rows budget, goes to the reject file.
func TestBadRowsBudget(t *testing.T) {
	src, dst := pgEndpoint(t), mysqlEndpoint(t)
	src.fill(t, 3000)
	src.exec(t, `UPDATE orders SET name = repeat('x', 50) WHERE id IN (7, 1500, 2999)`)
	dst.exec(t, `CREATE TABLE orders (id BIGINT PRIMARY KEY, name VARCHAR(20), amount DECIMAL(12,2), created TIMESTAMP(6) NULL, flag BOOLEAN, updated_at BIGINT)`)

	job := copyJob(src, dst, connectors.Append)
	job.Sink.CreateTable = false
	_, err := runOnce(t, job, coordinator.RunOptions{})
	if err == nil || !strings.Contains(err.Error(), `column "name"`) || !strings.Contains(err.Error(), "key 7") {
		t.Fatalf("run with an oversized value: %v; want a failure naming column name and key 7", err)
	}

	dst.exec(t, `TRUNCATE TABLE orders`)
	rejects := filepath.Join(t.TempDir(), "rejects.jsonl")
	job.BadRows = engine.BadRowsSpec{Max: 5, RejectFile: rejects}
	run, err := runOnce(t, job, coordinator.RunOptions{})
	if err != nil {
		t.Fatalf("run within budget: %v", err)
	}
	if run.BadRows != 3 || run.Rows != 2997 {
		t.Fatalf("run moved %d rows with %d bad, want 2997 and 3", run.Rows, run.BadRows)
	}
	data, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"name"`) {
		t.Fatalf("reject file:\n%s", data)
	}
	var n int
	db, _ := sql.Open("mysql", dst.dsn)
	defer db.Close()
	if err := db.QueryRow(`SELECT COUNT(*) FROM orders WHERE id IN (7, 1500, 2999)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("bad rows in sink: %d (%v)", n, err)
	}

	job.BadRows = engine.BadRowsSpec{Max: 2, RejectFile: rejects}
	dst.exec(t, `TRUNCATE TABLE orders`)
	// The run's failure comes back as its text.
	if _, err := runOnce(t, job, coordinator.RunOptions{}); err == nil || !strings.Contains(err.Error(), engine.ErrBudgetExceeded.Error()) {
		t.Fatalf("3 bad rows with a budget of 2: %v", err)
	}
}

// parquetDataset makes a SQLite table and a Parquet dataset of the same
// rows, in several part files.
func parquetDataset(t *testing.T) (src, files endpoint) {
	src, files = sqliteEndpoint(t), parquetEndpoint(t)
	src.fill(t, fixtureRows)
	toFiles := copyJob(src, files, connectors.Append) // 7 partitions: 7+ part files
	if _, err := runOnce(t, toFiles, coordinator.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	return src, files
}

// A source with no key (Parquet files, planned as file ranges) resumes an
// interrupted partition from the file and row its sink's record names, so
// nothing is doubled or lost.
func TestResumeKeylessFileRanges(t *testing.T) {
	src, files := parquetDataset(t)
	dst := parquetEndpoint(t)
	job := &engine.Job{
		Name:        "keyless",
		Source:      engine.SourceSpec{Type: "parquet", DSN: files.dsn},
		Sink:        engine.SinkSpec{Type: "parquet", DSN: dst.dsn, Mode: connectors.Append},
		Partitions:  engine.PartitionSpec{Max: 4},
		BatchRows:   500,
		Parallelism: 2,
	}
	job.Normalize()
	h := newHome(t)
	// A partition commits a part file, then "dies" before its checkpoint
	// says so.
	job.CommitRows = 1000
	crash, c, done := crashAt("save", 4)
	_, err := h.run(job, crash)
	done()
	if err == nil || !c.dead() {
		t.Fatalf("crashed run: %v", err)
	}
	if committed := dst.checksum(t); committed.Rows == 0 {
		t.Fatal("no part was committed before the crash: the test proves nothing")
	}
	run, err := h.run(job, proc{})
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if run.Scheme != "pages" || run.Rows != fixtureRows {
		t.Fatalf("run: scheme %q, %d rows", run.Scheme, run.Rows)
	}
	if got, want := dst.checksum(t), src.checksum(t); got != want {
		t.Fatalf("sink %v, source %v", got, want)
	}
}

// A run of a file source is pinned to the files it planned: a file added,
// or one changed, refuses the resume and names the file; restarting
// abandons the run and copies what is there now.
func TestResumeRefusedWhenInputFilesChanged(t *testing.T) {
	src, files := parquetDataset(t)
	dst := parquetEndpoint(t)
	job := &engine.Job{
		Name:       "pinned-files",
		Source:     engine.SourceSpec{Type: "parquet", DSN: files.dsn},
		Sink:       engine.SinkSpec{Type: "parquet", DSN: dst.dsn, Mode: connectors.Truncate},
		Partitions: engine.PartitionSpec{Max: 4},
		BatchRows:  500,
		CommitRows: 1000,
	}
	job.Normalize()
	h := newHome(t)
	crash, c, done := crashAt("save", 4)
	_, err := h.run(job, crash)
	done()
	if err == nil || !c.dead() {
		t.Fatalf("crashed run: %v", err)
	}
	parts, err := filepath.Glob(filepath.Join(files.dsn, "*.parquet"))
	if err != nil || len(parts) < 2 {
		t.Fatalf("source parts %v, %v", parts, err)
	}
	data, err := os.ReadFile(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	added := filepath.Join(files.dsn, "zz-added.parquet")
	if err := os.WriteFile(added, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// The refusal is recorded on the run and comes back as its text.
	_, err = h.run(job, proc{})
	if err == nil || !strings.Contains(err.Error(), "was planned with another spec or input") || !strings.Contains(err.Error(), "input "+added+" is new") {
		t.Fatalf("resume after a file was added: %v", err)
	}
	if err := os.Remove(added); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(parts[1], later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := h.run(job, proc{}); err == nil || !strings.Contains(err.Error(), "input "+parts[1]+" was modified") {
		t.Fatalf("resume after a file was modified: %v", err)
	}
	if _, err := h.run(job, proc{RunOptions: coordinator.RunOptions{Restart: true}}); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if got, want := dst.checksum(t), src.checksum(t); got != want {
		t.Fatalf("sink %v, source %v", got, want)
	}
}

// A run that failed on a bad value keeps its checkpoints: once the cause is
// fixed, the next run continues it, and what it had committed is not
// copied twice.
func TestFailedRunContinuesAfterTheFix(t *testing.T) {
	src, dst := pgEndpoint(t), mysqlEndpoint(t)
	src.fill(t, fixtureRows)
	src.exec(t, `UPDATE orders SET name = repeat('x', 50) WHERE id = 15000`)
	dst.exec(t, `CREATE TABLE orders (id BIGINT PRIMARY KEY, name VARCHAR(20), amount DECIMAL(12,2), created DATETIME(6) NOT NULL, flag BOOLEAN, updated_at BIGINT NOT NULL)`)
	job := copyJob(src, dst, connectors.Append)
	job.Sink.CreateTable = false
	job.Parallelism = 1
	h := newHome(t)
	run, err := h.run(job, proc{})
	if err == nil || !strings.Contains(err.Error(), "key 15000") {
		t.Fatalf("first run: %v; want a failure naming key 15000", err)
	}
	if run.Rows == 0 || run.Rows >= fixtureRows {
		t.Fatalf("the failed run committed %d rows; the test needs some but not all", run.Rows)
	}
	dst.exec(t, `ALTER TABLE orders MODIFY name LONGTEXT`)
	again, err := h.run(job, proc{})
	if err != nil {
		t.Fatalf("continued run: %v", err)
	}
	if again.ID != run.ID || again.Rows != fixtureRows {
		t.Fatalf("continued run %s (first %s) with %d rows", again.ID, run.ID, again.Rows)
	}
	if got, want := dst.checksum(t), src.checksum(t); got != want {
		t.Fatalf("sink %v, source %v", got, want)
	}
}

// Restart abandons an interrupted run and starts a new one (truncate mode
// then leaves the sink equal to the source).
func TestRestartAbandonsTheUnfinishedRun(t *testing.T) {
	src, dst := sqliteEndpoint(t), sqliteEndpoint(t)
	src.fill(t, fixtureRows)
	job := copyJob(src, dst, connectors.Truncate)
	h := newHome(t)
	if !runInterrupted(t, h, job, fixtureRows/4) {
		t.Fatal("the run finished before it was interrupted")
	}
	old := h.activeRun(job)
	run, err := h.run(job, proc{RunOptions: coordinator.RunOptions{Restart: true}})
	if err != nil {
		t.Fatal(err)
	}
	if run.ID == old.ID || run.Rows != fixtureRows {
		t.Fatalf("restart continued run %s (old %s) with %d rows", run.ID, old.ID, run.Rows)
	}
	hist, err := h.state().History(context.Background(), job.Name)
	if err != nil || len(hist) != 2 || hist[1].ID != old.ID || hist[1].State != engine.RunAbandoned {
		t.Fatalf("history %+v, %v", hist, err)
	}
	if got, want := dst.checksum(t), src.checksum(t); got != want {
		t.Fatalf("sink %v, source %v", got, want)
	}
}

// The bad-row budget belongs to the run, not to the process: a run resumed
// after an interruption counts the rows its earlier attempts set aside, and
// fails once all of them together pass bad_rows.max.
func TestResumedRunKeepsItsBadRowBudget(t *testing.T) {
	src, dst := pgEndpoint(t), mysqlEndpoint(t)
	src.fill(t, fixtureRows)
	src.exec(t, `UPDATE orders SET name = repeat('x', 50) WHERE id IN (500, 5000, 8000, 11000, 14000, 17000)`)
	dst.exec(t, `CREATE TABLE orders (id BIGINT PRIMARY KEY, name VARCHAR(20), amount DECIMAL(12,2), created TIMESTAMP(6) NULL, flag BOOLEAN, updated_at BIGINT)`)
	job := copyJob(src, dst, connectors.Append)
	job.Sink.CreateTable = false
	job.Parallelism = 1
	job.BadRows = engine.BadRowsSpec{Max: 5, RejectFile: filepath.Join(t.TempDir(), "rejects.jsonl")}
	h := newHome(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	bad := map[string]int64{}
	progress := func(p engine.Progress) {
		mu.Lock()
		defer mu.Unlock()
		bad[p.Partition] = max(bad[p.Partition], p.BadRows)
		var total int64
		for _, n := range bad {
			total += n
		}
		if total >= 3 {
			cancel()
		}
	}
	if _, err := h.run(job, proc{ctx: ctx, RunOptions: coordinator.RunOptions{Progress: progress}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v; want it interrupted after 3 bad rows", err)
	}
	run, err := h.run(job, proc{})
	if err == nil || !strings.Contains(err.Error(), engine.ErrBudgetExceeded.Error()) {
		t.Fatalf("resumed run: %v; want the budget of 5 exceeded by the 6 bad rows of both attempts", err)
	}
	if run.BadRows != 5 {
		t.Fatalf("the failed run set aside %d rows, want the 5 of its budget", run.BadRows)
	}
}
