// Package benchmarks measures datashift against the physical baseline of each
// store on the same table in the same run. Run with `make bench`; results are
// printed and written to benchmarks/results/.
package benchmarks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	_ "github.com/datashift/datashift/connectors/all"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// benchRows is the size of the benchmark table (DATASHIFT_BENCH_ROWS).
func benchRows() int64 {
	if v := os.Getenv("DATASHIFT_BENCH_ROWS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n > 0 {
			return n
		}
	}
	return 10_000_000
}

const benchDDL = `(id bigint PRIMARY KEY, customer_id integer NOT NULL, status text NOT NULL,
	amount numeric(12,2), created timestamptz NOT NULL, note text)`

// benchDatabase returns the DSN of a database kept between benchmark runs
// (building 10M rows takes a while) holding a source table of n rows.
func benchDatabase(b *testing.B, name string) string {
	b.Helper()
	testenv.Need(b, "PostgreSQL", testenv.PostgresAddr())
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", testenv.PostgresAddr()))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		b.Fatal(err)
	}
	if !exists {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			b.Fatal(err)
		}
	}
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", testenv.PostgresAddr(), name)
}

func pgExec(b *testing.B, dsn string, stmts ...string) {
	b.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			b.Fatalf("%s: %v", s, err)
		}
	}
}

func ensureSource(b *testing.B, dsn string, rows int64) {
	b.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	var have int64 = -1
	_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM bench_src`).Scan(&have)
	conn.Close(context.Background())
	if have == rows {
		return
	}
	start := time.Now()
	pgExec(b, dsn, `DROP TABLE IF EXISTS bench_src`, `CREATE TABLE bench_src `+benchDDL,
		fmt.Sprintf(`INSERT INTO bench_src
			SELECT g, (g * 7919) %% 100000,
			       (ARRAY['new','paid','shipped','returned'])[1 + g %% 4],
			       ((g * 37) %% 1000000) / 100.0,
			       timestamptz '2020-01-01 00:00:00+00' + g * interval '3 seconds',
			       CASE WHEN g %% 10 = 0 THEN NULL ELSE 'order note ' || md5(g::text) END
			FROM generate_series(1::bigint, %d) g`, rows),
		`VACUUM ANALYZE bench_src`)
	b.Logf("built bench_src with %d rows in %s", rows, time.Since(start).Round(time.Second))
}

// result collects lines for the console and the results file.
type result struct {
	name  string
	lines []string
}

func (r *result) add(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.lines = append(r.lines, line)
	fmt.Println(line)
}

func (r *result) write(b *testing.B) {
	dir := "results"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	head := fmt.Sprintf("# %s, %s, %d cores\n", r.name, time.Now().UTC().Format(time.RFC3339), nproc())
	if err := os.WriteFile(filepath.Join(dir, r.name+".txt"), []byte(head+strings.Join(r.lines, "\n")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
}

func nproc() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// copyPipe is the physical baseline: psql's binary COPY out piped into psql's
// binary COPY in.
func copyPipe(b *testing.B, src, dst, table string) time.Duration {
	b.Helper()
	start := time.Now()
	script := fmt.Sprintf(`psql -X -q %q -c "COPY bench_src TO STDOUT (FORMAT binary)" | psql -X -q %q -c "COPY %s FROM STDIN (FORMAT binary)"`, src, dst, table)
	out, err := exec.Command("bash", "-o", "pipefail", "-c", script).CombinedOutput()
	if err != nil {
		b.Fatalf("COPY pipe: %v\n%s", err, out)
	}
	return time.Since(start)
}

func buildBinary(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "datashift")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/datashift").CombinedOutput()
	if err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// BenchmarkPostgresToPostgres copies the same 10M-row table into the same
// target DDL with the COPY pipe and with `datashift run`, and reports the
// ratio and datashift's peak RSS.
func BenchmarkPostgresToPostgres(b *testing.B) {
	rows := benchRows()
	src := benchDatabase(b, "datashift_bench_src")
	dst := benchDatabase(b, "datashift_bench_dst")
	ensureSource(b, src, rows)
	bin := buildBinary(b)
	res := &result{name: "postgres_to_postgres"}
	res.add("table: %d rows %s", rows, strings.Join(strings.Fields(benchDDL), " "))

	reset := func() {
		pgExec(b, dst, `DROP TABLE IF EXISTS bench_dst`, `CREATE TABLE bench_dst `+benchDDL, `CHECKPOINT`)
	}
	job := filepath.Join(b.TempDir(), "job.yaml")
	spec := fmt.Sprintf(`name: bench-pg-pg
source: {type: postgres, dsn: %q, table: bench_src, key: [id]}
sink: {type: postgres, dsn: %q, table: bench_dst, mode: append}
partitions: {target_rows: %d, max: 16}
parallelism: %d
`, src, dst, max(rows/8, 1), benchParallelism())
	if err := os.WriteFile(job, []byte(spec), 0o644); err != nil {
		b.Fatal(err)
	}

	start := time.Now()
	plan, err := exec.Command(bin, "plan", job).CombinedOutput()
	if err != nil {
		b.Fatalf("plan: %v\n%s", err, plan)
	}
	planTime := time.Since(start)

	// One run of each is at the mercy of checkpoints and neighbours on two
	// cores: alternate them and compare medians.
	var pipes, runs []time.Duration
	var peakRSS int64
	for i := 0; i < benchRepeats(); i++ {
		reset()
		pipes = append(pipes, copyPipe(b, src, dst, "bench_dst"))
		reset()
		// Under GNU time (measure), not started directly: the peak RSS
		// of a child Go starts includes this process's own, as the child
		// shares its memory until it execs.
		s, _ := measure(b, nil, bin, "run", job, "--state", filepath.Join(b.TempDir(), fmt.Sprintf("state-%d", i)), "-q")
		runs = append(runs, s.wall)
		peakRSS = max(peakRSS, s.rssKiB)
	}
	base, took := median(pipes), median(runs)
	res.add("COPY TO STDOUT | COPY FROM STDIN (binary): %8.2fs %10.0f rows/s  (median of %v)", base.Seconds(), float64(rows)/base.Seconds(), rounded(pipes))
	res.add("datashift run (parallelism %d):              %8.2fs %10.0f rows/s  (median of %v)", benchParallelism(), took.Seconds(), float64(rows)/took.Seconds(), rounded(runs))
	res.add("ratio datashift/COPY pipe (rows/s):           %8.2f   (target >= 1.0)", base.Seconds()/took.Seconds())
	res.add("datashift peak RSS:                           %8.1f MiB (target <= 128 MiB)", float64(peakRSS)/1024)
	res.add("planning (datashift plan, whole process):     %8.2fs = %.1f%% of the copy", planTime.Seconds(), 100*planTime.Seconds()/took.Seconds())
	res.add("plan: %s", firstLines(string(plan), 2))

	want, err := engine.TableChecksum(context.Background(), "postgres", connectors.SourceConfig{DSN: src, Table: "bench_src"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	got, err := engine.TableChecksum(context.Background(), "postgres", connectors.SourceConfig{DSN: dst, Table: "bench_dst"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if got != want {
		b.Fatalf("sink %v, source %v", got, want)
	}
	res.add("verified: sink = source (%v)", got)
	res.write(b)
}

// BenchmarkPostgresConnector measures the connector alone, one stream each
// way, next to the COPY pipe on the same table: Source.Read into nothing,
// and Writer from batches held in memory.
func BenchmarkPostgresConnector(b *testing.B) {
	rows := min(benchRows(), 2_000_000)
	src := benchDatabase(b, "datashift_bench_src")
	dst := benchDatabase(b, "datashift_bench_dst")
	ensureSource(b, src, benchRows())
	res := &result{name: "postgres_connector"}
	ctx := context.Background()

	pgExec(b, dst, `DROP TABLE IF EXISTS conn_dst`, `CREATE TABLE conn_dst `+benchDDL)
	pgExec(b, src, `DROP TABLE IF EXISTS bench_part`, fmt.Sprintf(`CREATE TABLE bench_part AS SELECT * FROM bench_src WHERE id <= %d`, rows))
	script := fmt.Sprintf(`psql -X -q %q -c "COPY bench_part TO STDOUT (FORMAT binary)" | psql -X -q %q -c "COPY conn_dst FROM STDIN (FORMAT binary)"`, src, dst)
	start := time.Now()
	if out, err := exec.Command("bash", "-o", "pipefail", "-c", script).CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	pipe := time.Since(start)
	res.add("%d rows, one stream each way", rows)
	res.add("COPY pipe (binary):       %8.2fs %10.0f rows/s", pipe.Seconds(), float64(rows)/pipe.Seconds())

	source, err := connectors.OpenSource(ctx, "postgres", connectors.SourceConfig{DSN: src, Table: "bench_part", Key: []string{"id"}})
	if err != nil {
		b.Fatal(err)
	}
	defer source.Close()
	var batches []arrow.RecordBatch
	start = time.Now()
	var n int64
	err = source.Read(ctx, connectors.Range{}, func(rec arrow.RecordBatch) error {
		n += rec.NumRows()
		rec.Retain()
		batches = append(batches, rec)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	read := time.Since(start)
	res.add("postgres Source.Read:     %8.2fs %10.0f rows/s", read.Seconds(), float64(n)/read.Seconds())

	pgExec(b, dst, `TRUNCATE conn_dst`)
	sink, err := connectors.OpenSink(ctx, "postgres", connectors.SinkConfig{DSN: dst, Table: "conn_dst", Mode: connectors.Append, Key: []string{"id"}})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	if err := sink.Prepare(ctx, batches[0].Schema(), false); err != nil {
		b.Fatal(err)
	}
	spec := connectors.WriterSpec{Job: "bench", Run: "bench", Partition: "bench", Lease: 1, Schema: batches[0].Schema()}
	rec, err := sink.(connectors.CommitLog).Claim(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	w, err := sink.OpenWriter(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	for _, rec := range batches {
		if err := w.Write(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	rec.Rows, rec.Commits, rec.Done = int64(n), 1, true
	if err := w.Commit(ctx, rec); err != nil {
		b.Fatal(err)
	}
	write := time.Since(start)
	w.Close()
	for _, rec := range batches {
		rec.Release()
	}
	res.add("postgres Writer:          %8.2fs %10.0f rows/s", write.Seconds(), float64(n)/write.Seconds())
	res.write(b)
}

// benchRepeats is how many times each side runs (DATASHIFT_BENCH_REPEATS, default 3).
func benchRepeats() int { return envInt("DATASHIFT_BENCH_REPEATS", 3) }

// benchParallelism is datashift's partitions at once (DATASHIFT_BENCH_PARALLELISM, default the core count).
func benchParallelism() int { return envInt("DATASHIFT_BENCH_PARALLELISM", nproc()) }

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func rounded(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%.1fs", d.Seconds())
	}
	return out
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}
