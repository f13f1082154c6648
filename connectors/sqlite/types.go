package sqlite

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

// kind is what a column holds, decided from its declared type (SQLite itself
// only has storage classes per value). It picks the Arrow type on read and
// the text layout on write.
type kind uint8

const (
	kindNone        kind = iota // no declared type: inferred from the values
	kindInt                     // INTEGER affinity → Int64
	kindFloat                   // REAL affinity → Float64
	kindText                    // TEXT affinity → String
	kindBlob                    // BLOB → Binary
	kindBool                    // BOOLEAN → Boolean, stored 0/1
	kindDecimal                 // DECIMAL_TEXT(p,s), DECIMAL(p,s) with p ≤ 38 → Decimal128
	kindNumeric                 // DECIMAL_TEXT, NUMERIC… unconstrained → String + numeric
	kindJSON                    // JSON_TEXT → String + json
	kindUUID                    // UUID_TEXT → FixedSizeBinary(16) + uuid
	kindDate                    // DATE_TEXT, DATE → Date32
	kindTimestamp               // TIMESTAMP_TEXT, DATETIME, TIMESTAMP → Timestamp(µs)
	kindTimestampTZ             // TIMESTAMPTZ_TEXT → Timestamp(µs, UTC)
	kindTime                    // TIME_TEXT, TIME → Time64(µs)
)

var kindNames = [...]string{"untyped", "integer", "real", "text", "blob", "boolean", "decimal",
	"numeric", "json", "uuid", "date", "timestamp", "timestamptz", "time"}

func (k kind) String() string { return kindNames[k] }

// textual reports whether the kind is stored as text, so its key order is the
// text's byte order (COLLATE BINARY).
func (k kind) textual() bool {
	switch k {
	case kindInt, kindFloat, kindBool, kindBlob:
		return false
	}
	return true
}

// column is one column of a table or query result.
type column struct {
	name     string
	decl     string // declared type as written, "" for none
	kind     kind
	prec     int32 // kindDecimal
	scale    int32
	nullable bool
	// ours: the declared type is one this connector writes (DATE_TEXT…), so
	// the stored text has a known fixed layout; a DATE/DATETIME column of a
	// table someone else made may hold any ISO variant or unix numbers.
	ours bool
	// unixTime: a foreign date/time key column whose values are unix
	// seconds (integers), so key bounds are bound as numbers. See sniffTime.
	unixTime bool
	timeSep  byte // the separator sniffed in such a column's text, 0 if unknown
}

// kindOf maps a declared type to a kind, following TYPES.md for the types
// this connector writes and SQLite's affinity rules (sqlite.org/datatype3)
// for the rest.
func kindOf(decl string) (k kind, prec, scale int32, ours bool) {
	u := strings.ToUpper(strings.TrimSpace(decl))
	base, params := u, ""
	if i := strings.IndexByte(u, '('); i >= 0 {
		base = strings.TrimSpace(u[:i])
		params = strings.TrimSuffix(strings.TrimSpace(u[i+1:]), ")")
	}
	p, s, hasPS := parsePrecScale(params)
	decimal := func() (kind, int32, int32) {
		if hasPS && p >= 1 && p <= 38 && s >= 0 && s <= p {
			return kindDecimal, p, s
		}
		return kindNumeric, 0, 0
	}
	switch base {
	case "":
		return kindNone, 0, 0, false
	case "DECIMAL_TEXT":
		k, p, s := decimal()
		return k, p, s, true
	case "JSON_TEXT":
		return kindJSON, 0, 0, true
	case "UUID_TEXT":
		return kindUUID, 0, 0, true
	case "DATE_TEXT":
		return kindDate, 0, 0, true
	case "TIMESTAMP_TEXT":
		return kindTimestamp, 0, 0, true
	case "TIMESTAMPTZ_TEXT":
		return kindTimestampTZ, 0, 0, true
	case "TIME_TEXT":
		return kindTime, 0, 0, true
	case "DECIMAL", "NUMERIC":
		k, p, s := decimal()
		return k, p, s, false
	case "JSON":
		return kindJSON, 0, 0, false
	case "UUID":
		return kindUUID, 0, 0, false
	case "DATE":
		return kindDate, 0, 0, false
	case "DATETIME", "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE":
		return kindTimestamp, 0, 0, false
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
		return kindTimestampTZ, 0, 0, false
	case "TIME":
		return kindTime, 0, 0, false
	case "BOOLEAN", "BOOL":
		return kindBool, 0, 0, false
	case "STRING": // NUMERIC affinity by the rules below, but meant as text
		return kindText, 0, 0, false
	case "BYTEA", "BINARY", "VARBINARY":
		return kindBlob, 0, 0, false
	}
	switch {
	case strings.Contains(base, "INT"):
		return kindInt, 0, 0, false
	case strings.Contains(base, "CHAR"), strings.Contains(base, "CLOB"), strings.Contains(base, "TEXT"):
		return kindText, 0, 0, false
	case strings.Contains(base, "BLOB"):
		return kindBlob, 0, 0, false
	case strings.Contains(base, "REAL"), strings.Contains(base, "FLOA"), strings.Contains(base, "DOUB"):
		return kindFloat, 0, 0, false
	}
	return kindNumeric, 0, 0, false
}

func parsePrecScale(params string) (p, s int32, ok bool) {
	if params == "" {
		return 0, 0, false
	}
	ps := strings.Split(params, ",")
	pv, err := strconv.Atoi(strings.TrimSpace(ps[0]))
	if err != nil {
		return 0, 0, false
	}
	sv := 0
	if len(ps) > 1 {
		if sv, err = strconv.Atoi(strings.TrimSpace(ps[1])); err != nil {
			return 0, 0, false
		}
	}
	return int32(pv), int32(sv), true
}

// field returns the Arrow field a column reads as.
func (c *column) field() arrow.Field {
	f := arrow.Field{Name: c.name, Nullable: c.nullable}
	logical := ""
	switch c.kind {
	case kindInt:
		f.Type = arrow.PrimitiveTypes.Int64
	case kindFloat:
		f.Type = arrow.PrimitiveTypes.Float64
	case kindText, kindNone:
		f.Type = arrow.BinaryTypes.String
	case kindBlob:
		f.Type = arrow.BinaryTypes.Binary
	case kindBool:
		f.Type = arrow.FixedWidthTypes.Boolean
	case kindDecimal:
		f.Type = &arrow.Decimal128Type{Precision: c.prec, Scale: c.scale}
	case kindNumeric:
		f.Type = arrow.BinaryTypes.String
		logical = connectors.LogicalNumeric
	case kindJSON:
		f.Type = arrow.BinaryTypes.String
		logical = connectors.LogicalJSON
	case kindUUID:
		f.Type = connectors.UUIDType
		logical = connectors.LogicalUUID
	case kindDate:
		f.Type = arrow.FixedWidthTypes.Date32
	case kindTimestamp:
		f.Type = &arrow.TimestampType{Unit: arrow.Microsecond}
	case kindTimestampTZ:
		f.Type = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case kindTime:
		f.Type = arrow.FixedWidthTypes.Time64us
	}
	keys, vals := []string{connectors.MetaSQLType}, []string{c.decl}
	if logical != "" {
		keys, vals = append(keys, connectors.MetaLogical), append(vals, logical)
	}
	f.Metadata = arrow.NewMetadata(keys, vals)
	return f
}

// declFor returns the declared type a created table gives an Arrow field
// (TYPES.md, SQLite column), or an error naming the field when there is none.
// It knows the types newColWriter can write, no more.
func declFor(f arrow.Field) (string, error) {
	logical := connectors.Logical(f)
	switch t := f.Type.(type) {
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Int32Type, *arrow.Int64Type,
		*arrow.Uint8Type, *arrow.Uint16Type, *arrow.Uint32Type, *arrow.Uint64Type:
		return "INTEGER", nil
	case *arrow.Float32Type, *arrow.Float64Type:
		return "REAL", nil
	case *arrow.BooleanType:
		return "BOOLEAN", nil
	case *arrow.Decimal128Type:
		return fmt.Sprintf("DECIMAL_TEXT(%d,%d)", t.Precision, t.Scale), nil
	case *arrow.StringType, *arrow.LargeStringType:
		switch logical {
		case connectors.LogicalNumeric:
			return "DECIMAL_TEXT", nil
		case connectors.LogicalJSON:
			return "JSON_TEXT", nil
		case connectors.LogicalUUID:
			return "UUID_TEXT", nil
		}
		return "TEXT", nil
	case *arrow.BinaryType, *arrow.LargeBinaryType:
		return "BLOB", nil
	case *arrow.FixedSizeBinaryType:
		if t.ByteWidth == 16 && logical == connectors.LogicalUUID {
			return "UUID_TEXT", nil
		}
		return "BLOB", nil
	case *arrow.Date32Type, *arrow.Date64Type:
		return "DATE_TEXT", nil
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			return "TIMESTAMPTZ_TEXT", nil
		}
		return "TIMESTAMP_TEXT", nil
	case *arrow.Time32Type, *arrow.Time64Type:
		return "TIME_TEXT", nil
	}
	return "", fmt.Errorf("column %q: Arrow type %s has no SQLite column type", f.Name, f.Type)
}

// quoteIdent quotes an SQL identifier: SQLite accepts any text between double
// quotes, with embedded quotes doubled.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// tableRef is a possibly schema-qualified table name.
type tableRef struct {
	schema string // "main" when not given
	name   string
}

func (t tableRef) sql() string { return quoteIdent(t.schema) + "." + quoteIdent(t.name) }
func (t tableRef) String() string {
	if t.schema == "main" {
		return t.name
	}
	return t.schema + "." + t.name
}
