package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/datashift/datashift/connectors"
)

// recordJSON builds a record batch from JSON rows.
func recordJSON(t testing.TB, schema *arrow.Schema, rows string) arrow.RecordBatch {
	t.Helper()
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, schema, strings.NewReader(rows))
	if err != nil {
		t.Fatalf("record from %s: %v", rows, err)
	}
	t.Cleanup(rec.Release)
	return rec
}

func field(name string, typ arrow.DataType) arrow.Field {
	return arrow.Field{Name: name, Type: typ, Nullable: true}
}

// writeBatches opens a writer, writes the batches and commits.
func writeBatches(t testing.TB, snk *Sink, spec connectors.WriterSpec, recs ...arrow.RecordBatch) error {
	t.Helper()
	ctx := testCtx(t)
	if spec.Schema == nil {
		spec.Schema = recs[0].Schema()
	}
	w, err := snk.OpenWriter(ctx, spec)
	if err != nil {
		return err
	}
	defer w.Close()
	for _, rec := range recs {
		if err := w.Write(ctx, rec); err != nil {
			return err
		}
	}
	_, err = w.Commit(ctx)
	return err
}

func ids(t testing.TB, s *Source) []int64 {
	t.Helper()
	return firstCol(readRows(t, s, connectors.Range{}))
}

func seq(lo, hi int64) []int64 {
	var out []int64
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

func TestResume(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE src (id int PRIMARY KEY, v text);
		INSERT INTO src SELECT g, 'v' || g FROM generate_series(1, 100) g`)
	src := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "src", Key: []string{"id"}, BatchRows: 7})
	want := checksum(t, src)
	part := connectors.Range{Lo: k(int64(20)), Hi: k(int64(60))}

	for _, tc := range []struct {
		name     string
		lastKey  connectors.Key
		leftOver []int64 // what the target holds after the resume delete
	}{
		{"past a checkpoint", k(int64(40)), append(seq(1, 40), seq(60, 100)...)},
		{"from the start", nil, append(seq(1, 19), seq(60, 100)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The target holds everything: the partition was written past its
			// checkpoint before the worker died.
			mustExec(t, conn, `DROP TABLE IF EXISTS dst; CREATE TABLE dst (LIKE src INCLUDING ALL); INSERT INTO dst SELECT * FROM src`)
			snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "dst", Key: []string{"id"}})
			schema, _ := src.Schema(testCtx(t))
			spec := connectors.WriterSpec{Partition: "p1", Range: part, Schema: schema, Resume: &connectors.ResumePoint{LastKey: tc.lastKey}}
			w, err := snk.OpenWriter(testCtx(t), spec)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			dstSrc := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "dst", Key: []string{"id"}})
			if got := ids(t, dstSrc); fmt.Sprint(got) != fmt.Sprint(tc.leftOver) {
				t.Fatalf("after the resume delete the target holds %v\nwant %v", got, tc.leftOver)
			}
			// Continue the partition after the checkpoint: every row once.
			copyAll(t, src, snk, spec)
			if got := checksum(t, dstSrc); got != want {
				t.Errorf("after resuming, target %s, source %s", got, want)
			}
		})
	}

	t.Run("upsert deletes nothing", func(t *testing.T) {
		mustExec(t, conn, `DROP TABLE IF EXISTS dst; CREATE TABLE dst (LIKE src INCLUDING ALL); INSERT INTO dst SELECT * FROM src`)
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "dst", Key: []string{"id"}, Mode: connectors.Upsert})
		schema, _ := src.Schema(testCtx(t))
		w, err := snk.OpenWriter(testCtx(t), connectors.WriterSpec{Partition: "p1", Range: part, Schema: schema, Resume: &connectors.ResumePoint{}})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		if n := queryInt(t, conn, "SELECT count(*) FROM dst"); n != 100 {
			t.Errorf("upsert resume left %d rows, want 100", n)
		}
	})

	t.Run("pages cannot resume", func(t *testing.T) {
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "dst"})
		schema, _ := src.Schema(testCtx(t))
		_, err := snk.OpenWriter(testCtx(t), connectors.WriterSpec{Partition: "p9", Range: connectors.Range{Pages: &connectors.PageRange{Lo: 0, Hi: 4}}, Schema: schema, Resume: &connectors.ResumePoint{}})
		if err == nil || !strings.Contains(err.Error(), "give the source a key") || !strings.Contains(err.Error(), "p9") {
			t.Errorf("resume of a pages partition: %v", err)
		}
	})
}

// The resume delete uses the byte order of the source's ranges, whatever the
// target column's collation, for composite keys, and NULL keys on their own.
func TestResumeTextAndNullKeys(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE t (a text COLLATE "en-x-icu", b int, v int);
		INSERT INTO t VALUES ('a', 1, 1), ('B', 1, 2), ('b', 1, 3), ('Z', 2, 4), ('é', 1, 5), ('a', 2, 6), ('A', 9, 7),
		                     (NULL, 1, 8), ('a', NULL, 9)`)
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "t", Key: []string{"a", "b"}})
	schema := arrow.NewSchema([]arrow.Field{field("a", arrow.BinaryTypes.String), field("b", arrow.PrimitiveTypes.Int32), field("v", arrow.PrimitiveTypes.Int32)}, nil)
	open := func(r connectors.Range, last connectors.Key) {
		w, err := snk.OpenWriter(testCtx(t), connectors.WriterSpec{Partition: "p", Range: r, Schema: schema, Resume: &connectors.ResumePoint{LastKey: last}})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	left := func() string {
		rows, _ := conn.Query(testCtx(t), "SELECT v FROM t ORDER BY v")
		var vs []int
		for rows.Next() {
			var v int
			rows.Scan(&v)
			vs = append(vs, v)
		}
		return fmt.Sprint(vs)
	}
	// Range [("B",0), ("b",5)) past ("Z",2), in byte order A < B < Z < a <
	// b < é: ('a',1), ('a',2) and ('b',1) go; ('Z',2) is the checkpoint and
	// stays, ('é',1) is past Hi, ('a',NULL) is a NULL key.
	open(connectors.Range{Lo: k("B", int64(0)), Hi: k("b", int64(5))}, k("Z", int64(2)))
	if got := left(); got != "[2 4 5 7 8 9]" {
		t.Errorf("after deleting past (Z, 2) in [(B, 0), (b, 5)): %s, want [2 4 5 7 8 9]", got)
	}
	open(connectors.Range{Nulls: true}, k(nil, int64(1)))
	if got := left(); got != "[2 4 5 7]" {
		t.Errorf("after resuming the NULL-key range: %s, want [2 4 5 7]", got)
	}
}

func TestModes(t *testing.T) {
	dsn, conn := newDB(t)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, field("v", arrow.BinaryTypes.String)}, nil)
	batch := recordJSON(t, schema, `[{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]`)

	t.Run("append and truncate", func(t *testing.T) {
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "app", CreateTable: true})
		for i, truncate := range []bool{false, false, true} {
			if err := snk.Prepare(testCtx(t), schema, truncate); err != nil {
				t.Fatal(err)
			}
			if err := writeBatches(t, snk, connectors.WriterSpec{Partition: "p"}, batch); err != nil {
				t.Fatal(err)
			}
			want := []int64{2, 4, 2}[i]
			if n := queryInt(t, conn, "SELECT count(*) FROM app"); n != want {
				t.Errorf("step %d: %d rows, want %d", i, n, want)
			}
		}
	})

	t.Run("upsert", func(t *testing.T) {
		mustExec(t, conn, `CREATE TABLE up (id bigint PRIMARY KEY, v text, other int DEFAULT 7);
			INSERT INTO up SELECT g, 'old', g FROM generate_series(1, 10) g`)
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "up", Key: []string{"id"}, Mode: connectors.Upsert})
		if err := snk.Prepare(testCtx(t), schema, false); err != nil {
			t.Fatal(err)
		}
		var rows []string
		for i := 5; i <= 15; i++ {
			rows = append(rows, fmt.Sprintf(`{"id": %d, "v": "new%d"}`, i, i))
		}
		// id 15 twice in one commit: the later one wins.
		again := recordJSON(t, schema, `[{"id": 15, "v": "last"}]`)
		if err := writeBatches(t, snk, connectors.WriterSpec{Partition: "p"}, recordJSON(t, schema, "["+strings.Join(rows, ",")+"]"), again); err != nil {
			t.Fatal(err)
		}
		// Rewriting is idempotent.
		if err := writeBatches(t, snk, connectors.WriterSpec{Partition: "p"}, again); err != nil {
			t.Fatal(err)
		}
		var summary string
		err := conn.QueryRow(testCtx(t), `SELECT string_agg(id || '=' || v || '/' || coalesce(other::text, '-'), ' ' ORDER BY id) FROM up`).Scan(&summary)
		want := "1=old/1 2=old/2 3=old/3 4=old/4 5=new5/5 6=new6/6 7=new7/7 8=new8/8 9=new9/9 10=new10/10 " +
			"11=new11/7 12=new12/7 13=new13/7 14=new14/7 15=last/7"
		if err != nil || summary != want {
			t.Errorf("after upsert:\n%s\nwant\n%s (%v)", summary, want, err)
		}
	})

	t.Run("upsert needs a unique key", func(t *testing.T) {
		mustExec(t, conn, `CREATE TABLE noidx (id bigint, v text)`)
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "noidx", Key: []string{"id"}, Mode: connectors.Upsert})
		err := snk.Prepare(testCtx(t), schema, false)
		if err == nil || err.Error() != `postgres sink "noidx": upsert needs a primary key or unique index on (id)` {
			t.Errorf("got %v", err)
		}
		if _, err := OpenSink(testCtx(t), connectors.SinkConfig{DSN: dsn, Table: "noidx", Mode: connectors.Upsert}); err == nil ||
			!strings.Contains(err.Error(), "upsert mode needs key columns") {
			t.Errorf("upsert without key: %v", err)
		}
	})
}

// Rows are durable only at Commit; Close without Commit leaves nothing of
// what was written since.
func TestCommitAndAbandon(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE c (id bigint PRIMARY KEY, v text)`)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, field("v", arrow.BinaryTypes.String)}, nil)
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "c", Key: []string{"id"}})
	ctx := testCtx(t)
	w, err := snk.OpenWriter(ctx, connectors.WriterSpec{Partition: "p", Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	count := func() int64 { return queryInt(t, conn, "SELECT count(*) FROM c") }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Write(ctx, recordJSON(t, schema, `[{"id": 1, "v": "a"}, {"id": 2}]`)))
	if n := count(); n != 0 {
		t.Errorf("%d rows visible before commit", n)
	}
	_, err = w.Commit(ctx)
	must(err)
	if n := count(); n != 2 {
		t.Errorf("%d rows after the first commit, want 2", n)
	}
	_, err = w.Commit(ctx) // nothing written: a no-op
	must(err)
	must(w.Write(ctx, recordJSON(t, schema, `[{"id": 3, "v": "c"}]`)))
	must(w.Write(ctx, recordJSON(t, schema, `[{"id": 4, "v": "d"}]`)))
	_, err = w.Commit(ctx)
	must(err)
	must(w.Write(ctx, recordJSON(t, schema, `[{"id": 5, "v": "e"}]`)))
	must(w.Close())
	if n := count(); n != 4 {
		t.Errorf("%d rows after close without commit, want 4", n)
	}
	// The connection went back to the pool clean: the next writer works.
	must(writeBatches(t, snk, connectors.WriterSpec{Partition: "q"}, recordJSON(t, schema, `[{"id": 6, "v": "f"}]`)))
	if n := count(); n != 5 {
		t.Errorf("%d rows, want 5", n)
	}
	// A server-side failure (duplicate key) surfaces at Commit at the latest,
	// names the table, and is not retryable.
	err = writeBatches(t, snk, connectors.WriterSpec{Partition: "r"}, recordJSON(t, schema, `[{"id": 7}, {"id": 1}]`))
	if err == nil || !strings.Contains(err.Error(), `"c"`) || !strings.Contains(err.Error(), "duplicate key") || connectors.IsTransient(err) {
		t.Errorf("duplicate key: %v (transient %v)", err, connectors.IsTransient(err))
	}
	if n := count(); n != 5 {
		t.Errorf("%d rows after the failed commit, want 5", n)
	}
}

func TestValueErrors(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE ve (id bigint PRIMARY KEY, small int, big bigint, n numeric(10,2), vc varchar(3),
		t text, ts timestamp, f real, req text NOT NULL DEFAULT 'x')`)
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "ve", Key: []string{"id"}})
	id := arrow.Field{Name: "id", Type: arrow.PrimitiveTypes.Int64}
	cases := []struct {
		name  string
		f     arrow.Field
		rows  string
		want  string
		build func() arrow.RecordBatch
	}{
		{"int overflow", field("small", arrow.PrimitiveTypes.Int64), `[{"id": 1, "small": 5}, {"id": 2, "small": 2147483648}]`,
			`postgres sink "ve": partition p: column "small", row with key 2: value 2147483648: out of range for integer`, nil},
		{"uint64 past int64", field("big", arrow.PrimitiveTypes.Uint64), `[{"id": 3, "big": 18446744073709551615}]`,
			`postgres sink "ve": partition p: column "big", row with key 3: value 18446744073709551615: out of range for bigint`, nil},
		{"decimal scale", field("n", &arrow.Decimal128Type{Precision: 10, Scale: 4}), `[{"id": 4, "n": "1.2300"}, {"id": 5, "n": "1.2345"}]`,
			`postgres sink "ve": partition p: column "n", row with key 5: value 1.2345: has more than 2 digits after the decimal point, which numeric(10,2) would round`, nil},
		{"decimal precision", field("n", &arrow.Decimal128Type{Precision: 20, Scale: 0}), `[{"id": 6, "n": "123456789"}]`,
			`postgres sink "ve": partition p: column "n", row with key 6: value 123456789: does not fit numeric(10,2)`, nil},
		{"numeric text", field("n", arrow.BinaryTypes.String), `[{"id": 7, "n": "12.5x"}]`,
			`postgres sink "ve": partition p: column "n", row with key 7: value "12.5x": is not a decimal number`, nil},
		{"varchar length", field("vc", arrow.BinaryTypes.String), `[{"id": 8, "vc": "äöü"}, {"id": 9, "vc": "abcd"}]`,
			`postgres sink "ve": partition p: column "vc", row with key 9: value "abcd": has 4 characters, more than character varying(3) allows`, nil},
		{"nanoseconds", field("ts", &arrow.TimestampType{Unit: arrow.Nanosecond}), `[{"id": 10, "ts": "2024-01-01T00:00:00.000000001"}]`,
			`postgres sink "ve": partition p: column "ts", row with key 10: value 2024-01-01 00:00:00.000000001 +0000 UTC: has sub-microsecond precision, which timestamp without time zone would lose`, nil},
		{"float precision", field("f", arrow.PrimitiveTypes.Float64), `[{"id": 11, "f": 0.5}, {"id": 12, "f": 0.1}]`,
			`postgres sink "ve": partition p: column "f", row with key 12: value 0.1: cannot be held exactly by real`, nil},
		{"not null", field("req", arrow.BinaryTypes.String), `[{"id": 13, "req": "ok"}, {"id": 14}]`,
			`postgres sink "ve": partition p: column "req", row with key 14: value NULL: the target column is NOT NULL`, nil},
		{"invalid utf-8", field("t", arrow.BinaryTypes.String), "", `postgres sink "ve": partition p: column "t", row with key 15: value "a\xffb": is not valid UTF-8, which text requires`,
			func() arrow.RecordBatch {
				ib := array.NewInt64Builder(memory.DefaultAllocator)
				ib.Append(15)
				sb := array.NewStringBuilder(memory.DefaultAllocator)
				sb.BinaryBuilder.Append([]byte("a\xffb"))
				cols := []arrow.Array{ib.NewArray(), sb.NewArray()}
				return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{id, field("t", arrow.BinaryTypes.String)}, nil), cols, 1)
			}},
		{"character split between values", field("t", arrow.BinaryTypes.String), "", `postgres sink "ve": partition p: column "t", row with key 16: value "a\xc3": is not valid UTF-8, which text requires`,
			func() arrow.RecordBatch {
				// "é" is C3 A9: each half alone is invalid, the two together
				// are valid bytes.
				ib := array.NewInt64Builder(memory.DefaultAllocator)
				ib.AppendValues([]int64{16, 17}, nil)
				sb := array.NewStringBuilder(memory.DefaultAllocator)
				sb.BinaryBuilder.Append([]byte("a\xc3"))
				sb.BinaryBuilder.Append([]byte("\xa9"))
				cols := []arrow.Array{ib.NewArray(), sb.NewArray()}
				return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{id, field("t", arrow.BinaryTypes.String)}, nil), cols, 2)
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rec arrow.RecordBatch
			if c.build != nil {
				rec = c.build()
			} else {
				rec = recordJSON(t, arrow.NewSchema([]arrow.Field{id, c.f}, nil), c.rows)
			}
			err := writeBatches(t, snk, connectors.WriterSpec{Partition: "p"}, rec)
			var ve *connectors.ValueError
			if !errors.As(err, &ve) || err.Error() != c.want {
				t.Errorf("got  %v\nwant %s", err, c.want)
			}
			if connectors.IsTransient(err) {
				t.Errorf("a value error must not be retryable")
			}
		})
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM ve"); n != 0 {
		t.Errorf("%d rows written by failed batches", n)
	}
}

func TestSinkErrors(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE e (id bigint PRIMARY KEY, flag int, g int GENERATED ALWAYS AS (id * 2) STORED)`)
	schema := func(fs ...arrow.Field) *arrow.Schema { return arrow.NewSchema(fs, nil) }
	id := arrow.Field{Name: "id", Type: arrow.PrimitiveTypes.Int64}
	cases := []struct {
		table  string
		create bool
		schema *arrow.Schema
		want   string
	}{
		{"missing", false, schema(id), `postgres sink "missing": table does not exist (set create_table to create it)`},
		{"e", false, schema(id, field("nope", arrow.BinaryTypes.String)), `postgres sink "e": column "nope" is missing from the table (columns: id, flag, g)`},
		{"e", false, schema(id, field("flag", arrow.FixedWidthTypes.Boolean)), `postgres sink "e": column "flag": cannot write Arrow bool into integer`},
		{"e", false, schema(id, field("g", arrow.PrimitiveTypes.Int64)), `postgres sink "e": column "g" is generated and cannot be written`},
		{"other.e", true, schema(id), `postgres sink "other"."e": create table: ERROR: schema "other" does not exist (SQLSTATE 3F000)`},
	}
	for _, c := range cases {
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: c.table, CreateTable: c.create})
		err := snk.Prepare(testCtx(t), c.schema, false)
		if err == nil || err.Error() != c.want {
			t.Errorf("table %s:\ngot  %v\nwant %s", c.table, err, c.want)
		}
	}
	_, err := OpenSink(testCtx(t), connectors.SinkConfig{DSN: dsn, Table: "e", Options: map[string]string{"batchsize": "1"}})
	if err == nil || err.Error() != `postgres sink: unknown option "batchsize" (postgres takes no options here)` {
		t.Errorf("unknown option: %v", err)
	}
}

// A writer whose backend is killed mid-COPY fails with a retryable error,
// and nothing of the open transaction stays.
func TestSinkTransientOnTerminatedBackend(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE tw (id bigint PRIMARY KEY, v text)`)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, field("v", arrow.BinaryTypes.String)}, nil)
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "tw", Key: []string{"id"}})
	ctx := testCtx(t)
	w, err := snk.OpenWriter(ctx, connectors.WriterSpec{Partition: "p", Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(ctx, recordJSON(t, schema, `[{"id": 1, "v": "a"}]`)); err != nil {
		t.Fatal(err)
	}
	// The COPY starts in the writer's goroutine: wait until the server shows it.
	var n int64
	for deadline := time.Now().Add(5 * time.Second); n == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n = queryInt(t, conn, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE 'COPY%'`)
	}
	if n != 1 {
		t.Fatalf("terminated %d backends, want the writer's", n)
	}
	// The failure shows at the next write or at the latest at commit.
	var rows []string
	for i := 2; i < 2000; i++ {
		rows = append(rows, fmt.Sprintf(`{"id": %d, "v": "%s"}`, i, strings.Repeat("x", 100)))
	}
	err = w.Write(ctx, recordJSON(t, schema, "["+strings.Join(rows, ",")+"]"))
	if err == nil {
		_, err = w.Commit(ctx)
	}
	if err == nil || !connectors.IsTransient(err) || !strings.Contains(err.Error(), `postgres sink "tw": partition p`) {
		t.Fatalf("write with its backend terminated: %v (transient %v)", err, connectors.IsTransient(err))
	}
	w.Close()
	if n := queryInt(t, conn, "SELECT count(*) FROM tw"); n != 0 {
		t.Errorf("%d rows left by the killed transaction", n)
	}
	// The sink works again on a fresh connection.
	if err := writeBatches(t, snk, connectors.WriterSpec{Partition: "p2"}, recordJSON(t, schema, `[{"id": 1, "v": "a"}]`)); err != nil {
		t.Fatal(err)
	}
}
