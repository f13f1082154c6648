package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

// kind is how a column's values are read and written.
type kind int

const (
	kInt       kind = iota // signed integer of width bits
	kUint                  // unsigned integer of width bits
	kBool                  // tinyint(1), BOOLEAN
	kBit                   // BIT(n): big-endian bytes on the wire
	kFloat32               // FLOAT, read as CAST(... AS DOUBLE) to keep every bit
	kFloat64               // DOUBLE
	kDecimal               // DECIMAL(p,s) with p ≤ 38: Decimal128
	kNumeric               // DECIMAL with p > 38: decimal text
	kString                // char/varchar/text and anything read as its text
	kJSON                  // JSON (MySQL) or LONGTEXT with a json_valid check (MariaDB)
	kBinary                // binary/varbinary/blob
	kUUID                  // MariaDB UUID type
	kDate                  // DATE
	kDatetime              // DATETIME(n): wall clock
	kTimestamp             // TIMESTAMP(n): an instant, in UTC (session time zone +00:00)
	kTime                  // TIME(n)
	kYear                  // YEAR
)

// column is one column of a source or target table.
// utcDatetimeComment marks a DATETIME column the sink made for timestamps
// with a time zone: its values are UTC instants.
const utcDatetimeComment = "datashift:timestamptz"

type column struct {
	name      string
	kind      kind
	width     int // integer width in bits
	precision int // DECIMAL precision; char length for char/varchar
	scale     int // DECIMAL scale
	fsp       int // fractional seconds digits of DATETIME/TIMESTAMP/TIME
	nullable  bool
	sqlType   string // COLUMN_TYPE as declared, e.g. "int(10) unsigned"
	dataType  string // DATA_TYPE, lower case, e.g. "int"
	charset   string // CHARACTER_SET_NAME, "" for non-text
	collation string
	maxBytes  int64 // CHARACTER_OCTET_LENGTH for text and binary columns
	maxChars  int64 // CHARACTER_MAXIMUM_LENGTH
	autoInc   bool
	geometry  bool
	utc       bool // a DATETIME holding UTC instants (utcDatetimeComment)
	// native: compare in the column's own order (its index order), not in
	// byte order; used by the sampling walk only.
	native bool
}

// quoted is the column's name quoted for SQL.
func (c *column) quoted() string { return quoteIdent(c.name) }

// selectExpr is what a SELECT reads for the column: casts that keep values
// exact (FLOAT prints 6 digits; DATE/TIME as text so zero dates are seen).
func (c *column) selectExpr(prefix string) string {
	q := prefix + c.quoted()
	switch {
	case c.kind == kFloat32:
		return "CAST(" + q + " AS DOUBLE)"
	case c.kind == kDate || c.kind == kDatetime || c.kind == kTimestamp || c.kind == kTime:
		return "CAST(" + q + " AS CHAR)"
	case c.geometry:
		return "ST_AsText(" + q + ")"
	}
	return q
}

// byteOrderCollation reports whether comparing the column as it is already
// gives UTF-8 byte order: binary strings, and utf8 "nopad_bin"-like
// collations (code point order with no trailing-space padding).
func (c *column) byteOrderCollation() bool {
	switch c.kind {
	case kBinary:
		return true
	case kString, kJSON:
	default:
		return false
	}
	if c.dataType == "enum" || c.dataType == "set" || c.geometry {
		return false // sorted by index / not text
	}
	if !strings.HasPrefix(c.charset, "utf8") {
		return false
	}
	switch c.collation {
	case "utf8mb4_nopad_bin", "utf8mb3_nopad_bin", "utf8_nopad_bin", "utf8mb4_0900_bin":
		return true
	}
	return false
}

// keyExpr is the expression that orders and bounds the column in byte order
// (TYPES.md "Key order").
func (c *column) keyExpr(prefix string) string {
	q := prefix + c.quoted()
	if c.native {
		return q
	}
	switch c.kind {
	case kString, kJSON:
		if c.byteOrderCollation() {
			return q
		}
		if c.charset != "" && !strings.HasPrefix(c.charset, "utf8") && c.charset != "binary" {
			// latin1 bytes are not the UTF-8 bytes every other store compares.
			return "CAST(CONVERT(" + q + " USING utf8mb4) AS BINARY)"
		}
		return "CAST(" + q + " AS BINARY)"
	case kUUID:
		// MariaDB orders its UUID type with swapped segments; its binary
		// form is the 16 bytes in text order.
		return "CAST(" + q + " AS BINARY)"
	}
	return q
}

// keyParam is the placeholder for a key value compared with keyExpr.
func (c *column) keyParam() string {
	switch c.kind {
	case kDecimal, kNumeric:
		// A string compared with a DECIMAL is compared as DOUBLE: cast it.
		return "CAST(? AS DECIMAL(65,30))"
	}
	return "?"
}

// keyArg converts a key value (as connectors.ValueAt gives it) into a driver
// argument for keyParam.
func (c *column) keyArg(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, fmt.Errorf("key column %q: NULL in a range bound", c.name)
	case connectors.UUID:
		if c.kind == kUUID || c.kind == kBinary {
			return x[:], nil
		}
		return x.String(), nil
	case time.Time:
		return x.UTC(), nil // the driver formats it in its location, UTC
	case int64, uint64, float64, string, []byte, bool:
		return x, nil
	}
	return nil, fmt.Errorf("key column %q: key value of type %T", c.name, v)
}

// usableAsKey says whether a column can order and split a source.
func (c *column) usableAsKey() error {
	switch c.kind {
	case kTime:
		return fmt.Errorf("key column %q: TIME keys are not supported (no key value type for a time of day)", c.name)
	case kBit:
		if c.precision > 64 {
			return fmt.Errorf("key column %q: %s is too wide for a key", c.name, c.sqlType)
		}
	}
	if c.geometry {
		return fmt.Errorf("key column %q: %s cannot order rows", c.name, c.sqlType)
	}
	return nil
}

// arrowField is the Arrow field a column reads as (TYPES.md).
func (c *column) arrowField() arrow.Field {
	var t arrow.DataType
	var logical string
	switch c.kind {
	case kInt, kYear:
		switch c.width {
		case 8:
			t = arrow.PrimitiveTypes.Int8
		case 16:
			t = arrow.PrimitiveTypes.Int16
		case 32:
			t = arrow.PrimitiveTypes.Int32
		default:
			t = arrow.PrimitiveTypes.Int64
		}
	case kUint, kBit:
		switch c.width {
		case 8:
			t = arrow.PrimitiveTypes.Uint8
		case 16:
			t = arrow.PrimitiveTypes.Uint16
		case 32:
			t = arrow.PrimitiveTypes.Uint32
		default:
			t = arrow.PrimitiveTypes.Uint64
		}
	case kBool:
		t = arrow.FixedWidthTypes.Boolean
	case kFloat32:
		t = arrow.PrimitiveTypes.Float32
	case kFloat64:
		t = arrow.PrimitiveTypes.Float64
	case kDecimal:
		t = &arrow.Decimal128Type{Precision: int32(c.precision), Scale: int32(c.scale)}
	case kNumeric:
		t, logical = arrow.BinaryTypes.String, connectors.LogicalNumeric
	case kString:
		t = arrow.BinaryTypes.String
	case kJSON:
		t, logical = arrow.BinaryTypes.String, connectors.LogicalJSON
	case kBinary:
		t = arrow.BinaryTypes.Binary
	case kUUID:
		t, logical = connectors.UUIDType, connectors.LogicalUUID
	case kDate:
		t = arrow.FixedWidthTypes.Date32
	case kDatetime:
		t = &arrow.TimestampType{Unit: arrow.Microsecond}
		if c.utc {
			t = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
		}
	case kTimestamp:
		t = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case kTime:
		t = arrow.FixedWidthTypes.Time64us
	}
	keys := []string{connectors.MetaSQLType}
	vals := []string{c.sqlType}
	if logical != "" {
		keys = append(keys, connectors.MetaLogical)
		vals = append(vals, logical)
	}
	if d, ok := c.declared(); ok {
		keys = append(keys, connectors.MetaType)
		vals = append(vals, d.String())
	}
	return arrow.Field{Name: c.name, Type: t, Nullable: c.nullable, Metadata: arrow.NewMetadata(keys, vals)}
}

// declared is the column's type in the portable form sinks declare again
// (connectors.MetaType), for the types that have one.
func (c *column) declared() (connectors.Declared, bool) {
	switch c.kind {
	case kInt, kUint:
		name := c.dataType
		if name == "int" {
			name = "integer"
		}
		switch name {
		case "tinyint", "smallint", "mediumint", "integer", "bigint":
			return connectors.Declared{Name: name, Unsigned: c.kind == kUint}, true
		}
	case kDecimal, kNumeric:
		if c.precision >= 1 {
			return connectors.Declared{Name: "numeric", N: c.precision, Scale: c.scale}, true
		}
	case kString:
		// A query's text columns say no length (queryColumns).
		if (c.dataType == "char" || c.dataType == "varchar") && c.maxChars > 0 && !c.geometry {
			return connectors.Declared{Name: c.dataType, N: int(c.maxChars)}, true
		}
	case kDatetime, kTimestamp, kTime:
		if c.fsp < 0 || c.fsp > 6 {
			return connectors.Declared{}, false
		}
		name := "time"
		switch {
		case c.kind == kTimestamp || c.utc:
			// TIMESTAMP is an instant, read as UTC (TYPES.md).
			name = "timestamptz"
		case c.kind == kDatetime:
			name = "timestamp"
		}
		return connectors.Declared{Name: name, N: c.fsp}, true
	}
	return connectors.Declared{}, false
}

// classifyColumn sets kind, width and precision from the declared type.
func (c *column) classify() {
	dt := strings.ToLower(c.dataType)
	ct := strings.ToLower(c.sqlType)
	unsigned := strings.Contains(ct, "unsigned")
	setInt := func(w int) {
		c.width = w
		c.kind = kInt
		if unsigned {
			c.kind = kUint
		}
	}
	switch dt {
	case "tinyint":
		setInt(8)
		if !unsigned && (strings.HasPrefix(ct, "tinyint(1)") || ct == "boolean" || ct == "bool") {
			c.kind = kBool
		}
	case "bool", "boolean":
		c.kind = kBool
	case "smallint":
		setInt(16)
	case "mediumint", "int", "integer":
		setInt(32)
	case "bigint":
		setInt(64)
	case "year":
		c.kind, c.width = kYear, 16
	case "bit":
		if c.precision == 1 {
			c.kind = kBool
		} else {
			c.kind = kBit
			switch {
			case c.precision <= 8:
				c.width = 8
			case c.precision <= 16:
				c.width = 16
			case c.precision <= 32:
				c.width = 32
			default:
				c.width = 64
			}
		}
	case "float":
		c.kind = kFloat32
	case "double", "real", "double precision":
		c.kind = kFloat64
	case "decimal", "numeric", "dec", "fixed":
		if c.precision <= 38 {
			c.kind = kDecimal
		} else {
			c.kind = kNumeric
		}
	case "json":
		c.kind = kJSON
	case "uuid":
		c.kind = kUUID
	case "date":
		c.kind = kDate
	case "datetime":
		c.kind = kDatetime
	case "timestamp":
		c.kind = kTimestamp
	case "time":
		c.kind = kTime
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		c.kind = kBinary
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
		"multipolygon", "geometrycollection", "geomcollection":
		c.kind, c.geometry = kString, true
	default:
		// char/varchar/text kinds, ENUM, SET, INET4/6 and anything newer read
		// as their text form; the declared type rides along in the metadata.
		c.kind = kString
		if c.charset == "binary" {
			c.kind = kBinary
		}
	}
}

// tableRef names a table in a database.
type tableRef struct{ schema, name string }

func (t tableRef) quoted() string { return quoteIdent(t.schema) + "." + quoteIdent(t.name) }
func (t tableRef) String() string { return t.schema + "." + t.name }

var errNoTable = errors.New("table not found")

// indexPart is a column of an index, with the length of the column's
// prefix it indexes (0: the whole column).
type indexPart struct {
	name   string
	prefix int64
}

// primaryKeyOf reads the columns of t's primary key in key order; none
// when it has no primary key.
func primaryKeyOf(ctx context.Context, db *sql.DB, t tableRef) ([]indexPart, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, COALESCE(SUB_PART, 0) FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`, t.schema, t.name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var parts []indexPart
	for rows.Next() {
		var p indexPart
		if err := rows.Scan(&p.name, &p.prefix); err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, rows.Err()
}

// loadColumns reads a table's columns from information_schema, in order.
func loadColumns(ctx context.Context, db *sql.DB, t tableRef) ([]*column, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE,
		COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0),
		COALESCE(CHARACTER_SET_NAME, ''), COALESCE(COLLATION_NAME, ''),
		COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COALESCE(CHARACTER_OCTET_LENGTH, 0), EXTRA,
		COALESCE(DATETIME_PRECISION, 0), COLUMN_COMMENT
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
		ORDER BY ORDINAL_POSITION`, t.schema, t.name)
	if err != nil {
		return nil, classify(fmt.Errorf("read columns of %s: %w", t, err))
	}
	defer rows.Close()
	var cols []*column
	for rows.Next() {
		c := &column{}
		var nullable, extra, comment string
		var prec, scale, fsp int64
		if err := rows.Scan(&c.name, &c.dataType, &c.sqlType, &nullable, &prec, &scale,
			&c.charset, &c.collation, &c.maxChars, &c.maxBytes, &extra, &fsp, &comment); err != nil {
			return nil, classify(fmt.Errorf("read columns of %s: %w", t, err))
		}
		c.dataType = strings.ToLower(c.dataType)
		c.nullable = nullable == "YES"
		c.precision, c.scale, c.fsp = int(prec), int(scale), min(int(fsp), 6)
		c.autoInc = strings.Contains(strings.ToLower(extra), "auto_increment")
		c.classify()
		c.utc = c.kind == kDatetime && comment == utcDatetimeComment
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("read columns of %s: %w", t, err))
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s: %w", t, errNoTable)
	}
	// MariaDB's JSON is LONGTEXT with a json_valid(col) check constraint.
	jsonCols, err := jsonCheckColumns(ctx, db, t)
	if err != nil {
		return nil, err
	}
	for _, c := range cols {
		if c.kind == kString && jsonCols[c.name] {
			c.kind = kJSON
			c.sqlType = "json"
		}
	}
	return cols, nil
}

// jsonCheckColumns finds the columns guarded by a json_valid(`col`) check.
func jsonCheckColumns(ctx context.Context, db *sql.DB, t tableRef) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, t.schema, t.name)
	if err != nil {
		// MySQL before 8.0.16 has no such view, and no json_valid checks.
		return nil, nil
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var clause string
		if err := rows.Scan(&clause); err != nil {
			return nil, classify(fmt.Errorf("read check constraints of %s: %w", t, err))
		}
		cl := strings.TrimSpace(clause)
		if strings.HasPrefix(strings.ToLower(cl), "json_valid(`") && strings.HasSuffix(cl, "`)") {
			name := cl[len("json_valid(`") : len(cl)-2]
			out[strings.ReplaceAll(name, "``", "`")] = true
		}
	}
	return out, classify(rows.Err())
}

// queryColumns describes the output columns of a SELECT from the result set
// metadata (no information_schema for a query). JSON and UUID columns of a
// query read as text: the protocol does not say what they are.
func queryColumns(ctx context.Context, db *sql.DB, query string) ([]*column, error) {
	rows, err := db.QueryContext(ctx, "SELECT * FROM ("+query+") AS q LIMIT 0")
	if err != nil {
		return nil, classify(fmt.Errorf("query: %w", err))
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, classify(fmt.Errorf("query: %w", err))
	}
	cols := make([]*column, len(types))
	for i, ct := range types {
		c := &column{name: ct.Name()}
		name := strings.ToLower(ct.DatabaseTypeName())
		unsigned := strings.HasPrefix(name, "unsigned ")
		name = strings.TrimPrefix(name, "unsigned ")
		c.dataType = name
		c.sqlType = name
		if unsigned {
			c.sqlType += " unsigned"
		}
		if n, ok := ct.Nullable(); ok {
			c.nullable = n
		} else {
			c.nullable = true
		}
		if p, s, ok := ct.DecimalSize(); ok {
			c.precision, c.scale = int(p), int(s)
		}
		switch name {
		case "datetime", "timestamp", "time":
			// The result's decimals are the fractional digits; an
			// expression's may be "not fixed" (31): no declared precision.
			c.fsp = c.precision
			if c.fsp > 6 {
				c.fsp = -1
			}
		}
		length, _ := ct.Length()
		switch name {
		case "tinyint":
			if length == 1 && !unsigned {
				c.sqlType = "tinyint(1)"
			}
		case "bit":
			c.precision = int(length)
		case "decimal":
			c.sqlType = fmt.Sprintf("decimal(%d,%d)", c.precision, c.scale)
		case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
			c.charset = "binary"
		case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set":
			c.charset = "utf8mb4"
		}
		c.classify()
		cols[i] = c
	}
	return cols, nil
}

// findColumn finds a column by name; MariaDB column names are case-insensitive.
func findColumn(cols []*column, name string) *column {
	for _, c := range cols {
		if c.name == name {
			return c
		}
	}
	for _, c := range cols {
		if strings.EqualFold(c.name, name) {
			return c
		}
	}
	return nil
}

func columnNames(cols []*column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}
