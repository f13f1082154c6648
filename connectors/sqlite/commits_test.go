package sqlite

import (
	"context"
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

var idSchema = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)

func ids(from, to int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, idSchema)
	defer b.Release()
	for i := from; i < to; i++ {
		b.Field(0).(*array.Int64Builder).Append(i)
	}
	return b.NewRecordBatch()
}

// TestCommitTableOption: option commit_table names the table the records
// are kept in, created by Prepare next to the target with COMMITS.md's
// columns; main.NAME is the same table; Truncate empties the target and
// keeps the records.
func TestCommitTableOption(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	open := func(table, commitTable string) connectors.Sink {
		t.Helper()
		s, err := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dsn, Table: table, Key: []string{"id"}, CreateTable: true,
			Options: map[string]string{"commit_table": commitTable}})
		if err != nil {
			t.Fatal(err)
		}
		s.(*sink).now = func() time.Time { return time.Date(2024, 5, 6, 7, 8, 9, 10_000, time.UTC) }
		return s
	}
	s := open("orders", "copy_log")
	for i := 0; i < 2; i++ { // a second Prepare finds the table there and accepts it
		if err := s.Prepare(ctx, idSchema, false); err != nil {
			t.Fatal(err)
		}
	}
	var tables string
	db.QueryRow(`SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name)`).Scan(&tables)
	if tables != "copy_log,orders" {
		t.Fatalf("tables after Prepare: %s, want copy_log and orders (and no %s)", tables, defaultCommitTable)
	}
	rows := ids(0, 10)
	defer rows.Release()
	spec := connectors.WriterSpec{Job: "j", Run: "r1", Partition: "p0", Lease: 3, Schema: idSchema}
	rec := claim(t, s, spec)
	w, err := s.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(ctx, rows)
	rec = advance(rec, spec, 10, connectors.Key{int64(9)})
	rec.Bytes, rec.BadRows, rec.Done = 80, 1, true
	if err := w.Commit(ctx, rec); err != nil {
		t.Fatal(err)
	}

	var row struct {
		job, run, part, position, updated string
		lease, rows, bytes, bad, commits  int64
		done                              bool
	}
	err = db.QueryRow(`SELECT job, run, part, lease, position, row_count, byte_count, bad_rows, commit_count, done, updated_at FROM copy_log`).
		Scan(&row.job, &row.run, &row.part, &row.lease, &row.position, &row.rows, &row.bytes, &row.bad, &row.commits, &row.done, &row.updated)
	if err != nil {
		t.Fatal(err)
	}
	want := `{j r1 p0 [{"t":"int","v":"9"}] 2024-05-06T07:08:09.000010Z 3 10 80 1 1 true}`
	if got := fmt.Sprint(row); got != want {
		t.Errorf("copy_log holds %s, want %s", got, want)
	}
	if got := claim(t, open("orders", "main.copy_log"), spec); got.Rows != 10 || !got.Done {
		t.Errorf("the record through main.copy_log: %+v", got)
	}
	if err := open("orders", "copy_log").Prepare(ctx, idSchema, true); err != nil {
		t.Fatal(err)
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM orders`).Scan(&n)
	if got := claim(t, s, spec); n != 0 || got.Rows != 10 || got.Commits != 1 {
		t.Errorf("after Truncate: %d rows in the target (want 0), record %+v (want it kept)", n, got)
	}
}

// TestCommitTableErrors: a table of the commit table's name that is not
// one fails Prepare naming it and what differs, and is left as it was; a
// commit table outside the target's file, or the target itself, fails at
// open.
func TestCommitTableErrors(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	const cols = `job TEXT NOT NULL, run TEXT NOT NULL, part TEXT NOT NULL, lease BIGINT NOT NULL, position TEXT,
		row_count BIGINT NOT NULL, byte_count BIGINT NOT NULL, bad_rows BIGINT NOT NULL, commit_count BIGINT NOT NULL,
		done BOOLEAN NOT NULL, updated_at TIMESTAMP NOT NULL`
	mustExec(t, db, `CREATE TABLE datashift_commits (id INTEGER PRIMARY KEY, note TEXT)`)
	mustExec(t, db, `INSERT INTO datashift_commits VALUES (1, 'mine')`)
	mustExec(t, db, `CREATE TABLE nokey (`+cols+`)`)
	mustExec(t, db, `CREATE TABLE textlease (`+strings.Replace(cols, "lease BIGINT", "lease TEXT", 1)+`, PRIMARY KEY (job, run, part))`)
	mustExec(t, db, `CREATE TABLE extra (`+cols+`, note TEXT, PRIMARY KEY (job, run, part))`)
	mustExec(t, db, `CREATE TABLE theirs (`+cols+`, PRIMARY KEY (job, run, part))`) // made by hand, the way COMMITS.md says

	notOne := func(table string) string {
		return `table "` + table + `" in ` + dsn + ` is not a datashift commit table (`
	}
	for _, c := range []struct {
		commitTable string // "" for the default
		want        []string
	}{
		{"", []string{notOne("datashift_commits") + "no column job, run, part, lease, position, row_count, byte_count, bad_rows, commit_count, done, updated_at; other columns id, note): rename it or set option commit_table to another name"}},
		{"nokey", []string{notOne("nokey"), "no primary key on (job, run, part)"}},
		{"textlease", []string{notOne("textlease"), `column lease is declared "TEXT"`}},
		{"extra", []string{notOne("extra"), "other columns note)"}},
		{"aux.log", []string{`option commit_table: "aux.log": the commit table is kept in the target's database file`}},
		{" ", []string{"option commit_table: empty"}},
		{"Orders", []string{`the target table is the commit table "Orders"; set option commit_table to another name`}},
		{"theirs", nil},
	} {
		cfg := connectors.SinkConfig{DSN: dsn, Table: "orders", CreateTable: true}
		if c.commitTable != "" {
			cfg.Options = map[string]string{"commit_table": c.commitTable}
		}
		s, err := connectors.OpenSink(ctx, TypeName, cfg)
		if err == nil {
			err = s.Prepare(ctx, idSchema, false)
		}
		if c.want == nil {
			if err != nil {
				t.Errorf("commit table %q: %v", c.commitTable, err)
			}
			continue
		}
		for _, want := range c.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("commit table %q: got %v, want an error containing %q", c.commitTable, err, want)
			}
		}
	}
	var note string
	if err := db.QueryRow(`SELECT note FROM datashift_commits WHERE id = 1`).Scan(&note); err != nil || note != "mine" {
		t.Errorf("the user's datashift_commits table was changed: %q, %v", note, err)
	}
}

// TestCommitWithoutClaim: a commit whose record is missing (never
// claimed, or its run forgotten) writes nothing and fails with
// ErrLeaseLost; a record naming another partition is refused.
func TestCommitWithoutClaim(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	s, err := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dsn, Table: "t", CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(ctx, idSchema, false); err != nil {
		t.Fatal(err)
	}
	rows := ids(0, 5)
	defer rows.Release()
	commit := func(spec connectors.WriterSpec, rec connectors.CommitRecord) error {
		w, err := s.OpenWriter(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		w.Write(ctx, rows)
		return w.Commit(ctx, rec)
	}
	spec := connectors.WriterSpec{Job: "j", Run: "r1", Partition: "p0", Lease: 1, Schema: idSchema}
	rec := connectors.CommitRecord{Job: "j", Run: "r1", Partition: "p0", Lease: 1, Rows: 5, Commits: 1}
	err = commit(spec, rec)
	if !errors.Is(err, connectors.ErrLeaseLost) || !strings.Contains(err.Error(), "commit table datashift_commits holds no record") {
		t.Errorf("commit never claimed: %v, want ErrLeaseLost saying there is no record", err)
	}
	claim(t, s, spec)
	if err := s.(connectors.CommitLog).Forget(ctx, "j", "r1"); err != nil {
		t.Fatal(err)
	}
	if err := commit(spec, rec); !errors.Is(err, connectors.ErrLeaseLost) {
		t.Errorf("commit after Forget: %v, want ErrLeaseLost", err)
	}
	claim(t, s, spec)
	other := rec
	other.Partition = "p1"
	if err := commit(spec, other); err == nil || errors.Is(err, connectors.ErrLeaseLost) || !strings.Contains(err.Error(), "the record names job j run r1 partition p1") {
		t.Errorf("commit of another partition's record: %v", err)
	}
	var n int
	sqlDB(t, dsn).QueryRow(`SELECT count(*) FROM t`).Scan(&n)
	if n != 0 {
		t.Errorf("the refused commits left %d rows", n)
	}
}
