package integration

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/engine"
)

// declaredFixtures hold the declared types a created sink table keeps
// (connectors/TYPES.md "Declared types"), with values that try them:
// padding, multibyte characters, full precision, fractional seconds.
var declaredFixtures = map[string][]string{
	"postgres": {
		`CREATE TABLE decl (id integer PRIMARY KEY, c84 character(84), c5 char(5), c300 char(300),
			vc varchar(20), n numeric(12,2), nw numeric(50,5), i2 smallint, i4 integer, i8 bigint,
			ts3 timestamp(3), ts timestamp, tz0 timestamptz(0), t text)`,
		`INSERT INTO decl VALUES
			(1, 'a', 'ab   ', 'x', 'varchar', 1234567890.12, 123456789012345678901234567890123456789012345.12345,
			 -32768, -2147483648, -9223372036854775808, '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.123456',
			 '2024-02-29 23:59:59+02', 'text '),
			(2, 'Ünïcödé 🚀 with trailing   ', '中文', repeat('é', 300), 'twenty characters!!!', -0.05, -0.00001,
			 32767, 2147483647, 9223372036854775807, '1000-01-01 00:00:00', '9999-12-31 23:59:59.999999',
			 '1970-01-01 00:00:01+00', ''),
			(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			(4, '', ' lead', ' ', '', 0, 0, 0, 0, 0, '2000-01-01 00:00:00.5', '2000-01-01 00:00:00.5',
			 '2038-01-19 03:14:07+00', 'x')`,
	},
	"mysql": {
		`CREATE TABLE decl (id INT PRIMARY KEY, c84 CHAR(84), c5 CHAR(5), c300 VARCHAR(300),
			vc VARCHAR(20), n DECIMAL(12,2), nw DECIMAL(50,5), i2 SMALLINT, i4 INT, i8 BIGINT,
			ts3 DATETIME(3), ts DATETIME(6), tz0 TIMESTAMP(0) NULL, t LONGTEXT,
			m MEDIUMINT, tu TINYINT UNSIGNED) CHARACTER SET utf8mb4`,
		`INSERT INTO decl VALUES
			(1, 'a', 'ab   ', 'x', 'varchar', 1234567890.12, 123456789012345678901234567890123456789012345.12345,
			 -32768, -2147483648, -9223372036854775808, '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.123456',
			 '2024-02-29 21:59:59', 'text ', -8388608, 255),
			(2, 'Ünïcödé 🚀 with trailing   ', '中文', REPEAT('é', 300), 'twenty characters!!!', -0.05, -0.00001,
			 32767, 2147483647, 9223372036854775807, '1000-01-01 00:00:00', '9999-12-31 23:59:59.999999',
			 '1970-01-01 00:00:01', '', 8388607, 0),
			(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			(4, '', ' lead', ' ', '', 0, 0, 0, 0, 0, '2000-01-01 00:00:00.5', '2000-01-01 00:00:00.5',
			 '2038-01-19 03:14:07', 'x', 0, 1)`,
	},
}

// declaredWant is the column types the sink's created table has, as
// format_type (PostgreSQL) or COLUMN_TYPE (MariaDB) shows them, per
// direction.
var declaredWant = map[string]map[string]string{
	"postgres_to_postgres": {
		"id": "integer", "c84": "character(84)", "c5": "character(5)", "c300": "character(300)",
		"vc": "character varying(20)", "n": "numeric(12,2)", "nw": "numeric(50,5)",
		"i2": "smallint", "i4": "integer", "i8": "bigint",
		"ts3": "timestamp(3) without time zone", "ts": "timestamp without time zone",
		"tz0": "timestamp(0) with time zone", "t": "text",
	},
	"postgres_to_mysql": {
		"id": "int(11)", "c84": "char(84)", "c5": "char(5)", "c300": "varchar(300)",
		"vc": "varchar(20)", "n": "decimal(12,2)", "nw": "decimal(50,5)",
		"i2": "smallint(6)", "i4": "int(11)", "i8": "bigint(20)",
		"ts3": "datetime(3)", "ts": "datetime(6)", "tz0": "datetime", "t": "longtext",
	},
	"mysql_to_postgres": {
		"id": "integer", "c84": "character(84)", "c5": "character(5)", "c300": "character varying(300)",
		"vc": "character varying(20)", "n": "numeric(12,2)", "nw": "numeric(50,5)",
		"i2": "smallint", "i4": "integer", "i8": "bigint",
		"ts3": "timestamp(3) without time zone", "ts": "timestamp(6) without time zone",
		"tz0": "timestamp(0) with time zone", "t": "text",
		// PostgreSQL has no MEDIUMINT or unsigned types: the Arrow type's.
		"m": "integer", "tu": "smallint",
	},
	"mysql_to_mysql": {
		"id": "int(11)", "c84": "char(84)", "c5": "char(5)", "c300": "varchar(300)",
		"vc": "varchar(20)", "n": "decimal(12,2)", "nw": "decimal(50,5)",
		"i2": "smallint(6)", "i4": "int(11)", "i8": "bigint(20)",
		"ts3": "datetime(3)", "ts": "datetime(6)", "tz0": "datetime", "t": "longtext",
		"m": "mediumint(9)", "tu": "tinyint(3) unsigned",
	},
}

// TestDeclaredTypesKept copies the fixture between PostgreSQL and MariaDB
// in each direction into a table the sink creates, and checks the created
// column types and that the sink holds the source's rows (checksum).
func TestDeclaredTypesKept(t *testing.T) {
	for _, from := range []string{"postgres", "mysql"} {
		for _, to := range []string{"postgres", "mysql"} {
			t.Run(from+"_to_"+to, func(t *testing.T) {
				src, dst := newStore(t, from), newStore(t, to)
				src.exec(t, declaredFixtures[from]...)
				copyNamed(t, src, "decl", dst, "decl")
				got := columnTypes(t, dst, "decl")
				want := declaredWant[from+"_to_"+to]
				if len(got) != len(want) {
					t.Errorf("created columns %v, want %v", got, want)
				}
				for col, typ := range want {
					if got[col] != typ {
						t.Errorf("column %s: created as %q, want %q", col, got[col], typ)
					}
				}
				sum := func(s store) connectors.Checksum {
					c, err := engine.TableChecksum(context.Background(), s.typ, connectors.SourceConfig{DSN: s.dsn, Table: "decl"}, nil)
					if err != nil {
						t.Fatal(err)
					}
					return c
				}
				if a, b := sum(src), sum(dst); a != b || a.Rows != 4 {
					t.Errorf("%s holds %v, %s had %v", to, b, from, a)
				}
			})
		}
	}
}

// TestDeclaredTypesThroughParquet: a Parquet dataset keeps the Arrow
// schema with its field metadata, so a table created from it has the
// declared types of the table the dataset was copied from.
func TestDeclaredTypesThroughParquet(t *testing.T) {
	src, dst := newStore(t, "postgres"), newStore(t, "mysql")
	pq := store{typ: "parquet", dsn: t.TempDir()}
	src.exec(t, declaredFixtures["postgres"]...)
	copyNamed(t, src, "decl", pq, "decl")
	copyNamed(t, pq, "decl", dst, "decl")
	got := columnTypes(t, dst, "decl")
	for col, typ := range declaredWant["postgres_to_mysql"] {
		if got[col] != typ {
			t.Errorf("column %s: created as %q, want %q", col, got[col], typ)
		}
	}
}

// TestCharExceptAll is the check a new user runs after a copy: PostgreSQL
// character(84) copied to PostgreSQL, then a plain EXCEPT ALL both ways
// against the original finds no row. Both tables are in one database so
// that the query needs nothing but SQL.
func TestCharExceptAll(t *testing.T) {
	src := newStore(t, "postgres")
	src.exec(t, declaredFixtures["postgres"]...)
	copyNamed(t, src, "decl", src, "decl_copy")
	if got := columnTypes(t, src, "decl_copy")["c84"]; got != "character(84)" {
		t.Fatalf("c84 created as %q", got)
	}
	conn, err := pgx.Connect(context.Background(), src.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// A table the user made with text columns holds char(n) values without
	// their padding, which is what PostgreSQL compares char(n) to text by.
	src.exec(t, `CREATE TABLE decl_text AS SELECT * FROM decl WITH NO DATA`,
		`ALTER TABLE decl_text ADD PRIMARY KEY (id), ALTER c84 TYPE text, ALTER c5 TYPE text, ALTER c300 TYPE text`)
	copyNamed(t, src, "decl", src, "decl_text")
	for _, q := range []string{
		"SELECT * FROM decl EXCEPT ALL SELECT * FROM decl_copy",
		"SELECT * FROM decl_copy EXCEPT ALL SELECT * FROM decl",
		"SELECT * FROM decl EXCEPT ALL SELECT * FROM decl_text",
		"SELECT * FROM decl_text EXCEPT ALL SELECT * FROM decl",
	} {
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM ("+q+") d").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows", q, n)
		}
	}
	// The padding is the type's, not the value's: the copy is stored as the
	// original is, padded to 84 characters.
	var orig, copied int
	err = conn.QueryRow(context.Background(), `SELECT (SELECT octet_length(c84) FROM decl WHERE id = 2),
		(SELECT octet_length(c84) FROM decl_copy WHERE id = 2)`).Scan(&orig, &copied)
	if err != nil {
		t.Fatal(err)
	}
	if orig != copied {
		t.Errorf("c84 of row 2: copy of %d bytes, original %d", copied, orig)
	}
}

// copyNamed copies table from src into table to of dst, which the sink
// creates.
func copyNamed(t *testing.T, src store, from string, dst store, to string) {
	t.Helper()
	db := embedded.Memory()
	s, err := db.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defer s.Close()
	job := &engine.Job{
		Name:   fmt.Sprintf("copy-%s-%s", src.typ, dst.typ),
		Source: engine.SourceSpec{Type: src.typ, DSN: src.dsn, Table: from},
		Sink:   engine.SinkSpec{Type: dst.typ, DSN: dst.dsn, Table: to, Mode: connectors.Append, CreateTable: true},
	}
	if src.typ != "parquet" { // files have no key order
		job.Source.Key = []string{"id"}
	}
	job.Normalize()
	if _, err := coordinator.RunJob(context.Background(), s, job, coordinator.RunOptions{}); err != nil {
		t.Fatalf("copy %s → %s: %v", src.typ, dst.typ, err)
	}
}

// columnTypes returns each column's declared type as the store shows it.
func columnTypes(t *testing.T, s store, table string) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.typ {
	case "postgres":
		conn, err := pgx.Connect(context.Background(), s.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		rows, err := conn.Query(context.Background(), `SELECT attname::text, format_type(atttypid, atttypmod)
			FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				t.Fatal(err)
			}
			out[name] = typ
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	case "mysql":
		db, err := sql.Open("mysql", s.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				t.Fatal(err)
			}
			out[name] = typ
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no column types for %s", s.typ)
	}
	return out
}
