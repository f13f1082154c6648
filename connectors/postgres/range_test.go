package postgres

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/datashift/datashift/connectors"
	"github.com/jackc/pgx/v5"
)

func k(vs ...any) connectors.Key { return connectors.Key(vs) }

// checkRange reads r and counts it, and compares the first column with want.
func checkRange[T comparable](t *testing.T, s *Source, r connectors.Range, want []T) {
	t.Helper()
	rows := readRows(t, s, r)
	got := make([]T, len(rows))
	for i, row := range rows {
		got[i], _ = row[0].(T)
	}
	if !slices.Equal(got, want) {
		t.Errorf("range %s: got %v, want %v", r, got, want)
	}
	n, err := s.Count(testCtx(t), r)
	if err != nil || n != int64(len(want)) {
		t.Errorf("count %s = %d, %v; want %d", r, n, err, len(want))
	}
}

func TestIntRanges(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE nums (k int, v text);
		INSERT INTO nums SELECT g, 'v' || g FROM generate_series(20, 1, -1) g;
		INSERT INTO nums VALUES (NULL, 'n1'), (NULL, 'n2'), (NULL, 'n3')`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "nums", Key: []string{"k"}, BatchRows: 4})
	seq := func(lo, hi int64) []int64 {
		var out []int64
		for i := lo; i <= hi; i++ {
			out = append(out, i)
		}
		return out
	}
	checkRange(t, s, connectors.Range{}, seq(1, 20))
	checkRange(t, s, connectors.Range{Lo: k(int64(5)), Hi: k(int64(10))}, seq(5, 9))
	checkRange(t, s, connectors.Range{Lo: k(int64(5))}, seq(5, 20))
	checkRange(t, s, connectors.Range{Hi: k(int64(3))}, seq(1, 2))
	checkRange(t, s, connectors.Range{Lo: k(int64(5)), After: k(int64(7)), Hi: k(int64(10))}, seq(8, 9))
	checkRange(t, s, connectors.Range{After: k(int64(20))}, []int64(nil))
	// NULL keys: their own range, never in a bounded one.
	rows := readRows(t, s, connectors.Range{Nulls: true})
	var vs []string
	for _, r := range rows {
		if r[0] != nil {
			t.Errorf("Nulls range gave key %v", r[0])
		}
		vs = append(vs, r[1].(string))
	}
	sort.Strings(vs)
	if strings.Join(vs, ",") != "n1,n2,n3" {
		t.Errorf("Nulls range: %v", vs)
	}
	if n, _ := s.Count(testCtx(t), connectors.Range{Nulls: true}); n != 3 {
		t.Errorf("count of NULL keys %d, want 3", n)
	}
	// A bound with the wrong number of values is refused, naming it.
	err := s.Read(testCtx(t), connectors.Range{Lo: k(int64(1), int64(2))}, func(arrow.RecordBatch) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "has 2 values for 1 key columns") {
		t.Errorf("two-value bound on one key: %v", err)
	}
}

// Text keys compare by UTF-8 bytes whatever the column's collation: the
// en-x-icu column sorts 'a' before 'B' itself, byte order does not.
func TestTextKeyByteOrder(t *testing.T) {
	dsn, conn := newDB(t)
	words := []string{"a", "B", "b", "Z", "é", "e", "ä", "😀", "aa", "A", "", "Ω", "a b", "a\tb"}
	for _, coll := range []string{`"en-x-icu"`, `"C"`, `"C.utf8"`, `"default"`, `"ucs_basic"`} {
		t.Run(coll, func(t *testing.T) {
			table := "words_" + strings.NewReplacer("-", "_", ".", "_", `"`, "").Replace(coll)
			mustExec(t, conn, fmt.Sprintf(`CREATE TABLE %s (w text COLLATE %s PRIMARY KEY, n int)`, table, coll))
			for i, w := range words {
				mustExec(t, conn, "INSERT INTO "+table+" VALUES ($1, $2)", w, i)
			}
			s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: table, Key: []string{"w"}, BatchRows: 3})
			sorted := slices.Clone(words)
			sort.Strings(sorted) // Go compares strings by bytes
			between := func(lo, hi string, loIncl bool) []string {
				var out []string
				for _, w := range sorted {
					if (w > lo || loIncl && w == lo) && w < hi {
						out = append(out, w)
					}
				}
				return out
			}
			checkRange(t, s, connectors.Range{}, sorted)
			checkRange(t, s, connectors.Range{Lo: k("B"), Hi: k("b")}, between("B", "b", true))
			checkRange(t, s, connectors.Range{Lo: k("B"), After: k("a"), Hi: k("é")}, between("a", "é", false))
			checkRange(t, s, connectors.Range{Lo: k(""), Hi: k("a")}, between("", "a", true))
			checkRange(t, s, connectors.Range{Lo: k("ä")}, between("ä", "\U0010FFFF", true))
			// Quotes and backslashes in a bound are data, not SQL.
			checkRange(t, s, connectors.Range{Lo: k(`a'; DROP TABLE x; --\`), Hi: k("b")}, between(`a'; DROP TABLE x; --\`, "b", true))
			// A collation that is byte order already needs no COLLATE "C",
			// so the primary key index serves the range.
			q, err := s.selectSQL(connectors.Range{Lo: k("B"), Hi: k("b")}, s.selList, true)
			if err != nil {
				t.Fatal(err)
			}
			byteOrder := coll != `"en-x-icu"`
			if coll == `"default"` { // depends on how the cluster was initialised
				err := conn.QueryRow(testCtx(t), "SELECT "+byteOrderLocale("datcollate")+" FROM pg_database WHERE datname = current_database()").Scan(&byteOrder)
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := !strings.Contains(q, `COLLATE "C"`); got != byteOrder {
				t.Errorf("collation %s: byte order %v, want %v: %s", coll, got, byteOrder, q)
			}
			mustExec(t, conn, "SET enable_seqscan = off")
			defer mustExec(t, conn, "RESET enable_seqscan")
			rows, err := conn.Query(testCtx(t), "EXPLAIN (COSTS OFF) "+q)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n")
			if byteOrder && !strings.Contains(plan, "Index Cond") {
				t.Errorf("collation %s: range read does not use the index: %s", coll, plan)
			}
		})
	}
}

func TestCompositeKey(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE comp (a int, b text COLLATE "en-x-icu", v int);
		INSERT INTO comp VALUES (1, 'a', 1), (1, 'B', 2), (2, 'x', 3), (2, NULL, 4), (NULL, 'y', 5), (3, 'A', 6), (0, 'zz', 7)`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "comp", Key: []string{"a", "b"}, Columns: []string{"v", "a", "b"}})
	checkRange(t, s, connectors.Range{}, []int64{7, 2, 1, 3, 6})
	checkRange(t, s, connectors.Range{Lo: k(int64(1), "a"), Hi: k(int64(2), "z")}, []int64{1, 3})
	checkRange(t, s, connectors.Range{Lo: k(int64(1), "B"), After: k(int64(1), "B")}, []int64{1, 3, 6})
	// (2, NULL) < (3, …) holds as a row comparison; the NULL key must still
	// stay out of a bounded range.
	checkRange(t, s, connectors.Range{Hi: k(int64(3), "")}, []int64{7, 2, 1, 3})
	rows := readRows(t, s, connectors.Range{Nulls: true})
	var vs []int64
	for _, r := range rows {
		vs = append(vs, r[0].(int64))
	}
	slices.Sort(vs)
	if !slices.Equal(vs, []int64{4, 5}) {
		t.Errorf("Nulls range of a composite key: %v, want [4 5]", vs)
	}
}

// Bounds taken from the keys the source itself produced (as the engine takes
// checkpoints with connectors.KeyOf) select exactly the rows between them, for
// every key type.
func TestKeyTypesAsBounds(t *testing.T) {
	dsn, conn := newDB(t)
	cases := []struct{ typ, values string }{
		{"bigint", "-9223372036854775808, -1, 0, 1, 2, 3, 9223372036854775807"},
		{"smallint", "-32768, -1, 0, 1, 2, 3, 32767"},
		{"numeric(10,2)", "-99999999.99, -1.5, 0, 0.01, 2.5, 10, 99999999.99"},
		{"numeric", "-1e30, -1.5, 0, 0.000000000000000000001, 2.5, 10, 1e40"},
		{"double precision", "'-Infinity', -1.5, 0, 1e-300, 2.5, 1e300, 'NaN'"},
		{"uuid", "'00000000-0000-0000-0000-000000000000', '0fffffff-0000-0000-0000-000000000000', '10000000-0000-0000-0000-000000000000', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'f0000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-fffffffffff0', 'ffffffff-ffff-ffff-ffff-ffffffffffff'"},
		{"timestamptz", "'0044-03-15 12:00:00+00 BC', '1969-12-31 23:59:59.999999+00', '1970-01-01 00:00:00+00', '2000-01-01 00:00:00.000001+00', '2024-06-30 12:34:56.789012+02', '2024-06-30 12:34:56.789013+02', '9999-12-31 23:59:59.999999+00'"},
		{"timestamp", "'0001-01-01 00:00:00 BC', '1969-12-31 23:59:59.999999', '1970-01-01 00:00:00', '2000-01-01 00:00:00.000001', '2024-06-30 12:34:56.789012', '2024-06-30 12:34:56.789013', '9999-12-31 23:59:59.999999'"},
		{"date", "'4713-01-01 BC', '0001-12-31 BC', '0001-01-01', '1970-01-01', '2000-02-29', '2024-01-01', '9999-12-31'"},
		{"bytea", `'\x', '\x00', '\x0000', '\x01', '\x7f', '\x80', '\xff'`},
		{"varchar(20)", `'', 'A', 'B''s', 'a', 'a\', 'é', '😀'`},
		{"time", "'00:00:00', '00:00:00.000001', '01:00:00', '12:00:00', '12:00:00.5', '23:59:59.999999', '24:00:00'"},
	}
	for i, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			table := fmt.Sprintf("kt%d", i)
			mustExec(t, conn, fmt.Sprintf("CREATE TABLE %s (k %s, pos int)", table, c.typ))
			for j, v := range strings.Split(c.values, ", ") {
				mustExec(t, conn, fmt.Sprintf("INSERT INTO %s VALUES (%s, %d)", table, v, j))
			}
			s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: table, Key: []string{"k"}, Columns: []string{"pos", "k"}})
			var keys []connectors.Key
			err := s.Read(testCtx(t), connectors.Range{}, func(rec arrow.RecordBatch) error {
				for r := 0; r < int(rec.NumRows()); r++ {
					if got := rec.Column(0).(interface{ Value(int) int32 }).Value(r); int(got) != len(keys) {
						t.Errorf("row %d has pos %d: not in key order", len(keys), got)
					}
					keys = append(keys, connectors.KeyOf(rec, []int{1}, r))
				}
				return nil
			})
			if err != nil || len(keys) != 7 {
				t.Fatalf("read: %d keys, %v", len(keys), err)
			}
			checkRange(t, s, connectors.Range{Lo: keys[1], Hi: keys[5]}, []int64{1, 2, 3, 4})
			checkRange(t, s, connectors.Range{Lo: keys[1], After: keys[2], Hi: keys[6]}, []int64{3, 4, 5})
			checkRange(t, s, connectors.Range{Lo: keys[6]}, []int64{6})
			checkRange(t, s, connectors.Range{Hi: keys[0]}, []int64(nil))
		})
	}
}

func TestPagesRange(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE heap (v int, pad text); INSERT INTO heap SELECT g, repeat('x', 200) FROM generate_series(1, 3000) g`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "heap"})
	pages := queryInt(t, conn, "SELECT pg_relation_size('heap') / 8192")
	if pages < 10 {
		t.Fatalf("only %d pages", pages)
	}
	var all connectors.Checksum
	total := int64(0)
	for _, pr := range []connectors.PageRange{{Lo: 0, Hi: 3}, {Lo: 3, Hi: pages / 2}, {Lo: pages / 2, Hi: 0}} {
		r := connectors.Range{Pages: &pr}
		n, err := s.Count(testCtx(t), r)
		if err != nil || n == 0 {
			t.Errorf("count %s = %d, %v", r, n, err)
		}
		total += n
		if err := s.Read(testCtx(t), r, func(rec arrow.RecordBatch) error { all.Add(rec, nil); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	whole := checksum(t, s)
	if total != 3000 || all != whole {
		t.Errorf("pages give %d rows (%s), the table %s", total, all, whole)
	}
}

func TestQuerySourceAndFilters(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE q (id bigint PRIMARY KEY, grp text NOT NULL, amount numeric(8,2));
		INSERT INTO q SELECT g, CASE WHEN g % 3 = 0 THEN 'x' ELSE 'y' END, g * 1.25 FROM generate_series(1, 100) g`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn,
		Query: "SELECT id, grp, amount * 2 AS doubled, now() AS at FROM q WHERE grp = 'x' -- trailing comment",
		Key:   []string{"id"}, Columns: []string{"doubled", "id"}, Where: "id > 50 -- another", BatchRows: 7})
	schema, _ := s.Schema(testCtx(t))
	if schema.NumFields() != 2 || schema.Field(0).Name != "doubled" || schema.Field(1).Name != "id" {
		t.Fatalf("schema %v", schema)
	}
	rows := readRows(t, s, connectors.Range{Lo: k(int64(60)), Hi: k(int64(70))})
	want := [][]any{{"150.00", int64(60)}, {"157.50", int64(63)}, {"165.00", int64(66)}, {"172.50", int64(69)}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", rows, want)
	}
	if n, err := s.Count(testCtx(t), connectors.Range{}); n != 17 || err != nil {
		t.Errorf("count = %d, %v; want 17 (multiples of 3 in 51..100)", n, err)
	}
	err := s.Read(testCtx(t), connectors.Range{Pages: &connectors.PageRange{Lo: 0}}, func(arrow.RecordBatch) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "cannot be read by pages") {
		t.Errorf("pages on a query: %v", err)
	}
}
