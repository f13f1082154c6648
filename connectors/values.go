package connectors

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// Field metadata keys. Arrow has no JSON, UUID or unconstrained-numeric types
// that every store maps well, so those travel as ordinary Arrow types with a
// logical type in the field's metadata; sinks use it to pick the column type.
const (
	MetaLogical = "datashift.logical" // "json", "uuid", "numeric"
	MetaSQLType = "datashift.sqltype" // the source's own spelling of the declared type, for messages; sinks read MetaType
)

// Logical types carried in MetaLogical.
const (
	LogicalJSON    = "json"
	LogicalUUID    = "uuid"
	LogicalNumeric = "numeric" // decimal text of unconstrained precision, in a utf8 field
)

// Logical returns a field's logical type, or "" for a plain Arrow type.
func Logical(f arrow.Field) string {
	if v, ok := f.Metadata.GetValue(MetaLogical); ok {
		return v
	}
	return ""
}

// WithLogical returns metadata that marks a field with a logical type.
func WithLogical(logical string) arrow.Metadata {
	return arrow.NewMetadata([]string{MetaLogical}, []string{logical})
}

// UUIDType is the Arrow type of a UUID column: 16 bytes, marked with
// LogicalUUID in the field metadata.
var UUIDType = &arrow.FixedSizeBinaryType{ByteWidth: 16}

// ValueAt returns row i of arr as a plain Go value: nil, int64, uint64,
// float64, bool, string, []byte (not copied), UUID, time.Time (UTC),
// time.Duration (time of day) or, for decimals, their exact text.
func ValueAt(arr arrow.Array, i int) any {
	if arr.IsNull(i) {
		return nil
	}
	switch a := arr.(type) {
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return uint64(a.Value(i))
	case *array.Uint16:
		return uint64(a.Value(i))
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return a.Value(i)
	case *array.LargeBinary:
		return a.Value(i)
	case *array.FixedSizeBinary:
		if a.DataType().(*arrow.FixedSizeBinaryType).ByteWidth == 16 {
			var u UUID
			copy(u[:], a.Value(i))
			return u
		}
		return a.Value(i)
	case *array.Decimal128:
		return DecimalString(a.Value(i), a.DataType().(*arrow.Decimal128Type).Scale)
	case *array.Date32:
		return a.Value(i).ToTime().UTC()
	case *array.Date64:
		return a.Value(i).ToTime().UTC()
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return a.Value(i).ToTime(unit).UTC()
	case *array.Time64:
		unit := a.DataType().(*arrow.Time64Type).Unit
		return time.Duration(a.Value(i)) * unit.Multiplier()
	case *array.Time32:
		unit := a.DataType().(*arrow.Time32Type).Unit
		return time.Duration(a.Value(i)) * unit.Multiplier()
	}
	panic(fmt.Sprintf("connectors: no plain value for Arrow type %s", arr.DataType()))
}

// DecimalString formats a decimal128 with the given scale exactly.
func DecimalString(n decimal128.Num, scale int32) string {
	bi := n.BigInt()
	var b []byte
	if bi.Sign() < 0 {
		b = append(b, '-')
		bi.Neg(bi)
	}
	return string(AppendScaled(b, bi.Append(nil, 10), scale))
}

// AppendScaled appends the decimal digits of an unsigned integer with a
// decimal point scale places from the right ("150", 2 → "1.50"; "5", 3 →
// "0.005"); a negative scale appends zeros.
func AppendScaled(dst, digits []byte, scale int32) []byte {
	if scale <= 0 {
		dst = append(dst, digits...)
		for ; scale < 0; scale++ {
			dst = append(dst, '0')
		}
		return dst
	}
	s := int(scale)
	if len(digits) <= s {
		dst = append(dst, '0', '.')
		for k := len(digits); k < s; k++ {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = append(dst, digits[:len(digits)-s]...)
	dst = append(dst, '.')
	return append(dst, digits[len(digits)-s:]...)
}

// KeyOf returns the key of row i of rec; keyCols are the indexes of the key
// columns in rec.
func KeyOf(rec arrow.RecordBatch, keyCols []int, i int) Key {
	k := make(Key, len(keyCols))
	for j, c := range keyCols {
		v := ValueAt(rec.Column(c), i)
		switch x := v.(type) {
		case []byte:
			v = append([]byte(nil), x...) // outlive the batch
		case string:
			v = string([]byte(x))
		}
		k[j] = v
	}
	return k
}

// ColumnIndexes returns the indexes of names in schema, or an error naming the
// first column that is missing.
func ColumnIndexes(schema *arrow.Schema, names []string) ([]int, error) {
	out := make([]int, len(names))
	for i, n := range names {
		idx := schema.FieldIndices(n)
		if len(idx) == 0 {
			return nil, fmt.Errorf("column %q not found (columns: %v)", n, fieldNames(schema))
		}
		out[i] = idx[0]
	}
	return out, nil
}

func fieldNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

// CanonicalJSON re-encodes a JSON text with sorted object keys and no spaces,
// so texts that mean the same compare equal (PostgreSQL jsonb reformats).
func CanonicalJSON(s string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber() // keep big integers exact
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	return string(b), err
}
