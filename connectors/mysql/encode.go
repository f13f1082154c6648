package mysql

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/datashift/datashift/connectors"
)

// format is how an encoder writes a value: a LOAD DATA field or an SQL literal.
type format int

const (
	fmtTSV format = iota // tab-separated, backslash-escaped, \N for NULL
	fmtSQL               // SQL literal for a multi-row INSERT
)

// An encodeFunc appends row i of its array (not NULL) to dst. It checks the
// value against the target column first: a value MariaDB would truncate,
// round or clip is an error here, before anything is sent, so it can name
// the row's key.
type encodeFunc func(dst []byte, i int) ([]byte, error)

// fieldTarget pairs an Arrow field of the batches with its target column.
type fieldTarget struct {
	field  arrow.Field
	target *column
	// viaVar: loaded through a user variable and converted in SET (text
	// into a non-utf8mb4 column, BIT, MySQL's JSON type).
	viaVar bool
}

// encoder returns the encodeFunc of arr (the column of ft in one batch).
func (ft *fieldTarget) encoder(arr arrow.Array, f format) (encodeFunc, error) {
	t := ft.target
	switch a := arr.(type) {
	case *array.Int8:
		return intEnc(t, func(i int) int64 { return int64(a.Value(i)) }), nil
	case *array.Int16:
		return intEnc(t, func(i int) int64 { return int64(a.Value(i)) }), nil
	case *array.Int32:
		return intEnc(t, func(i int) int64 { return int64(a.Value(i)) }), nil
	case *array.Int64:
		return intEnc(t, a.Value), nil
	case *array.Uint8:
		return uintEnc(t, func(i int) uint64 { return uint64(a.Value(i)) }), nil
	case *array.Uint16:
		return uintEnc(t, func(i int) uint64 { return uint64(a.Value(i)) }), nil
	case *array.Uint32:
		return uintEnc(t, func(i int) uint64 { return uint64(a.Value(i)) }), nil
	case *array.Uint64:
		return uintEnc(t, a.Value), nil
	case *array.Float32:
		return floatEnc(t, func(i int) float64 { return float64(a.Value(i)) }, 32), nil
	case *array.Float64:
		return floatEnc(t, a.Value, 64), nil
	case *array.Boolean:
		return func(dst []byte, i int) ([]byte, error) {
			if a.Value(i) {
				return append(dst, '1'), nil
			}
			return append(dst, '0'), nil
		}, nil
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		return func(dst []byte, i int) ([]byte, error) {
			start := len(dst)
			dst = appendDecimal(dst, a.Value(i), scale)
			return dst, fitsNumeric(dst[start:], t)
		}, nil
	case *array.String:
		return textEnc(ft, f, func(i int) []byte { return sbytes(a.Value(i)) }), nil
	case *array.LargeString:
		return textEnc(ft, f, func(i int) []byte { return sbytes(a.Value(i)) }), nil
	case *array.Binary:
		return textEnc(ft, f, a.Value), nil
	case *array.LargeBinary:
		return textEnc(ft, f, a.Value), nil
	case *array.FixedSizeBinary:
		if a.DataType().(*arrow.FixedSizeBinaryType).ByteWidth == 16 && connectors.Logical(ft.field) == connectors.LogicalUUID &&
			t.kind != kBinary {
			return func(dst []byte, i int) ([]byte, error) {
				var u connectors.UUID
				copy(u[:], a.Value(i))
				if f == fmtSQL {
					return append(append(append(dst, '\''), u.String()...), '\''), nil
				}
				return append(dst, u.String()...), nil
			}, nil
		}
		return textEnc(ft, f, a.Value), nil
	case *array.Date32:
		return dateEnc(t, f, func(i int) int64 { return int64(a.Value(i)) * 86400e6 }), nil
	case *array.Date64:
		return dateEnc(t, f, func(i int) int64 { return int64(a.Value(i)) * 1000 }), nil
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return timestampEnc(t, f, func(i int) (int64, bool) { return toMicros(int64(a.Value(i)), unit) }), nil
	case *array.Time64:
		unit := a.DataType().(*arrow.Time64Type).Unit
		return timeEnc(f, func(i int) (int64, bool) { return toMicros(int64(a.Value(i)), unit) }), nil
	case *array.Time32:
		unit := a.DataType().(*arrow.Time32Type).Unit
		return timeEnc(f, func(i int) (int64, bool) { return toMicros(int64(a.Value(i)), unit) }), nil
	}
	return nil, fmt.Errorf("column %q: Arrow type %s cannot be written to MariaDB", ft.field.Name, arr.DataType())
}

// sbytes views s as bytes without copying; the encoders only read them.
func sbytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// toMicros converts a value in unit to microseconds; ok is false when
// precision would be lost.
func toMicros(v int64, unit arrow.TimeUnit) (int64, bool) {
	switch unit {
	case arrow.Second:
		return v * 1e6, true
	case arrow.Millisecond:
		return v * 1e3, true
	case arrow.Nanosecond:
		return v / 1e3, v%1e3 == 0
	}
	return v, true
}

// intRange is the range of an integer target column.
func intRange(t *column) (lo int64, hi uint64, ok bool) {
	switch t.kind {
	case kInt, kYear:
		if t.kind == kYear {
			return 1901, 2155, true
		}
		switch t.dataType {
		case "tinyint":
			return math.MinInt8, math.MaxInt8, true
		case "smallint":
			return math.MinInt16, math.MaxInt16, true
		case "mediumint":
			return -1 << 23, 1<<23 - 1, true
		case "int", "integer":
			return math.MinInt32, math.MaxInt32, true
		}
		return math.MinInt64, math.MaxInt64, true
	case kUint:
		switch t.dataType {
		case "tinyint":
			return 0, math.MaxUint8, true
		case "smallint":
			return 0, math.MaxUint16, true
		case "mediumint":
			return 0, 1<<24 - 1, true
		case "int", "integer":
			return 0, math.MaxUint32, true
		}
		return 0, math.MaxUint64, true
	case kBool:
		return math.MinInt8, math.MaxInt8, true
	case kBit:
		if t.precision >= 64 {
			return 0, math.MaxUint64, true
		}
		return 0, 1<<uint(t.precision) - 1, true
	}
	return 0, 0, false
}

func outOfRange(t *column) error {
	return fmt.Errorf("out of range for %s", t.sqlType)
}

func intEnc(t *column, val func(int) int64) encodeFunc {
	lo, hi, ranged := intRange(t)
	dec := t.kind == kDecimal || t.kind == kNumeric
	return func(dst []byte, i int) ([]byte, error) {
		v := val(i)
		if ranged && (v < lo || v >= 0 && uint64(v) > hi) {
			return dst, outOfRange(t)
		}
		start := len(dst)
		dst = strconv.AppendInt(dst, v, 10)
		if dec {
			return dst, fitsNumeric(dst[start:], t)
		}
		return dst, fitsText(dst[start:], t)
	}
}

func uintEnc(t *column, val func(int) uint64) encodeFunc {
	lo, hi, ranged := intRange(t)
	_ = lo
	dec := t.kind == kDecimal || t.kind == kNumeric
	return func(dst []byte, i int) ([]byte, error) {
		v := val(i)
		if ranged && v > hi {
			return dst, outOfRange(t)
		}
		start := len(dst)
		dst = strconv.AppendUint(dst, v, 10)
		if dec {
			return dst, fitsNumeric(dst[start:], t)
		}
		return dst, fitsText(dst[start:], t)
	}
}

func floatEnc(t *column, val func(int) float64, bits int) encodeFunc {
	numeric := t.kind == kDecimal || t.kind == kNumeric
	_, _, integer := intRange(t)
	return func(dst []byte, i int) ([]byte, error) {
		v := val(i)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return dst, fmt.Errorf("%v cannot be stored in MariaDB", v)
		}
		start := len(dst)
		if numeric || integer {
			dst = strconv.AppendFloat(dst, v, 'f', -1, bits)
			return dst, fitsNumeric(dst[start:], t)
		}
		if t.kind == kFloat32 && bits == 64 && float64(float32(v)) != v {
			return dst, errors.New("does not fit FLOAT (single precision) without rounding")
		}
		// Shortest text of the value as a double, even for a float32: the
		// server parses a double and rounds it to FLOAT, and the float32
		// shortest text ("3.4028235e+38") can round past FLOAT's range.
		dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
		return dst, fitsText(dst[start:], t)
	}
}

// fitsNumeric checks decimal text against an integer or DECIMAL target.
func fitsNumeric(txt []byte, t *column) error {
	switch t.kind {
	case kDecimal, kNumeric:
		intPart, frac, _, err := decimalShape(txt)
		if err != nil {
			return err
		}
		if len(frac) > t.scale {
			return fmt.Errorf("has %d decimal places, column allows %d (%s); it would be rounded", len(frac), t.scale, t.sqlType)
		}
		if len(intPart) > t.precision-t.scale {
			return fmt.Errorf("has %d integer digits, %s allows %d", len(intPart), t.sqlType, t.precision-t.scale)
		}
	case kInt, kUint, kBool, kYear, kBit:
		intPart, frac, neg, err := decimalShape(txt)
		if err != nil || len(frac) > 0 {
			return fmt.Errorf("is not an integer, column is %s", t.sqlType)
		}
		lo, hi, _ := intRange(t)
		u, err := strconv.ParseUint(bstr(intPart), 10, 64)
		switch {
		case len(intPart) == 0:
		case err != nil:
			return outOfRange(t)
		case neg && (lo >= 0 || u > uint64(-(lo+1))+1):
			return outOfRange(t)
		case !neg && u > hi:
			return outOfRange(t)
		}
	default:
		return fitsText(txt, t)
	}
	return nil
}

// decimalShape splits decimal text into its integer digits without leading
// zeros ("" for zero) and its fractional digits without trailing zeros,
// without allocating.
func decimalShape(txt []byte) (intPart, frac []byte, neg bool, err error) {
	body := txt
	if len(body) > 0 && (body[0] == '-' || body[0] == '+') {
		neg = body[0] == '-'
		body = body[1:]
	}
	intPart = body
	for i, c := range body {
		if c == '.' {
			intPart, frac = body[:i], body[i+1:]
			break
		}
	}
	if len(intPart) == 0 && len(frac) == 0 {
		return nil, nil, false, fmt.Errorf("%q is not a number", txt)
	}
	for _, part := range [2][]byte{intPart, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return nil, nil, false, fmt.Errorf("%q is not a decimal number", txt)
			}
		}
	}
	for len(intPart) > 0 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	return intPart, frac, neg, nil
}

// fitsText checks a value's length against a char/varchar/text/blob target.
func fitsText(v []byte, t *column) error {
	switch t.kind {
	case kString, kJSON:
	case kBinary:
		if t.maxBytes > 0 && int64(len(v)) > t.maxBytes {
			return fmt.Errorf("%d bytes do not fit %s", len(v), t.sqlType)
		}
		return nil
	default:
		return nil
	}
	switch t.dataType {
	case "char", "varchar":
		if t.maxChars > 0 && int64(len(v)) > t.maxChars && int64(utf8.RuneCount(v)) > t.maxChars {
			return fmt.Errorf("%d characters do not fit %s", utf8.RuneCount(v), t.sqlType)
		}
	case "tinytext", "text", "mediumtext", "longtext":
		// Only utf8mb4 text stores exactly the bytes sent; others convert
		// and are checked by the server's warnings.
		if t.charset == "utf8mb4" && t.maxBytes > 0 && int64(len(v)) > t.maxBytes {
			return fmt.Errorf("%d bytes do not fit %s", len(v), t.sqlType)
		}
	}
	return nil
}

// textEnc encodes strings and byte strings, checking UTF-8, JSON, UUID and
// length against the target.
func textEnc(ft *fieldTarget, f format, val func(int) []byte) encodeFunc {
	t := ft.target
	textTarget := t.kind == kString || t.kind == kJSON || t.kind == kUUID
	checkUTF8 := textTarget || t.kind == kDate || t.kind == kDatetime || t.kind == kTimestamp || t.kind == kTime
	numeric := t.kind == kDecimal || t.kind == kNumeric || t.kind == kInt || t.kind == kUint || t.kind == kYear
	binary := t.kind == kBinary
	return func(dst []byte, i int) ([]byte, error) {
		v := val(i)
		switch {
		case checkUTF8 && !utf8.Valid(v):
			return dst, errors.New("invalid UTF-8 for a text column")
		case t.kind == kJSON && !json.Valid(v):
			return dst, errors.New("invalid JSON")
		case t.kind == kUUID:
			var u [16]byte
			if err := parseUUID(v, &u); err != nil {
				return dst, err
			}
		case numeric:
			if err := fitsNumeric(v, t); err != nil {
				return dst, err
			}
		default:
			if err := fitsText(v, t); err != nil {
				return dst, err
			}
		}
		if f == fmtSQL {
			if binary || !utf8.Valid(v) {
				return appendHexLiteral(dst, v), nil
			}
			return appendSQLString(dst, v), nil
		}
		return appendTSV(dst, v), nil
	}
}

// tsvEscape maps the bytes LOAD DATA must see escaped to their escape letter.
var tsvEscape = [256]byte{'\\': '\\', '\t': 't', '\n': 'n', '\r': 'r', 0: '0'}

// appendTSV appends v escaped for a LOAD DATA field (ESCAPED BY '\\').
func appendTSV(dst, v []byte) []byte {
	start := 0
	for i, c := range v {
		if e := tsvEscape[c]; e != 0 {
			dst = append(dst, v[start:i]...)
			dst = append(dst, '\\', e)
			start = i + 1
		}
	}
	return append(dst, v[start:]...)
}

// sqlEscape maps the bytes an SQL string literal must escape (the session
// runs without NO_BACKSLASH_ESCAPES, see sessionSQLMode).
var sqlEscape = [256]byte{'\\': '\\', '\'': '\'', '"': '"', '\n': 'n', '\r': 'r', 0: '0', 0x1a: 'Z'}

func appendSQLString(dst, v []byte) []byte {
	dst = append(dst, '\'')
	start := 0
	for i, c := range v {
		if e := sqlEscape[c]; e != 0 {
			dst = append(dst, v[start:i]...)
			dst = append(dst, '\\', e)
			start = i + 1
		}
	}
	dst = append(dst, v[start:]...)
	return append(dst, '\'')
}

func appendHexLiteral(dst, v []byte) []byte {
	const hexdigits = "0123456789abcdef"
	dst = append(dst, "X'"...)
	for _, c := range v {
		dst = append(dst, hexdigits[c>>4], hexdigits[c&15])
	}
	return append(dst, '\'')
}

// Value ranges of the temporal targets, in microseconds since the epoch.
var (
	minDatetime  = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxDatetime  = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() - 1
	minTimestamp = int64(1e6) // 1970-01-01 00:00:01 UTC
	maxTimestamp = time.Date(2038, 1, 19, 3, 14, 8, 0, time.UTC).UnixMicro() - 1
)

// checkInstant checks microseconds against a temporal target's range and
// fractional precision.
func checkInstant(us int64, t *column) error {
	switch t.kind {
	case kTimestamp:
		if us < minTimestamp || us > maxTimestamp {
			return fmt.Errorf("outside the TIMESTAMP range 1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC")
		}
	case kDatetime, kDate:
		if us < minDatetime || us > maxDatetime {
			return fmt.Errorf("outside the %s range of years 1 to 9999", t.sqlType)
		}
	default:
		return nil
	}
	if t.kind == kDate {
		if us%86400e6 != 0 {
			return errors.New("has a time of day, column is DATE")
		}
		return nil
	}
	if div := pow10[6-t.fsp]; us%div != 0 {
		return fmt.Errorf("has more fractional digits than %s keeps", t.sqlType)
	}
	return nil
}

var pow10 = [7]int64{1, 10, 100, 1000, 10000, 100000, 1000000}

func dateEnc(t *column, f format, val func(int) int64) encodeFunc {
	return func(dst []byte, i int) ([]byte, error) {
		us := val(i)
		if err := checkInstant(us, t); err != nil {
			return dst, err
		}
		if f == fmtSQL {
			dst = append(dst, '\'')
		}
		dst = appendDatetime(dst, us, false)
		if f == fmtSQL {
			dst = append(dst, '\'')
		}
		return dst, nil
	}
}

func timestampEnc(t *column, f format, val func(int) (int64, bool)) encodeFunc {
	return func(dst []byte, i int) ([]byte, error) {
		us, exact := val(i)
		if !exact {
			return dst, errors.New("has sub-microsecond precision")
		}
		if err := checkInstant(us, t); err != nil {
			return dst, err
		}
		if f == fmtSQL {
			dst = append(dst, '\'')
		}
		dst = appendDatetime(dst, us, true)
		if f == fmtSQL {
			dst = append(dst, '\'')
		}
		return dst, nil
	}
}

func timeEnc(f format, val func(int) (int64, bool)) encodeFunc {
	return func(dst []byte, i int) ([]byte, error) {
		us, exact := val(i)
		if !exact {
			return dst, errors.New("has sub-microsecond precision")
		}
		const limit = (838*3600 + 59*60 + 59) * 1e6
		if us > limit || us < -limit {
			return dst, errors.New("outside the TIME range -838:59:59 to 838:59:59")
		}
		if f == fmtSQL {
			dst = append(dst, '\'')
		}
		if us < 0 {
			dst = append(dst, '-')
			us = -us
		}
		secs := us / 1e6
		dst = strconv.AppendInt(dst, secs/3600, 10)
		dst = append(dst, ':')
		dst = append2(dst, int(secs/60%60))
		dst = append(dst, ':')
		dst = append2(dst, int(secs%60))
		dst = appendMicros(dst, us%1e6)
		if f == fmtSQL {
			dst = append(dst, '\'')
		}
		return dst, nil
	}
}

// appendDatetime writes 'YYYY-MM-DD[ HH:MM:SS.ffffff]' of microseconds since
// the epoch in UTC.
func appendDatetime(dst []byte, us int64, clock bool) []byte {
	t := time.UnixMicro(us).UTC()
	y, m, d := t.Date()
	dst = append4(dst, y)
	dst = append(dst, '-')
	dst = append2(dst, int(m))
	dst = append(dst, '-')
	dst = append2(dst, d)
	if !clock {
		return dst
	}
	h, mi, s := t.Clock()
	dst = append(dst, ' ')
	dst = append2(dst, h)
	dst = append(dst, ':')
	dst = append2(dst, mi)
	dst = append(dst, ':')
	dst = append2(dst, s)
	return appendMicros(dst, int64(t.Nanosecond()/1000))
}

func appendMicros(dst []byte, us int64) []byte {
	if us == 0 {
		return dst
	}
	return append(dst, '.',
		byte('0'+us/100000), byte('0'+us/10000%10), byte('0'+us/1000%10),
		byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10))
}

func append2(dst []byte, v int) []byte { return append(dst, byte('0'+v/10), byte('0'+v%10)) }

func append4(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}
