package postgres

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/datashift/datashift/connectors"
)

// The writer encodes a record batch column by column: each encoder first
// checks its column and adds every row's encoded field size to rowLen, then,
// once the rows' positions are known, writes its fields in place. A column's
// values are thus handled in one typed loop with no per-value interface call
// or boxing, although the binary COPY format is row-major.

// badValue is a value the target column cannot hold; the writer turns it
// into a connectors.ValueError with the row's key.
type badValue struct {
	row    int
	value  string
	reason string
}

func (b *badValue) Error() string { return b.reason }

type encoder interface {
	// size checks the values and adds 4 + the encoded length of each row's
	// field (4 for NULL) to rowLen.
	size(arr arrow.Array, rowLen []int) *badValue
	// write writes each row's field at buf[cursor[i]:] and advances cursor[i].
	write(arr arrow.Array, buf []byte, cursor []int)
}

// nullMask answers "is row i NULL" from the validity bitmap, without an
// interface call per row.
type nullMask struct {
	bits []byte
	off  int
}

func nullsOf(arr arrow.Array) nullMask {
	if arr.NullN() == 0 {
		return nullMask{}
	}
	return nullMask{bits: arr.NullBitmapBytes(), off: arr.Data().Offset()}
}

func (m nullMask) null(i int) bool {
	if m.bits == nil {
		return false
	}
	j := m.off + i
	return m.bits[j>>3]&(1<<(j&7)) == 0
}

// putNull writes a NULL field.
func putNull(buf []byte, cursor []int, i int) {
	binary.BigEndian.PutUint32(buf[cursor[i]:], 0xFFFFFFFF)
	cursor[i] += 4
}

// sizeFixed adds a fixed-width field to every row.
func sizeFixed(arr arrow.Array, rowLen []int, width int) {
	if arr.NullN() == 0 {
		for i := range rowLen {
			rowLen[i] += 4 + width
		}
		return
	}
	nm := nullsOf(arr)
	for i := range rowLen {
		if nm.null(i) {
			rowLen[i] += 4
		} else {
			rowLen[i] += 4 + width
		}
	}
}

type integer interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

func valuesOf[T any](arr arrow.Array) []T {
	return arr.(interface{ Values() []T }).Values()
}

// intEnc writes Arrow integers as int2, int4 or int8, checking the range
// only when the target is narrower than the source.
type intEnc[T integer] struct {
	width  int
	check  bool
	lo, hi int64
	target string
}

func newIntEnc[T integer](width int, target string) *intEnc[T] {
	e := &intEnc[T]{width: width, target: target}
	e.lo, e.hi = intRange(width)
	var zero T
	srcBits := int(8 * sizeofT(zero))
	signed := ^zero < 0
	switch {
	case signed:
		e.check = srcBits > 8*width
	default:
		e.check = srcBits >= 8*width
	}
	return e
}

func sizeofT[T integer](v T) uintptr {
	switch any(v).(type) {
	case int8, uint8:
		return 1
	case int16, uint16:
		return 2
	case int32, uint32:
		return 4
	}
	return 8
}

func intRange(width int) (int64, int64) {
	switch width {
	case 2:
		return math.MinInt16, math.MaxInt16
	case 4:
		return math.MinInt32, math.MaxInt32
	}
	return math.MinInt64, math.MaxInt64
}

func (e *intEnc[T]) size(arr arrow.Array, rowLen []int) *badValue {
	if e.check {
		vals := valuesOf[T](arr)
		var zero T
		signed := ^zero < 0
		for i, v := range vals {
			bad := false
			if signed {
				bad = int64(v) < e.lo || int64(v) > e.hi
			} else {
				bad = uint64(v) > uint64(e.hi)
			}
			if bad && !arr.IsNull(i) {
				return &badValue{row: i, value: fmt.Sprint(v), reason: "out of range for " + e.target}
			}
		}
	}
	sizeFixed(arr, rowLen, e.width)
	return nil
}

func (e *intEnc[T]) write(arr arrow.Array, buf []byte, cursor []int) {
	vals := valuesOf[T](arr)
	nm := nullsOf(arr)
	for i, v := range vals {
		if nm.null(i) {
			putNull(buf, cursor, i)
			continue
		}
		c := cursor[i]
		switch e.width {
		case 8:
			binary.BigEndian.PutUint32(buf[c:], 8)
			binary.BigEndian.PutUint64(buf[c+4:], uint64(int64(v)))
		case 4:
			binary.BigEndian.PutUint32(buf[c:], 4)
			binary.BigEndian.PutUint32(buf[c+4:], uint32(int32(v)))
		default:
			binary.BigEndian.PutUint32(buf[c:], 2)
			binary.BigEndian.PutUint16(buf[c+4:], uint16(int16(v)))
		}
		cursor[i] = c + 4 + e.width
	}
}

// int64Enc is intEnc[int64] into bigint, by far the most common pairing,
// without the generic checks.
type int64Enc struct{}

func (int64Enc) size(arr arrow.Array, rowLen []int) *badValue {
	sizeFixed(arr, rowLen, 8)
	return nil
}

func (int64Enc) write(arr arrow.Array, buf []byte, cursor []int) {
	vals := arr.(*array.Int64).Int64Values()
	nm := nullsOf(arr)
	for i, v := range vals {
		if nm.null(i) {
			putNull(buf, cursor, i)
			continue
		}
		c := cursor[i]
		b := buf[c : c+12]
		binary.BigEndian.PutUint32(b, 8)
		binary.BigEndian.PutUint64(b[4:], uint64(v))
		cursor[i] = c + 12
	}
}

// floatEnc writes float4/float8 from Arrow floats or integers, refusing a
// value the target cannot hold exactly.
type floatEnc[T integer | float32 | float64] struct {
	width  int
	check  bool
	target string
}

func (e *floatEnc[T]) size(arr arrow.Array, rowLen []int) *badValue {
	if e.check {
		for i, v := range valuesOf[T](arr) {
			if !e.exact(v) && !arr.IsNull(i) {
				return &badValue{row: i, value: fmt.Sprint(v), reason: "cannot be held exactly by " + e.target}
			}
		}
	}
	sizeFixed(arr, rowLen, e.width)
	return nil
}

// exact reports whether v survives the trip through the target float (NaN
// counts as surviving).
func (e *floatEnc[T]) exact(v T) bool {
	if e.width == 4 {
		f := float32(v)
		return f != f || T(f) == v
	}
	f := float64(v)
	return f != f || T(f) == v
}

func (e *floatEnc[T]) write(arr arrow.Array, buf []byte, cursor []int) {
	nm := nullsOf(arr)
	for i, v := range valuesOf[T](arr) {
		if nm.null(i) {
			putNull(buf, cursor, i)
			continue
		}
		c := cursor[i]
		if e.width == 8 {
			binary.BigEndian.PutUint32(buf[c:], 8)
			binary.BigEndian.PutUint64(buf[c+4:], math.Float64bits(float64(v)))
		} else {
			binary.BigEndian.PutUint32(buf[c:], 4)
			binary.BigEndian.PutUint32(buf[c+4:], math.Float32bits(float32(v)))
		}
		cursor[i] = c + 4 + e.width
	}
}

type boolEnc struct{}

func (boolEnc) size(arr arrow.Array, rowLen []int) *badValue {
	sizeFixed(arr, rowLen, 1)
	return nil
}

func (boolEnc) write(arr arrow.Array, buf []byte, cursor []int) {
	a := arr.(*array.Boolean)
	nm := nullsOf(arr)
	for i := 0; i < a.Len(); i++ {
		if nm.null(i) {
			putNull(buf, cursor, i)
			continue
		}
		c := cursor[i]
		binary.BigEndian.PutUint32(buf[c:], 1)
		buf[c+4] = 0
		if a.Value(i) {
			buf[c+4] = 1
		}
		cursor[i] = c + 5
	}
}

// varBytes gives the offsets and data of String/Binary arrays (32-bit
// offsets) and their Large variants.
type varBytes struct {
	offs32 []int32
	offs64 []int64
	data   []byte
}

func varBytesOf(arr arrow.Array) varBytes {
	switch a := arr.(type) {
	case *array.String:
		return varBytes{offs32: a.ValueOffsets(), data: a.ValueBytes()}
	case *array.Binary:
		return varBytes{offs32: a.ValueOffsets(), data: a.ValueBytes()}
	case *array.LargeString:
		return varBytes{offs64: a.ValueOffsets(), data: a.ValueBytes()}
	case *array.LargeBinary:
		return varBytes{offs64: a.ValueOffsets(), data: a.ValueBytes()}
	}
	panic(fmt.Sprintf("postgres: no byte values in %s", arr.DataType()))
}

func (v *varBytes) rows() int {
	if v.offs32 != nil {
		return len(v.offs32) - 1
	}
	return len(v.offs64) - 1
}

// start is where row i's bytes begin in data.
func (v *varBytes) start(i int) int {
	if v.offs32 != nil {
		return int(v.offs32[i] - v.offs32[0])
	}
	return int(v.offs64[i] - v.offs64[0])
}

func (v *varBytes) len(i int) int {
	if v.offs32 != nil {
		return int(v.offs32[i+1] - v.offs32[i])
	}
	return int(v.offs64[i+1] - v.offs64[i])
}

// value returns row i's bytes (offsets are absolute; ValueBytes starts at the
// first row's offset).
func (v *varBytes) value(i int) []byte {
	if v.offs32 != nil {
		base := v.offs32[0]
		return v.data[v.offs32[i]-base : v.offs32[i+1]-base]
	}
	base := v.offs64[0]
	return v.data[v.offs64[i]-base : v.offs64[i+1]-base]
}

// bytesEnc writes strings and binaries as text, varchar, bytea, json or
// jsonb (prefix 1), checking what the target requires of them.
type bytesEnc struct {
	prefix bool // jsonb version byte
	text   bool // must be valid UTF-8 with no NUL
	maxLen int  // varchar(n)/char(n): at most n characters
	bpchar bool
	json   bool
	target string
}

func (e *bytesEnc) size(arr arrow.Array, rowLen []int) *badValue {
	vb := varBytesOf(arr)
	extra := 4
	if e.prefix {
		extra = 5
	}
	nm := nullsOf(arr)
	if !e.text || !e.json && e.maxLen == 0 && vb.validText() {
		for i := range rowLen {
			if nm.null(i) {
				rowLen[i] += 4
			} else {
				rowLen[i] += extra + vb.len(i)
			}
		}
		return nil
	}
	// Some check failed on the whole column, or every value needs one:
	// find the row.
	for i := range rowLen {
		if nm.null(i) {
			rowLen[i] += 4
			continue
		}
		v := vb.value(i)
		if !utf8.Valid(v) {
			return &badValue{row: i, value: shortBytes(v), reason: "is not valid UTF-8, which " + e.target + " requires"}
		}
		if bytes.IndexByte(v, 0) >= 0 {
			return &badValue{row: i, value: shortBytes(v), reason: "holds a NUL byte, which PostgreSQL text cannot"}
		}
		if e.maxLen > 0 {
			s := v
			if e.bpchar {
				s = bytes.TrimRight(s, " ")
			}
			if n := utf8.RuneCount(s); n > e.maxLen {
				return &badValue{row: i, value: shortBytes(v), reason: fmt.Sprintf("has %d characters, more than %s allows", n, e.target)}
			}
		}
		if e.json && !json.Valid(v) {
			return &badValue{row: i, value: shortBytes(v), reason: "is not valid JSON"}
		}
		rowLen[i] += extra + len(v)
	}
	return nil
}

// validText checks every value of the column at once: the data is valid
// UTF-8 with no NUL, and every value starts on a character boundary (valid
// bytes could otherwise split a character between two values). NULL slots
// are checked too, which can only make it answer no.
func (v *varBytes) validText() bool {
	if !utf8.Valid(v.data) || bytes.IndexByte(v.data, 0) >= 0 {
		return false
	}
	n := v.rows()
	for i := 0; i < n; i++ {
		if s := v.start(i); s < len(v.data) && v.data[s]&0xC0 == 0x80 {
			return false
		}
	}
	return true
}

func (e *bytesEnc) write(arr arrow.Array, buf []byte, cursor []int) {
	vb := varBytesOf(arr)
	nm := nullsOf(arr)
	n := arr.Len()
	for i := 0; i < n; i++ {
		if nm.null(i) {
			putNull(buf, cursor, i)
			continue
		}
		v := vb.value(i)
		c := cursor[i]
		if e.prefix {
			binary.BigEndian.PutUint32(buf[c:], uint32(len(v)+1))
			buf[c+4] = 1
			c++
		} else {
			binary.BigEndian.PutUint32(buf[c:], uint32(len(v)))
		}
		cursor[i] = c + 4 + copy(buf[c+4:], v)
	}
}

func shortBytes(v []byte) string {
	if len(v) > 40 {
		return strconv.Quote(string(v[:40])) + "…"
	}
	return strconv.Quote(string(v))
}

// fixedBinEnc writes FixedSizeBinary values as they are (uuid, bytea).
type fixedBinEnc struct {
	width int
}

func (e *fixedBinEnc) size(arr arrow.Array, rowLen []int) *badValue {
	sizeFixed(arr, rowLen, e.width)
	return nil
}

func (e *fixedBinEnc) write(arr arrow.Array, buf []byte, cursor []int) {
	a := arr.(*array.FixedSizeBinary)
	nm := nullsOf(arr)
	for i := 0; i < a.Len(); i++ {
		if nm.null(i) {
			putNull(buf, cursor, i)
			continue
		}
		c := cursor[i]
		binary.BigEndian.PutUint32(buf[c:], uint32(e.width))
		copy(buf[c+4:], a.Value(i))
		cursor[i] = c + 4 + e.width
	}
}

// PostgreSQL's limits, in its own epoch (2000-01-01).
const (
	pgMinTimestamp = -211813488000000000 // 4714-11-24 00:00 BC
	pgEndTimestamp = 9223371331200000000 // 294277-01-01, exclusive
	pgMinDate      = -2451545            // 4714-11-24 BC
	pgEndDate      = 2145031949          // exclusive
	usPerDay       = 86400_000_000
)

// timeEnc writes dates, timestamps and times from Arrow's temporal types,
// converting units and epochs with overflow and precision checks.
type timeEnc struct {
	src    arrow.DataType
	dst    kind // kDate, kTimestamp or kTime
	target string
	// step is 10^(6-p) for a timestamp(p) or time(p) target with p < 6,
	// which PostgreSQL would round to: a value off the step is refused.
	step int64
	out  []int64 // converted values of the current batch
}

// newTimeEnc is the encoder from an Arrow temporal type into column t.
func newTimeEnc(src arrow.DataType, t *column, target string) *timeEnc {
	e := &timeEnc{src: src, dst: t.kind(), target: target, step: 1}
	if e.dst != kDate && t.typmod >= 0 && t.typmod < 6 {
		for range 6 - t.typmod {
			e.step *= 10
		}
	}
	return e
}

// convert turns the batch's values into the target's integers (µs since
// 2000-01-01, days since 2000-01-01, or µs since midnight) in e.out.
func (e *timeEnc) convert(arr arrow.Array) *badValue {
	n := arr.Len()
	if cap(e.out) < n {
		e.out = make([]int64, n)
	}
	e.out = e.out[:n]
	switch a := arr.(type) {
	case *array.Timestamp:
		mul, div := int64(1), int64(1)
		switch e.src.(*arrow.TimestampType).Unit {
		case arrow.Second:
			mul = 1e6
		case arrow.Millisecond:
			mul = 1e3
		case arrow.Nanosecond:
			div = 1e3
		}
		return convertTimes(e, arr, a.Values(), mul, div)
	case *array.Date32:
		return convertTimes(e, arr, a.Values(), usPerDay, 1)
	case *array.Date64:
		return convertTimes(e, arr, a.Values(), 1e3, 1)
	case *array.Time64:
		if e.src.(*arrow.Time64Type).Unit == arrow.Nanosecond {
			return convertTimes(e, arr, a.Values(), 1, 1e3)
		}
		return convertTimes(e, arr, a.Values(), 1, 1)
	case *array.Time32:
		if e.src.(*arrow.Time32Type).Unit == arrow.Second {
			return convertTimes(e, arr, a.Values(), 1e6, 1)
		}
		return convertTimes(e, arr, a.Values(), 1e3, 1)
	}
	return &badValue{reason: "unsupported temporal type " + e.src.String()}
}

// convertTimes brings values to microseconds (×mul, ÷div exactly) and then
// to the target's epoch and range.
func convertTimes[T ~int32 | ~int64](e *timeEnc, arr arrow.Array, vals []T, mul, div int64) *badValue {
	nm := nullsOf(arr)
	out := e.out
	for i, raw := range vals {
		if nm.null(i) {
			continue
		}
		v := int64(raw)
		if div > 1 {
			if v%div != 0 {
				return &badValue{row: i, value: e.show(arr, i), reason: "has sub-microsecond precision, which " + e.target + " would lose"}
			}
			v /= div
		}
		if mul > 1 {
			if v > math.MaxInt64/mul || v < math.MinInt64/mul {
				return &badValue{row: i, value: e.show(arr, i), reason: "is out of range for " + e.target}
			}
			v *= mul
		}
		if e.step > 1 && v%e.step != 0 {
			return &badValue{row: i, value: e.show(arr, i), reason: "has more fractional digits than " + e.target + " keeps"}
		}
		switch e.dst {
		case kTimestamp:
			if v < pgMinTimestamp+pgEpochMicros || v-pgEpochMicros >= pgEndTimestamp {
				return &badValue{row: i, value: e.show(arr, i), reason: "is out of range for " + e.target}
			}
			v -= pgEpochMicros
		case kDate:
			if v%usPerDay != 0 {
				return &badValue{row: i, value: e.show(arr, i), reason: "is not midnight; " + e.target + " would drop the time"}
			}
			d := v/usPerDay - pgEpochDays
			if d < pgMinDate || d >= pgEndDate {
				return &badValue{row: i, value: e.show(arr, i), reason: "is out of range for " + e.target}
			}
			v = d
		case kTime:
			if v < 0 || v > usPerDay {
				return &badValue{row: i, value: e.show(arr, i), reason: "is not a time of day"}
			}
		}
		out[i] = v
	}
	return nil
}

func (e *timeEnc) show(arr arrow.Array, i int) string {
	return fmt.Sprint(connectors.ValueAt(arr, i))
}

func (e *timeEnc) width() int {
	if e.dst == kDate {
		return 4
	}
	return 8
}

func (e *timeEnc) size(arr arrow.Array, rowLen []int) *badValue {
	if bad := e.convert(arr); bad != nil {
		return bad
	}
	sizeFixed(arr, rowLen, e.width())
	return nil
}

func (e *timeEnc) write(arr arrow.Array, buf []byte, cursor []int) {
	nm := nullsOf(arr)
	w := e.width()
	for i, v := range e.out {
		if nm.null(i) {
			putNull(buf, cursor, i)
			continue
		}
		c := cursor[i]
		binary.BigEndian.PutUint32(buf[c:], uint32(w))
		if w == 4 {
			binary.BigEndian.PutUint32(buf[c+4:], uint32(int32(v)))
		} else {
			binary.BigEndian.PutUint64(buf[c+4:], uint64(v))
		}
		cursor[i] = c + 4 + w
	}
}

// scratchEnc is the general path: conv encodes each value into a scratch
// buffer during size, write copies it out. Used for numeric, for values
// parsed from text and for values formatted as text.
type scratchEnc struct {
	conv func(arr arrow.Array, i int, dst []byte) ([]byte, *badValue)
	buf  []byte
	offs []int
}

func (e *scratchEnc) size(arr arrow.Array, rowLen []int) *badValue {
	n := arr.Len()
	e.buf = e.buf[:0]
	if cap(e.offs) < n+1 {
		e.offs = make([]int, n+1)
	}
	e.offs = e.offs[:n+1]
	nm := nullsOf(arr)
	for i := 0; i < n; i++ {
		e.offs[i] = len(e.buf)
		if nm.null(i) {
			rowLen[i] += 4
			continue
		}
		var bad *badValue
		e.buf, bad = e.conv(arr, i, e.buf)
		if bad != nil {
			bad.row = i
			return bad
		}
		rowLen[i] += 4 + len(e.buf) - e.offs[i]
	}
	e.offs[n] = len(e.buf)
	return nil
}

func (e *scratchEnc) write(arr arrow.Array, buf []byte, cursor []int) {
	nm := nullsOf(arr)
	for i := 0; i < arr.Len(); i++ {
		if nm.null(i) {
			putNull(buf, cursor, i)
			continue
		}
		v := e.buf[e.offs[i]:e.offs[i+1]]
		c := cursor[i]
		binary.BigEndian.PutUint32(buf[c:], uint32(len(v)))
		cursor[i] = c + 4 + copy(buf[c+4:], v)
	}
}

// numericTarget describes a numeric column: constrained to (prec, scale) or
// not.
type numericTarget struct {
	constrained bool
	prec, scale int
	name        string
}

// encode appends the binary numeric of [-]int.frac after checking that it
// fits without rounding; dscale is the source's display scale.
func (t numericTarget) encode(dst []byte, neg bool, intD, fracD []byte, dscale int) ([]byte, *badValue) {
	for len(intD) > 0 && intD[0] == '0' {
		intD = intD[1:]
	}
	trimmed := fracD
	for len(trimmed) > 0 && trimmed[len(trimmed)-1] == '0' {
		trimmed = trimmed[:len(trimmed)-1]
	}
	if t.constrained {
		if len(trimmed) > t.scale {
			return dst, &badValue{reason: fmt.Sprintf("has more than %d digits after the decimal point, which %s would round", t.scale, t.name)}
		}
		if len(intD) > t.prec-t.scale {
			return dst, &badValue{reason: "does not fit " + t.name}
		}
		dscale = t.scale
	}
	if dscale > 0x3FFF {
		dscale = 0x3FFF
	}
	return appendNumeric(dst, neg, intD, trimmed, dscale), nil
}

// encodeSmall is encode for a decimal whose coefficient fits 64 bits and
// whose scale is at most 16, the common case, with integer arithmetic and no
// digit strings. ok is false when it does not apply.
func (t numericTarget) encodeSmall(dst []byte, n decimal128.Num, scale int) ([]byte, *badValue, bool) {
	neg := n.Sign() < 0
	if neg {
		n = n.Negate()
	}
	if n.HighBits() != 0 {
		return dst, nil, false
	}
	return t.encodeUint(dst, neg, n.LowBits(), scale)
}

// encodeUint encodes ±c × 10^-scale.
func (t numericTarget) encodeUint(dst []byte, neg bool, c uint64, scale int) ([]byte, *badValue, bool) {
	if scale < 0 || scale > 16 {
		return dst, nil, false
	}
	dscale := scale
	if t.constrained {
		if scale > t.scale {
			r := scale - t.scale
			if c%pow10u64[r] != 0 {
				return dst, &badValue{reason: fmt.Sprintf("has more than %d digits after the decimal point, which %s would round", t.scale, t.name)}, true
			}
			c /= pow10u64[r]
			scale = t.scale
		}
		if intDigits := t.prec - t.scale; intDigits < 20 && c/pow10u64[scale] >= pow10u64[intDigits] {
			return dst, &badValue{reason: "does not fit " + t.name}, true
		}
		dscale = t.scale
	}
	return appendNumericUint(dst, neg, c, scale, dscale), nil, true
}

func (t numericTarget) special(dst []byte, special string) ([]byte, *badValue) {
	switch special {
	case "NaN":
		return appendNumericSpecial(dst, numericNaN), nil
	case "Infinity", "-Infinity":
		if t.constrained {
			return dst, &badValue{reason: "is infinite, which " + t.name + " cannot hold"}
		}
		if special == "Infinity" {
			return appendNumericSpecial(dst, numericPInf), nil
		}
		return appendNumericSpecial(dst, numericNInf), nil
	}
	return dst, &badValue{reason: "is not a number"}
}

// newNumericEnc encodes Decimal128, integers, floats and decimal text into a
// numeric column.
func newNumericEnc(src arrow.DataType, t numericTarget) *scratchEnc {
	var digits, tmp []byte
	switch st := src.(type) {
	case *arrow.Decimal128Type:
		scale := int(st.Scale)
		return &scratchEnc{conv: func(arr arrow.Array, i int, dst []byte) ([]byte, *badValue) {
			n := arr.(*array.Decimal128).Value(i)
			if out, bad, ok := t.encodeSmall(dst, n, scale); ok {
				if bad != nil {
					bad.value = connectors.DecimalString(n, st.Scale)
				}
				return out, bad
			}
			digits = appendDecimalDigits(digits[:0], n)
			s := scale
			for ; s < 0; s++ {
				digits = append(digits, '0')
			}
			d := digits
			if len(d) <= s { // 0.05 at scale 2 is "5": pad to "005"
				tmp = tmp[:0]
				for k := len(d); k <= s; k++ {
					tmp = append(tmp, '0')
				}
				d = append(tmp, d...)
				tmp = d
			}
			out, bad := t.encode(dst, n.Sign() < 0, d[:len(d)-s], d[len(d)-s:], s)
			if bad != nil {
				bad.value = connectors.DecimalString(n, st.Scale)
			}
			return out, bad
		}}
	case *arrow.StringType, *arrow.LargeStringType:
		return &scratchEnc{conv: func(arr arrow.Array, i int, dst []byte) ([]byte, *badValue) {
			v := stringAt(arr, i)
			neg, intD, fracD, special, err := splitDecimal(v, tmp)
			var out []byte
			var bad *badValue
			switch {
			case err != nil:
				out, bad = dst, &badValue{reason: "is not a decimal number"}
			case special != "":
				out, bad = t.special(dst, special)
			default:
				out, bad = t.encode(dst, neg, intD, fracD, len(fracD))
			}
			if bad != nil {
				bad.value = shortBytes(v)
			}
			return out, bad
		}}
	case *arrow.Float32Type, *arrow.Float64Type:
		bits := 64
		if src.ID() == arrow.FLOAT32 {
			bits = 32
		}
		return &scratchEnc{conv: func(arr arrow.Array, i int, dst []byte) ([]byte, *badValue) {
			var f float64
			if a, ok := arr.(*array.Float32); ok {
				f = float64(a.Value(i))
			} else {
				f = arr.(*array.Float64).Value(i)
			}
			var out []byte
			var bad *badValue
			switch {
			case math.IsNaN(f):
				out, bad = t.special(dst, "NaN")
			case math.IsInf(f, 1):
				out, bad = t.special(dst, "Infinity")
			case math.IsInf(f, -1):
				out, bad = t.special(dst, "-Infinity")
			default:
				// The shortest decimal that reads back as the same float.
				digits = strconv.AppendFloat(digits[:0], f, 'f', -1, bits)
				neg, intD, fracD, _, _ := splitDecimal(digits, tmp)
				out, bad = t.encode(dst, neg, intD, fracD, len(fracD))
			}
			if bad != nil {
				bad.value = strconv.FormatFloat(f, 'g', -1, bits)
			}
			return out, bad
		}}
	default: // integers
		return &scratchEnc{conv: func(arr arrow.Array, i int, dst []byte) ([]byte, *badValue) {
			neg, u := intAt(arr, i)
			if out, bad, ok := t.encodeUint(dst, neg, u, 0); ok {
				if bad != nil {
					bad.value = strconv.FormatUint(u, 10)
					if neg {
						bad.value = "-" + bad.value
					}
				}
				return out, bad
			}
			digits = strconv.AppendUint(digits[:0], u, 10)
			out, bad := t.encode(dst, neg, digits, nil, 0)
			if bad != nil {
				bad.value = string(digits)
				if neg {
					bad.value = "-" + bad.value
				}
			}
			return out, bad
		}}
	}
}

// intAt returns the sign and magnitude of an integer array's row i.
func intAt(arr arrow.Array, i int) (neg bool, u uint64) {
	var v int64
	switch a := arr.(type) {
	case *array.Uint64:
		return false, a.Value(i)
	case *array.Uint32:
		return false, uint64(a.Value(i))
	case *array.Uint16:
		return false, uint64(a.Value(i))
	case *array.Uint8:
		return false, uint64(a.Value(i))
	case *array.Int64:
		v = a.Value(i)
	case *array.Int32:
		v = int64(a.Value(i))
	case *array.Int16:
		v = int64(a.Value(i))
	case *array.Int8:
		v = int64(a.Value(i))
	}
	if v < 0 {
		return true, uint64(-(v + 1)) + 1 // no overflow at MinInt64
	}
	return false, uint64(v)
}

// appendDecimalDigits appends the digits of |n|.
func appendDecimalDigits(dst []byte, n decimal128.Num) []byte {
	if n.Sign() < 0 {
		n = n.Negate()
	}
	if n.HighBits() == 0 {
		return strconv.AppendUint(dst, n.LowBits(), 10)
	}
	return n.BigInt().Append(dst, 10)
}

// stringAt returns row i's bytes without copying.
func stringAt(arr arrow.Array, i int) []byte {
	switch a := arr.(type) {
	case *array.String:
		offs, data := a.ValueOffsets(), a.ValueBytes()
		return data[offs[i]-offs[0] : offs[i+1]-offs[0]]
	case *array.LargeString:
		offs, data := a.ValueOffsets(), a.ValueBytes()
		return data[offs[i]-offs[0] : offs[i+1]-offs[0]]
	case *array.Binary:
		return a.Value(i)
	case *array.LargeBinary:
		return a.Value(i)
	}
	return nil
}

// parseEnc parses text values into a fixed-width binary target (int, float,
// bool, uuid, date, timestamp, time): the path for sources that carry these
// as strings (CSV, SQLite).
func parseEnc(dst kind, target string) *scratchEnc {
	return &scratchEnc{conv: func(arr arrow.Array, i int, out []byte) ([]byte, *badValue) {
		s := strings.TrimSpace(string(stringAt(arr, i)))
		bad := func(why string) ([]byte, *badValue) {
			return out, &badValue{value: strconv.Quote(s), reason: why + " for " + target}
		}
		switch dst {
		case kInt16, kInt32, kInt64:
			width := map[kind]int{kInt16: 16, kInt32: 32, kInt64: 64}[dst]
			v, err := strconv.ParseInt(s, 10, width)
			if err != nil {
				return bad("is not a valid integer")
			}
			switch dst {
			case kInt16:
				return binary.BigEndian.AppendUint16(out, uint16(v)), nil
			case kInt32:
				return binary.BigEndian.AppendUint32(out, uint32(v)), nil
			}
			return binary.BigEndian.AppendUint64(out, uint64(v)), nil
		case kFloat32:
			v, err := strconv.ParseFloat(s, 32)
			if err != nil {
				return bad("is not a valid number")
			}
			return binary.BigEndian.AppendUint32(out, math.Float32bits(float32(v))), nil
		case kFloat64:
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return bad("is not a valid number")
			}
			return binary.BigEndian.AppendUint64(out, math.Float64bits(v)), nil
		case kBool:
			switch strings.ToLower(s) {
			case "t", "true", "1", "yes", "y", "on":
				return append(out, 1), nil
			case "f", "false", "0", "no", "n", "off":
				return append(out, 0), nil
			}
			return bad("is not a valid boolean")
		case kUUID:
			u, err := connectors.ParseUUID(s)
			if err != nil {
				return bad("is not a valid UUID")
			}
			return append(out, u[:]...), nil
		case kDate:
			t, err := time.Parse("2006-01-02", s)
			if err != nil {
				return bad("is not a valid date (YYYY-MM-DD)")
			}
			return binary.BigEndian.AppendUint32(out, uint32(int32(t.Unix()/86400-pgEpochDays))), nil
		case kTimestamp:
			t, ok := parseTimestamp(s)
			if !ok {
				return bad("is not a valid timestamp")
			}
			return binary.BigEndian.AppendUint64(out, uint64(t.UnixMicro()-pgEpochMicros)), nil
		case kTime:
			t, err := time.Parse("15:04:05.999999", s)
			if err != nil {
				return bad("is not a valid time of day")
			}
			us := int64(t.Hour())*3600e6 + int64(t.Minute())*60e6 + int64(t.Second())*1e6 + int64(t.Nanosecond()/1000)
			return binary.BigEndian.AppendUint64(out, uint64(us)), nil
		}
		return bad("cannot be parsed")
	}}
}

// parseTimestamp reads the ISO forms other stores print; a time without a
// zone is taken as UTC wall clock (TYPES.md).
func parseTimestamp(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07",
		"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// textEnc formats any value as text (for text columns fed from non-string
// Arrow types).
func textEnc(src arrow.DataType) *scratchEnc {
	return &scratchEnc{conv: func(arr arrow.Array, i int, out []byte) ([]byte, *badValue) {
		switch v := connectors.ValueAt(arr, i).(type) {
		case int64:
			return strconv.AppendInt(out, v, 10), nil
		case uint64:
			return strconv.AppendUint(out, v, 10), nil
		case float64:
			return strconv.AppendFloat(out, v, 'g', -1, 64), nil
		case bool:
			return strconv.AppendBool(out, v), nil
		case string:
			return append(out, v...), nil
		case connectors.UUID:
			return append(out, v.String()...), nil
		case time.Time:
			switch src.ID() {
			case arrow.DATE32, arrow.DATE64:
				return v.AppendFormat(out, "2006-01-02"), nil
			}
			if ts, ok := src.(*arrow.TimestampType); ok && ts.TimeZone == "" {
				return v.AppendFormat(out, "2006-01-02 15:04:05.999999"), nil
			}
			return v.AppendFormat(out, time.RFC3339Nano), nil
		case time.Duration:
			return append(out, timeOfDay(v)...), nil
		}
		return out, &badValue{reason: "has no text form"}
	}}
}

// newEncoder picks how Arrow field f is written into target column t, or
// says why it cannot be.
func newEncoder(f arrow.Field, t *column) (encoder, error) {
	k := t.kind()
	target := t.sqlType
	cannot := func() (encoder, error) {
		return nil, fmt.Errorf("column %q: cannot write Arrow %s into %s", f.Name, f.Type, t.sqlType)
	}
	id := f.Type.ID()
	isString := id == arrow.STRING || id == arrow.LARGE_STRING
	isBinary := id == arrow.BINARY || id == arrow.LARGE_BINARY
	switch k {
	case kInt16, kInt32, kInt64:
		width := map[kind]int{kInt16: 2, kInt32: 4, kInt64: 8}[k]
		switch id {
		case arrow.INT64:
			if width == 8 {
				return int64Enc{}, nil
			}
			return newIntEnc[int64](width, target), nil
		case arrow.INT32:
			return newIntEnc[int32](width, target), nil
		case arrow.INT16:
			return newIntEnc[int16](width, target), nil
		case arrow.INT8:
			return newIntEnc[int8](width, target), nil
		case arrow.UINT64:
			return newIntEnc[uint64](width, target), nil
		case arrow.UINT32:
			return newIntEnc[uint32](width, target), nil
		case arrow.UINT16:
			return newIntEnc[uint16](width, target), nil
		case arrow.UINT8:
			return newIntEnc[uint8](width, target), nil
		case arrow.STRING, arrow.LARGE_STRING:
			return parseEnc(k, target), nil
		}
	case kFloat32, kFloat64:
		width := 8
		if k == kFloat32 {
			width = 4
		}
		switch id {
		case arrow.FLOAT64:
			return &floatEnc[float64]{width: width, check: width == 4, target: target}, nil
		case arrow.FLOAT32:
			return &floatEnc[float32]{width: width, target: target}, nil
		case arrow.INT64:
			return &floatEnc[int64]{width: width, check: true, target: target}, nil
		case arrow.INT32:
			return &floatEnc[int32]{width: width, check: width == 4, target: target}, nil
		case arrow.INT16:
			return &floatEnc[int16]{width: width, target: target}, nil
		case arrow.INT8:
			return &floatEnc[int8]{width: width, target: target}, nil
		case arrow.UINT64:
			return &floatEnc[uint64]{width: width, check: true, target: target}, nil
		case arrow.UINT32:
			return &floatEnc[uint32]{width: width, check: width == 4, target: target}, nil
		case arrow.UINT16:
			return &floatEnc[uint16]{width: width, target: target}, nil
		case arrow.UINT8:
			return &floatEnc[uint8]{width: width, target: target}, nil
		case arrow.STRING, arrow.LARGE_STRING:
			return parseEnc(k, target), nil
		}
	case kBool:
		switch {
		case id == arrow.BOOL:
			return boolEnc{}, nil
		case isString:
			return parseEnc(k, target), nil
		}
	case kDecimal, kNumeric:
		p, s, ok := numericTypmod(t.typmod)
		nt := numericTarget{constrained: ok, prec: int(p), scale: int(s), name: target}
		switch id {
		case arrow.DECIMAL128, arrow.STRING, arrow.LARGE_STRING, arrow.FLOAT32, arrow.FLOAT64,
			arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
			return newNumericEnc(f.Type, nt), nil
		}
	case kText:
		switch {
		case isString:
			return &bytesEnc{text: true, maxLen: t.varcharLen(), bpchar: t.typeOID == oidBpchar, json: t.typeOID == oidJSON, target: target}, nil
		case isBinary:
			return nil, fmt.Errorf("column %q: cannot write binary data into %s", f.Name, target)
		case id == arrow.FIXED_SIZE_BINARY && f.Type.(*arrow.FixedSizeBinaryType).ByteWidth != 16:
			return cannot()
		}
		if (t.typeOID == oidText || t.typeOID == oidVarchar && t.varcharLen() == 0 || t.typName == "citext") && hasTextForm(f.Type) {
			return textEnc(f.Type), nil
		}
	case kJSONB:
		if isString {
			return &bytesEnc{prefix: true, text: true, json: true, target: target}, nil
		}
	case kBytea:
		switch {
		case isString || isBinary:
			return &bytesEnc{target: target}, nil
		case id == arrow.FIXED_SIZE_BINARY:
			return &fixedBinEnc{width: f.Type.(*arrow.FixedSizeBinaryType).ByteWidth}, nil
		}
	case kUUID:
		switch {
		case id == arrow.FIXED_SIZE_BINARY && f.Type.(*arrow.FixedSizeBinaryType).ByteWidth == 16:
			return &fixedBinEnc{width: 16}, nil
		case isString:
			return parseEnc(k, target), nil
		case isBinary:
			return &scratchEnc{conv: func(arr arrow.Array, i int, out []byte) ([]byte, *badValue) {
				v := stringAt(arr, i)
				if len(v) != 16 {
					return out, &badValue{value: shortBytes(v), reason: "is not 16 bytes, as uuid needs"}
				}
				return append(out, v...), nil
			}}, nil
		}
	case kDate, kTimestamp, kTime:
		switch id {
		case arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64:
			if k != kTime {
				return newTimeEnc(f.Type, t, target), nil
			}
		case arrow.TIME32, arrow.TIME64:
			if k == kTime {
				return newTimeEnc(f.Type, t, target), nil
			}
		case arrow.STRING, arrow.LARGE_STRING:
			return parseEnc(k, target), nil
		}
	case kCast:
		// Written as text into a staging table and cast by the server.
		if isString {
			return &bytesEnc{text: true, target: "text"}, nil
		}
		if hasTextForm(f.Type) {
			return textEnc(f.Type), nil
		}
	}
	return cannot()
}

// hasTextForm reports whether textEnc can format values of type dt (the
// plain values of connectors.ValueAt, not nested types).
func hasTextForm(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL, arrow.DECIMAL128, arrow.DATE32, arrow.DATE64,
		arrow.TIMESTAMP, arrow.TIME32, arrow.TIME64, arrow.STRING, arrow.LARGE_STRING:
		return true
	case arrow.FIXED_SIZE_BINARY:
		return dt.(*arrow.FixedSizeBinaryType).ByteWidth == 16
	}
	return false
}
