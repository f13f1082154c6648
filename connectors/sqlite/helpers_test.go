package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	_ "modernc.org/sqlite" // database/sql driver "sqlite": an independent client for fixtures and checks

	"github.com/datashift/datashift/connectors"
)

// newDB returns the path of a fresh database file.
func newDB(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "test.db")
}

// sqlDB opens the file with the database/sql driver, outside the connector.
func sqlDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// writeTable writes recs through the sink (CreateTable) in one partition.
func writeTable(t testing.TB, dsn, table string, mode connectors.WriteMode, key []string, schema *arrow.Schema, recs ...arrow.RecordBatch) {
	t.Helper()
	ctx := context.Background()
	s, err := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dsn, Table: table, Mode: mode, Key: key, CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Prepare(ctx, schema, mode == connectors.Truncate); err != nil {
		t.Fatal(err)
	}
	w, err := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p0", Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, r := range recs {
		if err := w.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func openSrc(t testing.TB, cfg connectors.SourceConfig) connectors.Source {
	t.Helper()
	src, err := connectors.OpenSource(context.Background(), TypeName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// readRows reads range r and returns its rows as plain values (ValueAt) and
// the schema of the batches.
func readRows(t testing.TB, src connectors.Source, r connectors.Range) ([][]any, *arrow.Schema) {
	t.Helper()
	var rows [][]any
	var schema *arrow.Schema
	err := src.Read(context.Background(), r, func(rec arrow.RecordBatch) error {
		schema = rec.Schema()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]any, rec.NumCols())
			for j := range row {
				v := connectors.ValueAt(rec.Column(j), i)
				if b, ok := v.([]byte); ok {
					v = append([]byte{}, b...)
				}
				row[j] = v
			}
			rows = append(rows, row)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", r, err)
	}
	return rows, schema
}

// checksum reads r and returns its checksum.
func checksum(t testing.TB, src connectors.Source, r connectors.Range) connectors.Checksum {
	t.Helper()
	var c connectors.Checksum
	if err := src.Read(context.Background(), r, func(rec arrow.RecordBatch) error {
		c.Add(rec, nil)
		return nil
	}); err != nil {
		t.Fatalf("read %s: %v", r, err)
	}
	return c
}
