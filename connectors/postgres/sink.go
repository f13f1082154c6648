package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/datashift/datashift/connectors"
	"github.com/jackc/pgx/v5"
)

var (
	_ connectors.Sink        = (*Sink)(nil)
	_ connectors.SinkChecker = (*Sink)(nil)
)

// Sink writes into a PostgreSQL table with COPY … FROM STDIN (FORMAT
// binary), one COPY per commit inside one transaction, which also stores
// the partition's commit record (commits.go).
type Sink struct {
	cfg  connectors.SinkConfig
	conn *connector
	name pgx.Identifier
	what string // quoted table name, for SQL and messages
	// commitName is option commit_table as given: one part (in the
	// target's schema) or two.
	commitName pgx.Identifier
	// keepIndexes is option keep_indexes: an empty table of the user's
	// keeps its indexes while the rows load (settleIndexes).
	keepIndexes bool

	mu       sync.Mutex
	cols     []column       // the target's columns, loaded once
	commitID pgx.Identifier // the commit table, schema-qualified, once resolved
	commits  string         // commitID quoted
}

// OpenSink checks cfg; the target table is looked at by Prepare and
// OpenWriter.
func OpenSink(ctx context.Context, cfg connectors.SinkConfig) (*Sink, error) {
	if cfg.Table == "" {
		return nil, errors.New("postgres sink: table is required")
	}
	switch cfg.Mode {
	case "", connectors.Append, connectors.Truncate, connectors.Upsert:
	default:
		return nil, fmt.Errorf("postgres sink: unknown mode %q (append, truncate, upsert)", cfg.Mode)
	}
	if cfg.Mode == connectors.Upsert && len(cfg.Key) == 0 {
		return nil, errors.New("postgres sink: upsert mode needs key columns")
	}
	ov, err := sinkOptions.Values(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: %w", err)
	}
	name, err := parseTableName(cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: %w", err)
	}
	commitName := pgx.Identifier{defaultCommitTable}
	if v, ok := ov.Lookup("commit_table"); ok {
		if commitName, err = parseTableName(v); err != nil {
			return nil, fmt.Errorf("postgres sink: option commit_table: %w", err)
		}
	}
	cn, err := newConnector(cfg.DSN)
	if err != nil {
		return nil, err
	}
	keep := false
	if v, ok := ov.Lookup("keep_indexes"); ok {
		if keep, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("postgres sink: option keep_indexes %q: want true or false", v)
		}
	}
	return &Sink{cfg: cfg, conn: cn, name: name, what: name.Sanitize(), commitName: commitName, keepIndexes: keep}, nil
}

// Close releases the idle connections.
func (s *Sink) Close() error {
	s.conn.close()
	return nil
}

func (s *Sink) fail(err error) error {
	return s.conn.redact(classify(fmt.Errorf("postgres sink %s: %w", s.what, err)))
}

// Check is what Prepare checks before it changes anything (SinkChecker).
func (s *Sink) Check(ctx context.Context, schema *arrow.Schema) error {
	conn, err := s.conn.get(ctx)
	if err != nil {
		return s.conn.redact(err)
	}
	if _, err := s.check(ctx, conn, schema); err != nil {
		s.conn.discard(conn)
		return s.fail(err)
	}
	s.conn.put(conn)
	return nil
}

// Prepare creates the table from schema when asked and missing, checks an
// existing one can take every column, creates or checks the commit table,
// and empties the target (never the commit table) for Truncate.
func (s *Sink) Prepare(ctx context.Context, schema *arrow.Schema, truncate bool) error {
	conn, err := s.conn.get(ctx)
	if err != nil {
		return s.conn.redact(err)
	}
	if err := s.prepare(ctx, conn, schema, truncate); err != nil {
		s.conn.discard(conn)
		return s.fail(err)
	}
	s.conn.put(conn)
	return nil
}

// check refuses, reading only, what Prepare would fail on: a key column not
// written, a missing table without create_table (or a schema with no
// PostgreSQL table for it), a column the table lacks or cannot take, no
// unique index for upsert. exists reports whether the table is there.
func (s *Sink) check(ctx context.Context, conn *pgx.Conn, schema *arrow.Schema) (exists bool, err error) {
	if _, err := connectors.ColumnIndexes(schema, s.cfg.Key); err != nil {
		return false, fmt.Errorf("key: %w", err)
	}
	_, _, err = lookupTable(ctx, conn, s.name)
	if errors.Is(err, errNoTable) {
		if !s.cfg.CreateTable {
			return false, connectors.ErrNoTable
		}
		return false, tryCreate(ctx, conn, s.what, schema, s.cfg.Key)
	} else if err != nil {
		return false, err
	}
	cols, err := s.columns(ctx, conn, true)
	if err != nil {
		return true, err
	}
	if _, _, err := planColumns(schema, cols); err != nil {
		return true, err
	}
	if s.cfg.Mode == connectors.Upsert {
		if err := s.checkUnique(ctx, conn, cols); err != nil {
			return true, err
		}
	}
	return true, nil
}

// tryCreate creates the table in a transaction it rolls back (DDL is
// transactional in PostgreSQL): what would stop Prepare creating it — no
// such schema, no privilege, a type with no column type — is said now.
func tryCreate(ctx context.Context, conn *pgx.Conn, table string, schema *arrow.Schema, key []string) error {
	ddl, err := createTableSQL(table, schema, key)
	if err != nil {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	return nil
}

func (s *Sink) prepare(ctx context.Context, conn *pgx.Conn, schema *arrow.Schema, truncate bool) error {
	exists, err := s.check(ctx, conn, schema)
	if err != nil {
		return err
	}
	if !exists {
		if err := s.create(ctx, conn, schema); err != nil {
			return err
		}
		// The created table is checked like one that was there.
		if _, err := s.check(ctx, conn, schema); err != nil {
			return err
		}
	}
	if err := s.prepareCommits(ctx, conn); err != nil {
		return err
	}
	if truncate {
		if _, err := conn.Exec(ctx, "TRUNCATE "+s.what); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
	}
	return s.settleIndexes(ctx, conn)
}

// settleIndexes readies the table's indexes for the run's rows. A table
// that still waits for indexes an earlier run left to its end, and now
// has rows, or is upserted into and waits for its key, gets them first: a
// key the new rows repeat is then refused as it comes, not after all of
// them are in, and ON CONFLICT finds its index. Otherwise, unless option
// keep_indexes is set, an empty table of the user's loads without the
// indexes a build after the rows can make (deferOwnIndexes).
func (s *Sink) settleIndexes(ctx context.Context, conn *pgx.Conn) error {
	d, err := readDeferred(ctx, conn, s.what)
	if err != nil {
		return err
	}
	if d != nil {
		empty, err := isEmpty(ctx, conn, s.what)
		if err != nil {
			return err
		}
		waitsForKey := d.Key || len(d.Own) > 0
		if empty && (s.cfg.Mode != connectors.Upsert || !waitsForKey) {
			return nil
		}
		return s.complete(ctx, conn)
	}
	if s.keepIndexes || s.cfg.Mode == connectors.Upsert {
		return nil
	}
	cols, err := s.columns(ctx, conn, false)
	if err != nil {
		return err
	}
	attnums, err := s.keyAttnums(cols)
	if err != nil {
		return err
	}
	return s.deferOwnIndexes(ctx, conn, attnums)
}

// keyAttnums are the attribute numbers of the job's key columns among
// the table's columns cols.
func (s *Sink) keyAttnums(cols []column) ([]int16, error) {
	keys, err := findColumns(cols, s.cfg.Key, "key", s.what)
	if err != nil {
		return nil, err
	}
	attnums := make([]int16, len(keys))
	for i := range keys {
		attnums[i] = keys[i].attnum
	}
	return attnums, nil
}

// create creates the target table. Unless the run upserts (ON CONFLICT
// needs the key's unique index from the first row), the table is created
// without its key's constraint; the source's indexes and checks, when a
// PostgreSQL source passed them on (objectsOf), are left out too. What is
// left out is written in the table's comment, in the same transaction:
// rows load into the bare heap, and Complete builds the rest once, over
// all of them.
func (s *Sink) create(ctx context.Context, conn *pgx.Conn, schema *arrow.Schema) error {
	objs, err := objectsOf(schema)
	if err != nil {
		return err
	}
	later := deferred{Mark: deferredMark, Key: s.cfg.Mode != connectors.Upsert && len(s.cfg.Key) > 0, tableObjects: objs}
	if !later.Key && objs.empty() {
		ddl, err := createTableSQL(s.what, schema, s.cfg.Key)
		if err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("create table: %w", err)
		}
		return nil
	}
	defs, constraint, err := tableDefs(schema, s.cfg.Key)
	if err != nil {
		return err
	}
	if !later.Key && constraint != "" {
		defs = append(defs, constraint)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "CREATE TABLE "+s.what+" ("+strings.Join(defs, ", ")+")"); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	if err := setMark(ctx, tx, s.what, &later); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	return tx.Commit(ctx)
}

// Complete builds what create left out of a table until its rows were in:
// the key's index and the source's indexes, each on a connection of its
// own, all at once; then, in one transaction, the key's constraint on its
// index, the checks, and the mark taken off. An index a crash interrupted
// was rolled back, and the next Complete builds it; a table not marked is
// left as it is.
func (s *Sink) Complete(ctx context.Context) error {
	conn, err := s.conn.get(ctx)
	if err != nil {
		return s.conn.redact(err)
	}
	if err := s.complete(ctx, conn); err != nil {
		s.conn.discard(conn)
		return s.fail(err)
	}
	s.conn.put(conn)
	return nil
}

func (s *Sink) complete(ctx context.Context, conn *pgx.Conn) error {
	d, err := readDeferred(ctx, conn, s.what)
	if err != nil || d == nil {
		return err
	}
	var keyIndex string
	nullable := false
	if d.Key {
		err := conn.QueryRow(ctx, `SELECT coalesce(bool_or(NOT a.attnotnull), false) FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($2) AND NOT a.attisdropped`, s.what, s.cfg.Key).Scan(&nullable)
		if err != nil {
			return err
		}
		keyIndex = keyIndexName(s.name[len(s.name)-1], nullable)
	}
	if err := s.buildIndexes(ctx, keyIndex, d); err != nil {
		if len(d.Own) > 0 {
			// Taking the mark off would lose what the table had.
			return fmt.Errorf("%w; the rows are all in: fix the cause and run the job again; until then the table's comment keeps the definitions of its indexes and its own comment", err)
		}
		return fmt.Errorf("%w; the rows are all in: fix the cause and run the job again, or take the mark off the table (COMMENT ON TABLE %s IS NULL) to keep it as it is", err, s.what)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	// Another leader may be at it too (one paused past its session): the
	// lock orders them, and the second finds the mark gone.
	if _, err := tx.Exec(ctx, "LOCK TABLE "+s.what+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return err
	}
	if d, err = readDeferred(ctx, tx, s.what); err != nil || d == nil {
		return err
	}
	if d.Key {
		var has bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype IN ('p', 'u'))", s.what).Scan(&has); err != nil {
			return err
		}
		kind := "PRIMARY KEY"
		if nullable {
			kind = "UNIQUE"
		}
		if !has {
			if _, err := tx.Exec(ctx, "ALTER TABLE "+s.what+" ADD CONSTRAINT "+quoteIdent(keyIndex)+" "+kind+" USING INDEX "+quoteIdent(keyIndex)); err != nil {
				return fmt.Errorf("add the key's %s: %w", kind, withDetail(err))
			}
		}
	}
	if err := addConstraints(ctx, tx, s.what, d.Own); err != nil {
		return err
	}
	if err := addChecks(ctx, tx, s.what, d.Checks); err != nil {
		return err
	}
	if err := setDefaults(ctx, tx, s.what, d.Defaults); err != nil {
		return err
	}
	comment := "NULL"
	if d.Comment != nil {
		if comment, err = quoteLiteral(*d.Comment); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, "COMMENT ON TABLE "+s.what+" IS "+comment); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// columns returns the target's columns, read from the catalog once (or again
// when reload is set, after Prepare may have created the table).
func (s *Sink) columns(ctx context.Context, conn *pgx.Conn, reload bool) ([]column, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cols != nil && !reload {
		return s.cols, nil
	}
	_, cols, err := lookupTable(ctx, conn, s.name)
	if err != nil {
		return nil, err
	}
	s.cols = cols
	return cols, nil
}

// planColumns matches the schema's fields to target columns and picks an
// encoder for each, failing with the column's name when one is missing or
// cannot take the field's type.
func planColumns(schema *arrow.Schema, cols []column) ([]column, []encoder, error) {
	targets := make([]column, schema.NumFields())
	encs := make([]encoder, schema.NumFields())
	for i, f := range schema.Fields() {
		found := false
		for _, c := range cols {
			if c.name == f.Name {
				targets[i], found = c, true
				break
			}
		}
		if !found {
			names := make([]string, len(cols))
			for j, c := range cols {
				names[j] = c.name
			}
			return nil, nil, fmt.Errorf("column %q is missing from the table (columns: %s)", f.Name, strings.Join(names, ", "))
		}
		if targets[i].generated {
			return nil, nil, fmt.Errorf("column %q is generated and cannot be written", f.Name)
		}
		enc, err := newEncoder(f, &targets[i])
		if err != nil {
			return nil, nil, err
		}
		encs[i] = enc
	}
	return targets, encs, nil
}

// checkUnique makes sure ON CONFLICT (key) has a unique index to use, so
// that a missing one is reported now and by name.
func (s *Sink) checkUnique(ctx context.Context, conn *pgx.Conn, cols []column) error {
	attnums, err := s.keyAttnums(cols)
	if err != nil {
		return err
	}
	var ok bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i
WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
  AND i.indnkeyatts = $3 AND (i.indkey::int2[])[0:$3 - 1] @> $2::int2[])`, s.what, attnums, len(attnums)).Scan(&ok)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("upsert needs a primary key or unique index on (%s)", strings.Join(s.cfg.Key, ", "))
	}
	return nil
}

// createTableSQL maps the Arrow schema to PostgreSQL types (TYPES.md), the
// key's constraint included.
func createTableSQL(table string, schema *arrow.Schema, key []string) (string, error) {
	defs, constraint, err := tableDefs(schema, key)
	if err != nil {
		return "", err
	}
	if constraint != "" {
		defs = append(defs, constraint)
	}
	return "CREATE TABLE IF NOT EXISTS " + table + " (" + strings.Join(defs, ", ") + ")", nil
}

// tableDefs are the column definitions of schema and the key's constraint,
// apart: a table loaded without its key gets the constraint at the end
// (Complete). Text key columns are declared COLLATE "C" so the key's index
// serves the byte-order ranges of later reads.
func tableDefs(schema *arrow.Schema, key []string) (defs []string, constraint string, err error) {
	isKey := map[string]bool{}
	for _, k := range key {
		isKey[k] = true
	}
	nullableKey := false
	for _, f := range schema.Fields() {
		typ, err := pgTypeFor(f)
		if err != nil {
			return nil, "", err
		}
		def := quoteIdent(f.Name) + " " + typ
		if isKey[f.Name] && isCharType(typ) {
			def += ` COLLATE "C"`
		}
		if !f.Nullable {
			def += " NOT NULL"
		} else if isKey[f.Name] {
			nullableKey = true
		}
		defs = append(defs, def)
	}
	if len(key) > 0 {
		constraint = keyConstraint(key, nullableKey)
	}
	return defs, constraint, nil
}

// keyConstraint is the constraint a created table's key gets: a primary
// key would refuse the NULL keys a nullable key column may carry, where a
// unique constraint takes them.
func keyConstraint(key []string, nullable bool) string {
	q := make([]string, len(key))
	for i, k := range key {
		q[i] = quoteIdent(k)
	}
	if nullable {
		return "UNIQUE (" + strings.Join(q, ", ") + ")"
	}
	return "PRIMARY KEY (" + strings.Join(q, ", ") + ")"
}

// isCharType reports whether a type pgTypeFor gives holds text that
// compares by collation.
func isCharType(typ string) bool {
	return typ == "text" || strings.HasPrefix(typ, "character")
}

// maxCharLength is the largest n of PostgreSQL's char(n) and varchar(n).
const maxCharLength = 10485760

// pgDeclared is the PostgreSQL type for a source's declared type, when
// PostgreSQL has it (TYPES.md "Declared types").
func pgDeclared(d connectors.Declared) (string, bool) {
	frac := ""
	if d.N >= 0 {
		frac = fmt.Sprintf("(%d)", d.N)
	}
	switch d.Name {
	case "char":
		if d.N >= 1 && d.N <= maxCharLength {
			return fmt.Sprintf("character(%d)", d.N), true
		}
	case "varchar":
		if d.N == 0 {
			return "character varying", true
		}
		if d.N <= maxCharLength {
			return fmt.Sprintf("character varying(%d)", d.N), true
		}
	case "numeric":
		if d.N <= 1000 {
			return fmt.Sprintf("numeric(%d,%d)", d.N, d.Scale), true
		}
	case "smallint", "integer", "bigint":
		if !d.Unsigned {
			return d.Name, true
		}
	case "timestamp":
		return "timestamp" + frac + " without time zone", true
	case "timestamptz":
		return "timestamp" + frac + " with time zone", true
	case "time":
		return "time" + frac + " without time zone", true
	}
	return "", false
}

// pgTypeFor is the column type a created table gets for an Arrow field:
// the source's declared type where PostgreSQL has it, else the type for
// the Arrow type.
func pgTypeFor(f arrow.Field) (string, error) {
	if d, ok := connectors.DeclaredType(f); ok {
		if typ, ok := pgDeclared(d); ok {
			return typ, nil
		}
	}
	switch connectors.Logical(f) {
	case connectors.LogicalJSON:
		return "jsonb", nil
	case connectors.LogicalUUID:
		return "uuid", nil
	case connectors.LogicalNumeric:
		return "numeric", nil
	}
	switch t := f.Type.(type) {
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Uint8Type:
		return "smallint", nil
	case *arrow.Int32Type, *arrow.Uint16Type:
		return "integer", nil
	case *arrow.Int64Type, *arrow.Uint32Type:
		return "bigint", nil
	case *arrow.Uint64Type:
		return "numeric(20,0)", nil
	case *arrow.Float32Type:
		return "real", nil
	case *arrow.Float64Type:
		return "double precision", nil
	case *arrow.BooleanType:
		return "boolean", nil
	case *arrow.Decimal128Type:
		if t.Scale < 0 || t.Scale > t.Precision {
			return "numeric", nil
		}
		return fmt.Sprintf("numeric(%d,%d)", t.Precision, t.Scale), nil
	case *arrow.StringType, *arrow.LargeStringType:
		return "text", nil
	case *arrow.BinaryType, *arrow.LargeBinaryType:
		return "bytea", nil
	case *arrow.FixedSizeBinaryType:
		if t.ByteWidth == 16 {
			return "uuid", nil
		}
		return "bytea", nil
	case *arrow.Date32Type, *arrow.Date64Type:
		return "date", nil
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			return "timestamptz", nil
		}
		return "timestamp", nil
	case *arrow.Time32Type, *arrow.Time64Type:
		return "time", nil
	}
	return "", fmt.Errorf("column %q: no PostgreSQL type for Arrow %s", f.Name, f.Type)
}

// OpenWriter returns a writer for one partition. Nothing is deleted for a
// resumed partition: its commit record says where it stands, and the
// engine reads on from there (CommitLog).
func (s *Sink) OpenWriter(ctx context.Context, spec connectors.WriterSpec) (connectors.Writer, error) {
	if spec.Schema == nil {
		return nil, fmt.Errorf("postgres sink %s: partition %s: writer spec has no schema", s.what, spec.Partition)
	}
	conn, err := s.conn.get(ctx)
	if err != nil {
		return nil, s.conn.redact(err)
	}
	w, err := s.openWriter(ctx, conn, spec)
	if err != nil {
		s.conn.discard(conn)
		return nil, s.fail(fmt.Errorf("partition %s: %w", spec.Partition, err))
	}
	return w, nil
}

func (s *Sink) openWriter(ctx context.Context, conn *pgx.Conn, spec connectors.WriterSpec) (*writer, error) {
	cols, err := s.columns(ctx, conn, false)
	if err != nil {
		return nil, err
	}
	targets, encs, err := planColumns(spec.Schema, cols)
	if err != nil {
		return nil, err
	}
	keyIdx, err := connectors.ColumnIndexes(spec.Schema, s.cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	commits, err := s.commitTable(ctx, conn, false)
	if err != nil {
		return nil, err
	}
	w := &writer{sink: s, conn: conn, schema: spec.Schema, encs: encs, keyIdx: keyIdx, spec: spec,
		commits: commits, recordSQL: recordSQL(commits)}
	w.plan(targets)
	return w, nil
}
