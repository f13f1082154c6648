package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/datashift/datashift/connectors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var _ connectors.CommitLog = (*Sink)(nil)

// defaultCommitTable is the commit table's name when option commit_table
// does not give one; it lives in the target table's schema.
const defaultCommitTable = "datashift_commits"

// commitColumns is the commit table's layout (connectors/COMMITS.md), as
// format_type names the types: Prepare creates it so and refuses a table of
// that name that is not so.
var commitColumns = []struct{ name, typ, def string }{
	{"job", "character varying(128)", "NOT NULL"},
	{"run", "character varying(64)", "NOT NULL"},
	{"part", "character varying(64)", "NOT NULL"},
	{"lease", "bigint", "NOT NULL"},
	{"position", "text", ""},
	{"row_count", "bigint", "NOT NULL DEFAULT 0"},
	{"byte_count", "bigint", "NOT NULL DEFAULT 0"},
	{"bad_rows", "bigint", "NOT NULL DEFAULT 0"},
	{"commit_count", "bigint", "NOT NULL DEFAULT 0"},
	{"done", "boolean", "NOT NULL DEFAULT false"},
	{"updated_at", "timestamp without time zone", "NOT NULL DEFAULT (clock_timestamp() AT TIME ZONE 'UTC')"},
}

// The widths of the record's key columns, in characters.
const (
	maxJob  = 128
	maxRun  = 64
	maxPart = 64
)

// commitTable returns the commit table's quoted, schema-qualified name: the
// commit_table option as given when qualified, else in the target table's
// schema (resolved once, through the search path when the target is not
// qualified either; Prepare resolves it again once the target exists).
func (s *Sink) commitTable(ctx context.Context, conn *pgx.Conn, again bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.commits != "" && !again {
		return s.commits, nil
	}
	name := s.commitName
	if len(name) == 1 {
		schema := ""
		if len(s.name) == 2 {
			schema = s.name[0]
		} else {
			var found *string
			err := conn.QueryRow(ctx, `SELECT coalesce(
  (SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)),
  current_schema()::text)`, s.what).Scan(&found)
			if err != nil {
				return "", fmt.Errorf("find the schema for commit table %s: %w", name.Sanitize(), err)
			}
			if found == nil {
				return "", fmt.Errorf("no schema for commit table %s: the search path names none; qualify option commit_table", name.Sanitize())
			}
			schema = *found
		}
		name = pgx.Identifier{schema, name[0]}
	}
	s.commitID, s.commits = name, name.Sanitize()
	return s.commits, nil
}

// prepareCommits creates the commit table if it is missing, and checks
// that a table of its name is one: the columns of COMMITS.md and a unique
// index on (job, run, part) for Claim's ON CONFLICT.
func (s *Sink) prepareCommits(ctx context.Context, conn *pgx.Conn) error {
	tbl, err := s.commitTable(ctx, conn, true)
	if err != nil {
		return err
	}
	s.mu.Lock()
	name := s.commitID
	s.mu.Unlock()
	oid, cols, err := lookupTable(ctx, conn, name)
	if errors.Is(err, errNoTable) {
		if err := createCommitTable(ctx, conn, tbl); err != nil {
			return fmt.Errorf("create commit table %s: %w", tbl, err)
		}
		if oid, cols, err = lookupTable(ctx, conn, name); err != nil {
			return fmt.Errorf("commit table %s: %w", tbl, err)
		}
	} else if err != nil {
		return fmt.Errorf("commit table %s: %w", tbl, err)
	}
	return checkCommitTable(ctx, conn, tbl, oid, cols)
}

// createCommitTable creates the commit table unless it exists. Sinks of
// several tables may prepare at once, and concurrent CREATE TABLE IF NOT
// EXISTS of one name can still fail on the catalog's unique indexes: an
// advisory lock on the name makes them take turns.
func createCommitTable(ctx context.Context, conn *pgx.Conn, tbl string) error {
	defs := make([]string, len(commitColumns))
	for i, c := range commitColumns {
		defs[i] = strings.TrimSpace(quoteIdent(c.name) + " " + c.typ + " " + c.def)
	}
	ddl := "CREATE TABLE IF NOT EXISTS " + tbl + " (" + strings.Join(defs, ", ") + ", PRIMARY KEY (job, run, part))"
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "datashift commit table "+tbl); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// checkCommitTable refuses a table that is not a commit table, saying what
// differs, so that a user table that happens to have the name is neither
// written into nor mistaken for one.
func checkCommitTable(ctx context.Context, conn *pgx.Conn, tbl string, oid uint32, cols []column) error {
	var problems []string
	byName := map[string]column{}
	for _, c := range cols {
		byName[c.name] = c
	}
	want := map[string]bool{}
	for _, w := range commitColumns {
		want[w.name] = true
		c, ok := byName[w.name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("no column %q", w.name))
		case c.sqlType != w.typ:
			problems = append(problems, fmt.Sprintf("column %q is %s, not %s", w.name, c.sqlType, w.typ))
		}
	}
	for _, c := range cols {
		if !want[c.name] {
			problems = append(problems, fmt.Sprintf("column %q, which a commit table does not have", c.name))
		}
	}
	if len(problems) == 0 {
		var ok bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i
WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = 3
  AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
       WHERE a.attrelid = i.indrelid AND a.attnum = ANY ((i.indkey::int2[])[0:2])) = ARRAY['job', 'part', 'run'])`, oid).Scan(&ok)
		if err != nil {
			return fmt.Errorf("commit table %s: read its indexes: %w", tbl, err)
		}
		if ok {
			return nil
		}
		problems = append(problems, "no primary key or unique index on (job, run, part)")
	}
	return fmt.Errorf("table %s is not a datashift commit table (%s): drop it, or name another with option commit_table",
		tbl, strings.Join(problems, "; "))
}

// checkNames makes sure a partition's names fit the record's key columns,
// so that a long one fails here, by name, rather than as "value too long".
func checkNames(job, run, part string) error {
	for _, n := range []struct {
		what, v string
		max     int
	}{{"job", job, maxJob}, {"run", run, maxRun}, {"partition", part, maxPart}} {
		if n.v == "" {
			return fmt.Errorf("commit record: the %s name is empty", n.what)
		}
		if utf8.RuneCountInString(n.v) > n.max {
			return fmt.Errorf("commit record: %s %q is longer than the %d characters the commit table keeps", n.what, n.v, n.max)
		}
	}
	return nil
}

// Claim takes the partition for spec.Lease in a statement of its own:
// it creates the record, or moves its lease up to spec.Lease, unless a
// newer lease holds it (then no row comes back and the claim fails with
// ErrLeaseLost). A commit of an older lease still in flight holds the
// record's row lock, so Claim waits for it to land or roll back.
func (s *Sink) Claim(ctx context.Context, spec connectors.WriterSpec) (connectors.CommitRecord, error) {
	rec, err := s.claim(ctx, spec)
	if err != nil {
		return connectors.CommitRecord{}, s.fail(fmt.Errorf("partition %s: %w", spec.Partition, err))
	}
	return rec, nil
}

func (s *Sink) claim(ctx context.Context, spec connectors.WriterSpec) (connectors.CommitRecord, error) {
	if err := checkNames(spec.Job, spec.Run, spec.Partition); err != nil {
		return connectors.CommitRecord{}, err
	}
	conn, err := s.conn.get(ctx)
	if err != nil {
		return connectors.CommitRecord{}, err
	}
	defer s.conn.put(conn)
	tbl, err := s.commitTable(ctx, conn, false)
	if err != nil {
		return connectors.CommitRecord{}, err
	}
	rec := connectors.CommitRecord{Job: spec.Job, Run: spec.Run, Partition: spec.Partition, Lease: spec.Lease}
	var pos *string
	err = conn.QueryRow(ctx, `INSERT INTO `+tbl+` AS c (job, run, part, lease) VALUES ($1, $2, $3, $4)
ON CONFLICT (job, run, part) DO UPDATE SET lease = EXCLUDED.lease, updated_at = clock_timestamp() AT TIME ZONE 'UTC'
WHERE c.lease <= EXCLUDED.lease
RETURNING position, row_count, byte_count, bad_rows, commit_count, done`,
		spec.Job, spec.Run, spec.Partition, spec.Lease).Scan(&pos, &rec.Rows, &rec.Bytes, &rec.BadRows, &rec.Commits, &rec.Done)
	if errors.Is(err, pgx.ErrNoRows) {
		return connectors.CommitRecord{}, fmt.Errorf("commit table %s: job %q run %q: a lease newer than %d holds the partition: %w",
			tbl, spec.Job, spec.Run, spec.Lease, connectors.ErrLeaseLost)
	}
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" {
			return connectors.CommitRecord{}, fmt.Errorf("commit table %s does not exist (Prepare creates it): %w", tbl, err)
		}
		return connectors.CommitRecord{}, fmt.Errorf("commit table %s: claim: %w", tbl, err)
	}
	if pos != nil {
		if err := json.Unmarshal([]byte(*pos), &rec.Position); err != nil {
			return connectors.CommitRecord{}, fmt.Errorf("commit table %s: job %q run %q: position %q: %w", tbl, spec.Job, spec.Run, *pos, err)
		}
	}
	return rec, nil
}

// Forget deletes the records of one run of a job.
func (s *Sink) Forget(ctx context.Context, job, run string) error {
	conn, err := s.conn.get(ctx)
	if err != nil {
		return s.conn.redact(err)
	}
	defer s.conn.put(conn)
	tbl, err := s.commitTable(ctx, conn, false)
	if err != nil {
		return s.fail(err)
	}
	if _, err = conn.Exec(ctx, "DELETE FROM "+tbl+" WHERE job = $1 AND run = $2", job, run); err != nil {
		return s.fail(fmt.Errorf("commit table %s: forget run %q of job %q: %w", tbl, run, job, err))
	}
	return nil
}

// recordSQL stores a commit record if it still carries the lease it was
// committed under; $1-$3 name it, $4 is the lease.
func recordSQL(tbl string) string {
	return "UPDATE " + tbl + ` SET position = $5, row_count = $6, byte_count = $7, bad_rows = $8, commit_count = $9, done = $10,
  updated_at = clock_timestamp() AT TIME ZONE 'UTC'
WHERE job = $1 AND run = $2 AND part = $3 AND lease = $4`
}

// recordArgs are recordSQL's arguments for rec, written by the writer of
// spec: the record it stores is the writer's partition.
func recordArgs(spec connectors.WriterSpec, rec connectors.CommitRecord) ([]any, error) {
	for _, n := range []struct{ what, rec, spec string }{
		{"job", rec.Job, spec.Job}, {"run", rec.Run, spec.Run}, {"partition", rec.Partition, spec.Partition},
	} {
		if n.rec != "" && n.rec != n.spec {
			return nil, fmt.Errorf("the commit record is of %s %q, the writer writes %s %q", n.what, n.rec, n.what, n.spec)
		}
	}
	var pos *string
	if rec.Position != nil {
		b, err := json.Marshal(rec.Position)
		if err != nil {
			return nil, fmt.Errorf("commit record: position %s: %w", rec.Position, err)
		}
		p := string(b)
		pos = &p
	}
	return []any{spec.Job, spec.Run, spec.Partition, rec.Lease, pos, rec.Rows, rec.Bytes, rec.BadRows, rec.Commits, rec.Done}, nil
}

// leaseLost is the error of a commit whose record no longer carries its
// lease: a newer lease has claimed the partition (or none ever did).
func leaseLost(tbl string, spec connectors.WriterSpec, lease int64) error {
	return fmt.Errorf("commit table %s: job %q run %q: lease %d no longer holds the partition, so nothing of this commit was written: %w",
		tbl, spec.Job, spec.Run, lease, connectors.ErrLeaseLost)
}
