package postgres

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/datashift/datashift/connectors"
)

const typesDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE types (
  id int PRIMARY KEY,
  i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision, b boolean,
  n38 numeric(38,10), n12 numeric(12,2), nfree numeric, nbig numeric(50,5),
  t text, vc varchar(10), bp char(5), nm name, by bytea,
  d date, ts timestamp, tstz timestamptz, tm time,
  js json, jb jsonb, u uuid,
  iv interval, arr int[], ip inet, en mood
);
INSERT INTO types VALUES
(1, -32768, -2147483648, -9223372036854775808, -3.4028235e38, 'NaN', false,
 '-9999999999999999999999999999.9999999999', '-9999999999.99',
 '-123456789012345678901234567890.123456789012345678901234567890',
 '123456789012345678901234567890123456789012345.12345',
 '', 'héllo wörl', 'ab', 'name1', '\x00ff00',
 '4713-01-01 BC', '1970-01-01 00:00:00', '2000-01-01 00:00:00+00', '00:00:00',
 '{"b": 1,  "a": [1, 2]}', '{"b": 1, "a": [1, 2]}', '00000000-0000-0000-0000-000000000000',
 '1 day 02:03:04', '{1,2,NULL}', '192.168.0.1/24', 'sad'),
(2, 32767, 2147483647, 9223372036854775807, 3.4028235e38, '-Infinity', true,
 '9999999999999999999999999999.9999999999', '0.05', 'NaN', '-0.00001',
 '😀 emoji ünïcödé "quoted" \ back', '', 'abcde', 'Name_Ü', '',
 '9999-12-31', '9999-12-31 23:59:59.999999', '2024-06-30 12:34:56.789012+02', '24:00:00',
 '[]', '{"k": "üé", "n": 12345678901234567890}', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
 '00:00:00.000001', '{}', '::1', 'happy'),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(4, 0, 0, 0, 0.1, 0.1, true, '0.0000000001', '100000000', '10000.0000', '0',
 'plain', 'x', 'x', 'n', '\x01',
 '2000-02-29', '2000-02-29 12:00:00.5', '1969-12-31 23:59:59.999999+00', '12:34:56.789',
 '{"a":null}', 'null', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
 '1 mon', '{3}', '10.0.0.1', 'ok');
`

var typesCols = []string{"id", "i2", "i4", "i8", "f4", "f8", "b", "n38", "n12", "nfree", "nbig",
	"t", "vc", "bp", "nm", "by", "d", "ts", "tstz", "tm", "js", "jb", "u", "iv", "arr", "ip", "en"}

func mustUUID(s string) connectors.UUID {
	u, err := connectors.ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return u
}

func utc(y int, m time.Month, d, h, mi, s, us int) time.Time {
	return time.Date(y, m, d, h, mi, s, us*1000, time.UTC)
}

// typesWant is every row of the types table as connectors.ValueAt gives it.
var typesWant = [][]any{
	{int64(1), int64(-32768), int64(-2147483648), int64(math.MinInt64), float64(float32(-3.4028235e38)), math.NaN(), false,
		"-9999999999999999999999999999.9999999999", "-9999999999.99",
		"-123456789012345678901234567890.123456789012345678901234567890",
		"123456789012345678901234567890123456789012345.12345",
		"", "héllo wörl", "ab", "name1", []byte{0, 0xff, 0},
		utc(-4712, 1, 1, 0, 0, 0, 0), utc(1970, 1, 1, 0, 0, 0, 0), utc(2000, 1, 1, 0, 0, 0, 0), time.Duration(0),
		`{"b": 1,  "a": [1, 2]}`, `{"a": [1, 2], "b": 1}`, mustUUID("00000000-0000-0000-0000-000000000000"),
		"1 day 02:03:04", "{1,2,NULL}", "192.168.0.1/24", "sad"},
	{int64(2), int64(32767), int64(2147483647), int64(math.MaxInt64), float64(float32(3.4028235e38)), math.Inf(-1), true,
		"9999999999999999999999999999.9999999999", "0.05", "NaN", "-0.00001",
		`😀 emoji ünïcödé "quoted" \ back`, "", "abcde", "Name_Ü", []byte{},
		utc(9999, 12, 31, 0, 0, 0, 0), utc(9999, 12, 31, 23, 59, 59, 999999), utc(2024, 6, 30, 10, 34, 56, 789012), 24 * time.Hour,
		`[]`, `{"k": "üé", "n": 12345678901234567890}`, mustUUID("ffffffff-ffff-ffff-ffff-ffffffffffff"),
		"00:00:00.000001", "{}", "::1/128", "happy"},
	{int64(3), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
		nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
	{int64(4), int64(0), int64(0), int64(0), float64(float32(0.1)), 0.1, true,
		"0.0000000001", "100000000.00", "10000.0000", "0.00000",
		"plain", "x", "x", "n", []byte{1},
		utc(2000, 2, 29, 0, 0, 0, 0), utc(2000, 2, 29, 12, 0, 0, 500000), utc(1969, 12, 31, 23, 59, 59, 999999),
		12*time.Hour + 34*time.Minute + 56*time.Second + 789*time.Millisecond,
		`{"a":null}`, `null`, mustUUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
		"1 mon", "{3}", "10.0.0.1/32", "ok"},
}

// sameValue compares two plain values exactly (NaN equals NaN; JSON columns
// by their canonical form when canonJSON is set).
func sameValue(a, b any, canonJSON bool) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (x == y && math.Signbit(x) == math.Signbit(y) || math.IsNaN(x) && math.IsNaN(y))
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case string:
		y, ok := b.(string)
		if ok && canonJSON {
			cx, err1 := connectors.CanonicalJSON(x)
			cy, err2 := connectors.CanonicalJSON(y)
			return err1 == nil && err2 == nil && cx == cy
		}
		return ok && x == y
	}
	return a == b
}

func checkRows(t *testing.T, got, want [][]any, cols []string, jsonCols map[string]bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d:\n%s", len(got), len(want), fmtRows(got))
	}
	for i := range want {
		for c := range want[i] {
			if !sameValue(got[i][c], want[i][c], jsonCols[cols[c]]) {
				t.Errorf("row %d column %s: got %#v (%T), want %#v (%T)", i, cols[c], got[i][c], got[i][c], want[i][c], want[i][c])
			}
		}
	}
}

func TestTypesRead(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, typesDDL)
	src := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "types", Key: []string{"id"}, BatchRows: 3})
	schema, _ := src.Schema(testCtx(t))

	wantTypes := map[string]string{
		"id": "int32", "i2": "int16", "i8": "int64", "f4": "float32", "b": "bool",
		"n38": "decimal(38, 10)", "n12": "decimal(12, 2)", "nfree": "utf8", "nbig": "utf8",
		"t": "utf8", "bp": "utf8", "by": "binary", "d": "date32", "ts": "timestamp[us]",
		"tstz": "timestamp[us, tz=UTC]", "tm": "time64[us]", "js": "utf8", "jb": "utf8",
		"u": "fixed_size_binary[16]", "iv": "utf8", "en": "utf8",
	}
	for name, typ := range wantTypes {
		f, _ := schema.FieldsByName(name)
		if len(f) != 1 || f[0].Type.String() != typ {
			t.Errorf("field %s: got %v, want type %s", name, f, typ)
		}
	}
	logical := map[string]string{"nfree": "numeric", "nbig": "numeric", "js": "json", "jb": "json", "u": "uuid", "n12": "", "t": ""}
	for name, want := range logical {
		f, _ := schema.FieldsByName(name)
		if got := connectors.Logical(f[0]); got != want {
			t.Errorf("field %s: logical %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"iv", "arr", "ip", "en"} {
		f, _ := schema.FieldsByName(name)
		if v, _ := f[0].Metadata.GetValue(connectors.MetaSQLType); v == "" {
			t.Errorf("field %s carries no %s", name, connectors.MetaSQLType)
		}
	}
	// The declared types a sink creating its table keeps; "" for none.
	declared := map[string]string{"id": "integer", "i2": "smallint", "i8": "bigint", "n38": "numeric(38,10)",
		"nfree": "", "nbig": "numeric(50,5)", "t": "", "vc": "varchar(10)", "bp": "char(5)", "nm": "",
		"ts": "timestamp", "tstz": "timestamptz", "tm": "time", "js": "", "u": "", "iv": ""}
	for name, want := range declared {
		f, _ := schema.FieldsByName(name)
		if got, _ := f[0].Metadata.GetValue(connectors.MetaType); got != want {
			t.Errorf("field %s: %s %q, want %q", name, connectors.MetaType, got, want)
		}
	}
	if schema.Field(0).Nullable || !schema.Field(1).Nullable {
		t.Errorf("nullability: id %v, i2 %v; want false, true", schema.Field(0).Nullable, schema.Field(1).Nullable)
	}

	got := readRows(t, src, connectors.Range{})
	checkRows(t, got, typesWant, typesCols, nil)
}

// TestTypesRoundTrip writes every type through the sink, into a table it
// creates and into an existing table of the same types, and compares.
func TestTypesRoundTrip(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, typesDDL)
	src := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "types", Key: []string{"id"}, BatchRows: 2})
	want := checksum(t, src)

	t.Run("created", func(t *testing.T) {
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "types_created", Key: []string{"id"}, CreateTable: true})
		schema, _ := src.Schema(testCtx(t))
		if err := snk.Prepare(testCtx(t), schema, false); err != nil {
			t.Fatal(err)
		}
		if n := copyAll(t, src, snk, connectors.WriterSpec{Job: "types_created", Partition: "p0"}); n != 4 {
			t.Fatalf("copied %d rows, want 4", n)
		}
		back := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "types_created", Key: []string{"id"}})
		// json is created as jsonb, which reformats: compare it canonically.
		checkRows(t, readRows(t, back, connectors.Range{}), typesWant, typesCols, map[string]bool{"js": true})
		if got := checksum(t, back); got != want {
			t.Errorf("checksum of the copy %s, want %s", got, want)
		}
		// The rows went into the bare table; the key comes at the end.
		if pk := keyConstraintOf(t, conn, "types_created"); pk != "" {
			t.Errorf("the created table has %q before Complete", pk)
		}
		if err := snk.Complete(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if pk := keyConstraintOf(t, conn, "types_created"); pk != "PRIMARY KEY (id)" {
			t.Errorf("primary key of the created table: %q", pk)
		}
	})

	t.Run("existing", func(t *testing.T) {
		// Same types as the source: every encoder into its native type,
		// and interval/int[]/inet through the staging table.
		mustExec(t, conn, `CREATE TABLE types_like (LIKE types INCLUDING ALL)`)
		snk := openSink(t, connectors.SinkConfig{DSN: dsn, Table: "types_like", Key: []string{"id"}})
		schema, _ := src.Schema(testCtx(t))
		prepare(t, snk, schema)
		if n := copyAll(t, src, snk, connectors.WriterSpec{Job: "types_like", Partition: "p0"}); n != 4 {
			t.Fatalf("copied %d rows, want 4", n)
		}
		sel := "SELECT id, i2, i4, i8, f4, f8, b, n38, n12, nfree, nbig, t, vc, bp, nm, by, d, ts, tstz, tm, js::text, jb, u, iv, arr, ip, en FROM "
		for _, q := range []string{sel + "types EXCEPT " + sel + "types_like", sel + "types_like EXCEPT " + sel + "types"} {
			if n := queryInt(t, conn, "SELECT count(*) FROM ("+q+") d"); n != 0 {
				t.Errorf("%d rows differ: %s", n, q)
			}
		}
		if n := queryInt(t, conn, "SELECT count(*) FROM types_like"); n != 4 {
			t.Errorf("types_like has %d rows, want 4", n)
		}
		back := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "types_like", Key: []string{"id"}})
		checkRows(t, readRows(t, back, connectors.Range{}), typesWant, typesCols, nil)
	})
}

func TestSchemaTypesForCreate(t *testing.T) {
	// Arrow types no PostgreSQL source produces still get a column type,
	// and a nullable key gets UNIQUE (a primary key would refuse NULLs).
	fields := []arrow.Field{
		{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true}, {Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true}, {Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "Europe/Paris"}, Nullable: true},
	}
	got, err := createTableSQL(`"x"`, arrow.NewSchema(fields, nil), []string{"ls"})
	want := `CREATE TABLE IF NOT EXISTS "x" ("u8" smallint, "u64" numeric(20,0), "i8" smallint, "ls" text COLLATE "C", "ts" timestamptz, UNIQUE ("ls"))`
	if err != nil || got != want {
		t.Errorf("got %s, %v\nwant %s", got, err, want)
	}
	_, err = createTableSQL(`"x"`, arrow.NewSchema([]arrow.Field{{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)}}, nil), nil)
	if err == nil || err.Error() != `column "l": no PostgreSQL type for Arrow list<item: int32, nullable>` {
		t.Errorf("list column: %v", err)
	}
}

// A declared type PostgreSQL has is created as declared; one it lacks (or
// cannot take) falls back to the Arrow type's column type. Text keys of
// any declared length compare in byte order.
func TestCreateDeclaredTypes(t *testing.T) {
	str, num := arrow.BinaryTypes.String, connectors.WithLogical(connectors.LogicalNumeric)
	field := func(name string, typ arrow.DataType, md arrow.Metadata, declared string) arrow.Field {
		return arrow.Field{Name: name, Type: typ, Nullable: true,
			Metadata: connectors.WithDeclared(md, mustDeclared(t, typ, md, declared))}
	}
	ts := &arrow.TimestampType{Unit: arrow.Microsecond}
	tstz := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	fields := []arrow.Field{
		field("k", str, arrow.Metadata{}, "char(12)"),
		field("vc", str, arrow.Metadata{}, "varchar(20)"),
		field("vfree", str, arrow.Metadata{}, "varchar"),
		field("n", &arrow.Decimal128Type{Precision: 12, Scale: 2}, arrow.Metadata{}, "numeric(12,2)"),
		field("nw", str, num, "numeric(50,5)"),
		field("m", arrow.PrimitiveTypes.Int32, arrow.Metadata{}, "mediumint"),
		field("tu", arrow.PrimitiveTypes.Uint8, arrow.Metadata{}, "tinyint unsigned"),
		field("iu", arrow.PrimitiveTypes.Uint32, arrow.Metadata{}, "integer unsigned"),
		field("ts3", ts, arrow.Metadata{}, "timestamp(3)"),
		field("ts", ts, arrow.Metadata{}, "timestamp"),
		field("tz0", tstz, arrow.Metadata{}, "timestamptz(0)"),
		field("t2", arrow.FixedWidthTypes.Time64us, arrow.Metadata{}, "time(2)"),
		field("c0", str, arrow.Metadata{}, "char(0)"),
	}
	got, err := createTableSQL(`"x"`, arrow.NewSchema(fields, nil), []string{"k"})
	want := `CREATE TABLE IF NOT EXISTS "x" ("k" character(12) COLLATE "C", "vc" character varying(20), ` +
		`"vfree" character varying, "n" numeric(12,2), "nw" numeric(50,5), "m" integer, "tu" smallint, "iu" bigint, ` +
		`"ts3" timestamp(3) without time zone, "ts" timestamp without time zone, "tz0" timestamp(0) with time zone, ` +
		`"t2" time(2) without time zone, "c0" text, UNIQUE ("k"))`
	if err != nil || got != want {
		t.Errorf("got  %s, %v\nwant %s", got, err, want)
	}
}

func mustDeclared(t *testing.T, typ arrow.DataType, md arrow.Metadata, s string) connectors.Declared {
	t.Helper()
	f := arrow.Field{Type: typ, Metadata: arrow.NewMetadata(append(md.Keys(), connectors.MetaType), append(md.Values(), s))}
	d, ok := connectors.DeclaredType(f)
	if !ok {
		t.Fatalf("%s on %s is no declared type", s, typ)
	}
	return d
}
