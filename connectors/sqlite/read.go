package sqlite

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

// badValue is why a stored value cannot be read as its column's type.
type badValue struct {
	value  string
	reason string
}

// colReader copies one result column of the current row into a typed Arrow
// builder. The typed builder pointers avoid an interface call and a type
// switch per value.
type colReader struct {
	col *column
	idx int // index in the statement's result columns
	b   array.Builder

	i64 *array.Int64Builder
	f64 *array.Float64Builder
	bin *array.BinaryBuilder // also the String builder's bytes
	boo *array.BooleanBuilder
	dec *array.Decimal128Builder
	fsb *array.FixedSizeBinaryBuilder
	d32 *array.Date32Builder
	ts  *array.TimestampBuilder
	t64 *array.Time64Builder

	scratch  []byte
	lastData int // bytes of values in the last batch, for reserve
}

func newColReader(mem memory.Allocator, col *column, idx int) *colReader {
	r := &colReader{col: col, idx: idx}
	r.b = array.NewBuilder(mem, col.field().Type)
	switch b := r.b.(type) {
	case *array.Int64Builder:
		r.i64 = b
	case *array.Float64Builder:
		r.f64 = b
	case *array.StringBuilder:
		r.bin = b.BinaryBuilder
	case *array.BinaryBuilder:
		r.bin = b
	case *array.BooleanBuilder:
		r.boo = b
	case *array.Decimal128Builder:
		r.dec = b
	case *array.FixedSizeBinaryBuilder:
		r.fsb = b
	case *array.Date32Builder:
		r.d32 = b
	case *array.TimestampBuilder:
		r.ts = b
	case *array.Time64Builder:
		r.t64 = b
	}
	return r
}

func render(b []byte) string {
	const max = 40
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}

var storageNames = map[int32]string{typInteger: "integer", typFloat: "real", typText: "text", typBlob: "blob"}

func (r *colReader) mismatch(s *liteStmt, t int32) *badValue {
	v := ""
	switch t {
	case typInteger:
		v = strconv.FormatInt(s.colInt64(r.idx), 10)
	case typFloat:
		v = strconv.FormatFloat(s.colFloat(r.idx), 'g', -1, 64)
	case typText:
		v = render(s.colText(r.idx))
	case typBlob:
		v = "blob of " + strconv.Itoa(len(s.colBlob(r.idx))) + " bytes"
	}
	return &badValue{value: v, reason: storageNames[t] + " value in a " + r.col.kind.String() + " column (declared " + strconv.Quote(r.col.decl) + ")"}
}

// read appends the current row's value and returns the bytes it adds to
// the batch.
func (r *colReader) read(s *liteStmt) (int, *badValue) {
	i := r.idx
	t := s.colType(i)
	if t == typNull {
		r.b.AppendNull()
		return 1, nil
	}
	switch r.col.kind {
	case kindInt:
		switch t {
		case typInteger:
			r.i64.Append(s.colInt64(i))
			return 8, nil
		case typFloat:
			f := s.colFloat(i)
			if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
				r.i64.Append(int64(f))
				return 8, nil
			}
		case typText:
			if v, ok := parseInt(s.colText(i)); ok {
				r.i64.Append(v)
				return 8, nil
			}
		}
	case kindFloat:
		switch t {
		case typFloat, typInteger:
			r.f64.Append(s.colFloat(i))
			return 8, nil
		case typText:
			if v, err := strconv.ParseFloat(string(s.colText(i)), 64); err == nil {
				r.f64.Append(v)
				return 8, nil
			}
		}
	case kindText, kindJSON:
		var b []byte
		if t == typBlob {
			b = s.colBlob(i)
		} else {
			b = s.colText(i) // SQLite renders numbers as text
		}
		if !utf8.Valid(b) {
			return 0, &badValue{value: render(b), reason: "not valid UTF-8"}
		}
		r.bin.Append(b)
		return len(b) + 4, nil
	case kindBlob:
		switch t {
		case typBlob:
			b := s.colBlob(i)
			r.bin.Append(b)
			return len(b) + 4, nil
		case typText:
			b := s.colText(i)
			r.bin.Append(b)
			return len(b) + 4, nil
		}
	case kindBool:
		switch t {
		case typInteger, typFloat:
			switch s.colFloat(i) {
			case 0:
				r.boo.Append(false)
				return 1, nil
			case 1:
				r.boo.Append(true)
				return 1, nil
			}
		case typText:
			switch string(s.colText(i)) { // no allocation: compared, not kept
			case "1", "true", "TRUE", "True", "t", "T":
				r.boo.Append(true)
				return 1, nil
			case "0", "false", "FALSE", "False", "f", "F":
				r.boo.Append(false)
				return 1, nil
			}
		}
	case kindDecimal:
		var text []byte
		switch t {
		case typText:
			text = s.colText(i)
		case typInteger:
			r.scratch = strconv.AppendInt(r.scratch[:0], s.colInt64(i), 10)
			text = r.scratch
		case typFloat:
			// A REAL is read as the shortest text that gives it back: the
			// value SQLite stored, not its binary expansion.
			f := s.colFloat(i)
			if math.IsInf(f, 0) || math.IsNaN(f) {
				return 0, &badValue{value: strconv.FormatFloat(f, 'g', -1, 64), reason: "not a finite number"}
			}
			r.scratch = strconv.AppendFloat(r.scratch[:0], f, 'f', -1, 64)
			text = r.scratch
		default:
			return 0, r.mismatch(s, t)
		}
		n, reason := parseDecimal(text, r.col.prec, r.col.scale)
		if reason != "" {
			return 0, &badValue{value: render(text), reason: reason}
		}
		r.dec.Append(n)
		return 16, nil
	case kindNumeric:
		switch t {
		case typText:
			b := s.colText(i)
			if !validNumeric(b) {
				return 0, &badValue{value: render(b), reason: "not a decimal number"}
			}
			r.bin.Append(b)
			return len(b) + 4, nil
		case typInteger:
			r.scratch = strconv.AppendInt(r.scratch[:0], s.colInt64(i), 10)
			r.bin.Append(r.scratch)
			return len(r.scratch) + 4, nil
		case typFloat:
			f := s.colFloat(i)
			if math.IsInf(f, 0) || math.IsNaN(f) {
				return 0, &badValue{value: strconv.FormatFloat(f, 'g', -1, 64), reason: "not a finite number"}
			}
			r.scratch = strconv.AppendFloat(r.scratch[:0], f, 'f', -1, 64)
			r.bin.Append(r.scratch)
			return len(r.scratch) + 4, nil
		}
	case kindUUID:
		var u [16]byte
		switch t {
		case typText:
			if parseUUIDText(s.colText(i), &u) {
				r.fsb.Append(u[:])
				return 16, nil
			}
		case typBlob:
			if b := s.colBlob(i); len(b) == 16 {
				r.fsb.Append(b)
				return 16, nil
			}
		}
	case kindDate:
		switch t {
		case typText:
			b := s.colText(i)
			if us, zoned, ok := parseTimestamp(b); ok && !zoned {
				days, rest := floorDiv(us, microsPerDay)
				if rest != 0 {
					return 0, &badValue{value: render(b), reason: "a date column holding a time of day"}
				}
				r.d32.Append(arrow.Date32(days))
				return 4, nil
			}
		case typInteger:
			days, rest := floorDiv(s.colInt64(i), 86400)
			if rest == 0 && days >= math.MinInt32 && days <= math.MaxInt32 {
				r.d32.Append(arrow.Date32(days))
				return 4, nil
			}
		}
	case kindTimestamp, kindTimestampTZ:
		switch t {
		case typText:
			if us, _, ok := parseTimestamp(s.colText(i)); ok {
				r.ts.Append(arrow.Timestamp(us))
				return 8, nil
			}
		case typInteger:
			v := s.colInt64(i)
			if v > math.MinInt64/microsPerSecond && v < math.MaxInt64/microsPerSecond {
				r.ts.Append(arrow.Timestamp(v * microsPerSecond))
				return 8, nil
			}
		case typFloat:
			f := s.colFloat(i) * float64(microsPerSecond)
			if f > math.MinInt64 && f < math.MaxInt64 {
				r.ts.Append(arrow.Timestamp(math.Round(f)))
				return 8, nil
			}
		}
	case kindTime:
		if t == typText {
			b := s.colText(i)
			if us, n, ok := parseClock(b); ok && n == len(b) {
				r.t64.Append(arrow.Time64(us))
				return 8, nil
			}
		}
	}
	return 0, r.mismatch(s, t)
}

// rowReader turns result rows into record batches.
type rowReader struct {
	schema *arrow.Schema
	cols   []*colReader
	rows   int
	bytes  int
}

func newRowReader(mem memory.Allocator, cols []*column, idx []int) *rowReader {
	rr := &rowReader{}
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		rr.cols = append(rr.cols, newColReader(mem, c, idx[i]))
		fields[i] = c.field()
	}
	rr.schema = arrow.NewSchema(fields, nil)
	return rr
}

// appendRow appends the statement's current row. On a bad value it returns
// the offending column; the batch is then unusable.
func (rr *rowReader) appendRow(s *liteStmt) (*colReader, *badValue) {
	for _, c := range rr.cols {
		n, bad := c.read(s)
		if bad != nil {
			return c, bad
		}
		rr.bytes += n
	}
	rr.rows++
	return nil, nil
}

// reserve preallocates room for n rows in every builder, and for the
// variable-length columns as many bytes as the last batch held: builders
// otherwise grow by doubling, copying each buffer several times per batch.
func (rr *rowReader) reserve(n int) {
	for _, c := range rr.cols {
		c.b.Reserve(n)
		if c.bin != nil && c.lastData > 0 {
			c.bin.ReserveData(c.lastData + c.lastData/8)
		}
	}
}

// flush returns the rows appended so far as a batch and starts a new one.
func (rr *rowReader) flush() arrow.RecordBatch {
	arrs := make([]arrow.Array, len(rr.cols))
	for i, c := range rr.cols {
		if c.bin != nil {
			c.lastData = c.bin.DataLen()
		}
		arrs[i] = c.b.NewArray()
	}
	rec := array.NewRecordBatch(rr.schema, arrs, int64(rr.rows))
	for _, a := range arrs {
		a.Release()
	}
	rr.rows, rr.bytes = 0, 0
	return rec
}

func (rr *rowReader) release() {
	for _, c := range rr.cols {
		c.b.Release()
	}
}

// keyOfRow reads the key of the statement's current row through a reader of
// the key columns, for error messages; nil when the key itself is unreadable.
func keyOfRow(s *liteStmt, keyCols []*column, keyIdx []int) connectors.Key {
	if len(keyCols) == 0 {
		return nil
	}
	rr := newRowReader(memory.DefaultAllocator, keyCols, keyIdx)
	defer rr.release()
	if _, bad := rr.appendRow(s); bad != nil {
		return nil
	}
	rec := rr.flush()
	defer rec.Release()
	all := make([]int, len(keyCols))
	for i := range all {
		all[i] = i
	}
	return connectors.KeyOf(rec, all, 0)
}
