package mysql

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/datashift/datashift/connectors"
)

// checkRanges reads src (whose Columns are its key columns) over ranges
// bounded by every pair of bounds and compares with the rows a byte-order
// filter over all keys picks, in order. It also checks Count.
func checkRanges(t *testing.T, src *source, all []connectors.Key, nulls int, bounds []connectors.Key) {
	t.Helper()
	sorted := slices.Clone(all)
	slices.SortStableFunc(sorted, connectors.CompareKeys)
	keysOf := func(r connectors.Range) []connectors.Key {
		rows, _ := readAll(t, src, r)
		out := make([]connectors.Key, len(rows))
		for i, row := range rows {
			out[i] = connectors.Key(row)
		}
		return out
	}
	same := func(r connectors.Range, got, want []connectors.Key) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("range %s: %d rows, want %d\n got %v\nwant %v", r, len(got), len(want), got, want)
			return
		}
		for i := range got {
			if connectors.CompareKeys(got[i], want[i]) != 0 {
				t.Errorf("range %s: row %d is %s, want %s (got %v)", r, i, got[i], want[i], got)
				return
			}
		}
		n, err := src.Count(testCtx(t), r)
		if err != nil || n != int64(len(want)) {
			t.Errorf("range %s: Count = %d, %v; want %d", r, n, err, len(want))
		}
	}
	same(connectors.Range{}, keysOf(connectors.Range{}), sorted)
	if got := keysOf(connectors.Range{Nulls: true}); len(got) != nulls {
		t.Errorf("NULL range: %d rows, want %d", len(got), nulls)
	}
	bounds = append(bounds, nil)
	for _, lo := range bounds {
		for _, hi := range bounds {
			var want, wantAfter []connectors.Key
			for _, k := range sorted {
				if hi != nil && connectors.CompareKeys(k, hi) >= 0 {
					continue
				}
				if lo == nil || connectors.CompareKeys(k, lo) >= 0 {
					want = append(want, k)
				}
				if lo == nil || connectors.CompareKeys(k, lo) > 0 {
					wantAfter = append(wantAfter, k)
				}
			}
			r := connectors.Range{Lo: lo, Hi: hi}
			same(r, keysOf(r), want)
			if lo != nil {
				r = connectors.Range{After: lo, Hi: hi}
				same(r, keysOf(r), wantAfter)
				// After replaces Lo.
				r = connectors.Range{Lo: connectors.Key(nil), After: lo, Hi: hi}
				same(r, keysOf(r), wantAfter)
			}
		}
	}
}

// Text that differs in case, accents, trailing space and script, under a
// case-insensitive collation, ranges and sorts by its UTF-8 bytes.
var trickyTexts = []string{"a", "A", "b", "B", "Z", "z", "é", "e", "ß", "ss", "a ", "a\t", "", "😀", "中", "Ä", "ab", "a\u0301"}

func TestRangesText(t *testing.T) {
	dsn, db := testDB(t)
	// The database default collation is utf8mb4_unicode_ci: 'a' = 'A' = 'a '.
	exec(t, db, `CREATE TABLE tx (id INT PRIMARY KEY, k VARCHAR(20), kb VARCHAR(20) COLLATE utf8mb4_nopad_bin,
		kl VARCHAR(20) CHARACTER SET latin1, KEY (k), KEY (kb))`)
	var all []connectors.Key
	for i, s := range trickyTexts {
		latin := any(s)
		if strings.ContainsAny(s, "😀中ß") || strings.Contains(s, "\u0301") {
			latin = nil // not in latin1
		}
		exec(t, db, "INSERT INTO tx VALUES (?, ?, ?, ?)", i, s, s, latin)
		all = append(all, connectors.Key{s})
	}
	exec(t, db, "INSERT INTO tx VALUES (100, NULL, NULL, NULL), (101, NULL, NULL, NULL)")
	bounds := []connectors.Key{{"a"}, {"A"}, {"a "}, {"B"}, {"b"}, {"é"}, {"z"}, {"😀"}, {""}, {"aa"}}
	for _, col := range []string{"k", "kb"} {
		t.Run(col, func(t *testing.T) {
			src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "tx", Key: []string{col}, Columns: []string{col}})
			checkRanges(t, src, all, 2, bounds)
		})
	}
	t.Run("latin1", func(t *testing.T) {
		var latin []connectors.Key
		for _, k := range all {
			s := k[0].(string)
			if !strings.ContainsAny(s, "😀中ß") && !strings.Contains(s, "\u0301") {
				latin = append(latin, k)
			}
		}
		src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "tx", Key: []string{"kl"}, Columns: []string{"kl"}})
		checkRanges(t, src, latin, 2+4, bounds)
	})
	// A byte-order collation keeps the plain comparison (and its index).
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "tx", Key: []string{"kb"}})
	if e := src.keys[0].keyExpr(""); e != "`kb`" {
		t.Errorf("nopad_bin key expression %s, want the bare column", e)
	}
	src = openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "tx", Key: []string{"k"}})
	if e := src.keys[0].keyExpr(""); e != "CAST(`k` AS BINARY)" {
		t.Errorf("unicode_ci key expression %s", e)
	}
}

func TestRangesComposite(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE c (a INT NULL, b VARCHAR(10) NULL, v INT, UNIQUE KEY (a, b))")
	var all []connectors.Key
	for a := 1; a <= 4; a++ {
		for _, b := range []string{"a", "B", "c", "é", "Z", ""} {
			exec(t, db, "INSERT INTO c VALUES (?, ?, 0)", a, b)
			all = append(all, connectors.Key{int64(a), b})
		}
	}
	exec(t, db, "INSERT INTO c VALUES (NULL, 'a', 0), (2, NULL, 0), (NULL, NULL, 0)")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "c", Key: []string{"a", "b"}, Columns: []string{"a", "b"}})
	bounds := []connectors.Key{{int64(1), "a"}, {int64(2), "B"}, {int64(2), "Z"}, {int64(2), "zz"}, {int64(3), ""}, {int64(0), "x"}, {int64(4), "é"}}
	checkRanges(t, src, all, 3, bounds)
}

func TestRangesUUIDAndTime(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE u (u UUID PRIMARY KEY, t DATETIME(6) NOT NULL, KEY (t))")
	uuids := []string{"00000000-0000-1000-8000-000000000002", "00000000-0000-1000-8000-000000000001",
		"00000001-0000-1000-8000-000000000000", "ffffffff-0000-4000-8000-000000000000",
		"00000000-0000-4000-8000-000000000009", "7fffffff-ffff-1fff-bfff-ffffffffffff"}
	var all, times []connectors.Key
	for i, s := range uuids {
		exec(t, db, "INSERT INTO u VALUES (?, ?)", s, fmt.Sprintf("2020-01-0%d 00:00:00.00000%d", i+1, i))
		u, _ := connectors.ParseUUID(s)
		all = append(all, connectors.Key{u})
	}
	var ub []connectors.Key
	for _, s := range []string{"00000000-0000-1000-8000-000000000002", "00000001-0000-0000-0000-000000000000", "7fffffff-ffff-1fff-bfff-ffffffffffff"} {
		u, _ := connectors.ParseUUID(s)
		ub = append(ub, connectors.Key{u})
	}
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "u", Key: []string{"u"}, Columns: []string{"u"}})
	checkRanges(t, src, all, 0, ub)

	src = openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "u", Key: []string{"t"}, Columns: []string{"t"}})
	rows, _ := readAll(t, src, connectors.Range{})
	for _, r := range rows {
		times = append(times, connectors.Key(r))
	}
	checkRanges(t, src, times, 0, []connectors.Key{times[2], times[4]})
}

// The plain integer-key range read uses the primary key: a range scan, not
// a full scan and sort.
func TestIntegerRangeUsesIndex(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(10))")
	exec(t, db, "INSERT INTO big SELECT seq, 'x' FROM seq_1_to_20000")
	exec(t, db, "ANALYZE TABLE big")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "big", Key: []string{"id"}})
	for _, r := range []connectors.Range{
		{Lo: connectors.Key{int64(100)}, Hi: connectors.Key{int64(200)}},
		{After: connectors.Key{int64(19900)}},
	} {
		q, args, err := src.query(src.selectAs, r, true)
		if err != nil {
			t.Fatal(err)
		}
		typ, extra := explain(t, db, q, args)
		if typ != "range" || strings.Contains(extra, "filesort") {
			t.Errorf("EXPLAIN %s: type %q extra %q, want a range scan without filesort", q, typ, extra)
		}
	}
	// Composite integer keys keep a range on the leading column.
	exec(t, db, "CREATE TABLE big2 (a INT, b INT, PRIMARY KEY (a, b))")
	exec(t, db, "INSERT INTO big2 SELECT seq DIV 100, seq MOD 100 FROM seq_1_to_20000")
	exec(t, db, "ANALYZE TABLE big2")
	src = openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "big2", Key: []string{"a", "b"}})
	q, args, _ := src.query(src.selectAs, connectors.Range{After: connectors.Key{int64(150), int64(5)}, Hi: connectors.Key{int64(152), int64(0)}}, true)
	if typ, extra := explain(t, db, q, args); typ != "range" || strings.Contains(extra, "filesort") {
		t.Errorf("EXPLAIN %s: type %q extra %q", q, typ, extra)
	}
}

func explain(t *testing.T, db *sql.DB, q string, args []any) (typ, extra string) {
	t.Helper()
	rows, err := db.Query("EXPLAIN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			switch c {
			case "type":
				typ = vals[i].String
			case "Extra":
				extra = vals[i].String
			}
		}
	}
	return typ, extra
}
