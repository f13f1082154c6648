package mysql

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/datashift/datashift/connectors"
)

// A decoder appends one non-NULL driver value to its column's builder and
// returns the bytes it added (for BatchBytes). The driver hands the text
// protocol's values over as int64/uint64/float64 for numbers and as []byte
// slices of its read buffer for the rest; they are copied into the builder
// and never retained.
type decoder func(v driver.Value) (int, error)

// newDecoder returns the decoder of column c into builder b.
func newDecoder(c *column, b array.Builder) decoder {
	switch c.kind {
	case kInt, kYear:
		switch bb := b.(type) {
		case *array.Int8Builder:
			return func(v driver.Value) (int, error) {
				n, err := asInt(v, math.MinInt8, math.MaxInt8)
				bb.Append(int8(n))
				return 1, err
			}
		case *array.Int16Builder:
			return func(v driver.Value) (int, error) {
				n, err := asInt(v, math.MinInt16, math.MaxInt16)
				bb.Append(int16(n))
				return 2, err
			}
		case *array.Int32Builder:
			return func(v driver.Value) (int, error) {
				n, err := asInt(v, math.MinInt32, math.MaxInt32)
				bb.Append(int32(n))
				return 4, err
			}
		case *array.Int64Builder:
			return func(v driver.Value) (int, error) {
				n, err := asInt(v, math.MinInt64, math.MaxInt64)
				bb.Append(n)
				return 8, err
			}
		}
	case kUint, kBit:
		switch bb := b.(type) {
		case *array.Uint8Builder:
			return func(v driver.Value) (int, error) {
				n, err := asUint(v, math.MaxUint8)
				bb.Append(uint8(n))
				return 1, err
			}
		case *array.Uint16Builder:
			return func(v driver.Value) (int, error) {
				n, err := asUint(v, math.MaxUint16)
				bb.Append(uint16(n))
				return 2, err
			}
		case *array.Uint32Builder:
			return func(v driver.Value) (int, error) {
				n, err := asUint(v, math.MaxUint32)
				bb.Append(uint32(n))
				return 4, err
			}
		case *array.Uint64Builder:
			return func(v driver.Value) (int, error) {
				n, err := asUint(v, math.MaxUint64)
				bb.Append(n)
				return 8, err
			}
		}
	case kBool:
		bb := b.(*array.BooleanBuilder)
		return func(v driver.Value) (int, error) {
			n, err := asBoolInt(v)
			if err != nil {
				bb.Append(false)
				return 1, err
			}
			if n != 0 && n != 1 {
				bb.Append(false)
				return 1, fmt.Errorf("value %d is not a boolean (0 or 1)", n)
			}
			bb.Append(n == 1)
			return 1, nil
		}
	case kFloat32:
		bb := b.(*array.Float32Builder)
		return func(v driver.Value) (int, error) {
			f, err := asFloat(v)
			bb.Append(float32(f))
			return 4, err
		}
	case kFloat64:
		bb := b.(*array.Float64Builder)
		return func(v driver.Value) (int, error) {
			f, err := asFloat(v)
			bb.Append(f)
			return 8, err
		}
	case kDecimal:
		bb := b.(*array.Decimal128Builder)
		prec, scale := int32(c.precision), int32(c.scale)
		return func(v driver.Value) (int, error) {
			raw, err := asBytes(v)
			if err != nil {
				bb.AppendNull()
				return 16, err
			}
			n, err := parseDecimal(raw, prec, scale)
			bb.Append(n)
			return 16, err
		}
	case kString, kNumeric, kJSON:
		bb := b.(*array.StringBuilder)
		return func(v driver.Value) (int, error) {
			raw, err := asBytes(v)
			if err != nil {
				bb.AppendNull()
				return 0, err
			}
			if !utf8.Valid(raw) {
				bb.AppendNull()
				return 0, errors.New("invalid UTF-8")
			}
			bb.BinaryBuilder.Append(raw) // no string conversion: copies the bytes once
			return len(raw) + 4, nil
		}
	case kBinary:
		bb := b.(*array.BinaryBuilder)
		return func(v driver.Value) (int, error) {
			raw, err := asBytes(v)
			bb.Append(raw)
			return len(raw) + 4, err
		}
	case kUUID:
		bb := b.(*array.FixedSizeBinaryBuilder)
		var u [16]byte
		return func(v driver.Value) (int, error) {
			raw, err := asBytes(v)
			if err == nil {
				err = parseUUID(raw, &u)
			}
			bb.Append(u[:])
			return 16, err
		}
	case kDate:
		bb := b.(*array.Date32Builder)
		return func(v driver.Value) (int, error) {
			d, err := asDate(v)
			bb.Append(arrow.Date32(d))
			return 4, err
		}
	case kDatetime, kTimestamp:
		bb := b.(*array.TimestampBuilder)
		return func(v driver.Value) (int, error) {
			us, err := asMicros(v)
			bb.Append(arrow.Timestamp(us))
			return 8, err
		}
	case kTime:
		bb := b.(*array.Time64Builder)
		return func(v driver.Value) (int, error) {
			raw, err := asBytes(v)
			var us int64
			if err == nil {
				us, err = parseTimeOfDay(raw)
			}
			bb.Append(arrow.Time64(us))
			return 8, err
		}
	}
	panic(fmt.Sprintf("mysql: no decoder for column %q (%s) into %T", c.name, c.sqlType, b))
}

// keyValue converts a driver value of key column c into the key value
// connectors.ValueAt would give for the Arrow array the column reads into.
func keyValue(c *column, v driver.Value) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.kind {
	case kInt, kYear:
		return asInt(v, math.MinInt64, math.MaxInt64)
	case kUint, kBit:
		return asUint(v, math.MaxUint64)
	case kBool:
		n, err := asBoolInt(v)
		return n != 0, err
	case kFloat32:
		f, err := asFloat(v)
		return float64(float32(f)), err
	case kFloat64:
		return asFloat(v)
	case kDecimal:
		raw, err := asBytes(v)
		if err != nil {
			return nil, err
		}
		n, err := parseDecimal(raw, int32(c.precision), int32(c.scale))
		return connectors.DecimalString(n, int32(c.scale)), err
	case kString, kNumeric, kJSON:
		raw, err := asBytes(v)
		return string(raw), err
	case kBinary:
		raw, err := asBytes(v)
		return append([]byte{}, raw...), err
	case kUUID:
		raw, err := asBytes(v)
		if err != nil {
			return nil, err
		}
		var u [16]byte
		err = parseUUID(raw, &u)
		return connectors.UUID(u), err
	case kDate:
		d, err := asDate(v)
		return time.Unix(int64(d)*86400, 0).UTC(), err
	case kDatetime, kTimestamp:
		us, err := asMicros(v)
		return time.UnixMicro(us).UTC(), err
	case kTime:
		raw, err := asBytes(v)
		if err != nil {
			return nil, err
		}
		us, err := parseTimeOfDay(raw)
		return time.Duration(us) * time.Microsecond, err
	}
	return nil, fmt.Errorf("no key value for column %q", c.name)
}

func asBytes(v driver.Value) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	}
	return nil, fmt.Errorf("unexpected driver value of type %T", v)
}

// bstr views b as a string for parsing; the parsers do not keep it.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func asInt(v driver.Value, lo, hi int64) (int64, error) {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("value %d out of range", x)
		}
		n = int64(x)
	case []byte:
		var err error
		if n, err = strconv.ParseInt(bstr(x), 10, 64); err != nil {
			return 0, fmt.Errorf("value %q is not an integer", x)
		}
	default:
		return 0, fmt.Errorf("unexpected driver value of type %T", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("value %d out of range", n)
	}
	return n, nil
}

func asUint(v driver.Value, hi uint64) (uint64, error) {
	var n uint64
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("value %d out of range", x)
		}
		n = uint64(x)
	case uint64:
		n = x
	case []byte:
		// BIT(n) arrives as big-endian bytes.
		if len(x) > 8 {
			return 0, fmt.Errorf("bit value of %d bytes", len(x))
		}
		for _, b := range x {
			n = n<<8 | uint64(b)
		}
	default:
		return 0, fmt.Errorf("unexpected driver value of type %T", v)
	}
	if n > hi {
		return 0, fmt.Errorf("value %d out of range", n)
	}
	return n, nil
}

func asBoolInt(v driver.Value) (int64, error) {
	if b, ok := v.([]byte); ok { // BIT(1)
		u, err := asUint(b, math.MaxUint64)
		return int64(u), err
	}
	return asInt(v, math.MinInt64, math.MaxInt64)
}

func asFloat(v driver.Value) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case []byte:
		f, err := strconv.ParseFloat(bstr(x), 64)
		if err != nil {
			return 0, fmt.Errorf("value %q is not a number", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("unexpected driver value of type %T", v)
}

func asDate(v driver.Value) (int32, error) {
	switch x := v.(type) {
	case []byte:
		return parseDate(x)
	case time.Time:
		return int32(x.Unix() / 86400), nil
	}
	return 0, fmt.Errorf("unexpected driver value of type %T", v)
}

func asMicros(v driver.Value) (int64, error) {
	switch x := v.(type) {
	case []byte:
		return parseDatetime(x)
	case time.Time:
		return x.UnixMicro(), nil
	}
	return 0, fmt.Errorf("unexpected driver value of type %T", v)
}

// digits parses b[i:j] as a decimal number, -1 if any byte is not a digit.
func digits(b []byte, i, j int) int {
	if j > len(b) || i >= j {
		return -1
	}
	n := 0
	for _, c := range b[i:j] {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

var errZeroDate = errors.New("zero date (or zero month/day) has no calendar value")

// parseDate parses YYYY-MM-DD into days since the epoch.
func parseDate(b []byte) (int32, error) {
	if len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return 0, fmt.Errorf("bad date %q", b)
	}
	y, m, d := digits(b, 0, 4), digits(b, 5, 7), digits(b, 8, 10)
	if y < 0 || m < 0 || d < 0 {
		return 0, fmt.Errorf("bad date %q", b)
	}
	if y == 0 && m == 0 && d == 0 || m == 0 || d == 0 {
		return 0, errZeroDate
	}
	if m > 12 || d > 31 {
		return 0, fmt.Errorf("bad date %q", b)
	}
	return int32(connectors.DaysFromCivil(int64(y), int64(m), int64(d))), nil
}

// parseDatetime parses YYYY-MM-DD[ HH:MM:SS[.ffffff]] into microseconds
// since the epoch (the text is UTC: the session time zone is +00:00).
func parseDatetime(b []byte) (int64, error) {
	days, err := parseDate(b)
	if err != nil {
		return 0, err
	}
	us := int64(days) * 86400e6
	if len(b) == 10 {
		return us, nil
	}
	if len(b) < 19 || (b[10] != ' ' && b[10] != 'T') || b[13] != ':' || b[16] != ':' {
		return 0, fmt.Errorf("bad datetime %q", b)
	}
	h, mi, s := digits(b, 11, 13), digits(b, 14, 16), digits(b, 17, 19)
	if h < 0 || mi < 0 || s < 0 || h > 23 || mi > 59 || s > 59 {
		return 0, fmt.Errorf("bad datetime %q", b)
	}
	frac, err := parseFraction(b[19:])
	if err != nil {
		return 0, fmt.Errorf("bad datetime %q", b)
	}
	return us + (int64(h)*3600+int64(mi)*60+int64(s))*1e6 + frac, nil
}

// parseFraction parses "" or ".f…" (up to 6 digits) into microseconds.
func parseFraction(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if b[0] != '.' || len(b) > 7 || len(b) == 1 {
		return 0, errors.New("bad fraction")
	}
	n := digits(b, 1, len(b))
	if n < 0 {
		return 0, errors.New("bad fraction")
	}
	for i := len(b) - 1; i < 6; i++ {
		n *= 10
	}
	return int64(n), nil
}

// parseTimeOfDay parses TIME text [-]H…:MM:SS[.ffffff] into microseconds.
// TIME spans -838:59:59 to 838:59:59; values outside a day keep their value.
func parseTimeOfDay(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	s := b
	if neg {
		s = b[1:]
	}
	c1 := -1
	for i, ch := range s {
		if ch == ':' {
			c1 = i
			break
		}
	}
	if c1 < 1 || len(s) < c1+6 || s[c1+3] != ':' {
		return 0, fmt.Errorf("bad time %q", b)
	}
	h, mi, sec := digits(s, 0, c1), digits(s, c1+1, c1+3), digits(s, c1+4, c1+6)
	if h < 0 || mi < 0 || sec < 0 {
		return 0, fmt.Errorf("bad time %q", b)
	}
	frac, err := parseFraction(s[c1+6:])
	if err != nil {
		return 0, fmt.Errorf("bad time %q", b)
	}
	us := (int64(h)*3600+int64(mi)*60+int64(sec))*1e6 + frac
	if neg {
		us = -us
	}
	return us, nil
}

// parseUUID parses the 36-character text form into u.
func parseUUID(b []byte, u *[16]byte) error {
	if len(b) != 36 || b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return fmt.Errorf("bad UUID %q", b)
	}
	j := 0
	for i := 0; i < 36; {
		if b[i] == '-' {
			i++
			continue
		}
		hi, ok1 := unhex(b[i])
		lo, ok2 := unhex(b[i+1])
		if !ok1 || !ok2 {
			return fmt.Errorf("bad UUID %q", b)
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

var ten = decimal128.FromU64(10)

// parseDecimal parses decimal text into a Decimal128 of the given scale. It
// refuses (rather than rounds) digits past the scale and values past the
// precision.
func parseDecimal(b []byte, prec, scale int32) (decimal128.Num, error) {
	s := b
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var (
		lo        uint64 // fast path while it fits
		n         decimal128.Num
		wide      bool
		nd        int32 // significant digits taken
		fracSeen  bool
		fracCount int32
		sawDigit  bool
	)
	push := func(d byte) {
		if !wide {
			if lo <= (math.MaxUint64-9)/10 {
				lo = lo*10 + uint64(d)
				return
			}
			wide = true
			n = decimal128.FromU64(lo)
		}
		n = n.Mul(ten).Add(decimal128.FromU64(uint64(d)))
	}
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			sawDigit = true
			if fracSeen {
				if fracCount == scale {
					if c != '0' {
						return decimal128.Num{}, fmt.Errorf("value %q has more than %d decimal places", b, scale)
					}
					continue
				}
				fracCount++
			}
			if nd > 0 || c != '0' {
				nd++
			}
			if nd > 38 {
				return decimal128.Num{}, fmt.Errorf("value %q has more than 38 digits", b)
			}
			push(c - '0')
		case c == '.' && !fracSeen:
			fracSeen = true
		default:
			return decimal128.Num{}, fmt.Errorf("value %q is not a decimal", b)
		}
	}
	if !sawDigit {
		return decimal128.Num{}, fmt.Errorf("value %q is not a decimal", b)
	}
	for ; fracCount < scale; fracCount++ {
		if nd > 0 {
			nd++
		}
		push(0)
	}
	if !wide {
		n = decimal128.FromU64(lo)
	}
	if nd > prec {
		return decimal128.Num{}, fmt.Errorf("value %q does not fit DECIMAL(%d,%d)", b, prec, scale)
	}
	if neg {
		n = n.Negate()
	}
	return n, nil
}

// appendDecimal appends the exact text of n at scale; the common case (it
// fits an int64) does not allocate.
func appendDecimal(dst []byte, n decimal128.Num, scale int32) []byte {
	if n.HighBits() == 0 && n.LowBits() <= math.MaxInt64 || n.HighBits() == -1 && n.LowBits() > math.MaxInt64 {
		v := int64(n.LowBits())
		neg := v < 0
		var u uint64
		if neg {
			u = uint64(-v)
			dst = append(dst, '-')
		} else {
			u = uint64(v)
		}
		var tmp [24]byte
		d := strconv.AppendUint(tmp[:0], u, 10)
		return connectors.AppendScaled(dst, d, scale)
	}
	bi := n.BigInt()
	if bi.Sign() < 0 {
		dst = append(dst, '-')
		bi.Abs(bi)
	}
	return connectors.AppendScaled(dst, bi.Append(nil, 10), scale)
}
