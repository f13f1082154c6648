package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/internal/testenv"
)

// indexesOf are the definitions of table's indexes, as pg_indexes writes
// them, sorted by name.
func indexesOf(t *testing.T, conn *pgx.Conn, table string) []string {
	return queryStrings(t, conn, `SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname`, table)
}

// queryStrings is the one text column of query's rows.
func queryStrings(t *testing.T, conn *pgx.Conn, query string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	values, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return values
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

// constraintsOf are table's constraints, each its name and definition,
// sorted by name.
func constraintsOf(t *testing.T, conn *pgx.Conn, table string) []string {
	return queryStrings(t, conn, `SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = to_regclass($1) ORDER BY conname`, table)
}

func commentOf(t *testing.T, conn *pgx.Conn, table string) *string {
	t.Helper()
	var c *string
	if err := conn.QueryRow(testCtx(t), "SELECT obj_description(to_regclass($1), 'pg_class')", table).Scan(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// A table of the user's that is empty when the run begins loads without
// the indexes a build after the rows can make: its key, plain, partial and
// expression indexes. Complete builds them again as they were, the key as
// the constraint it was, and gives the table its comment back. What
// loading without could let in, or what could not be made again, stays:
// a unique index on other columns than the key, an index a foreign key
// relies on. A table with rows, an upserted one and one with keep_indexes
// keep theirs; so does a table waiting for its indexes since an earlier
// run if it has rows now, which gets them before it takes more.
func TestSinkLoadsAnEmptyTableWithoutTheIndexesItBuildsAfter(t *testing.T) {
	dsn, conn := newDB(t)
	ctx := testCtx(t)
	ddl := func(table string) []string {
		return []string{
			`CREATE TABLE ` + table + ` (id bigint CONSTRAINT ` + table + `_key_is_id PRIMARY KEY, code text NOT NULL CONSTRAINT ` + table + `_code UNIQUE,
				tag text, amount numeric(12,2))`,
			`CREATE INDEX ` + table + `_tag ON ` + table + ` (lower(tag)) WHERE tag IS NOT NULL`,
			`CREATE INDEX ` + table + `_amount ON ` + table + ` (amount DESC, tag) WITH (fillfactor = 70)`,
			`COMMENT ON TABLE ` + table + ` IS 'the user''s words'`,
		}
	}
	for _, table := range []string{"empty", "with_rows", "upserted", "kept", "referenced", "truncated"} {
		for _, stmt := range ddl(table) {
			mustExec(t, conn, stmt)
		}
	}
	mustExec(t, conn, `INSERT INTO with_rows VALUES (0, 'zero', NULL, 0)`)
	mustExec(t, conn, `INSERT INTO truncated VALUES (0, 'zero', NULL, 0)`)
	mustExec(t, conn, `CREATE TABLE referrer (id bigint REFERENCES referenced)`)
	fill := func(table string) {
		mustExec(t, conn, `INSERT INTO `+table+` SELECT g, 'c' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'Tag' || g % 7 END, g / 100.0
			FROM generate_series(1, 3000) g ON CONFLICT DO NOTHING`)
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "code", Type: arrow.BinaryTypes.String},
		field("tag", arrow.BinaryTypes.String),
		field("amount", &arrow.Decimal128Type{Precision: 12, Scale: 2}),
	}, nil)
	words := "the user's words"
	for _, c := range []struct {
		table   string
		mode    connectors.WriteMode
		options map[string]string
		// the indexes Prepare leaves, by name; nil: all of them
		left []string
	}{
		{"empty", connectors.Append, nil, []string{"empty_code"}},
		{"truncated", connectors.Truncate, nil, []string{"truncated_code"}},
		{"with_rows", connectors.Append, nil, nil},
		{"upserted", connectors.Upsert, nil, nil},
		{"kept", connectors.Append, map[string]string{"keep_indexes": "true"}, nil},
		// The foreign key relies on the key's index.
		{"referenced", connectors.Append, nil, []string{"referenced_code", "referenced_key_is_id"}},
	} {
		indexes, indexNames, constraints := indexesOf(t, conn, c.table), indexNamesOf(t, conn, c.table), constraintsOf(t, conn, c.table)
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: c.table, Key: []string{"id"}, Mode: c.mode, Options: c.options})
		if err := snk.Prepare(ctx, schema, c.mode == connectors.Truncate); err != nil {
			t.Fatalf("%s: Prepare: %v", c.table, err)
		}
		left := indexNamesOf(t, conn, c.table)
		want := c.left
		if want == nil {
			want = indexNames
		}
		if strings.Join(left, " ") != strings.Join(want, " ") {
			t.Errorf("%s: Prepare left indexes %v, want %v", c.table, left, want)
		}
		if got := commentOf(t, conn, c.table); c.left == nil && (got == nil || *got != words) {
			t.Errorf("%s: Prepare changed the comment to %v", c.table, got)
		}
		fill(c.table)
		for range 2 { // the second finds nothing left to do
			if err := snk.Complete(ctx); err != nil {
				t.Fatalf("%s: Complete: %v", c.table, err)
			}
			if got := indexesOf(t, conn, c.table); strings.Join(got, "\n") != strings.Join(indexes, "\n") {
				t.Errorf("%s: indexes after Complete:\n%s\nwant\n%s", c.table, strings.Join(got, "\n"), strings.Join(indexes, "\n"))
			}
			if got := constraintsOf(t, conn, c.table); strings.Join(got, "\n") != strings.Join(constraints, "\n") {
				t.Errorf("%s: constraints after Complete: %q, want %q", c.table, got, constraints)
			}
			if got := commentOf(t, conn, c.table); got == nil || *got != words {
				t.Errorf("%s: comment after Complete: %v", c.table, got)
			}
		}
	}

	// An earlier run left the table waiting and failed; rows came since.
	// The next run's Prepare builds the key first, so that a key that
	// repeats is refused as it is written.
	for _, stmt := range ddl("resumed") {
		mustExec(t, conn, stmt)
	}
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "resumed", Key: []string{"id"}, Mode: connectors.Append})
	prepare(t, snk, schema)
	if got := keyConstraintOf(t, conn, "resumed"); got != "UNIQUE (code)" {
		t.Fatalf("after the first Prepare: %q", got)
	}
	fill("resumed")
	prepare(t, snk, schema)
	if got := keyConstraintOf(t, conn, "resumed"); got != "PRIMARY KEY (id), UNIQUE (code)" && got != "UNIQUE (code), PRIMARY KEY (id)" {
		t.Fatalf("after the second Prepare, over rows: %q", got)
	}
	if got := commentOf(t, conn, "resumed"); got == nil || *got != words {
		t.Errorf("comment after the second Prepare: %v", got)
	}

	// Keys that repeat: the user's key cannot be built again, and the
	// error says why and that the table's comment keeps what it waits for;
	// once the repeat is gone, the next Complete builds it.
	for _, stmt := range ddl("repeated") {
		mustExec(t, conn, stmt)
	}
	indexes := indexesOf(t, conn, "repeated")
	snk = openSink(t, connectors.SinkConfig{DSN: dsn, Table: "repeated", Key: []string{"id"}, Mode: connectors.Append})
	prepare(t, snk, schema)
	mustExec(t, conn, `INSERT INTO repeated VALUES (1, 'a', NULL, 1), (1, 'b', NULL, 2)`)
	err := snk.Complete(ctx)
	if err == nil || !strings.Contains(err.Error(), `could not create unique index "repeated_key_is_id"`) || !strings.Contains(err.Error(), "Key (id)=(1) is duplicated") ||
		!strings.Contains(err.Error(), "the table's comment keeps the definitions of its indexes") || strings.Contains(err.Error(), "take the mark off") {
		t.Fatalf("Complete over repeated keys: %v", err)
	}
	mustExec(t, conn, `DELETE FROM repeated WHERE code = 'b'`)
	if err := snk.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	if got := indexesOf(t, conn, "repeated"); strings.Join(got, "\n") != strings.Join(indexes, "\n") {
		t.Errorf("indexes once the repeat is gone: %q, want %q", got, indexes)
	}

	// The job's user may write into the table (and lock it) but not alter
	// it: the rows load with the indexes there.
	role := testenv.UniqueName("writer")
	mustExec(t, conn, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = conn.Exec(context.Background(), "DROP ROLE "+role)
	})
	for _, stmt := range ddl("not_theirs") {
		mustExec(t, conn, stmt)
	}
	mustExec(t, conn, "GRANT SELECT, INSERT, UPDATE ON not_theirs TO "+role)
	mustExec(t, conn, "GRANT USAGE, CREATE ON SCHEMA public TO "+role)
	before := indexNamesOf(t, conn, "not_theirs")
	snk = openSink(t, connectors.SinkConfig{DSN: strings.Replace(dsn, "//postgres@", "//"+role+"@", 1), Table: "not_theirs", Key: []string{"id"}, Mode: connectors.Append})
	prepare(t, snk, schema)
	if got := indexNamesOf(t, conn, "not_theirs"); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Errorf("a user who may not alter the table: indexes %v after Prepare, want %v", got, before)
	}
}

func indexNamesOf(t *testing.T, conn *pgx.Conn, table string) []string {
	return queryStrings(t, conn, `SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY indexname`, table)
}
