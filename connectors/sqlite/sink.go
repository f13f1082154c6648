package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

var (
	_ connectors.Sink        = (*sink)(nil)
	_ connectors.SinkChecker = (*sink)(nil)
	_ connectors.Writer      = (*writer)(nil)
)

// maxParams is SQLite's default SQLITE_MAX_VARIABLE_NUMBER (since 3.32).
const maxParams = 32766

// defaultRowsPerInsert is the rows of one multi-row INSERT. BenchmarkWrite:
// one row per statement costs a quarter more CPU per row than 32 to 256
// rows, which are alike; past that the bound values only take memory.
const defaultRowsPerInsert = 128

type sink struct {
	cfg           connectors.SinkConfig
	path          string
	busyMS        int
	synchronous   string
	rowsPerInsert int
	commits       tableRef // the commit table (see commits.go)
	now           func() time.Time
}

func openSink(ctx context.Context, cfg connectors.SinkConfig) (_ *sink, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("sqlite sink %s: %w", cfg.Table, err)
		}
	}()
	s := &sink{cfg: cfg, path: dbPath(cfg.DSN), now: time.Now}
	switch {
	case cfg.DSN == "":
		return nil, errors.New("dsn: empty; give the database file's path")
	case cfg.Table == "":
		return nil, errors.New("table: empty")
	}
	switch cfg.Mode {
	case "":
		s.cfg.Mode = connectors.Append
	case connectors.Append, connectors.Truncate:
	case connectors.Upsert:
		if len(cfg.Key) == 0 {
			return nil, errors.New("upsert mode needs the key columns (SinkConfig.Key)")
		}
	default:
		return nil, fmt.Errorf("unknown write mode %q (append, truncate, upsert)", cfg.Mode)
	}
	ov, err := sinkOptions.Values(cfg.Options)
	if err != nil {
		return nil, err
	}
	opts := options{v: ov}
	commitTable := defaultCommitTable
	if v, ok := opts.v.Lookup("commit_table"); ok {
		commitTable = v
	}
	if s.commits, err = commitTableRef(commitTable); err != nil {
		return nil, err
	}
	if strings.EqualFold(strings.TrimPrefix(cfg.Table, "main."), s.commits.name) {
		return nil, fmt.Errorf("the target table is the commit table %q; set option commit_table to another name", s.commits)
	}
	if s.busyMS, err = opts.int("busy_timeout", defaultBusyMS, 0, 1<<30); err != nil {
		return nil, err
	}
	if s.synchronous, err = opts.choice("synchronous", "normal", "off", "normal", "full", "extra"); err != nil {
		return nil, err
	}
	if s.rowsPerInsert, err = opts.int("rows_per_insert", defaultRowsPerInsert, 1, maxParams); err != nil {
		return nil, err
	}
	c, err := s.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.close()
	// WAL: partition readers keep reading while a writer commits, and a
	// commit appends to the log instead of rewriting pages twice.
	// 16 KiB pages for a file the sink creates (the setting does nothing
	// to an existing database): a third fewer writes per row than the 4 KiB
	// default in BenchmarkWrite. It must precede the switch to WAL.
	if err := c.exec("PRAGMA page_size=16384"); err != nil {
		return nil, err
	}
	if err := c.exec("PRAGMA journal_mode=WAL"); err != nil {
		return nil, fmt.Errorf("switch %s to WAL: %w", s.path, err)
	}
	return s, nil
}

func (s *sink) conn(ctx context.Context) (*liteConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := openLite(s.path, true, s.busyMS)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.path, err)
	}
	// NORMAL in WAL mode: a commit is durable once the log is synced at a
	// checkpoint; a power cut may lose the last commits but never corrupts.
	if err := c.exec("PRAGMA synchronous=" + strings.ToUpper(s.synchronous)); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (s *sink) Close() error { return nil }

// Check is what Prepare checks before it changes anything (SinkChecker).
func (s *sink) Check(ctx context.Context, schema *arrow.Schema) error {
	c, err := s.conn(ctx)
	if err != nil {
		return s.prepareErr(err)
	}
	defer c.close()
	stop := c.interruptOn(ctx)
	defer stop()
	_, _, err = s.check(c, schema)
	return s.prepareErr(err)
}

func (s *sink) prepareErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlite sink %s: prepare: %w", s.cfg.Table, err)
}

// check refuses, reading only, what Prepare would fail on: a key column not
// written, a missing table without create_table (or a schema with no
// SQLite table for it), a column the table lacks, no unique index for
// upsert. found reports whether the table is there.
func (s *sink) check(c *liteConn, schema *arrow.Schema) (ti *tableInfo, found bool, err error) {
	for _, k := range s.cfg.Key {
		if len(schema.FieldIndices(k)) == 0 {
			return ti, false, fmt.Errorf("key column %q is not among the columns written (%s)", k, strings.Join(fieldNames(schema), ", "))
		}
	}
	ti, found, err = lookupTable(c, s.cfg.Table)
	if err != nil {
		return ti, false, err
	}
	if !found {
		if !s.cfg.CreateTable {
			return ti, false, fmt.Errorf("%s: %w", s.path, connectors.ErrNoTable)
		}
		_, err := createTableSQL(s.cfg.Table, schema, s.cfg.Key)
		return ti, false, err
	}
	if _, err := s.targetColumns(ti, schema); err != nil {
		return ti, true, err
	}
	if s.cfg.Mode == connectors.Upsert {
		ok, err := uniqueOn(c, ti, s.cfg.Key)
		if err != nil {
			return ti, true, err
		}
		if !ok {
			return ti, true, fmt.Errorf("upsert needs a primary key or unique index on (%s) in table %q", strings.Join(s.cfg.Key, ", "), ti.ref)
		}
	}
	return ti, true, nil
}

// Prepare creates the table when asked and missing, checks that an existing
// one has every column, makes the commit table ready and empties the target
// (never the commit table) for Truncate.
func (s *sink) Prepare(ctx context.Context, schema *arrow.Schema, truncate bool) error {
	c, err := s.conn(ctx)
	if err != nil {
		return s.prepareErr(err)
	}
	defer c.close()
	stop := c.interruptOn(ctx)
	defer stop()
	return s.prepareErr(s.prepare(c, schema, truncate))
}

func (s *sink) prepare(c *liteConn, schema *arrow.Schema, truncate bool) error {
	ti, found, err := s.check(c, schema)
	if err != nil {
		return err
	}
	if !found {
		ddl, err := createTableSQL(s.cfg.Table, schema, s.cfg.Key)
		if err != nil {
			return err
		}
		// IF NOT EXISTS: another process may have created it meanwhile.
		if err := c.exec(ddl); err != nil {
			return fmt.Errorf("create table: %w", err)
		}
		// The created table is checked like one that was there.
		if ti, _, err = s.check(c, schema); err != nil {
			return err
		}
	}
	if err := s.prepareCommitTable(c); err != nil {
		return err
	}
	if truncate {
		if err := c.exec("DELETE FROM " + ti.ref.sql()); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
	}
	return nil
}

func fieldNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

// createTableSQL is the CREATE TABLE for schema. A single non-nullable
// integer key becomes an INTEGER PRIMARY KEY, the rowid itself: rows are
// stored in key order and need no separate index. A nullable one is
// declared BIGINT, since an INTEGER PRIMARY KEY would replace a NULL key by a
// new rowid.
func createTableSQL(table string, schema *arrow.Schema, key []string) (string, error) {
	ref := tableRef{schema: "main", name: table}
	defs := make([]string, schema.NumFields())
	rowidKey := false
	if len(key) == 1 {
		f := schema.Field(schema.FieldIndices(key[0])[0])
		if decl, _ := declFor(f); decl == "INTEGER" && !f.Nullable {
			rowidKey = true
		}
	}
	for i, f := range schema.Fields() {
		decl, err := declFor(f)
		if err != nil {
			return "", err
		}
		isKey := contains(key, f.Name)
		if isKey && decl == "INTEGER" && !rowidKey {
			decl = "BIGINT"
		}
		d := quoteIdent(f.Name) + " " + decl
		if !f.Nullable {
			d += " NOT NULL"
		}
		defs[i] = d
	}
	if len(key) > 0 {
		defs = append(defs, "PRIMARY KEY ("+strings.Join(quotedNames(key), ", ")+")")
	}
	return "CREATE TABLE IF NOT EXISTS " + ref.sql() + " (" + strings.Join(defs, ", ") + ")", nil
}

func quotedNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quoteIdent(n)
	}
	return out
}

// targetColumns maps each field of schema to the table's column, or names
// the first field the table lacks.
func (s *sink) targetColumns(ti *tableInfo, schema *arrow.Schema) ([]*column, error) {
	out := make([]*column, schema.NumFields())
	for i, f := range schema.Fields() {
		col, _ := findColumn(ti.cols, f.Name)
		if col == nil {
			return nil, fmt.Errorf("table %q has no column %q (columns: %s)", ti.ref, f.Name, columnNames(ti.cols))
		}
		out[i] = col
	}
	return out, nil
}

// uniqueOn reports whether the table has a primary key or unique index on
// exactly the key columns, which ON CONFLICT needs.
func uniqueOn(c *liteConn, ti *tableInfo, key []string) (bool, error) {
	want := make([]string, len(key))
	for i, k := range key {
		col, _ := findColumn(ti.cols, k)
		if col == nil {
			return false, fmt.Errorf("key column %q not found in table %q", k, ti.ref)
		}
		want[i] = strings.ToLower(col.name)
	}
	sort.Strings(want)
	same := func(got []string) bool {
		sort.Strings(got)
		return strings.Join(got, "\x00") == strings.Join(want, "\x00")
	}
	pk := make([]string, len(ti.primaryKey))
	for i, name := range ti.primaryKey {
		pk[i] = strings.ToLower(name)
	}
	if same(pk) {
		return true, nil
	}
	var indexes []string
	err := c.query(`SELECT name FROM pragma_index_list(?, ?) WHERE "unique" AND partial = 0`, []any{ti.ref.name, ti.ref.schema}, func(s *liteStmt) error {
		indexes = append(indexes, s.colString(0))
		return nil
	})
	if err != nil {
		return false, err
	}
	for _, idx := range indexes {
		var cols []string
		err := c.query(`SELECT name FROM pragma_index_info(?, ?)`, []any{idx, ti.ref.schema}, func(s *liteStmt) error {
			cols = append(cols, strings.ToLower(s.colString(0)))
			return nil
		})
		if err != nil {
			return false, err
		}
		if same(cols) {
			return true, nil
		}
	}
	return false, nil
}

// OpenWriter opens a writer with its own connection. It writes nothing:
// the partition is claimed (Claim) before, and its record changes with
// each Commit.
func (s *sink) OpenWriter(ctx context.Context, spec connectors.WriterSpec) (_ connectors.Writer, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("sqlite sink %s: partition %s: %w", s.cfg.Table, spec.Partition, err)
		}
	}()
	if spec.Schema == nil || spec.Schema.NumFields() == 0 {
		return nil, errors.New("writer spec has no columns")
	}
	c, err := s.conn(ctx)
	if err != nil {
		return nil, err
	}
	w := &writer{sink: s, c: c, spec: spec}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	ti, found, err := lookupTable(c, s.cfg.Table)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("table %q does not exist in %s", s.cfg.Table, s.path)
	}
	w.table = ti
	targets, err := s.targetColumns(ti, spec.Schema)
	if err != nil {
		return nil, err
	}
	for i, f := range spec.Schema.Fields() {
		cw, err := newColWriter(f, targets[i])
		if err != nil {
			return nil, err
		}
		w.cols = append(w.cols, cw)
	}
	if len(s.cfg.Key) > 0 {
		if w.keyIdx, err = connectors.ColumnIndexes(spec.Schema, s.cfg.Key); err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
	}
	w.rowsPerInsert = max(1, min(s.rowsPerInsert, maxParams/len(w.cols)))
	w.insertSQL = w.buildInsert(w.rowsPerInsert)
	return w, nil
}

type writer struct {
	sink  *sink
	c     *liteConn
	spec  connectors.WriterSpec
	table *tableInfo
	cols  []*colWriter
	// keyIdx are the key columns' indexes in the batches, to name a bad
	// row's key.
	keyIdx []int

	rowsPerInsert int
	insertSQL     string
	multi, single *liteStmt

	pending []arrow.RecordBatch // written, not yet committed
	closed  bool
}

func (w *writer) buildInsert(rows int) string {
	names := make([]string, len(w.cols))
	ph := make([]string, len(w.cols))
	for i, cw := range w.cols {
		names[i] = quoteIdent(cw.target.name)
		ph[i] = "?"
	}
	tuple := "(" + strings.Join(ph, ",") + ")"
	var b strings.Builder
	b.WriteString("INSERT INTO " + w.table.ref.sql() + " (" + strings.Join(names, ", ") + ") VALUES ")
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tuple)
	}
	if w.sink.cfg.Mode == connectors.Upsert {
		var keys, sets []string
		for _, k := range w.sink.cfg.Key {
			col, _ := findColumn(w.table.cols, k)
			keys = append(keys, quoteIdent(col.name))
		}
		for _, cw := range w.cols {
			if !contains(w.sink.cfg.Key, cw.field.Name) {
				q := quoteIdent(cw.target.name)
				sets = append(sets, q+" = excluded."+q)
			}
		}
		b.WriteString(" ON CONFLICT (" + strings.Join(keys, ", ") + ")")
		if len(sets) == 0 {
			b.WriteString(" DO NOTHING")
		} else {
			b.WriteString(" DO UPDATE SET " + strings.Join(sets, ", "))
		}
	}
	return b.String()
}

func (w *writer) rollback() { _ = w.c.exec("ROLLBACK") }

// Write keeps the batch until Commit: the write lock is shared by every
// writer of the file, so it is taken only for the commit itself.
func (w *writer) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if w.closed {
		return errors.New("sqlite sink: write on a closed writer")
	}
	if int(rec.NumCols()) != len(w.cols) {
		return fmt.Errorf("sqlite sink %s: batch has %d columns, the writer's schema %d", w.sink.cfg.Table, rec.NumCols(), len(w.cols))
	}
	for i, cw := range w.cols {
		if !arrow.TypeEqual(rec.Column(i).DataType(), cw.field.Type) {
			return fmt.Errorf("sqlite sink %s: column %q is %s in the batch, %s in the writer's schema",
				w.sink.cfg.Table, cw.field.Name, rec.Column(i).DataType(), cw.field.Type)
		}
	}
	if rec.NumRows() == 0 {
		return nil
	}
	rec.Retain()
	w.pending = append(w.pending, rec)
	return ctx.Err()
}

// Commit stores the batches written since the last commit and rec in one
// transaction: BEGIN IMMEDIATE takes the write lock (waiting up to the busy
// timeout), the record's UPDATE checks the lease first, multi-row INSERTs of
// one prepared statement do the work. When the record no longer carries
// rec.Lease, everything is rolled back and the error wraps
// connectors.ErrLeaseLost.
func (w *writer) Commit(ctx context.Context, rec connectors.CommitRecord) (err error) {
	if w.closed {
		return errors.New("sqlite sink: commit on a closed writer")
	}
	defer w.releasePending()
	defer func() {
		if err != nil {
			var ve *connectors.ValueError
			if !errors.As(err, &ve) {
				err = fmt.Errorf("sqlite sink %s: partition %s: commit: %w", w.sink.cfg.Table, w.spec.Partition, err)
			}
		}
	}()
	if (rec.Job != "" && rec.Job != w.spec.Job) || (rec.Run != "" && rec.Run != w.spec.Run) || (rec.Partition != "" && rec.Partition != w.spec.Partition) {
		return fmt.Errorf("the record names job %s run %s partition %s, the writer job %s run %s partition %s",
			rec.Job, rec.Run, rec.Partition, w.spec.Job, w.spec.Run, w.spec.Partition)
	}
	if len(w.pending) > 0 && w.multi == nil {
		if w.multi, err = w.c.preparePersistent(w.insertSQL); err != nil {
			return err
		}
		if w.single, err = w.c.preparePersistent(w.buildInsert(1)); err != nil {
			return err
		}
	}
	stop := w.c.interruptOn(ctx)
	defer stop()
	if err := w.c.exec("BEGIN IMMEDIATE"); err != nil {
		return ctxErr(ctx, err)
	}
	ok, err := w.storeRecord(rec)
	if err != nil {
		w.rollback()
		return ctxErr(ctx, err)
	}
	if !ok {
		w.rollback()
		held := "no record (the partition was not claimed, or its run forgotten)"
		if lease, found := storedLease(w.c, w.sink.commits, w.spec.Job, w.spec.Run, w.spec.Partition); found {
			held = fmt.Sprintf("lease %d", lease)
		}
		return fmt.Errorf("commit table %s holds %s, not lease %d: %w", w.sink.commits, held, rec.Lease, connectors.ErrLeaseLost)
	}
	for _, b := range w.pending {
		if err := w.insert(b); err != nil {
			w.rollback()
			return ctxErr(ctx, err)
		}
	}
	if err := w.c.exec("COMMIT"); err != nil {
		w.rollback()
		return ctxErr(ctx, err)
	}
	return nil
}

func (w *writer) insert(rec arrow.RecordBatch) error {
	for i, cw := range w.cols {
		cw.set(rec.Column(i))
	}
	n := int(rec.NumRows())
	row := 0
	for ; n-row >= w.rowsPerInsert; row += w.rowsPerInsert {
		if err := w.run(w.multi, rec, row, w.rowsPerInsert); err != nil {
			return err
		}
	}
	for ; row < n; row++ {
		if err := w.run(w.single, rec, row, 1); err != nil {
			return err
		}
	}
	return nil
}

// run binds rows [from, from+count) to st and executes it.
func (w *writer) run(st *liteStmt, rec arrow.RecordBatch, from, count int) error {
	st.reset()
	need := 0
	for r := from; r < from+count; r++ {
		for _, cw := range w.cols {
			need += cw.maxText(r)
		}
	}
	if err := st.reserve(need); err != nil {
		return err
	}
	p := 1
	for r := from; r < from+count; r++ {
		for _, cw := range w.cols {
			bad, err := cw.bind(st, p, r)
			if err != nil {
				return err
			}
			if bad != nil {
				var key connectors.Key
				if w.keyIdx != nil {
					key = connectors.KeyOf(rec, w.keyIdx, r)
				}
				return &connectors.ValueError{Column: cw.field.Name, Key: key, Value: bad.value, Reason: bad.reason}
			}
			p++
		}
	}
	if _, err := st.step(); err != nil {
		return err
	}
	return nil
}

func (w *writer) releasePending() {
	for _, rec := range w.pending {
		rec.Release()
	}
	w.pending = nil
}

// Close abandons uncommitted rows and closes the connection.
func (w *writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.releasePending()
	if w.multi != nil {
		w.multi.finalize()
	}
	if w.single != nil {
		w.single.finalize()
	}
	return w.c.close()
}
