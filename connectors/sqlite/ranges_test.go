package sqlite

import (
	"context"
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
	w, err := s.OpenWriter(context.Background(), connectors.WriterSpec{Partition: "all", Schema: rec.Schema()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.Close()
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "c", Key: []string{"g", "name"}, BatchRows: 7})
	checkRanges(t, src, keys, compositeRanges(), []int{0, 1})
}

// TestResumeDeletesInsideRange: a resumed writer removes exactly the rows
// of its range past the checkpoint, for composite text keys in a NOCASE
// column, and nothing outside the range.
func TestResumeDeletesInsideRange(t *testing.T) {
	rec, keys := compositeRows(t)
	defer rec.Release()
	ctx := context.Background()
	k := func(g int64, n string) connectors.Key { return connectors.Key{g, n} }
	cases := []struct {
		r    connectors.Range
		last connectors.Key
	}{
		{connectors.Range{Lo: k(1, "B"), Hi: k(2, "é")}, k(1, "a")},
		{connectors.Range{Lo: k(1, "B"), Hi: k(2, "é")}, nil},
		{connectors.Range{Hi: k(1, "Z")}, k(-5, "🚀")},
		{connectors.Range{Lo: k(2, "a")}, k(3, "ß")},
		{connectors.Range{Lo: k(2, "a")}, k(9, "")}, // past the end: nothing goes
		{connectors.Range{Nulls: true}, k(2, "")},   // the NULL range is removed whole
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
			w, _ := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "all", Schema: rec.Schema()})
			w.Write(ctx, rec)
			if _, err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			w.Close()
			w, err = s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p", Range: c.r, Schema: rec.Schema(),
				Resume: &connectors.ResumePoint{LastKey: c.last}})
			if err != nil {
				t.Fatal(err)
			}
			w.Close()

			removed := c.r
			if c.last != nil {
				removed = c.r.Resumed(c.last)
			}
			var want []connectors.Key
			for _, key := range keys {
				if !removed.Contains(key) {
					want = append(want, key)
				}
			}
			src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "c"})
			var got []connectors.Key
			src.Read(ctx, connectors.Range{}, func(rec arrow.RecordBatch) error {
				for i := 0; i < int(rec.NumRows()); i++ {
					got = append(got, connectors.KeyOf(rec, []int{0, 1}, i))
				}
				return nil
			})
			less := func(ks []connectors.Key) func(i, j int) bool {
				return func(i, j int) bool { return connectors.CompareKeys(ks[i], ks[j]) < 0 }
			}
			sort.Slice(got, less(got))
			sort.Slice(want, less(want))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after resuming %s past %v the table holds\n%v\nwant\n%v", c.r, c.last, got, want)
			}
			t.Logf("removed %d of %d rows", len(keys)-len(got), len(keys))
		})
	}
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
