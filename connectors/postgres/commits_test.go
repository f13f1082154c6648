package postgres

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/datashift/datashift/connectors"
)

var commitTestSchema = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)

// Where the commit table goes: next to the target (the schema it resolves
// to when unqualified), or where a qualified commit_table says.
func TestCommitTablePlace(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE SCHEMA other; CREATE SCHEMA audit; CREATE SCHEMA "Mixed Case"`)
	exists := func(name string) bool {
		t.Helper()
		var ok bool
		if err := conn.QueryRow(testCtx(t), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, c := range []struct {
		table, option, want string
	}{
		{"public_t", "", `"public"."datashift_commits"`},
		{"other.t", "", `"other"."datashift_commits"`},
		{"other.t2", "my_commits", `"other"."my_commits"`},
		{"t3", "audit.log", `"audit"."log"`},
		{"t4", `"Mixed Case"."Commits; DROP TABLE t4"`, `"Mixed Case"."Commits; DROP TABLE t4"`},
	} {
		cfg := connectors.SinkConfig{DSN: dsn, Table: c.table, CreateTable: true}
		if c.option != "" {
			cfg.Options = map[string]string{"commit_table": c.option}
		}
		snk := openSink(t, cfg)
		prepare(t, snk, commitTestSchema)
		if !exists(c.want) {
			t.Errorf("table %s, commit_table %q: no commit table %s", c.table, c.option, c.want)
		}
		// The log works where it is: a claim, a commit, a forget.
		spec := testSpec(connectors.WriterSpec{Partition: "p", Schema: commitTestSchema})
		if err := writeBatches(t, snk, spec, recordJSON(t, commitTestSchema, `[{"id": 1}]`)); err != nil {
			t.Fatalf("table %s: %v", c.table, err)
		}
		if n := queryInt(t, conn, "SELECT count(*) FROM "+c.want+" WHERE job = 'test' AND commit_count = 1"); n != 1 {
			t.Errorf("%s holds %d committed records, want 1", c.want, n)
		}
		if err := snk.Forget(testCtx(t), "test", "r1"); err != nil {
			t.Fatal(err)
		}
		if n := queryInt(t, conn, "SELECT count(*) FROM "+c.want); n != 0 {
			t.Errorf("%s holds %d records after Forget", c.want, n)
		}
	}
	if exists(`"audit"."datashift_commits"`) || exists(`"public"."my_commits"`) {
		t.Error("a commit table was created where the option did not say")
	}
	// With the target unqualified, the commit table follows the search path.
	mustExec(t, conn, `ALTER DATABASE `+quoteIdent(conn.Config().Database)+` SET search_path = other`)
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "t5", CreateTable: true, Options: map[string]string{"commit_table": "c5"}})
	prepare(t, snk, commitTestSchema)
	if !exists(`"other"."t5"`) || !exists(`"other"."c5"`) {
		t.Error("with search_path other, the target and its commit table are not in schema other")
	}
}

// A table of the commit table's name that is not one is refused by name,
// saying what is wrong; so are a bad option and names too long to keep.
func TestCommitTableErrors(t *testing.T) {
	dsn, conn := newDB(t)
	ddl := func(lease string, pk bool) string {
		var defs []string
		for _, c := range commitColumns {
			typ := c.typ
			if c.name == "lease" {
				typ = lease
			}
			defs = append(defs, quoteIdent(c.name)+" "+typ)
		}
		if pk {
			defs = append(defs, "PRIMARY KEY (job, run, part)")
		}
		return strings.Join(defs, ", ")
	}
	mustExec(t, conn, `CREATE TABLE user_table (id bigint, note text);
		CREATE TABLE wrong_type (`+ddl("text", true)+`);
		CREATE TABLE no_key (`+ddl("bigint", false)+`);
		CREATE TABLE extra (`+ddl("bigint", true)+`, note text)`)
	for _, c := range []struct {
		commitTable string
		want        string
	}{
		{"user_table", `postgres sink "target": table "public"."user_table" is not a datashift commit table (no column "job"; no column "run"; no column "part"; no column "lease"; no column "position"; no column "row_count"; no column "byte_count"; no column "bad_rows"; no column "commit_count"; no column "done"; no column "updated_at"; column "id", which a commit table does not have; column "note", which a commit table does not have): drop it, or name another with option commit_table`},
		{"wrong_type", `postgres sink "target": table "public"."wrong_type" is not a datashift commit table (column "lease" is text, not bigint): drop it, or name another with option commit_table`},
		{"no_key", `postgres sink "target": table "public"."no_key" is not a datashift commit table (no primary key or unique index on (job, run, part)): drop it, or name another with option commit_table`},
		{"extra", `postgres sink "target": table "public"."extra" is not a datashift commit table (column "note", which a commit table does not have): drop it, or name another with option commit_table`},
		{"nosuchschema.c", `postgres sink "target": create commit table "nosuchschema"."c": ERROR: schema "nosuchschema" does not exist (SQLSTATE 3F000)`},
	} {
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "target", CreateTable: true, Options: map[string]string{"commit_table": c.commitTable}})
		if err := snk.Prepare(testCtx(t), commitTestSchema, false); err == nil || err.Error() != c.want {
			t.Errorf("commit_table %s:\ngot  %v\nwant %s", c.commitTable, err, c.want)
		}
	}
	// The default name taken by a user table: the same, by its name.
	mustExec(t, conn, `CREATE TABLE datashift_commits (id int)`)
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "target", CreateTable: true})
	if err := snk.Prepare(testCtx(t), commitTestSchema, false); err == nil ||
		!strings.HasPrefix(err.Error(), `postgres sink "target": table "public"."datashift_commits" is not a datashift commit table (no column "job";`) {
		t.Errorf("a user table named datashift_commits: %v", err)
	}

	for _, c := range []struct{ option, want string }{
		{`"unterminated`, `postgres sink: option commit_table: invalid table name "\"unterminated": unterminated quote`},
		{"a.b.c", `postgres sink: option commit_table: invalid table name "a.b.c": want table or schema.table`},
		{"", `postgres sink: option commit_table: invalid table name ""`},
	} {
		_, err := OpenSink(testCtx(t), connectors.SinkConfig{DSN: dsn, Table: "t", Options: map[string]string{"commit_table": c.option}})
		if err == nil || err.Error() != c.want {
			t.Errorf("commit_table %q:\ngot  %v\nwant %s", c.option, err, c.want)
		}
	}

	// Claim before Prepare made the table, and names the table cannot keep.
	fresh := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "target", Options: map[string]string{"commit_table": "not_yet"}})
	_, err := fresh.Claim(testCtx(t), testSpec(connectors.WriterSpec{Partition: "p"}))
	if err == nil || !strings.HasPrefix(err.Error(), `postgres sink "target": partition p: commit table "public"."not_yet" does not exist (Prepare creates it)`) {
		t.Errorf("claim before prepare: %v", err)
	}
	long := strings.Repeat("é", 129)
	for _, c := range []struct {
		spec connectors.WriterSpec
		want string
	}{
		{connectors.WriterSpec{Job: long, Run: "r", Partition: "p"}, `postgres sink "target": partition p: commit record: job "` + long + `" is longer than the 128 characters the commit table keeps`},
		{connectors.WriterSpec{Job: "j", Run: strings.Repeat("r", 65), Partition: "p"}, "commit record: run \"" + strings.Repeat("r", 65) + "\" is longer than the 64 characters"},
		{connectors.WriterSpec{Job: "j", Run: "r", Partition: ""}, `postgres sink "target": partition : commit record: the partition name is empty`},
	} {
		if _, err := fresh.Claim(testCtx(t), c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("claim of %q/%q/%q:\ngot  %v\nwant %s", c.spec.Job, c.spec.Run, c.spec.Partition, err, c.want)
		}
	}
	// 128 characters (not bytes) fit.
	okSink := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "target", CreateTable: true, Options: map[string]string{"commit_table": "fits"}})
	prepare(t, okSink, commitTestSchema)
	if _, err := okSink.Claim(testCtx(t), connectors.WriterSpec{Job: long[2:], Run: strings.Repeat("r", 64), Partition: "p", Lease: 1}); err != nil {
		t.Errorf("claim with a 128-character job name: %v", err)
	}
}

// Sinks of many tables preparing at once share one commit table: the
// creation race is no error.
func TestCommitTableConcurrentPrepare(t *testing.T) {
	dsn, conn := newDB(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snk, err := OpenSink(testCtx(t), connectors.SinkConfig{DSN: dsn, Table: fmt.Sprintf("t%d", i), CreateTable: true})
			if err != nil {
				errs[i] = err
				return
			}
			defer snk.Close()
			errs[i] = snk.Prepare(testCtx(t), commitTestSchema, false)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("sink %d: %v", i, err)
		}
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM pg_class WHERE relname = 'datashift_commits'"); n != 1 {
		t.Errorf("%d commit tables", n)
	}
}

// The record's columns hold what COMMITS.md says: the position as the JSON
// of connectors.Key (typed values come back typed), the counts, done, and
// the time of the last change in UTC.
func TestCommitRecordColumns(t *testing.T) {
	dsn, conn := newDB(t)
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "rc", CreateTable: true})
	prepare(t, snk, commitTestSchema)
	ctx := testCtx(t)
	spec := connectors.WriterSpec{Job: "job", Run: "run", Partition: "p7", Lease: 4, Schema: commitTestSchema}
	rec := claim(t, snk, spec)
	w, err := snk.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	rec.Position = connectors.Key{int64(-3), "é'\"", at, nil, []byte{0, 1}}
	rec.Rows, rec.Bytes, rec.BadRows, rec.Commits, rec.Done = 10, 200, 2, 1, true
	before := time.Now().UTC().Add(-time.Minute)
	if err := w.Commit(ctx, rec); err != nil {
		t.Fatal(err)
	}
	var lease, rows, bytes, bad, commits int64
	var done bool
	var pos string
	var updated time.Time
	err = conn.QueryRow(ctx, `SELECT lease, position, row_count, byte_count, bad_rows, commit_count, done, updated_at
		FROM datashift_commits WHERE job = 'job' AND run = 'run' AND part = 'p7'`).Scan(&lease, &pos, &rows, &bytes, &bad, &commits, &done, &updated)
	if err != nil {
		t.Fatal(err)
	}
	if lease != 4 || rows != 10 || bytes != 200 || bad != 2 || commits != 1 || !done {
		t.Errorf("record columns: lease %d rows %d bytes %d bad %d commits %d done %v", lease, rows, bytes, bad, commits, done)
	}
	if !strings.HasPrefix(pos, `[{"t":"int","v":"-3"},{"t":"text","v":"é'\""}`) {
		t.Errorf("position column %s", pos)
	}
	if updated.Before(before) || updated.After(time.Now().UTC().Add(time.Minute)) {
		t.Errorf("updated_at %s is not the commit's time in UTC (now %s)", updated, time.Now().UTC())
	}
	got := claim(t, snk, spec)
	if connectors.CompareKeys(got.Position[:3], rec.Position[:3]) != 0 || got.Position[3] != nil || string(got.Position[4].([]byte)) != "\x00\x01" {
		t.Errorf("position back from the record: %v, want %v", got.Position, rec.Position)
	}
	// A commit stores totals: the next replaces the record, it adds nothing.
	rec.Rows, rec.Commits, rec.Position = 11, 2, nil
	if err := w.Commit(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, snk, spec); got.Rows != 11 || got.Commits != 2 || got.Position != nil {
		t.Errorf("record after the second commit: %+v", got)
	}
}

// The commit log's errors hide the password like every other.
func TestCommitLogHidesPassword(t *testing.T) {
	dsn, _ := newDB(t)
	pw := "Sup3r-Secret-Pw"
	withPW := strings.Replace(dsn, "postgres@", "postgres:"+pw+"@", 1)
	gone := strings.Replace(withPW, "/dstest_", "/no_such_db_", 1)
	snk := openSink(t, connectors.SinkConfig{DSN: gone, Table: "t"})
	spec := testSpec(connectors.WriterSpec{Partition: "p"})
	_, claimErr := snk.Claim(testCtx(t), spec)
	forgetErr := snk.Forget(testCtx(t), spec.Job, spec.Run)
	for _, err := range []error{claimErr, forgetErr} {
		if err == nil || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "xxxxx") {
			t.Errorf("error with a password in the DSN: %v", err)
		}
	}
}
