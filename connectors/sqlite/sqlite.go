// Package sqlite is the SQLite connector (type "sqlite"), source and sink.
//
// The DSN is a file path or a file: URI ("file:demo.db?mode=ro"). Column
// types follow connectors/TYPES.md: this connector creates columns with the
// declared types INTEGER, REAL, BOOLEAN, TEXT, BLOB and the text-stored
// DECIMAL_TEXT(p,s), JSON_TEXT, UUID_TEXT, DATE_TEXT, TIMESTAMP_TEXT,
// TIMESTAMPTZ_TEXT and TIME_TEXT, whose fixed layouts sort by bytes in value
// order; tables made by others are read by the usual declared types and
// SQLite's affinity rules. A stored value that contradicts its column's
// declared type fails the read with a *connectors.ValueError.
//
// Concurrency: every partition reader and writer has its own connection.
// The database runs in WAL mode so readers never block the writer; writers
// share the one write lock, so a writer buffers the batches it is given and
// holds the lock only inside Commit (BEGIN IMMEDIATE … COMMIT). Claim and
// Forget take it the same way for one short transaction, so a claim waits
// for a commit in progress rather than deadlocking with it. A lock that
// outlives the busy timeout is a connectors.Transient error.
//
// Commit records (connectors.CommitLog, ../COMMITS.md) are rows of a table
// in the target's own file, option commit_table (default datashift_commits),
// updated in each commit's transaction; resuming a partition never deletes
// from the target.
//
// Key order is byte order: text keys are compared with COLLATE BINARY even
// where the column was declared COLLATE NOCASE. The rows a key cannot order
// (the NULL-key range, and every row of a table read without a key) are read
// by rowid (connectors.PositionReader), and a position is a rowid. Positions
// hold as long as the rowids do: VACUUM may renumber the rows of a table
// without an INTEGER PRIMARY KEY. WITHOUT ROWID tables and queries have no
// positions.
//
// Source options: busy_timeout (milliseconds, default 10000), journal_mode
// ("wal", the default, switches the file to WAL; "keep" leaves it).
// Sink options: busy_timeout, synchronous (off, normal — the default —,
// full, extra), rows_per_insert (rows per INSERT statement, default 128),
// commit_table (a table name, or main.NAME).
package sqlite

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/datashift/datashift/connectors"
)

// TypeName is the name the connector registers under.
const TypeName = "sqlite"

func init() {
	connectors.RegisterSource(TypeName, func(ctx context.Context, cfg connectors.SourceConfig) (connectors.Source, error) {
		return openSource(ctx, cfg)
	}, sourceOptions...)
	connectors.RegisterSink(TypeName, func(ctx context.Context, cfg connectors.SinkConfig) (connectors.Sink, error) {
		return openSink(ctx, cfg)
	}, sinkOptions...)
}

// The options each side takes (connectors/REFERENCE.md).
var (
	sourceOptions = connectors.Options{
		{Name: "busy_timeout", Doc: "milliseconds to wait for a lock before failing with a transient error (default 10000)"},
		{Name: "journal_mode", Doc: "`wal` (default) switches the file to WAL so readers never block a writer; `keep` leaves its mode alone"},
	}
	sinkOptions = connectors.Options{
		{Name: "busy_timeout", Doc: "milliseconds to wait for the write lock before failing with a transient error (default 10000)"},
		{Name: "synchronous", Doc: "PRAGMA synchronous: `off`, `normal` (default), `full` or `extra`"},
		{Name: "rows_per_insert", Doc: "rows per multi-row INSERT statement (default 128)"},
		{Name: "commit_table", Doc: "the commit record table in the target file (default `datashift_commits`; `main.NAME` is the same)"},
	}
)

const defaultBusyMS = 10_000

// dbPath returns what sqlite3_open_v2 is given: a file: URI as is (SQLite
// reads its parameters), a plain path without a "?query" part, which
// database/sql drivers use for their own settings.
func dbPath(dsn string) string {
	if strings.HasPrefix(dsn, "file:") {
		return dsn
	}
	if i := strings.IndexByte(dsn, '?'); i > 0 {
		return dsn[:i]
	}
	return dsn
}

// options adds the parsing of numbers and choices to the options a side
// declared (sourceOptions, sinkOptions), which refused unknown keys so that a
// typo fails at open rather than being ignored.
type options struct {
	v connectors.OptionValues
}

func (o *options) int(key string, def, min, max int) (int, error) {
	v, ok := o.v.Lookup(key)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("option %s: %q is not a whole number from %d to %d", key, v, min, max)
	}
	return n, nil
}

func (o *options) choice(key, def string, allowed ...string) (string, error) {
	given, ok := o.v.Lookup(key)
	if !ok {
		return def, nil
	}
	v := strings.ToLower(strings.TrimSpace(given))
	if !contains(allowed, v) {
		return "", fmt.Errorf("option %s: %q is not one of %s", key, given, strings.Join(allowed, ", "))
	}
	return v, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkFile fails clearly when a source database does not exist: opening it
// would otherwise create an empty file and report a missing table.
func checkFile(dsn string) error {
	p := dbPath(dsn)
	if strings.HasPrefix(p, "file:") || p == ":memory:" || p == "" {
		return nil
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("database file %q does not exist", p)
		}
		return err
	}
	return nil
}

// tableInfo is what a table's definition says about its columns.
type tableInfo struct {
	ref  tableRef
	cols []*column
	// rowid: the table has a rowid (not WITHOUT ROWID, not a view), which
	// Stats uses to sample rows without scanning and keyless ranges are
	// read by.
	rowid bool
	// rowidKey is the table's INTEGER PRIMARY KEY: the rowid under another
	// name; nil when it has none.
	rowidKey *column
	// primaryKey names the primary key's columns in key order.
	primaryKey []string
}

// lookupTable resolves name ("t" or "schema.t") and reads its columns. found
// is false when there is no such table or view.
func lookupTable(c *liteConn, name string) (ti *tableInfo, found bool, err error) {
	candidates := []tableRef{{schema: "main", name: name}}
	if i := strings.IndexByte(name, '.'); i > 0 {
		candidates = append(candidates, tableRef{schema: name[:i], name: name[i+1:]})
	}
	for _, ref := range candidates {
		var typ string
		var wr int64
		n := 0
		// Identifiers are matched the way SQLite matches them in SQL:
		// ignoring ASCII case.
		err := c.query(`SELECT name, type, wr FROM pragma_table_list WHERE schema = ? AND name = ? COLLATE NOCASE`,
			[]any{ref.schema, ref.name}, func(s *liteStmt) error {
				ref.name, typ, wr = s.colString(0), s.colString(1), s.colInt64(2)
				n++
				return nil
			})
		if err != nil {
			var se *sqliteError
			if errors.As(err, &se) && strings.Contains(se.Msg, "unknown database") {
				continue
			}
			return nil, false, err
		}
		if n == 0 {
			continue
		}
		ti := &tableInfo{ref: ref, rowid: typ == "table" && wr == 0}
		var pkCols []*column
		var pkDecl []string
		var pkSeq []int64
		err = c.query(`SELECT name, type, "notnull", pk, hidden FROM pragma_table_xinfo(?, ?) ORDER BY cid`,
			[]any{ref.name, ref.schema}, func(s *liteStmt) error {
				if s.colInt64(4) == 1 { // hidden column of a virtual table
					return nil
				}
				col := &column{name: s.colString(0), decl: s.colString(1), nullable: s.colInt64(2) == 0}
				col.kind, col.prec, col.scale, col.ours = kindOf(col.decl)
				if s.colInt64(3) > 0 {
					pkCols = append(pkCols, col)
					pkDecl = append(pkDecl, strings.ToUpper(col.decl))
					pkSeq = append(pkSeq, s.colInt64(3))
				}
				ti.cols = append(ti.cols, col)
				return nil
			})
		if err != nil {
			return nil, false, err
		}
		// pk is the column's place in the key, from 1.
		order := make([]int, len(pkCols))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return cmp.Compare(pkSeq[a], pkSeq[b]) })
		for _, i := range order {
			ti.primaryKey = append(ti.primaryKey, pkCols[i].name)
		}
		// An INTEGER PRIMARY KEY is the rowid and never NULL; so are the
		// key columns of a WITHOUT ROWID table. Other key columns of a rowid
		// table may hold NULL unless declared NOT NULL (an old SQLite quirk).
		if typ == "table" && wr != 0 {
			for _, pc := range pkCols {
				pc.nullable = false
			}
		} else if typ == "table" && len(pkCols) == 1 && pkDecl[0] == "INTEGER" {
			pkCols[0].nullable = false
			ti.rowidKey = pkCols[0]
		}
		return ti, true, nil
	}
	return nil, false, nil
}

// rowidName is how SQL names the table's rowid: rowid, or the first of its
// other names _rowid_ and oid that no column takes; "" when the table has
// no rowid or its columns take all three names.
func (ti *tableInfo) rowidName() string {
	if !ti.rowid {
		return ""
	}
	for _, name := range []string{"rowid", "_rowid_", "oid"} {
		if c, _ := findColumn(ti.cols, name); c == nil {
			return name
		}
	}
	return ""
}

// findColumn returns the column named name: exactly, or else ignoring
// ASCII case as SQLite does.
func findColumn(cols []*column, name string) (*column, int) {
	for i, c := range cols {
		if c.name == name {
			return c, i
		}
	}
	for i, c := range cols {
		if strings.EqualFold(c.name, name) {
			return c, i
		}
	}
	return nil, -1
}

func columnNames(cols []*column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}
