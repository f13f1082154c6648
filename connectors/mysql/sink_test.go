package mysql

import (
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

func ids(db *sql.DB, t *testing.T, q string) []int64 {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

func seq(lo, hi int64) []int64 { // [lo, hi]
	var out []int64
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

func texts(n int, s string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// A resumed partition deletes nothing: rows the job did not write, inside
// its range and past its checkpoint, NULL keys included, keep their values
// through the partition's commits, an abandoned writer and a resume under a
// new lease, in a table the sink did not create (composite nullable key,
// case-insensitive collation). The NULL-key partition, which commits once
// at its end, is redone whole and leaves the others' NULL keys alone too.
func TestResumeDeletesNothing(t *testing.T) {
	for _, bulk := range []string{bulkLoad, bulkInsert} {
		t.Run(bulk, func(t *testing.T) {
			dsn, db := testDB(t)
			exec(t, db, "CREATE TABLE c (a INT NULL, b VARCHAR(10) NULL, s TEXT, UNIQUE KEY (a, b)) COLLATE utf8mb4_unicode_ci")
			for _, r := range [][]any{{2, "x"}, {5, "B"}, {8, "z"}, {nil, "a"}, {4, nil}, {20, "a"}} {
				exec(t, db, "INSERT INTO c VALUES (?, ?, 'theirs')", r...)
			}
			schema := arrow.NewSchema([]arrow.Field{
				{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
				{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
				{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
			}, nil)
			rows := func(keys ...[]any) arrow.RecordBatch {
				b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
				defer b.Release()
				for _, k := range keys {
					if k[0] == nil {
						b.Field(0).AppendNull()
					} else {
						b.Field(0).(*array.Int32Builder).Append(int32(k[0].(int)))
					}
					if k[1] == nil {
						b.Field(1).AppendNull()
					} else {
						b.Field(1).(*array.StringBuilder).Append(k[1].(string))
					}
					b.Field(2).(*array.StringBuilder).Append("ours")
				}
				return b.NewRecordBatch()
			}
			snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "c", Key: []string{"a", "b"}, Options: map[string]string{"bulk": bulk}})
			if err := snk.Prepare(testCtx(t), schema, false); err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			// write claims the partition under lease and writes rec through
			// one writer; it commits it at pos, done, unless crash is set.
			write := func(part string, r connectors.Range, lease int64, crash bool, pos connectors.Key, done bool, rec arrow.RecordBatch) {
				t.Helper()
				defer rec.Release()
				spec := connectors.WriterSpec{Job: "j", Run: "r1", Partition: part, Lease: lease, Range: r, Schema: schema}
				cr := claim(t, snk, spec)
				w, err := snk.OpenWriter(ctx, spec)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				if err := w.Write(ctx, rec); err != nil {
					t.Fatal(err)
				}
				if crash {
					return
				}
				cr.Rows += rec.NumRows()
				cr.Position, cr.Done = pos, done
				cr.Commits++
				if err := w.Commit(ctx, cr); err != nil {
					t.Fatal(err)
				}
			}
			keyed := connectors.Range{Lo: connectors.Key{int64(1), "a"}, Hi: connectors.Key{int64(9), "a"}}
			write("p0", keyed, 1, false, connectors.Key{int64(2), "a"}, false, rows([]any{1, "a"}, []any{1, "b"}, []any{2, "a"}))
			write("p0", keyed, 1, true, nil, false, rows([]any{3, "a"}, []any{3, "b"}))
			resumed := claim(t, snk, connectors.WriterSpec{Job: "j", Run: "r1", Partition: "p0", Lease: 2})
			if resumed.Rows != 3 || connectors.CompareKeys(resumed.Position, connectors.Key{int64(2), "a"}) != 0 {
				t.Fatalf("record after the crash: %+v, want 3 rows at (2, a)", resumed)
			}
			write("p0", keyed, 2, false, connectors.Key{int64(6), "a"}, true, rows([]any{3, "a"}, []any{3, "b"}, []any{6, "a"}))

			nulls := connectors.Range{Nulls: true}
			write("nulls", nulls, 1, true, nil, false, rows([]any{nil, "n1"}, []any{7, nil}))
			write("nulls", nulls, 2, false, nil, true, rows([]any{nil, "n1"}, []any{7, nil}))

			q, err := db.Query("SELECT COALESCE(a, -1), COALESCE(b, '-'), s FROM c ORDER BY a, CAST(b AS BINARY)")
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			var got []string
			for q.Next() {
				var a int
				var b, s string
				if err := q.Scan(&a, &b, &s); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%d/%s/%s", a, b, s))
			}
			want := []string{"-1/a/theirs", "-1/n1/ours", "1/a/ours", "1/b/ours", "2/a/ours", "2/x/theirs", "3/a/ours", "3/b/ours",
				"4/-/theirs", "5/B/theirs", "6/a/ours", "7/-/ours", "8/z/theirs", "20/a/theirs"}
			if !slices.Equal(got, want) {
				t.Errorf("table after resumes:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestModes(t *testing.T) {
	for _, bulk := range []string{bulkLoad, bulkInsert} {
		t.Run(bulk, func(t *testing.T) {
			dsn, db := testDB(t)
			opts := map[string]string{"bulk": bulk}
			first := intTextRecord(seq(1, 10), texts(10, "v1"))
			defer first.Release()
			second := intTextRecord(seq(5, 15), texts(11, "v2"))
			defer second.Release()
			spec := partSpec("p", first.Schema())

			// Append, then append the same keys again: the duplicate is an
			// error, not a silently skipped row.
			snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "m", Key: []string{"id"}, CreateTable: true, Options: opts})
			if err := snk.Prepare(testCtx(t), first.Schema(), false); err != nil {
				t.Fatal(err)
			}
			writeAll(t, snk, spec, first)
			err := tryWriteAll(snk, spec, second)
			if err == nil || !strings.Contains(err.Error(), "Duplicate entry '5'") {
				t.Fatalf("appending a duplicate key: %v", err)
			}
			if n := count(t, db, "SELECT COUNT(*) FROM m"); n != 10 {
				t.Errorf("after the failed append: %d rows, want 10 (rolled back)", n)
			}

			// Upsert replaces by key.
			up := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "m", Key: []string{"id"}, Mode: connectors.Upsert, Options: opts})
			if err := up.Prepare(testCtx(t), first.Schema(), false); err != nil {
				t.Fatal(err)
			}
			writeAll(t, up, spec, second)
			if n := count(t, db, "SELECT COUNT(*) FROM m"); n != 15 {
				t.Errorf("after upsert: %d rows, want 15", n)
			}
			if n := count(t, db, "SELECT COUNT(*) FROM m WHERE s = 'v2'"); n != 11 {
				t.Errorf("after upsert: %d rows with v2, want 11", n)
			}
			// Upserting again is idempotent, and so is a resumed upsert.
			resumed := spec
			resumed.Lease = 2
			writeAll(t, up, resumed, second)
			if n := count(t, db, "SELECT COUNT(*) FROM m"); n != 15 {
				t.Errorf("after second upsert: %d rows, want 15", n)
			}

			// Truncate empties the table once, then writes; the commit
			// records of earlier runs stay.
			tr := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "m", Key: []string{"id"}, Mode: connectors.Truncate, Options: opts})
			if err := tr.Prepare(testCtx(t), first.Schema(), true); err != nil {
				t.Fatal(err)
			}
			if n := count(t, db, "SELECT COUNT(*) FROM m"); n != 0 {
				t.Errorf("after truncate: %d rows", n)
			}
			if rec := claim(t, tr, resumed); rec.Commits != 3 || rec.Rows != 32 {
				t.Errorf("record of the earlier run after truncate: %+v, want 3 commits, 32 rows (totals)", rec)
			}
			truncated := spec
			truncated.Run = "r2"
			writeAll(t, tr, truncated, first)
			if got := ids(db, t, "SELECT id FROM m ORDER BY id"); !slices.Equal(got, seq(1, 10)) {
				t.Errorf("after truncate and write: %v", got)
			}

			// Close without Commit leaves nothing behind.
			w, err := tr.OpenWriter(testCtx(t), partSpec("x", first.Schema()))
			if err != nil {
				t.Fatal(err)
			}
			more := intTextRecord(seq(100, 110), texts(11, "gone"))
			defer more.Release()
			if err := w.Write(testCtx(t), more); err != nil {
				t.Fatal(err)
			}
			w.Close()
			if n := count(t, db, "SELECT COUNT(*) FROM m"); n != 10 {
				t.Errorf("after close without commit: %d rows, want 10", n)
			}
		})
	}
}

// Several commits on one writer: each commit is durable on its own, with
// its record.
func TestWriterSeveralCommits(t *testing.T) {
	dsn, db := testDB(t)
	a := intTextRecord(seq(1, 5000), texts(5000, strings.Repeat("é", 50)))
	defer a.Release()
	b := intTextRecord(seq(5001, 9000), texts(4000, "b"))
	defer b.Release()
	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "sc", Key: []string{"id"}, CreateTable: true})
	if err := snk.Prepare(testCtx(t), a.Schema(), false); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	spec := partSpec("p", a.Schema())
	cr := claim(t, snk, spec)
	w, err := snk.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, rec := range []arrow.RecordBatch{a, b} {
		if err := w.Write(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM sc"); n != int64(i*5000) {
			t.Errorf("before commit %d: %d rows visible", i, n)
		}
		if n := count(t, db, "SELECT commit_count FROM datashift_commits"); n != int64(i) {
			t.Errorf("before commit %d: the record says %d commits", i, n)
		}
		cr.Rows += rec.NumRows()
		cr.Position = connectors.KeyOf(rec, []int{0}, int(rec.NumRows()-1))
		cr.Commits++
		if err := w.Commit(ctx, cr); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, db, "SELECT COUNT(*) FROM sc"); n != 9000 {
		t.Errorf("after two commits: %d rows, want 9000", n)
	}
	if got := claim(t, snk, spec); got.Rows != 9000 || got.Commits != 2 || connectors.CompareKeys(got.Position, connectors.Key{int64(9000)}) != 0 {
		t.Errorf("record after two commits: %+v", got)
	}
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "sc", Key: []string{"id"}})
	var want connectors.Checksum
	want.Add(a, nil)
	want.Add(b, nil)
	if got := checksum(t, src, connectors.Range{}); got != want {
		t.Errorf("checksum %s, want %s", got, want)
	}
}

// valueCase writes row 41 (good) and row 42 (bad) into one column.
type valueCase struct {
	col   string
	field arrow.Field
	good  any
	bad   any
	why   string // part of the error
}

func buildValueRecord(c valueCase) arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, c.field}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{41, 42}, nil)
	for _, v := range []any{c.good, c.bad} {
		fb := b.Field(1)
		if v == nil {
			fb.AppendNull()
			continue
		}
		switch x := fb.(type) {
		case *array.StringBuilder:
			x.BinaryBuilder.Append([]byte(v.(string)))
		case *array.Int64Builder:
			x.Append(v.(int64))
		case *array.Int32Builder:
			x.Append(v.(int32))
		case *array.Uint64Builder:
			x.Append(v.(uint64))
		case *array.Float64Builder:
			x.Append(v.(float64))
		case *array.Decimal128Builder:
			x.Append(v.(decimal128.Num))
		case *array.TimestampBuilder:
			x.Append(v.(arrow.Timestamp))
		default:
			panic(fmt.Sprintf("builder %T", fb))
		}
	}
	return b.NewRecordBatch()
}

// A value the column cannot hold fails with a ValueError naming the column
// and the row's key, and nothing of the batch is stored.
func TestValueErrors(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, `CREATE TABLE v (id BIGINT PRIMARY KEY, s VARCHAR(5), d DECIMAL(5,2), i INT, u BIGINT,
		t TEXT, nn INT NOT NULL DEFAULT 0, ts TIMESTAMP(6) NULL, dt DATE, j JSON, f FLOAT, tn TINYTEXT, dt0 DATETIME)`)
	str := func(name string) arrow.Field {
		return arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}
	}
	cases := []valueCase{
		{"s", str("s"), "héllo", "toolong", "7 characters do not fit varchar(5)"},
		{"d", arrow.Field{Name: "d", Type: &arrow.Decimal128Type{Precision: 10, Scale: 3}, Nullable: true},
			mustDec("1.230", 10, 3), mustDec("1.234", 10, 3), "has 3 decimal places"},
		{"d", arrow.Field{Name: "d", Type: arrow.BinaryTypes.String, Nullable: true, Metadata: connectors.WithLogical(connectors.LogicalNumeric)},
			"999.99", "1234.5", "has 4 integer digits"},
		{"i", arrow.Field{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, int64(math.MaxInt32), int64(math.MaxInt32) + 1, "out of range for int(11)"},
		{"i", str("i"), "12", "12x", "is not an integer"},
		{"u", arrow.Field{Name: "u", Type: arrow.PrimitiveTypes.Uint64, Nullable: true}, uint64(math.MaxInt64), uint64(math.MaxInt64) + 1, "out of range for bigint(20)"},
		{"t", str("t"), "ok", "bad \xff utf8", "invalid UTF-8"},
		{"tn", str("tn"), strings.Repeat("x", 255), strings.Repeat("é", 128), "256 bytes do not fit tinytext"},
		{"nn", arrow.Field{Name: "nn", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, int32(1), nil, "NULL into a NOT NULL column"},
		{"ts", arrow.Field{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
			ts("2038-01-19 03:14:07.999999"), ts("2100-01-01 00:00:00"), "outside the TIMESTAMP range"},
		{"dt0", arrow.Field{Name: "dt0", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
			ts("2001-01-01 00:00:01"), ts("2001-01-01 00:00:01.5"), "more fractional digits than datetime"},
		{"j", arrow.Field{Name: "j", Type: arrow.BinaryTypes.String, Nullable: true, Metadata: connectors.WithLogical(connectors.LogicalJSON)}, `{"a":1}`, `{bad`, "invalid JSON"},
		{"f", arrow.Field{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true}, 0.5, 0.1, "does not fit FLOAT"},
		{"f", arrow.Field{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true}, 0.5, math.NaN(), "NaN cannot be stored"},
		// Only the server knows: its warning (LOAD DATA) or strict error
		// (INSERT) "at row 2" still names the key.
		{"dt", str("dt"), "2001-02-28", "2001-02-30", "the server would not store it as sent"},
	}
	for _, bulk := range []string{bulkLoad, bulkInsert} {
		snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "v", Key: []string{"id"}, Options: map[string]string{"bulk": bulk}})
		for _, c := range cases {
			t.Run(bulk+"/"+c.col, func(t *testing.T) {
				rec := buildValueRecord(c)
				defer rec.Release()
				if err := snk.Prepare(testCtx(t), rec.Schema(), false); err != nil {
					t.Fatal(err)
				}
				err := tryWriteAll(snk, partSpec("p", rec.Schema()), rec)
				var ve *connectors.ValueError
				if !errors.As(err, &ve) || ve.Column != c.col || connectors.CompareKeys(ve.Key, connectors.Key{int64(42)}) != 0 {
					t.Fatalf("got %v, want a ValueError for column %s, key 42", err, c.col)
				}
				if !strings.Contains(err.Error(), c.why) {
					t.Errorf("error %q does not say %q", err, c.why)
				}
				if connectors.IsTransient(err) {
					t.Errorf("a ValueError is not transient")
				}
				if n := count(t, db, "SELECT COUNT(*) FROM v"); n != 0 {
					t.Errorf("%d rows stored, want 0 (the good row goes with the transaction)", n)
				}
				// The good row alone goes in.
				good := rec.NewSlice(0, 1)
				defer good.Release()
				writeAll(t, snk, partSpec("p", rec.Schema()), good)
				exec(t, db, "DELETE FROM v")
			})
		}
	}
}

func TestSinkConfigErrors(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, s TEXT)")
	exec(t, db, "CREATE TABLE nokey (id INT, s TEXT)")
	exec(t, db, "CREATE TABLE myisam (id INT PRIMARY KEY, s TEXT) ENGINE=MyISAM")
	ctx := testCtx(t)
	for _, c := range []struct {
		cfg  connectors.SinkConfig
		want string
	}{
		{connectors.SinkConfig{DSN: dsn}, "table is required"},
		{connectors.SinkConfig{DSN: dsn, Table: "t", Mode: "merge"}, `unknown mode "merge"`},
		{connectors.SinkConfig{DSN: dsn, Table: "t", Mode: connectors.Upsert}, "upsert mode needs key columns"},
		{connectors.SinkConfig{DSN: dsn, Table: "t", Options: map[string]string{"batch": "1"}}, `unknown option "batch"`},
		{connectors.SinkConfig{DSN: dsn, Table: "t", Options: map[string]string{"bulk": "copy"}}, `bulk="copy"`},
	} {
		_, err := connectors.OpenSink(ctx, TypeName, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.cfg, err, c.want)
		}
	}
	rec := intTextRecord([]int64{1}, []string{"a"})
	defer rec.Release()
	wide := arrow.NewSchema(append(rec.Schema().Fields(), arrow.Field{Name: "extra", Type: arrow.PrimitiveTypes.Int8}), nil)
	for _, c := range []struct {
		cfg    connectors.SinkConfig
		schema *arrow.Schema
		want   string
	}{
		{connectors.SinkConfig{DSN: dsn, Table: "missing"}, rec.Schema(), "mysql sink " + dbName(dsn) + ".missing: table does not exist (set sink.create_table: true to create it)"},
		{connectors.SinkConfig{DSN: dsn, Table: "myisam"}, rec.Schema(), "table " + dbName(dsn) + ".myisam: engine MyISAM has no transactions"},
		{connectors.SinkConfig{DSN: dsn, Table: "t"}, wide, `has no column "extra"`},
		{connectors.SinkConfig{DSN: dsn, Table: "nokey", Key: []string{"id"}, Mode: connectors.Upsert}, rec.Schema(), "needs a PRIMARY KEY or UNIQUE index on (id)"},
		{connectors.SinkConfig{DSN: dsn, Table: "t", Key: []string{"idx"}}, rec.Schema(), `key column "idx" is not in the rows`},
	} {
		snk := openSnk(t, c.cfg)
		// Check (datashift check) says what Prepare (a run) says.
		if err := connectors.CheckSink(ctx, snk, c.schema); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check %+v: got %v, want %q", c.cfg, err, c.want)
		}
		err := snk.Prepare(ctx, c.schema, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Prepare %+v: got %v, want %q", c.cfg, err, c.want)
		}
	}
}

// CreateTable follows TYPES.md, with byte-order text keys.
func TestCreateTableDDL(t *testing.T) {
	dsn, db := testDB(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.BinaryTypes.String},
		{Name: "bk", Type: arrow.BinaryTypes.Binary},
		{Name: "tz", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: "j", Type: arrow.BinaryTypes.String, Nullable: true, Metadata: connectors.WithLogical(connectors.LogicalJSON)},
	}, nil)
	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "ddl", Key: []string{"k", "bk"}, CreateTable: true})
	if err := snk.Prepare(testCtx(t), schema, false); err != nil {
		t.Fatal(err)
	}
	var name, ddl string
	if err := db.QueryRow("SHOW CREATE TABLE ddl").Scan(&name, &ddl); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"`k` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL",
		"`bk` varbinary(255) NOT NULL",
		"`tz` datetime(6) NOT NULL COMMENT 'datashift:timestamptz'",
		"`j` longtext DEFAULT NULL CHECK (json_valid(`j`))",
		"PRIMARY KEY (`k`,`bk`)",
		"ENGINE=InnoDB",
	} {
		if !strings.Contains(ddl, want) {
			t.Errorf("CREATE TABLE lacks %q:\n%s", want, ddl)
		}
	}
	// 'a' and 'a ' are two keys.
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	for _, k := range []string{"a", "a ", "A"} {
		b.Field(0).(*array.StringBuilder).Append(k)
		b.Field(1).(*array.BinaryBuilder).Append([]byte{0})
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()))
		b.Field(3).AppendNull()
	}
	rec := b.NewRecordBatch()
	b.Release()
	defer rec.Release()
	writeAll(t, snk, partSpec("p", schema), rec)
	if n := count(t, db, "SELECT COUNT(*) FROM ddl"); n != 3 {
		t.Errorf("%d rows, want 3 distinct keys", n)
	}
}

// Text into a latin1 column is converted from UTF-8 by the server; a
// character latin1 cannot hold is a ValueError, not a '?'.
func TestWriteLatin1Column(t *testing.T) {
	for _, bulk := range []string{bulkLoad, bulkInsert} {
		t.Run(bulk, func(t *testing.T) {
			dsn, db := testDB(t)
			exec(t, db, "CREATE TABLE l (id BIGINT PRIMARY KEY, s VARCHAR(20) CHARACTER SET latin1)")
			snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "l", Key: []string{"id"}, Options: map[string]string{"bulk": bulk}})
			good := intTextRecord([]int64{1, 2}, []string{"Ünïcödé", "tab\there"})
			defer good.Release()
			if err := snk.Prepare(testCtx(t), good.Schema(), false); err != nil {
				t.Fatal(err)
			}
			writeAll(t, snk, partSpec("p", good.Schema()), good)
			src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "l", Key: []string{"id"}})
			rows, _ := readAll(t, src, connectors.Range{})
			if len(rows) != 2 || rows[0][1] != "Ünïcödé" || rows[1][1] != "tab\there" {
				t.Errorf("latin1 round trip: %v", rows)
			}
			if n := count(t, db, "SELECT COUNT(*) FROM l WHERE HEX(s) = 'DC6EEF63F664E9'"); n != 1 {
				t.Errorf("stored bytes are not latin1")
			}
			bad := intTextRecord([]int64{3, 4}, []string{"ok", "emoji 😀"})
			defer bad.Release()
			err := tryWriteAll(snk, partSpec("p", bad.Schema()), bad)
			var ve *connectors.ValueError
			if !errors.As(err, &ve) || ve.Column != "s" || connectors.CompareKeys(ve.Key, connectors.Key{int64(4)}) != 0 {
				t.Errorf("emoji into latin1: %v, want a ValueError for s, key 4", err)
			}
			if n := count(t, db, "SELECT COUNT(*) FROM l"); n != 2 {
				t.Errorf("%d rows after the failed write, want 2", n)
			}
		})
	}
}

// Timestamps with a zone go into a marked DATETIME(6): instants outside
// TIMESTAMP's 1970-2038 survive, and the column reads back as UTC instants.
func TestTimestampTZBeyondTimestampRange(t *testing.T) {
	dsn, _ := testDB(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	instants := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2100, 6, 1, 12, 0, 0, 123456000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, at := range instants {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixMicro()))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "tz", Key: []string{"id"}, CreateTable: true})
	if err := snk.Prepare(testCtx(t), schema, false); err != nil {
		t.Fatal(err)
	}
	writeAll(t, snk, partSpec("p", schema), rec)

	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "tz", Key: []string{"id"}})
	got, _ := src.Schema(testCtx(t))
	if tt := got.Field(1).Type.(*arrow.TimestampType); tt.TimeZone != "UTC" {
		t.Fatalf("column reads back as %s, want a UTC timestamp", tt)
	}
	rows, _ := readAll(t, src, connectors.Range{})
	for i, r := range rows {
		if !r[1].(time.Time).Equal(instants[i]) {
			t.Errorf("row %d: %v, want %v", i, r[1], instants[i])
		}
	}
	if len(rows) != len(instants) {
		t.Fatalf("%d rows", len(rows))
	}
}

// A created table keeps the source's declared types where MariaDB has them
// (TYPES.md "Declared types"), falls back to the Arrow type's column type
// where it does not, and turns the last wide declared varchar columns into
// LONGTEXT when the row would pass MariaDB's 65,535 bytes.
func TestCreateDeclaredTypes(t *testing.T) {
	dsn, db := testDB(t)
	str, none := arrow.BinaryTypes.String, arrow.Metadata{}
	num := connectors.WithLogical(connectors.LogicalNumeric)
	ts := &arrow.TimestampType{Unit: arrow.Microsecond}
	tstz := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	field := func(name string, typ arrow.DataType, md arrow.Metadata, declared string) arrow.Field {
		f := arrow.Field{Name: name, Type: typ, Nullable: name != "k",
			Metadata: arrow.NewMetadata(append(md.Keys(), connectors.MetaType), append(md.Values(), declared))}
		if _, ok := connectors.DeclaredType(f); !ok {
			t.Fatalf("%s on %s is no declared type", declared, typ)
		}
		return f
	}
	fields := []arrow.Field{
		field("k", str, none, "char(12)"),
		field("k300", str, none, "varchar(300)"),
		field("c84", str, none, "char(84)"),
		field("c300", str, none, "char(300)"),
		field("vc", str, none, "varchar(20)"),
		field("vfree", str, none, "varchar"),
		field("vhuge", str, none, "varchar(20000)"),
		field("n", &arrow.Decimal128Type{Precision: 12, Scale: 2}, none, "numeric(12,2)"),
		field("nw", str, num, "numeric(50,5)"),
		field("n70", str, num, "numeric(70,5)"),
		field("n40", str, num, "numeric(60,40)"),
		field("i2", arrow.PrimitiveTypes.Int16, none, "smallint"),
		field("m", arrow.PrimitiveTypes.Int32, none, "mediumint"),
		field("um", arrow.PrimitiveTypes.Uint32, none, "mediumint unsigned"),
		field("ts3", ts, none, "timestamp(3)"),
		field("ts", ts, none, "timestamp"),
		field("tz0", tstz, none, "timestamptz(0)"),
		field("t2", arrow.FixedWidthTypes.Time64us, none, "time(2)"),
	}
	for i := 1; i <= 5; i++ {
		fields = append(fields, field(fmt.Sprintf("w%d", i), str, none, "varchar(5000)"))
	}
	schema := arrow.NewSchema(fields, nil)
	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "decl", Key: []string{"k", "k300"}, CreateTable: true})
	if err := snk.Prepare(testCtx(t), schema, false); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"k": "char(12)", "k300": "varchar(255)", // a longer key gets what every text key gets
		"c84": "char(84)", "c300": "varchar(300)", "vc": "varchar(20)", "vfree": "longtext", "vhuge": "longtext",
		"n": "decimal(12,2)", "nw": "decimal(50,5)", "n70": "decimal(65,30)", "n40": "decimal(65,30)",
		"i2": "smallint(6)", "m": "mediumint(9)", "um": "mediumint(8) unsigned",
		"ts3": "datetime(3)", "ts": "datetime(6)", "tz0": "datetime", "t2": "time(2)",
		"w1": "varchar(5000)", "w2": "varchar(5000)", "w3": "varchar(5000)", "w4": "longtext", "w5": "longtext",
	}
	rows, err := db.Query(`SELECT COLUMN_NAME, COLUMN_TYPE, COALESCE(COLLATION_NAME, ''), COLUMN_COMMENT
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'decl'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name, typ, coll, comment string
		if err := rows.Scan(&name, &typ, &coll, &comment); err != nil {
			t.Fatal(err)
		}
		n++
		if typ != want[name] {
			t.Errorf("column %s: created as %s, want %s", name, typ, want[name])
		}
		if (name == "k" || name == "k300") && coll != "utf8mb4_nopad_bin" {
			t.Errorf("key column %s has collation %s", name, coll)
		}
		if name == "tz0" && comment != utcDatetimeComment {
			t.Errorf("timestamptz(0) column has comment %q", comment)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("created %d columns, want %d", n, len(want))
	}
}
