package postgres

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
)

// indexesOf are the definitions of table's indexes, as pg_indexes writes
// them, sorted by name.
func indexesOf(t *testing.T, conn *pgx.Conn, table string) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), `SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname`, table)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return defs
}

// A table the sink creates from a PostgreSQL table gets the source's
// indexes (plain, unique, on an expression, partial), CHECK constraints and
// column defaults once its rows are in, indexes named after the target;
// those on a column the job does not copy are left out, as they could not
// be made, and so are those that need the source database's own objects (a
// function, a sequence).
func TestSinkCreatesTheSourcesIndexesAndChecks(t *testing.T) {
	dsn, conn := newDB(t)
	for _, stmt := range []string{
		`CREATE FUNCTION norm(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower(trim($1))'`,
		`CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, region int NOT NULL, status text NOT NULL DEFAULT 'new',
			balance numeric(12,2) CHECK (balance >= 0), secret text, opened timestamptz DEFAULT now(), seq_no serial,
			CONSTRAINT region_known CHECK (region BETWEEN 1 AND 9), CONSTRAINT secret_short CHECK (length(secret) < 40),
			CONSTRAINT email_normal CHECK (norm(email) <> ''))`,
		`CREATE UNIQUE INDEX accounts_email ON accounts (lower(email))`,
		`CREATE INDEX accounts_region ON accounts (region, status)`,
		`CREATE INDEX accounts_open ON accounts (id) WHERE status = 'open'`,
		`CREATE INDEX accounts_secret ON accounts (secret)`,
		`CREATE INDEX accounts_norm ON accounts (norm(email))`,
		`INSERT INTO accounts (id, email, region, status, balance, secret)
			SELECT g, 'User' || g || '@example.com', 1 + g % 9, CASE WHEN g % 3 = 0 THEN 'open' ELSE 'closed' END, g % 1000, 's' || g FROM generate_series(1, 5000) g`,
	} {
		mustExec(t, conn, stmt)
	}
	src := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "accounts", Key: []string{"id"},
		Columns: []string{"id", "email", "region", "status", "balance", "opened", "seq_no"}})
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "accounts_copy", Key: []string{"id"}, Mode: connectors.Append, CreateTable: true})
	schema, err := src.Schema(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := snk.Prepare(testCtx(t), schema, false); err != nil {
		t.Fatal(err)
	}
	if got := indexesOf(t, conn, "accounts_copy"); len(got) != 0 {
		t.Fatalf("the created table has indexes before its rows are in: %q", got)
	}
	if n := copyAll(t, src, snk, connectors.WriterSpec{Job: "accounts", Partition: "p0"}); n != 5000 {
		t.Fatalf("copied %d rows, want 5000", n)
	}
	if err := snk.Complete(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`CREATE UNIQUE INDEX accounts_copy_accounts_email ON public.accounts_copy USING btree (lower(email))`,
		`CREATE INDEX accounts_copy_accounts_open ON public.accounts_copy USING btree (id) WHERE (status = 'open'::text)`,
		`CREATE INDEX accounts_copy_accounts_region ON public.accounts_copy USING btree (region, status)`,
		`CREATE UNIQUE INDEX accounts_copy_pkey ON public.accounts_copy USING btree (id)`,
	}
	if got := indexesOf(t, conn, "accounts_copy"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the created table's indexes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rows, err := conn.Query(testCtx(t), `SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'accounts_copy'::regclass ORDER BY conname`)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	wantCons := []string{
		"accounts_balance_check CHECK ((balance >= (0)::numeric))",
		"accounts_copy_pkey PRIMARY KEY (id)",
		"region_known CHECK (((region >= 1) AND (region <= 9)))",
	}
	if strings.Join(cons, "\n") != strings.Join(wantCons, "\n") {
		t.Errorf("the created table's constraints:\n%s\nwant\n%s", strings.Join(cons, "\n"), strings.Join(wantCons, "\n"))
	}
	rows, err = conn.Query(testCtx(t), `SELECT column_name || coalesce(' = ' || column_default, '') FROM information_schema.columns
WHERE table_name = 'accounts_copy' ORDER BY ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	wantDefaults := []string{"id", "email", "region", "status = 'new'::text", "balance", "opened = now()", "seq_no"}
	if strings.Join(defaults, ", ") != strings.Join(wantDefaults, ", ") {
		t.Errorf("the created table's defaults: %s\nwant %s", strings.Join(defaults, ", "), strings.Join(wantDefaults, ", "))
	}
	// The unique index holds: a repeated email is refused.
	if _, err := conn.Exec(testCtx(t), `INSERT INTO accounts_copy (id, email, region, balance, seq_no) VALUES (9999, 'USER1@example.com', 1, 1, 1)`); err == nil || !strings.Contains(err.Error(), "accounts_copy_accounts_email") {
		t.Errorf("a repeated email in the copy: %v", err)
	}
	if d, err := readDeferred(testCtx(t), conn, `"accounts_copy"`); err != nil || d != nil {
		t.Errorf("the mark after Complete: %+v, %v", d, err)
	}

	// A name the copy's index would take is another table's index's:
	// Complete says so, and leaves the table marked.
	mustExec(t, conn, `CREATE TABLE other (region int, status text)`)
	mustExec(t, conn, `CREATE INDEX clash_accounts_region ON other (region)`)
	clash := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "clash", Key: []string{"id"}, Mode: connectors.Append, CreateTable: true})
	if err := clash.Prepare(testCtx(t), schema, false); err != nil {
		t.Fatal(err)
	}
	err = clash.Complete(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), `build index clash_accounts_region (the source's accounts_region): "clash_accounts_region" names another table's index`) {
		t.Fatalf("Complete with a name taken by another table's index: %v", err)
	}
	if d, err := readDeferred(testCtx(t), conn, `"clash"`); err != nil || d == nil {
		t.Errorf("the mark after a failed Complete: %+v, %v", d, err)
	}
}
