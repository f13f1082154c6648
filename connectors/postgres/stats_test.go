package postgres

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/datashift/datashift/connectors"
)

func checkSorted(t *testing.T, st connectors.Stats) {
	t.Helper()
	if !slices.IsSortedFunc(st.Sample, connectors.CompareKeys) {
		t.Errorf("sample not sorted in key order: %v", st.Sample)
	}
}

// lowLimits sends tables of a few thousand rows down the paths meant for big
// ones.
func lowLimits(t *testing.T) {
	oldExact, oldSmall := exactLimit, smallPages
	exactLimit, smallPages = 1000, 10
	t.Cleanup(func() { exactLimit, smallPages = oldExact, oldSmall })
}

func TestStatsExact(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE st (id int, v text);
		INSERT INTO st SELECT g, 'x' FROM generate_series(1, 1000) g;
		INSERT INTO st SELECT NULL, 'n' FROM generate_series(1, 10)`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "st", Key: []string{"id"}})
	st, err := s.Stats(testCtx(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	checkSorted(t, st)
	if !st.Exact || st.Rows != 1000 || st.NullRows != 10 || st.Min[0] != int64(1) || st.Max[0] != int64(1000) || len(st.Sample) != 10 {
		t.Errorf("stats %+v", st)
	}
	// Evenly spaced: the sample's quantiles are the table's.
	if st.Sample[0][0] != int64(51) || st.Sample[9][0] != int64(951) {
		t.Errorf("sample %v", st.Sample)
	}
	// The filter applies to planning too.
	f := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "st", Key: []string{"id"}, Where: "id <= 100 OR id IS NULL"})
	st, err = f.Stats(testCtx(t), 10)
	if err != nil || st.Rows != 100 || st.NullRows != 10 || st.Max[0] != int64(100) {
		t.Errorf("filtered stats %+v, %v", st, err)
	}
	// A query source.
	q := openSource(t, connectors.SourceConfig{DSN: dsn, Query: "SELECT id * 2 AS k FROM st", Key: []string{"k"}})
	st, err = q.Stats(testCtx(t), 4)
	if err != nil || !st.Exact || st.Rows != 1000 || st.NullRows != 10 || st.Max[0] != int64(2000) || len(st.Sample) != 4 {
		t.Errorf("query stats %+v, %v", st, err)
	}
}

// A big table's single-column key is planned from pg_stats; the most common
// value's share of the rows shows in the sample, so a skewed key still gets
// balanced split points.
func TestStatsHistogramWithSkew(t *testing.T) {
	lowLimits(t)
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE sk (id bigint, v int);
		INSERT INTO sk SELECT CASE WHEN g % 2 = 0 THEN 7 ELSE g END, g FROM generate_series(1, 20000) g;
		INSERT INTO sk SELECT NULL, 0 FROM generate_series(1, 1000);
		CREATE INDEX ON sk (id)`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "sk", Key: []string{"id"}})
	st, err := s.Stats(testCtx(t), 200)
	if err != nil {
		t.Fatal(err)
	}
	checkSorted(t, st)
	if st.Exact || !strings.Contains(st.Method, "pg_stats histogram") || !strings.Contains(st.Method, "ran ANALYZE") ||
		!strings.Contains(st.Method, "index probes") {
		t.Errorf("method %q", st.Method)
	}
	if st.Rows < 19000 || st.Rows > 21000 || st.NullRows < 800 || st.NullRows > 1200 {
		t.Errorf("rows %d, null rows %d; want about 20000 and 1000", st.Rows, st.NullRows)
	}
	if st.Min[0] != int64(1) || st.Max[0] != int64(19999) {
		t.Errorf("min %v max %v, want 1 and 19999", st.Min, st.Max)
	}
	sevens := 0
	for _, k := range st.Sample {
		if k[0] == int64(7) {
			sevens++
		}
	}
	if len(st.Sample) != 200 || sevens < 90 || sevens > 110 {
		t.Errorf("%d of %d sampled keys are the value of half the rows", sevens, len(st.Sample))
	}
	// The median of the other half: about 10000.
	if m := st.Sample[150][0].(int64); m < 8000 || m > 12000 {
		t.Errorf("75th percentile %d, want about 10000", m)
	}
	if st.PageCount == 0 || st.Bytes == 0 {
		t.Errorf("pages %d bytes %d", st.PageCount, st.Bytes)
	}
}

// Text keys in a linguistic collation (whose histogram is in the wrong
// order) and composite keys are sampled with TABLESAMPLE, sorted by bytes.
func TestStatsTableSample(t *testing.T) {
	lowLimits(t)
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE ts (k text COLLATE "en-x-icu" PRIMARY KEY, b int, pad text);
		INSERT INTO ts SELECT CASE WHEN g % 2 = 0 THEN 'a' ELSE 'B' END || lpad(g::text, 6, '0'), g % 3, repeat('p', 50)
		FROM generate_series(1, 20000) g;
		ANALYZE ts`)
	for _, key := range [][]string{{"k"}, {"b", "k"}} {
		s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "ts", Key: key})
		st, err := s.Stats(testCtx(t), 100)
		if err != nil {
			t.Fatal(err)
		}
		checkSorted(t, st)
		if !strings.Contains(st.Method, "TABLESAMPLE") || st.Exact {
			t.Errorf("key %v: method %q", key, st.Method)
		}
		if len(st.Sample) < 50 || st.Rows < 18000 || st.Rows > 22000 || st.NullRows != 0 {
			t.Errorf("key %v: %d sampled, rows %d, nulls %d", key, len(st.Sample), st.Rows, st.NullRows)
		}
		if len(key) == 1 {
			// 'B…' sorts before 'a…' in bytes: half the keys start with B.
			mid := st.Sample[len(st.Sample)/2][0].(string)
			first, last := st.Sample[0][0].(string), st.Sample[len(st.Sample)-1][0].(string)
			if first[0] != 'B' || last[0] != 'a' || (mid[:2] != "B0" && mid[:2] != "a0") {
				t.Errorf("sample not in byte order: first %s, middle %s, last %s", first, mid, last)
			}
		}
	}
}

func TestStatsNoKey(t *testing.T) {
	lowLimits(t)
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE nk (v int); INSERT INTO nk SELECT generate_series(1, 5000); ANALYZE nk`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "nk"})
	st, err := s.Stats(testCtx(t), 10)
	pages := queryInt(t, conn, "SELECT relpages FROM pg_class WHERE relname = 'nk'")
	if err != nil || math.Abs(float64(st.Rows-5000)) > 100 || st.PageCount != pages || st.Sample != nil || !strings.Contains(st.Method, "ctid") {
		t.Errorf("stats %+v, %v; want ~5000 rows and %d pages", st, err, pages)
	}
}
