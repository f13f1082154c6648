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
	"github.com/jackc/pgx/v5"
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

// writeBatches claims the partition (testSpec fills in job, run and
// lease), opens a writer, writes the batches and commits them with a
// record counting them.
func writeBatches(t testing.TB, snk *Sink, spec connectors.WriterSpec, recs ...arrow.RecordBatch) error {
	t.Helper()
	ctx := testCtx(t)
	spec = testSpec(spec)
	if spec.Schema == nil {
		spec.Schema = recs[0].Schema()
	}
	rec, err := snk.Claim(ctx, spec)
	if err != nil {
		return err
	}
	w, err := snk.OpenWriter(ctx, spec)
	if err != nil {
		return err
	}
	defer w.Close()
	for _, b := range recs {
		if err := w.Write(ctx, b); err != nil {
			return err
		}
		rec.Rows += b.NumRows()
	}
	rec.Commits++
	return w.Commit(ctx, rec)
}

// prepare runs the sink's Prepare (it creates the commit table) or fails.
func prepare(t testing.TB, snk *Sink, schema *arrow.Schema) {
	t.Helper()
	if err := snk.Prepare(testCtx(t), schema, false); err != nil {
		t.Fatalf("prepare: %v", err)
	}
}

// A resumed partition reads on from its commit record and nothing is
// deleted: rows of others inside and outside its range stay, rows an
// abandoned attempt wrote are not there, and each source row of the range
// lands once. In append and upsert mode alike.
func TestResumeDeletesNothing(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE src (id int PRIMARY KEY, v text);
		INSERT INTO src SELECT g, 'v' || g FROM generate_series(2, 200, 2) g`)
	src := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "src", Key: []string{"id"}, BatchRows: 7})
	schema, _ := src.Schema(testCtx(t))
	part := connectors.Range{Lo: k(int64(20)), Hi: k(int64(60))}
	for _, mode := range []connectors.WriteMode{connectors.Append, connectors.Upsert} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := testCtx(t)
			// Someone else's rows, odd ids inside the range and out of it.
			mustExec(t, conn, `DROP TABLE IF EXISTS dst; CREATE TABLE dst (LIKE src INCLUDING ALL);
				INSERT INTO dst SELECT g, 'theirs' FROM generate_series(1, 101, 2) g`)
			snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "dst", Key: []string{"id"}, Mode: mode})
			prepare(t, snk, schema)
			first := connectors.WriterSpec{Job: "resume-" + string(mode), Run: "r1", Partition: "p1", Lease: 1, Range: part, Schema: schema}
			// The first attempt commits up to 40, then writes on to 50 and
			// dies before its next commit.
			rec := claim(t, snk, first)
			w, err := snk.OpenWriter(ctx, first)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []connectors.Range{{Lo: k(int64(20)), Hi: k(int64(41))}, {Lo: k(int64(41)), Hi: k(int64(51))}} {
				err := src.Read(ctx, r, func(b arrow.RecordBatch) error {
					rec.Rows += b.NumRows()
					return w.Write(ctx, b)
				})
				if err != nil {
					t.Fatal(err)
				}
				if r.Hi[0] == int64(41) {
					rec.Position, rec.Commits = k(int64(40)), 1
					if err := w.Commit(ctx, rec); err != nil {
						t.Fatal(err)
					}
				}
			}
			w.Close()
			if n := queryInt(t, conn, "SELECT count(*) FROM dst WHERE v <> 'theirs'"); n != 11 {
				t.Fatalf("after the first attempt the target holds %d of its rows, want 11 (20..40)", n)
			}

			// The second attempt, under a newer lease, continues from the record.
			again := first
			again.Lease = 2
			if got := claim(t, snk, again); connectors.CompareKeys(got.Position, k(int64(40))) != 0 || got.Rows != 11 || got.Commits != 1 {
				t.Fatalf("claim of the resumed partition: %+v, want position 40, 11 rows, 1 commit", got)
			}
			copyAll(t, src, snk, again)
			var theirs, ours string
			err = conn.QueryRow(ctx, `SELECT
				(SELECT string_agg(id::text, ',' ORDER BY id) FROM dst WHERE v = 'theirs'),
				(SELECT string_agg(id::text, ',' ORDER BY id) FROM dst WHERE v <> 'theirs')`).Scan(&theirs, &ours)
			if err != nil {
				t.Fatal(err)
			}
			var wantTheirs, wantOurs []string
			for i := 1; i <= 101; i += 2 {
				wantTheirs = append(wantTheirs, fmt.Sprint(i))
			}
			for i := 20; i < 60; i += 2 {
				wantOurs = append(wantOurs, fmt.Sprint(i))
			}
			if theirs != strings.Join(wantTheirs, ",") {
				t.Errorf("rows the job did not write: %s\nwant %s", theirs, strings.Join(wantTheirs, ","))
			}
			if ours != strings.Join(wantOurs, ",") {
				t.Errorf("rows of the partition: %s\nwant %s", ours, strings.Join(wantOurs, ","))
			}
			if got := claim(t, snk, again); got.Rows != 20 || !got.Done || got.Commits != 2 {
				t.Errorf("record after the resumed commit: %+v, want 20 rows, done, 2 commits", got)
			}
		})
	}
}

// A keyless partition commits its read position with its rows; after a
// crash the next attempt reads on from the position in the record, and
// every source row lands once, next to the target's rows of others.
func TestResumeKeylessByPosition(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE src (id bigint, v text);
		INSERT INTO src SELECT g, 'v' || g FROM generate_series(1, 1000) g;
		DELETE FROM src WHERE id % 9 = 0;
		CREATE TABLE dst (id bigint, v text);
		INSERT INTO dst SELECT g, 'theirs' FROM generate_series(1, 50) g`)
	src := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "src", BatchRows: 64})
	schema, _ := src.Schema(testCtx(t))
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "dst"})
	prepare(t, snk, schema)
	ctx := testCtx(t)
	r := connectors.Range{Pages: &connectors.PageRange{}}
	// attempt copies the partition under lease, committing every second
	// batch with its position, and stops (as a crash would) before the
	// commit that would follow batch stopAfter (-1: it finishes).
	attempt := func(lease int64, stopAfter int) {
		t.Helper()
		spec := connectors.WriterSpec{Job: "keyless", Run: "r1", Partition: "p0", Lease: lease, Range: r, Schema: schema}
		rec := claim(t, snk, spec)
		w, err := snk.OpenWriter(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		stop := errors.New("crash")
		n := 0
		err = src.ReadPositioned(ctx, r.Resumed(rec.Position), func(b arrow.RecordBatch, last connectors.Key) error {
			if err := w.Write(ctx, b); err != nil {
				return err
			}
			rec.Rows += b.NumRows()
			rec.Position = last
			if n++; n == stopAfter {
				return stop
			}
			if n%2 == 0 {
				rec.Commits++
				return w.Commit(ctx, rec)
			}
			return nil
		})
		if stopAfter >= 0 && err == stop {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		rec.Commits++
		rec.Done = true
		if err := w.Commit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	attempt(1, 5) // commits after batches 2 and 4, loses batch 5
	if n := queryInt(t, conn, "SELECT count(*) FROM dst WHERE v <> 'theirs'"); n != 4*64 {
		t.Fatalf("after the crash the target holds %d rows of the partition, want %d", n, 4*64)
	}
	attempt(2, -1)
	if n := queryInt(t, conn, "SELECT count(*) FROM dst WHERE v = 'theirs'"); n != 50 {
		t.Errorf("%d rows of others, want 50", n)
	}
	q := "SELECT count(*) FROM (SELECT id, v FROM src EXCEPT ALL SELECT id, v FROM dst WHERE v <> 'theirs') a"
	if n := queryInt(t, conn, q); n != 0 {
		t.Errorf("%d source rows are missing from the target", n)
	}
	if n, want := queryInt(t, conn, "SELECT count(*) FROM dst WHERE v <> 'theirs'"), queryInt(t, conn, "SELECT count(*) FROM src"); n != want {
		t.Errorf("the target holds %d rows of the partition, the source %d", n, want)
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
			run := fmt.Sprintf("r%d", i)
			if err := writeBatches(t, snk, connectors.WriterSpec{Run: run, Partition: "p"}, batch); err != nil {
				t.Fatal(err)
			}
			want := []int64{2, 4, 2}[i]
			if n := queryInt(t, conn, "SELECT count(*) FROM app"); n != want {
				t.Errorf("step %d: %d rows, want %d", i, n, want)
			}
		}
		// Truncate empties the target, never the commit table.
		if n := queryInt(t, conn, "SELECT count(*) FROM datashift_commits WHERE job = 'test' AND run IN ('r0', 'r1', 'r2')"); n != 3 {
			t.Errorf("%d commit records after the truncate, want 3", n)
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

// Rows are durable only at Commit, together with the commit record; Close
// without Commit leaves nothing of what was written since; a commit with
// no rows still stores its record.
func TestCommitAndAbandon(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE c (id bigint PRIMARY KEY, v text)`)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, field("v", arrow.BinaryTypes.String)}, nil)
	// The key stays as the rows load, to refuse a repeated one below.
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "c", Key: []string{"id"}, Options: map[string]string{"keep_indexes": "true"}})
	prepare(t, snk, schema)
	ctx := testCtx(t)
	spec := testSpec(connectors.WriterSpec{Partition: "p", Schema: schema})
	rec := claim(t, snk, spec)
	w, err := snk.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	count := func() int64 { return queryInt(t, conn, "SELECT count(*) FROM c") }
	commits := func() int64 {
		return queryInt(t, conn, "SELECT commit_count FROM datashift_commits WHERE job = $1 AND run = $2 AND part = $3", spec.Job, spec.Run, spec.Partition)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	commit := func() error {
		rec.Commits++
		return w.Commit(ctx, rec)
	}
	must(w.Write(ctx, recordJSON(t, schema, `[{"id": 1, "v": "a"}, {"id": 2}]`)))
	if n := count(); n != 0 {
		t.Errorf("%d rows visible before commit", n)
	}
	must(commit())
	if n, c := count(), commits(); n != 2 || c != 1 {
		t.Errorf("%d rows and %d commits after the first commit, want 2 and 1", n, c)
	}
	must(commit()) // nothing written: the record alone
	if c := commits(); c != 2 {
		t.Errorf("a commit with no rows left the record at %d commits, want 2", c)
	}
	must(w.Write(ctx, recordJSON(t, schema, `[{"id": 3, "v": "c"}]`)))
	must(w.Write(ctx, recordJSON(t, schema, `[{"id": 4, "v": "d"}]`)))
	must(commit())
	must(w.Write(ctx, recordJSON(t, schema, `[{"id": 5, "v": "e"}]`)))
	must(w.Close())
	if n, c := count(), commits(); n != 4 || c != 3 {
		t.Errorf("%d rows and %d commits after close without commit, want 4 and 3", n, c)
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

// A writer whose partition a newer lease has claimed commits nothing,
// with rows or without, and its error is ErrLeaseLost, never retryable; a
// writer without a claim at all is refused the same way.
func TestCommitLeaseLost(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE ll (id bigint PRIMARY KEY, v text)`)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, field("v", arrow.BinaryTypes.String)}, nil)
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "ll", Key: []string{"id"}})
	prepare(t, snk, schema)
	ctx := testCtx(t)
	old := testSpec(connectors.WriterSpec{Partition: "p", Schema: schema})
	for _, rows := range []string{`[{"id": 1, "v": "a"}]`, ""} {
		claim(t, snk, old)
		w, err := snk.OpenWriter(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		if rows != "" {
			if err := w.Write(ctx, recordJSON(t, schema, rows)); err != nil {
				t.Fatal(err)
			}
		}
		newer := old
		newer.Lease = old.Lease + 1
		claim(t, snk, newer)
		err = w.Commit(ctx, connectors.CommitRecord{Lease: old.Lease, Rows: 1, Commits: 1, Position: k(int64(1))})
		w.Close()
		if !errors.Is(err, connectors.ErrLeaseLost) || connectors.IsTransient(err) ||
			!strings.Contains(err.Error(), `postgres sink "ll": partition p: commit table "public"."datashift_commits": job "test" run "r1": lease `) {
			t.Errorf("commit (rows %q) after a newer claim: %v", rows, err)
		}
		if n := queryInt(t, conn, "SELECT count(*) FROM ll"); n != 0 {
			t.Errorf("the fenced-out commit left %d rows", n)
		}
		if got := claim(t, snk, newer); got.Commits != 0 || got.Rows != 0 || got.Position != nil {
			t.Errorf("record after the fenced-out commit: %+v", got)
		}
		if _, err := snk.Claim(ctx, old); !errors.Is(err, connectors.ErrLeaseLost) || !strings.Contains(err.Error(), `postgres sink "ll": partition p: commit table "public"."datashift_commits": job "test" run "r1": a lease newer than`) {
			t.Errorf("claim under the older lease: %v", err)
		}
		old.Lease += 2
	}
	unclaimed := testSpec(connectors.WriterSpec{Partition: "never-claimed", Schema: schema})
	w, err := snk.OpenWriter(ctx, unclaimed)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Commit(ctx, connectors.CommitRecord{Lease: 1, Commits: 1}); !errors.Is(err, connectors.ErrLeaseLost) {
		t.Errorf("commit of a partition never claimed: %v", err)
	}
	// A record naming another partition than the writer's is refused.
	w2, err := snk.OpenWriter(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	err = w2.Commit(ctx, connectors.CommitRecord{Job: "test", Run: "r1", Partition: "other", Lease: old.Lease})
	if err == nil || !strings.Contains(err.Error(), `the commit record is of partition "other", the writer writes partition "p"`) {
		t.Errorf("record of another partition: %v", err)
	}
}

func TestValueErrors(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE ve (id bigint PRIMARY KEY, small int, big bigint, n numeric(10,2), vc varchar(3),
		t text, ts timestamp, f real, req text NOT NULL DEFAULT 'x', ts3 timestamp(3), tm0 time(0))`)
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "ve", Key: []string{"id"}})
	id := arrow.Field{Name: "id", Type: arrow.PrimitiveTypes.Int64}
	prepare(t, snk, arrow.NewSchema([]arrow.Field{id}, nil))
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
		{"timestamp(3) precision", field("ts3", &arrow.TimestampType{Unit: arrow.Microsecond}),
			`[{"id": 18, "ts3": "2024-01-01T00:00:00.123"}, {"id": 19, "ts3": "2024-01-01T00:00:00.1234"}]`,
			`postgres sink "ve": partition p: column "ts3", row with key 19: value 2024-01-01 00:00:00.1234 +0000 UTC: has more fractional digits than timestamp(3) without time zone keeps`, nil},
		{"time(0) precision", field("tm0", arrow.FixedWidthTypes.Time64us), `[{"id": 20, "tm0": "12:00:00"}, {"id": 21, "tm0": "12:00:00.5"}]`,
			`postgres sink "ve": partition p: column "tm0", row with key 21: value 12h0m0.5s: has more fractional digits than time(0) without time zone keeps`, nil},
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
		{"missing", false, schema(id), `postgres sink "missing": table does not exist (set sink.create_table: true to create it)`},
		{"e", false, schema(id, field("nope", arrow.BinaryTypes.String)), `postgres sink "e": column "nope" is missing from the table (columns: id, flag, g)`},
		{"e", false, schema(id, field("flag", arrow.FixedWidthTypes.Boolean)), `postgres sink "e": column "flag": cannot write Arrow bool into integer`},
		{"e", false, schema(id, field("g", arrow.PrimitiveTypes.Int64)), `postgres sink "e": column "g" is generated and cannot be written`},
		{"other.e", true, schema(id), `postgres sink "other"."e": create table: ERROR: schema "other" does not exist (SQLSTATE 3F000)`},
	}
	for _, c := range cases {
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: c.table, CreateTable: c.create})
		// Check (datashift check) says what Prepare (a run) says.
		if err := snk.Check(testCtx(t), c.schema); err == nil || err.Error() != c.want {
			t.Errorf("check table %s:\ngot  %v\nwant %s", c.table, err, c.want)
		}
		err := snk.Prepare(testCtx(t), c.schema, false)
		if err == nil || err.Error() != c.want {
			t.Errorf("table %s:\ngot  %v\nwant %s", c.table, err, c.want)
		}
	}
	_, err := OpenSink(testCtx(t), connectors.SinkConfig{DSN: dsn, Table: "e", Options: map[string]string{"batchsize": "1"}})
	if err == nil || err.Error() != `postgres sink: unknown option "batchsize" (known: commit_table, keep_indexes)` {
		t.Errorf("unknown option: %v", err)
	}
	_, err = OpenSink(testCtx(t), connectors.SinkConfig{DSN: dsn, Table: "e", Options: map[string]string{"keep_indexes": "always"}})
	if err == nil || err.Error() != `postgres sink: option keep_indexes "always": want true or false` {
		t.Errorf("bad keep_indexes: %v", err)
	}
}

// A writer whose backend is killed mid-COPY fails with a retryable error,
// and nothing of the open transaction stays.
func TestSinkTransientOnTerminatedBackend(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE tw (id bigint PRIMARY KEY, v text)`)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, field("v", arrow.BinaryTypes.String)}, nil)
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "tw", Key: []string{"id"}})
	prepare(t, snk, schema)
	ctx := testCtx(t)
	spec := testSpec(connectors.WriterSpec{Partition: "p", Schema: schema})
	claim(t, snk, spec)
	w, err := snk.OpenWriter(ctx, spec)
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
		err = w.Commit(ctx, connectors.CommitRecord{Lease: spec.Lease, Rows: 2000, Commits: 1})
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

// keyConstraintOf is the table's primary key or unique constraint, as
// PostgreSQL writes it, or "" when it has none; with the table's comment
// when there is one.
func keyConstraintOf(t *testing.T, conn *pgx.Conn, table string) string {
	t.Helper()
	var def string
	err := conn.QueryRow(testCtx(t), `SELECT coalesce(string_agg(pg_get_constraintdef(oid), ', '), '') FROM pg_constraint
WHERE conrelid = to_regclass($1) AND contype IN ('p', 'u')`, table).Scan(&def)
	if err != nil {
		t.Fatal(err)
	}
	return def
}

// A table the sink creates for append or truncate is loaded without its
// key's constraint, which Complete adds once, with the rows in; a table
// created for upsert has it from the start, and a table the sink did not
// create is never touched. Keys the constraint cannot take fail Complete
// with PostgreSQL's words, and leave the table marked, so the next
// Complete tries again.
func TestSinkBuildsTheKeyOfATableItCreatedAtTheEnd(t *testing.T) {
	dsn, conn := newDB(t)
	ctx := testCtx(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "tag", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	complete := func(snk *Sink) error { return snk.Complete(ctx) }
	for _, c := range []struct {
		table string
		mode  connectors.WriteMode
		key   []string
		// before and after Complete
		before, after string
	}{
		{"appended", connectors.Append, []string{"id"}, "", "PRIMARY KEY (id)"},
		{"truncated", connectors.Truncate, []string{"id"}, "", "PRIMARY KEY (id)"},
		{"nullable_key", connectors.Append, []string{"id", "tag"}, "", "UNIQUE (id, tag)"},
		{"upserted", connectors.Upsert, []string{"id"}, "PRIMARY KEY (id)", "PRIMARY KEY (id)"},
		{"keyless", connectors.Append, nil, "", ""},
	} {
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: c.table, Key: c.key, Mode: c.mode, CreateTable: true})
		if err := snk.Prepare(ctx, schema, c.mode == connectors.Truncate); err != nil {
			t.Fatalf("%s: %v", c.table, err)
		}
		if got := keyConstraintOf(t, conn, c.table); got != c.before {
			t.Errorf("%s after Prepare: %q, want %q", c.table, got, c.before)
		}
		mustExec(t, conn, "INSERT INTO "+c.table+" SELECT g, 't' || g FROM generate_series(1, 1000) g")
		for range 2 { // the second finds nothing left to do
			if err := complete(snk); err != nil {
				t.Fatalf("%s: Complete: %v", c.table, err)
			}
			if got := keyConstraintOf(t, conn, c.table); got != c.after {
				t.Errorf("%s after Complete: %q, want %q", c.table, got, c.after)
			}
		}
	}

	// A table that was there without a key stays without one.
	mustExec(t, conn, "CREATE TABLE theirs (id bigint NOT NULL, tag text)")
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "theirs", Key: []string{"id"}, Mode: connectors.Append, CreateTable: true})
	prepare(t, snk, schema)
	if err := complete(snk); err != nil || keyConstraintOf(t, conn, "theirs") != "" {
		t.Fatalf("Complete on a table the sink did not create: %v, constraint %q", err, keyConstraintOf(t, conn, "theirs"))
	}

	// Keys that repeat: the constraint cannot be added, and says why.
	snk = openSink(t, connectors.SinkConfig{DSN: dsn, Table: "repeats", Key: []string{"id"}, Mode: connectors.Append, CreateTable: true})
	prepare(t, snk, schema)
	mustExec(t, conn, "INSERT INTO repeats VALUES (1, 'a'), (1, 'b')")
	err := complete(snk)
	if err == nil || !strings.Contains(err.Error(), `build the key's index: ERROR: could not create unique index "repeats_pkey"`) || !strings.Contains(err.Error(), "Key (id)=(1) is duplicated") ||
		!strings.Contains(err.Error(), `take the mark off the table (COMMENT ON TABLE "repeats" IS NULL)`) {
		t.Fatalf("Complete over repeated keys: %v", err)
	}
	mustExec(t, conn, "DELETE FROM repeats WHERE tag = 'b'")
	if err := complete(snk); err != nil || keyConstraintOf(t, conn, "repeats") != "PRIMARY KEY (id)" {
		t.Fatalf("Complete once the repeat is gone: %v, constraint %q", err, keyConstraintOf(t, conn, "repeats"))
	}
}
