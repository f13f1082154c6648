package mysql

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

// allTypesSchema has one field of every type in TYPES.md.
func allTypesSchema() *arrow.Schema {
	f := func(name string, t arrow.DataType, logical string) arrow.Field {
		fl := arrow.Field{Name: name, Type: t, Nullable: true}
		if logical != "" {
			fl.Metadata = connectors.WithLogical(logical)
		}
		return fl
	}
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		f("i8", arrow.PrimitiveTypes.Int8, ""),
		f("i16", arrow.PrimitiveTypes.Int16, ""),
		f("i32", arrow.PrimitiveTypes.Int32, ""),
		f("i64", arrow.PrimitiveTypes.Int64, ""),
		f("u8", arrow.PrimitiveTypes.Uint8, ""),
		f("u16", arrow.PrimitiveTypes.Uint16, ""),
		f("u32", arrow.PrimitiveTypes.Uint32, ""),
		f("u64", arrow.PrimitiveTypes.Uint64, ""),
		f("f32", arrow.PrimitiveTypes.Float32, ""),
		f("f64", arrow.PrimitiveTypes.Float64, ""),
		f("b", arrow.FixedWidthTypes.Boolean, ""),
		f("d38", &arrow.Decimal128Type{Precision: 38, Scale: 10}, ""),
		f("d2", &arrow.Decimal128Type{Precision: 10, Scale: 2}, ""),
		f("num", arrow.BinaryTypes.String, connectors.LogicalNumeric),
		f("s", arrow.BinaryTypes.String, ""),
		f("bin", arrow.BinaryTypes.Binary, ""),
		f("u", connectors.UUIDType, connectors.LogicalUUID),
		f("j", arrow.BinaryTypes.String, connectors.LogicalJSON),
		f("dt", arrow.FixedWidthTypes.Date32, ""),
		f("ts", &arrow.TimestampType{Unit: arrow.Microsecond}, ""),
		f("tstz", &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, ""),
		f("tm", arrow.FixedWidthTypes.Time64us, ""),
	}, nil)
}

func mustDec(s string, p, sc int32) decimal128.Num {
	n, err := decimal128.FromString(s, p, sc)
	if err != nil {
		panic(err)
	}
	return n
}

func ts(s string) arrow.Timestamp {
	t, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		panic(err)
	}
	return arrow.Timestamp(t.UnixMicro())
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// allTypesRecord: extremes low, extremes high, all NULL, and tricky text.
func allTypesRecord() arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, allTypesSchema())
	defer b.Release()
	type row struct {
		id       int64
		i8       int8
		i16      int16
		i32      int32
		i64      int64
		u8       uint8
		u16      uint16
		u32      uint32
		u64      uint64
		f32      float32
		f64      float64
		b        bool
		d38, d2  decimal128.Num
		num, s   string
		bin      []byte
		u        connectors.UUID
		j        string
		dt       arrow.Date32
		ts, tstz arrow.Timestamp
		tm       arrow.Time64
	}
	u1, _ := connectors.ParseUUID("00000000-0000-0000-0000-000000000000")
	u2, _ := connectors.ParseUUID("ffffffff-ffff-4fff-bfff-ffffffffffff")
	u3, _ := connectors.ParseUUID("123e4567-e89b-12d3-a456-426614174000")
	rows := []row{
		{1, math.MinInt8, math.MinInt16, math.MinInt32, math.MinInt64, 0, 0, 0, 0,
			-math.MaxFloat32, -math.MaxFloat64, false,
			mustDec("-9999999999999999999999999999.9999999999", 38, 10), mustDec("-99999999.99", 10, 2),
			"-12345678901234567890123456789012345.123456789012345678901234567890", "",
			[]byte{}, u1, `{}`, arrow.Date32FromTime(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)),
			ts("0001-01-01 00:00:00"), ts("1970-01-01 00:00:01"), 0},
		{2, math.MaxInt8, math.MaxInt16, math.MaxInt32, math.MaxInt64, math.MaxUint8, math.MaxUint16, math.MaxUint32, math.MaxUint64,
			3.1415927, 0.1, true,
			mustDec("9999999999999999999999999999.9999999999", 38, 10), mustDec("0.01", 10, 2),
			"99999999999999999999999999999999999.999999999999999999999999999999",
			"héllo 😀 中文 \t tab \n newline \r cr \\ backslash 'quote' \"dq\" \x00 nul \x1a sub",
			allBytes(), u2, `{"a": [1, 2.5, {"b": null}], "e": "😀", "q": "x\"y\\z"}`,
			arrow.Date32FromTime(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)),
			ts("9999-12-31 23:59:59.999999"), ts("2038-01-19 03:14:07.999999"),
			arrow.Time64((23*3600+59*60+59)*1e6 + 999999)},
		{4, 0, 0, 0, 0, 1, 1, 1, 1 << 63,
			1.1754944e-38, 4.9e-324, false,
			mustDec("0.0000000001", 38, 10), mustDec("-0.5", 10, 2),
			"1.5", `\N`, []byte(`\N`), u3, `[]`,
			arrow.Date32FromTime(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)),
			ts("2024-02-29 12:34:56.000001"), ts("2001-09-09 01:46:40.5"),
			arrow.Time64(1)},
		{5, -1, -1, -1, -1, 2, 2, 2, 2, 0.5, 1e308, true,
			mustDec("1", 38, 10), mustDec("1", 10, 2),
			"0", "NULL", []byte("\t\n\\"), u3, `"just a string"`,
			arrow.Date32FromTime(time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)),
			ts("1969-07-20 20:17:40"), ts("2000-01-01 00:00:00"), arrow.Time64(43200e6)},
	}
	for _, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(r.id)
		b.Field(1).(*array.Int8Builder).Append(r.i8)
		b.Field(2).(*array.Int16Builder).Append(r.i16)
		b.Field(3).(*array.Int32Builder).Append(r.i32)
		b.Field(4).(*array.Int64Builder).Append(r.i64)
		b.Field(5).(*array.Uint8Builder).Append(r.u8)
		b.Field(6).(*array.Uint16Builder).Append(r.u16)
		b.Field(7).(*array.Uint32Builder).Append(r.u32)
		b.Field(8).(*array.Uint64Builder).Append(r.u64)
		b.Field(9).(*array.Float32Builder).Append(r.f32)
		b.Field(10).(*array.Float64Builder).Append(r.f64)
		b.Field(11).(*array.BooleanBuilder).Append(r.b)
		b.Field(12).(*array.Decimal128Builder).Append(r.d38)
		b.Field(13).(*array.Decimal128Builder).Append(r.d2)
		b.Field(14).(*array.StringBuilder).Append(r.num)
		b.Field(15).(*array.StringBuilder).Append(r.s)
		b.Field(16).(*array.BinaryBuilder).Append(r.bin)
		b.Field(17).(*array.FixedSizeBinaryBuilder).Append(r.u[:])
		b.Field(18).(*array.StringBuilder).Append(r.j)
		b.Field(19).(*array.Date32Builder).Append(r.dt)
		b.Field(20).(*array.TimestampBuilder).Append(r.ts)
		b.Field(21).(*array.TimestampBuilder).Append(r.tstz)
		b.Field(22).(*array.Time64Builder).Append(r.tm)
	}
	// Row 3: every column NULL but the key.
	b.Field(0).(*array.Int64Builder).Append(3)
	for i := 1; i < len(b.Fields()); i++ {
		b.Field(i).AppendNull()
	}
	return b.NewRecordBatch()
}

func TestRoundTripAllTypes(t *testing.T) {
	for _, bulk := range []string{bulkLoad, bulkInsert} {
		t.Run(bulk, func(t *testing.T) {
			dsn, db := testDB(t)
			rec := allTypesRecord()
			defer rec.Release()
			snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "all_types", Key: []string{"id"},
				CreateTable: true, Options: map[string]string{"bulk": bulk}})
			if err := snk.Prepare(testCtx(t), rec.Schema(), false); err != nil {
				t.Fatal(err)
			}
			writeAll(t, snk, partSpec("p0", rec.Schema()), rec)

			src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "all_types", Key: []string{"id"}})
			got, _ := readAll(t, src, connectors.Range{})
			// The NULL range is empty (id is NOT NULL) and no-bounds is everything.
			if n := len(got); n != int(rec.NumRows()) {
				t.Fatalf("read %d rows, wrote %d", n, rec.NumRows())
			}
			// Schema: same Arrow types, logical types and nullability back.
			schema, _ := src.Schema(testCtx(t))
			for i, want := range rec.Schema().Fields() {
				g := schema.Field(i)
				if g.Name != want.Name || !arrow.TypeEqual(g.Type, want.Type) || g.Nullable != want.Nullable ||
					connectors.Logical(g) != connectors.Logical(want) {
					t.Errorf("field %d: got %s %s nullable=%v logical=%q, want %s %s nullable=%v logical=%q",
						i, g.Name, g.Type, g.Nullable, connectors.Logical(g), want.Name, want.Type, want.Nullable, connectors.Logical(want))
				}
			}
			// Rows come back in key order 1..5 (row 3 is the NULL row).
			order := []int{0, 1, 4, 2, 3} // position in rec of ids 1,2,3,4,5
			for gi, ri := range order {
				for c := 0; c < int(rec.NumCols()); c++ {
					want := connectors.ValueAt(rec.Column(c), ri)
					have := got[gi][c]
					name := rec.Schema().Field(c).Name
					if name == "num" && want != nil {
						// DECIMAL(65,30) pads the scale: compare as numbers.
						if normalizeNum(have.(string)) != normalizeNum(want.(string)) {
							t.Errorf("id %v %s: got %v want %v", got[gi][0], name, have, want)
						}
						continue
					}
					if !equalValues(have, want) {
						t.Errorf("id %v %s: got %#v want %#v", got[gi][0], name, have, want)
					}
				}
			}
			// The checksum, which normalizes numerics, agrees too.
			var wantSum connectors.Checksum
			wantSum.Add(rec, nil)
			if sum := checksum(t, src, connectors.Range{}); sum != wantSum {
				t.Errorf("checksum %s, want %s", sum, wantSum)
			}
			// Empty string and NULL stay apart.
			if n := count(t, db, "SELECT COUNT(*) FROM all_types WHERE s = ''"); n != 1 {
				t.Errorf("%d rows with empty s, want 1", n)
			}
			if n := count(t, db, "SELECT COUNT(*) FROM all_types WHERE s IS NULL"); n != 1 {
				t.Errorf("%d rows with NULL s, want 1", n)
			}
		})
	}
}

func normalizeNum(s string) string {
	var c connectors.Checksum
	_ = c
	b := []byte(s)
	if bytes.IndexByte(b, '.') >= 0 {
		b = bytes.TrimRight(b, "0")
		b = bytes.TrimSuffix(b, []byte("."))
	}
	return string(b)
}

func equalValues(a, b any) bool {
	switch x := a.(type) {
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.IsNaN(x) && math.IsNaN(y))
	}
	return fmt.Sprint(a) == fmt.Sprint(b) && fmt.Sprintf("%T", a) == fmt.Sprintf("%T", b)
}
