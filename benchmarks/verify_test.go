package benchmarks

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// differsLine is a partition `datashift verify` names, with its bounds.
var differsLine = regexp.MustCompile(`(?m)^  (\S+) +\[(-∞|\d+), (\+∞|\d+)\) +differs: .*$`)

// BenchmarkVerifyPostgresToMariaDB copies a million-row PostgreSQL table
// (planning's plan_src) into MariaDB with `datashift run`, then times
// `datashift verify` on the exact copy (exit 0) and after one value of one
// row is changed in the sink (exit 1, naming the partition that holds it),
// beside the copy's time.
func BenchmarkVerifyPostgresToMariaDB(b *testing.B) {
	rows := planRows()
	src := benchDatabase(b, "datashift_bench_src")
	pgPlanSource(b, src, rows)
	maria := mariaSource(b, rows) // the datashift_bench database
	bin := buildBinary(b)
	res := &result{name: "verify_postgres_to_mariadb"}
	res.add("table: %d rows %s, PostgreSQL -> MariaDB, partitions {target_rows: %d, max: 16}, parallelism %d",
		rows, strings.Join(strings.Fields(benchDDL), " "), max(rows/8, 1), benchParallelism())
	job := filepath.Join(b.TempDir(), "job.yaml")
	spec := fmt.Sprintf(`name: bench-verify
source: {type: postgres, dsn: %q, table: plan_src, key: [id]}
sink: {type: mysql, dsn: %q, table: verify_dst, mode: truncate, create_table: true}
partitions: {target_rows: %d, max: 16}
parallelism: %d
`, src, maria, max(rows/8, 1), benchParallelism())
	if err := os.WriteFile(job, []byte(spec), 0o644); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if out, err := exec.Command(bin, "run", job, "--state", filepath.Join(b.TempDir(), "state"), "-q").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), fmt.Sprintf("succeeded: %d rows", rows)) {
		b.Fatalf("datashift run: %v\n%s", err, out)
	}
	copied := time.Since(start)
	res.add("datashift run:                       %7.2fs", copied.Seconds())

	verify := func(wantExit int) (string, time.Duration) {
		start := time.Now()
		out, err := exec.Command(bin, "verify", job).CombinedOutput()
		took := time.Since(start)
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			b.Fatalf("datashift verify: %v\n%s", err, out)
		}
		if code != wantExit {
			b.Fatalf("datashift verify exits %d, want %d:\n%s", code, wantExit, out)
		}
		return string(out), took
	}
	out, took := verify(0)
	res.add("datashift verify, exact copy:        %7.2fs = %.2f× the copy (exit 0)", took.Seconds(), took.Seconds()/copied.Seconds())
	res.add("  %s", verifySummary.FindString(out))

	db, err := sql.Open("mysql", maria)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	changed := rows * 2 / 3
	if _, err := db.Exec(`UPDATE verify_dst SET amount = amount + 0.01 WHERE id = ?`, changed); err != nil {
		b.Fatal(err)
	}
	out, took = verify(1)
	res.add("datashift verify, one row changed:   %7.2fs = %.2f× the copy (exit 1)", took.Seconds(), took.Seconds()/copied.Seconds())
	m := differsLine.FindAllStringSubmatch(out, -1)
	if len(m) != 1 || !holds(m[0][2], m[0][3], changed) {
		b.Fatalf("verify must name the one partition holding id %d:\n%s", changed, out)
	}
	res.add("  changed id %d; verify names: %s", changed, strings.Join(strings.Fields(m[0][0]), " "))
	res.add("  %s", verifySummary.FindString(out))
	res.write(b)
}

// holds reports whether the printed bounds [lo, hi) hold id.
func holds(lo, hi string, id int64) bool {
	l, err := strconv.ParseInt(lo, 10, 64)
	if err != nil {
		l = -1 << 63 // -∞
	}
	h, err := strconv.ParseInt(hi, 10, 64)
	if err != nil {
		h = 1<<63 - 1 // +∞
	}
	return l <= id && id < h
}

// verifySummary is the summary line of `datashift verify`.
var verifySummary = regexp.MustCompile(`(?m)^job .* partitions checked, .*$`)
