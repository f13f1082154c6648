package sqlite

// The commit log (connectors.CommitLog; the layout is COMMITS.md's): one row
// per partition of a run, in a table of the target's own database file,
// changed in the same transaction as the partition's rows.
//
// SQLite has one writer at a time. Claim, Commit and Forget each take the
// write lock with BEGIN IMMEDIATE (never by upgrading a read transaction,
// which in WAL mode fails at once instead of waiting) and hold it for one
// short transaction only; writers hold no transaction between commits. A
// Claim on one connection therefore waits, up to the busy timeout, for a
// Commit on another to finish, and never deadlocks against it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/datashift/datashift/connectors"
)

var _ connectors.CommitLog = (*sink)(nil)

const defaultCommitTable = "datashift_commits"

// commitColumn is a column of the commit table: how this sink declares it,
// and the kinds (see kindOf) the column of an existing table may have.
type commitColumn struct {
	name, decl string
	kinds      []kind
}

var commitColumns = []commitColumn{
	{"job", "VARCHAR(128) NOT NULL", []kind{kindText}},
	{"run", "VARCHAR(64) NOT NULL", []kind{kindText}},
	{"part", "VARCHAR(64) NOT NULL", []kind{kindText}},
	{"lease", "BIGINT NOT NULL", []kind{kindInt}},
	{"position", "TEXT", []kind{kindText, kindJSON}},
	{"row_count", "BIGINT NOT NULL", []kind{kindInt}},
	{"byte_count", "BIGINT NOT NULL", []kind{kindInt}},
	{"bad_rows", "BIGINT NOT NULL", []kind{kindInt}},
	{"commit_count", "BIGINT NOT NULL", []kind{kindInt}},
	{"done", "BOOLEAN NOT NULL", []kind{kindBool, kindInt}},
	{"updated_at", "TIMESTAMPTZ_TEXT NOT NULL", []kind{kindTimestampTZ, kindTimestamp, kindText}},
}

var commitKey = []string{"job", "run", "part"}

// commitTableRef reads option commit_table. The table is in the target's
// file: a name, or main.NAME; SQLite has no other schema the sink reaches.
func commitTableRef(name string) (tableRef, error) {
	name = strings.TrimSpace(name)
	if schema, rest, ok := strings.Cut(name, "."); ok {
		if !strings.EqualFold(schema, "main") {
			return tableRef{}, fmt.Errorf("option commit_table: %q: the commit table is kept in the target's database file; give a table name (or main.NAME)", name)
		}
		name = rest
	}
	if name == "" {
		return tableRef{}, errors.New("option commit_table: empty")
	}
	return tableRef{schema: "main", name: name}, nil
}

// prepareCommitTable creates the commit table when it is missing and checks
// the one there otherwise.
func (s *sink) prepareCommitTable(c *liteConn) error {
	ti, found, err := lookupTable(c, s.commits.name)
	if err != nil {
		return err
	}
	if !found {
		defs := make([]string, len(commitColumns))
		for i, col := range commitColumns {
			defs[i] = quoteIdent(col.name) + " " + col.decl
		}
		defs = append(defs, "PRIMARY KEY ("+strings.Join(quotedNames(commitKey), ", ")+")")
		// IF NOT EXISTS: another process may have created it meanwhile.
		if err := c.exec("CREATE TABLE IF NOT EXISTS " + s.commits.sql() + " (" + strings.Join(defs, ", ") + ")"); err != nil {
			return fmt.Errorf("create commit table %q: %w", s.commits, err)
		}
		if ti, _, err = lookupTable(c, s.commits.name); err != nil {
			return err
		}
	}
	return s.checkCommitTable(c, ti)
}

// checkCommitTable refuses a table that is not a commit table: other
// columns, or no unique key on (job, run, part) for Claim's insert to
// conflict on.
func (s *sink) checkCommitTable(c *liteConn, ti *tableInfo) error {
	var problems, missing, other []string
	for _, want := range commitColumns {
		col, _ := findColumn(ti.cols, want.name)
		switch {
		case col == nil:
			missing = append(missing, want.name)
		case !slices.Contains(want.kinds, col.kind):
			problems = append(problems, fmt.Sprintf("column %s is declared %q", col.name, col.decl))
		}
	}
	for _, col := range ti.cols {
		if !slices.ContainsFunc(commitColumns, func(cc commitColumn) bool { return strings.EqualFold(cc.name, col.name) }) {
			other = append(other, col.name)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, "no column "+strings.Join(missing, ", "))
	}
	if len(other) > 0 {
		problems = append(problems, "other columns "+strings.Join(other, ", "))
	}
	if len(problems) == 0 {
		ok, err := uniqueOn(c, ti, commitKey)
		if err != nil {
			return err
		}
		if !ok {
			problems = append(problems, "no primary key on (job, run, part)")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("table %q in %s is not a datashift commit table (%s): rename it or set option commit_table to another name",
			ti.ref, s.path, strings.Join(problems, "; "))
	}
	return nil
}

// Claim takes the partition for spec.Lease in a transaction of its own:
// the record is inserted if missing and its lease raised unless a newer
// lease holds it.
func (s *sink) Claim(ctx context.Context, spec connectors.WriterSpec) (rec connectors.CommitRecord, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("sqlite sink %s: commit table %s: claim partition %s of job %s run %s under lease %d: %w",
				s.cfg.Table, s.commits, spec.Partition, spec.Job, spec.Run, spec.Lease, err)
		}
	}()
	c, err := s.conn(ctx)
	if err != nil {
		return rec, err
	}
	defer c.close()
	stop := c.interruptOn(ctx)
	defer stop()
	defer func() { err = ctxErr(ctx, err) }()
	if err := c.exec("BEGIN IMMEDIATE"); err != nil {
		return rec, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = c.exec("ROLLBACK")
		}
	}()
	t, now := s.commits.sql(), s.timestamp()
	err = c.exec("INSERT INTO "+t+" (job, run, part, lease, position, row_count, byte_count, bad_rows, commit_count, done, updated_at)"+
		" VALUES (?, ?, ?, ?, NULL, 0, 0, 0, 0, 0, ?) ON CONFLICT (job, run, part) DO NOTHING",
		spec.Job, spec.Run, spec.Partition, spec.Lease, now)
	if err != nil {
		return rec, err
	}
	err = c.exec("UPDATE "+t+" SET lease = ?, updated_at = ? WHERE job = ? AND run = ? AND part = ? AND lease <= ?",
		spec.Lease, now, spec.Job, spec.Run, spec.Partition, spec.Lease)
	if err != nil {
		return rec, err
	}
	if c.changes() == 0 {
		held, _ := storedLease(c, s.commits, spec.Job, spec.Run, spec.Partition)
		return rec, fmt.Errorf("lease %d claimed it already: %w", held, connectors.ErrLeaseLost)
	}
	rec, err = readRecord(c, s.commits, spec.Job, spec.Run, spec.Partition)
	if err != nil {
		return rec, err
	}
	if err := c.exec("COMMIT"); err != nil {
		return connectors.CommitRecord{}, err
	}
	committed = true
	return rec, nil
}

// Forget deletes the run's records.
func (s *sink) Forget(ctx context.Context, job, run string) error {
	c, err := s.conn(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	stop := c.interruptOn(ctx)
	defer stop()
	if err := c.exec("DELETE FROM "+s.commits.sql()+" WHERE job = ? AND run = ?", job, run); err != nil {
		return fmt.Errorf("sqlite sink %s: commit table %s: forget run %s of job %s: %w", s.cfg.Table, s.commits, run, job, ctxErr(ctx, err))
	}
	return nil
}

// timestamp is the time now, as updated_at holds it.
func (s *sink) timestamp() string {
	b, _ := appendTimestamp(nil, s.now().UnixMicro(), true)
	return string(b)
}

// storeRecord writes rec over the partition's record if the record still
// carries rec.Lease, on a connection inside the data's transaction; false
// when it does not (a newer lease claimed the partition, or its record is
// gone).
func (w *writer) storeRecord(rec connectors.CommitRecord) (bool, error) {
	var pos any
	if rec.Position != nil {
		b, err := json.Marshal(rec.Position)
		if err != nil {
			return false, fmt.Errorf("position %s: %w", rec.Position, err)
		}
		pos = string(b)
	}
	done := int64(0)
	if rec.Done {
		done = 1
	}
	err := w.c.exec("UPDATE "+w.sink.commits.sql()+" SET position = ?, row_count = ?, byte_count = ?, bad_rows = ?, commit_count = ?, done = ?, updated_at = ?"+
		" WHERE job = ? AND run = ? AND part = ? AND lease = ?",
		pos, rec.Rows, rec.Bytes, rec.BadRows, rec.Commits, done, w.sink.timestamp(),
		w.spec.Job, w.spec.Run, w.spec.Partition, rec.Lease)
	if err != nil {
		return false, err
	}
	return w.c.changes() > 0, nil
}

// storedLease is the lease the partition's record carries; false when
// there is no record.
func storedLease(c *liteConn, t tableRef, job, run, part string) (lease int64, found bool) {
	_ = c.query("SELECT lease FROM "+t.sql()+" WHERE job = ? AND run = ? AND part = ?", []any{job, run, part}, func(st *liteStmt) error {
		lease, found = st.colInt64(0), true
		return nil
	})
	return lease, found
}

func readRecord(c *liteConn, t tableRef, job, run, part string) (connectors.CommitRecord, error) {
	rec := connectors.CommitRecord{Job: job, Run: run, Partition: part}
	found := false
	err := c.query("SELECT lease, position, row_count, byte_count, bad_rows, commit_count, done FROM "+t.sql()+
		" WHERE job = ? AND run = ? AND part = ?", []any{job, run, part}, func(st *liteStmt) error {
		found = true
		rec.Lease = st.colInt64(0)
		if st.colType(1) != typNull {
			if err := json.Unmarshal(st.colText(1), &rec.Position); err != nil {
				return fmt.Errorf("position %s: %w", render(st.colText(1)), err)
			}
		}
		rec.Rows, rec.Bytes, rec.BadRows, rec.Commits = st.colInt64(2), st.colInt64(3), st.colInt64(4), st.colInt64(5)
		rec.Done = st.colInt64(6) != 0
		return nil
	})
	if err == nil && !found {
		err = errors.New("the record is missing")
	}
	return rec, err
}
