package csv

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/textform"
)

// typeNames are the types the schema option knows, for its error message.
const typeNames = "int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64, bool, " +
	"decimal(p,s), numeric, string, binary, uuid, json, date, timestamp, timestamptz, time"

// parseSchema reads the schema option: "id:int64,name:string,price:decimal(10,2)".
func parseSchema(spec string) (*arrow.Schema, error) {
	var fields []arrow.Field
	seen := map[string]bool{}
	for _, item := range splitTop(spec) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		i := strings.LastIndex(item, ":")
		if i <= 0 {
			return nil, fmt.Errorf("%q: want name:type", item)
		}
		name, typ := strings.TrimSpace(item[:i]), strings.TrimSpace(item[i+1:])
		if seen[name] {
			return nil, fmt.Errorf("column %q named twice", name)
		}
		seen[name] = true
		f, err := fieldOf(name, typ)
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("no columns")
	}
	return arrow.NewSchema(fields, nil), nil
}

// splitTop splits on commas outside parentheses, so decimal(10,2) stays whole.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func fieldOf(name, typ string) (arrow.Field, error) {
	f := arrow.Field{Name: name, Nullable: true}
	switch t := strings.ToLower(typ); t {
	case "int8":
		f.Type = arrow.PrimitiveTypes.Int8
	case "int16", "smallint":
		f.Type = arrow.PrimitiveTypes.Int16
	case "int32", "int", "integer":
		f.Type = arrow.PrimitiveTypes.Int32
	case "int64", "bigint":
		f.Type = arrow.PrimitiveTypes.Int64
	case "uint8":
		f.Type = arrow.PrimitiveTypes.Uint8
	case "uint16":
		f.Type = arrow.PrimitiveTypes.Uint16
	case "uint32":
		f.Type = arrow.PrimitiveTypes.Uint32
	case "uint64":
		f.Type = arrow.PrimitiveTypes.Uint64
	case "float32", "float", "real":
		f.Type = arrow.PrimitiveTypes.Float32
	case "float64", "double":
		f.Type = arrow.PrimitiveTypes.Float64
	case "bool", "boolean":
		f.Type = arrow.FixedWidthTypes.Boolean
	case "string", "text":
		f.Type = arrow.BinaryTypes.String
	case "binary", "bytes":
		f.Type = arrow.BinaryTypes.Binary
	case "numeric":
		f.Type, f.Metadata = arrow.BinaryTypes.String, connectors.WithLogical(connectors.LogicalNumeric)
	case "json":
		f.Type, f.Metadata = arrow.BinaryTypes.String, connectors.WithLogical(connectors.LogicalJSON)
	case "uuid":
		f.Type, f.Metadata = connectors.UUIDType, connectors.WithLogical(connectors.LogicalUUID)
	case "date":
		f.Type = arrow.FixedWidthTypes.Date32
	case "timestamp":
		f.Type = &arrow.TimestampType{Unit: arrow.Microsecond}
	case "timestamptz":
		f.Type = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case "time":
		f.Type = arrow.FixedWidthTypes.Time64us
	default:
		if args, ok := strings.CutPrefix(t, "decimal("); ok && strings.HasSuffix(args, ")") {
			ps, ss, _ := strings.Cut(strings.TrimSuffix(args, ")"), ",")
			p, err1 := strconv.Atoi(strings.TrimSpace(ps))
			s, err2 := strconv.Atoi(strings.TrimSpace(ss))
			if err1 != nil || err2 != nil || p < 1 || p > 38 || s < 0 || s > p {
				return f, fmt.Errorf("column %q: type %q: want decimal(p,s) with 1 <= p <= 38 and 0 <= s <= p (numeric for more)", name, typ)
			}
			f.Type = &arrow.Decimal128Type{Precision: int32(p), Scale: int32(s)}
			return f, nil
		}
		return f, fmt.Errorf("column %q: unknown type %q (known: %s)", name, typ, typeNames)
	}
	return f, nil
}

// Inference. Each column starts as the narrowest candidate and widens as
// sampled values fail to parse; a column of only NULLs is text.
type kind int

const (
	kNone kind = iota // no non-NULL value seen
	kInt
	kFloat
	kBool
	kTimestampTZ
	kTimestamp
	kDate
	kTime
	kString
)

// fits reports whether text s can be read as kind k.
func fits(k kind, s string) bool {
	switch k {
	case kInt:
		if len(s) > 1 && (s[0] == '0' || strings.HasPrefix(s, "-0") || strings.HasPrefix(s, "+0")) {
			return false // leading zeros (codes, zip codes) are text
		}
		_, err := strconv.ParseInt(s, 10, 64)
		return err == nil
	case kFloat:
		if !strings.ContainsAny(s, "0123456789") || len(s) > 1 && s[0] == '0' && s[1] != '.' {
			return false
		}
		_, err := strconv.ParseFloat(s, 64)
		return err == nil
	case kBool:
		switch strings.ToLower(s) {
		case "true", "false":
			return true
		}
		return false
	case kTimestampTZ:
		_, err := textform.ParseTimestamp(s)
		return err == nil && len(s) > 10 && textform.HasOffset(s)
	case kTimestamp:
		_, err := textform.ParseTimestamp(s)
		return err == nil && len(s) > 10 && !textform.HasOffset(s)
	case kDate:
		return len(s) == 10 && s[4] == '-' && s[7] == '-' && dateOK(s)
	case kTime:
		_, err := textform.ParseTimeOfDay(s)
		return err == nil
	}
	return true
}

func dateOK(s string) bool {
	_, err := textform.ParseTimestamp(s + "T00:00:00")
	return err == nil
}

// widen returns the kind that holds both what k held and s.
func widen(k kind, s string) kind {
	if k == kNone {
		for _, c := range []kind{kInt, kFloat, kBool, kTimestampTZ, kTimestamp, kDate, kTime} {
			if fits(c, s) {
				return c
			}
		}
		return kString
	}
	if fits(k, s) {
		return k
	}
	if k == kInt && fits(kFloat, s) {
		return kFloat
	}
	return kString
}

func (k kind) field(name string) arrow.Field {
	f := arrow.Field{Name: name, Nullable: true}
	switch k {
	case kInt:
		f.Type = arrow.PrimitiveTypes.Int64
	case kFloat:
		f.Type = arrow.PrimitiveTypes.Float64
	case kBool:
		f.Type = arrow.FixedWidthTypes.Boolean
	case kTimestampTZ:
		f.Type = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case kTimestamp:
		f.Type = &arrow.TimestampType{Unit: arrow.Microsecond}
	case kDate:
		f.Type = arrow.FixedWidthTypes.Date32
	case kTime:
		f.Type = arrow.FixedWidthTypes.Time64us
	default:
		f.Type = arrow.BinaryTypes.String
	}
	return f
}
