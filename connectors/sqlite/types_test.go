package sqlite

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

// allTypes has one column of every Arrow type of TYPES.md.
var allTypes = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
	{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
	{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
	{Name: "u16", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
	{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
	{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "dec", Type: &arrow.Decimal128Type{Precision: 38, Scale: 10}, Nullable: true},
	{Name: "num", Type: arrow.BinaryTypes.String, Nullable: true, Metadata: connectors.WithLogical(connectors.LogicalNumeric)},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "uuid", Type: connectors.UUIDType, Nullable: true, Metadata: connectors.WithLogical(connectors.LogicalUUID)},
	{Name: "js", Type: arrow.BinaryTypes.String, Nullable: true, Metadata: connectors.WithLogical(connectors.LogicalJSON)},
	{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "tstz", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "tm", Type: arrow.FixedWidthTypes.Time64us, Nullable: true},
}, nil)

func nines(n int) string { return strings.Repeat("9", n) }

func mustDec(t testing.TB, s string, p, sc int32) decimal128.Num {
	n, err := decimal128.FromString(s, p, sc)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// allTypesRows builds rows at both ends of every type's range, a row of
// NULLs, and rows of awkward text.
func allTypesRows(t testing.TB) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, allTypes)
	defer b.Release()
	ts := func(s string) arrow.Timestamp {
		tm, err := time.Parse("2006-01-02 15:04:05.999999Z07:00", s)
		if err != nil {
			t.Fatal(err)
		}
		return arrow.Timestamp(tm.UnixMicro())
	}
	date := func(s string) arrow.Date32 {
		tm, _ := time.Parse("2006-01-02", s)
		return arrow.Date32FromTime(tm)
	}
	uuid := func(s string) []byte { u, _ := connectors.ParseUUID(s); return u[:] }
	type row struct {
		i8          int8
		i16         int16
		i32         int32
		i64         int64
		u8          uint8
		u16         uint16
		u32         uint32
		u64         uint64
		f32         float32
		f64         float64
		b           bool
		dec, num, s string
		bin         []byte
		uuid, js    string
		d           string
		ts, tstz    string
		tm          time.Duration
	}
	rows := []row{
		{math.MinInt8, math.MinInt16, math.MinInt32, math.MinInt64, 0, 0, 0, 0, -math.MaxFloat32, -math.MaxFloat64, false,
			"-" + nines(28) + "." + nines(10), "-123456789012345678901234567890.123456789012345678901", "", []byte{},
			"00000000-0000-0000-0000-000000000000", `{"a":[1,2,{"b":null}],"ü":"✓"}`, "0001-01-01",
			"1900-01-01 00:00:00.000001Z", "1969-12-31 23:59:59.999999Z", 0},
		{math.MaxInt8, math.MaxInt16, math.MaxInt32, math.MaxInt64, math.MaxUint8, math.MaxUint16, math.MaxUint32, math.MaxInt64,
			math.MaxFloat32, math.MaxFloat64, true,
			nines(28) + "." + nines(10), "0.000000000000000000000000000000000000000001", "Ünïcödé 🚀✨ 中文 \x00 NUL", []byte{0, 1, 0xff, 0},
			"ffffffff-ffff-ffff-ffff-ffffffffffff", `[]`, "9999-12-31",
			"9999-12-31 23:59:59.999999Z", "2024-02-29 12:34:56.123456Z", 24*time.Hour - time.Microsecond},
		{1, -1, 7, -7, 1, 2, 3, 4, 0.1, 0.1, false,
			"0.0000000001", "42", "tab\tnew\nline 'single' \"double\" \\back", []byte("text as bytes"),
			"6ba7b810-9dad-11d1-80b4-00c04fd430c8", `"just a string"`, "1970-01-01",
			"1970-01-01 00:00:00Z", "2000-01-01 00:00:00+02:00", 12*time.Hour + 34*time.Minute + 56*time.Second},
		{0, 0, 0, 0, 0, 0, 0, 0, float32(math.SmallestNonzeroFloat32), math.SmallestNonzeroFloat64, true,
			"-0.0000000001", "-0.5", "a", []byte{0}, "0123456789abcdef0123456789ABCDEF", `{"n":12345678901234567890}`, "2024-02-29",
			"2024-02-29 23:59:59.999999Z", "2024-02-29 23:59:59.999999Z", time.Microsecond},
	}
	for id, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(int64(id))
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
		b.Field(12).(*array.Decimal128Builder).Append(mustDec(t, r.dec, 38, 10))
		b.Field(13).(*array.StringBuilder).Append(r.num)
		b.Field(14).(*array.StringBuilder).Append(r.s)
		b.Field(15).(*array.BinaryBuilder).Append(r.bin)
		b.Field(16).(*array.FixedSizeBinaryBuilder).Append(uuid(r.uuid))
		b.Field(17).(*array.StringBuilder).Append(r.js)
		b.Field(18).(*array.Date32Builder).Append(date(r.d))
		b.Field(19).(*array.TimestampBuilder).Append(ts(r.ts))
		b.Field(20).(*array.TimestampBuilder).Append(ts(r.tstz))
		b.Field(21).(*array.Time64Builder).Append(arrow.Time64(r.tm.Microseconds()))
	}
	// A row of NULLs but its key.
	b.Field(0).(*array.Int64Builder).Append(int64(len(rows)))
	for i := 1; i < len(allTypes.Fields()); i++ {
		b.Field(i).AppendNull()
	}
	return b.NewRecordBatch()
}

// plain is ValueAt with the widening SQLite's type map does: every integer
// reads back as int64, float32 as float64.
func plain(v any) any {
	switch x := v.(type) {
	case uint64:
		return int64(x)
	case []byte:
		return append([]byte{}, x...)
	}
	return v
}

func TestTypesRoundTrip(t *testing.T) {
	dsn := newDB(t)
	rec := allTypesRows(t)
	defer rec.Release()
	writeTable(t, dsn, "all_types", connectors.Append, []string{"id"}, allTypes, rec)

	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "all_types", Key: []string{"id"}})
	got, schema := readRows(t, src, connectors.Range{})
	if len(got) != int(rec.NumRows()) {
		t.Fatalf("read %d rows, wrote %d", len(got), rec.NumRows())
	}
	for i := 0; i < int(rec.NumRows()); i++ {
		for j, f := range allTypes.Fields() {
			want := plain(connectors.ValueAt(rec.Column(j), i))
			if !reflect.DeepEqual(got[i][j], want) {
				t.Errorf("row %d column %s: got %#v, want %#v", i, f.Name, got[i][j], want)
			}
		}
	}

	// The Arrow types coming back: integers widen to int64, float32 to
	// float64, everything else is the type written, logical types included.
	wantTypes := map[string]string{"i8": "int64", "u64": "int64", "f32": "float64", "dec": "decimal(38, 10)",
		"num": "utf8", "uuid": "fixed_size_binary[16]", "d": "date32", "ts": "timestamp[us]",
		"tstz": "timestamp[us, tz=UTC]", "tm": "time64[us]", "bin": "binary", "b": "bool"}
	for name, typ := range wantTypes {
		f, _ := schema.FieldsByName(name)
		if f[0].Type.String() != typ {
			t.Errorf("column %s reads as %s, want %s", name, f[0].Type, typ)
		}
	}
	for name, logical := range map[string]string{"num": "numeric", "uuid": "uuid", "js": "json", "s": ""} {
		f, _ := schema.FieldsByName(name)
		if got := connectors.Logical(f[0]); got != logical {
			t.Errorf("column %s: logical type %q, want %q", name, got, logical)
		}
	}
	if f, _ := schema.FieldsByName("id"); f[0].Nullable {
		t.Error("id, an INTEGER PRIMARY KEY, reads as nullable")
	}
	if f, _ := schema.FieldsByName("s"); !f[0].Nullable {
		t.Error("s reads as NOT NULL")
	}

	// A checksum over the same rows agrees (it normalizes int widths).
	var want connectors.Checksum
	want.Add(rec, nil)
	if got := checksum(t, src, connectors.Range{}); got != want {
		t.Errorf("checksum: got %v, want %v", got, want)
	}
}

// TestStoredForm checks what the sink stores, through another client: the
// declared types of TYPES.md and text layouts that sort by bytes in value
// order.
func TestStoredForm(t *testing.T) {
	dsn := newDB(t)
	rec := allTypesRows(t)
	defer rec.Release()
	writeTable(t, dsn, "all_types", connectors.Append, []string{"id"}, allTypes, rec)
	db := sqlDB(t, dsn)

	decl := map[string]string{}
	rows, err := db.Query(`SELECT name, type, "notnull", pk FROM pragma_table_info('all_types')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, typ string
		var notnull, pk int
		if err := rows.Scan(&name, &typ, &notnull, &pk); err != nil {
			t.Fatal(err)
		}
		decl[name] = typ
		if name == "id" && (pk != 1 || typ != "INTEGER") {
			t.Errorf("id: declared %s pk=%d, want the INTEGER PRIMARY KEY", typ, pk)
		}
	}
	rows.Close()
	wantDecl := map[string]string{"i8": "INTEGER", "u64": "INTEGER", "f32": "REAL", "b": "BOOLEAN",
		"dec": "DECIMAL_TEXT(38,10)", "num": "DECIMAL_TEXT", "s": "TEXT", "bin": "BLOB", "uuid": "UUID_TEXT",
		"js": "JSON_TEXT", "d": "DATE_TEXT", "ts": "TIMESTAMP_TEXT", "tstz": "TIMESTAMPTZ_TEXT", "tm": "TIME_TEXT"}
	for col, typ := range wantDecl {
		if decl[col] != typ {
			t.Errorf("column %s declared %q, want %q", col, decl[col], typ)
		}
	}

	var dec, num, uuid, d, ts, tstz, tm, tDec, tB, tBin string
	var b int64
	err = db.QueryRow(`SELECT dec, num, uuid, d, ts, tstz, tm, typeof(dec), typeof(b), b, typeof(bin) FROM all_types WHERE id = 3`).
		Scan(&dec, &num, &uuid, &d, &ts, &tstz, &tm, &tDec, &tB, &b, &tBin)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{dec, num, uuid, d, ts, tstz, tm, tDec, tB, tBin}
	want := []string{"-0.0000000001", "-0.5", "01234567-89ab-cdef-0123-456789abcdef", "2024-02-29",
		"2024-02-29 23:59:59.999999", "2024-02-29T23:59:59.999999Z", "00:00:00.000001", "text", "integer", "blob"}
	if !reflect.DeepEqual(got, want) || b != 1 {
		t.Errorf("stored forms:\n got %q (b=%d)\nwant %q (b=1)", got, b, want)
	}
	// Empty text and empty blob are not NULL.
	var nullS, nullBin int
	if err := db.QueryRow(`SELECT s IS NULL, bin IS NULL FROM all_types WHERE id = 0`).Scan(&nullS, &nullBin); err != nil {
		t.Fatal(err)
	}
	if nullS != 0 || nullBin != 0 {
		t.Errorf("empty text/blob stored as NULL (s %d, bin %d)", nullS, nullBin)
	}
}

// TestForeignTypes reads a table made by someone else, with the usual
// declared types and values stored the ways SQLite lets them be.
func TestForeignTypes(t *testing.T) {
	dsn := newDB(t)
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE f (
		id INT PRIMARY KEY, big BIGINT, r DOUBLE, fl FLOAT, v VARCHAR(20), bl BLOB, flag BOOLEAN,
		d DATE, dt DATETIME, tsx TIMESTAMP, price NUMERIC(10,2), amount DECIMAL, anything, whatever STRING)`)
	// NUMERIC affinity turns the text '1e3' in amount into the integer 1000.
	mustExec(t, db, `INSERT INTO f VALUES
		(1, 9007199254740993, 1.5, 2, 'ascii', x'00ff', 1, '2024-01-31', '2024-01-31 10:20:30', 1700000000, '12.34', '1e3', 1, 'x'),
		(2, -1, -0.25, 3.5, 'ü', x'', 0, 19723*86400, '2024-01-31T10:20:30.5Z', '2024-01-31 10:20:30+02:00', 5, 7, 2, 'y'),
		(3, NULL, NULL, NULL, NULL, NULL, 'true', NULL, 1706696430, NULL, 1.5, '-0.001', 3, NULL)`)

	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "f", Key: []string{"id"}})
	schema, _ := src.Schema(context.Background())
	wantTypes := []string{"int64", "int64", "float64", "float64", "utf8", "binary", "bool", "date32", "timestamp[us]",
		"timestamp[us]", "decimal(10, 2)", "utf8", "int64", "utf8"}
	for i, f := range schema.Fields() {
		if f.Type.String() != wantTypes[i] {
			t.Errorf("column %s (%s) reads as %s, want %s", f.Name, f.Metadata.Values(), f.Type, wantTypes[i])
		}
	}
	if f, _ := schema.FieldsByName("id"); !f[0].Nullable {
		t.Error("id INT PRIMARY KEY (not the rowid) may hold NULL in SQLite, but reads as NOT NULL")
	}
	got, _ := readRows(t, src, connectors.Range{})
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC()
	}
	want := [][]any{
		{int64(1), int64(9007199254740993), 1.5, 2.0, "ascii", []byte{0, 0xff}, true, at("2024-01-31T00:00:00Z"),
			at("2024-01-31T10:20:30Z"), at("2023-11-14T22:13:20Z"), "12.34", "1000", int64(1), "x"},
		{int64(2), int64(-1), -0.25, 3.5, "ü", []byte{}, false, at("2024-01-01T00:00:00Z"),
			at("2024-01-31T10:20:30.5Z"), at("2024-01-31T08:20:30Z"), "5.00", "7", int64(2), "y"},
		{int64(3), nil, nil, nil, nil, nil, true, nil, at("2024-01-31T10:20:30Z"), nil, "1.50", "-0.001", int64(3), nil},
	}
	if !reflect.DeepEqual(got, want) {
		for i := range want {
			for j := range want[i] {
				if i < len(got) && !reflect.DeepEqual(got[i][j], want[i][j]) {
					t.Errorf("row %d column %s: got %#v, want %#v", i, schema.Field(j).Name, got[i][j], want[i][j])
				}
			}
		}
	}
}

// TestValueErrors: a value the target cannot hold, or a stored value that
// contradicts its declared type, fails naming the column and the row's key.
func TestValueErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("uint64 too big", func(t *testing.T) {
		dsn := newDB(t)
		schema := arrow.NewSchema([]arrow.Field{
			{Name: "k", Type: arrow.BinaryTypes.String},
			{Name: "n", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
		}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.StringBuilder).AppendValues([]string{"fine", "too-big"}, nil)
		b.Field(1).(*array.Uint64Builder).AppendValues([]uint64{math.MaxInt64, math.MaxInt64 + 1}, nil)
		rec := b.NewRecordBatch()
		defer rec.Release()
		s, err := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dsn, Table: "t", Key: []string{"k"}, CreateTable: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Prepare(ctx, schema, false); err != nil {
			t.Fatal(err)
		}
		spec := connectors.WriterSpec{Job: "j", Run: "r1", Partition: "p", Lease: 1, Schema: schema}
		claim(t, s, spec)
		w, err := s.OpenWriter(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.Write(ctx, rec); err != nil {
			t.Fatal(err)
		}
		err = w.Commit(ctx, connectors.CommitRecord{Job: "j", Run: "r1", Partition: "p", Lease: 1, Rows: 2, Commits: 1})
		var ve *connectors.ValueError
		if !errors.As(err, &ve) || ve.Column != "n" || connectors.CompareKeys(ve.Key, connectors.Key{"too-big"}) != 0 {
			t.Fatalf("commit: got %v, want a ValueError for column n, key \"too-big\"", err)
		}
		if want := `column "n", row with key "too-big": value 9223372036854775808: greater than the largest SQLite integer`; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("message %q, want it to start with %q", err, want)
		}
		// Nothing of the failed commit stays, not even the good row or
		// the record.
		var n int
		if err := sqlDB(t, dsn).QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
			t.Errorf("after the failed commit the table holds %d rows (%v), want 0", n, err)
		}
		if got := claim(t, s, spec); got.Commits != 0 || got.Rows != 0 {
			t.Errorf("after the failed commit the record is %+v, want nothing committed", got)
		}
	})
	t.Run("text in an INTEGER column", func(t *testing.T) {
		dsn := newDB(t)
		db := sqlDB(t, dsn)
		mustExec(t, db, `CREATE TABLE t (name TEXT PRIMARY KEY, qty INTEGER)`)
		mustExec(t, db, `INSERT INTO t VALUES ('a', 1), ('b', '2'), ('c', 'abc'), ('d', 4)`)
		src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "t", Key: []string{"name"}, Columns: []string{"qty"}})
		err := src.Read(ctx, connectors.Range{}, func(arrow.RecordBatch) error { return nil })
		var ve *connectors.ValueError
		if !errors.As(err, &ve) || ve.Column != "qty" || connectors.CompareKeys(ve.Key, connectors.Key{"c"}) != 0 {
			t.Fatalf("read: got %v, want a ValueError for column qty, key \"c\"", err)
		}
		if !strings.Contains(err.Error(), `value "abc": text value in a integer column`) {
			t.Errorf("message %q does not say what is wrong", err)
		}
	})
	t.Run("NaN", func(t *testing.T) {
		dsn := newDB(t)
		schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "x", Type: arrow.PrimitiveTypes.Float64}}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.Int64Builder).Append(7)
		b.Field(1).(*array.Float64Builder).Append(math.NaN())
		rec := b.NewRecordBatch()
		defer rec.Release()
		s, _ := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dsn, Table: "t", Key: []string{"id"}, CreateTable: true})
		if err := s.Prepare(ctx, schema, false); err != nil {
			t.Fatal(err)
		}
		spec := connectors.WriterSpec{Job: "j", Run: "r1", Partition: "p", Lease: 1, Schema: schema}
		claim(t, s, spec)
		w, _ := s.OpenWriter(ctx, spec)
		defer w.Close()
		w.Write(ctx, rec)
		err := w.Commit(ctx, connectors.CommitRecord{Lease: 1, Rows: 1, Commits: 1})
		var ve *connectors.ValueError
		if !errors.As(err, &ve) || ve.Column != "x" || connectors.CompareKeys(ve.Key, connectors.Key{int64(7)}) != 0 {
			t.Fatalf("got %v, want a ValueError for column x, key 7", err)
		}
	})
	t.Run("decimal wider than the column", func(t *testing.T) {
		dsn := newDB(t)
		db := sqlDB(t, dsn)
		mustExec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, amount DECIMAL_TEXT(5,2))`)
		schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "amount", Type: &arrow.Decimal128Type{Precision: 10, Scale: 3}}}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2}, nil)
		b.Field(1).(*array.Decimal128Builder).AppendValues([]decimal128.Num{mustDec(t, "123.450", 10, 3), mustDec(t, "1.005", 10, 3)}, nil)
		rec := b.NewRecordBatch()
		defer rec.Release()
		s, _ := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dsn, Table: "t", Key: []string{"id"}})
		if err := s.Prepare(ctx, schema, false); err != nil {
			t.Fatal(err)
		}
		spec := connectors.WriterSpec{Job: "j", Run: "r1", Partition: "p", Lease: 1, Schema: schema}
		claim(t, s, spec)
		w, err := s.OpenWriter(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		w.Write(ctx, rec)
		err = w.Commit(ctx, connectors.CommitRecord{Lease: 1, Rows: 2, Commits: 1})
		var ve *connectors.ValueError
		if !errors.As(err, &ve) || ve.Column != "amount" || connectors.CompareKeys(ve.Key, connectors.Key{int64(2)}) != 0 ||
			!strings.Contains(err.Error(), "more fractional digits than the column's scale") {
			t.Fatalf("got %v, want a ValueError for amount of key 2 (1.005 in DECIMAL(5,2))", err)
		}
	})
}
