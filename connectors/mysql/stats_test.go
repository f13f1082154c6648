package mysql

import (
	"slices"
	"strings"
	"testing"

	"github.com/datashift/datashift/connectors"
)

// withLimits lowers the exact/walk thresholds for one test.
func withLimits(t *testing.T, exact, walk int64) {
	oe, ow := exactLimit, walkLimit
	exactLimit, walkLimit = exact, walk
	t.Cleanup(func() { exactLimit, walkLimit = oe, ow })
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

// Above the exact limit the sample comes from a chained index walk: evenly
// spaced in rank even when the key values are skewed.
func TestStatsIndexWalkSkewed(t *testing.T) {
	withLimits(t, 1000, 5_000_000)
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
	if st.Exact || st.Method != "index walk" {
		t.Errorf("method %q exact %v, want an index walk", st.Method, st.Exact)
	}
	if st.Rows < 25000 || st.Rows > 35000 {
		t.Errorf("rows estimate %d, want about 30000", st.Rows)
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

// Text keys under a case-insensitive collation are walked in index order
// and the sample re-sorted by bytes; Min and Max are by bytes.
func TestStatsTextKeys(t *testing.T) {
	withLimits(t, 100, 5_000_000)
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

// Very large integer-keyed tables are probed at evenly spaced values.
func TestStatsValueProbes(t *testing.T) {
	withLimits(t, 100, 1000)
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE vp (id INT UNSIGNED PRIMARY KEY)")
	exec(t, db, "INSERT INTO vp SELECT seq * 3 FROM seq_1_to_5000")
	exec(t, db, "ANALYZE TABLE vp")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "vp", Key: []string{"id"}})
	st, err := src.Stats(testCtx(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.Method, "value probes") || len(st.Sample) != 9 || !sorted(st.Sample) {
		t.Fatalf("stats %+v: want 9 sorted value probes", st)
	}
	for i, k := range st.Sample {
		// Probe i is the first key at or above 3 + (15000-3)*(i+1)/10.
		v := k[0].(uint64)
		p := 3 + (15000-3)*uint64(i+1)/10
		if v < p || v > p+3 {
			t.Errorf("probe %d = %d, want the first multiple of 3 at or above %d", i, v, p)
		}
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
}
