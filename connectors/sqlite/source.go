package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

var (
	_ connectors.Source         = (*source)(nil)
	_ connectors.Sampler        = (*source)(nil)
	_ connectors.PrimaryKeyer   = (*source)(nil)
	_ connectors.Counter        = (*source)(nil)
	_ connectors.CursorSource   = (*source)(nil)
	_ connectors.PositionReader = (*source)(nil)
)

const (
	defaultBatchRows  = 10_000
	defaultBatchBytes = 8 << 20
)

// rowsPerProbe is how many rows Stats scans in the time one probe takes
// (an index walk to a rowid and the read of its row, with its share of
// measuring the rowids' density: ~20-30µs, against ~0.2µs a row scanned,
// measured on the demo's table). A table of fewer than rowsPerProbe times
// the probes a sample needs is scanned: cheaper, and exact. A variable so
// that tests reach the sampling path with small tables.
var rowsPerProbe = 100.0

// scanBelow is the table size under which Stats scans for a sample of
// sampleSize keys.
func scanBelow(sampleSize int) float64 { return rowsPerProbe * float64(probeCount(sampleSize)) }

type source struct {
	cfg    connectors.SourceConfig
	path   string
	busyMS int
	what   string // the table or "query", for messages

	from   string     // FROM clause: a quoted table or a parenthesized query
	table  *tableInfo // nil for a Query source
	rowid  string     // the table's rowid in SQL; "" if none (tableInfo.rowidName)
	out    []*column  // columns read, in output order
	keys   []*column
	schema *arrow.Schema
	// filter is the user's Where and the cursor window, applied to every
	// statement the source runs.
	filter     []string
	filterArgs []any

	batchRows, batchBytes int
}

func openSource(ctx context.Context, cfg connectors.SourceConfig) (_ *source, err error) {
	s := &source{cfg: cfg, path: dbPath(cfg.DSN), batchRows: cfg.BatchRows, batchBytes: cfg.BatchBytes}
	defer func() {
		if err != nil {
			err = fmt.Errorf("sqlite source %s: %w", s.what, err)
		}
	}()
	s.what = cfg.Table
	if cfg.Table == "" {
		s.what = "query"
	}
	switch {
	case cfg.DSN == "":
		return nil, errors.New("dsn: empty; give the database file's path")
	case cfg.Table == "" && cfg.Query == "":
		return nil, errors.New("neither table nor query is set")
	case cfg.Table != "" && cfg.Query != "":
		return nil, errors.New("both table and query are set; give one")
	case cfg.BatchRows < 0 || cfg.BatchBytes < 0:
		return nil, errors.New("batch_rows and batch_bytes cannot be negative")
	}
	if s.batchRows == 0 {
		s.batchRows = defaultBatchRows
	}
	if s.batchBytes == 0 {
		s.batchBytes = defaultBatchBytes
	}
	ov, err := sourceOptions.Values(cfg.Options)
	if err != nil {
		return nil, err
	}
	opts := options{v: ov}
	if s.busyMS, err = opts.int("busy_timeout", defaultBusyMS, 0, 1<<30); err != nil {
		return nil, err
	}
	journal, err := opts.choice("journal_mode", "wal", "wal", "keep")
	if err != nil {
		return nil, err
	}
	if err := checkFile(cfg.DSN); err != nil {
		return nil, err
	}
	c, err := openLite(s.path, false, s.busyMS)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.path, err)
	}
	defer c.close()
	if journal == "wal" {
		// WAL lets partition readers run while writers commit. A read-only
		// file cannot switch and is read in the mode it has.
		_ = c.exec("PRAGMA journal_mode=WAL")
	}

	var all []*column
	if cfg.Table != "" {
		ti, found, err := lookupTable(c, cfg.Table)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("table %q not found in %s", cfg.Table, s.path)
		}
		s.table, s.from, all, s.rowid = ti, ti.ref.sql(), ti.cols, ti.rowidName()
	} else {
		q := strings.TrimRight(strings.TrimSpace(cfg.Query), "; \t\r\n")
		s.from = "(" + q + ") AS q"
		if all, err = queryColumns(c, s.from); err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
	}
	if err := inferKinds(c, s.from, all); err != nil {
		return nil, err
	}

	for _, name := range cfg.Key {
		col, _ := findColumn(all, name)
		if col == nil {
			return nil, fmt.Errorf("key column %q not found (columns: %s)", name, columnNames(all))
		}
		if contains(columnNamesOf(s.keys), col.name) {
			return nil, fmt.Errorf("key column %q given twice", name)
		}
		s.keys = append(s.keys, col)
	}
	if len(cfg.Columns) == 0 {
		s.out = all
	}
	for _, name := range cfg.Columns {
		col, _ := findColumn(all, name)
		if col == nil {
			return nil, fmt.Errorf("column %q not found (columns: %s)", name, columnNames(all))
		}
		if contains(columnNamesOf(s.out), col.name) {
			return nil, fmt.Errorf("column %q given twice", name)
		}
		s.out = append(s.out, col)
	}
	fields := make([]arrow.Field, len(s.out))
	for i, col := range s.out {
		fields[i] = col.field()
	}
	s.schema = arrow.NewSchema(fields, nil)

	if w := strings.TrimSpace(cfg.Where); w != "" {
		s.filter = append(s.filter, "("+w+")")
		st, err := c.prepare("SELECT 1 FROM " + s.from + " WHERE (" + w + ")")
		if err != nil {
			return nil, fmt.Errorf("where %q: %w", w, err)
		}
		st.finalize()
	}
	if cur := cfg.Cursor; cur != nil {
		col, _ := findColumn(all, cur.Column)
		if col == nil {
			return nil, fmt.Errorf("cursor column %q not found (columns: %s)", cur.Column, columnNames(all))
		}
		if err := sniffTime(c, s.from, col); err != nil {
			return nil, err
		}
		if cur.From != nil {
			v, err := keyArg(col, cur.From)
			if err != nil {
				return nil, fmt.Errorf("cursor: %w", err)
			}
			s.filter = append(s.filter, keyExpr(col)+" >= ?")
			s.filterArgs = append(s.filterArgs, v)
		}
		if cur.UpTo != nil {
			v, err := keyArg(col, cur.UpTo)
			if err != nil {
				return nil, fmt.Errorf("cursor: %w", err)
			}
			s.filter = append(s.filter, keyExpr(col)+" <= ?")
			s.filterArgs = append(s.filterArgs, v)
		}
	}
	for _, k := range s.keys {
		if err := sniffTime(c, s.from, k); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func columnNamesOf(cols []*column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

// queryColumns describes the result columns of a query (all nullable: a
// query's result says nothing about NOT NULL).
func queryColumns(c *liteConn, from string) ([]*column, error) {
	st, err := c.prepare("SELECT * FROM " + from)
	if err != nil {
		return nil, err
	}
	defer st.finalize()
	n := st.columnCount()
	cols := make([]*column, n)
	for i := range cols {
		// SQLite names a repeated column of a subquery "name:1".
		col := &column{name: st.columnName(i), decl: st.columnDeclType(i), nullable: true}
		col.kind, col.prec, col.scale, col.ours = kindOf(col.decl)
		cols[i] = col
	}
	return cols, nil
}

// inferKinds gives the columns with no declared type (expressions of a
// query, typeless table columns) the kind of the values they hold, judged
// from the storage classes of the first rows. A later value that does not fit
// fails its read with a ValueError naming the column.
func inferKinds(c *liteConn, from string, cols []*column) error {
	var untyped []*column
	var exprs []string
	for _, col := range cols {
		if col.kind == kindNone {
			untyped = append(untyped, col)
			exprs = append(exprs, "typeof("+quoteIdent(col.name)+")")
		}
	}
	if len(untyped) == 0 {
		return nil
	}
	seen := make([]map[string]bool, len(untyped))
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	err := c.query("SELECT "+strings.Join(exprs, ", ")+" FROM "+from+" LIMIT 1000", nil, func(s *liteStmt) error {
		for i := range untyped {
			seen[i][s.colString(i)] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, col := range untyped {
		t := seen[i]
		delete(t, "null")
		switch {
		case len(t) == 1 && t["integer"]:
			col.kind = kindInt
		case len(t) == 2 && t["integer"] && t["real"], len(t) == 1 && t["real"]:
			col.kind = kindFloat
		case len(t) == 1 && t["blob"]:
			col.kind = kindBlob
		default:
			col.kind = kindText
		}
	}
	return nil
}

// sniffTime looks at one value of a date/time key column of a table this
// connector did not make, to bind key bounds in the layout the column uses:
// unix seconds, or ISO text with 'T' or ' ' between date and time.
func sniffTime(c *liteConn, from string, col *column) error {
	if col.ours || (col.kind != kindTimestamp && col.kind != kindTimestampTZ && col.kind != kindDate) {
		return nil
	}
	return c.query("SELECT "+quoteIdent(col.name)+" FROM "+from+" WHERE "+quoteIdent(col.name)+" IS NOT NULL LIMIT 1", nil,
		func(s *liteStmt) error {
			switch s.colType(0) {
			case typInteger, typFloat:
				col.unixTime = true
			case typText:
				if b := s.colText(0); len(b) > 10 && (b[10] == 'T' || b[10] == ' ') {
					col.timeSep = b[10]
				}
			}
			return nil
		})
}

func (s *source) Schema(ctx context.Context) (*arrow.Schema, error) { return s.schema, nil }

// PrimaryKey names the columns of the table's primary key in key order;
// none for a query, a view or a table without one.
func (s *source) PrimaryKey(context.Context) ([]string, error) {
	if s.table == nil {
		return nil, nil
	}
	return s.table.primaryKey, nil
}

func (s *source) Close() error { return nil }

// Positioned reports whether r is read by rowid: the NULL-key range, and
// the ranges of a source without a key, of a table that has a rowid.
func (s *source) Positioned(r connectors.Range) bool {
	if s.rowid == "" || r.Pages != nil {
		return false
	}
	if r.Nulls {
		return len(s.keys) > 0
	}
	return len(s.keys) == 0 && r.Lo == nil && r.Hi == nil
}

// where joins the source's filter and a range's conjuncts. The After of a
// range read by rowid is a rowid.
func (s *source) where(r connectors.Range) (string, []any, error) {
	var conds []string
	var args []any
	var err error
	if s.Positioned(r) {
		conds, args, err = rangeWhere(s.keys, connectors.Range{Nulls: r.Nulls})
		if err == nil && r.After != nil {
			var id int64
			ok := len(r.After) == 1
			if ok {
				id, ok = r.After[0].(int64)
			}
			if !ok {
				return "", nil, fmt.Errorf("range %s: position %s is not a rowid", r, r.After)
			}
			conds, args = append(conds, s.rowid+" > ?"), append(args, id)
		}
	} else {
		conds, args, err = rangeWhere(s.keys, r)
	}
	if err != nil {
		return "", nil, err
	}
	all := append(append([]string(nil), s.filter...), conds...)
	if len(all) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(all, " AND "), append(append([]any(nil), s.filterArgs...), args...), nil
}

func (s *source) conn(ctx context.Context) (*liteConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := openLite(s.path, false, s.busyMS)
	if err != nil {
		return nil, fmt.Errorf("sqlite source %s: open %s: %w", s.what, s.path, err)
	}
	return c, nil
}

// ctxErr turns an interrupted statement into the context's error.
func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && isInterrupt(err) {
		return ctx.Err()
	}
	return err
}

// Read streams the rows of r in key order, or in rowid order where r is
// read by position (see Positioned).
func (s *source) Read(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch) error) error {
	return s.read(ctx, r, s.Positioned(r), func(b arrow.RecordBatch, _ connectors.Key) error { return fn(b) })
}

// ReadPositioned reads r in rowid order and gives fn the rowid of each
// batch's last row, as connectors.Key{int64(rowid)}.
func (s *source) ReadPositioned(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch, connectors.Key) error) error {
	if !s.Positioned(r) {
		return fmt.Errorf("sqlite source %s: range %s is not read by rowid (only the NULL-key range and the ranges of a source without a key are, of a table with a rowid)", s.what, r)
	}
	return s.read(ctx, r, true, fn)
}

// read streams the rows of r to fn, in rowid order when byRowid (with the
// rowid of each batch's last row), else in key order. Key columns and the
// rowid that are not among the output columns are selected too, behind
// them, and left out of the batches.
func (s *source) read(ctx context.Context, r connectors.Range, byRowid bool, fn func(arrow.RecordBatch, connectors.Key) error) (err error) {
	where, args, err := s.where(r)
	if err != nil {
		return fmt.Errorf("sqlite source %s: %w", s.what, err)
	}
	sel := make([]string, 0, len(s.out)+len(s.keys))
	outIdx := make([]int, len(s.out))
	for i, col := range s.out {
		sel = append(sel, quoteIdent(col.name))
		outIdx[i] = i
	}
	keyIdx := make([]int, len(s.keys))
	for i, k := range s.keys {
		keyIdx[i] = -1
		for j, col := range s.out {
			if col == k {
				keyIdx[i] = j
			}
		}
		if keyIdx[i] < 0 {
			keyIdx[i] = len(sel)
			sel = append(sel, quoteIdent(k.name))
		}
	}
	rowidIdx := -1
	if byRowid {
		rowidIdx = len(sel)
		sel = append(sel, s.rowid)
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + s.from + where
	switch {
	case byRowid:
		q += " ORDER BY " + s.rowid
	case len(s.keys) > 0:
		q += " ORDER BY " + orderBy(s.keys)
	}

	c, err := s.conn(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	stop := c.interruptOn(ctx)
	defer stop()
	defer func() { err = ctxErr(ctx, err) }()

	st, err := c.prepare(q)
	if err != nil {
		return fmt.Errorf("sqlite source %s: %w", s.what, err)
	}
	defer st.finalize()
	if err := st.bindAll(args); err != nil {
		return fmt.Errorf("sqlite source %s: %w", s.what, err)
	}
	rr := newRowReader(memory.DefaultAllocator, s.out, outIdx)
	defer rr.release()
	rr.reserve(min(s.batchRows, 1024))
	var lastRowid int64 // of the row appended last
	emit := func() error {
		rows := rr.rows
		rec := rr.flush()
		defer rec.Release()
		var last connectors.Key
		if byRowid {
			last = connectors.Key{lastRowid}
		}
		if err := fn(rec, last); err != nil {
			return err
		}
		// The next batch is likely the size of this one.
		rr.reserve(rows)
		return ctx.Err()
	}
	for {
		row, err := st.step()
		if err != nil {
			return fmt.Errorf("sqlite source %s: read %s: %w", s.what, r, err)
		}
		if !row {
			break
		}
		if col, bad := rr.appendRow(st); bad != nil {
			return &connectors.ValueError{Column: col.col.name, Key: keyOfRow(st, s.keys, keyIdx), Value: bad.value, Reason: bad.reason}
		}
		if byRowid {
			lastRowid = st.colInt64(rowidIdx)
		}
		if rr.rows >= s.batchRows || rr.bytes >= s.batchBytes {
			if err := emit(); err != nil {
				return err
			}
		}
	}
	if rr.rows > 0 {
		return emit()
	}
	return nil
}

// Count counts the rows of r with the predicates Read uses.
func (s *source) Count(ctx context.Context, r connectors.Range) (n int64, err error) {
	where, args, err := s.where(r)
	if err != nil {
		return 0, fmt.Errorf("sqlite source %s: %w", s.what, err)
	}
	c, err := s.conn(ctx)
	if err != nil {
		return 0, err
	}
	defer c.close()
	stop := c.interruptOn(ctx)
	defer stop()
	err = c.query("SELECT count(*) FROM "+s.from+where, args, func(st *liteStmt) error {
		n = st.colInt64(0)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite source %s: count %s: %w", s.what, r, ctxErr(ctx, err))
	}
	return n, nil
}

// MaxCursor returns the greatest value of column among the rows the source
// reads (its Where applies), in the column's type; nil when there are none.
func (s *source) MaxCursor(ctx context.Context, name string) (any, error) {
	col, _ := findColumn(s.allColumns(), name)
	if col == nil {
		return nil, fmt.Errorf("sqlite source %s: cursor column %q not found", s.what, name)
	}
	c, err := s.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.close()
	conds := append(append([]string(nil), s.filter...), quoteIdent(col.name)+" IS NOT NULL")
	q := "SELECT " + quoteIdent(col.name) + " FROM " + s.from + " WHERE " + strings.Join(conds, " AND ") +
		" ORDER BY " + keyExpr(col) + " DESC LIMIT 1"
	keys, err := s.readKeys(c, q, s.filterArgs, []*column{col}, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite source %s: max of %q: %w", s.what, name, ctxErr(ctx, err))
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return keys[0][0], nil
}

func (s *source) allColumns() []*column {
	if s.table != nil {
		return s.table.cols
	}
	return append(append([]*column(nil), s.out...), s.keys...)
}

// readKeys runs q, whose result columns are cols, and returns each row as a
// key (values as connectors.KeyOf gives them). keep, when set, picks the
// rows to return by their number.
func (s *source) readKeys(c *liteConn, q string, args []any, cols []*column, keep func(i int64) bool) ([]connectors.Key, error) {
	idx := make([]int, len(cols))
	all := make([]int, len(cols))
	for i := range idx {
		idx[i], all[i] = i, i
	}
	rr := newRowReader(memory.DefaultAllocator, cols, idx)
	defer rr.release()
	var out []connectors.Key
	var n int64
	flush := func() {
		rec := rr.flush()
		defer rec.Release()
		for i := 0; i < int(rec.NumRows()); i++ {
			out = append(out, connectors.KeyOf(rec, all, i))
		}
	}
	err := c.query(q, args, func(st *liteStmt) error {
		n++
		if keep != nil && !keep(n-1) {
			return nil
		}
		if col, bad := rr.appendRow(st); bad != nil {
			return &connectors.ValueError{Column: col.col.name, Value: bad.value, Reason: bad.reason}
		}
		if rr.rows >= 1024 {
			flush()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	flush()
	return out, nil
}

func quoted(cols []*column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = quoteIdent(c.name)
	}
	return out
}
