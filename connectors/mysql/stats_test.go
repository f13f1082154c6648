package mysql

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/partitioner"
)

// withExactLimit lowers the full-scan threshold for one test.
func withExactLimit(t *testing.T, exact int64) {
	old := exactLimit
	exactLimit = exact
	t.Cleanup(func() { exactLimit = old })
}

// withDensityAbove moves the density probes' threshold for one test.
func withDensityAbove(t *testing.T, rows int64) {
	old := densityAbove
	densityAbove = rows
	t.Cleanup(func() { densityAbove = old })
}

func sorted(keys []connectors.Key) bool {
	return slices.IsSortedFunc(keys, connectors.CompareKeys)
}

func TestStatsSmallTableExact(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE s (pk INT AUTO_INCREMENT PRIMARY KEY, k INT NULL, KEY (k))")
	exec(t, db, "INSERT INTO s (k) SELECT seq FROM seq_1_to_1000")
	exec(t, db, "INSERT INTO s (k) SELECT NULL FROM seq_1_to_10")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "s", Key: []string{"k"}})
	st, err := src.Stats(testCtx(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exact || st.Rows != 1000 || st.NullRows != 10 || st.Method != "full scan" {
		t.Errorf("stats %+v: want exact, 1000 rows, 10 NULL rows", st)
	}
	if connectors.CompareKeys(st.Min, connectors.Key{int64(1)}) != 0 || connectors.CompareKeys(st.Max, connectors.Key{int64(1000)}) != 0 {
		t.Errorf("min %s max %s, want 1 and 1000", st.Min, st.Max)
	}
	if len(st.Sample) != 10 {
		t.Fatalf("sample of %d keys, want 10", len(st.Sample))
	}
	for i, k := range st.Sample { // exact deciles
		if k[0] != int64(i*100+1) {
			t.Errorf("sample[%d] = %v, want %d", i, k[0], i*100+1)
		}
	}
	// A filter is part of the estimate.
	src = openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "s", Key: []string{"k"}, Where: "k <= 250"})
	if st, err = src.Stats(testCtx(t), 10); err != nil || st.Rows != 250 || !st.Exact {
		t.Errorf("filtered stats %+v, %v: want 250 exact rows", st, err)
	}
	// Empty table: no min, no sample.
	exec(t, db, "CREATE TABLE e (k INT PRIMARY KEY)")
	src = openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "e", Key: []string{"k"}})
	if st, err = src.Stats(testCtx(t), 10); err != nil || st.Rows != 0 || st.Min != nil || len(st.Sample) != 0 {
		t.Errorf("empty table stats %+v, %v", st, err)
	}
}

// Above the exact limit the sample comes from an index stride: evenly spaced
// in rank even when the key values are skewed, and the rows counted exactly.
func TestStatsIndexStrideSkewed(t *testing.T) {
	withExactLimit(t, 1000)
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE w (id BIGINT PRIMARY KEY, v CHAR(1))")
	// 20,000 dense keys and 10,000 far away: value-based splits would be lopsided.
	exec(t, db, "INSERT INTO w SELECT seq, 'x' FROM seq_1_to_20000")
	exec(t, db, "INSERT INTO w SELECT 1000000000 + seq, 'x' FROM seq_1_to_10000")
	exec(t, db, "ANALYZE TABLE w")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "w", Key: []string{"id"}})
	st, err := src.Stats(testCtx(t), 20)
	if err != nil {
		t.Fatal(err)
	}
	if st.Exact || st.Method != "index stride" {
		t.Errorf("method %q exact %v, want an index stride", st.Method, st.Exact)
	}
	if st.Rows != 30000 {
		t.Errorf("rows %d, want 30000 (the stride counts)", st.Rows)
	}
	if st.Min[0] != int64(1) || st.Max[0] != int64(1000010000) {
		t.Errorf("min %s max %s", st.Min, st.Max)
	}
	if len(st.Sample) < 10 || len(st.Sample) > 40 || !sorted(st.Sample) {
		t.Fatalf("sample %v: want 10..40 sorted keys", st.Sample)
	}
	// Split at the sample: every part holds about the same number of rows.
	bounds := append([]connectors.Key{nil}, st.Sample...)
	bounds = append(bounds, nil)
	want := float64(30000) / float64(len(st.Sample)+1)
	for i := 0; i+1 < len(bounds); i++ {
		n, err := src.Count(testCtx(t), connectors.Range{Lo: bounds[i], Hi: bounds[i+1]})
		if err != nil {
			t.Fatal(err)
		}
		if float64(n) > 2*want {
			t.Errorf("part [%s, %s) holds %d rows, want about %.0f", bounds[i], bounds[i+1], n, want)
		}
	}
	// Parts cover the skewed tail too.
	tail := 0
	for _, k := range st.Sample {
		if k[0].(int64) > 1000000000 {
			tail++
		}
	}
	if tail < len(st.Sample)/5 {
		t.Errorf("only %d of %d sample keys in the upper third of the rows", tail, len(st.Sample))
	}
}

// Text keys under a case-insensitive collation are strided in index order
// and the sample re-sorted by bytes; Min and Max are by bytes.
func TestStatsTextKeys(t *testing.T) {
	withExactLimit(t, 100)
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE tk (k VARCHAR(20) PRIMARY KEY)")
	exec(t, db, "INSERT INTO tk SELECT CONCAT(IF(CRC32(seq) % 2, 'a', 'B'), LPAD(seq, 5, '0')) FROM seq_1_to_3000")
	exec(t, db, "INSERT INTO tk VALUES ('Z'), ('é'), ('_')")
	exec(t, db, "ANALYZE TABLE tk")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "tk", Key: []string{"k"}})
	st, err := src.Stats(testCtx(t), 16)
	if err != nil {
		t.Fatal(err)
	}
	var minKey string
	if err := db.QueryRow("SELECT k FROM tk ORDER BY CAST(k AS BINARY) LIMIT 1").Scan(&minKey); err != nil {
		t.Fatal(err)
	}
	if st.Exact || st.Min[0] != minKey || !strings.HasPrefix(minKey, "B") || st.Max[0] != "é" {
		t.Errorf("stats %+v: want min %s and max é (bytes)", st, minKey)
	}
	if len(st.Sample) < 8 || !sorted(st.Sample) {
		t.Errorf("sample %v: want at least 8 keys sorted by bytes", st.Sample)
	}
	// Uppercase B… sort before lowercase a… in bytes: the sample has both, B first.
	first, last := st.Sample[0][0].(string), st.Sample[len(st.Sample)-1][0].(string)
	if !strings.HasPrefix(first, "B") || !strings.HasPrefix(last, "a") {
		t.Errorf("sample runs from %q to %q, want B… to a…", first, last)
	}
}

func TestStatsQuerySource(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE q (id INT PRIMARY KEY, g INT)")
	exec(t, db, "INSERT INTO q SELECT seq, seq % 3 FROM seq_1_to_900")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Query: "SELECT id, g FROM q WHERE g = 0", Key: []string{"id"}})
	st, err := src.Stats(testCtx(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exact || st.Rows != 300 || st.Min[0] != int64(3) || st.Max[0] != int64(900) || len(st.Sample) != 3 || st.Sample[1][0] != int64(303) {
		t.Errorf("query stats %+v", st)
	}
	// Above the exact limit the query is strided. Its estimate, EXPLAIN's
	// 900 rows of the table, is three times too high: the sample is still
	// 3..6 keys, from the first, and the rows are counted.
	withExactLimit(t, 10)
	if st, err = src.Stats(testCtx(t), 3); err != nil {
		t.Fatal(err)
	}
	if st.Exact || st.Method != "index stride" || st.Rows != 300 || len(st.Sample) < 3 || len(st.Sample) > 6 ||
		!sorted(st.Sample) || st.Sample[0][0] != int64(3) {
		t.Errorf("strided query stats %+v", st)
	}
	// A filter the estimate (900) misses tenfold: the first read gives 7
	// of the 16 keys wanted, so it reads again with the step of its count.
	src = openSrc(t, connectors.SourceConfig{DSN: dsn, Query: "SELECT id, g FROM q", Where: "q.id % 10 = 0", Key: []string{"id"}})
	if st, err = src.Stats(testCtx(t), 16); err != nil {
		t.Fatal(err)
	}
	if st.Rows != 90 || len(st.Sample) < 16 || !sorted(st.Sample) || st.Sample[0][0] != int64(10) {
		t.Errorf("filtered strided query stats %+v", st)
	}
}

// planCounted plans src (counted by qc) into about parts partitions the way
// the engine does, and returns the plan, the statements and connections
// planning cost, and the real rows of each partition.
func planCounted(t *testing.T, src *source, qc *queryCounter, key []string, rows int64, parts int) (partitioner.Plan, int64, int64, []int64) {
	t.Helper()
	qc.reset()
	start := time.Now()
	plan, err := partitioner.PlanSource(testCtx(t), src, key, partitioner.Options{
		TargetRows: rows / int64(parts), MaxPartitions: 64, SampleSize: partitioner.DefaultSampleSize(parts)})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	queries, conns := qc.queries.Load(), qc.conns.Load()
	if err := plan.Validate(); err != nil {
		t.Fatal(err)
	}
	counts := make([]int64, len(plan.Partitions))
	var sum int64
	for i, p := range plan.Partitions {
		if counts[i], err = src.Count(testCtx(t), p.Range); err != nil {
			t.Fatal(err)
		}
		sum += counts[i]
	}
	t.Logf("planned in %s with %d statements on %d new connections: %s\nreal rows %v", took, queries, conns, plan.Reason, counts)
	if sum != rows {
		t.Fatalf("partitions hold %d rows, the source %d", sum, rows)
	}
	return plan, queries, conns, counts
}

// maxOverMean is the largest count over the mean count.
func maxOverMean(counts []int64) float64 {
	var sum int64
	for _, c := range counts {
		sum += c
	}
	return float64(slices.Max(counts)) / (float64(sum) / float64(len(counts)))
}

// Planning a 200k-row table costs a few statements, not one per sampled
// key, and still balances a skewed key: 90% of the rows in 1% of the key
// range. The bound is the partitioner's (TestMariaDBSkewedMillion): the
// largest partition at most 1.5× the mean.
func TestPlanFewQueriesSkewed(t *testing.T) {
	withDensityAbove(t, math.MaxInt64) // the stride; density probes have their own test
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE skew (id BIGINT PRIMARY KEY, v INT NOT NULL)")
	exec(t, db, "INSERT INTO skew SELECT seq * 11, 0 FROM seq_1_to_180000")
	exec(t, db, "INSERT INTO skew SELECT 10000000 + seq * 49500, 0 FROM seq_1_to_20000")
	exec(t, db, "ANALYZE TABLE skew")
	src, qc := countedSource(t, connectors.SourceConfig{DSN: dsn, Table: "skew", Key: []string{"id"}})
	const parts = 16
	plan, queries, conns, counts := planCounted(t, src, qc, []string{"id"}, 200_000, parts)
	// Statistics, min, max, and the stride (counter reset, read, count).
	if queries > 6 || conns > 1 {
		t.Errorf("planning took %d statements on %d new connections, want at most 6 on one", queries, conns)
	}
	if len(counts) < parts-1 || len(counts) > parts+1 {
		t.Errorf("%d partitions, want about %d", len(counts), parts)
	}
	if r := maxOverMean(counts); r > 1.5 {
		t.Errorf("largest partition is %.2f× the mean\n%+v", r, plan)
	}
}

// A large table keyed by one integer column is measured by density
// probes: a few statements whatever its size, which balance the same
// skewed key as the stride does (90% of the rows in 1% of the key range,
// and a cluster at the far end), on an unsigned key.
func TestPlanDensityProbesSkewed(t *testing.T) {
	withDensityAbove(t, 1000)
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE dskew (id INT UNSIGNED PRIMARY KEY, v INT NOT NULL)")
	exec(t, db, "INSERT INTO dskew SELECT seq * 11, 0 FROM seq_1_to_180000")
	exec(t, db, "INSERT INTO dskew SELECT 10000000 + seq * 49500, 0 FROM seq_1_to_20000")
	exec(t, db, "INSERT INTO dskew SELECT 4000000000 + seq, 0 FROM seq_1_to_5000")
	exec(t, db, "ANALYZE TABLE dskew")
	src, qc := countedSource(t, connectors.SourceConfig{DSN: dsn, Table: "dskew", Key: []string{"id"}})
	st, err := src.Stats(testCtx(t), 160)
	if err != nil {
		t.Fatal(err)
	}
	if st.Method != "index density probes" || st.Exact || st.Rows < 199_000 || st.Rows > 211_000 {
		t.Errorf("stats by %q: %d rows (exact %v), want about 205000 by density probes", st.Method, st.Rows, st.Exact)
	}
	if st.Min[0] != uint64(11) || st.Max[0] != uint64(4000005000) || !sorted(st.Sample) {
		t.Errorf("min %v max %v, sample sorted %v", st.Min, st.Max, sorted(st.Sample))
	}
	const parts = 16
	_, queries, conns, counts := planCounted(t, src, qc, []string{"id"}, 205_000, parts)
	// Statistics, min, max, and up to four statements per round of probes
	// (14 when written), on the connections the Stats above left idle.
	if queries > 16 || conns > 2 {
		t.Errorf("planning took %d statements on %d new connections, want at most 16 on 2", queries, conns)
	}
	if len(counts) < parts-1 || len(counts) > parts+1 {
		t.Errorf("%d partitions, want about %d", len(counts), parts)
	}
	if r := maxOverMean(counts); r > 1.5 {
		t.Errorf("largest partition is %.2f× the mean: %v", r, counts)
	}
}

// A dense cluster of keys hidden between two density probes makes their
// total disagree with the server's estimate: the stride reads them all.
func TestPlanDensityMissFallsBackToTheStride(t *testing.T) {
	withExactLimit(t, 1000)
	withDensityAbove(t, 1000)
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE hidden (id BIGINT PRIMARY KEY)")
	// A key every 1000 in [1000, 25.6M]: 256 spans of 100,000 keys, of
	// which a probe reads the first 16,000; and 40,000 keys at 12.35M,
	// inside the span probed at 12.3M, past what its probe reads.
	exec(t, db, "INSERT INTO hidden SELECT seq * 1000 FROM seq_1_to_25600")
	exec(t, db, "INSERT IGNORE INTO hidden SELECT 12350000 + seq FROM seq_1_to_40000")
	exec(t, db, "ANALYZE TABLE hidden")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "hidden", Key: []string{"id"}})
	st, err := src.Stats(testCtx(t), 160)
	if err != nil {
		t.Fatal(err)
	}
	if st.Method != "index stride" || st.Rows != 65560 {
		t.Errorf("stats by %q: %d rows, want the stride's exact 65560", st.Method, st.Rows)
	}
}

// A composite key with a text column, a filter and an incremental window:
// the stride reads only the rows the run copies, in collation order, and
// the sample is sorted by bytes.
func TestPlanStrideCompositeFiltered(t *testing.T) {
	withExactLimit(t, 1000)
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE ck (g VARCHAR(8) NOT NULL, n INT NOT NULL, upd INT NOT NULL, PRIMARY KEY (g, n))")
	// Groups of very different sizes, upper and lower case (the collation
	// sorts them together, bytes do not).
	exec(t, db, "INSERT INTO ck SELECT ELT(1 + seq % 7, 'a', 'B', 'a', 'a', 'c', 'D', 'a'), seq, seq % 100 FROM seq_1_to_40000")
	exec(t, db, "ANALYZE TABLE ck")
	cfg := connectors.SourceConfig{DSN: dsn, Table: "ck", Key: []string{"g", "n"}, Where: "n % 5 <> 0",
		Cursor: &connectors.CursorWindow{Column: "upd", From: int64(10), UpTo: int64(89)}}
	want := count(t, db, "SELECT COUNT(*) FROM ck WHERE n % 5 <> 0 AND upd > 9 AND upd <= 89")
	src, qc := countedSource(t, cfg)
	st, err := src.Stats(testCtx(t), 64)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != want || !sorted(st.Sample) || len(st.Sample) < 32 || len(st.Sample) > 128 {
		t.Errorf("stats: %d rows, %d sampled keys (sorted %v); want %d rows and 32..128 sorted keys", st.Rows, len(st.Sample), sorted(st.Sample), want)
	}
	const parts = 8
	_, queries, _, counts := planCounted(t, src, qc, cfg.Key, want, parts)
	if queries > 8 {
		t.Errorf("planning took %d statements, want at most 8", queries)
	}
	if r := maxOverMean(counts); r > 1.5 {
		t.Errorf("largest partition is %.2f× the mean", r)
	}
}

// The fallback, keeping the stride on this side when the server did not
// number the rows as asked, picks the same keys and count as the server.
func TestStrideFallbackMatchesServer(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE sf (a VARCHAR(4) NOT NULL, b INT NOT NULL, PRIMARY KEY (a, b))")
	exec(t, db, "INSERT INTO sf SELECT ELT(1 + seq % 3, 'x', 'Y', 'z'), seq FROM seq_1_to_5000")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "sf", Key: []string{"a", "b"}, Where: "b % 7 <> 0"})
	conn, err := src.db.Conn(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server, n1, err1 := src.strideOn(testCtx(t), conn, 37, 1000, true)
	client, n2, err2 := src.strideOn(testCtx(t), conn, 37, 1000, false)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	same := slices.EqualFunc(server, client, func(a, b connectors.Key) bool { return connectors.CompareKeys(a, b) == 0 })
	if n1 != n2 || n1 != 5000-714 || !same || len(server) != int((n1+36)/37) {
		t.Errorf("server: %d rows, %d keys; here: %d rows, %d keys (same %v)", n1, len(server), n2, len(client), same)
	}
}
