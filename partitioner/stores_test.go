package partitioner_test

// Coverage on real stores: plan a table through its connector, then count
// and read every partition and check that each row is in exactly one.

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	_ "github.com/go-sql-driver/mysql" // database/sql driver "mysql", for fixtures
	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", for fixtures

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/mysql"
	"github.com/datashift/datashift/connectors/postgres"
	"github.com/datashift/datashift/connectors/sqlite"
	"github.com/datashift/datashift/internal/testenv"
	"github.com/datashift/datashift/partitioner"
)

// store is one SQL store under test: how to reach it and its column types.
type store struct {
	typ    string // connector type name
	driver string // database/sql driver for fixtures; "" for PostgreSQL (pgx)
	dsn    string
	types  map[string]string
}

// stores opens each SQL store under test in a database of the test's own.
var stores = []struct {
	name string
	open func(t *testing.T) store
}{
	{"postgres", func(t *testing.T) store {
		return store{typ: "postgres", dsn: testenv.Postgres(t), types: map[string]string{
			"int": "BIGINT", "text": "TEXT", "uuid": "UUID", "ts": "TIMESTAMP",
		}}
	}},
	{"mariadb", func(t *testing.T) store {
		// The database's default collation is utf8mb4_unicode_ci
		// (testenv): 'a' = 'A' there, and the key order must not be.
		return store{typ: mysql.TypeName, driver: "mysql", dsn: testenv.MySQL(t), types: map[string]string{
			"int": "BIGINT", "text": "VARCHAR(64)", "uuid": "UUID", "ts": "DATETIME(6)",
		}}
	}},
	{"sqlite", func(t *testing.T) store {
		return store{typ: sqlite.TypeName, driver: "sqlite", dsn: filepath.Join(t.TempDir(), "t.db"), types: map[string]string{
			"int": "INTEGER", "text": "TEXT", "uuid": "UUID_TEXT", "ts": "TIMESTAMP_TEXT",
		}}
	}},
}

// fixtureDB runs the SQL that sets up and checks a fixture, outside the
// connector under test.
type fixtureDB interface {
	exec(q string, args ...any) error
	count(table string) (int64, error)
}

type sqlDB struct{ *sql.DB }

func (d sqlDB) exec(q string, args ...any) error { _, err := d.Exec(q, args...); return err }
func (d sqlDB) count(table string) (n int64, err error) {
	err = d.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n)
	return n, err
}

// pgDB sends arguments as literals (simple protocol), so that text becomes
// uuid or timestamp the way it would in psql.
type pgDB struct{ *pgx.Conn }

func (d pgDB) exec(q string, args ...any) error {
	_, err := d.Exec(context.Background(), q, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	return err
}
func (d pgDB) count(table string) (n int64, err error) {
	err = d.QueryRow(context.Background(), "SELECT COUNT(*) FROM "+table).Scan(&n)
	return n, err
}

func (s store) open(t *testing.T) fixtureDB {
	t.Helper()
	if s.driver == "" {
		conn, err := pgx.Connect(context.Background(), s.dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return pgDB{conn}
	}
	db, err := sql.Open(s.driver, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return sqlDB{db}
}

func (s store) exec(t *testing.T, db fixtureDB, q string, args ...any) {
	t.Helper()
	if err := db.exec(q, args...); err != nil {
		t.Fatalf("%s: %s: %v", s.typ, q, err)
	}
}

// insert adds rows in multi-row INSERTs.
func (s store) insert(t *testing.T, db fixtureDB, table string, cols []string, rows [][]any) {
	t.Helper()
	for len(rows) > 0 {
		n := min(len(rows), 200)
		var vals []string
		var args []any
		for _, r := range rows[:n] {
			ph := make([]string, len(r))
			for i := range r {
				args = append(args, r[i])
				ph[i] = "?"
				if s.driver == "" {
					ph[i] = fmt.Sprintf("$%d", len(args))
				}
			}
			vals = append(vals, "("+strings.Join(ph, ", ")+")")
		}
		s.exec(t, db, fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", table, strings.Join(cols, ", "), strings.Join(vals, ", ")), args...)
		rows = rows[n:]
	}
}

func (s store) source(t *testing.T, table string, key []string) connectors.Source {
	t.Helper()
	src, err := connectors.OpenSource(context.Background(), s.typ, connectors.SourceConfig{DSN: s.dsn, Table: table, Key: key})
	if err != nil {
		t.Fatalf("%s: open source %s: %v", s.typ, table, err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

var words = []string{"a", "A", "b", "B", "ab", "aB", "Ab", "z", "Z", "é", "É", "e", "E", "ß", "ss", "SS",
	"日本", "日本語", "Ω", "ω", "😀", "Zebra", "apple", "Apple", "", " ", "~", "0", "9"}

// table is one fixture: its columns (besides id), key and rows (without id).
type fixture struct {
	name     string
	cols     []string // "name kind [NULL]"
	key      []string
	row      func(r *rand.Rand, i int) []any
	nullable bool // some keys are NULL
}

func fixtures() []fixture {
	ts := func(r *rand.Rand) string {
		// 1900 to 2199, microseconds, a few repeated instants.
		sec := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).Unix() + r.Int64N(300*365*86400)
		if r.IntN(5) == 0 {
			sec = time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC).Unix()
		}
		return time.Unix(sec, 1000*r.Int64N(1_000_000)).UTC().Format("2006-01-02 15:04:05.000000")
	}
	text := func(r *rand.Rand) string {
		w := words[r.IntN(len(words))]
		if r.IntN(2) == 0 {
			w += fmt.Sprintf("%d%s", r.IntN(100), words[r.IntN(len(words))])
		}
		return w
	}
	return []fixture{
		{
			name: "int", key: []string{"id"},
		},
		{
			name: "text", cols: []string{"k text NULL"}, key: []string{"k"}, nullable: true,
			row: func(r *rand.Rand, i int) []any {
				if r.IntN(20) == 0 {
					return []any{nil}
				}
				return []any{text(r)}
			},
		},
		{
			name: "uuid", cols: []string{"k uuid NOT NULL"}, key: []string{"k"},
			row: func(r *rand.Rand, i int) []any {
				// Random (version 4) and time-based (version 1) UUIDs:
				// MariaDB orders version 1 by swapped segments, and the
				// key order must still be byte order.
				u := randUUID(r)
				u[6] = byte(0x40-0x30*(i%2)) | u[6]&0x0f
				u[8] = 0x80 | u[8]&0x3f
				return []any{u.String()}
			},
		},
		{
			name: "timestamp", cols: []string{"k ts NOT NULL"}, key: []string{"k"},
			row: func(r *rand.Rand, i int) []any { return []any{ts(r)} },
		},
		{
			// No key: PostgreSQL splits by ctid pages, the others copy
			// the table as one range.
			name: "no key", cols: []string{"k text NULL"},
			row: func(r *rand.Rand, i int) []any { return []any{text(r)} },
		},
		{
			name: "composite", cols: []string{"a int NOT NULL", "b text NULL"}, key: []string{"a", "b"}, nullable: true,
			row: func(r *rand.Rand, i int) []any {
				b := any(text(r))
				if r.IntN(25) == 0 {
					b = nil
				}
				return []any{r.Int64N(8) - 4, b}
			},
		},
	}
}

// TestStoresCoverExactly plans tables with integer, text, UUID, timestamp,
// composite and no keys on PostgreSQL, MariaDB and SQLite, and checks with the
// stores themselves that every row is in exactly one partition: the counts
// add up to COUNT(*), and reading every partition returns every row once,
// each inside its partition's range in the key order of connectors.CompareKeys.
func TestStoresCoverExactly(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			db := s.open(t)
			for _, fx := range fixtures() {
				t.Run(fx.name, func(t *testing.T) {
					r := newRand(t)
					table := "t_" + strings.ReplaceAll(fx.name, " ", "_")
					defs := []string{"id " + s.types["int"] + " NOT NULL PRIMARY KEY"}
					for _, c := range fx.cols {
						f := strings.Fields(c)
						defs = append(defs, f[0]+" "+s.types[f[1]]+" "+strings.Join(f[2:], " "))
					}
					s.exec(t, db, fmt.Sprintf("CREATE TABLE %s (%s)", table, strings.Join(defs, ", ")))
					if len(fx.key) > 0 && fx.key[0] != "id" {
						s.exec(t, db, fmt.Sprintf("CREATE INDEX %s_k ON %s (%s)", table, table, strings.Join(fx.key, ", ")))
					}
					cols := []string{"id"}
					for _, c := range fx.cols {
						cols = append(cols, strings.Fields(c)[0])
					}
					const n = 2000
					var rows [][]any
					seen := map[int64]bool{}
					for i := 0; len(rows) < n; i++ {
						// Dense ids except where id is the key: SQLite probes
						// sparse rowids slowly (and see TestSQLiteSkewedMillion).
						id := int64(i)
						if fx.name == "int" {
							id = []int64{math.MinInt64, math.MaxInt64, math.MinInt64 + 1, math.MaxInt64 - 1, 0, -1, r.Int64(), r.Int64N(1000), -int64(r.Uint64() >> 1)}[r.IntN(9)]
						}
						if seen[id] {
							continue
						}
						seen[id] = true
						row := []any{id}
						if fx.row != nil {
							row = append(row, fx.row(r, i)...)
						}
						rows = append(rows, row)
					}
					s.insert(t, db, table, cols, rows)
					checkStoreCoverage(t, s, db, table, fx.key, fx.nullable)
				})
			}
		})
	}
}

func checkStoreCoverage(t *testing.T, s store, db fixtureDB, table string, key []string, nullable bool) {
	ctx := context.Background()
	src := s.source(t, table, key)
	plan, err := partitioner.PlanSource(ctx, src, key, partitioner.Options{TargetRows: 200, MaxPartitions: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Validate(); err != nil {
		t.Fatalf("%v\n%s", err, describe(plan))
	}
	t.Logf("%s", plan.Reason)
	switch {
	case len(key) == 0 && s.typ == "postgres":
		if plan.Scheme != "pages" || len(plan.Partitions) < 2 {
			t.Errorf("want ctid page ranges for a table with no key\n%s", describe(plan))
		}
	case len(key) == 0:
		if plan.Scheme != "single" {
			t.Errorf("want one range for a table with no key\n%s", describe(plan))
		}
	case len(keyRanges(plan)) < 5:
		t.Errorf("only %d key ranges for 2000 rows at 200 per partition\n%s", len(keyRanges(plan)), describe(plan))
	}
	if hasNulls := len(plan.Partitions) > len(keyRanges(plan)); hasNulls != nullable {
		t.Errorf("NULL-key partition: %v, want %v\n%s", hasNulls, nullable, describe(plan))
	}
	total, err := db.count(table)
	if err != nil {
		t.Fatal(err)
	}
	counter, ok := src.(connectors.Counter)
	if !ok {
		t.Fatalf("%s source is not a connectors.Counter", s.typ)
	}
	var sum int64
	seen := map[int64]string{} // id → partition
	for _, pt := range plan.Partitions {
		c, err := counter.Count(ctx, pt.Range)
		if err != nil {
			t.Fatalf("count %s %s: %v", pt.ID, pt.Range, err)
		}
		sum += c
		var read int64
		var last connectors.Key
		err = src.Read(ctx, pt.Range, func(rec arrow.RecordBatch) error {
			keyIdx, err := connectors.ColumnIndexes(rec.Schema(), key)
			if err != nil {
				return err
			}
			idIdx, err := connectors.ColumnIndexes(rec.Schema(), []string{"id"})
			if err != nil {
				return err
			}
			for i := range int(rec.NumRows()) {
				read++
				id := connectors.ValueAt(rec.Column(idIdx[0]), i).(int64)
				k := connectors.KeyOf(rec, keyIdx, i)
				if p, dup := seen[id]; dup {
					return fmt.Errorf("row id %d (key %s) read in %s and again in %s", id, k, p, pt.ID)
				}
				seen[id] = pt.ID
				if err := sameTypes(k, pt.Range); err != nil {
					return err
				}
				if pt.Range.Pages == nil && !pt.Range.Contains(k) {
					return fmt.Errorf("row id %d with key %s read in %s %s, which does not hold it", id, k, pt.ID, pt.Range)
				}
				if !pt.Range.Nulls && last != nil && connectors.CompareKeys(last, k) > 0 {
					return fmt.Errorf("%s read key %s after %s: not in key order", pt.ID, k, last)
				}
				last = k
			}
			return nil
		})
		if err != nil {
			t.Fatalf("read %s %s: %v\n%s", pt.ID, pt.Range, err, describe(plan))
		}
		if read != c {
			t.Errorf("%s %s: Count says %d rows, Read gave %d", pt.ID, pt.Range, c, read)
		}
		if pt.Range.Nulls && nullable && c == 0 {
			t.Errorf("NULL-key partition is empty, but the table has NULL keys")
		}
	}
	if sum != total || int64(len(seen)) != total {
		t.Fatalf("partitions count %d rows and read %d distinct rows; the table has %d\n%s", sum, len(seen), total, describe(plan))
	}
}

// sameTypes checks that a key read from the source has the Go types of the
// plan's bounds: a connector whose Stats and Read disagree on a key's type
// would make range predicates compare different things.
func sameTypes(k connectors.Key, r connectors.Range) error {
	for _, b := range []connectors.Key{r.Lo, r.Hi} {
		if b == nil {
			continue
		}
		for i := range k {
			if k[i] != nil && reflect.TypeOf(k[i]) != reflect.TypeOf(b[i]) {
				return fmt.Errorf("key %s read as %T in column %d, the plan's bound %s has %T", k, k[i], i, b, b[i])
			}
		}
	}
	return nil
}

// TestPostgresSkewedMillion plans a million-row PostgreSQL table with 90% of
// its rows in 1% of the key range from the statistics PostgreSQL keeps, and
// counts the real partitions.
func TestPostgresSkewedMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("million-row table")
	}
	s := stores[0].open(t)
	db := s.open(t)
	for _, q := range []string{
		"CREATE TABLE skew (id bigint PRIMARY KEY, v int NOT NULL)",
		// 900,000 keys in [11, 9,900,000], 100,000 in (10,000,000, 1,000,000,000].
		"INSERT INTO skew SELECT g * 11, 0 FROM generate_series(1, 900000) g",
		"INSERT INTO skew SELECT 10000000 + g * 9900, 0 FROM generate_series(1, 100000) g",
		"ANALYZE skew",
	} {
		s.exec(t, db, q)
	}
	ctx := context.Background()
	src, err := postgres.OpenSource(ctx, connectors.SourceConfig{DSN: s.dsn, Table: "skew", Key: []string{"id"}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	checkSkewBalance(t, src)
}

// checkSkewBalance plans the million-row table skew into 16 partitions and
// checks with real counts that the largest holds at most 1.5× the mean.
func checkSkewBalance(t *testing.T, src connectors.Source) {
	t.Helper()
	ctx := context.Background()
	const parts = 16
	// 256 sampled keys per partition: what DefaultSampleSize gives 16 slots.
	plan, err := partitioner.PlanSource(ctx, src, []string{"id"}, partitioner.Options{
		TargetRows: 1_000_000 / parts, MaxPartitions: 64, SampleSize: partitioner.DefaultSampleSize(parts)})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Validate(); err != nil {
		t.Fatal(err)
	}
	counter := src.(connectors.Counter)
	counts := make([]int64, len(plan.Partitions))
	var sum int64
	for i, pt := range plan.Partitions {
		if counts[i], err = counter.Count(ctx, pt.Range); err != nil {
			t.Fatal(err)
		}
		sum += counts[i]
	}
	ratio := maxOverMean(counts)
	t.Logf("%s\n%d partitions, real rows %v, max/mean %.3f", plan.Reason, len(counts), counts, ratio)
	if sum != 1_000_000 {
		t.Fatalf("partitions hold %d rows, the table 1000000\n%s", sum, describe(plan))
	}
	// The row count is an estimate: one partition more or less is fine.
	if len(counts) < parts-1 || len(counts) > parts+1 {
		t.Errorf("%d partitions, want about %d\n%s", len(counts), parts, describe(plan))
	}
	if ratio > 1.5 {
		t.Errorf("largest partition is %.2f× the mean\n%s", ratio, describe(plan))
	}
}

// TestSQLiteSkewedMillion is TestPostgresSkewedMillion on SQLite, whose
// connector samples a big table by probing its rowids.
func TestSQLiteSkewedMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("million-row table")
	}
	s := stores[2].open(t)
	db := s.open(t)
	for _, q := range []string{
		"CREATE TABLE skew (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
		// 900,000 keys in [11, 9,900,000], 100,000 in (10,000,000, 1,000,000,000].
		"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 900000) INSERT INTO skew SELECT n * 11, 0 FROM g",
		"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100000) INSERT INTO skew SELECT 10000000 + n * 9900, 0 FROM g",
	} {
		s.exec(t, db, q)
	}
	checkSkewBalance(t, s.source(t, "skew", []string{"id"}))
}

// TestMariaDBSkewedMillion is TestPostgresSkewedMillion on MariaDB.
func TestMariaDBSkewedMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("million-row table")
	}
	s := stores[1].open(t)
	db := s.open(t)
	for _, q := range []string{
		"CREATE TABLE skew (id BIGINT PRIMARY KEY, v INT NOT NULL)",
		// seq_1_to_N is MariaDB's sequence engine.
		"INSERT INTO skew SELECT seq * 11, 0 FROM seq_1_to_900000",
		"INSERT INTO skew SELECT 10000000 + seq * 9900, 0 FROM seq_1_to_100000",
		"ANALYZE TABLE skew",
	} {
		s.exec(t, db, q)
	}
	checkSkewBalance(t, s.source(t, "skew", []string{"id"}))
}
