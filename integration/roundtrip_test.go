package integration

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// typed columns every SQL store holds, compared one by one.
var typedColumns = []string{"i16", "i32", "i64", "num", "f32", "f64", "b", "t", "bin", "d", "ts", "tstz", "j", "u"}

// Native DDL and rows per store: the fixture is written by each store's own
// SQL, so a copy is compared against what the store itself made.
var fixtures = map[string][]string{
	"postgres": {
		`CREATE TABLE types (id bigint PRIMARY KEY, i16 smallint, i32 integer, i64 bigint, num numeric(38,10),
			f32 real, f64 double precision, b boolean, t text, bin bytea, d date, ts timestamp, tstz timestamptz, j jsonb, u uuid)`,
		`INSERT INTO types VALUES
			(1, -32768, -2147483648, -9223372036854775808, -9999999999999999999999999999.9999999999, -1.25, -1.7976931348623157e308, false,
			 '', '\x'::bytea, '0001-01-01', '1000-01-01 00:00:00', '1970-01-01 00:00:01+00', '[]', '00000000-0000-0000-0000-000000000000'),
			(2, 32767, 2147483647, 9223372036854775807, 9999999999999999999999999999.9999999999, 1024.75, 1.7976931348623157e308, true,
			 'Ünïcödé 🚀✨ 中文 "q" \ tab	end', '\x00ff7f80'::bytea, '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999+00',
			 '{"a": [1, 2.5, "x"], "b": null, "ü": "🚀"}', 'ffffffff-ffff-4fff-bfff-ffffffffffff'),
			(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			(4, 0, 0, 0, 0.0000000001, 0.5, 0.1, true, e'line\nbreak', '\x00'::bytea, '2024-02-29', '2024-02-29 12:34:56.123456',
			 '2024-02-29 23:59:59.5+02', '{"n": 12345678901234567890}', '0190c8a4-7b3e-7c1a-9d2f-1234567890ab')`,
	},
	"mysql": {
		`CREATE TABLE types (id BIGINT PRIMARY KEY, i16 SMALLINT, i32 INT, i64 BIGINT, num DECIMAL(38,10),
			f32 FLOAT, f64 DOUBLE, b BOOLEAN, t LONGTEXT, bin LONGBLOB, d DATE, ts DATETIME(6), tstz TIMESTAMP(6) NULL, j JSON, u UUID) CHARACTER SET utf8mb4`,
		`INSERT INTO types VALUES
			(1, -32768, -2147483648, -9223372036854775808, -9999999999999999999999999999.9999999999, -1.25, -1.7976931348623157e308, false,
			 '', x'', '0001-01-01', '1000-01-01 00:00:00', '1970-01-01 00:00:01', '[]', '00000000-0000-0000-0000-000000000000'),
			(2, 32767, 2147483647, 9223372036854775807, 9999999999999999999999999999.9999999999, 1024.75, 1.7976931348623157e308, true,
			 'Ünïcödé 🚀✨ 中文 "q" \\ tab	end', x'00ff7f80', '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999',
			 '{"a": [1, 2.5, "x"], "b": null, "ü": "🚀"}', 'ffffffff-ffff-4fff-bfff-ffffffffffff'),
			(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			(4, 0, 0, 0, 0.0000000001, 0.5, 0.1, true, 'line\nbreak', x'00', '2024-02-29', '2024-02-29 12:34:56.123456',
			 '2024-02-29 21:59:59.5', '{"n": 12345678901234567890}', '0190c8a4-7b3e-7c1a-9d2f-1234567890ab')`,
	},
	"sqlite": {
		`CREATE TABLE types (id INTEGER PRIMARY KEY, i16 INTEGER, i32 INTEGER, i64 INTEGER, num DECIMAL_TEXT(38,10),
			f32 REAL, f64 REAL, b BOOLEAN, t TEXT, bin BLOB, d DATE_TEXT, ts TIMESTAMP_TEXT, tstz TIMESTAMPTZ_TEXT, j JSON_TEXT, u UUID_TEXT)`,
		`INSERT INTO types VALUES
			(1, -32768, -2147483648, -9223372036854775808, '-9999999999999999999999999999.9999999999', -1.25, -1.7976931348623157e308, 0,
			 '', x'', '0001-01-01', '1000-01-01 00:00:00.000000', '1970-01-01T00:00:01.000000Z', '[]', '00000000-0000-0000-0000-000000000000'),
			(2, 32767, 2147483647, 9223372036854775807, '9999999999999999999999999999.9999999999', 1024.75, 1.7976931348623157e308, 1,
			 'Ünïcödé 🚀✨ 中文 "q" \ tab	end', x'00ff7f80', '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19T03:14:07.999999Z',
			 '{"a": [1, 2.5, "x"], "b": null, "ü": "🚀"}', 'ffffffff-ffff-4fff-bfff-ffffffffffff'),
			(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			(4, 0, 0, 0, '0.0000000001', 0.5, 0.1, 1, 'line' || char(10) || 'break', x'00', '2024-02-29', '2024-02-29 12:34:56.123456',
			 '2024-02-29T21:59:59.500000Z', '{"n": 12345678901234567890}', '0190c8a4-7b3e-7c1a-9d2f-1234567890ab')`,
	},
}

type store struct {
	typ, dsn string
	exec     func(t *testing.T, stmts ...string)
}

func newStore(t *testing.T, typ string) store {
	switch typ {
	case "postgres":
		dsn := testenv.Postgres(t)
		return store{typ, dsn, func(t *testing.T, s ...string) { pgExec(t, dsn, s...) }}
	case "mysql":
		dsn := testenv.MySQL(t)
		return store{typ, dsn, func(t *testing.T, s ...string) { sqlExec(t, "mysql", dsn+"?time_zone=%27%2B00%3A00%27", s...) }}
	default:
		dsn := filepath.Join(t.TempDir(), "db.sqlite")
		return store{typ, dsn, func(t *testing.T, s ...string) { sqlExec(t, "sqlite", dsn, s...) }}
	}
}

func sqlExec(t *testing.T, driver, dsn string, stmts ...string) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// columnSums are per-column checksums over (id, column), so a mismatch names
// the column that changed.
func columnSums(t *testing.T, typ, dsn string) map[string]connectors.Checksum {
	t.Helper()
	out := map[string]connectors.Checksum{}
	for _, c := range typedColumns {
		sum, err := engine.TableChecksum(context.Background(), typ, connectors.SourceConfig{DSN: dsn, Table: "types"}, []string{"id", c})
		if err != nil {
			t.Fatalf("%s column %s: %v", typ, c, err)
		}
		out[c] = sum
	}
	return out
}

// TestRoundTripEveryPair copies the typed fixture from every SQL store to
// every SQL store, and back to the first, and checks each column's values.
func TestRoundTripEveryPair(t *testing.T) {
	types := []string{"postgres", "mysql", "sqlite"}
	for _, from := range types {
		for _, to := range types {
			t.Run(from+"_to_"+to, func(t *testing.T) {
				src, dst, back := newStore(t, from), newStore(t, to), newStore(t, from)
				src.exec(t, fixtures[from]...)
				want := columnSums(t, src.typ, src.dsn)
				if want["i64"].Rows != 4 {
					t.Fatalf("fixture has %d rows", want["i64"].Rows)
				}
				copyTable(t, src, dst)
				got := columnSums(t, dst.typ, dst.dsn)
				for _, c := range typedColumns {
					if got[c] != want[c] {
						t.Errorf("column %s: %s holds %v, %s had %v", c, to, got[c], from, want[c])
					}
				}
				// And back into a fresh table of the first store.
				copyTable(t, dst, back)
				again := columnSums(t, back.typ, back.dsn)
				for _, c := range typedColumns {
					if again[c] != want[c] {
						t.Errorf("column %s after %s → %s → %s: %v, want %v", c, from, to, from, again[c], want[c])
					}
				}
			})
		}
	}
}

func copyTable(t *testing.T, src, dst store) {
	t.Helper()
	copyNamed(t, src, "types", dst, "types")
}
