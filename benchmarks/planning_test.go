package benchmarks

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver "mysql", for the fixture
	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/internal/testenv"
)

// planRows is the size of the planning benchmark's tables: a million rows,
// or DATASHIFT_BENCH_ROWS when that is smaller.
func planRows() int64 { return min(benchRows(), 1_000_000) }

// mariaDDL is benchDDL in MariaDB's words.
const mariaDDL = `(id BIGINT PRIMARY KEY, customer_id INT NOT NULL, status VARCHAR(16) NOT NULL,
	amount DECIMAL(12,2), created DATETIME(6) NOT NULL, note TEXT)`

// mariaSource returns the DSN of a MariaDB database kept between runs
// holding plan_src: the rows of bench_src (ensureSource), n of them.
func mariaSource(b *testing.B, n int64) string {
	b.Helper()
	testenv.Need(b, "MariaDB", testenv.MySQLAddr())
	admin, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/", testenv.MySQLAddr()))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	run := func(q string) {
		if _, err := admin.Exec(q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	run("CREATE DATABASE IF NOT EXISTS datashift_bench")
	var have int64 = -1
	_ = admin.QueryRow("SELECT COUNT(*) FROM datashift_bench.plan_src").Scan(&have)
	if have != n {
		start := time.Now()
		run("DROP TABLE IF EXISTS datashift_bench.plan_src")
		run("CREATE TABLE datashift_bench.plan_src " + mariaDDL)
		// seq_1_to_N is MariaDB's sequence engine.
		run(fmt.Sprintf(`INSERT INTO datashift_bench.plan_src
			SELECT seq, (seq * 7919) %% 100000, ELT(1 + seq %% 4, 'new', 'paid', 'shipped', 'returned'),
			       ((seq * 37) %% 1000000) / 100.0, TIMESTAMP'2020-01-01 00:00:00' + INTERVAL seq * 3 SECOND,
			       IF(seq %% 10 = 0, NULL, CONCAT('order note ', MD5(seq)))
			FROM datashift_bench.seq_1_to_%d`, n))
		run("ANALYZE TABLE datashift_bench.plan_src")
		b.Logf("built MariaDB plan_src with %d rows in %s", n, time.Since(start).Round(time.Second))
	}
	return fmt.Sprintf("root@tcp(%s)/datashift_bench", testenv.MySQLAddr())
}

// pgPlanSource builds plan_src in PostgreSQL's benchmark database: the
// first n rows of bench_src's recipe, apart from bench_src so its
// 10M-row table is left as it is.
func pgPlanSource(b *testing.B, dsn string, n int64) {
	b.Helper()
	var have int64 = -1
	if conn, err := pgx.Connect(context.Background(), dsn); err == nil {
		_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM plan_src`).Scan(&have)
		conn.Close(context.Background())
	}
	if have == n {
		return
	}
	pgExec(b, dsn, `DROP TABLE IF EXISTS plan_src`, `CREATE TABLE plan_src `+benchDDL,
		fmt.Sprintf(`INSERT INTO plan_src
			SELECT g, (g * 7919) %% 100000,
			       (ARRAY['new','paid','shipped','returned'])[1 + g %% 4],
			       ((g * 37) %% 1000000) / 100.0,
			       timestamptz '2020-01-01 00:00:00+00' + g * interval '3 seconds',
			       CASE WHEN g %% 10 = 0 THEN NULL ELSE 'order note ' || md5(g::text) END
			FROM generate_series(1::bigint, %d) g`, n),
		`VACUUM ANALYZE plan_src`)
}

// summaryLine is the planning line of `datashift run`'s summary.
var summaryLine = regexp.MustCompile(`planned in (\S+) \(([0-9.]+)% of the run\), copied in (\S+)`)

// planShare runs job (a copy of a rows-row table) repeats times and returns
// the median planning time, copy time and planning share the run summary
// printed, and what `datashift plan` said.
func planShare(b *testing.B, bin, job string, rows int64) (plan, copied time.Duration, share float64, reason string) {
	b.Helper()
	out, err := exec.Command(bin, "plan", job).CombinedOutput()
	if err != nil {
		b.Fatalf("plan: %v\n%s", err, out)
	}
	reason = firstLines(string(out), 2)
	var plans, copies []time.Duration
	for i := 0; i < benchRepeats(); i++ {
		out, err := exec.Command(bin, "run", job, "--state", filepath.Join(b.TempDir(), fmt.Sprintf("state-%d", i)), "-q").CombinedOutput()
		if err != nil {
			b.Fatalf("datashift run: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), fmt.Sprintf("succeeded: %d rows", rows)) {
			b.Fatalf("run did not copy %d rows:\n%s", rows, out)
		}
		m := summaryLine.FindStringSubmatch(string(out))
		if m == nil {
			b.Fatalf("no planning time in the summary:\n%s", out)
		}
		p, err1 := time.ParseDuration(m[1])
		c, err2 := time.ParseDuration(m[3])
		if err1 != nil || err2 != nil {
			b.Fatalf("summary %q: %v %v", m[0], err1, err2)
		}
		plans, copies = append(plans, p), append(copies, c)
	}
	plan, copied = median(plans), median(copies)
	return plan, copied, 100 * plan.Seconds() / (plan + copied).Seconds(), reason
}

// BenchmarkPlanningShare copies the same million-row table from MariaDB
// and from PostgreSQL into PostgreSQL with `datashift run`, and reports
// how much of each run was planning (the run summary's figures): planning
// must stay a small share of the copy on every store.
func BenchmarkPlanningShare(b *testing.B) {
	rows := planRows()
	maria := mariaSource(b, rows)
	pgSrc := benchDatabase(b, "datashift_bench_src")
	dst := benchDatabase(b, "datashift_bench_dst")
	pgPlanSource(b, pgSrc, rows)
	bin := buildBinary(b)
	res := &result{name: "planning_share"}
	res.add("table: %d rows %s, copied into PostgreSQL, partitions {target_rows: %d, max: 16}, parallelism %d",
		rows, strings.Join(strings.Fields(benchDDL), " "), max(rows/8, 1), benchParallelism())
	for _, src := range []struct{ name, typ, dsn, sink string }{
		{"MariaDB", "mysql", maria, "plan_dst_mariadb"},
		{"PostgreSQL", "postgres", pgSrc, "plan_dst_postgres"},
	} {
		job := filepath.Join(b.TempDir(), src.typ+".yaml")
		spec := fmt.Sprintf(`name: bench-plan-%s
source: {type: %s, dsn: %q, table: plan_src, key: [id]}
sink: {type: postgres, dsn: %q, table: %s, mode: truncate, create_table: true}
partitions: {target_rows: %d, max: 16}
parallelism: %d
`, src.typ, src.typ, src.dsn, dst, src.sink, max(rows/8, 1), benchParallelism())
		if err := os.WriteFile(job, []byte(spec), 0o644); err != nil {
			b.Fatal(err)
		}
		plan, copied, share, reason := planShare(b, bin, job, rows)
		res.add("%-10s -> PostgreSQL: planning %7.3fs = %4.1f%% of the run, copy %6.2fs (medians of %d runs; target <= 2%%)",
			src.name, plan.Seconds(), share, copied.Seconds(), benchRepeats())
		res.add("  plan: %s", reason)
	}
	res.write(b)
}
