package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

const (
	defaultBatchRows  = 10000
	defaultBatchBytes = 8 << 20
)

var (
	_ connectors.Source       = (*source)(nil)
	_ connectors.Sampler      = (*source)(nil)
	_ connectors.PrimaryKeyer = (*source)(nil)
	_ connectors.Counter      = (*source)(nil)
)

type source struct {
	db       *sql.DB
	dsn      string // redacted, for messages
	name     string // table or "query", for messages
	from     string // FROM clause: a quoted table or "(query) AS q"
	prefix   string // column qualifier: "" or "q."
	table    *tableRef
	where    string
	cols     []*column // read, in output order
	keys     []*column
	keyIdx   []int // positions of keys in cols
	schema   *arrow.Schema
	rows     int // BatchRows
	bytes    int // BatchBytes
	selectAs string
	all      []*column // every column of the table or query
	// cursor is the incremental window's condition (SourceConfig.Cursor).
	cursor     string
	cursorArgs []any
}

func openSource(ctx context.Context, cfg connectors.SourceConfig) (connectors.Source, error) {
	switch {
	case cfg.Table == "" && cfg.Query == "":
		return nil, errors.New("mysql source: set Table or Query")
	case cfg.Table != "" && cfg.Query != "":
		return nil, errors.New("mysql source: set Table or Query, not both")
	case cfg.BatchRows < 0:
		return nil, fmt.Errorf("mysql source: BatchRows %d is negative", cfg.BatchRows)
	case cfg.BatchBytes < 0:
		return nil, fmt.Errorf("mysql source: BatchBytes %d is negative", cfg.BatchBytes)
	case cfg.Snapshot != "":
		return nil, errors.New("mysql source: Snapshot is not supported (MariaDB cannot export a snapshot to other sessions)")
	}
	if _, err := sourceOptions.Values(cfg.Options); err != nil {
		return nil, fmt.Errorf("mysql source: %w", err)
	}
	db, mcfg, err := openDB(ctx, cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("mysql source: %w", err)
	}
	s, err := newSource(ctx, db, mcfg.DBName, cfg)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql source %s: %w", connectors.Redacted(cfg.DSN), err)
	}
	s.dsn = connectors.Redacted(cfg.DSN)
	return s, nil
}

func newSource(ctx context.Context, db *sql.DB, dbName string, cfg connectors.SourceConfig) (*source, error) {
	s := &source{db: db, where: strings.TrimSpace(cfg.Where), rows: cfg.BatchRows, bytes: cfg.BatchBytes}
	if s.rows == 0 {
		s.rows = defaultBatchRows
	}
	if s.bytes == 0 {
		s.bytes = defaultBatchBytes
	}
	var all []*column
	var err error
	if cfg.Table != "" {
		schema, name := splitTable(cfg.Table, dbName)
		t := tableRef{schema, name}
		s.table, s.name, s.from = &t, "table "+t.String(), t.quoted()
		if all, err = loadColumns(ctx, db, t); err != nil {
			if errors.Is(err, errNoTable) {
				return nil, fmt.Errorf("table %s does not exist", t)
			}
			return nil, err
		}
	} else {
		q := strings.TrimRight(strings.TrimSpace(cfg.Query), ";")
		s.name, s.from, s.prefix = "query", "("+q+") AS q", "q."
		if all, err = queryColumns(ctx, db, q); err != nil {
			return nil, err
		}
	}
	s.all = all
	if w := cfg.Cursor; w != nil {
		c := findColumn(all, w.Column)
		if c == nil {
			return nil, fmt.Errorf("cursor column %q not found in %s (columns: %s)", w.Column, s.name, strings.Join(columnNames(all), ", "))
		}
		if s.cursor, s.cursorArgs, err = cursorCond(c, s.prefix, w); err != nil {
			return nil, err
		}
	}
	for _, k := range cfg.Key {
		c := findColumn(all, k)
		if c == nil {
			return nil, fmt.Errorf("key column %q not found in %s (columns: %s)", k, s.name, strings.Join(columnNames(all), ", "))
		}
		if err := c.usableAsKey(); err != nil {
			return nil, err
		}
		s.keys = append(s.keys, c)
	}
	if len(cfg.Columns) == 0 {
		s.cols = all
	} else {
		seen := map[*column]bool{}
		for _, name := range cfg.Columns {
			c := findColumn(all, name)
			if c == nil {
				return nil, fmt.Errorf("column %q not found in %s (columns: %s)", name, s.name, strings.Join(columnNames(all), ", "))
			}
			if seen[c] {
				return nil, fmt.Errorf("column %q listed twice in Columns", name)
			}
			seen[c] = true
			s.cols = append(s.cols, c)
		}
	}
	for _, k := range s.keys {
		i := indexOf(s.cols, k)
		if i < 0 {
			// The engine takes checkpoints from the key values in the batches.
			return nil, fmt.Errorf("key column %q must be among Columns", k.name)
		}
		s.keyIdx = append(s.keyIdx, i)
	}
	fields := make([]arrow.Field, len(s.cols))
	exprs := make([]string, len(s.cols))
	for i, c := range s.cols {
		fields[i] = c.arrowField()
		exprs[i] = c.selectExpr(s.prefix)
	}
	s.schema = arrow.NewSchema(fields, nil)
	s.selectAs = strings.Join(exprs, ", ")
	if s.where != "" {
		// Fail now, naming the filter, rather than in the middle of a run.
		if _, err := db.ExecContext(ctx, "SELECT 1 FROM "+s.from+" WHERE ("+s.where+") LIMIT 0"); err != nil {
			return nil, classify(fmt.Errorf("Where %q: %w", s.where, err))
		}
	}
	return s, nil
}

func indexOf(cols []*column, c *column) int {
	for i, x := range cols {
		if x == c {
			return i
		}
	}
	return -1
}

func (s *source) Schema(context.Context) (*arrow.Schema, error) { return s.schema, nil }

// PrimaryKey names the columns of the table's primary key in key order;
// none for a query or a table without one.
func (s *source) PrimaryKey(ctx context.Context) ([]string, error) {
	if s.table == nil {
		return nil, nil
	}
	parts, err := primaryKeyOf(ctx, s.db, *s.table)
	if err != nil {
		return nil, classify(fmt.Errorf("primary key of %s: %w", s.name, err))
	}
	key := make([]string, len(parts))
	for i, p := range parts {
		key[i] = p.name
	}
	return key, nil
}

func (s *source) Close() error { return s.db.Close() }

// query builds SELECT list FROM … WHERE user filter AND range [ORDER BY keys].
func (s *source) query(list string, r connectors.Range, order bool) (string, []any, error) {
	ob := ""
	if order && len(s.keys) > 0 {
		ob = orderBy(s.keys, s.prefix, false)
	}
	return s.build(list, r, "", nil, ob)
}

// build is query with an extra condition (and its arguments) and an explicit
// ORDER BY list ("" for none).
func (s *source) build(list string, r connectors.Range, extra string, extraArgs []any, order string) (string, []any, error) {
	cond, args, err := rangeWhere(s.keys, s.prefix, r)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", s.name, err)
	}
	q := "SELECT " + list + " FROM " + s.from
	if w := and(s.where, cond, s.cursor, extra); w != "" {
		q += " WHERE " + w
	}
	if order != "" {
		q += " ORDER BY " + order
	}
	args = append(args, s.cursorArgs...)
	return q, append(args, extraArgs...), nil
}

// Count counts the rows of r with the predicates Read uses.
func (s *source) Count(ctx context.Context, r connectors.Range) (int64, error) {
	q, args, err := s.query("COUNT(*)", r, false)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, classify(fmt.Errorf("count %s range %s: %w", s.name, r, err))
	}
	return n, nil
}

// Read streams the rows of r in key order. It runs on the driver connection
// itself: the text protocol's values go from the driver's read buffer into
// the Arrow builders with no database/sql Scan conversion in between.
func (s *source) Read(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch) error) error {
	q, args, err := s.query(s.selectAs, r, true)
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return classify(fmt.Errorf("read %s range %s: %w", s.name, r, err))
	}
	defer conn.Close()
	// Cancelling makes the driver drop the connection, so an early return
	// does not first drain the rest of a large result set.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = conn.Raw(func(dc any) error {
		return s.stream(rctx, cancel, dc, q, args, fn)
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// errFromFn marks an error returned by the caller's fn, passed on unchanged.
type errFromFn struct{ err error }

func (e errFromFn) Error() string { return e.err.Error() }

func (s *source) stream(ctx context.Context, cancel func(), dc any, q string, args []any, fn func(arrow.RecordBatch) error) (err error) {
	rows, err := queryDriver(ctx, dc, q, args)
	if err != nil {
		return classify(fmt.Errorf("read %s: %w", s.name, err))
	}
	defer func() {
		if err != nil {
			cancel()
		}
		rows.Close()
		var fe errFromFn
		if errors.As(err, &fe) {
			err = fe.err
		}
	}()

	rb := array.NewRecordBuilder(memory.DefaultAllocator, s.schema)
	defer rb.Release()
	fields := rb.Fields()
	decs := make([]decoder, len(s.cols))
	for i, c := range s.cols {
		decs[i] = newDecoder(c, fields[i])
	}
	reserve := min(s.rows, 1<<16)
	rb.Reserve(reserve)
	dest := make([]driver.Value, len(s.cols))
	// Variable-width columns start each batch with the data room the last
	// one needed, instead of growing (and copying) by doubling.
	dataLen := make([]int, len(fields))
	n, size := 0, 0
	emit := func() error {
		for i, f := range fields {
			if bb, ok := f.(interface{ DataLen() int }); ok {
				dataLen[i] = bb.DataLen()
			}
		}
		rec := rb.NewRecordBatch()
		defer rec.Release()
		n, size = 0, 0
		if err := fn(rec); err != nil {
			return errFromFn{err}
		}
		// The driver may hold buffered rows after a cancel: stop here.
		if err := ctx.Err(); err != nil {
			return err
		}
		rb.Reserve(reserve)
		for i, f := range fields {
			if bb, ok := f.(interface{ ReserveData(int) }); ok && dataLen[i] > 0 {
				bb.ReserveData(dataLen[i])
			}
		}
		return nil
	}
	for {
		if err := rows.Next(dest); err != nil {
			if err == io.EOF {
				break
			}
			return classify(fmt.Errorf("read %s: %w", s.name, err))
		}
		for i, v := range dest {
			if v == nil {
				fields[i].AppendNull()
				size++
				continue
			}
			b, err := decs[i](v)
			if err != nil {
				return s.valueError(i, dest, v, err)
			}
			size += b
		}
		n++
		if n >= s.rows || size >= s.bytes {
			if err := emit(); err != nil {
				return err
			}
		}
	}
	if n > 0 {
		return emit()
	}
	return nil
}

// valueError names the column and the row's key of a value the Arrow type
// cannot hold.
func (s *source) valueError(col int, dest []driver.Value, v driver.Value, cause error) error {
	ve := &connectors.ValueError{Column: s.cols[col].name, Reason: cause.Error()}
	if len(s.keys) > 0 {
		k := make(connectors.Key, len(s.keys))
		for j, c := range s.keys {
			k[j], _ = keyValue(c, dest[s.keyIdx[j]])
		}
		ve.Key = k
	}
	if b, ok := v.([]byte); ok {
		ve.Value = strconv.Quote(string(b[:min(len(b), 64)]))
	} else {
		ve.Value = fmt.Sprint(v)
	}
	return fmt.Errorf("%s: %w", s.name, ve)
}

// queryDriver runs q on a driver connection. With interpolateParams the
// driver sends it as text; if it cannot interpolate (driver.ErrSkip) the
// statement is prepared instead.
func queryDriver(ctx context.Context, dc any, q string, args []any) (driver.Rows, error) {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	if qc, ok := dc.(driver.QueryerContext); ok {
		rows, err := qc.QueryContext(ctx, q, named)
		if err != driver.ErrSkip {
			return rows, err
		}
	}
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("driver connection %T cannot run queries", dc)
	}
	st, err := pc.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := st.(driver.StmtQueryContext).QueryContext(ctx, named)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &stmtRows{Rows: rows, st: st}, nil
}

type stmtRows struct {
	driver.Rows
	st driver.Stmt
}

func (r *stmtRows) Close() error {
	err := r.Rows.Close()
	r.st.Close()
	return err
}

// queryKeys runs a query whose output columns are the key columns (select
// expressions of keys) on a connection of its own and passes its rows to
// each as keys; see queryKeysOn.
func (s *source) queryKeys(ctx context.Context, q string, args []any, each func(connectors.Key) bool) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return classify(err)
	}
	defer conn.Close()
	return s.queryKeysOn(ctx, conn, q, args, each)
}

// queryKeysOn is queryKeys on conn. When each stops early the rest of the
// result is read and dropped, which keeps the connection for the next
// query (cancelling would make the driver close it, and planning would pay
// a new connection per query): callers that stop early LIMIT the query.
// On an error the query is cancelled instead, connection and all.
func (s *source) queryKeysOn(ctx context.Context, conn *sql.Conn, q string, args []any, each func(connectors.Key) bool) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return conn.Raw(func(dc any) error {
		rows, err := queryDriver(rctx, dc, q, args)
		if err != nil {
			return classify(err)
		}
		dest := make([]driver.Value, len(s.keys))
		for {
			if err := rows.Next(dest); err != nil {
				if err == io.EOF {
					return rows.Close()
				}
				rows.Close()
				return classify(err)
			}
			k := make(connectors.Key, len(s.keys))
			for i, c := range s.keys {
				v, err := keyValue(c, dest[i])
				if err != nil {
					cancel()
					rows.Close()
					return fmt.Errorf("key column %q: %w", c.name, err)
				}
				k[i] = v
			}
			if !each(k) {
				return rows.Close()
			}
		}
	})
}
