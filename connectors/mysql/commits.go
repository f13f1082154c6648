package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/datashift/datashift/connectors"
)

// The commit log (connectors/COMMITS.md): one row per partition of a run in
// a table next to the target, option commit_table. Claim raises the row's
// lease in a transaction of its own; a writer's Commit locks the row with
// SELECT … FOR UPDATE in the rows' transaction, checks the lease and
// updates the record, so rows and record commit together or not at all.
// The locking read is what tells a lease taken over from a record that did
// not change: the server reports rows changed, not rows matched, and the
// DSN leaves CLIENT_FOUND_ROWS off. A writer locks the row only in its
// Commit, so a stale writer halfway through a LOAD DATA never holds up the
// claim that fences it out.

const defaultCommitTable = "datashift_commits"

// Lengths of the commit table's key columns, in characters. Job names are
// utf8mb4, run and partition ids ASCII: a key of at most 512 + 64 + 64
// bytes fits InnoDB's limits with any row format and page size (767 bytes
// a column in COMPACT rows, 768 bytes a key with 4 KB pages).
const (
	maxJobChars = 128
	maxIDChars  = 64
)

// commitColumn is one column of the commit table as Prepare checks it.
type commitColumn struct {
	name  string
	types []string // DATA_TYPE values it may have
	chars int64    // least length, for the key columns
	null  bool     // must take NULL
}

var commitColumns = []commitColumn{
	{name: "job", types: []string{"varchar"}, chars: maxJobChars},
	{name: "run", types: []string{"varchar"}, chars: maxIDChars},
	{name: "part", types: []string{"varchar"}, chars: maxIDChars},
	{name: "lease", types: []string{"bigint"}},
	{name: "position", types: []string{"text", "mediumtext", "longtext"}, null: true},
	{name: "row_count", types: []string{"bigint"}},
	{name: "byte_count", types: []string{"bigint"}},
	{name: "bad_rows", types: []string{"bigint"}},
	{name: "commit_count", types: []string{"bigint"}},
	{name: "done", types: []string{"tinyint"}}, // BOOLEAN
	{name: "updated_at", types: []string{"datetime", "timestamp"}},
}

// The key condition and the record's columns as Claim and Commit read them.
const (
	recordKey    = "`job` = ? AND `run` = ? AND `part` = ?"
	recordFields = "`lease`, `position`, `row_count`, `byte_count`, `bad_rows`, `commit_count`, `done`"
)

// commitTableRef resolves option commit_table: a bare name lives in the
// target's database.
func commitTableRef(name string, target tableRef) (tableRef, error) {
	schema, table := splitTable(name, target.schema)
	switch {
	case schema == "" || table == "":
		return tableRef{}, fmt.Errorf("option commit_table=%q: want a table name or db.table", name)
	case strings.EqualFold(schema, target.schema) && strings.EqualFold(table, target.name):
		return tableRef{}, fmt.Errorf("option commit_table=%q names the target table itself", name)
	}
	return tableRef{schema, table}, nil
}

// asciiKeyCollation is a byte-order ASCII collation, no-pad where the
// server has one (checkRecordID covers the padding of the other).
func (s *sink) asciiKeyCollation() string {
	if s.mariadb {
		return "ascii_nopad_bin"
	}
	return "ascii_bin"
}

func (s *sink) commitTableSQL() string {
	job := "VARCHAR(128) CHARACTER SET utf8mb4 COLLATE " + s.textKeyCollation() + " NOT NULL"
	id := "VARCHAR(64) CHARACTER SET ascii COLLATE " + s.asciiKeyCollation() + " NOT NULL"
	defs := []string{
		"`job` " + job,
		"`run` " + id,
		"`part` " + id,
		"`lease` BIGINT NOT NULL",
		"`position` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
		"`row_count` BIGINT NOT NULL DEFAULT 0",
		"`byte_count` BIGINT NOT NULL DEFAULT 0",
		"`bad_rows` BIGINT NOT NULL DEFAULT 0",
		"`commit_count` BIGINT NOT NULL DEFAULT 0",
		"`done` BOOLEAN NOT NULL DEFAULT FALSE",
		"`updated_at` DATETIME(6) NOT NULL COMMENT 'UTC'",
		"PRIMARY KEY (`job`, `run`, `part`)",
	}
	return "CREATE TABLE IF NOT EXISTS " + s.commits.quoted() + " (\n  " + strings.Join(defs, ",\n  ") +
		"\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='datashift commit records (connectors/COMMITS.md)'"
}

// prepareCommitTable creates the commit table if it is missing and checks
// it otherwise. It creates nothing when the table is there, so a user
// without the CREATE privilege can use one a DBA made.
func (s *sink) prepareCommitTable(ctx context.Context) error {
	cols, err := loadColumns(ctx, s.db, s.commits)
	if errors.Is(err, errNoTable) {
		if _, err := s.db.ExecContext(ctx, s.commitTableSQL()); err != nil {
			return classify(fmt.Errorf("mysql sink %s: create commit table %s: %w", s.table, s.commits, err))
		}
		cols, err = loadColumns(ctx, s.db, s.commits)
	}
	if err != nil {
		return fmt.Errorf("mysql sink %s: commit table: %w", s.table, err)
	}
	return s.checkCommitTable(ctx, cols)
}

// checkCommitTable makes sure an existing table is a commit table: the
// columns of COMMITS.md and no others, byte-order keys, the primary key,
// and an engine with transactions (or records would not commit with rows).
func (s *sink) checkCommitTable(ctx context.Context, cols []*column) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("mysql sink %s: commit table %s: "+format, append([]any{s.table, s.commits}, args...)...)
	}
	want := make([]string, len(commitColumns))
	for i, c := range commitColumns {
		want[i] = c.name
	}
	got := make([]string, len(cols))
	for i, c := range cols {
		got[i] = strings.ToLower(c.name)
	}
	if a, b := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)); !slices.Equal(a, b) {
		return fail("the table there has columns (%s), not those of a commit table (%s): it is not datashift's; "+
			"name another table with option commit_table", strings.Join(columnNames(cols), ", "), strings.Join(want, ", "))
	}
	for _, cc := range commitColumns {
		c := findColumn(cols, cc.name)
		if !slices.Contains(cc.types, c.dataType) {
			return fail("column %s is %s, want %s", cc.name, c.sqlType, strings.Join(cc.types, " or "))
		}
		if cc.null && !c.nullable {
			return fail("column %s is NOT NULL, want NULL", cc.name)
		}
		if cc.chars == 0 {
			continue
		}
		if c.maxChars < cc.chars {
			return fail("column %s is %s, want at least varchar(%d)", cc.name, c.sqlType, cc.chars)
		}
		if !strings.HasSuffix(c.collation, "_bin") {
			return fail("column %s has collation %s; record keys need a binary one (…_bin)", cc.name, c.collation)
		}
	}

	if err := s.checkTransactional(ctx, s.commits); err != nil {
		return fail("%w", err)
	}

	parts, err := primaryKeyOf(ctx, s.db, s.commits)
	if err != nil {
		return classify(fail("primary key: %w", err))
	}
	var pk []string
	for _, p := range parts {
		name := p.name
		if p.prefix > 0 {
			name += "(prefix)"
		}
		pk = append(pk, strings.ToLower(name))
	}
	if !slices.Equal(pk, []string{"job", "run", "part"}) {
		return fail("want PRIMARY KEY (job, run, part), the table has (%s)", strings.Join(pk, ", "))
	}
	return nil
}

// checkRecordID checks that a partition's names fit the commit table's
// key: a job name of at most 128 characters, run and partition ids of at
// most 64 printable ASCII characters. None may be empty or end in a space:
// PAD SPACE collations (MySQL's only byte-order ASCII one) compare "p1" and
// "p1 " equal, and they would share a record.
func (s *sink) checkRecordID(job, run, part string) error {
	check := func(what, v string, max int, ascii bool) error {
		switch {
		case v == "":
			return fmt.Errorf("%s is empty", what)
		case !utf8.ValidString(v):
			return fmt.Errorf("%s %q is not UTF-8", what, v)
		case utf8.RuneCountInString(v) > max:
			return fmt.Errorf("%s %q is longer than %d characters", what, v, max)
		case strings.HasSuffix(v, " "):
			return fmt.Errorf("%s %q ends in a space", what, v)
		}
		if ascii && strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
			return fmt.Errorf("%s %q is not printable ASCII", what, v)
		}
		return nil
	}
	err := check("job name", job, maxJobChars, false)
	if err == nil {
		err = check("run id", run, maxIDChars, true)
	}
	if err == nil {
		err = check("partition id", part, maxIDChars, true)
	}
	if err != nil {
		return fmt.Errorf("mysql sink %s: commit table %s: %w", s.table, s.commits, err)
	}
	return nil
}

// commitError wraps a failed statement on the commit table, saying that
// Prepare makes the table when it is missing.
func (s *sink) commitError(what string, err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1146 { // ER_NO_SUCH_TABLE
		what += " (the commit table is missing: Prepare creates it)"
	}
	return classify(fmt.Errorf("mysql sink %s: commit table %s: %s: %w", s.table, s.commits, what, err))
}

func (s *sink) Claim(ctx context.Context, spec connectors.WriterSpec) (connectors.CommitRecord, error) {
	if err := s.checkRecordID(spec.Job, spec.Run, spec.Partition); err != nil {
		return connectors.CommitRecord{}, err
	}
	name := spec.Job + "/" + spec.Run + "/" + spec.Partition
	fail := func(what string, err error) (connectors.CommitRecord, error) {
		return connectors.CommitRecord{}, s.commitError("partition "+name+": "+what, err)
	}
	// READ COMMITTED: no gap locks, so claims of neighbouring partitions
	// do not deadlock on each other's inserts.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return fail("claim", err)
	}
	defer tx.Rollback()
	ct := s.commits.quoted()
	key := []any{spec.Job, spec.Run, spec.Partition}
	_, err = tx.ExecContext(ctx, "INSERT INTO "+ct+" (`job`, `run`, `part`, "+recordFields+", `updated_at`)"+
		" VALUES (?, ?, ?, ?, NULL, 0, 0, 0, 0, FALSE, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE `lease` = `lease`",
		append(key, spec.Lease)...)
	if err != nil {
		return fail("claim", err)
	}
	rec := connectors.CommitRecord{Job: spec.Job, Run: spec.Run, Partition: spec.Partition}
	if err := scanRecord(tx.QueryRowContext(ctx, "SELECT "+recordFields+" FROM "+ct+" WHERE "+recordKey+" FOR UPDATE", key...), &rec); err != nil {
		return fail("claim: read the record", err)
	}
	if rec.Lease > spec.Lease {
		return connectors.CommitRecord{}, fmt.Errorf("mysql sink %s: commit table %s: partition %s: lease %d claimed it after lease %d: %w",
			s.table, s.commits, name, rec.Lease, spec.Lease, connectors.ErrLeaseLost)
	}
	if rec.Lease < spec.Lease {
		_, err := tx.ExecContext(ctx, "UPDATE "+ct+" SET `lease` = ?, `updated_at` = UTC_TIMESTAMP(6) WHERE "+recordKey+" AND `lease` <= ?",
			append(append([]any{spec.Lease}, key...), spec.Lease)...)
		if err != nil {
			return fail("claim", err)
		}
		rec.Lease = spec.Lease
	}
	if err := tx.Commit(); err != nil {
		return fail("claim: commit", err)
	}
	return rec, nil
}

func (s *sink) Forget(ctx context.Context, job, run string) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM "+s.commits.quoted()+" WHERE `job` = ? AND `run` = ?", job, run)
	if err != nil {
		return s.commitError("forget run "+job+"/"+run, err)
	}
	return nil
}

// scanRecord reads recordFields into rec.
func scanRecord(row *sql.Row, rec *connectors.CommitRecord) error {
	var pos sql.NullString
	if err := row.Scan(&rec.Lease, &pos, &rec.Rows, &rec.Bytes, &rec.BadRows, &rec.Commits, &rec.Done); err != nil {
		return err
	}
	rec.Position = nil
	if pos.Valid {
		if err := json.Unmarshal([]byte(pos.String), &rec.Position); err != nil {
			return fmt.Errorf("position %q: %w", pos.String, err)
		}
	}
	return nil
}

// positionJSON is the position column's value: NULL for no position.
func positionJSON(k connectors.Key) (any, error) {
	if k == nil {
		return nil, nil
	}
	b, err := json.Marshal(k)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// storeRecord stores rec in the writer's transaction if the record still
// carries rec.Lease; otherwise it fails with ErrLeaseLost and the caller
// rolls the transaction back. The locking read holds the record until the
// transaction ends, so no claim can come between the check and the commit.
func (w *writer) storeRecord(rec connectors.CommitRecord, pos any) error {
	s, spec := w.s, w.spec
	name := spec.Job + "/" + spec.Run + "/" + spec.Partition
	ct := s.commits.quoted()
	key := []any{spec.Job, spec.Run, spec.Partition}
	var stored int64
	err := w.tx.QueryRowContext(w.ctx, "SELECT `lease` FROM "+ct+" WHERE "+recordKey+" FOR UPDATE", key...).Scan(&stored)
	lost := func(why string) error {
		return fmt.Errorf("mysql sink %s: commit table %s: partition %s: commit under lease %d refused, %s: %w",
			s.table, s.commits, name, rec.Lease, why, connectors.ErrLeaseLost)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return lost("the table holds no record of it (never claimed, or forgotten)")
	case err != nil:
		return s.commitError("partition "+name+": read the record", err)
	case stored != rec.Lease:
		return lost(fmt.Sprintf("the record holds lease %d", stored))
	}
	_, err = w.tx.ExecContext(w.ctx, "UPDATE "+ct+" SET `position` = ?, `row_count` = ?, `byte_count` = ?, `bad_rows` = ?,"+
		" `commit_count` = ?, `done` = ?, `updated_at` = UTC_TIMESTAMP(6) WHERE "+recordKey+" AND `lease` = ?",
		pos, rec.Rows, rec.Bytes, rec.BadRows, rec.Commits, rec.Done, spec.Job, spec.Run, spec.Partition, rec.Lease)
	if err != nil {
		return s.commitError("partition "+name+": store the record", err)
	}
	return nil
}

// checkTransactional refuses a table whose engine has no transactions: its
// rows and the commit record could not commit together (or roll back
// together, when a stale writer is fenced out), so a resume could not be
// exact.
func (s *sink) checkTransactional(ctx context.Context, t tableRef) error {
	var kind, engine, transactional string
	err := s.db.QueryRowContext(ctx, `SELECT t.TABLE_TYPE, COALESCE(t.ENGINE, ''), COALESCE(e.TRANSACTIONS, 'NO')
		FROM information_schema.TABLES t LEFT JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE
		WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?`, t.schema, t.name).Scan(&kind, &engine, &transactional)
	switch {
	case err != nil:
		return classify(err)
	case kind != "BASE TABLE":
		return fmt.Errorf("is a %s, not a table", strings.ToLower(kind))
	case transactional != "YES":
		return fmt.Errorf("engine %s has no transactions, and rows must commit together with their commit record (use InnoDB)", engine)
	}
	return nil
}
