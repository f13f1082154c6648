package postgres

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/datashift/datashift/connectors"
)

// One Arrow value per column, written into a column of another type: what
// the server then holds, as text.
func TestConversions(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE conv (id bigint PRIMARY KEY,
		a bigint, b integer, c smallint, d numeric, e numeric(20,0), f double precision, g double precision,
		h text, i text, j text, k text, l integer, m date, n timestamptz, o uuid, p boolean, q numeric(8,3),
		r jsonb, s timestamp, tt date, u time, v numeric, w bytea, x numeric(10,4), y inet, z interval, big numeric(38,0))`)
	mem := memory.DefaultAllocator
	type col struct {
		name string
		typ  arrow.DataType
		add  func(b array.Builder)
		want string
	}
	u := mustUUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
	ts := func(s string) arrow.Timestamp {
		v, _ := time.Parse(time.RFC3339Nano, s)
		return arrow.Timestamp(v.UnixMicro())
	}
	str := func(s string) func(b array.Builder) {
		return func(b array.Builder) { b.(*array.StringBuilder).Append(s) }
	}
	big, _ := decimal128.FromString("-12345678901234567890123456789012345678", 38, 0)
	cols := []col{
		{"id", arrow.PrimitiveTypes.Int64, func(b array.Builder) { b.(*array.Int64Builder).Append(1) }, "1"},
		{"a", arrow.PrimitiveTypes.Int32, func(b array.Builder) { b.(*array.Int32Builder).Append(-5) }, "-5"},
		{"b", arrow.PrimitiveTypes.Int16, func(b array.Builder) { b.(*array.Int16Builder).Append(7) }, "7"},
		{"c", arrow.PrimitiveTypes.Uint8, func(b array.Builder) { b.(*array.Uint8Builder).Append(255) }, "255"},
		{"d", arrow.PrimitiveTypes.Int64, func(b array.Builder) { b.(*array.Int64Builder).Append(-9223372036854775808) }, "-9223372036854775808"},
		{"e", arrow.PrimitiveTypes.Uint64, func(b array.Builder) { b.(*array.Uint64Builder).Append(18446744073709551615) }, "18446744073709551615"},
		{"f", arrow.PrimitiveTypes.Float32, func(b array.Builder) { b.(*array.Float32Builder).Append(0.5) }, "0.5"},
		{"g", arrow.PrimitiveTypes.Int64, func(b array.Builder) { b.(*array.Int64Builder).Append(1 << 53) }, "9.007199254740992e+15"},
		{"h", arrow.PrimitiveTypes.Int32, func(b array.Builder) { b.(*array.Int32Builder).Append(42) }, "42"},
		{"i", &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, func(b array.Builder) {
			b.(*array.TimestampBuilder).Append(ts("2024-01-02T03:04:05.123456Z"))
		}, "2024-01-02T03:04:05.123456Z"},
		{"j", &arrow.Decimal128Type{Precision: 5, Scale: 2}, func(b array.Builder) { b.(*array.Decimal128Builder).Append(decimal128.FromI64(12345)) }, "123.45"},
		{"k", connectors.UUIDType, func(b array.Builder) { b.(*array.FixedSizeBinaryBuilder).Append(u[:]) }, u.String()},
		{"l", arrow.BinaryTypes.String, str("123"), "123"},
		{"m", arrow.BinaryTypes.String, str("2024-02-29"), "2024-02-29"},
		{"n", arrow.BinaryTypes.String, str("2024-02-29T12:00:00+02:00"), "2024-02-29 10:00:00+00"},
		{"o", arrow.BinaryTypes.String, str("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), u.String()},
		{"p", arrow.BinaryTypes.String, str("yes"), "true"},
		{"q", arrow.BinaryTypes.String, str("1.5e2"), "150.000"},
		{"r", arrow.BinaryTypes.String, str(`{"b":2,"a":1}`), `{"a": 1, "b": 2}`},
		{"s", arrow.FixedWidthTypes.Date32, func(b array.Builder) { b.(*array.Date32Builder).Append(arrow.Date32(19783)) }, "2024-03-01 00:00:00"},
		{"tt", &arrow.TimestampType{Unit: arrow.Millisecond}, func(b array.Builder) {
			b.(*array.TimestampBuilder).Append(ts("2024-03-01T00:00:00Z") / 1000)
		}, "2024-03-01"},
		{"u", arrow.FixedWidthTypes.Time32ms, func(b array.Builder) { b.(*array.Time32Builder).Append(43200250) }, "12:00:00.25"},
		{"v", arrow.PrimitiveTypes.Float64, func(b array.Builder) { b.(*array.Float64Builder).Append(0.1) }, "0.1"},
		{"w", arrow.BinaryTypes.String, str("hi"), `\x6869`},
		{"x", &arrow.Decimal128Type{Precision: 38, Scale: 10}, func(b array.Builder) {
			b.(*array.Decimal128Builder).Append(decimal128.FromI64(123400000000))
		}, "12.3400"},
		{"y", arrow.BinaryTypes.String, str("10.1.2.3"), "10.1.2.3/32"},
		{"z", arrow.BinaryTypes.String, str("1 day 2 hours"), "1 day 02:00:00"},
		{"big", &arrow.Decimal128Type{Precision: 38, Scale: 0}, func(b array.Builder) { b.(*array.Decimal128Builder).Append(big) },
			"-12345678901234567890123456789012345678"},
	}
	fields := make([]arrow.Field, len(cols))
	arrs := make([]arrow.Array, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
		b := array.NewBuilder(mem, c.typ)
		c.add(b)
		arrs[i] = b.NewArray()
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, 1)
	defer rec.Release()
	snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "conv", Key: []string{"id"}})
	prepare(t, snk, rec.Schema())
	if err := writeBatches(t, snk, connectors.WriterSpec{Partition: "p"}, rec); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, "SET timezone = 'UTC'")
	for _, c := range cols {
		var got string
		if err := conn.QueryRow(testCtx(t), "SELECT "+quoteIdent(c.name)+"::text FROM conv").Scan(&got); err != nil || got != c.want {
			t.Errorf("column %s from %s: %q, %v; want %q", c.name, c.typ, got, err, c.want)
		}
	}
	// A type with no text form is refused when the writer opens, by name.
	lst := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "h", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true}}, nil)
	_, err := snk.OpenWriter(testCtx(t), connectors.WriterSpec{Partition: "p", Schema: lst})
	if err == nil || err.Error() != `postgres sink "conv": partition p: column "h": cannot write Arrow list<item: int32, nullable> into text` {
		t.Errorf("list into text: %v", err)
	}
}
