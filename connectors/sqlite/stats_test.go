package sqlite

import (
	"context"
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/datashift/datashift/connectors"
)

// skewed makes a table whose text key crowds 90% of the rows into keys
// starting with "m", with 5% NULL keys; rows with odd ids are 'even' = 0.
func skewed(t *testing.T, dsn string, n int) {
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE s (id INTEGER PRIMARY KEY, k TEXT, even INTEGER)`)
	mustExec(t, db, `CREATE INDEX s_k ON s (k)`)
	mustExec(t, db, `WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < ?)
		INSERT INTO s SELECT x,
			CASE WHEN x % 20 = 0 THEN NULL
			     WHEN x % 10 = 2 THEN printf('a%06d', x)
			     ELSE printf('m%06d', x * 7 % 1000003) END,
			1 - x % 2
		FROM seq`, n)
	db.Close()
}

func checkSample(t *testing.T, st connectors.Stats, size int, mShare float64) {
	t.Helper()
	if !sort.SliceIsSorted(st.Sample, func(i, j int) bool { return connectors.CompareKeys(st.Sample[i], st.Sample[j]) < 0 }) {
		t.Error("sample is not sorted")
	}
	if len(st.Sample) == 0 || len(st.Sample) > size {
		t.Errorf("sample of %d keys, want 1..%d", len(st.Sample), size)
	}
	for _, k := range st.Sample {
		if k[0] == nil {
			t.Fatal("sample holds a NULL key")
		}
	}
	// The share of keys starting with "m" is the share of such rows.
	m := 0
	for _, k := range st.Sample {
		if k[0].(string)[0] == 'm' {
			m++
		}
	}
	if share := float64(m) / float64(len(st.Sample)); share < mShare-0.08 || share > mShare+0.08 {
		t.Errorf("%.2f of the sample starts with m, want about %.2f (quantiles follow the skew)", share, mShare)
	}
}

func TestStatsExact(t *testing.T) {
	dsn := newDB(t)
	skewed(t, dsn, 5000)
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "s", Key: []string{"k"}})
	st, err := src.(connectors.Sampler).Stats(context.Background(), 50)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exact || st.Rows != 4750 || st.NullRows != 250 || st.Method != "scan" {
		t.Errorf("stats %+v, want exact: 4750 rows, 250 NULL keys", st)
	}
	var maxK string
	sqlDB(t, dsn).QueryRow(`SELECT max(k) FROM s`).Scan(&maxK)
	if st.Min[0] != "a000002" || st.Max[0] != maxK {
		t.Errorf("min %v max %v, want a000002 and %s", st.Min, st.Max, maxK)
	}
	if len(st.Sample) != 50 || connectors.CompareKeys(st.Sample[0], st.Min) != 0 || connectors.CompareKeys(st.Sample[49], st.Max) != 0 {
		t.Errorf("sample of %d keys from %v to %v, want 50 from min to max", len(st.Sample), st.Sample[0], st.Sample[len(st.Sample)-1])
	}
	checkSample(t, st, 50, 17.0/19)
}

// TestStatsSampled: above the exact threshold a rowid table is probed, not
// scanned; the estimates are close and the ends exact.
func TestStatsSampled(t *testing.T) {
	defer func(v float64) { rowsPerProbe = v }(rowsPerProbe)
	rowsPerProbe = 1 // 1000 probes: tables of 1000 rows and more are sampled
	dsn := newDB(t)
	skewed(t, dsn, 20_000)
	for _, c := range []struct {
		where          string
		rows, nullRows int64
		mShare         float64
	}{
		{"", 19_000, 1000, 17.0 / 19},
		{"even = 1", 9000, 1000, 7.0 / 9}, // the NULL-key and "a" rows all have even ids
	} {
		src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "s", Key: []string{"k"}, Where: c.where})
		st, err := src.(connectors.Sampler).Stats(context.Background(), 100)
		if err != nil {
			t.Fatal(err)
		}
		if st.Exact || st.Method != "rowid probes" {
			t.Errorf("where %q: method %q exact %v, want sampled rowid probes", c.where, st.Method, st.Exact)
		}
		// 1000 probes: about ±3% on the rows, ±30% on a 5% share of NULLs.
		near := func(got, want, pct int64) bool { return got > want*(100-pct)/100 && got < want*(100+pct)/100 }
		if !near(st.Rows, c.rows, 5) || !near(st.NullRows, c.nullRows, 30) {
			t.Errorf("where %q: estimated %d rows, %d NULL keys; want about %d and %d", c.where, st.Rows, st.NullRows, c.rows, c.nullRows)
		}
		t.Logf("where %q: estimated %d rows (true %d), %d NULL keys (true %d), %d sample keys", c.where, st.Rows, c.rows, st.NullRows, c.nullRows, len(st.Sample))
		q := `SELECT max(k) FROM s`
		if c.where != "" {
			q += " WHERE " + c.where
		}
		var maxK string
		sqlDB(t, dsn).QueryRow(q).Scan(&maxK)
		if st.Min[0] != "a000002" || st.Max[0] != maxK {
			t.Errorf("where %q: min %v max %v, want a000002 and %s", c.where, st.Min, st.Max, maxK)
		}
		checkSample(t, st, 100, c.mShare)
	}
}

// TestStatsSparseRowids: an INTEGER PRIMARY KEY whose values are dense in
// 1% of their range and sparse in the rest. Probing evenly spaced rowids
// would sample the key space, not the rows; the density estimate must find
// the cluster so that split points at the sample's quantiles balance.
func TestStatsSparseRowids(t *testing.T) {
	defer func(v float64) { rowsPerProbe = v }(rowsPerProbe)
	rowsPerProbe = 1 // 1000 probes: tables of 1000 rows and more are sampled
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE skew (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)`)
	// 18,000 keys in [11, 198,000], 2,000 in (10,000,000, 29,800,000].
	mustExec(t, db, `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 18000) INSERT INTO skew SELECT n * 11, 0 FROM g`)
	mustExec(t, db, `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000) INSERT INTO skew SELECT 10000000 + n * 9900, 0 FROM g`)
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "skew", Key: []string{"id"}})
	const parts = 16
	st, err := src.(connectors.Sampler).Stats(context.Background(), 10*parts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows < 19_000 || st.Rows > 21_000 || st.NullRows != 0 || st.Method != "rowid probes" {
		t.Errorf("estimated %d rows (%d NULL keys) by %q, want about 20000 (0) by rowid probes", st.Rows, st.NullRows, st.Method)
	}
	if st.Min[0] != int64(11) || st.Max[0] != int64(10000000+2000*9900) {
		t.Errorf("min %v max %v", st.Min, st.Max)
	}
	// Split at every tenth sample key and count the partitions.
	var counts []int64
	var lo connectors.Key
	for i := 0; i <= parts; i++ {
		r := connectors.Range{Lo: lo}
		if i < parts {
			r.Hi = st.Sample[min(len(st.Sample)-1, (i+1)*len(st.Sample)/parts)]
			if lo != nil && connectors.CompareKeys(r.Hi, lo) <= 0 {
				continue
			}
			lo = r.Hi
		}
		n, err := src.(connectors.Counter).Count(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, n)
	}
	var sum, biggest int64
	for _, n := range counts {
		sum += n
		biggest = max(biggest, n)
	}
	ratio := float64(biggest) / (float64(sum) / float64(len(counts)))
	t.Logf("estimated %d rows; %d partitions at sample quantiles hold %v: largest %.2f× the mean", st.Rows, len(counts), counts, ratio)
	if sum != 20_000 || ratio > 1.5 {
		t.Errorf("partitions hold %v (sum %d), largest %.2f× the mean; want 20000 rows, at most 1.5×", counts, sum, ratio)
	}
}

// A table read by its INTEGER PRIMARY KEY, unfiltered, is planned from the
// rowids' density alone, reading no row: the same skewed key balances as
// well; with a filter, rows are fetched to see which pass it.
func TestStatsRowidKeyByDensityAlone(t *testing.T) {
	defer func(v float64) { rowidKeyScanBelow = v }(rowidKeyScanBelow)
	rowidKeyScanBelow = 1000
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE skew (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)`)
	mustExec(t, db, `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 18000) INSERT INTO skew SELECT n * 11, n % 2 FROM g`)
	mustExec(t, db, `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000) INSERT INTO skew SELECT 10000000 + n * 9900, n % 2 FROM g`)
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "skew", Key: []string{"id"}})
	const parts = 16
	st, err := src.(connectors.Sampler).Stats(context.Background(), 10*parts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Method != "rowid density probes" || st.Rows < 19_600 || st.Rows > 20_400 || st.NullRows != 0 {
		t.Fatalf("stats by %q: %d rows (%d NULL keys), want about 20000 by rowid density probes", st.Method, st.Rows, st.NullRows)
	}
	if st.Min[0] != int64(11) || st.Max[0] != int64(10000000+2000*9900) || !slices.IsSortedFunc(st.Sample, connectors.CompareKeys) {
		t.Fatalf("min %v max %v, sample sorted: %v", st.Min, st.Max, slices.IsSortedFunc(st.Sample, connectors.CompareKeys))
	}
	var counts []int64
	var lo connectors.Key
	for i := 0; i < parts; i++ {
		r := connectors.Range{Lo: lo}
		if i < parts-1 {
			r.Hi = st.Sample[(i+1)*len(st.Sample)/parts]
		}
		lo = r.Hi
		n, err := src.(connectors.Counter).Count(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, n)
	}
	if biggest := slices.Max(counts); float64(biggest) > 1.5*20_000/parts {
		t.Errorf("partitions at the sample's quantiles hold %v: largest %.2f× the mean", counts, float64(biggest)/(20_000/parts))
	}
	filtered := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "skew", Key: []string{"id"}, Where: "v = 1"})
	if st, err := filtered.(connectors.Sampler).Stats(context.Background(), 10*parts); err != nil || st.Method == "rowid density probes" {
		t.Fatalf("a filtered table's stats by %q (%v): want rows fetched to apply the filter", st.Method, err)
	}
}

// TestStatsExtremeRowids: rowids at both ends of int64 must not overflow
// the span arithmetic.
func TestStatsExtremeRowids(t *testing.T) {
	defer func(v float64) { rowsPerProbe = v }(rowsPerProbe)
	rowsPerProbe = 0.1 // 1000 probes: tables of 100 rows and more are sampled
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE x (id INTEGER PRIMARY KEY, k TEXT)`)
	mustExec(t, db, `INSERT INTO x VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max'), (0, 'zero')`)
	mustExec(t, db, `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 500) INSERT INTO x SELECT n * 1000003, printf('k%05d', n) FROM g`)
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "x", Key: []string{"id"}})
	st, err := src.(connectors.Sampler).Stats(context.Background(), 50)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows < 400 || st.Rows > 600 || st.Min[0] != int64(math.MinInt64) || st.Max[0] != int64(math.MaxInt64) {
		t.Errorf("stats %d rows, min %v, max %v; want about 503 from MinInt64 to MaxInt64", st.Rows, st.Min, st.Max)
	}
	checkSorted(t, st)
}

func checkSorted(t *testing.T, st connectors.Stats) {
	t.Helper()
	if !sort.SliceIsSorted(st.Sample, func(i, j int) bool { return connectors.CompareKeys(st.Sample[i], st.Sample[j]) < 0 }) {
		t.Error("sample is not sorted")
	}
}
