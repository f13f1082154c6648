package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

var (
	_ connectors.Sink        = (*sink)(nil)
	_ connectors.CommitLog   = (*sink)(nil)
	_ connectors.SinkChecker = (*sink)(nil)
)

// Bulk write methods (sink option bulk).
const (
	bulkAuto   = "auto"      // LOAD DATA LOCAL, multi-row INSERT if the server refuses it
	bulkLoad   = "load_data" // LOAD DATA LOCAL only
	bulkInsert = "insert"    // multi-row INSERT only
)

type sink struct {
	db      *sql.DB
	cfg     connectors.SinkConfig
	dsn     string // redacted
	table   tableRef
	commits tableRef // the commit table (commits.go)
	mariadb bool
	major   int // server major version
	minor   int
	bulk    string
	// maxStmt bounds one multi-row INSERT (max_allowed_packet, with room).
	maxStmt int
	// noLoad is set once LOAD DATA LOCAL was refused; later writers insert.
	noLoad   atomic.Bool
	warnOnce sync.Once

	mu   sync.Mutex
	cols []*column // target columns, loaded once
}

func openSink(ctx context.Context, cfg connectors.SinkConfig) (connectors.Sink, error) {
	if cfg.Table == "" {
		return nil, errors.New("mysql sink: table is required")
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = connectors.Append
	case connectors.Append, connectors.Truncate, connectors.Upsert:
	default:
		return nil, fmt.Errorf("mysql sink: unknown mode %q (append, truncate, upsert)", cfg.Mode)
	}
	if cfg.Mode == connectors.Upsert && len(cfg.Key) == 0 {
		return nil, errors.New("mysql sink: upsert mode needs key columns")
	}
	s := &sink{cfg: cfg, bulk: bulkAuto}
	commitTable := defaultCommitTable
	ov, err := sinkOptions.Values(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("mysql sink: %w", err)
	}
	if v, ok := ov.Lookup("bulk"); ok {
		switch v {
		case bulkAuto, bulkLoad, bulkInsert:
			s.bulk = v
		default:
			return nil, fmt.Errorf("mysql sink: option bulk=%q: want auto, load_data or insert", v)
		}
	}
	if v, ok := ov.Lookup("commit_table"); ok {
		commitTable = v
	}
	db, mcfg, err := openDB(ctx, cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("mysql sink: %w", err)
	}
	s.db, s.dsn = db, connectors.Redacted(cfg.DSN)
	schema, name := splitTable(cfg.Table, mcfg.DBName)
	s.table = tableRef{schema, name}
	if s.commits, err = commitTableRef(commitTable, s.table); err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql sink %s: %w", s.table, err)
	}
	var version string
	var packet, localInfile int64
	err = db.QueryRowContext(ctx, "SELECT VERSION(), @@max_allowed_packet, @@local_infile").Scan(&version, &packet, &localInfile)
	if err != nil {
		db.Close()
		return nil, classify(fmt.Errorf("mysql sink %s: %w", s.dsn, err))
	}
	s.mariadb = strings.Contains(strings.ToLower(version), "mariadb")
	fmt.Sscanf(version, "%d.%d", &s.major, &s.minor)
	s.maxStmt = int(min(packet-64<<10, 16<<20))
	if s.maxStmt < 64<<10 {
		s.maxStmt = 64 << 10
	}
	if s.bulk == bulkAuto && localInfile == 0 {
		s.refuseLoad("the server has local_infile=OFF")
	}
	if s.bulk == bulkInsert {
		s.noLoad.Store(true)
	}
	return s, nil
}

// refuseLoad switches the sink to multi-row INSERTs and says so once.
func (s *sink) refuseLoad(why string) {
	s.noLoad.Store(true)
	s.warnOnce.Do(func() {
		slog.Warn("mysql sink: LOAD DATA LOCAL INFILE refused; writing with multi-row INSERTs instead (slower)",
			"table", s.table.String(), "dsn", s.dsn, "reason", why)
	})
}

func (s *sink) Close() error { return s.db.Close() }

// columns returns the target's columns, read once.
func (s *sink) columns(ctx context.Context) ([]*column, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cols != nil {
		return s.cols, nil
	}
	cols, err := loadColumns(ctx, s.db, s.table)
	if err != nil {
		return nil, err
	}
	s.cols = cols
	return cols, nil
}

// Check is what Prepare checks before it changes anything (SinkChecker).
func (s *sink) Check(ctx context.Context, schema *arrow.Schema) error {
	_, err := s.check(ctx, schema)
	return err
}

// check refuses, reading only, what Prepare would fail on: a missing table
// without create_table (or a schema with no MySQL table for it), a column
// the table lacks, a table without transactions, no unique key for upsert.
// exists reports whether the table is there.
func (s *sink) check(ctx context.Context, schema *arrow.Schema) (exists bool, err error) {
	cols, err := s.columns(ctx)
	if errors.Is(err, errNoTable) {
		if !s.cfg.CreateTable {
			return false, fmt.Errorf("mysql sink %s: %w", s.table, connectors.ErrNoTable)
		}
		if _, err := s.createTableSQL(schema); err != nil {
			return false, fmt.Errorf("mysql sink: create %s: %w", s.table, err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mysql sink: %w", err)
	}
	if _, err := s.targets(schema, cols); err != nil {
		return true, err
	}
	if err := s.checkTransactional(ctx, s.table); err != nil {
		return true, fmt.Errorf("mysql sink: table %s: %w", s.table, err)
	}
	if s.cfg.Mode == connectors.Upsert {
		if err := s.checkUniqueKey(ctx); err != nil {
			return true, err
		}
	}
	return true, nil
}

func (s *sink) Prepare(ctx context.Context, schema *arrow.Schema, truncate bool) error {
	exists, err := s.check(ctx, schema)
	if err != nil {
		return err
	}
	if !exists {
		ddl, err := s.createTableSQL(schema)
		if err != nil {
			return fmt.Errorf("mysql sink: create %s: %w", s.table, err)
		}
		if _, err := s.db.ExecContext(ctx, ddl); err != nil {
			return classify(fmt.Errorf("mysql sink: create %s: %w", s.table, err))
		}
		// The created table is checked like one that was there.
		if _, err := s.check(ctx, schema); err != nil {
			return err
		}
	}
	if err := s.prepareCommitTable(ctx); err != nil {
		return err
	}
	// The commit table is another table: emptying the target leaves the
	// records of every run alone.
	if truncate {
		if _, err := s.db.ExecContext(ctx, "TRUNCATE TABLE "+s.table.quoted()); err != nil {
			return classify(fmt.Errorf("mysql sink: truncate %s: %w", s.table, err))
		}
	}
	return nil
}

// targets pairs each schema field with its target column; the error names
// the first field the table does not have.
func (s *sink) targets(schema *arrow.Schema, cols []*column) ([]fieldTarget, error) {
	out := make([]fieldTarget, schema.NumFields())
	for i, f := range schema.Fields() {
		c := findColumn(cols, f.Name)
		if c == nil {
			return nil, fmt.Errorf("mysql sink: table %s has no column %q (columns: %s)", s.table, f.Name, strings.Join(columnNames(cols), ", "))
		}
		// In a CHARACTER SET binary load, a UUID column would take the 36
		// bytes of text for a binary UUID, and MySQL's JSON refuses binary.
		viaVar := c.kind == kBit || c.kind == kUUID || c.dataType == "json" && !s.mariadb ||
			(c.kind == kString || c.kind == kJSON) && c.charset != "utf8mb4" && c.charset != "binary" && c.charset != ""
		out[i] = fieldTarget{field: f, target: c, viaVar: viaVar}
	}
	for _, k := range s.cfg.Key {
		if schema.FieldIndices(k) == nil {
			return nil, fmt.Errorf("mysql sink: key column %q is not in the rows written to %s", k, s.table)
		}
		if findColumn(cols, k) == nil {
			return nil, fmt.Errorf("mysql sink: table %s has no key column %q", s.table, k)
		}
	}
	return out, nil
}

// checkUniqueKey makes sure REPLACE has a unique index on Key to replace
// by; without one an upsert would silently append.
func (s *sink) checkUniqueKey(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX`,
		s.table.schema, s.table.name)
	if err != nil {
		return classify(fmt.Errorf("mysql sink: indexes of %s: %w", s.table, err))
	}
	defer rows.Close()
	idx := map[string][]string{}
	for rows.Next() {
		var name, col string
		if err := rows.Scan(&name, &col); err != nil {
			return classify(err)
		}
		idx[name] = append(idx[name], strings.ToLower(col))
	}
	if err := rows.Err(); err != nil {
		return classify(err)
	}
	want := make([]string, len(s.cfg.Key))
	for i, k := range s.cfg.Key {
		want[i] = strings.ToLower(k)
	}
	slices.Sort(want)
	for _, cols := range idx {
		got := slices.Clone(cols)
		slices.Sort(got)
		if slices.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("mysql sink: upsert into %s needs a PRIMARY KEY or UNIQUE index on (%s)", s.table, strings.Join(s.cfg.Key, ", "))
}

// textKeyCollation is a byte-order, no-pad collation: keys compare as
// bytes in the index, and 'a' and 'a ' are different keys.
func (s *sink) textKeyCollation() string {
	switch {
	case s.mariadb:
		return "utf8mb4_nopad_bin"
	case s.major >= 8:
		return "utf8mb4_0900_bin"
	}
	return "utf8mb4_bin"
}

// createTableSQL is the CREATE TABLE for schema (TYPES.md).
func (s *sink) createTableSQL(schema *arrow.Schema) (string, error) {
	isKey := map[string]bool{}
	for _, k := range s.cfg.Key {
		isKey[k] = true
	}
	types := make([]string, schema.NumFields())
	for i, f := range schema.Fields() {
		typ, err := s.columnType(f, isKey[f.Name])
		if err != nil {
			return "", err
		}
		types[i] = typ
	}
	fitRow(schema, types, isKey)
	var defs []string
	nullableKey := false
	for i, f := range schema.Fields() {
		typ := types[i]
		def := quoteIdent(f.Name) + " " + typ
		switch {
		case !f.Nullable && strings.HasPrefix(typ, "TIMESTAMP"):
			// An explicit default stops the first TIMESTAMP NOT NULL column
			// from getting ON UPDATE CURRENT_TIMESTAMP.
			def += " NOT NULL DEFAULT '1970-01-01 00:00:01'"
		case !f.Nullable:
			def += " NOT NULL"
		default:
			def += " NULL"
		}
		if isKey[f.Name] && f.Nullable {
			nullableKey = true
		}
		defs = append(defs, def)
	}
	if len(s.cfg.Key) > 0 {
		keys := make([]string, len(s.cfg.Key))
		for i, k := range s.cfg.Key {
			if schema.FieldIndices(k) == nil {
				return "", fmt.Errorf("key column %q is not in the schema", k)
			}
			keys[i] = quoteIdent(k)
		}
		if nullableKey {
			// A PRIMARY KEY cannot hold the NULL keys the source has.
			defs = append(defs, "UNIQUE KEY `datashift_key` ("+strings.Join(keys, ", ")+")")
		} else {
			defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
		}
	}
	return "CREATE TABLE IF NOT EXISTS " + s.table.quoted() + " (\n  " + strings.Join(defs, ",\n  ") +
		"\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin", nil
}

// maxRowBytes is the most a MariaDB/MySQL row may declare, not counting
// what TEXT and BLOB columns keep out of the row.
const maxRowBytes = 65535

// fitRow keeps a created table within maxRowBytes: VARCHAR(n) counts 4n+2
// bytes in utf8mb4, so a few wide declared varchar columns would make
// CREATE TABLE fail where LONGTEXT (today's mapping) takes the values.
// From the last column back, declared char/varchar columns that are not
// keys become LONGTEXT until the row fits. Every other column is counted
// at 32 bytes, more than any of them takes but BINARY(n) at n.
func fitRow(schema *arrow.Schema, types []string, isKey map[string]bool) {
	size := func(typ string) int {
		var n int
		switch {
		case strings.HasPrefix(typ, "VARCHAR("), strings.HasPrefix(typ, "CHAR("):
			typ = typ[strings.IndexByte(typ, '(')+1:]
			fmt.Sscanf(typ, "%d", &n)
			return 4*n + 2
		case strings.HasPrefix(typ, "VARBINARY("), strings.HasPrefix(typ, "BINARY("):
			typ = typ[strings.IndexByte(typ, '(')+1:]
			fmt.Sscanf(typ, "%d", &n)
			return n + 2
		}
		return 32
	}
	total := 0
	for _, typ := range types {
		total += size(typ)
	}
	for i := len(types) - 1; i >= 0 && total > maxRowBytes; i-- {
		f := schema.Field(i)
		d, ok := connectors.DeclaredType(f)
		if isKey[f.Name] || !ok || d.Name != "char" && d.Name != "varchar" || types[i] == "LONGTEXT" {
			continue
		}
		total -= size(types[i]) - size("LONGTEXT")
		types[i] = "LONGTEXT"
	}
}

// maxVarchar is the longest VARCHAR in utf8mb4 (65,532 bytes, 4 a character).
const maxVarchar = 16383

// declaredType is the column type for a source's declared type, when
// MariaDB/MySQL has it (TYPES.md "Declared types"). Key columns keep the
// byte-order collation every text key gets.
func (s *sink) declaredType(d connectors.Declared, key bool) (string, bool) {
	switch d.Name {
	case "char", "varchar":
		typ := ""
		switch {
		case d.N == 0 || d.N > maxVarchar:
			return "", false
		case key && d.N > 255:
			// 255 characters is what every text key gets (4 bytes each,
			// within InnoDB's 3,072-byte index entries for a few columns).
			return "", false
		case d.Name == "char" && d.N <= 255:
			typ = fmt.Sprintf("CHAR(%d)", d.N)
		default:
			// CHAR stops at 255. Both sides read char(n) without its
			// padding, so a VARCHAR holds the same values.
			typ = fmt.Sprintf("VARCHAR(%d)", d.N)
		}
		if key {
			typ += " CHARACTER SET utf8mb4 COLLATE " + s.textKeyCollation()
		}
		return typ, true
	case "numeric":
		maxScale := 30 // MySQL
		if s.mariadb {
			maxScale = 38
		}
		if d.N <= 65 && d.Scale <= maxScale {
			return fmt.Sprintf("DECIMAL(%d,%d)", d.N, d.Scale), true
		}
	case "tinyint", "smallint", "mediumint", "integer", "bigint":
		typ := strings.ToUpper(d.Name)
		if d.Name == "integer" {
			typ = "INT"
		}
		if d.Unsigned {
			typ += " UNSIGNED"
		}
		return typ, true
	case "timestamp":
		return fmt.Sprintf("DATETIME(%d)", d.Fractional()), true
	case "timestamptz":
		return fmt.Sprintf("DATETIME(%d) COMMENT '%s'", d.Fractional(), utcDatetimeComment), true
	case "time":
		return fmt.Sprintf("TIME(%d)", d.Fractional()), true
	}
	return "", false
}

// columnType maps an Arrow field to a column type (TYPES.md): the source's
// declared type where MariaDB/MySQL has it, else the type for the Arrow
// type.
func (s *sink) columnType(f arrow.Field, key bool) (string, error) {
	if d, ok := connectors.DeclaredType(f); ok {
		if typ, ok := s.declaredType(d, key); ok {
			return typ, nil
		}
	}
	logical := connectors.Logical(f)
	switch t := f.Type.(type) {
	case *arrow.Int8Type:
		return "TINYINT", nil
	case *arrow.Int16Type:
		return "SMALLINT", nil
	case *arrow.Int32Type:
		return "INT", nil
	case *arrow.Int64Type:
		return "BIGINT", nil
	case *arrow.Uint8Type:
		return "TINYINT UNSIGNED", nil
	case *arrow.Uint16Type:
		return "SMALLINT UNSIGNED", nil
	case *arrow.Uint32Type:
		return "INT UNSIGNED", nil
	case *arrow.Uint64Type:
		return "BIGINT UNSIGNED", nil
	case *arrow.Float32Type:
		return "FLOAT", nil
	case *arrow.Float64Type:
		return "DOUBLE", nil
	case *arrow.BooleanType:
		return "BOOLEAN", nil
	case *arrow.Decimal128Type:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale), nil
	case *arrow.Decimal256Type:
		if t.Precision > 65 || t.Scale > 30 {
			return "", fmt.Errorf("column %q: %s does not fit DECIMAL(65,30)", f.Name, t)
		}
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale), nil
	case *arrow.StringType, *arrow.LargeStringType:
		switch logical {
		case connectors.LogicalNumeric:
			return "DECIMAL(65,30)", nil
		case connectors.LogicalJSON:
			if !key {
				return "JSON", nil
			}
		case connectors.LogicalUUID:
			return s.uuidType(), nil
		}
		if key {
			return "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE " + s.textKeyCollation(), nil
		}
		return "LONGTEXT", nil
	case *arrow.BinaryType, *arrow.LargeBinaryType:
		if key {
			return "VARBINARY(255)", nil
		}
		return "LONGBLOB", nil
	case *arrow.FixedSizeBinaryType:
		if t.ByteWidth == 16 && logical == connectors.LogicalUUID {
			return s.uuidType(), nil
		}
		return fmt.Sprintf("BINARY(%d)", t.ByteWidth), nil
	case *arrow.Date32Type, *arrow.Date64Type:
		return "DATE", nil
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			// TIMESTAMP only holds 1970-2038. An instant is stored as its UTC
			// wall clock in a DATETIME marked so that reading it back gives
			// an instant again.
			return "DATETIME(6) COMMENT '" + utcDatetimeComment + "'", nil
		}
		return "DATETIME(6)", nil
	case *arrow.Time32Type, *arrow.Time64Type:
		return "TIME(6)", nil
	}
	return "", fmt.Errorf("column %q: no MariaDB type for Arrow type %s", f.Name, f.Type)
}

// uuidType is MariaDB's UUID type where it exists (10.7+), else its text.
func (s *sink) uuidType() string {
	if s.mariadb && (s.major > 10 || s.major == 10 && s.minor >= 7) {
		return "UUID"
	}
	return "CHAR(36) CHARACTER SET ascii COLLATE ascii_bin"
}

func (s *sink) OpenWriter(ctx context.Context, spec connectors.WriterSpec) (connectors.Writer, error) {
	if err := s.checkRecordID(spec.Job, spec.Run, spec.Partition); err != nil {
		return nil, err
	}
	cols, err := s.columns(ctx)
	if err != nil {
		return nil, fmt.Errorf("mysql sink: %w", err)
	}
	targets, err := s.targets(spec.Schema, cols)
	if err != nil {
		return nil, err
	}
	var keyIdx []int
	if len(s.cfg.Key) > 0 {
		if keyIdx, err = connectors.ColumnIndexes(spec.Schema, s.cfg.Key); err != nil {
			return nil, fmt.Errorf("mysql sink %s: key: %w", s.table, err)
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, classify(fmt.Errorf("mysql sink %s: %w", s.table, err))
	}
	return newWriter(s, conn, spec, targets, keyIdx)
}
