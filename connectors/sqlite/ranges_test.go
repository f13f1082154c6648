package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

// Text keys whose byte order differs from NOCASE and from any locale's.
var textKeys = []string{"", "A", "B", "Z", "a", "aa", "b", "z", "É", "é", "ß", "日本", "🚀", "a b", "a\tb"}

// readKeysOf reads r and returns the key column values in read order.
func readKeysOf(t *testing.T, src connectors.Source, r connectors.Range, keyCols []int) []connectors.Key {
	t.Helper()
	var out []connectors.Key
	err := src.Read(context.Background(), r, func(rec arrow.RecordBatch) error {
		for i := 0; i < int(rec.NumRows()); i++ {
			out = append(out, connectors.KeyOf(rec, keyCols, i))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", r, err)
	}
	return out
}

// checkRanges reads every range and compares with the reference: the same
// keys, in key order (NULL-key rows in any order), and Count agrees.
func checkRanges(t *testing.T, src connectors.Source, all []connectors.Key, ranges []connectors.Range, keyCols []int) {
	t.Helper()
	checked := 0
	for _, r := range ranges {
		var want []connectors.Key
		for _, k := range all {
			if r.Contains(k) {
				want = append(want, k)
			}
		}
		sort.Slice(want, func(i, j int) bool { return connectors.CompareKeys(want[i], want[j]) < 0 })
		got := readKeysOf(t, src, r, keyCols)
		if r.Nulls {
			sort.Slice(got, func(i, j int) bool { return connectors.CompareKeys(got[i], got[j]) < 0 })
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("range %s:\n got %v\nwant %v", r, got, want)
		}
		n, err := src.(connectors.Counter).Count(context.Background(), r)
		if err != nil || n != int64(len(want)) {
			t.Fatalf("count %s: got %d (%v), want %d", r, n, err, len(want))
		}
		checked++
	}
	t.Logf("%d ranges checked over %d rows", checked, len(all))
}

// TestTextKeyRanges: a text key declared COLLATE NOCASE is still ordered
// and bounded by its bytes.
func TestTextKeyRanges(t *testing.T) {
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE t (k TEXT COLLATE NOCASE, v INTEGER)`)
	mustExec(t, db, `CREATE INDEX t_k ON t (k)`) // a NOCASE index the reads must not trust
	var all []connectors.Key
	for i, k := range textKeys {
		mustExec(t, db, `INSERT INTO t VALUES (?, ?)`, k, i)
		all = append(all, connectors.Key{k})
	}
	mustExec(t, db, `INSERT INTO t VALUES (NULL, 100), (NULL, 101)`)
	all = append(all, connectors.Key{nil}, connectors.Key{nil})

	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "t", Key: []string{"k"}, BatchRows: 4})
	if s, _ := src.Schema(context.Background()); !s.Field(0).Nullable {
		t.Fatal("a TEXT column outside any primary key reads as NOT NULL")
	}
	bounds := append([]string{"0", "AZ", "a a", "ä", "zz", "\U0010ffff"}, textKeys...)
	ranges := []connectors.Range{{}, {Nulls: true}}
	for _, lo := range bounds {
		ranges = append(ranges, connectors.Range{Lo: connectors.Key{lo}}, connectors.Range{Hi: connectors.Key{lo}},
			connectors.Range{After: connectors.Key{lo}})
		for j, hi := range bounds {
			if lo < hi && j%2 == 0 { // every other upper bound keeps the test quick
				ranges = append(ranges, connectors.Range{Lo: connectors.Key{lo}, Hi: connectors.Key{hi}},
					connectors.Range{Lo: connectors.Key{""}, After: connectors.Key{lo}, Hi: connectors.Key{hi}})
			}
		}
	}
	checkRanges(t, src, all, ranges, []int{0})
}

// compositeRows are (g, name) keys with NULLs in either column.
func compositeRows(t *testing.T) (arrow.RecordBatch, []connectors.Key) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "g", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "v", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	var keys []connectors.Key
	add := func(g any, name any) {
		if g == nil {
			b.Field(0).AppendNull()
		} else {
			b.Field(0).(*array.Int64Builder).Append(g.(int64))
		}
		if name == nil {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(name.(string))
		}
		b.Field(2).(*array.Int64Builder).Append(int64(len(keys)))
		keys = append(keys, connectors.Key{g, name})
	}
	for _, g := range []int64{-5, 1, 2, 3} {
		for _, n := range textKeys {
			add(g, n)
		}
	}
	add(nil, "x")
	add(int64(2), nil)
	add(nil, nil)
	return b.NewRecordBatch(), keys
}

func compositeRanges() []connectors.Range {
	k := func(g int64, n string) connectors.Key { return connectors.Key{g, n} }
	bounds := []connectors.Key{k(-10, ""), k(-5, ""), k(1, "B"), k(1, "b"), k(2, ""), k(2, "a"), k(2, "é"), k(2, "🚀"), k(3, "A"), k(4, "")}
	ranges := []connectors.Range{{}, {Nulls: true}}
	for i, lo := range bounds {
		ranges = append(ranges, connectors.Range{Lo: lo}, connectors.Range{Hi: lo}, connectors.Range{After: lo})
		for _, hi := range bounds[i+1:] {
			ranges = append(ranges, connectors.Range{Lo: lo, Hi: hi}, connectors.Range{Lo: bounds[0], After: lo, Hi: hi})
		}
	}
	return ranges
}

func TestCompositeKeyRanges(t *testing.T) {
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	// NOCASE on the second key column; no primary key so that NULLs fit.
	mustExec(t, db, `CREATE TABLE c (g INTEGER, name TEXT COLLATE NOCASE, v INTEGER NOT NULL)`)
	rec, keys := compositeRows(t)
	defer rec.Release()
	s, err := connectors.OpenSink(context.Background(), TypeName, connectors.SinkConfig{DSN: dsn, Table: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(context.Background(), rec.Schema(), false); err != nil {
		t.Fatal(err)
	}
	writePart(t, s, connectors.WriterSpec{Job: "c", Run: "r1", Partition: "all", Lease: 1, Schema: rec.Schema()}, rec)
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "c", Key: []string{"g", "name"}, BatchRows: 7})
	checkRanges(t, src, keys, compositeRanges(), []int{0, 1})
}

// TestResumeDeletesNothing: a partition resumed under a new lease after a
// commit and an abandoned writer continues from the sink's record and
// deletes nothing: the rows others wrote, inside its range and outside,
// stay, and the partition's rows are there once each. Composite text keys
// in a NOCASE column, as the old resume-by-deletion test had.
func TestResumeDeletesNothing(t *testing.T) {
	rec, keys := compositeRows(t)
	defer rec.Release()
	ctx := context.Background()
	k := func(g int64, n string) connectors.Key { return connectors.Key{g, n} }
	cases := []struct {
		r    connectors.Range
		last connectors.Key // the first attempt's position; nil: it committed nothing
	}{
		{connectors.Range{Lo: k(1, "B"), Hi: k(2, "é")}, k(1, "a")},
		{connectors.Range{Lo: k(1, "B"), Hi: k(2, "é")}, nil},
		{connectors.Range{Hi: k(1, "Z")}, k(-5, "🚀")},
		{connectors.Range{Lo: k(2, "a")}, k(3, "ß")},
		{connectors.Range{Lo: k(2, "a")}, k(9, "")}, // the first attempt wrote the whole range
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			dsn := newDB(t)
			db := sqlDB(t, dsn)
			mustExec(t, db, `CREATE TABLE c (g INTEGER, name TEXT COLLATE NOCASE, v INTEGER NOT NULL)`)
			s, err := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dsn, Table: "c", Key: []string{"g", "name"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Prepare(ctx, rec.Schema(), false); err != nil {
				t.Fatal(err)
			}
			// Someone else's rows: every key, inside the range and outside.
			writePart(t, s, connectors.WriterSpec{Job: "others", Run: "x", Partition: "all", Lease: 1, Schema: rec.Schema()}, rec)

			// The partition's rows: the keys of its range, v moved by 1000.
			var mine []int
			for j, key := range keys {
				if c.r.Contains(key) {
					mine = append(mine, j)
				}
			}
			sort.SliceStable(mine, func(a, b int) bool { return connectors.CompareKeys(keys[mine[a]], keys[mine[b]]) < 0 })
			split := 0
			for split < len(mine) && c.last != nil && connectors.CompareKeys(keys[mine[split]], c.last) <= 0 {
				split++
			}
			rows := func(idx []int) arrow.RecordBatch { return pick(t, rec, idx, 1000) }
			first, rest := rows(mine[:split]), rows(mine[split:])
			defer first.Release()
			defer rest.Release()

			spec := connectors.WriterSpec{Job: "copy", Run: "r1", Partition: "p", Lease: 1, Range: c.r, Schema: rec.Schema()}
			got := claim(t, s, spec)
			w, err := s.OpenWriter(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			if c.last != nil {
				w.Write(ctx, first)
				if err := w.Commit(ctx, advance(got, spec, first.NumRows(), c.last)); err != nil {
					t.Fatal(err)
				}
			}
			w.Write(ctx, rest)
			w.Close() // a crash before the commit

			spec.Lease = 2
			got = claim(t, s, spec)
			wantRows := int64(0)
			if c.last != nil {
				wantRows = first.NumRows()
			}
			if (got.Position == nil) != (c.last == nil) || (c.last != nil && connectors.CompareKeys(got.Position, c.last) != 0) || got.Rows != wantRows {
				t.Fatalf("claim under lease 2: %+v, want position %v and %d rows", got, c.last, wantRows)
			}
			w, err = s.OpenWriter(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			w.Write(ctx, rest)
			if err := w.Commit(ctx, advance(got, spec, rest.NumRows(), nil)); err != nil {
				t.Fatal(err)
			}

			var all []string
			for j, key := range keys {
				all = append(all, fmt.Sprint(key, j))
			}
			for _, j := range mine {
				all = append(all, fmt.Sprint(keys[j], j+1000))
			}
			sort.Strings(all)
			have := tableRows(t, db)
			if fmt.Sprint(have) != fmt.Sprint(all) {
				t.Fatalf("after resuming %s past %v the table holds\n%v\nwant\n%v", c.r, c.last, have, all)
			}
		})
	}
}

// pick returns the rows idx of rec (g, name, v) with v moved by dv.
func pick(t *testing.T, rec arrow.RecordBatch, idx []int, dv int64) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, rec.Schema())
	defer b.Release()
	for _, i := range idx {
		if g, ok := connectors.ValueAt(rec.Column(0), i).(int64); ok {
			b.Field(0).(*array.Int64Builder).Append(g)
		} else {
			b.Field(0).AppendNull()
		}
		if name, ok := connectors.ValueAt(rec.Column(1), i).(string); ok {
			b.Field(1).(*array.StringBuilder).Append(name)
		} else {
			b.Field(1).AppendNull()
		}
		b.Field(2).(*array.Int64Builder).Append(connectors.ValueAt(rec.Column(2), i).(int64) + dv)
	}
	return b.NewRecordBatch()
}

// tableRows returns table c's rows as sorted "key v" texts.
func tableRows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT g, name, v FROM c`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g sql.NullInt64
		var name sql.NullString
		var v int64
		if err := rows.Scan(&g, &name, &v); err != nil {
			t.Fatal(err)
		}
		key := connectors.Key{nil, nil}
		if g.Valid {
			key[0] = g.Int64
		}
		if name.Valid {
			key[1] = name.String
		}
		out = append(out, fmt.Sprint(key, v))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestUpsertCompositeKey: rows are replaced by their whole key; keys that
// differ only in case are different rows.
func TestUpsertCompositeKey(t *testing.T) {
	dsn := newDB(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "g", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	batch := func(rows ...any) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		for i := 0; i < len(rows); i += 3 {
			b.Field(0).(*array.Int64Builder).Append(rows[i].(int64))
			b.Field(1).(*array.StringBuilder).Append(rows[i+1].(string))
			if rows[i+2] == nil {
				b.Field(2).AppendNull()
			} else {
				b.Field(2).(*array.Int64Builder).Append(rows[i+2].(int64))
			}
		}
		return b.NewRecordBatch()
	}
	v0 := batch(int64(1), "a", int64(1), int64(1), "A", int64(2), int64(2), "a", int64(3))
	v1 := batch(int64(1), "A", int64(20), int64(2), "a", nil, int64(3), "é", int64(4))
	defer v0.Release()
	defer v1.Release()
	writeTable(t, dsn, "u", connectors.Upsert, []string{"g", "name"}, schema, v0)
	writeTable(t, dsn, "u", connectors.Upsert, []string{"g", "name"}, schema, v1)
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "u", Key: []string{"g", "name"}})
	rows, _ := readRows(t, src, connectors.Range{})
	want := "[[1 A 20] [1 a 1] [2 a <nil>] [3 é 4]]"
	if got := fmt.Sprint(rows); got != want {
		t.Errorf("after two upserts: %s, want %s", got, want)
	}
}
