package benchmarks

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// The pair benchmarks copy one orders-like table between two stores with
// the tool people would otherwise use (the baseline, a pipe of the stores'
// own clients), with the dedicated tool for that pair when there is one
// (the peer), and with `datashift run`, alternating them, and write one
// table of results to benchmarks/results/pairs.md.

// pairTable is the source table of every pair, in both source stores.
const pairTable = "pair_src"

// pairNote is the note column's recipe: NULL one row in ten, unicode (up
// to four-byte characters) one in seven, and one in a thousand holding
// every character a text format must escape, so the pipes' escaping is
// checked, not assumed.
const (
	pairNotePG = `CASE WHEN g %% 10 = 0 THEN NULL
		WHEN g %% 1000 = 1 THEN E'tab\there, back\\slash \\N, line\nbreak, return\r, ''quoted'' NULL ' || g
		WHEN g %% 7 = 0 THEN 'commande n° ' || g || ' — café crème ☕ 日本語のメモ 🚀'
		ELSE 'order note ' || md5(g::text) END`
	pairNoteMaria = `CASE WHEN seq %% 10 = 0 THEN NULL
		WHEN seq %% 1000 = 1 THEN CONCAT('tab\there, back\\slash \\N, line\nbreak, return\r, ''quoted'' NULL ', seq)
		WHEN seq %% 7 = 0 THEN CONCAT('commande n° ', seq, ' — café crème ☕ 日本語のメモ 🚀')
		ELSE CONCAT('order note ', MD5(seq)) END`
)

// pairDDLMaria is benchDDL in MariaDB's words. created is marked as
// holding UTC instants (datashift's mark for a timestamptz in MariaDB), so
// the copy of a timestamptz compares as one.
const pairDDLMaria = `(id BIGINT PRIMARY KEY, customer_id INT NOT NULL, status VARCHAR(16) NOT NULL,
	amount DECIMAL(12,2), created DATETIME(6) NOT NULL COMMENT 'datashift:timestamptz', note TEXT)
	CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`

// pairSourcePG builds pair_src in PostgreSQL with n rows, unless it is
// there already.
func pairSourcePG(b *testing.B, dsn string, n int64) {
	b.Helper()
	var have int64 = -1
	if conn, err := pgx.Connect(context.Background(), dsn); err == nil {
		_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM `+pairTable).Scan(&have)
		conn.Close(context.Background())
	}
	if have == n {
		return
	}
	start := time.Now()
	pgExec(b, dsn, `DROP TABLE IF EXISTS `+pairTable, `CREATE TABLE `+pairTable+` `+benchDDL,
		fmt.Sprintf(`INSERT INTO `+pairTable+`
			SELECT g, (g * 7919) %% 100000,
			       (ARRAY['new','paid','shipped','returned'])[1 + g %% 4],
			       ((g * 37) %% 1000000) / 100.0,
			       timestamptz '2020-01-01 00:00:00+00' + g * interval '3 seconds',
			       `+pairNotePG+`
			FROM generate_series(1::bigint, %d) g`, n),
		`VACUUM ANALYZE `+pairTable)
	b.Logf("built PostgreSQL %s with %d rows in %s", pairTable, n, time.Since(start).Round(time.Second))
}

// pairSourceMaria builds pair_src in MariaDB's datashift_bench database
// with the same rows as pairSourcePG, unless it is there already, and
// returns the database's DSN. Its created column is a plain DATETIME, as
// a MariaDB application would have it.
func pairSourceMaria(b *testing.B, n int64) string {
	b.Helper()
	testenv.Need(b, "MariaDB", testenv.MySQLAddr())
	dsn := fmt.Sprintf("root@tcp(%s)/datashift_bench", testenv.MySQLAddr())
	admin, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/", testenv.MySQLAddr()))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	mariaExec(b, admin, "CREATE DATABASE IF NOT EXISTS datashift_bench")
	var have int64 = -1
	_ = admin.QueryRow("SELECT COUNT(*) FROM datashift_bench." + pairTable).Scan(&have)
	if have == n {
		return dsn
	}
	start := time.Now()
	mariaExec(b, admin, "DROP TABLE IF EXISTS datashift_bench."+pairTable,
		"CREATE TABLE datashift_bench."+pairTable+` (id BIGINT PRIMARY KEY, customer_id INT NOT NULL,
			status VARCHAR(16) NOT NULL, amount DECIMAL(12,2), created DATETIME(6) NOT NULL, note TEXT)
			CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`,
		fmt.Sprintf(`INSERT INTO datashift_bench.`+pairTable+`
			SELECT seq, (seq * 7919) %% 100000, ELT(1 + seq %% 4, 'new', 'paid', 'shipped', 'returned'),
			       ((seq * 37) %% 1000000) / 100.0, TIMESTAMP'2020-01-01 00:00:00' + INTERVAL seq * 3 SECOND,
			       `+pairNoteMaria+`
			FROM datashift_bench.seq_1_to_%d`, n),
		"ANALYZE TABLE datashift_bench."+pairTable)
	b.Logf("built MariaDB %s with %d rows in %s", pairTable, n, time.Since(start).Round(time.Second))
	return dsn
}

func mariaExec(b *testing.B, db *sql.DB, stmts ...string) {
	b.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			b.Fatalf("%s: %v", s, err)
		}
	}
}

// mariaClient is the mariadb command line reaching the test server.
func mariaClient(b *testing.B) string {
	host, port, err := net.SplitHostPort(testenv.MySQLAddr())
	if err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("mariadb --protocol=tcp -h %s -P %s -u root --default-character-set=utf8mb4", host, port)
}

// sample is one run of one side.
type sample struct {
	wall time.Duration
	// rssKiB is the peak RSS of the largest process the side ran (GNU
	// time's %M: wait4's ru_maxrss, which covers the children it waited
	// for), cpu the user+system time of all of them.
	rssKiB int64
	cpu    time.Duration
	// pgCPU and mariaCPU are what the servers spent meanwhile (0 when
	// their processes are not visible here).
	pgCPU, mariaCPU time.Duration
	// planShare is planning's share of a datashift run (its summary), NaN
	// for the other tools.
	planShare float64
}

// measure runs argv under GNU time and returns what it took and printed.
// GNU time forks the command itself, so the peak RSS is the command's and
// not this test process's (Go starts children sharing its memory until
// they exec, and Linux counts that memory in the child's peak).
func measure(b *testing.B, env []string, argv ...string) (sample, string) {
	b.Helper()
	stats := filepath.Join(b.TempDir(), "time")
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M %U %S", "-o", stats}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	pg0, maria0 := serverCPU()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	pg1, maria1 := serverCPU()
	if err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, tail(string(out), 40))
	}
	raw, err := os.ReadFile(stats)
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) != 3 {
		b.Fatalf("GNU time wrote %q", raw)
	}
	rss, _ := strconv.ParseInt(f[0], 10, 64)
	user, _ := strconv.ParseFloat(f[1], 64)
	sys, _ := strconv.ParseFloat(f[2], 64)
	return sample{
		wall: wall, rssKiB: rss, cpu: time.Duration((user + sys) * float64(time.Second)),
		pgCPU: pg1 - pg0, mariaCPU: maria1 - maria0, planShare: math.NaN(),
	}, string(out)
}

// shell runs a bash pipeline (pipefail) under measure.
func shell(b *testing.B, env []string, script string) sample {
	b.Helper()
	s, _ := measure(b, env, "bash", "-o", "pipefail", "-c", script)
	return s
}

var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if n, err2 := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && err2 == nil && n > 0 {
		return n
	}
	return 100
}()

// pgcopydbFilters writes a pgcopydb filters file that takes table alone.
func pgcopydbFilters(b *testing.B, table string) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "filters.ini")
	if err := os.WriteFile(path, []byte("[include-only-table]\npublic."+table+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// serverCPU returns the CPU time PostgreSQL and MariaDB have used so far,
// from /proc: every live postgres process plus what the postmaster has
// reaped of its exited backends, and mariadbd. The servers are shared, so
// this is what they did for everyone meanwhile.
func serverCPU() (pg, maria time.Duration) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		if name != "postgres" && name != "mariadbd" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		// Fields after the parenthesised name: state ppid ... utime(14) stime(15) cutime(16) cstime(17).
		f := procStat(pid)
		if len(f) < 15 {
			continue
		}
		ticks := func(i int) float64 { v, _ := strconv.ParseFloat(f[i-3], 64); return v }
		used := ticks(14) + ticks(15)
		if name == "postgres" && !isPostgres(f[1]) {
			used += ticks(16) + ticks(17) // the postmaster: its reaped backends
		}
		cpu := time.Duration(used / clockTicks * float64(time.Second))
		if name == "postgres" {
			pg += cpu
		} else {
			maria += cpu
		}
	}
	return pg, maria
}

func isPostgres(pid string) bool {
	comm, _ := os.ReadFile("/proc/" + pid + "/comm")
	return strings.TrimSpace(string(comm)) == "postgres"
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// side is one way of copying a pair's table.
type side struct {
	role string // "baseline", "peer" or "datashift"
	tool string // what it is, for the table
	how  string // how it ran, for the notes under the table
	run  func(b *testing.B, i int) sample
	// reset, if set, readies the sink for this side instead of the pair's.
	reset func(b *testing.B)
}

// pair is one source and sink store, and the ways compared.
type pair struct {
	name  string
	rows  int64
	reset func(b *testing.B) // recreates the empty sink
	sink  func(b *testing.B) connectors.Checksum
	want  connectors.Checksum
	sides []side
	notes []string
}

// datashiftSide is `datashift run` of a job with the given source and sink.
func datashiftSide(b *testing.B, bin, name, source, sink string, rows int64) side {
	return datashiftJobSide(b, bin, name, source, sink, "", rows)
}

// datashiftJobSide is datashiftSide with more of the job's spec (extra).
func datashiftJobSide(b *testing.B, bin, name, source, sink, extra string, rows int64) side {
	b.Helper()
	dir := b.TempDir()
	job := filepath.Join(dir, "job.yaml")
	spec := fmt.Sprintf("name: %s\nsource: %s\nsink: %s\npartitions: {target_rows: %d, max: 16}\nparallelism: %d\n%s",
		name, source, sink, max(rows/8, 1), benchParallelism(), extra)
	if err := os.WriteFile(job, []byte(spec), 0o644); err != nil {
		b.Fatal(err)
	}
	return side{
		role: "datashift", tool: "datashift run",
		how: fmt.Sprintf("`datashift run` (parallelism %d, partitions of ~%d rows)", benchParallelism(), max(rows/8, 1)),
		run: func(b *testing.B, i int) sample {
			s, out := measure(b, nil, bin, "run", job, "--state", filepath.Join(dir, fmt.Sprintf("state-%d", i)), "-q")
			if !strings.Contains(out, fmt.Sprintf("succeeded: %d rows", rows)) {
				b.Fatalf("datashift run did not copy %d rows:\n%s", rows, out)
			}
			m := summaryLine.FindStringSubmatch(out)
			if m == nil {
				b.Fatalf("no planning time in the summary:\n%s", out)
			}
			plan, err1 := time.ParseDuration(m[1])
			copied, err2 := time.ParseDuration(m[3])
			if err1 != nil || err2 != nil {
				b.Fatalf("summary %q: %v %v", m[0], err1, err2)
			}
			s.planShare = plan.Seconds() / (plan + copied).Seconds()
			return s
		},
	}
}

// pairRow is one line of the results table.
type pairRow struct {
	pair, role, tool string
	runs             []time.Duration
	rowsPerSec       float64
	mbPerSec         float64
	vsBaseline       float64 // rows/s over the baseline's; NaN without one
	vsPeer           float64 // datashift's rows/s over the peer's; NaN otherwise
	rssKiB           int64
	cpu, pgCPU       time.Duration
	mariaCPU         time.Duration
	planShare        float64
	verified         connectors.Checksum
}

// pairSection is what one pair benchmark adds to the results file.
type pairSection struct {
	name  string
	rows  []pairRow
	notes []string
}

// pairResults gathers the sections of this process's run, in run order:
// each pair benchmark adds its own and rewrites the file, so a full run
// leaves one file of every pair measured together.
var pairResults []pairSection

// runPair runs every side of p benchRepeats times, the sides taking turns
// (the first side moves each round, so none always runs on a machine the
// previous one just warmed), verifies the sink after every run, and
// records the medians.
func runPair(b *testing.B, p pair) {
	b.Helper()
	samples := make([][]sample, len(p.sides))
	for i := 0; i < benchRepeats(); i++ {
		for k := range p.sides {
			j := (i + k) % len(p.sides)
			s := p.sides[j]
			if s.reset != nil {
				s.reset(b)
			} else {
				p.reset(b)
			}
			m := s.run(b, i)
			if got := p.sink(b); got != p.want {
				b.Fatalf("%s, %s, run %d: the sink holds %v, the source %v", p.name, s.tool, i+1, got, p.want)
			}
			samples[j] = append(samples[j], m)
		}
	}
	bytes := textBytes(b)
	sec := pairSection{name: p.name, notes: p.notes}
	walls := make([]time.Duration, len(p.sides))
	for j := range p.sides {
		walls[j] = median(pluck(samples[j], func(s sample) time.Duration { return s.wall }))
	}
	of := func(role string) time.Duration {
		for j, s := range p.sides {
			if s.role == role {
				return walls[j]
			}
		}
		return 0
	}
	base, peer := of("baseline"), of("peer")
	for j, s := range p.sides {
		row := pairRow{
			pair: p.name, role: s.role, tool: s.tool,
			runs:       pluck(samples[j], func(s sample) time.Duration { return s.wall }),
			rowsPerSec: float64(p.rows) / walls[j].Seconds(),
			mbPerSec:   float64(bytes) / 1e6 / walls[j].Seconds(),
			vsBaseline: math.NaN(), vsPeer: math.NaN(), planShare: math.NaN(),
			cpu:      median(pluck(samples[j], func(s sample) time.Duration { return s.cpu })),
			pgCPU:    median(pluck(samples[j], func(s sample) time.Duration { return s.pgCPU })),
			mariaCPU: median(pluck(samples[j], func(s sample) time.Duration { return s.mariaCPU })),
			verified: p.want,
		}
		for _, m := range samples[j] {
			row.rssKiB = max(row.rssKiB, m.rssKiB)
		}
		if base > 0 {
			row.vsBaseline = base.Seconds() / walls[j].Seconds()
		}
		if peer > 0 && s.role == "datashift" {
			row.vsPeer = peer.Seconds() / walls[j].Seconds()
		}
		if s.role == "datashift" {
			shares := make([]float64, 0, len(samples[j]))
			for _, m := range samples[j] {
				shares = append(shares, m.planShare)
			}
			slices.Sort(shares)
			row.planShare = shares[len(shares)/2]
		}
		sec.rows = append(sec.rows, row)
		sec.notes = append(sec.notes, fmt.Sprintf("%s: %s; runs %v", s.tool, s.how, rounded(row.runs)))
		fmt.Printf("%-26s %-16s %7.2fs %9.0f rows/s %6.1f MB/s  ×baseline %s  ×peer %s  RSS %6.1f MiB  CPU %5.1fs  planning %s\n",
			p.name, s.tool, walls[j].Seconds(), row.rowsPerSec, row.mbPerSec, ratio(row.vsBaseline), ratio(row.vsPeer),
			float64(row.rssKiB)/1024, row.cpu.Seconds(), percent(row.planShare))
	}
	pairResults = slices.DeleteFunc(pairResults, func(s pairSection) bool { return s.name == p.name })
	pairResults = append(pairResults, sec)
	writePairs(b, p.rows)
}

func pluck[T any](s []sample, f func(sample) T) []T {
	out := make([]T, len(s))
	for i, x := range s {
		out[i] = f(x)
	}
	return out
}

func ratio(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.2f", x)
}

func percent(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.1f %%", 100*x)
}

// textBytesCache is textBytes' answer, measured once per process.
var textBytesCache int64

// textBytes is the size of pair_src in PostgreSQL's text COPY format: the
// data volume MB/s is counted in, the same for every pair.
func textBytes(b *testing.B) int64 {
	b.Helper()
	if textBytesCache > 0 {
		return textBytesCache
	}
	src := benchDatabase(b, "datashift_bench_src")
	out, err := exec.Command("bash", "-o", "pipefail", "-c",
		fmt.Sprintf(`psql -X -q %q -c "COPY %s TO STDOUT" | wc -c`, src, pairTable)).Output()
	if err != nil {
		b.Fatalf("size of %s: %v", pairTable, err)
	}
	textBytesCache, err = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return textBytesCache
}

// writePairs rewrites results/pairs.md from this run's sections.
func writePairs(b *testing.B, rows int64) {
	b.Helper()
	var w strings.Builder
	fmt.Fprintf(&w, "# datashift beside the usual tools, pair by pair\n\n")
	fmt.Fprintf(&w, "Measured %s by `BenchmarkPair*` (benchmarks/pairs_test.go; `make bench`, or `make bench BENCH=Pair` for these alone).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "- datashift %s; Go %s\n", datashiftVersion(), runtime.Version())
	fmt.Fprintf(&w, "- Machine: %s\n", machineInfo(b))
	if note := os.Getenv("DATASHIFT_BENCH_NOTE"); note != "" {
		fmt.Fprintf(&w, "- Note: %s\n", note)
	}
	fmt.Fprintf(&w, "- Table: %d rows, %.1f MB as PostgreSQL text COPY (the MB of MB/s): `%s`; note is NULL in one row in ten, "+
		"unicode in one in seven, and tab, newline, carriage return, backslash and `\\N` in one in a thousand.\n",
		rows, float64(textBytes(b))/1e6, strings.Join(strings.Fields(benchDDL), " "))
	fmt.Fprintf(&w, "- Method: each side ran %d times, taking turns with the others; the table shows the median wall time "+
		"(process start to exit). Every sink was checked against its source after every run, row count and checksum "+
		"of every column (engine.TableChecksum); a mismatch fails the benchmark.\n", benchRepeats())
	fmt.Fprintf(&w, "- Columns: × baseline and × peer are rows/s over theirs (above 1 is faster). Peak RSS is the largest "+
		"process the side ran; CPU is the user+system time of the side's own processes, PostgreSQL and MariaDB the "+
		"servers' CPU meanwhile (medians; the servers are shared, so these include anything else they did). "+
		"Planning is the share of the run `datashift run` reports as planning.\n\n")
	fmt.Fprintf(&w, "| Pair | Tool | Median | Rows/s | MB/s | × baseline | × peer | Peak RSS | CPU | PostgreSQL CPU | MariaDB CPU | Planning |\n")
	fmt.Fprintf(&w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sec := range pairResults {
		for _, r := range sec.rows {
			tool := r.tool
			if r.role != "datashift" {
				tool = fmt.Sprintf("%s (%s)", r.tool, r.role)
			}
			fmt.Fprintf(&w, "| %s | %s | %.2f s | %.0f | %.1f | %s | %s | %.0f MiB | %.1f s | %.1f s | %.1f s | %s |\n",
				r.pair, tool, median(r.runs).Seconds(), r.rowsPerSec, r.mbPerSec, ratio(r.vsBaseline), ratio(r.vsPeer),
				float64(r.rssKiB)/1024, r.cpu.Seconds(), r.pgCPU.Seconds(), r.mariaCPU.Seconds(), percent(r.planShare))
		}
	}
	for _, sec := range pairResults {
		fmt.Fprintf(&w, "\n## %s\n\n", sec.name)
		if len(sec.rows) > 0 {
			fmt.Fprintf(&w, "Every sink verified: %v.\n\n", sec.rows[0].verified)
		}
		for _, n := range sec.notes {
			fmt.Fprintf(&w, "- %s\n", n)
		}
	}
	if err := os.MkdirAll("results", 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("results", "pairs.md"), []byte(w.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

// machineInfo says what the numbers were measured on.
func machineInfo(b *testing.B) string {
	b.Helper()
	model, memKiB := "", int64(0)
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindSubmatch(raw); m != nil {
			memKiB, _ = strconv.ParseInt(string(m[1]), 10, 64)
		}
	}
	if startLoad == "" {
		startLoad = loadAverage()
	}
	var pgVersion, mariaVersion string
	if conn, err := pgx.Connect(context.Background(), benchDatabase(b, "datashift_bench_src")); err == nil {
		_ = conn.QueryRow(context.Background(), `SHOW server_version`).Scan(&pgVersion)
		conn.Close(context.Background())
	}
	if db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/", testenv.MySQLAddr())); err == nil {
		_ = db.QueryRow(`SELECT VERSION()`).Scan(&mariaVersion)
		db.Close()
	}
	return fmt.Sprintf("%d cores (%s), %.1f GiB memory, PostgreSQL %s and MariaDB %s on the same machine; "+
		"load average (1, 5, 15 min) %s after the first pair, %s after the last",
		nproc(), model, float64(memKiB)/(1<<20), pgVersion, mariaVersion, startLoad, loadAverage())
}

// packageVersion is the installed Debian package's version (what
// scripts/bench-tools.sh installed), or "(version unknown)".
func packageVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil || len(out) == 0 {
		return "(version unknown)"
	}
	return "(Debian package " + string(out) + ")"
}

// datashiftVersion is the commit measured, and whether files other than
// the results (which this run rewrites) differed from it.
func datashiftVersion() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "(commit unknown)"
	}
	v := "at commit " + strings.TrimSpace(string(out))
	changed, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", "..", ":(exclude)results").Output()
	if err == nil && len(changed) > 0 {
		v += " with uncommitted changes"
	}
	return v
}

// startLoad is the load average when the first pair finished: with the
// last one's, it tells whether the machine was busy with other work.
var startLoad string

func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(raw)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// pgSink is a PostgreSQL sink table recreated empty (with its primary key)
// before every run.
func pgSink(dsn, table string) (reset func(*testing.B), sum func(*testing.B) connectors.Checksum) {
	reset = func(b *testing.B) {
		pgExec(b, dsn, `DROP TABLE IF EXISTS `+table, `CREATE TABLE `+table+` `+benchDDL, `CHECKPOINT`)
	}
	return reset, func(b *testing.B) connectors.Checksum {
		return checksum(b, "postgres", connectors.SourceConfig{DSN: dsn, Table: table})
	}
}

func checksum(b *testing.B, typ string, cfg connectors.SourceConfig) connectors.Checksum {
	b.Helper()
	sum, err := engine.TableChecksum(context.Background(), typ, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	return sum
}

// BenchmarkPairPostgresToPostgres: the binary COPY pipe, pgcopydb and
// datashift into a table with a primary key (datashift twice: by default,
// and keeping the key up to date with keep_indexes); and datashift into a
// database without the table, which the sink makes and keys after the
// rows are in.
func BenchmarkPairPostgresToPostgres(b *testing.B) {
	rows := benchRows()
	src := benchDatabase(b, "datashift_bench_src")
	dst := benchDatabase(b, "datashift_bench_dst")
	pairSourcePG(b, src, rows)
	bin := buildBinary(b)
	// pgcopydb copies into the table of the same name.
	reset, sum := pgSink(dst, pairTable)
	// Every side ends with the same table: its rows and its primary key,
	// made beforehand or, by the last side, after the rows are in.
	sink := func(b *testing.B) connectors.Checksum {
		pgHasPrimaryKey(b, dst, pairTable)
		return sum(b)
	}
	env := []string{"SRC=" + src, "DST=" + dst}
	filters := pgcopydbFilters(b, pairTable)
	work := b.TempDir()
	// The same copy into a database without the table: the sink makes it,
	// loads it bare and adds the primary key once the rows are in.
	created := datashiftJobSide(b, bin, "bench-pair-pg-pg-created",
		fmt.Sprintf("{type: postgres, dsn: %q, table: %s, key: [id]}", src, pairTable),
		fmt.Sprintf("{type: postgres, dsn: %q, table: %s, mode: append, create_table: true}", dst, pairTable), "", rows)
	created.tool = "datashift run, making the table"
	created.how = strings.Replace(created.how, "`datashift run`", "`datashift run` with `create_table: true` into a database without the table", 1)
	created.reset = func(b *testing.B) { pgExec(b, dst, `DROP TABLE IF EXISTS `+pairTable, `CHECKPOINT`) }
	// Into the table made beforehand, which the run finds empty: the sink
	// drops its primary key, loads it bare and builds the key again once
	// the rows are in; and, with keep_indexes, keeps the key up to date
	// row by row, as the pipe does.
	existing := datashiftSide(b, bin, "bench-pair-pg-pg",
		fmt.Sprintf("{type: postgres, dsn: %q, table: %s, key: [id]}", src, pairTable),
		fmt.Sprintf("{type: postgres, dsn: %q, table: %s, mode: append}", dst, pairTable), rows)
	existing.how += "; the table, empty when the run begins, loads without its primary key, built again once the rows are in (the default)"
	kept := datashiftSide(b, bin, "bench-pair-pg-pg-kept",
		fmt.Sprintf("{type: postgres, dsn: %q, table: %s, key: [id]}", src, pairTable),
		fmt.Sprintf("{type: postgres, dsn: %q, table: %s, mode: append, options: {keep_indexes: \"true\"}}", dst, pairTable), rows)
	kept.tool = "datashift run, keep_indexes"
	kept.how += "; sink option `keep_indexes: true`: the primary key kept up to date row by row, as the pipe does"
	p := pair{
		name: "PostgreSQL → PostgreSQL", rows: rows, reset: reset, sink: sink,
		want: checksum(b, "postgres", connectors.SourceConfig{DSN: src, Table: pairTable}),
		sides: []side{{
			role: "baseline", tool: "COPY pipe",
			how: "`psql -c \"COPY pair_src TO STDOUT (FORMAT binary)\" | psql -c \"COPY pair_src FROM STDIN (FORMAT binary)\"`",
			run: func(b *testing.B, i int) sample {
				return shell(b, env, `psql -X -q "$SRC" -c "COPY `+pairTable+` TO STDOUT (FORMAT binary)" | psql -X -q "$DST" -c "COPY `+pairTable+` FROM STDIN (FORMAT binary)"`)
			},
		}, {
			role: "peer", tool: "pgcopydb",
			how: fmt.Sprintf("`pgcopydb copy table-data --table-jobs %d --filters` (include-only-table public.pair_src); "+
				"pgcopydb %s; without --split-tables-larger-than (its help for copy table-data does not list it, "+
				"though it is accepted) one table is one COPY, and spot checks splitting pair_src in two were not faster here", benchParallelism(), packageVersion("pgcopydb")),
			run: func(b *testing.B, i int) sample {
				s, _ := measure(b, nil, "pgcopydb", "copy", "table-data", "--source", src, "--target", dst,
					"--table-jobs", strconv.Itoa(benchParallelism()), "--filters", filters,
					"--dir", filepath.Join(work, fmt.Sprintf("run-%d", i)))
				return s
			},
		},
			existing, kept, created},
	}
	runPair(b, p)
}

// pgHasPrimaryKey fails b unless table in dsn has a primary key.
func pgHasPrimaryKey(b *testing.B, dsn, table string) {
	b.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	var has bool
	if err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p')`, table).Scan(&has); err != nil || !has {
		b.Fatalf("the copy of %s has no primary key (%v)", table, err)
	}
}

// mariaTextColumn is a MariaDB expression giving a text column as a
// PostgreSQL text COPY field: backslash, tab, newline and carriage return
// escaped, NULL as \N. (mariadb --batch escapes some of these itself but
// prints NULL as the word NULL, so the baseline asks for --raw and escapes
// in SQL instead; and --quick, or the client holds the whole result in
// memory before it prints a row, 190 MB and a third slower at 1M rows.)
func mariaTextColumn(col string) string {
	return fmt.Sprintf(`COALESCE(REPLACE(REPLACE(REPLACE(REPLACE(%s, '\\', '\\\\'), '\t', '\\t'), '\n', '\\n'), '\r', '\\r'), '\\N')`, col)
}

// BenchmarkPairMariaDBToPostgres: the mariadb | psql text pipe, pgloader
// and datashift into the same PostgreSQL table.
func BenchmarkPairMariaDBToPostgres(b *testing.B) {
	rows := benchRows()
	maria := pairSourceMaria(b, rows)
	src := benchDatabase(b, "datashift_bench_src")
	dst := benchDatabase(b, "datashift_bench_dst")
	pairSourcePG(b, src, rows) // for the MB of MB/s
	bin := buildBinary(b)
	const target = "pair_from_mariadb"
	reset, sink := pgSink(dst, target)
	query := fmt.Sprintf(`SELECT id, customer_id, %s, COALESCE(amount, '\\N'), created, %s FROM %s`,
		mariaTextColumn("status"), mariaTextColumn("note"), pairTable)
	env := []string{"DST=" + dst, "QUERY=" + query, "PGTZ=UTC"}
	host, port, err := net.SplitHostPort(testenv.MySQLAddr())
	if err != nil {
		b.Fatal(err)
	}
	load := filepath.Join(b.TempDir(), "pair.load")
	dstURL := strings.Replace(dst, "?sslmode=disable", "", 1)
	if err := os.WriteFile(load, []byte(fmt.Sprintf(`LOAD DATABASE
  FROM mysql://root@%s:%s/datashift_bench
  INTO %s
WITH data only, workers = %d, concurrency = 1
INCLUDING ONLY TABLE NAMES MATCHING '%s'
ALTER SCHEMA 'datashift_bench' RENAME TO 'public'
ALTER TABLE NAMES MATCHING '%s' RENAME TO '%s';
`, host, port, dstURL, benchParallelism(), pairTable, pairTable, target)), 0o644); err != nil {
		b.Fatal(err)
	}
	work := b.TempDir()
	p := pair{
		name: "MariaDB → PostgreSQL", rows: rows, reset: reset, sink: sink,
		want: checksum(b, "mysql", connectors.SourceConfig{DSN: maria, Table: pairTable}),
		sides: []side{{
			role: "baseline", tool: "text pipe",
			how: "`mariadb --batch --raw --quick --skip-column-names -e 'SELECT …' | psql -c \"COPY pair_from_mariadb FROM STDIN\"`, " +
				"the SELECT escaping backslash, tab, newline and carriage return and writing NULL as \\N: `" + query + "`",
			run: func(b *testing.B, i int) sample {
				return shell(b, env, mariaClient(b)+` --batch --raw --quick --skip-column-names datashift_bench -e "$QUERY" | psql -X -q "$DST" -c "COPY `+target+` FROM STDIN"`)
			},
		}, {
			role: "peer", tool: "pgloader",
			how: fmt.Sprintf("pgloader %s, `WITH data only, workers = %d, concurrency = 1` into the same table", packageVersion("pgloader"), benchParallelism()),
			run: func(b *testing.B, i int) sample {
				s, out := measure(b, nil, "pgloader", "--root-dir", filepath.Join(work, fmt.Sprintf("run-%d", i)), load)
				if strings.Contains(out, "ERROR") || strings.Contains(out, "FATAL") {
					b.Fatalf("pgloader:\n%s", tail(out, 40))
				}
				return s
			},
		},
			datashiftSide(b, bin, "bench-pair-mariadb-pg",
				fmt.Sprintf("{type: mysql, dsn: %q, table: %s, key: [id]}", maria, pairTable),
				fmt.Sprintf("{type: postgres, dsn: %q, table: %s, mode: append}", dst, target), rows)},
	}
	runPair(b, p)
}

// BenchmarkPairPostgresToMariaDB: the psql | LOAD DATA pipe and datashift
// into the same MariaDB table; there is no dedicated tool for this way.
func BenchmarkPairPostgresToMariaDB(b *testing.B) {
	rows := benchRows()
	src := benchDatabase(b, "datashift_bench_src")
	pairSourcePG(b, src, rows)
	maria := pairSourceMaria(b, rows) // the datashift_bench database
	bin := buildBinary(b)
	const target = "pair_from_postgres"
	db, err := sql.Open("mysql", maria)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// COPY's text format and LOAD DATA's defaults agree on \N, tab,
	// newline, carriage return and backslash (not on \f and \v, which the
	// table does not hold); created goes as UTC wall-clock time.
	copyOut := fmt.Sprintf(`COPY (SELECT id, customer_id, status, amount, created AT TIME ZONE 'UTC', note FROM %s) TO STDOUT`, pairTable)
	loadData := fmt.Sprintf(`LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE %s CHARACTER SET utf8mb4`, target)
	env := []string{"SRC=" + src, "COPY_OUT=" + copyOut, "LOAD_DATA=" + loadData}
	p := pair{
		name: "PostgreSQL → MariaDB", rows: rows,
		reset: func(b *testing.B) {
			mariaExec(b, db, "DROP TABLE IF EXISTS "+target, "CREATE TABLE "+target+" "+pairDDLMaria)
		},
		sink: func(b *testing.B) connectors.Checksum {
			return checksum(b, "mysql", connectors.SourceConfig{DSN: maria, Table: target})
		},
		want: checksum(b, "postgres", connectors.SourceConfig{DSN: src, Table: pairTable}),
		sides: []side{{
			role: "baseline", tool: "LOAD DATA pipe",
			how: "`psql -c \"" + copyOut + "\" | mariadb --local-infile=1 -e \"" + loadData + "\"`",
			run: func(b *testing.B, i int) sample {
				return shell(b, env, `psql -X -q "$SRC" -c "$COPY_OUT" | `+mariaClient(b)+` --local-infile=1 datashift_bench -e "$LOAD_DATA"`)
			},
		},
			datashiftSide(b, bin, "bench-pair-pg-mariadb",
				fmt.Sprintf("{type: postgres, dsn: %q, table: %s, key: [id]}", src, pairTable),
				fmt.Sprintf("{type: mysql, dsn: %q, table: %s, mode: append}", maria, target), rows)},
		notes: []string{"Target DDL (all sides): `" + strings.Join(strings.Fields(pairDDLMaria), " ") + "`"},
	}
	runPair(b, p)
}

// BenchmarkPairPostgresToParquet: datashift alone (no tool of the pair to
// compare with), into a directory of Parquet files.
func BenchmarkPairPostgresToParquet(b *testing.B) {
	rows := benchRows()
	src := benchDatabase(b, "datashift_bench_src")
	pairSourcePG(b, src, rows)
	bin := buildBinary(b)
	dir := filepath.Join(b.TempDir(), "parquet")
	p := pair{
		name: "PostgreSQL → Parquet", rows: rows,
		reset: func(b *testing.B) {
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
		},
		sink: func(b *testing.B) connectors.Checksum {
			return checksum(b, "parquet", connectors.SourceConfig{DSN: dir})
		},
		want: checksum(b, "postgres", connectors.SourceConfig{DSN: src, Table: pairTable}),
		sides: []side{datashiftSide(b, bin, "bench-pair-pg-parquet",
			fmt.Sprintf("{type: postgres, dsn: %q, table: %s, key: [id]}", src, pairTable),
			fmt.Sprintf("{type: parquet, dsn: %q, mode: truncate}", dir), rows)},
		notes: []string{"No baseline: neither store's client writes Parquet."},
	}
	runPair(b, p)
}

// pairIndexed is pair_src with two secondary indexes besides its primary
// key, for the copy that makes the target table as well.
const pairIndexed = "pair_idx"

// pairIndexes are pairIndexed's secondary indexes, for a table named t.
func pairIndexes(t string) []string {
	return []string{
		`CREATE INDEX ` + t + `_customer ON ` + t + ` (customer_id)`,
		`CREATE INDEX ` + t + `_status ON ` + t + ` (status, created)`,
	}
}

// BenchmarkPairPostgresToPostgresIndexed: a table with a primary key and
// two secondary indexes, copied with its indexes into a database that has
// not got it. The binary COPY pipe loads a table made beforehand with the
// same indexes; pgcopydb clone and datashift (create_table) make the table,
// load it bare and build the indexes afterwards, in parallel; and datashift
// loads the pipe's table, dropping its indexes and building them again.
func BenchmarkPairPostgresToPostgresIndexed(b *testing.B) {
	rows := benchRows()
	src := benchDatabase(b, "datashift_bench_src")
	dst := benchDatabase(b, "datashift_bench_dst")
	pairSourcePG(b, src, rows)
	var have int64 = -1
	if conn, err := pgx.Connect(context.Background(), src); err == nil {
		_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM `+pairIndexed).Scan(&have)
		conn.Close(context.Background())
	}
	if have != rows {
		pgExec(b, src, append([]string{`DROP TABLE IF EXISTS ` + pairIndexed,
			`CREATE TABLE ` + pairIndexed + ` ` + benchDDL, `INSERT INTO ` + pairIndexed + ` SELECT * FROM ` + pairTable},
			append(pairIndexes(pairIndexed), `VACUUM ANALYZE `+pairIndexed)...)...)
	}
	bin := buildBinary(b)
	drop := func(b *testing.B) { pgExec(b, dst, `DROP TABLE IF EXISTS `+pairIndexed, `CHECKPOINT`) }
	made := func(b *testing.B) {
		pgExec(b, dst, append([]string{`DROP TABLE IF EXISTS ` + pairIndexed, `CREATE TABLE ` + pairIndexed + ` ` + benchDDL},
			append(pairIndexes(pairIndexed), `CHECKPOINT`)...)...)
	}
	// Every side ends with the same table: its rows, and three indexes.
	sink := func(b *testing.B) connectors.Checksum {
		var n int
		conn, err := pgx.Connect(context.Background(), dst)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(context.Background())
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_indexes WHERE tablename = $1`, pairIndexed).Scan(&n); err != nil || n != 3 {
			b.Fatalf("the copy of %s has %d indexes (%v), want 3", pairIndexed, n, err)
		}
		return checksum(b, "postgres", connectors.SourceConfig{DSN: dst, Table: pairIndexed})
	}
	env := []string{"SRC=" + src, "DST=" + dst}
	filters := pgcopydbFilters(b, pairIndexed)
	work := b.TempDir()
	// The pipe's target: the table made beforehand with its indexes, which
	// the run finds empty, drops them, and builds them again at its end.
	into := datashiftSide(b, bin, "bench-pair-pg-pg-indexed-into",
		fmt.Sprintf("{type: postgres, dsn: %q, table: %s, key: [id]}", src, pairIndexed),
		fmt.Sprintf("{type: postgres, dsn: %q, table: %s, mode: append}", dst, pairIndexed), rows)
	into.tool, into.reset = "datashift run, into the table made beforehand", made
	into.how += " into the pipe's target, made beforehand with its primary key and indexes; empty when the run begins, it loads without them, built again once the rows are in"
	p := pair{
		name: "PostgreSQL → PostgreSQL, with indexes", rows: rows, reset: drop, sink: sink,
		want: checksum(b, "postgres", connectors.SourceConfig{DSN: src, Table: pairIndexed}),
		sides: []side{{
			role: "baseline", tool: "COPY pipe", reset: made,
			how: "`psql -c \"COPY pair_idx TO STDOUT (FORMAT binary)\" | psql -c \"COPY pair_idx FROM STDIN (FORMAT binary)\"` into the table made beforehand with its primary key and indexes",
			run: func(b *testing.B, i int) sample {
				return shell(b, env, `psql -X -q "$SRC" -c "COPY `+pairIndexed+` TO STDOUT (FORMAT binary)" | psql -X -q "$DST" -c "COPY `+pairIndexed+` FROM STDIN (FORMAT binary)"`)
			},
		}, {
			role: "peer", tool: "pgcopydb clone",
			how: fmt.Sprintf("`pgcopydb clone --table-jobs %d --index-jobs %d --filters` (include-only-table public.pair_idx): "+
				"the table's schema, its rows, then its indexes in parallel; pgcopydb %s", benchParallelism(), benchParallelism(), packageVersion("pgcopydb")),
			run: func(b *testing.B, i int) sample {
				s, _ := measure(b, nil, "pgcopydb", "clone", "--source", src, "--target", dst,
					"--table-jobs", strconv.Itoa(benchParallelism()), "--index-jobs", strconv.Itoa(benchParallelism()),
					"--filters", filters, "--no-owner", "--no-acl",
					"--dir", filepath.Join(work, fmt.Sprintf("run-%d", i)))
				return s
			},
		},
			datashiftJobSide(b, bin, "bench-pair-pg-pg-indexed",
				fmt.Sprintf("{type: postgres, dsn: %q, table: %s, key: [id]}", src, pairIndexed),
				fmt.Sprintf("{type: postgres, dsn: %q, table: %s, mode: append, create_table: true}", dst, pairIndexed), "", rows),
			into},
	}
	runPair(b, p)
}
