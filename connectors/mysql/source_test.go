package mysql

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

// A table written by hand with MariaDB's own types reads with the TYPES.md
// mapping, correct nullability and the declared type in the metadata.
func TestReadNativeTypes(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE native ("+
		"id INT UNSIGNED NOT NULL PRIMARY KEY,"+
		"flag TINYINT(1) NOT NULL,"+
		"bit1 BIT(1), bits BIT(10),"+
		"med MEDIUMINT, umed MEDIUMINT UNSIGNED, yr YEAR,"+
		"f FLOAT, d DOUBLE, dec65 DECIMAL(65,30), dec0 DECIMAL(20,0),"+
		"e ENUM('small','large'), st SET('a','b','c'),"+
		"lat VARCHAR(20) CHARACTER SET latin1,"+
		"fixed CHAR(4), vb VARBINARY(8), bn BINARY(4), tt TINYTEXT,"+
		"j JSON, u UUID, dt3 DATETIME(3), ts TIMESTAMP NULL, tm TIME(2),"+
		"g POINT, ip INET6)")
	exec(t, db, `INSERT INTO native VALUES (1, 1, b'1', b'1010101010', -8388608, 16777215, 2155,
		3.1415927, 2.718281828459045, -12345678901234567890123456789012345.123456789012345678901234567890, 12345678901234567890,
		'large', 'a,c', 'Ünïcödé', 'ab', X'00FF0A', X'0102', 'tiny',
		'{"k": [1, "ü"]}', '123e4567-e89b-12d3-a456-426614174000', '2001-02-03 04:05:06.789',
		'2020-05-06 07:08:09', '-838:59:59.99', ST_GeomFromText('POINT(1 2)'), '::1')`)
	exec(t, db, `INSERT INTO native (id, flag) VALUES (2, 0)`)

	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "native", Key: []string{"id"}})
	schema, _ := src.Schema(testCtx(t))
	want := []struct {
		name     string
		typ      arrow.DataType
		nullable bool
		logical  string
		sqltype  string
		declared string // connectors.MetaType
	}{
		{"id", arrow.PrimitiveTypes.Uint32, false, "", "int(10) unsigned", "integer unsigned"},
		{"flag", arrow.FixedWidthTypes.Boolean, false, "", "tinyint(1)", ""},
		{"bit1", arrow.FixedWidthTypes.Boolean, true, "", "bit(1)", ""},
		{"bits", arrow.PrimitiveTypes.Uint16, true, "", "bit(10)", ""},
		{"med", arrow.PrimitiveTypes.Int32, true, "", "mediumint(9)", "mediumint"},
		{"umed", arrow.PrimitiveTypes.Uint32, true, "", "mediumint(8) unsigned", "mediumint unsigned"},
		{"yr", arrow.PrimitiveTypes.Int16, true, "", "year(4)", ""},
		{"f", arrow.PrimitiveTypes.Float32, true, "", "float", ""},
		{"d", arrow.PrimitiveTypes.Float64, true, "", "double", ""},
		{"dec65", arrow.BinaryTypes.String, true, connectors.LogicalNumeric, "decimal(65,30)", "numeric(65,30)"},
		{"dec0", &arrow.Decimal128Type{Precision: 20, Scale: 0}, true, "", "decimal(20,0)", "numeric(20,0)"},
		{"e", arrow.BinaryTypes.String, true, "", "enum('small','large')", ""},
		{"st", arrow.BinaryTypes.String, true, "", "set('a','b','c')", ""},
		{"lat", arrow.BinaryTypes.String, true, "", "varchar(20)", "varchar(20)"},
		{"fixed", arrow.BinaryTypes.String, true, "", "char(4)", "char(4)"},
		{"vb", arrow.BinaryTypes.Binary, true, "", "varbinary(8)", ""},
		{"bn", arrow.BinaryTypes.Binary, true, "", "binary(4)", ""},
		{"tt", arrow.BinaryTypes.String, true, "", "tinytext", ""},
		{"j", arrow.BinaryTypes.String, true, connectors.LogicalJSON, "json", ""},
		{"u", connectors.UUIDType, true, connectors.LogicalUUID, "uuid", ""},
		{"dt3", &arrow.TimestampType{Unit: arrow.Microsecond}, true, "", "datetime(3)", "timestamp(3)"},
		{"ts", &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, true, "", "timestamp", "timestamptz(0)"},
		{"tm", arrow.FixedWidthTypes.Time64us, true, "", "time(2)", "time(2)"},
		{"g", arrow.BinaryTypes.String, true, "", "point", ""},
		{"ip", arrow.BinaryTypes.String, true, "", "inet6", ""},
	}
	if schema.NumFields() != len(want) {
		t.Fatalf("schema has %d fields, want %d: %s", schema.NumFields(), len(want), schema)
	}
	for i, w := range want {
		f := schema.Field(i)
		sqlType, _ := f.Metadata.GetValue(connectors.MetaSQLType)
		declared, _ := f.Metadata.GetValue(connectors.MetaType)
		if f.Name != w.name || !arrow.TypeEqual(f.Type, w.typ) || f.Nullable != w.nullable ||
			connectors.Logical(f) != w.logical || sqlType != w.sqltype || declared != w.declared {
			t.Errorf("field %d: got %s %s nullable=%v logical=%q sqltype=%q declared=%q; want %s %s %v %q %q %q",
				i, f.Name, f.Type, f.Nullable, connectors.Logical(f), sqlType, declared, w.name, w.typ, w.nullable, w.logical, w.sqltype, w.declared)
		}
	}
	rows, _ := readAll(t, src, connectors.Range{})
	if len(rows) != 2 {
		t.Fatalf("read %d rows, want 2", len(rows))
	}
	u, _ := connectors.ParseUUID("123e4567-e89b-12d3-a456-426614174000")
	wantRow := []any{uint64(1), true, true, uint64(0b1010101010), int64(-8388608), uint64(16777215), int64(2155),
		float64(float32(3.1415927)), 2.718281828459045,
		"-12345678901234567890123456789012345.123456789012345678901234567890", "12345678901234567890",
		"large", "a,c", "Ünïcödé", "ab", []byte{0, 0xff, 0x0a}, []byte{1, 2, 0, 0}, "tiny",
		`{"k": [1, "ü"]}`, u,
		time.Date(2001, 2, 3, 4, 5, 6, 789e6, time.UTC), time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC),
		-(838*time.Hour + 59*time.Minute + 59*time.Second + 990*time.Millisecond),
		"POINT(1 2)", "::1"}
	for i, w := range wantRow {
		if !equalValues(rows[0][i], w) {
			t.Errorf("%s: got %#v, want %#v", want[i].name, rows[0][i], w)
		}
	}
	// Row 2: every nullable column NULL, the flag false.
	for i, v := range rows[1] {
		if i >= 2 && v != nil {
			t.Errorf("row 2 %s: got %#v, want NULL", want[i].name, v)
		}
	}
	if rows[1][1] != false {
		t.Errorf("row 2 flag = %v", rows[1][1])
	}
}

// A tinyint(1) holding something other than 0/1 is not silently made true,
// and a zero date is not made 0001-01-01: both fail naming column and key.
func TestReadUnrepresentable(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE odd (id INT PRIMARY KEY, flag TINYINT(1), d DATE)")
	exec(t, db, "INSERT INTO odd VALUES (1, 1, '2001-01-01'), (7, 5, '2001-01-01')")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "odd", Key: []string{"id"}})
	_, _, err := tryReadAll(src, connectors.Range{})
	var ve *connectors.ValueError
	if !errors.As(err, &ve) || ve.Column != "flag" || connectors.CompareKeys(ve.Key, connectors.Key{int64(7)}) != 0 {
		t.Fatalf("got %v, want a ValueError for flag of key 7", err)
	}
	if !strings.Contains(err.Error(), "not a boolean") {
		t.Errorf("error %q does not say why", err)
	}

	exec(t, db, "UPDATE odd SET flag = 0")
	exec(t, db, "SET SESSION sql_mode = ''")
	exec(t, db, "CREATE TABLE zero (id INT PRIMARY KEY, d DATE)")
	conn, err := db.Conn(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(testCtx(t), "SET SESSION sql_mode = ''"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(testCtx(t), "INSERT INTO zero VALUES (1, '2001-01-01'), (2, '0000-00-00')"); err != nil {
		t.Fatal(err)
	}
	src = openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "zero", Key: []string{"id"}})
	_, _, err = tryReadAll(src, connectors.Range{})
	if !errors.As(err, &ve) || ve.Column != "d" || connectors.CompareKeys(ve.Key, connectors.Key{int64(2)}) != 0 {
		t.Fatalf("got %v, want a ValueError for d of key 2", err)
	}
}

// Batches respect BatchRows and BatchBytes, and Columns selects and orders.
func TestBatchesAndColumns(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE b (id INT PRIMARY KEY, s TEXT, n INT)")
	exec(t, db, "INSERT INTO b SELECT seq, REPEAT('x', 1000), seq * 2 FROM seq_1_to_1000")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "b", Key: []string{"id"}, BatchRows: 300})
	rows, batches := readAll(t, src, connectors.Range{})
	if len(rows) != 1000 || batches != 4 {
		t.Errorf("BatchRows 300: %d rows in %d batches, want 1000 in 4", len(rows), batches)
	}
	src = openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "b", Key: []string{"id"}, BatchBytes: 100 << 10})
	rows, batches = readAll(t, src, connectors.Range{})
	// ~1 KB a row: a 100 KB batch holds about 100 rows.
	if len(rows) != 1000 || batches < 9 || batches > 11 {
		t.Errorf("BatchBytes 100KiB: %d rows in %d batches, want 1000 in about 10", len(rows), batches)
	}
	src = openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "b", Key: []string{"id"}, Columns: []string{"n", "id"}})
	rows, _ = readAll(t, src, connectors.Range{Lo: connectors.Key{int64(10)}, Hi: connectors.Key{int64(12)}})
	if len(rows) != 2 || rows[0][0] != int64(20) || rows[0][1] != int64(10) || rows[1][1] != int64(11) {
		t.Errorf("Columns n,id over [10,12): %v", rows)
	}
}

// A query source reads its result as a table, with ranges on its key.
func TestQuerySource(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE o (id BIGINT PRIMARY KEY, cust VARCHAR(10), amount DECIMAL(10,2))")
	exec(t, db, "INSERT INTO o VALUES (1,'a',1.50),(2,'b',2.25),(3,'a',3.00),(4,'c',4.75)")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn,
		Query: "SELECT id, cust, amount * 2 AS doubled FROM o WHERE cust <> 'c'", Key: []string{"id"},
		Where: "doubled > 3"})
	schema, _ := src.Schema(testCtx(t))
	if !arrow.TypeEqual(schema.Field(2).Type, &arrow.Decimal128Type{Precision: 11, Scale: 2}) || schema.Field(0).Nullable {
		t.Errorf("query schema: %s", schema)
	}
	rows, _ := readAll(t, src, connectors.Range{After: connectors.Key{int64(1)}})
	if len(rows) != 2 || rows[0][0] != int64(2) || rows[0][2] != "4.50" || rows[1][0] != int64(3) {
		t.Errorf("query rows after 1: %v", rows)
	}
	n, err := src.Count(testCtx(t), connectors.Range{})
	if err != nil || n != 2 {
		t.Errorf("count = %d, %v; want 2", n, err)
	}
}

// Configuration errors name what is wrong before anything is read, and a
// DSN's password never shows.
func TestSourceConfigErrors(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, s TEXT, tm TIME)")
	ctx := testCtx(t)
	cases := []struct {
		cfg  connectors.SourceConfig
		want string
	}{
		{connectors.SourceConfig{DSN: dsn}, "set Table or Query"},
		{connectors.SourceConfig{DSN: dsn, Table: "t", Query: "SELECT 1"}, "not both"},
		{connectors.SourceConfig{DSN: dsn, Table: "nope"}, "table " + dbName(dsn) + ".nope does not exist"},
		{connectors.SourceConfig{DSN: dsn, Table: "t", Key: []string{"idd"}}, `key column "idd" not found in table`},
		{connectors.SourceConfig{DSN: dsn, Table: "t", Key: []string{"tm"}}, `key column "tm": TIME keys are not supported`},
		{connectors.SourceConfig{DSN: dsn, Table: "t", Columns: []string{"id", "zz"}}, `column "zz" not found`},
		{connectors.SourceConfig{DSN: dsn, Table: "t", Key: []string{"id"}, Columns: []string{"s"}}, `key column "id" must be among Columns`},
		{connectors.SourceConfig{DSN: dsn, Table: "t", Options: map[string]string{"fetch": "1"}}, `unknown option "fetch"`},
		{connectors.SourceConfig{DSN: dsn, Table: "t", Where: "nosuch > 1"}, `Where "nosuch > 1"`},
		{connectors.SourceConfig{DSN: dsn, Query: "SELECT nosuch FROM t"}, "Unknown column 'nosuch'"},
		{connectors.SourceConfig{DSN: "root:s3cret@tcp(127.0.0.1:1)/x"}, "set Table or Query"},
		{connectors.SourceConfig{DSN: "root:s3cret@tcp(127.0.0.1:1)/x", Table: "t"}, "connect to root:xxxxx@tcp(127.0.0.1:1)/x"},
		{connectors.SourceConfig{DSN: strings.Replace(dsn, "root@", "root:s3cret@", 1), Table: "t"}, "Access denied"},
	}
	for _, c := range cases {
		_, err := connectors.OpenSource(ctx, TypeName, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error containing %q", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func dbName(dsn string) string { return dsn[strings.LastIndex(dsn, "/")+1:] }

// PrimaryKey names the key's columns in key order, not table order; none
// for a table without one or a query.
func TestPrimaryKey(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE composite (a VARCHAR(8) NOT NULL, b INT, c INT NOT NULL, PRIMARY KEY (c, a))")
	exec(t, db, "CREATE TABLE heap (id INT, UNIQUE KEY (id))")
	for _, tc := range []struct {
		cfg  connectors.SourceConfig
		want []string
	}{
		{connectors.SourceConfig{DSN: dsn, Table: "composite"}, []string{"c", "a"}},
		{connectors.SourceConfig{DSN: dsn, Table: "heap"}, nil},
		{connectors.SourceConfig{DSN: dsn, Query: "SELECT * FROM composite"}, nil},
	} {
		got, err := openSrc(t, tc.cfg).PrimaryKey(testCtx(t))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s%s: primary key %v (%v), want %v", tc.cfg.Table, tc.cfg.Query, got, err, tc.want)
		}
	}
}
