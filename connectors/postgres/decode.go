package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/datashift/datashift/connectors"
)

// Offsets between PostgreSQL's epoch (2000-01-01) and Unix's.
const (
	pgEpochDays   = 10957
	pgEpochMicros = 946684800000000
)

// PostgreSQL's infinite dates and timestamps are the extreme integers.
const (
	pgDateInf    = math.MaxInt32
	pgDateNegInf = math.MinInt32
	pgTSInf      = math.MaxInt64
	pgTSNegInf   = math.MinInt64
)

var copySignature = []byte("PGCOPY\n\377\r\n\000")

// decCol is one column of the decoder: its codec and the typed builder it
// appends to. The builders are typed fields rather than an interface so the
// per-value path is a switch and a direct call.
type decCol struct {
	kind  kind
	name  string
	scale int
	// trim: a char(n) column, whose values come padded with spaces to n.
	// They are read without the padding, as PostgreSQL's own char → text
	// cast gives them and MariaDB's CHAR reads: the value a char column
	// compares by, and what other stores should hold (TYPES.md).
	trim bool
	b    array.Builder

	// dataLen is the bytes a variable-width column took in the last batch,
	// to size the next one's data buffer in one allocation.
	dataLen int

	i16  *array.Int16Builder
	i32  *array.Int32Builder
	i64  *array.Int64Builder
	f32  *array.Float32Builder
	f64  *array.Float64Builder
	bl   *array.BooleanBuilder
	dec  *array.Decimal128Builder
	str  *array.StringBuilder
	bin  *array.BinaryBuilder
	d32  *array.Date32Builder
	ts   *array.TimestampBuilder
	t64  *array.Time64Builder
	uuid *array.FixedSizeBinaryBuilder
}

// copyDecoder is the io.Writer given to pgconn.CopyTo: it parses the binary
// COPY stream (header, tuples, trailer) straight into Arrow builders and hands
// a record batch to emit whenever BatchRows or BatchBytes is reached. A tuple
// may straddle Write calls; the incomplete tail is kept in carry.
//
// Backpressure: emit runs inside Write, so while the consumer is busy the
// socket is not read and the server waits.
//
// For a positioned read (withPositions) each tuple carries the row's ctid as
// one more, trailing field: it goes into no column, must be greater than the
// ctid before it, and the batch's last one is given to emit as its position.
type copyDecoder struct {
	schema     *arrow.Schema
	cols       []decCol
	keyIdx     []int // positions of the key columns in cols; -1 if not read
	keyCols    []column
	batchRows  int
	batchBytes int
	emit       func(arrow.RecordBatch) error
	fields     int // fields per tuple: the columns, and the ctid when positioned

	positioned bool
	emitAt     func(arrow.RecordBatch, connectors.Key) error
	last       tid  // the ctid of the last tuple decoded
	seen       bool // last is set: a tuple was decoded, or the read resumes after last

	header  bool // header consumed
	done    bool // trailer seen
	carry   []byte
	rows    int
	bytes   int
	cap     int // rows the builders have room for in this batch
	next    int // rows to size the next batch's builders for
	text    []byte
	emitErr error // the error emit returned, passed through unchanged
}

func newCopyDecoder(mem memory.Allocator, schema *arrow.Schema, cols []column, keys []column, batchRows, batchBytes int, emit func(arrow.RecordBatch) error) *copyDecoder {
	d := &copyDecoder{schema: schema, batchRows: batchRows, batchBytes: batchBytes, emit: emit, keyCols: keys,
		next: min(batchRows, maxPresize), fields: len(cols)}
	d.cols = make([]decCol, len(cols))
	for i := range cols {
		c := &d.cols[i]
		c.kind, c.name, c.trim = cols[i].kind(), cols[i].name, cols[i].typeOID == oidBpchar
		c.b = array.NewBuilder(mem, schema.Field(i).Type)
		switch b := c.b.(type) {
		case *array.Int16Builder:
			c.i16 = b
		case *array.Int32Builder:
			c.i32 = b
		case *array.Int64Builder:
			c.i64 = b
		case *array.Float32Builder:
			c.f32 = b
		case *array.Float64Builder:
			c.f64 = b
		case *array.BooleanBuilder:
			c.bl = b
		case *array.Decimal128Builder:
			c.dec = b
			c.scale = int(schema.Field(i).Type.(*arrow.Decimal128Type).Scale)
		case *array.StringBuilder:
			c.str = b
		case *array.BinaryBuilder:
			c.bin = b
		case *array.Date32Builder:
			c.d32 = b
		case *array.TimestampBuilder:
			c.ts = b
		case *array.Time64Builder:
			c.t64 = b
		case *array.FixedSizeBinaryBuilder:
			c.uuid = b
		}
	}
	d.keyIdx = make([]int, len(keys))
	for i, k := range keys {
		d.keyIdx[i] = -1
		for j := range cols {
			if cols[j].name == k.name {
				d.keyIdx[i] = j
			}
		}
	}
	return d
}

// withPositions makes d decode the trailing ctid of a positioned read and
// hand batches to fn with the ctid of their last row. after, when set, is
// the position the read resumes after: every ctid must be past it.
func (d *copyDecoder) withPositions(after *tid, fn func(arrow.RecordBatch, connectors.Key) error) *copyDecoder {
	d.positioned, d.emitAt, d.fields = true, fn, len(d.cols)+1
	if after != nil {
		d.last, d.seen = *after, true
	}
	return d
}

func (d *copyDecoder) release() {
	for i := range d.cols {
		d.cols[i].b.Release()
	}
}

// Write consumes one chunk of the COPY stream (pgconn passes one CopyData
// message per call, and its buffer is reused after the call returns).
func (d *copyDecoder) Write(p []byte) (int, error) {
	n := len(p)
	buf := p
	if len(d.carry) > 0 {
		d.carry = append(d.carry, p...)
		buf = d.carry
	}
	used, err := d.parse(buf)
	if err != nil {
		return 0, err
	}
	rest := buf[used:]
	if len(d.carry) > 0 {
		d.carry = d.carry[:copy(d.carry, rest)]
	} else if len(rest) > 0 {
		d.carry = append(d.carry[:0], rest...)
	}
	return n, nil
}

// parse decodes every complete tuple in b and returns how many bytes it used.
func (d *copyDecoder) parse(b []byte) (int, error) {
	pos := 0
	if !d.header {
		if len(b) < 19 {
			return 0, nil
		}
		if !bytes.Equal(b[:11], copySignature) {
			return 0, errors.New("not a binary COPY stream")
		}
		ext := int(binary.BigEndian.Uint32(b[15:]))
		if len(b) < 19+ext {
			return 0, nil
		}
		pos = 19 + ext
		d.header = true
	}
	nfields := d.fields
	for pos+2 <= len(b) {
		if d.done {
			return 0, errors.New("data after the end of the COPY stream")
		}
		nf := int(int16(binary.BigEndian.Uint16(b[pos:])))
		if nf == -1 {
			d.done = true
			pos += 2
			continue
		}
		if nf != nfields {
			return 0, fmt.Errorf("COPY tuple has %d fields, expected %d", nf, nfields)
		}
		// First pass: is the whole tuple here?
		end := pos + 2
		for i := 0; i < nfields; i++ {
			if end+4 > len(b) {
				return pos, nil
			}
			l := int(int32(binary.BigEndian.Uint32(b[end:])))
			end += 4
			if l > 0 {
				end += l
			}
		}
		if end > len(b) {
			return pos, nil
		}
		if err := d.tuple(b[pos+2 : end]); err != nil {
			return 0, err
		}
		d.rows++
		d.bytes += end - pos
		pos = end
		if d.rows >= d.batchRows || d.bytes >= d.batchBytes {
			if err := d.flush(); err != nil {
				return 0, err
			}
		}
	}
	return pos, nil
}

// maxPresize bounds the rows the first batch's builders are sized for, so a
// huge BatchRows with a small BatchBytes does not allocate for rows that
// never come; later batches are sized like the one before.
const maxPresize = 1 << 15

// grow makes room for more rows: at the start of a batch, exactly the rows
// expected (one allocation per buffer, none of the builders' doubling and
// copying); past that, by doubling.
func (d *copyDecoder) grow() {
	if d.rows == 0 {
		for i := range d.cols {
			c := &d.cols[i]
			c.b.(interface{ Resize(int) }).Resize(d.next)
			switch {
			case c.str != nil:
				c.str.ReserveData(c.dataLen + c.dataLen/8)
			case c.bin != nil:
				c.bin.ReserveData(c.dataLen + c.dataLen/8)
			}
		}
		d.cap = d.next
		return
	}
	for i := range d.cols {
		d.cols[i].b.Reserve(d.rows)
	}
	d.cap = 2 * d.rows
}

// appendBytes appends v with UnsafeAppend, growing the data buffer by
// doubling when it is full.
func appendBytes(b *array.BinaryBuilder, v []byte) {
	if b.DataCap()-b.DataLen() < len(v) {
		b.ReserveData(max(len(v), b.DataLen()))
	}
	b.UnsafeAppend(v)
}

// tuple appends one complete tuple (after its field count) to the builders.
func (d *copyDecoder) tuple(t []byte) error {
	if d.rows >= d.cap {
		d.grow()
	}
	pos := 0
	for i := range d.cols {
		c := &d.cols[i]
		l := int(int32(binary.BigEndian.Uint32(t[pos:])))
		pos += 4
		if l < 0 {
			c.b.AppendNull()
			continue
		}
		v := t[pos : pos+l]
		pos += l
		switch c.kind {
		case kInt64:
			if l != 8 {
				return d.badLength(c, l, t)
			}
			c.i64.UnsafeAppend(int64(binary.BigEndian.Uint64(v)))
		case kInt32:
			if l != 4 {
				return d.badLength(c, l, t)
			}
			c.i32.UnsafeAppend(int32(binary.BigEndian.Uint32(v)))
		case kInt16:
			if l != 2 {
				return d.badLength(c, l, t)
			}
			c.i16.UnsafeAppend(int16(binary.BigEndian.Uint16(v)))
		case kFloat64:
			if l != 8 {
				return d.badLength(c, l, t)
			}
			c.f64.UnsafeAppend(math.Float64frombits(binary.BigEndian.Uint64(v)))
		case kFloat32:
			if l != 4 {
				return d.badLength(c, l, t)
			}
			c.f32.UnsafeAppend(math.Float32frombits(binary.BigEndian.Uint32(v)))
		case kBool:
			if l != 1 {
				return d.badLength(c, l, t)
			}
			c.bl.UnsafeAppend(v[0] != 0)
		case kText, kCast:
			if c.trim {
				v = bytes.TrimRight(v, " ")
			}
			appendBytes(c.str.BinaryBuilder, v)
		case kJSONB:
			if l < 1 || v[0] != 1 {
				return d.valueError(c, t, "unsupported jsonb binary format version")
			}
			appendBytes(c.str.BinaryBuilder, v[1:])
		case kBytea:
			appendBytes(c.bin, v)
		case kUUID:
			if l != 16 {
				return d.badLength(c, l, t)
			}
			c.uuid.UnsafeAppend(v)
		case kTimestamp:
			if l != 8 {
				return d.badLength(c, l, t)
			}
			us := int64(binary.BigEndian.Uint64(v))
			if us == pgTSInf || us == pgTSNegInf {
				return d.valueError(c, t, "infinite timestamp has no Arrow representation")
			}
			c.ts.UnsafeAppend(arrow.Timestamp(us + pgEpochMicros))
		case kDate:
			if l != 4 {
				return d.badLength(c, l, t)
			}
			days := int32(binary.BigEndian.Uint32(v))
			if days == pgDateInf || days == pgDateNegInf {
				return d.valueError(c, t, "infinite date has no Arrow representation")
			}
			c.d32.UnsafeAppend(arrow.Date32(days + pgEpochDays))
		case kTime:
			if l != 8 {
				return d.badLength(c, l, t)
			}
			c.t64.UnsafeAppend(arrow.Time64(int64(binary.BigEndian.Uint64(v))))
		case kDecimal:
			n, err := numericToDecimal(v, c.scale)
			if err != nil {
				return d.valueError(c, t, err.Error())
			}
			c.dec.UnsafeAppend(n)
		case kNumeric:
			var err error
			d.text, err = appendNumericText(d.text[:0], v)
			if err != nil {
				return d.valueError(c, t, err.Error())
			}
			appendBytes(c.str.BinaryBuilder, d.text)
		}
	}
	if d.positioned {
		return d.position(t[pos:])
	}
	return nil
}

// position decodes a tuple's trailing ctid (uint32 block, uint16 line
// pointer) and checks that it follows the one before: a position is only
// worth resuming from if no row after it came before it.
func (d *copyDecoder) position(f []byte) error {
	if l := int32(binary.BigEndian.Uint32(f)); l != 6 {
		return fmt.Errorf("ctid field of %d bytes, want 6", l)
	}
	t := tid{block: binary.BigEndian.Uint32(f[4:]), offset: binary.BigEndian.Uint16(f[8:])}
	if d.seen && !d.last.less(t) {
		return fmt.Errorf("row at ctid %s came after the row at %s: the read is not in ctid order, and its positions cannot be resumed from", t, d.last)
	}
	d.last, d.seen = t, true
	return nil
}

// flush hands the rows decoded so far to emit as one record batch.
func (d *copyDecoder) flush() error {
	if d.rows == 0 {
		return nil
	}
	arrs := make([]arrow.Array, len(d.cols))
	for i := range d.cols {
		c := &d.cols[i]
		switch {
		case c.str != nil:
			c.dataLen = c.str.DataLen()
		case c.bin != nil:
			c.dataLen = c.bin.DataLen()
		}
		arrs[i] = c.b.NewArray()
	}
	rec := array.NewRecordBatch(d.schema, arrs, int64(d.rows))
	for _, a := range arrs {
		a.Release()
	}
	d.next = min(d.batchRows, d.rows+d.rows/8+16)
	d.rows, d.bytes, d.cap = 0, 0, 0
	var err error
	if d.positioned {
		err = d.emitAt(rec, d.last.position())
	} else {
		err = d.emit(rec)
	}
	rec.Release()
	if err != nil {
		d.emitErr = err
	}
	return err
}

func (d *copyDecoder) badLength(c *decCol, l int, t []byte) error {
	return d.valueError(c, t, fmt.Sprintf("unexpected binary length %d", l))
}

// valueError names the column and, when the key columns are read, the row's
// key decoded from the raw tuple.
func (d *copyDecoder) valueError(c *decCol, t []byte, reason string) error {
	return &connectors.ValueError{Column: c.name, Key: d.tupleKey(t), Reason: reason}
}

// tupleKey decodes the key of a raw tuple, off the hot path (errors only).
func (d *copyDecoder) tupleKey(t []byte) connectors.Key {
	if len(d.keyIdx) == 0 {
		return nil
	}
	fields := make([][]byte, len(d.cols))
	pos := 0
	for i := range d.cols {
		l := int(int32(binary.BigEndian.Uint32(t[pos:])))
		pos += 4
		if l >= 0 {
			fields[i] = t[pos : pos+l]
			pos += l
		}
	}
	k := make(connectors.Key, len(d.keyIdx))
	for i, j := range d.keyIdx {
		if j < 0 {
			return nil
		}
		v := fields[j]
		if d.cols[j].trim {
			v = bytes.TrimRight(v, " ")
		}
		k[i] = keyValue(d.cols[j].kind, d.cols[j].scale, v)
	}
	return k
}
