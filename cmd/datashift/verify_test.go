package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// verify passes an exact PostgreSQL → MariaDB copy (types that change on
// the way included) and, after one value is changed in the sink, names the
// one partition holding it, with its bounds, and exits 1.
func TestVerifyFindsOneChangedRow(t *testing.T) {
	pg, my := testenv.Postgres(t), testenv.MySQL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE orders AS
		SELECT i::bigint AS id, 'customer ' || (i % 977) AS customer, (i * 7 % 100000) / 100.0::numeric(12,2) AS amount,
		       timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute' AS created, (i % 3 = 0) AS paid,
		       jsonb_build_object('n', i, 'tags', jsonb_build_array('a', 'b')) AS meta,
		       CASE WHEN i % 10 = 0 THEN NULL ELSE date '2026-01-01' + (i % 365) END AS due
		FROM generate_series(1, 20000) AS i;
		ALTER TABLE orders ADD PRIMARY KEY (id); ANALYZE orders`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	job := writeFile(t, dir, "job.yaml", fmt.Sprintf(`name: verify
source: {type: postgres, dsn: %q, table: orders, key: [id]}
sink: {type: mysql, dsn: %q, table: orders, mode: truncate, create_table: true}
partitions: {target_rows: 4000}
`, pg, my))
	if out, err := datashift(t, "run", job, "-q", "--state", filepath.Join(dir, "state")); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	out, err := datashift(t, "verify", job)
	if err != nil || !regexp.MustCompile(`job verify: the sink equals the source: \d+ partitions checked, 20000 source rows, 20000 sink rows, verified in \S+\n$`).MatchString(out) {
		t.Fatalf("verify of an exact copy: %v\n%s", err, out)
	}
	t.Logf("exact copy:\n%s", out)

	db, err := sql.Open("mysql", my)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE orders SET amount = amount + 0.01 WHERE id = 12345`); err != nil {
		t.Fatal(err)
	}
	out, err = datashift(t, "verify", job)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), `job "verify": the sink differs from the source in 1 of `) {
		t.Fatalf("verify of a changed row: exit %d, %v\n%s", exitCode(err), err, out)
	}
	t.Logf("one row changed:\n%s", out)
	differs := regexp.MustCompile(`(?m)^  (p\d{4}) +(\[.*\)) +differs: source 4?\d{3} rows, sum [0-9a-f]{16}, sink 4?\d{3} rows, sum [0-9a-f]{16}$`).FindAllStringSubmatch(out, -1)
	if len(differs) != 1 {
		t.Fatalf("want one partition named as differing:\n%s", out)
	}

	// The partition named is the one whose bounds hold the changed key,
	// and --json says the same.
	out, err = datashift(t, "verify", "--json", job)
	if exitCode(err) != 1 {
		t.Fatalf("verify --json exits %d: %v", exitCode(err), err)
	}
	var v engine.Verification
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &v); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	var named []string
	for _, p := range v.Partitions {
		if p.Differs {
			named = append(named, p.ID)
			if !p.Range.Contains(connectors.Key{int64(12345)}) || p.Range.String() != differs[0][2] || p.ID != differs[0][1] {
				t.Errorf("partition %s %s differs; it does not hold id 12345 or is not the one printed (%s %s)", p.ID, p.Range, differs[0][1], differs[0][2])
			}
			if p.Source.Rows != p.Sink.Rows || p.Source.Sum == p.Sink.Sum {
				t.Errorf("partition %s: same count, another sum expected: source %v, sink %v", p.ID, p.Source, p.Sink)
			}
		}
	}
	if len(named) != 1 || len(v.Partitions) < 5 {
		t.Fatalf("want 1 of at least 5 partitions differing, got %v of %d", named, len(v.Partitions))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A Parquet or CSV sink has no key order to read ranges by: verify reads
// its files once, summing each row into its key's partition, and names the
// partition a changed row is in; a sink that cannot be read back is
// refused as a spec mistake.
func TestVerifyFileSinkByPartitionAndRedisRefused(t *testing.T) {
	dir, job := demoJob(t, 10000, "")
	if out, err := datashift(t, "run", job, "-q", "--state", filepath.Join(dir, "state")); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	out, err := datashift(t, "verify", job)
	if err != nil || !strings.Contains(out, "job cli: 5 partitions, scheme key-range, parallelism 4\n") ||
		!strings.Contains(out, "; the parquet sink's files are read once, each row summed into its key's partition\n") ||
		!strings.Contains(out, "job cli: the sink equals the source: 5 partitions checked, 10000 source rows, 10000 sink rows") {
		t.Fatalf("verify of a Parquet copy: %v\n%s", err, out)
	}
	// A CSV sink reads back with the options both sides take (the
	// delimiter) and its numeric column as floats: equal all the same.
	spec := strings.Replace(readFile(t, job), "sink: {type: parquet", "sink: {type: csv, options: {delimiter: tab}", 1)
	csvDir := filepath.Join(dir, "csv")
	csv := writeFile(t, dir, "csv.yaml", strings.Replace(spec, filepath.Join(dir, "out")+",", csvDir+",", 1))
	if out, err := datashift(t, "run", csv, "-q", "--state", filepath.Join(dir, "state")); err != nil {
		t.Fatalf("run to CSV: %v\n%s", err, out)
	}
	if out, err := datashift(t, "verify", csv); err != nil || !strings.Contains(out, "the csv sink's files are read once") || !strings.Contains(out, "the sink equals the source: 5 partitions checked, 10000 source rows, 10000 sink rows") {
		t.Fatalf("verify of a CSV copy: %v\n%s", err, out)
	}
	// One value of row 7777 changed in the CSV files: the partition that
	// holds key 7777 differs, and only it.
	files, err := filepath.Glob(filepath.Join(csvDir, "*.csv"))
	if err != nil || len(files) == 0 {
		t.Fatalf("the CSV sink's files: %v, %v", files, err)
	}
	changed := 0
	for _, f := range files {
		lines := strings.Split(readFile(t, f), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "7777\t") {
				cells := strings.Split(l, "\t")
				cells[1] += "x"
				lines[i] = strings.Join(cells, "\t")
				changed++
			}
		}
		writeFile(t, filepath.Dir(f), filepath.Base(f), strings.Join(lines, "\n"))
	}
	if changed != 1 {
		t.Fatalf("row 7777 found %d times in the CSV files", changed)
	}
	out, err = datashift(t, "verify", csv)
	if err == nil || exitCode(err) != 1 || strings.Count(out, "differs: source") != 1 || !strings.Contains(out, "1 of 5 partitions differ") {
		t.Fatalf("verify of a CSV copy with a changed row: %v (exit %d)\n%s", err, exitCode(err), out)
	}
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, "differs: source") {
			continue
		}
		var lo, hi string
		if _, err := fmt.Sscanf(l[strings.Index(l, "[")+1:], "%s %s", &lo, &hi); err != nil {
			t.Fatalf("the differing partition's bounds in %q: %v", l, err)
		}
		lo, hi = strings.TrimSuffix(lo, ","), strings.TrimSuffix(hi, ")")
		n, _ := strconv.Atoi(lo)
		m, err := strconv.Atoi(hi)
		if err != nil {
			m = 1 << 30 // +∞
		}
		if lo != "-∞" && n > 7777 || m <= 7777 || !strings.Contains(l, "source 2500 rows") {
			t.Fatalf("the differing partition does not hold key 7777: %s", l)
		}
	}
	redis := writeFile(t, dir, "redis.yaml", "name: r\nsource: {type: sqlite, dsn: x.db, table: orders, key: [id]}\nsink: {type: redis, dsn: \"redis://127.0.0.1:6379/0\"}\n")
	out, err = datashift(t, "verify", redis)
	if want := `job "r": sink.type: a redis sink cannot be read back to verify it`; err == nil || err.Error() != want || exitCode(err) != 2 {
		t.Fatalf("verify of a Redis sink:\ngot  %v (exit %d)\nwant %s\n%s", err, exitCode(err), want, out)
	}
}
