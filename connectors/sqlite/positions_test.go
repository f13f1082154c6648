package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

// nullKeyTable makes table t (k INTEGER, v INTEGER NOT NULL) of 200 rows,
// every third with a NULL key, with holes in the rowids; it returns the v
// and the rowid of the NULL-key rows in rowid order.
func nullKeyTable(t *testing.T, db *sql.DB) (vs, rowids []int64) {
	t.Helper()
	mustExec(t, db, `CREATE TABLE t (k INTEGER, v INTEGER NOT NULL)`)
	mustExec(t, db, `WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 200)
		INSERT INTO t SELECT CASE WHEN x % 3 = 0 THEN NULL ELSE 1000 - x END, x FROM seq`)
	mustExec(t, db, `DELETE FROM t WHERE v % 7 = 0`)
	rows, err := db.Query(`SELECT rowid, v FROM t WHERE k IS NULL ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		rowids, vs = append(rowids, id), append(vs, v)
	}
	return vs, rowids
}

type posBatch struct {
	vs   []int64 // column col of the batch
	last connectors.Key
}

// readByPosition reads r by position and returns column col of each batch
// with its position, checking that the batches have the source's schema.
func readByPosition(t *testing.T, src connectors.Source, r connectors.Range, col int) []posBatch {
	t.Helper()
	schema, _ := src.Schema(context.Background())
	var out []posBatch
	err := src.(connectors.PositionReader).ReadPositioned(context.Background(), r, func(rec arrow.RecordBatch, last connectors.Key) error {
		if !rec.Schema().Equal(schema) {
			t.Fatalf("read %s by position: batch schema %s, the source's %s", r, rec.Schema(), schema)
		}
		b := posBatch{last: last}
		for i := 0; i < int(rec.NumRows()); i++ {
			b.vs = append(b.vs, connectors.ValueAt(rec.Column(col), i).(int64))
		}
		out = append(out, b)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s by position: %v", r, err)
	}
	return out
}

func flatten(bs []posBatch) []int64 {
	var out []int64
	for _, b := range bs {
		out = append(out, b.vs...)
	}
	return out
}

// TestNullKeyRangeByPosition: the NULL-key range of a keyed table is read by
// rowid: in rowid order, each batch's last rowid its position, the rowid in
// no batch; a read resumed after any position gives exactly the rows that
// followed it, through ReadPositioned, Read and Count alike.
func TestNullKeyRangeByPosition(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	wantV, rowids := nullKeyTable(t, sqlDB(t, dsn))
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "t", Key: []string{"k"}, BatchRows: 5})
	pr := src.(connectors.PositionReader)
	nulls := connectors.Range{Nulls: true}
	for _, c := range []struct {
		r    connectors.Range
		want bool
	}{
		{nulls, true},
		{nulls.Resumed(connectors.Key{int64(3)}), true},
		{connectors.Range{}, false}, // the non-NULL keys, read by key
		{connectors.Range{Lo: connectors.Key{int64(900)}}, false},
	} {
		if got := pr.Positioned(c.r); got != c.want {
			t.Errorf("Positioned(%s) = %v, want %v", c.r, got, c.want)
		}
	}

	all := readByPosition(t, src, nulls, 1)
	if got := flatten(all); !slices.Equal(got, wantV) {
		t.Fatalf("NULL-key rows by position: v %v, want %v (rowid order)", got, wantV)
	}
	seen := 0
	for i, b := range all {
		seen += len(b.vs)
		if want := (connectors.Key{rowids[seen-1]}); connectors.CompareKeys(b.last, want) != 0 {
			t.Fatalf("batch %d: position %s, want the rowid of its last row, %s", i, b.last, want)
		}
	}
	for i, b := range all {
		r := nulls.Resumed(b.last)
		want := flatten(all[i+1:])
		if got := flatten(readByPosition(t, src, r, 1)); !slices.Equal(got, want) {
			t.Fatalf("resumed after batch %d (%s) by position: v %v, want %v", i, b.last, got, want)
		}
		rows, _ := readRows(t, src, r)
		var got []int64
		for _, row := range rows {
			got = append(got, row[1].(int64))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Read resumed after batch %d (%s): v %v, want %v", i, b.last, got, want)
		}
		if n, err := src.(connectors.Counter).Count(ctx, r); err != nil || n != int64(len(want)) {
			t.Fatalf("Count resumed after batch %d: %d (%v), want %d", i, n, err, len(want))
		}
	}
	err := src.Read(ctx, connectors.Range{Nulls: true, After: connectors.Key{"x"}}, func(arrow.RecordBatch) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `position "x" is not a rowid`) {
		t.Errorf("a position that is not a rowid: %v", err)
	}
}

// TestNullKeyPartitionResumes copies the NULL-key range into a sink as the
// engine does: the first attempt commits part of it with its position and
// dies with rows written but not committed; the next lease reads on from
// the sink's record. The target then holds each NULL-key row once.
func TestNullKeyPartitionResumes(t *testing.T) {
	ctx := context.Background()
	srcDSN, dstDSN := newDB(t), newDB(t)
	wantV, _ := nullKeyTable(t, sqlDB(t, srcDSN))
	src := openSrc(t, connectors.SourceConfig{DSN: srcDSN, Table: "t", Key: []string{"k"}, BatchRows: 5})
	pr := src.(connectors.PositionReader)
	schema, _ := src.Schema(ctx)
	s, err := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dstDSN, Table: "t", Key: []string{"k"}, CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(ctx, schema, false); err != nil {
		t.Fatal(err)
	}
	nulls := connectors.Range{Nulls: true}
	spec := connectors.WriterSpec{Job: "copy", Run: "r1", Partition: "nulls", Lease: 1, Range: nulls, Schema: schema}

	// attempt reads on from the claimed record, committing every two
	// batches; after crashAfter batches it stops without committing.
	attempt := func(crashAfter int) {
		rec := claim(t, s, spec)
		w, err := s.OpenWriter(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		n, rows := 0, int64(0)
		err = pr.ReadPositioned(ctx, nulls.Resumed(rec.Position), func(b arrow.RecordBatch, last connectors.Key) error {
			if n == crashAfter {
				return errCrash
			}
			if err := w.Write(ctx, b); err != nil {
				return err
			}
			n, rows = n+1, rows+b.NumRows()
			if n%2 == 0 {
				rec = advance(rec, spec, rows, last)
				rows = 0
				return w.Commit(ctx, rec)
			}
			rec.Position = last // committed with the next commit
			return nil
		})
		if errors.Is(err, errCrash) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		rec = advance(rec, spec, rows, nil)
		rec.Done = true
		if err := w.Commit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	attempt(5) // commits after batches 2 and 4; batch 5 is written, not committed
	got := claim(t, s, spec)
	if got.Rows != 20 || got.Commits != 2 || got.Position == nil {
		t.Fatalf("record after the first attempt: %+v, want 20 rows in 2 commits and a position", got)
	}
	spec.Lease = 2
	attempt(-1)
	if got := claim(t, s, spec); !got.Done || got.Rows != int64(len(wantV)) {
		t.Fatalf("record after the resumed attempt: %+v, want done with %d rows", got, len(wantV))
	}
	dst := openSrc(t, connectors.SourceConfig{DSN: dstDSN, Table: "t"})
	rows, _ := readRows(t, dst, connectors.Range{})
	var v []int64
	for _, row := range rows {
		v = append(v, row[1].(int64))
	}
	slices.Sort(v)
	want := slices.Clone(wantV)
	slices.Sort(want)
	if !slices.Equal(v, want) {
		t.Fatalf("the target holds v %v, want %v once each", v, want)
	}
}

var errCrash = errors.New("crash")

// TestRowidNames: a table whose columns take the name rowid is read by
// another of the rowid's names, and the user's rowid column is read as a
// column; a table whose columns take all three has no position, nor has a
// WITHOUT ROWID table or a query. Where there is no rowid, a resumed
// NULL-key range is refused, not read whole again.
func TestRowidNames(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE shadow (rowid TEXT, v INTEGER NOT NULL)`)
	mustExec(t, db, `INSERT INTO shadow (_rowid_, rowid, v) VALUES (10, 'a', 1), (20, 'b', 2), (30, 'c', 3), (40, 'd', 4), (50, 'e', 5)`)
	mustExec(t, db, `CREATE TABLE taken (rowid TEXT, _rowid_ TEXT, oid TEXT, v INTEGER)`)
	mustExec(t, db, `CREATE TABLE w (id INTEGER PRIMARY KEY, k INTEGER, v INTEGER) WITHOUT ROWID`)
	mustExec(t, db, `INSERT INTO w VALUES (1, NULL, 1), (2, 5, 2), (3, NULL, 3)`)

	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "shadow", BatchRows: 2})
	bs := readByPosition(t, src, connectors.Range{}, 1)
	if got := flatten(bs); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("shadow by position: v %v", got)
	}
	if got := bs[0].last; connectors.CompareKeys(got, connectors.Key{int64(20)}) != 0 {
		t.Fatalf("shadow: first position %s, want the rowid 20", got)
	}
	if got := flatten(readByPosition(t, src, connectors.Range{After: connectors.Key{int64(30)}}, 1)); !slices.Equal(got, []int64{4, 5}) {
		t.Fatalf("shadow after rowid 30: v %v, want [4 5]", got)
	}
	if rows, _ := readRows(t, src, connectors.Range{}); rows[0][0] != "a" {
		t.Fatalf("shadow's rowid column reads %v, want its text", rows[0][0])
	}

	nulls := connectors.Range{Nulls: true}
	for _, c := range []struct {
		cfg connectors.SourceConfig
		r   connectors.Range
	}{
		{connectors.SourceConfig{DSN: dsn, Table: "taken"}, connectors.Range{}},
		{connectors.SourceConfig{DSN: dsn, Table: "w", Key: []string{"k"}}, nulls},
		{connectors.SourceConfig{DSN: dsn, Query: "SELECT v FROM shadow"}, connectors.Range{}},
	} {
		src := openSrc(t, c.cfg)
		if src.(connectors.PositionReader).Positioned(c.r) {
			t.Errorf("%s %s: positioned, but there is no rowid to read by", c.cfg.Table, c.r)
		}
		err := src.(connectors.PositionReader).ReadPositioned(ctx, c.r, func(arrow.RecordBatch, connectors.Key) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "is not read by rowid") {
			t.Errorf("%s %s: ReadPositioned gave %v", c.cfg.Table, c.r, err)
		}
	}
	w := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "w", Key: []string{"k"}})
	if rows, _ := readRows(t, w, nulls); len(rows) != 2 {
		t.Errorf("w's NULL-key range read whole: %d rows, want 2", len(rows))
	}
	err := w.Read(ctx, nulls.Resumed(connectors.Key{int64(1)}), func(arrow.RecordBatch) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no order to resume in") {
		t.Errorf("w's NULL-key range resumed: %v, want a refusal", err)
	}
}
