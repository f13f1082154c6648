// Package textform is the text form of Arrow values that text sinks (CSV,
// Redis hashes) write and the CSV source parses back, so one value has one
// spelling everywhere:
//
//	integers        decimal digits                     -12
//	floats          shortest exact form (strconv 'g')  0.1, 1e+21, NaN, +Inf
//	booleans        true / false
//	Decimal128      exact, with the column's scale     12.3400
//	string, json, numeric   the text itself
//	binary          base64 (standard, padded) or hex, by option
//	uuid            canonical lowercase                0190c4b8-…
//	Date32          2006-01-02
//	Timestamp "UTC" RFC 3339, microseconds, Z          2024-02-29T23:59:59.123456Z
//	Timestamp       the wall clock, RFC 3339 form with no offset: 2024-02-29T23:59:59.123456
//	Time64          15:04:05.000000
//
// A timestamp with no zone is written without an offset so that reading it
// back gives the same wall clock, and a reader can tell the two kinds apart.
package textform

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/datashift/datashift/connectors"
)

// Binary says how bytes are spelled.
type Binary string

const (
	Base64 Binary = "base64"
	Hex    Binary = "hex"
	Raw    Binary = "raw" // the bytes themselves; only for binary-safe targets (Redis)
)

// ParseBinary checks an option value; empty means base64.
func ParseBinary(s string) (Binary, error) {
	switch Binary(strings.ToLower(s)) {
	case "", Base64:
		return Base64, nil
	case Hex:
		return Hex, nil
	case Raw:
		return Raw, nil
	}
	return "", fmt.Errorf("binary encoding %q: want base64 or hex", s)
}

// Layouts of times. Timestamps are written with exactly six fractional
// digits (the microseconds every store keeps).
const (
	dateLayout   = "2006-01-02"
	tsLayout     = "2006-01-02T15:04:05.000000"
	tsZoneLayout = "2006-01-02T15:04:05.000000Z"
	timeLayout   = "15:04:05.000000"
)

// Formatter appends the text of row i of a column to dst. The row must not be
// NULL: the caller decides how a NULL is written.
type Formatter func(dst []byte, i int) []byte

// NewFormatter returns the formatter for column arr of field f, or an error
// naming the column when its type has no text form.
func NewFormatter(f arrow.Field, arr arrow.Array, bin Binary) (Formatter, error) {
	switch a := arr.(type) {
	case *array.Int8:
		return func(d []byte, i int) []byte { return strconv.AppendInt(d, int64(a.Value(i)), 10) }, nil
	case *array.Int16:
		return func(d []byte, i int) []byte { return strconv.AppendInt(d, int64(a.Value(i)), 10) }, nil
	case *array.Int32:
		return func(d []byte, i int) []byte { return strconv.AppendInt(d, int64(a.Value(i)), 10) }, nil
	case *array.Int64:
		return func(d []byte, i int) []byte { return strconv.AppendInt(d, a.Value(i), 10) }, nil
	case *array.Uint8:
		return func(d []byte, i int) []byte { return strconv.AppendUint(d, uint64(a.Value(i)), 10) }, nil
	case *array.Uint16:
		return func(d []byte, i int) []byte { return strconv.AppendUint(d, uint64(a.Value(i)), 10) }, nil
	case *array.Uint32:
		return func(d []byte, i int) []byte { return strconv.AppendUint(d, uint64(a.Value(i)), 10) }, nil
	case *array.Uint64:
		return func(d []byte, i int) []byte { return strconv.AppendUint(d, a.Value(i), 10) }, nil
	case *array.Float32:
		return func(d []byte, i int) []byte { return appendFloat(d, float64(a.Value(i)), 32) }, nil
	case *array.Float64:
		return func(d []byte, i int) []byte { return appendFloat(d, a.Value(i), 64) }, nil
	case *array.Boolean:
		return func(d []byte, i int) []byte { return strconv.AppendBool(d, a.Value(i)) }, nil
	case *array.String:
		return func(d []byte, i int) []byte { return append(d, a.Value(i)...) }, nil
	case *array.LargeString:
		return func(d []byte, i int) []byte { return append(d, a.Value(i)...) }, nil
	case *array.Binary:
		return func(d []byte, i int) []byte { return appendBinary(d, a.Value(i), bin) }, nil
	case *array.LargeBinary:
		return func(d []byte, i int) []byte { return appendBinary(d, a.Value(i), bin) }, nil
	case *array.FixedSizeBinary:
		if connectors.Logical(f) == connectors.LogicalUUID && a.DataType().(*arrow.FixedSizeBinaryType).ByteWidth == 16 {
			return func(d []byte, i int) []byte {
				var u connectors.UUID
				copy(u[:], a.Value(i))
				return append(d, u.String()...)
			}, nil
		}
		return func(d []byte, i int) []byte { return appendBinary(d, a.Value(i), bin) }, nil
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		return func(d []byte, i int) []byte { return append(d, connectors.DecimalString(a.Value(i), scale)...) }, nil
	case *array.Date32:
		return func(d []byte, i int) []byte { return a.Value(i).ToTime().UTC().AppendFormat(d, dateLayout) }, nil
	case *array.Date64:
		return func(d []byte, i int) []byte { return a.Value(i).ToTime().UTC().AppendFormat(d, dateLayout) }, nil
	case *array.Timestamp:
		tt := a.DataType().(*arrow.TimestampType)
		layout := tsLayout
		if tt.TimeZone != "" {
			layout = tsZoneLayout // an instant: written in UTC whatever its zone
		}
		if tt.Unit == arrow.Nanosecond {
			layout = strings.Replace(layout, ".000000", ".000000000", 1) // keep every digit
		}
		return func(d []byte, i int) []byte { return a.Value(i).ToTime(tt.Unit).UTC().AppendFormat(d, layout) }, nil
	case *array.Time64:
		unit := a.DataType().(*arrow.Time64Type).Unit
		layout := timeLayout
		if unit == arrow.Nanosecond {
			layout = "15:04:05.000000000"
		}
		return func(d []byte, i int) []byte {
			return time.Unix(0, 0).UTC().Add(time.Duration(a.Value(i))*unit.Multiplier()).AppendFormat(d, layout)
		}, nil
	case *array.Time32:
		unit := a.DataType().(*arrow.Time32Type).Unit
		return func(d []byte, i int) []byte {
			return appendTimeOfDay(d, time.Duration(a.Value(i))*unit.Multiplier())
		}, nil
	}
	return nil, fmt.Errorf("column %q: type %s has no text form", f.Name, arr.DataType())
}

// CheckType reports whether a field's type has a text form, so sinks can
// refuse a schema at Prepare rather than at the first batch.
func CheckType(f arrow.Field) error {
	switch f.Type.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL, arrow.STRING, arrow.LARGE_STRING,
		arrow.BINARY, arrow.LARGE_BINARY, arrow.FIXED_SIZE_BINARY, arrow.DECIMAL128,
		arrow.DATE32, arrow.DATE64, arrow.TIMESTAMP, arrow.TIME32, arrow.TIME64:
		return nil
	}
	return fmt.Errorf("column %q: type %s has no text form", f.Name, f.Type)
}

func appendFloat(d []byte, v float64, bits int) []byte {
	if math.IsNaN(v) {
		return append(d, "NaN"...)
	}
	return strconv.AppendFloat(d, v, 'g', -1, bits)
}

func appendBinary(d, b []byte, bin Binary) []byte {
	switch bin {
	case Hex:
		return hex.AppendEncode(d, b)
	case Raw:
		return append(d, b...)
	}
	return base64.StdEncoding.AppendEncode(d, b)
}

func appendTimeOfDay(d []byte, t time.Duration) []byte {
	return time.Unix(0, 0).UTC().Add(t).AppendFormat(d, timeLayout)
}

// Parser appends the value spelled s to b, which is the builder of the
// parser's column.
type Parser func(b array.Builder, s string) error

// NewParser returns the parser of field f's type, the inverse of its
// Formatter; errors say what was expected but not the column: the caller
// knows the file, line and column.
func NewParser(f arrow.Field, bin Binary) (Parser, error) {
	switch t := f.Type.(type) {
	case *arrow.Int8Type:
		return intParser(8, func(b array.Builder, v int64) { b.(*array.Int8Builder).Append(int8(v)) }), nil
	case *arrow.Int16Type:
		return intParser(16, func(b array.Builder, v int64) { b.(*array.Int16Builder).Append(int16(v)) }), nil
	case *arrow.Int32Type:
		return intParser(32, func(b array.Builder, v int64) { b.(*array.Int32Builder).Append(int32(v)) }), nil
	case *arrow.Int64Type:
		return intParser(64, func(b array.Builder, v int64) { b.(*array.Int64Builder).Append(v) }), nil
	case *arrow.Uint8Type:
		return uintParser(8, func(b array.Builder, v uint64) { b.(*array.Uint8Builder).Append(uint8(v)) }), nil
	case *arrow.Uint16Type:
		return uintParser(16, func(b array.Builder, v uint64) { b.(*array.Uint16Builder).Append(uint16(v)) }), nil
	case *arrow.Uint32Type:
		return uintParser(32, func(b array.Builder, v uint64) { b.(*array.Uint32Builder).Append(uint32(v)) }), nil
	case *arrow.Uint64Type:
		return uintParser(64, func(b array.Builder, v uint64) { b.(*array.Uint64Builder).Append(v) }), nil
	case *arrow.Float32Type:
		return func(b array.Builder, s string) error {
			v, err := strconv.ParseFloat(s, 32)
			if err != nil {
				return fmt.Errorf("not a float32: %q", s)
			}
			b.(*array.Float32Builder).Append(float32(v))
			return nil
		}, nil
	case *arrow.Float64Type:
		return func(b array.Builder, s string) error {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("not a float64: %q", s)
			}
			b.(*array.Float64Builder).Append(v)
			return nil
		}, nil
	case *arrow.BooleanType:
		return func(b array.Builder, s string) error {
			v, err := ParseBool(s)
			if err != nil {
				return err
			}
			b.(*array.BooleanBuilder).Append(v)
			return nil
		}, nil
	case *arrow.StringType:
		return func(b array.Builder, s string) error { b.(*array.StringBuilder).Append(s); return nil }, nil
	case *arrow.LargeStringType:
		return func(b array.Builder, s string) error { b.(*array.LargeStringBuilder).Append(s); return nil }, nil
	case *arrow.BinaryType, *arrow.LargeBinaryType:
		return func(b array.Builder, s string) error {
			v, err := decodeBinary(s, bin)
			if err != nil {
				return err
			}
			b.(*array.BinaryBuilder).Append(v)
			return nil
		}, nil
	case *arrow.FixedSizeBinaryType:
		if connectors.Logical(f) == connectors.LogicalUUID && t.ByteWidth == 16 {
			return func(b array.Builder, s string) error {
				u, err := connectors.ParseUUID(s)
				if err != nil {
					return err
				}
				b.(*array.FixedSizeBinaryBuilder).Append(u[:])
				return nil
			}, nil
		}
		return func(b array.Builder, s string) error {
			v, err := decodeBinary(s, bin)
			if err != nil {
				return err
			}
			if len(v) != t.ByteWidth {
				return fmt.Errorf("%d bytes, want %d", len(v), t.ByteWidth)
			}
			b.(*array.FixedSizeBinaryBuilder).Append(v)
			return nil
		}, nil
	case *arrow.Decimal128Type:
		if t.Scale < 0 {
			return nil, fmt.Errorf("column %q: decimal with negative scale %d cannot be read from text", f.Name, t.Scale)
		}
		return func(b array.Builder, s string) error {
			n, err := ParseDecimal(s, t.Precision, t.Scale)
			if err != nil {
				return err
			}
			b.(*array.Decimal128Builder).Append(n)
			return nil
		}, nil
	case *arrow.Date32Type:
		return func(b array.Builder, s string) error {
			d, err := time.Parse(dateLayout, s)
			if err != nil {
				return fmt.Errorf("not a date (YYYY-MM-DD): %q", s)
			}
			b.(*array.Date32Builder).Append(arrow.Date32FromTime(d))
			return nil
		}, nil
	case *arrow.TimestampType:
		return func(b array.Builder, s string) error {
			ts, err := ParseTimestamp(s)
			if err != nil {
				return err
			}
			if int64(ts.Nanosecond())%int64(t.Unit.Multiplier()) != 0 {
				return fmt.Errorf("timestamp %q is finer than the column's unit (%s)", s, t.Unit)
			}
			v, err := arrow.TimestampFromTime(ts, t.Unit)
			if err != nil {
				return fmt.Errorf("timestamp %q out of range: %w", s, err)
			}
			b.(*array.TimestampBuilder).Append(v)
			return nil
		}, nil
	case *arrow.Time64Type:
		return func(b array.Builder, s string) error {
			d, err := ParseTimeOfDay(s)
			if err != nil {
				return err
			}
			if d%t.Unit.Multiplier() != 0 {
				return fmt.Errorf("time %q is finer than the column's unit (%s)", s, t.Unit)
			}
			b.(*array.Time64Builder).Append(arrow.Time64(d / t.Unit.Multiplier()))
			return nil
		}, nil
	}
	return nil, fmt.Errorf("column %q: type %s cannot be read from text", f.Name, f.Type)
}

func intParser(bits int, app func(array.Builder, int64)) Parser {
	return func(b array.Builder, s string) error {
		v, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return fmt.Errorf("not an int%d: %q", bits, s)
		}
		app(b, v)
		return nil
	}
}

func uintParser(bits int, app func(array.Builder, uint64)) Parser {
	return func(b array.Builder, s string) error {
		v, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			return fmt.Errorf("not a uint%d: %q", bits, s)
		}
		app(b, v)
		return nil
	}
}

// ParseBool accepts true/false, t/f, 1/0, yes/no in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "t", "1", "yes", "y":
		return true, nil
	case "false", "f", "0", "no", "n":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", s)
}

func decodeBinary(s string, bin Binary) ([]byte, error) {
	switch bin {
	case Hex:
		v, err := hex.DecodeString(strings.TrimPrefix(s, `\x`))
		if err != nil {
			return nil, fmt.Errorf("not hex: %q", short(s))
		}
		return v, nil
	case Raw:
		return []byte(s), nil
	}
	v, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64: %q", short(s))
	}
	return v, nil
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ParseDecimal parses decimal text exactly into a decimal128 of the given
// precision and scale; more fractional digits than the scale, or more
// digits than the precision, is an error, never a rounding.
func ParseDecimal(s string, prec, scale int32) (decimal128.Num, error) {
	t := strings.TrimSpace(s)
	neg := false
	switch {
	case strings.HasPrefix(t, "-"):
		neg, t = true, t[1:]
	case strings.HasPrefix(t, "+"):
		t = t[1:]
	}
	intPart, frac, _ := strings.Cut(t, ".")
	if intPart == "" && frac == "" || !allDigits(intPart) || !allDigits(frac) {
		return decimal128.Num{}, fmt.Errorf("not a decimal: %q", s)
	}
	if trimmed := strings.TrimRight(frac, "0"); int32(len(trimmed)) > scale {
		return decimal128.Num{}, fmt.Errorf("decimal %s has more than %d fractional digits", s, scale)
	}
	for int32(len(frac)) < scale {
		frac += "0"
	}
	frac = frac[:scale]
	digits := strings.TrimLeft(intPart+frac, "0")
	if int32(len(digits)) > prec {
		return decimal128.Num{}, fmt.Errorf("decimal %s does not fit decimal(%d,%d)", s, prec, scale)
	}
	bi, ok := new(big.Int).SetString("0"+digits, 10)
	if !ok {
		return decimal128.Num{}, fmt.Errorf("not a decimal: %q", s)
	}
	if neg {
		bi.Neg(bi)
	}
	return decimal128.FromBigInt(bi), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseTimestamp reads RFC 3339 text with or without an offset, with 'T' or
// a space between date and time and any fraction. Text with no offset is a
// wall clock and comes back in UTC; text with one is converted to UTC.
func ParseTimestamp(s string) (time.Time, error) {
	if len(s) >= 11 && s[10] == ' ' {
		s2 := []byte(s)
		s2[10] = 'T'
		s = string(s2)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("not a timestamp (RFC 3339): %q", s)
}

// HasOffset reports whether timestamp text names a zone ("Z" or ±hh:mm).
func HasOffset(s string) bool {
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		return true
	}
	if len(s) > 19 {
		tail := s[19:]
		return strings.ContainsAny(tail, "+-")
	}
	return false
}

// ParseTimeOfDay reads HH:MM:SS with an optional fraction.
func ParseTimeOfDay(s string) (time.Duration, error) {
	t, err := time.Parse("15:04:05.999999999", s)
	if err != nil {
		return 0, fmt.Errorf("not a time of day (HH:MM:SS[.ffffff]): %q", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
		time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond()), nil
}
