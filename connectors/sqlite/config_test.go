package sqlite

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

// TestOpenErrors: a bad config fails at open, before any row is read, with
// an error naming what is wrong.
func TestOpenErrors(t *testing.T) {
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE orders (id INTEGER PRIMARY KEY, name TEXT)`)
	ctx := context.Background()
	sources := []struct {
		cfg  connectors.SourceConfig
		want string
	}{
		{connectors.SourceConfig{DSN: dsn + ".missing", Table: "orders"}, `database file "` + dsn + `.missing" does not exist`},
		{connectors.SourceConfig{DSN: dsn, Table: "nope"}, `sqlite source nope: table "nope" not found in ` + dsn},
		{connectors.SourceConfig{DSN: dsn, Table: "orders", Key: []string{"idx"}}, `key column "idx" not found (columns: id, name)`},
		{connectors.SourceConfig{DSN: dsn, Table: "orders", Columns: []string{"id", "nam"}}, `column "nam" not found (columns: id, name)`},
		{connectors.SourceConfig{DSN: dsn, Table: "orders", Options: map[string]string{"busy_timeot": "1"}}, `unknown option "busy_timeot" (known: busy_timeout, journal_mode)`},
		{connectors.SourceConfig{DSN: dsn, Table: "orders", Options: map[string]string{"busy_timeout": "soon"}}, `option busy_timeout: "soon" is not a whole number`},
		{connectors.SourceConfig{DSN: dsn, Table: "orders", Where: "1); DROP TABLE orders; SELECT (1"}, `more than one SQL statement: "DROP TABLE orders; SELECT (1)" follows the first`},
		{connectors.SourceConfig{DSN: dsn, Table: "orders", Where: "nme = 'x'"}, `where "nme = 'x'": no such column: nme`},
		{connectors.SourceConfig{DSN: dsn, Table: "orders", Query: "SELECT 1"}, "both table and query are set"},
		{connectors.SourceConfig{DSN: dsn}, "neither table nor query is set"},
		{connectors.SourceConfig{Table: "orders"}, "dsn: empty"},
	}
	for _, c := range sources {
		_, err := connectors.OpenSource(ctx, TypeName, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("open source %+v: got %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
	// The refused Where did not run.
	if _, err := db.Exec(`SELECT count(*) FROM orders`); err != nil {
		t.Fatalf("orders is gone: %v", err)
	}

	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "email", Type: arrow.BinaryTypes.String}}, nil)
	sinks := []struct {
		cfg  connectors.SinkConfig
		want string // at open, or else at Prepare
	}{
		{connectors.SinkConfig{DSN: dsn, Table: "orders"}, `table "orders" has no column "email" (columns: id, name)`},
		{connectors.SinkConfig{DSN: dsn, Table: "fresh"}, `sqlite sink fresh: prepare: ` + dsn + `: table does not exist (set sink.create_table: true to create it)`},
		{connectors.SinkConfig{DSN: dsn, Table: "orders", Mode: connectors.Upsert}, "upsert mode needs the key columns"},
		{connectors.SinkConfig{DSN: dsn, Table: "fresh", Mode: "merge"}, `unknown write mode "merge"`},
		{connectors.SinkConfig{DSN: dsn, Table: "fresh", CreateTable: true, Key: []string{"nope"}}, `key column "nope" is not among the columns written`},
		{connectors.SinkConfig{DSN: dsn, Table: "fresh", Options: map[string]string{"synchronous": "sometimes"}}, `option synchronous: "sometimes" is not one of off, normal, full, extra`},
	}
	for _, c := range sinks {
		s, err := connectors.OpenSink(ctx, TypeName, c.cfg)
		if err == nil {
			// Check (datashift check) says what Prepare (a run) says.
			if cerr := connectors.CheckSink(ctx, s, schema); cerr == nil || !strings.Contains(cerr.Error(), c.want) {
				t.Errorf("check %+v: got %v, want an error containing %q", c.cfg, cerr, c.want)
			}
			err = s.Prepare(ctx, schema, false)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sink %+v: got %v, want an error containing %q", c.cfg, err, c.want)
		}
	}

	// Upsert needs a unique index on the key to conflict on.
	mustExec(t, db, `CREATE TABLE loose (id INTEGER, email TEXT)`)
	s, err := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dsn, Table: "loose", Mode: connectors.Upsert, Key: []string{"id"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(ctx, schema, false); err == nil || !strings.Contains(err.Error(), `upsert needs a primary key or unique index on (id) in table "loose"`) {
		t.Errorf("upsert into a table with no unique key: got %v", err)
	}
	mustExec(t, db, `CREATE UNIQUE INDEX loose_id ON loose (id)`)
	if err := s.Prepare(ctx, schema, false); err != nil {
		t.Errorf("upsert with a unique index: %v", err)
	}
}

// TestNullability: the planner adds a NULL-key partition only for nullable
// key columns, so NOT NULL must be exactly what SQLite enforces.
func TestNullability(t *testing.T) {
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE rowid_pk (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b TEXT)`)
	mustExec(t, db, `CREATE TABLE text_pk (k TEXT PRIMARY KEY, n INT)`)
	mustExec(t, db, `CREATE TABLE int_pk (id INT PRIMARY KEY)`) // INT, not INTEGER: not the rowid
	mustExec(t, db, `CREATE TABLE without (a TEXT, b INTEGER, PRIMARY KEY (a, b)) WITHOUT ROWID`)
	cases := map[string][]bool{
		"rowid_pk": {false, false, true},
		"text_pk":  {true, true},
		"int_pk":   {true},
		"without":  {false, false},
	}
	for table, want := range cases {
		src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: table})
		s, _ := src.Schema(context.Background())
		var got []bool
		for _, f := range s.Fields() {
			got = append(got, f.Nullable)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: nullable %v, want %v", table, got, want)
		}
	}
}

// TestQuerySource reads a query as a table: expression columns take the
// type of their values, keys order it, Where and Columns apply.
func TestQuerySource(t *testing.T) {
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE o (id INTEGER PRIMARY KEY, customer TEXT, amount DECIMAL_TEXT(10,2), at TIMESTAMP_TEXT)`)
	mustExec(t, db, `INSERT INTO o VALUES (1, 'b', '1.50', '2024-01-01 00:00:00.000000'), (2, 'a', '2.25', '2024-01-02 00:00:00.000000'),
		(3, 'b', '10.00', '2024-01-03 00:00:00.000000'), (4, 'c', NULL, NULL)`)
	src := openSrc(t, connectors.SourceConfig{DSN: dsn,
		Query:   `SELECT customer, count(*) AS n, sum(amount) AS total, max(at) AS last, o.at AS first_at FROM o GROUP BY customer;`,
		Key:     []string{"customer"},
		Columns: []string{"n", "customer", "total", "first_at"},
		Where:   "n > 0",
	})
	rows, schema := readRows(t, src, connectors.Range{Lo: connectors.Key{"a"}})
	var types []string
	for _, f := range schema.Fields() {
		types = append(types, f.Type.String())
	}
	// n is an integer expression, total a real one, first_at keeps the
	// declared type of o.at.
	if want := []string{"int64", "utf8", "float64", "timestamp[us]"}; !reflect.DeepEqual(types, want) {
		t.Errorf("types %v, want %v", types, want)
	}
	jan := func(d int) time.Time { return time.Date(2024, 1, d, 0, 0, 0, 0, time.UTC) }
	want := [][]any{{int64(1), "a", 2.25, jan(2)}, {int64(2), "b", 11.5, jan(1)}, {int64(1), "c", nil, nil}}
	if len(rows) == 3 && rows[1][3] != nil && rows[1][3].(time.Time).Equal(jan(3)) {
		want[1][3] = jan(3) // SQLite picks either row of the group for a bare column
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows\n got %v\nwant %v", rows, want)
	}
}

// TestBatchBounds: batches stop at BatchRows or BatchBytes, whichever comes
// first, and together hold every row once, in key order.
func TestBatchBounds(t *testing.T) {
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)`)
	mustExec(t, db, `WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 5000)
		INSERT INTO t SELECT x, printf('%.*c', 100, 'x') FROM seq`)
	for _, c := range []struct {
		rows, bytes int
		wantMax     int
	}{
		{0, 0, 5000}, // defaults: 10000 rows, 8 MiB
		{1000, 0, 1000},
		{0, 10_000, 10_000 / 112},
		{64, 1 << 20, 64},
	} {
		src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "t", Key: []string{"id"}, BatchRows: c.rows, BatchBytes: c.bytes})
		total, batches, biggest := 0, 0, 0
		last := int64(0)
		err := src.Read(context.Background(), connectors.Range{}, func(rec arrow.RecordBatch) error {
			batches++
			biggest = max(biggest, int(rec.NumRows()))
			for i := 0; i < int(rec.NumRows()); i++ {
				id := connectors.ValueAt(rec.Column(0), i).(int64)
				if id != last+1 {
					t.Fatalf("id %d after %d", id, last)
				}
				last = id
			}
			total += int(rec.NumRows())
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if total != 5000 || biggest > c.wantMax+1 || biggest < c.wantMax/2 {
			t.Errorf("rows %d bytes %d: %d rows in %d batches, biggest %d; want 5000 rows, batches near %d rows",
				c.rows, c.bytes, total, batches, biggest, c.wantMax)
		}
	}
}

// TestCursor: an incremental window narrows every read and MaxCursor finds
// its upper end.
func TestCursor(t *testing.T) {
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE ev (id INTEGER PRIMARY KEY, at TIMESTAMP_TEXT, kind TEXT)`)
	mustExec(t, db, `INSERT INTO ev VALUES (1, '2024-01-01 00:00:00.000000', 'a'), (2, '2024-01-02 00:00:00.000000', 'b'),
		(3, '2024-01-03 00:00:00.000000', 'a'), (4, NULL, 'a'), (5, '2024-01-05 00:00:00.000000', 'b')`)
	day := func(d int) time.Time { return time.Date(2024, 1, d, 0, 0, 0, 0, time.UTC) }
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "ev", Key: []string{"id"}, Where: "kind = 'a'"})
	maxAt, err := src.(connectors.CursorSource).MaxCursor(context.Background(), "at")
	if err != nil || maxAt != day(3) {
		t.Fatalf("MaxCursor: %v (%v), want %v", maxAt, err, day(3))
	}
	win := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "ev", Key: []string{"id"},
		Cursor: &connectors.CursorWindow{Column: "at", From: day(2), UpTo: day(3)}})
	rows, _ := readRows(t, win, connectors.Range{})
	if len(rows) != 2 || rows[0][0] != int64(2) || rows[1][0] != int64(3) {
		t.Errorf("window [Jan 2, Jan 3]: got %v, want ids 2 and 3", rows)
	}
	if n, _ := win.(connectors.Counter).Count(context.Background(), connectors.Range{}); n != 2 {
		t.Errorf("count of the window: %d, want 2", n)
	}
}

// TestUnsupportedArrowType: a column SQLite has no type for fails at
// Prepare, naming it, before any row is written.
func TestUnsupportedArrowType(t *testing.T) {
	dsn := newDB(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String)},
	}, nil)
	s, err := connectors.OpenSink(context.Background(), TypeName, connectors.SinkConfig{DSN: dsn, Table: "t", CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Prepare(context.Background(), schema, false)
	if err == nil || !strings.Contains(err.Error(), `column "tags": Arrow type list<item: utf8, nullable> has no SQLite column type`) {
		t.Errorf("got %v", err)
	}
}
