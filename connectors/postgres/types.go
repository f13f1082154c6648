package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/datashift/datashift/connectors"
	"github.com/jackc/pgx/v5"
)

// Type OIDs of the built-in types the connector encodes and decodes itself.
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// kind is how one column travels in the binary COPY format.
type kind uint8

const (
	kCast      kind = iota // no binary codec here: read as col::text
	kInt16                 // int2
	kInt32                 // int4
	kInt64                 // int8
	kFloat32               // float4
	kFloat64               // float8
	kBool                  // bool
	kDecimal               // numeric(p,s), p <= 38 → Decimal128
	kNumeric               // numeric of unconstrained or large precision → decimal text
	kText                  // text, varchar, bpchar, name, citext, enum labels, json
	kJSONB                 // jsonb: a version byte, then the text
	kBytea                 // bytea
	kDate                  // date: int32 days since 2000-01-01
	kTimestamp             // timestamp and timestamptz: int64 µs since 2000-01-01
	kTime                  // time: int64 µs since midnight
	kUUID                  // uuid: 16 bytes
)

// column is one column of a table or query as the catalog describes it.
type column struct {
	name    string
	typeOID uint32 // the base type for a domain
	typmod  int32
	typName string // base type name, e.g. "citext"
	typType byte   // pg_type.typtype of the base type: 'b', 'e' (enum), …
	sqlType string // format_type of the declared type, for casts and messages
	notNull bool
	// byteOrder: the column's collation already compares text by bytes, so
	// the ordering expression needs no COLLATE "C" and an index can serve it.
	byteOrder bool
	generated bool
	attnum    int16 // 0 for a query column
}

// kind picks the wire codec for c.
func (c *column) kind() kind {
	switch c.typeOID {
	case oidInt2:
		return kInt16
	case oidInt4:
		return kInt32
	case oidInt8:
		return kInt64
	case oidFloat4:
		return kFloat32
	case oidFloat8:
		return kFloat64
	case oidBool:
		return kBool
	case oidNumeric:
		if p, s, ok := numericTypmod(c.typmod); ok && p <= 38 && s >= 0 && s <= p {
			return kDecimal
		}
		return kNumeric
	case oidText, oidVarchar, oidBpchar, oidName, oidJSON:
		return kText
	case oidJSONB:
		return kJSONB
	case oidBytea:
		return kBytea
	case oidDate:
		return kDate
	case oidTimestamp, oidTimestamptz:
		return kTimestamp
	case oidTime:
		return kTime
	case oidUUID:
		return kUUID
	}
	// citext and enum labels are sent as their text in binary COPY.
	if c.typName == "citext" || c.typType == 'e' {
		return kText
	}
	return kCast
}

// numericTypmod decodes numeric(p,s) from a type modifier.
func numericTypmod(typmod int32) (prec, scale int32, ok bool) {
	if typmod < 4 {
		return 0, 0, false
	}
	t := typmod - 4
	prec = (t >> 16) & 0xffff
	scale = t & 0xffff
	if scale >= 0x8000 { // PostgreSQL 15 allows negative scales, stored as 11 bits two's complement
		scale = int32(int16(uint16(scale)<<5) >> 5)
	}
	return prec, scale, true
}

// varcharLen returns n of varchar(n)/char(n), or 0 when unconstrained.
func (c *column) varcharLen() int {
	if (c.typeOID == oidVarchar || c.typeOID == oidBpchar) && c.typmod >= 4 {
		return int(c.typmod - 4)
	}
	return 0
}

// field is the Arrow field a column reads as (TYPES.md).
func (c *column) field() arrow.Field {
	f := arrow.Field{Name: c.name, Nullable: !c.notNull}
	switch c.kind() {
	case kInt16:
		f.Type = arrow.PrimitiveTypes.Int16
	case kInt32:
		f.Type = arrow.PrimitiveTypes.Int32
	case kInt64:
		f.Type = arrow.PrimitiveTypes.Int64
	case kFloat32:
		f.Type = arrow.PrimitiveTypes.Float32
	case kFloat64:
		f.Type = arrow.PrimitiveTypes.Float64
	case kBool:
		f.Type = arrow.FixedWidthTypes.Boolean
	case kDecimal:
		p, s, _ := numericTypmod(c.typmod)
		f.Type = &arrow.Decimal128Type{Precision: p, Scale: s}
	case kNumeric:
		f.Type = arrow.BinaryTypes.String
		f.Metadata = arrow.NewMetadata(
			[]string{connectors.MetaLogical, connectors.MetaSQLType},
			[]string{connectors.LogicalNumeric, c.sqlType})
	case kText:
		f.Type = arrow.BinaryTypes.String
		switch {
		case c.typeOID == oidJSON:
			f.Metadata = arrow.NewMetadata(
				[]string{connectors.MetaLogical, connectors.MetaSQLType},
				[]string{connectors.LogicalJSON, c.sqlType})
		case c.typName == "citext" || c.typType == 'e':
			f.Metadata = arrow.NewMetadata([]string{connectors.MetaSQLType}, []string{c.sqlType})
		}
	case kJSONB:
		f.Type = arrow.BinaryTypes.String
		f.Metadata = arrow.NewMetadata(
			[]string{connectors.MetaLogical, connectors.MetaSQLType},
			[]string{connectors.LogicalJSON, c.sqlType})
	case kBytea:
		f.Type = arrow.BinaryTypes.Binary
	case kDate:
		f.Type = arrow.FixedWidthTypes.Date32
	case kTimestamp:
		if c.typeOID == oidTimestamptz {
			f.Type = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
		} else {
			f.Type = &arrow.TimestampType{Unit: arrow.Microsecond}
		}
	case kTime:
		f.Type = arrow.FixedWidthTypes.Time64us
	case kUUID:
		f.Type = connectors.UUIDType
		f.Metadata = arrow.NewMetadata(
			[]string{connectors.MetaLogical, connectors.MetaSQLType},
			[]string{connectors.LogicalUUID, c.sqlType})
	default: // kCast
		f.Type = arrow.BinaryTypes.String
		f.Metadata = arrow.NewMetadata([]string{connectors.MetaSQLType}, []string{c.sqlType})
	}
	if d, ok := c.declared(); ok {
		f.Metadata = connectors.WithDeclared(f.Metadata, d)
	}
	return f
}

// declared is the column's type in the portable form sinks declare again
// (connectors.MetaType), for the types that have one.
func (c *column) declared() (connectors.Declared, bool) {
	// A time type's typmod is its fractional digits; -1 when not given.
	frac := max(int(c.typmod), -1)
	switch c.typeOID {
	case oidBpchar:
		if n := c.varcharLen(); n > 0 {
			return connectors.Declared{Name: "char", N: n}, true
		}
	case oidVarchar:
		return connectors.Declared{Name: "varchar", N: c.varcharLen()}, true
	case oidNumeric:
		if p, s, ok := numericTypmod(c.typmod); ok && p >= 1 && s >= 0 && s <= p {
			return connectors.Declared{Name: "numeric", N: int(p), Scale: int(s)}, true
		}
	case oidInt2:
		return connectors.Declared{Name: "smallint"}, true
	case oidInt4:
		return connectors.Declared{Name: "integer"}, true
	case oidInt8:
		return connectors.Declared{Name: "bigint"}, true
	case oidTimestamp:
		return connectors.Declared{Name: "timestamp", N: frac}, true
	case oidTimestamptz:
		return connectors.Declared{Name: "timestamptz", N: frac}, true
	case oidTime:
		return connectors.Declared{Name: "time", N: frac}, true
	}
	return connectors.Declared{}, false
}

// isTextual reports whether the column's values compare as text in the key
// order, which is byte order (TYPES.md "Key order").
func (c *column) isTextual() bool {
	switch c.kind() {
	case kText, kJSONB, kCast:
		return true
	}
	return false
}

// orderExpr is the SQL expression that orders the column in the key order.
func (c *column) orderExpr() string {
	q := quoteIdent(c.name)
	if !c.isTextual() {
		return q
	}
	switch c.typeOID {
	case oidText, oidVarchar, oidBpchar, oidName:
		if c.byteOrder {
			return q
		}
		return q + ` COLLATE "C"`
	}
	// citext compares case-insensitively, enums by declaration order, json
	// by structure: their text is what other stores compare, by bytes.
	return q + `::text COLLATE "C"`
}

// literalType is the SQL type a bound of this key column is cast to.
func (c *column) literalType() string {
	if c.isTextual() {
		switch c.typeOID {
		case oidText, oidVarchar, oidBpchar, oidName:
			return c.sqlType
		}
		return "text"
	}
	return c.sqlType
}

// byteOrderLocale is an SQL condition on a libc locale name: true for the
// locales whose collation is the UTF-8 byte order. C and POSIX compare bytes;
// glibc's C.UTF-8 compares code points, which for UTF-8 is the same order.
func byteOrderLocale(expr string) string {
	return "lower(" + expr + ") IN ('c', 'posix', 'c.utf8', 'c.utf-8')"
}

// catalogQuery lists a relation's columns. Domains are resolved to their base
// type (binary COPY sends the base type's format). The byte-order column is
// true when the column's collation is a byte-order libc locale, or the
// database default is one and the column uses the default (the provider
// check keeps ICU defaults out). Such a column needs no COLLATE "C", so its
// index serves range reads and ORDER BY.
var catalogQuery = `
SELECT a.attname,
       CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       bt.typname::text, bt.typtype::text,
       format_type(a.atttypid, a.atttypmod),
       a.attnotnull OR (t.typtype = 'd' AND t.typnotnull),
       CASE WHEN a.attcollation = 0 THEN true
            WHEN a.attcollation = 100 THEN (SELECT ` + byteOrderLocale("d.datcollate") + `
                   AND coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'c'
                   FROM pg_database d WHERE d.datname = current_database())
            ELSE co.collprovider = 'c' AND ` + byteOrderLocale("co.collcollate") + ` END,
       a.attgenerated <> '',
       a.attnum
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`

// errNoTable is wrapped by lookupTable when the relation does not exist.
var errNoTable = errors.New("table does not exist")

// lookupTable resolves a table name to its OID and columns.
func lookupTable(ctx context.Context, conn *pgx.Conn, name pgx.Identifier) (uint32, []column, error) {
	var oid *uint32
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1)::oid`, name.Sanitize()).Scan(&oid); err != nil {
		return 0, nil, fmt.Errorf("look up table %s: %w", name.Sanitize(), err)
	}
	if oid == nil {
		return 0, nil, fmt.Errorf("table %s: %w", name.Sanitize(), errNoTable)
	}
	rows, err := conn.Query(ctx, catalogQuery, *oid)
	if err != nil {
		return 0, nil, fmt.Errorf("read columns of %s: %w", name.Sanitize(), err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		var typType string
		err := r.Scan(&c.name, &c.typeOID, &c.typmod, &c.typName, &typType, &c.sqlType, &c.notNull, &c.byteOrder, &c.generated, &c.attnum)
		if typType != "" {
			c.typType = typType[0]
		}
		return c, err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("read columns of %s: %w", name.Sanitize(), err)
	}
	return *oid, cols, nil
}

// describeQuery describes the result columns of a query without running it.
// Nullability is unknown for a query, so every column is nullable.
func describeQuery(ctx context.Context, conn *pgx.Conn, query string) ([]column, error) {
	sd, err := conn.PgConn().Prepare(ctx, "", query, nil)
	if err != nil {
		return nil, fmt.Errorf("describe query: %w", err)
	}
	if len(sd.Fields) == 0 {
		return nil, errors.New("query returns no columns")
	}
	cols := make([]column, len(sd.Fields))
	seen := map[string]bool{}
	for i, f := range sd.Fields {
		if seen[f.Name] {
			return nil, fmt.Errorf("query returns column %q twice; give the columns distinct names", f.Name)
		}
		seen[f.Name] = true
		var typType string
		var byteOrder bool
		err := conn.QueryRow(ctx, `
SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE $2 END,
       bt.typname::text, bt.typtype::text, format_type(t.oid, $2),
       (SELECT `+byteOrderLocale("d.datcollate")+` AND coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'c'
        FROM pg_database d WHERE d.datname = current_database())
FROM pg_type t JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE t.oid = $1`, f.DataTypeOID, f.TypeModifier).Scan(
			&cols[i].typeOID, &cols[i].typmod, &cols[i].typName, &typType, &cols[i].sqlType, &byteOrder)
		if err != nil {
			return nil, fmt.Errorf("describe query column %q: %w", f.Name, err)
		}
		cols[i].name = f.Name
		cols[i].typType = typType[0]
		// A query column's collation is not described; only a C database
		// default makes the plain column order byte order.
		cols[i].byteOrder = byteOrder
	}
	return cols, nil
}

// findColumns returns the columns named by names, in that order, or an error
// naming the first that is missing.
func findColumns(cols []column, names []string, what, table string) ([]column, error) {
	out := make([]column, len(names))
	for i, n := range names {
		found := false
		for _, c := range cols {
			if c.name == n {
				out[i], found = c, true
				break
			}
		}
		if !found {
			all := make([]string, len(cols))
			for j, c := range cols {
				all[j] = c.name
			}
			return nil, fmt.Errorf("%s column %q not found in %s (columns: %s)", what, n, table, strings.Join(all, ", "))
		}
	}
	return out, nil
}
