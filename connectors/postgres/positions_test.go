package postgres

import (
	"context"
	"encoding/binary"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/datashift/datashift/connectors"
	"github.com/jackc/pgx/v5"
)

// posBatch is one batch of a positioned read: its first column, as int64s,
// and the position it came with.
type posBatch struct {
	ids  []int64
	last connectors.Key
}

func readPositioned(t testing.TB, s *Source, r connectors.Range) []posBatch {
	t.Helper()
	var out []posBatch
	err := s.ReadPositioned(testCtx(t), r, func(rec arrow.RecordBatch, last connectors.Key) error {
		if !rec.Schema().Equal(s.schema) {
			t.Errorf("batch schema %s, the source's is %s", rec.Schema(), s.schema)
		}
		b := posBatch{last: last}
		for i := 0; i < int(rec.NumRows()); i++ {
			b.ids = append(b.ids, connectors.ValueAt(rec.Column(0), i).(int64))
		}
		out = append(out, b)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s by position: %v", r, err)
	}
	return out
}

func flatIDs(bs []posBatch) []int64 {
	var ids []int64
	for _, b := range bs {
		ids = append(ids, b.ids...)
	}
	return ids
}

func queryInts(t testing.TB, conn *pgx.Conn, sql string, args ...any) []int64 {
	t.Helper()
	rows, err := conn.Query(testCtx(t), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// ctidOf is the position of the row whose id column is id.
func ctidOf(t testing.TB, conn *pgx.Conn, table string, id int64) connectors.Key {
	t.Helper()
	var b, o int64
	err := conn.QueryRow(testCtx(t), "SELECT (ctid::text::point)[0]::bigint, (ctid::text::point)[1]::bigint FROM "+quoteIdent(table)+" WHERE id = $1", id).Scan(&b, &o)
	if err != nil {
		t.Fatal(err)
	}
	return connectors.Key{b, o}
}

// checkPositioned reads r by position and checks it against the rows
// want lists in ctid order: every batch's position is its last row's
// ctid, positions rise, and resuming after any batch's position gives
// exactly the rows after it, read again by position, by plain Read, and
// counted.
func checkPositioned(t *testing.T, s *Source, conn *pgx.Conn, table string, r connectors.Range, want []int64) {
	t.Helper()
	if !s.Positioned(r) {
		t.Fatalf("range %s is not read by position", r)
	}
	all := readPositioned(t, s, r)
	if got := flatIDs(all); !slices.Equal(got, want) {
		t.Fatalf("read %s by position: %d rows, want %d in ctid order\ngot  %v\nwant %v", r, len(got), len(want), got, want)
	}
	if len(want) > 0 && len(all) < 3 {
		t.Fatalf("read %s in %d batches; the test needs several", r, len(all))
	}
	for i, b := range all {
		if got := ctidOf(t, conn, table, b.ids[len(b.ids)-1]); connectors.CompareKeys(b.last, got) != 0 {
			t.Fatalf("batch %d came with position %s, its last row is at %s", i, b.last, got)
		}
		if i > 0 && connectors.CompareKeys(b.last, all[i-1].last) <= 0 {
			t.Fatalf("position %s after %s", b.last, all[i-1].last)
		}
	}
	for _, i := range []int{0, 1, len(all) / 2, len(all) - 2, len(all) - 1} {
		resumed := r.Resumed(all[i].last)
		rest := flatIDs(all[i+1:])
		if got := flatIDs(readPositioned(t, s, resumed)); !slices.Equal(got, rest) {
			t.Fatalf("resumed after batch %d (%s): %v\nwant %v", i, all[i].last, got, rest)
		}
		plain := firstCol(readRows(t, s, resumed))
		slices.Sort(plain)
		sorted := slices.Sorted(slices.Values(rest))
		if !slices.Equal(plain, sorted) {
			t.Fatalf("Read of %s: %v\nwant %v", resumed, plain, sorted)
		}
		if n, err := s.Count(testCtx(t), resumed); err != nil || n != int64(len(rest)) {
			t.Fatalf("count of %s = %d, %v; want %d", resumed, n, err, len(rest))
		}
	}
}

// A table without a key is read by position as a whole (Range{}) and by
// page ranges, with holes left by deletes and rows moved by updates, and
// resumes mid-way; with a filter an index could serve, too.
func TestPositionedKeyless(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE heap (id bigint, pad text);
		INSERT INTO heap SELECT g, repeat('x', 100) FROM generate_series(1, 3000) g;
		DELETE FROM heap WHERE id % 7 = 0;
		UPDATE heap SET pad = 'moved' WHERE id % 11 = 0;
		CREATE INDEX ON heap (id); ANALYZE heap`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "heap", BatchRows: 97})
	ordered := "SELECT id FROM heap %s ORDER BY ctid"
	checkPositioned(t, s, conn, "heap", connectors.Range{}, queryInts(t, conn, strings.Replace(ordered, "%s", "", 1)))

	pages := queryInt(t, conn, "SELECT pg_relation_size('heap') / 8192")
	mid := pages / 2
	for _, pr := range []connectors.PageRange{{Lo: 0, Hi: mid}, {Lo: mid}, {}} {
		want := queryInts(t, conn, strings.Replace(ordered, "%s", "WHERE ctid >= $1::tid AND ($2 = 0 OR ctid < $3::tid)", 1),
			tid{block: uint32(pr.Lo)}.String(), pr.Hi, tid{block: uint32(pr.Hi)}.String())
		checkPositioned(t, s, conn, "heap", connectors.Range{Pages: &pr}, want)
	}

	filtered := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "heap", BatchRows: 50, Where: "id BETWEEN 100 AND 800"})
	checkPositioned(t, filtered, conn, "heap", connectors.Range{}, queryInts(t, conn, strings.Replace(ordered, "%s", "WHERE id BETWEEN 100 AND 800", 1)))
}

// The NULL-key range of a keyed table is read by position, in ctid order,
// whether or not the key's index finds the rows, and resumes mid-way.
func TestPositionedNullKeys(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE nk (k int, id bigint, pad text);
		INSERT INTO nk SELECT CASE WHEN g % 3 = 0 THEN NULL ELSE g END, g, repeat('y', 50) FROM generate_series(1, 3000) g;
		UPDATE nk SET pad = 'moved' WHERE id % 10 = 0;
		CREATE INDEX ON nk (k); ANALYZE nk`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "nk", Key: []string{"k"}, Columns: []string{"id", "k"}, BatchRows: 50})
	r := connectors.Range{Nulls: true}
	checkPositioned(t, s, conn, "nk", r, queryInts(t, conn, "SELECT id FROM nk WHERE k IS NULL ORDER BY ctid"))

	for _, c := range []struct {
		r    connectors.Range
		want bool
	}{
		{connectors.Range{}, false},
		{connectors.Range{Lo: k(int64(5))}, false},
		{connectors.Range{Nulls: true, Lo: k(int64(5))}, false},
		{connectors.Range{Nulls: true}, true},
		{connectors.Range{Pages: &connectors.PageRange{Lo: 1}}, true},
	} {
		if got := s.Positioned(c.r); got != c.want {
			t.Errorf("Positioned(%s) of a keyed table = %v, want %v", c.r, got, c.want)
		}
	}
	err := s.ReadPositioned(testCtx(t), connectors.Range{}, func(arrow.RecordBatch, connectors.Key) error { return nil })
	if err == nil || err.Error() != `postgres source "nk", range [-∞, +∞): the range is read by key, not by position` {
		t.Errorf("positioned read of a key range: %v", err)
	}
	err = s.ReadPositioned(testCtx(t), connectors.Range{Nulls: true, After: k("x")}, func(arrow.RecordBatch, connectors.Key) error { return nil })
	if err == nil || err.Error() != `postgres source "nk", range [NULL keys] after "x": position "x" is not a row position (block, offset)` {
		t.Errorf("a position that is not one: %v", err)
	}
}

// Positioned reads inside an exported snapshot see the rows, and the
// ctids, as of the export, even after every row has moved; a read resumed
// there continues right after its position.
func TestPositionedSnapshot(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE sn (id bigint, pad text); INSERT INTO sn SELECT g, repeat('z', 100) FROM generate_series(1, 2000) g`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "sn"})
	id, release, err := s.ExportSnapshot(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	before := queryInts(t, conn, "SELECT id FROM sn ORDER BY ctid")
	mustExec(t, conn, `UPDATE sn SET pad = 'moved'; DELETE FROM sn WHERE id < 100; INSERT INTO sn SELECT g, 'new' FROM generate_series(5001, 5100) g`)

	snap := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "sn", Snapshot: id, BatchRows: 128})
	r := connectors.Range{Pages: &connectors.PageRange{}}
	all := readPositioned(t, snap, r)
	if got := flatIDs(all); !slices.Equal(got, before) {
		t.Fatalf("positioned read in the snapshot: %d rows, want the %d of the export", len(got), len(before))
	}
	for _, i := range []int{0, len(all) / 2, len(all) - 1} {
		if got := flatIDs(readPositioned(t, snap, r.Resumed(all[i].last))); !slices.Equal(got, flatIDs(all[i+1:])) {
			t.Fatalf("resumed in the snapshot after batch %d: %d rows, want %d", i, len(got), len(flatIDs(all[i+1:])))
		}
	}
	now := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "sn", BatchRows: 128})
	if got := flatIDs(readPositioned(t, now, r)); len(got) != 2000-99+100 {
		t.Errorf("positioned read outside the snapshot: %d rows, want %d", len(got), 2000-99+100)
	}
}

// The plans of positioned reads: no Sort over page ranges and keyless
// tables, not even with a filter an index would serve, but a heap scan
// in physical order; the small NULL-key range is sorted by ctid.
func TestPositionedPlans(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE pl (k int, id bigint, pad text);
		INSERT INTO pl SELECT g, g, repeat('p', 100) FROM generate_series(1, 20000) g;
		CREATE INDEX ON pl (id); ANALYZE pl`)
	keyless := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "pl", Where: "id < 50"})
	keyed := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "pl", Key: []string{"k"}})
	plan := func(s *Source, r connectors.Range) string {
		t.Helper()
		q, settings, err := s.positionedSQL(r)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := conn.Begin(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background())
		if _, err := tx.Exec(testCtx(t), settings); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(testCtx(t), "EXPLAIN (COSTS OFF) "+q)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	after := tid{block: 3, offset: 2}.position()
	for _, c := range []struct {
		s    *Source
		r    connectors.Range
		scan string
	}{
		{keyless, connectors.Range{}, "Scan on pl"},
		{keyless, connectors.Range{After: after}, "Scan on pl"},
		{keyed, connectors.Range{Pages: &connectors.PageRange{Lo: 10, Hi: 100}}, "Tid Range Scan"},
		{keyed, connectors.Range{Pages: &connectors.PageRange{Lo: 10}, After: after}, "Tid Range Scan"},
	} {
		p := plan(c.s, c.r)
		if strings.Contains(p, "Sort") || indexScan.MatchString(p) || strings.Contains(p, "Gather") || !strings.Contains(p, c.scan) {
			t.Errorf("plan of the positioned read of %s (want a %s, no Sort, no Index Scan):\n%s", c.r, c.scan, p)
		}
	}
	if p := plan(keyed, connectors.Range{Nulls: true}); !strings.Contains(p, "Sort Key: ctid") {
		t.Errorf("plan of the NULL-key range (want a Sort by ctid):\n%s", p)
	}
	q := openSource(t, connectors.SourceConfig{DSN: dsn, Query: "SELECT id FROM pl"})
	if q.Positioned(connectors.Range{}) || q.Positioned(connectors.Range{Pages: &connectors.PageRange{}}) {
		t.Error("a query source claims to read by position")
	}
	err := q.ReadPositioned(testCtx(t), connectors.Range{}, func(arrow.RecordBatch, connectors.Key) error { return nil })
	if err == nil || err.Error() != "postgres source query, range [-∞, +∞): a query source has no row positions (ctid) to read by" {
		t.Errorf("positioned read of a query: %v", err)
	}
}

// indexScan finds an index scan in a plan: a plain one reads in index
// order, a bitmap heap scan follows HOT chains out of line pointer order.
var indexScan = regexp.MustCompile(`Index (Only )?Scan|Bitmap`)

// copyStream is a binary COPY stream of (id bigint, ctid) tuples.
func copyStream(tuples ...[3]int64) []byte {
	b := append([]byte(nil), copySignature...)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	for _, tu := range tuples {
		b = binary.BigEndian.AppendUint16(b, 2)
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(tu[0]))
		b = binary.BigEndian.AppendUint32(b, 6)
		b = binary.BigEndian.AppendUint32(b, uint32(tu[1]))
		b = binary.BigEndian.AppendUint16(b, uint16(tu[2]))
	}
	return append(b, 0xFF, 0xFF)
}

// The decoder keeps the ctid out of the batches, gives the last one of
// each batch as its position, and fails on a ctid that does not follow
// the one before, or the position resumed after.
func TestDecoderPositions(t *testing.T) {
	cols := []column{{name: "id", typeOID: oidInt8, notNull: true}}
	schema := arrow.NewSchema([]arrow.Field{cols[0].field()}, nil)
	decode := func(after *tid, stream []byte) ([]posBatch, error) {
		var out []posBatch
		dec := newCopyDecoder(memory.DefaultAllocator, schema, cols, nil, 2, 1<<20, nil).withPositions(after,
			func(rec arrow.RecordBatch, last connectors.Key) error {
				if rec.NumCols() != 1 {
					t.Errorf("batch of %d columns, want 1", rec.NumCols())
				}
				out = append(out, posBatch{ids: firstColOf(rec), last: last})
				return nil
			})
		defer dec.release()
		// One byte at a time: tuples straddle writes.
		for i := range stream {
			if _, err := dec.Write(stream[i : i+1]); err != nil {
				return out, err
			}
		}
		return out, dec.flush()
	}
	got, err := decode(nil, copyStream([3]int64{10, 0, 1}, [3]int64{11, 0, 2}, [3]int64{12, 1, 1}, [3]int64{13, 70000, 65535}, [3]int64{14, 70001, 1}))
	if err != nil {
		t.Fatal(err)
	}
	want := []posBatch{{[]int64{10, 11}, k(int64(0), int64(2))}, {[]int64{12, 13}, k(int64(70000), int64(65535))}, {[]int64{14}, k(int64(70001), int64(1))}}
	if len(got) != len(want) {
		t.Fatalf("batches %v, want %v", got, want)
	}
	for i := range want {
		if !slices.Equal(got[i].ids, want[i].ids) || connectors.CompareKeys(got[i].last, want[i].last) != 0 {
			t.Errorf("batch %d: %v, want %v", i, got[i], want[i])
		}
	}
	for _, c := range []struct {
		after  *tid
		stream []byte
		want   string
	}{
		{nil, copyStream([3]int64{1, 0, 1}, [3]int64{2, 5, 1}, [3]int64{3, 4, 9}), "row at ctid (4,9) came after the row at (5,1): the read is not in ctid order"},
		{nil, copyStream([3]int64{1, 0, 1}, [3]int64{2, 0, 1}), "row at ctid (0,1) came after the row at (0,1)"},
		{&tid{block: 2, offset: 3}, copyStream([3]int64{1, 2, 3}), "row at ctid (2,3) came after the row at (2,3)"},
	} {
		if _, err := decode(c.after, c.stream); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error containing %q", err, c.want)
		}
	}
}

func firstColOf(rec arrow.RecordBatch) []int64 {
	var out []int64
	for i := 0; i < int(rec.NumRows()); i++ {
		out = append(out, connectors.ValueAt(rec.Column(0), i).(int64))
	}
	return out
}
