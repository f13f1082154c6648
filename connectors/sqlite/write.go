package sqlite

import (
	"fmt"
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/datashift/datashift/connectors"
)

// colWriter binds one Arrow column's values to statement parameters,
// converted to what the target column holds. Values are bound straight from
// the array (numbers) or formatted into the statement's C arena (text).
type colWriter struct {
	field  arrow.Field
	target *column

	// The array of the batch being written, under its concrete type.
	i8   *array.Int8
	i16  *array.Int16
	i32  *array.Int32
	i64  *array.Int64
	u8   *array.Uint8
	u16  *array.Uint16
	u32  *array.Uint32
	u64  *array.Uint64
	f32  *array.Float32
	f64  *array.Float64
	boo  *array.Boolean
	dec  *array.Decimal128
	str  *array.String
	lstr *array.LargeString
	bin  *array.Binary
	lbin *array.LargeBinary
	fsb  *array.FixedSizeBinary
	d32  *array.Date32
	d64  *array.Date64
	ts   *array.Timestamp
	t32  *array.Time32
	t64  *array.Time64
	arr  arrow.Array

	src      srcKind
	tsMul    int64 // timestamp/time unit → micros multiplier (0: divide by 1000)
	decScale int32 // source decimal scale

	scratch []byte
}

type srcKind uint8

const (
	srcInt srcKind = iota
	srcUint64
	srcFloat
	srcBool
	srcDecimal
	srcString
	srcBinary
	srcUUID
	srcDate
	srcTimestamp
	srcTime
)

func newColWriter(f arrow.Field, target *column) (*colWriter, error) {
	w := &colWriter{field: f, target: target, tsMul: 1}
	switch t := f.Type.(type) {
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Int32Type, *arrow.Int64Type,
		*arrow.Uint8Type, *arrow.Uint16Type, *arrow.Uint32Type:
		w.src = srcInt
	case *arrow.Uint64Type:
		w.src = srcUint64
	case *arrow.Float32Type, *arrow.Float64Type:
		w.src = srcFloat
	case *arrow.BooleanType:
		w.src = srcBool
	case *arrow.Decimal128Type:
		w.src, w.decScale = srcDecimal, t.Scale
	case *arrow.StringType, *arrow.LargeStringType:
		w.src = srcString
	case *arrow.BinaryType, *arrow.LargeBinaryType:
		w.src = srcBinary
	case *arrow.FixedSizeBinaryType:
		w.src = srcBinary
		if t.ByteWidth == 16 && connectors.Logical(f) == connectors.LogicalUUID {
			w.src = srcUUID
		}
	case *arrow.Date32Type, *arrow.Date64Type:
		w.src = srcDate
	case *arrow.TimestampType:
		w.src = srcTimestamp
		w.tsMul = unitToMicros(t.Unit)
	case *arrow.Time32Type:
		w.src, w.tsMul = srcTime, unitToMicros(t.Unit)
	case *arrow.Time64Type:
		w.src, w.tsMul = srcTime, unitToMicros(t.Unit)
	default:
		return nil, fmt.Errorf("column %q: Arrow type %s cannot be written to SQLite", f.Name, f.Type)
	}
	return w, nil
}

// unitToMicros is the multiplier from unit to microseconds, 0 for
// nanoseconds (which divide by 1000).
func unitToMicros(u arrow.TimeUnit) int64 {
	switch u {
	case arrow.Second:
		return microsPerSecond
	case arrow.Millisecond:
		return 1000
	case arrow.Microsecond:
		return 1
	}
	return 0
}

// set points the writer at a batch's column.
func (w *colWriter) set(a arrow.Array) {
	w.arr = a
	switch x := a.(type) {
	case *array.Int8:
		w.i8 = x
	case *array.Int16:
		w.i16 = x
	case *array.Int32:
		w.i32 = x
	case *array.Int64:
		w.i64 = x
	case *array.Uint8:
		w.u8 = x
	case *array.Uint16:
		w.u16 = x
	case *array.Uint32:
		w.u32 = x
	case *array.Uint64:
		w.u64 = x
	case *array.Float32:
		w.f32 = x
	case *array.Float64:
		w.f64 = x
	case *array.Boolean:
		w.boo = x
	case *array.Decimal128:
		w.dec = x
	case *array.String:
		w.str = x
	case *array.LargeString:
		w.lstr = x
	case *array.Binary:
		w.bin = x
	case *array.LargeBinary:
		w.lbin = x
	case *array.FixedSizeBinary:
		w.fsb = x
	case *array.Date32:
		w.d32 = x
	case *array.Date64:
		w.d64 = x
	case *array.Timestamp:
		w.ts = x
	case *array.Time32:
		w.t32 = x
	case *array.Time64:
		w.t64 = x
	}
}

func (w *colWriter) intAt(i int) int64 {
	switch {
	case w.i64 != nil:
		return w.i64.Value(i)
	case w.i32 != nil:
		return int64(w.i32.Value(i))
	case w.i16 != nil:
		return int64(w.i16.Value(i))
	case w.i8 != nil:
		return int64(w.i8.Value(i))
	case w.u32 != nil:
		return int64(w.u32.Value(i))
	case w.u16 != nil:
		return int64(w.u16.Value(i))
	}
	return int64(w.u8.Value(i))
}

func (w *colWriter) floatAt(i int) float64 {
	if w.f64 != nil {
		return w.f64.Value(i)
	}
	return float64(w.f32.Value(i))
}

func (w *colWriter) bytesAt(i int) []byte {
	switch {
	case w.str != nil:
		return w.str.ValueBytes()[w.str.ValueOffset(i) : w.str.ValueOffset(i)+w.str.ValueLen(i)]
	case w.lstr != nil:
		s := w.lstr.Value(i)
		return []byte(s)
	case w.bin != nil:
		return w.bin.Value(i)
	case w.lbin != nil:
		return w.lbin.Value(i)
	}
	return w.fsb.Value(i)
}

// micros returns a date/time value in microseconds (since the epoch, or
// since midnight for times); false when it is finer than microseconds.
func (w *colWriter) micros(i int) (int64, bool) {
	var v int64
	switch {
	case w.ts != nil:
		v = int64(w.ts.Value(i))
	case w.t64 != nil:
		v = int64(w.t64.Value(i))
	case w.t32 != nil:
		v = int64(w.t32.Value(i))
	case w.d32 != nil:
		return int64(w.d32.Value(i)) * microsPerDay, true
	case w.d64 != nil:
		return int64(w.d64.Value(i)) * 1000, true
	}
	if w.tsMul == 0 {
		if v%1000 != 0 {
			return 0, false
		}
		return v / 1000, true
	}
	return v * w.tsMul, true
}

// maxText is an upper bound of the arena bytes row i needs.
func (w *colWriter) maxText(i int) int {
	switch w.src {
	case srcString, srcBinary:
		// Room for the value as is, or for its reformatting as a decimal
		// or UUID.
		if w.str != nil {
			return w.str.ValueLen(i) + 48
		}
		return len(w.bytesAt(i)) + 48
	case srcDecimal, srcFloat, srcInt, srcUint64:
		return 48
	case srcUUID:
		return 36
	case srcDate, srcTimestamp, srcTime:
		return 32
	}
	return 0
}

// text formats into the arena: fn appends to a slice whose capacity is the
// reserved size, so it never reallocates into Go memory.
func (w *colWriter) bindText(st *liteStmt, p int, size int, fn func([]byte) []byte) error {
	ptr, buf := st.alloc(size)
	out := fn(buf[:0])
	if len(out) > size || (len(out) > 0 && &out[0] != &buf[0]) {
		panic("sqlite: formatted value outgrew its arena slot")
	}
	return st.bindTextAt(p, ptr, len(out))
}

// bind binds row i to parameter p.
func (w *colWriter) bind(st *liteStmt, p, i int) (*badValue, error) {
	if w.arr.IsNull(i) {
		return nil, st.bindNull(p)
	}
	tk := w.target.kind
	switch w.src {
	case srcInt:
		v := w.intAt(i)
		switch tk {
		case kindFloat:
			if v > 1<<53 || v < -(1<<53) {
				return &badValue{value: strconv.FormatInt(v, 10), reason: "cannot be held exactly by a REAL column"}, nil
			}
			return nil, st.bindFloat(p, float64(v))
		case kindBool:
			if v != 0 && v != 1 {
				return &badValue{value: strconv.FormatInt(v, 10), reason: "a boolean column holds 0 or 1"}, nil
			}
		case kindDecimal, kindNumeric:
			w.scratch = strconv.AppendInt(w.scratch[:0], v, 10)
			return w.bindDecimalText(st, p, w.scratch)
		}
		return nil, st.bindInt64(p, v)
	case srcUint64:
		v := w.u64.Value(i)
		if v > math.MaxInt64 {
			return &badValue{value: strconv.FormatUint(v, 10), reason: "greater than the largest SQLite integer (9223372036854775807)"}, nil
		}
		switch tk {
		case kindDecimal, kindNumeric:
			w.scratch = strconv.AppendUint(w.scratch[:0], v, 10)
			return w.bindDecimalText(st, p, w.scratch)
		case kindFloat:
			if v > 1<<53 {
				return &badValue{value: strconv.FormatUint(v, 10), reason: "cannot be held exactly by a REAL column"}, nil
			}
			return nil, st.bindFloat(p, float64(v))
		}
		return nil, st.bindInt64(p, int64(v))
	case srcFloat:
		v := w.floatAt(i)
		if math.IsNaN(v) {
			// sqlite3_bind_double stores NaN as NULL.
			return &badValue{value: "NaN", reason: "SQLite cannot store NaN (it would become NULL)"}, nil
		}
		switch tk {
		case kindInt:
			if v != math.Trunc(v) || v < -(1<<63) || v >= 1<<63 {
				return &badValue{value: strconv.FormatFloat(v, 'g', -1, 64), reason: "not an integer"}, nil
			}
			return nil, st.bindInt64(p, int64(v))
		case kindDecimal, kindNumeric:
			if math.IsInf(v, 0) {
				return &badValue{value: strconv.FormatFloat(v, 'g', -1, 64), reason: "not a finite number"}, nil
			}
			w.scratch = strconv.AppendFloat(w.scratch[:0], v, 'f', -1, 64)
			return w.bindDecimalText(st, p, w.scratch)
		case kindText, kindJSON:
			// SQLite's own REAL-to-text conversion keeps 15 digits; the
			// shortest text that reads back as v keeps them all.
			return nil, w.bindText(st, p, 48, func(d []byte) []byte { return strconv.AppendFloat(d, v, 'g', -1, 64) })
		}
		return nil, st.bindFloat(p, v)
	case srcBool:
		if w.boo.Value(i) {
			return nil, st.bindInt64(p, 1)
		}
		return nil, st.bindInt64(p, 0)
	case srcDecimal:
		w.scratch = appendDecimal(w.scratch[:0], w.dec.Value(i), w.decScale)
		switch tk {
		case kindInt:
			if v, ok := parseInt(trimZeroFraction(w.scratch)); ok {
				return nil, st.bindInt64(p, v)
			}
			return &badValue{value: string(w.scratch), reason: "not an integer"}, nil
		case kindFloat:
			f, _ := strconv.ParseFloat(string(w.scratch), 64)
			return nil, st.bindFloat(p, f)
		}
		return w.bindDecimalText(st, p, w.scratch)
	case srcString:
		b := w.bytesAt(i)
		switch tk {
		case kindInt:
			if v, ok := parseInt(b); ok {
				return nil, st.bindInt64(p, v)
			}
			return &badValue{value: render(b), reason: "not an integer"}, nil
		case kindFloat:
			f, err := strconv.ParseFloat(string(b), 64)
			if err != nil {
				return &badValue{value: render(b), reason: "not a number"}, nil
			}
			return nil, st.bindFloat(p, f)
		case kindDecimal, kindNumeric:
			return w.bindDecimalText(st, p, b)
		case kindUUID:
			var u [16]byte
			if !parseUUIDText(b, &u) {
				return &badValue{value: render(b), reason: "not a UUID"}, nil
			}
			return nil, w.bindText(st, p, 36, func(d []byte) []byte { return appendUUID(d, u[:]) })
		}
		return nil, st.bindTextBytes(p, b)
	case srcBinary:
		return nil, st.bindBlob(p, w.bytesAt(i))
	case srcUUID:
		u := w.fsb.Value(i)
		if tk == kindBlob {
			return nil, st.bindBlob(p, u)
		}
		return nil, w.bindText(st, p, 36, func(d []byte) []byte { return appendUUID(d, u) })
	case srcDate, srcTimestamp:
		us, ok := w.micros(i)
		if !ok {
			return &badValue{value: w.arr.ValueStr(i), reason: "finer than microseconds"}, nil
		}
		var bad bool
		err := w.bindText(st, p, 32, func(d []byte) []byte {
			var ok bool
			switch {
			case tk == kindDate || (w.src == srcDate && tk != kindTimestamp && tk != kindTimestampTZ):
				days, rest := floorDiv(us, microsPerDay)
				if rest != 0 {
					bad = true
					return d
				}
				d, ok = appendDate(d, days)
			default:
				d, ok = appendTimestamp(d, us, tk == kindTimestampTZ)
			}
			bad = bad || !ok
			return d
		})
		if bad {
			return &badValue{value: w.arr.ValueStr(i), reason: "outside years 0000-9999, or a time of day in a date column"}, nil
		}
		return nil, err
	case srcTime:
		us, ok := w.micros(i)
		if !ok || us < 0 || us >= microsPerDay {
			return &badValue{value: w.arr.ValueStr(i), reason: "not a time of day in microseconds"}, nil
		}
		return nil, w.bindText(st, p, 32, func(d []byte) []byte { return appendClock(d, us) })
	}
	return nil, fmt.Errorf("column %q: no writer for %s", w.field.Name, w.field.Type)
}

// bindDecimalText binds decimal text to a DECIMAL_TEXT/NUMERIC column: for
// a column with a scale, checked against its precision and written with its
// scale, so the text's layout is the same in every row.
func (w *colWriter) bindDecimalText(st *liteStmt, p int, b []byte) (*badValue, error) {
	if w.target.kind == kindDecimal {
		n, reason := parseDecimal(b, w.target.prec, w.target.scale)
		if reason != "" {
			return &badValue{value: render(b), reason: reason + fmt.Sprintf(" (DECIMAL(%d,%d))", w.target.prec, w.target.scale)}, nil
		}
		return nil, w.bindText(st, p, 48, func(d []byte) []byte { return appendDecimal(d, n, w.target.scale) })
	}
	if !validNumeric(b) {
		return &badValue{value: render(b), reason: "not a decimal number"}, nil
	}
	return nil, st.bindTextBytes(p, b)
}

// trimZeroFraction turns "12.000" into "12"; other texts are returned as is.
func trimZeroFraction(b []byte) []byte {
	for i, c := range b {
		if c == '.' {
			for _, d := range b[i+1:] {
				if d != '0' {
					return b
				}
			}
			return b[:i]
		}
	}
	return b
}
