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

// writeTable writes recs through the sink (CreateTable) in one partition,
// p0 of run r1 of a job named after the table, under lease 1.
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
	writePart(t, s, connectors.WriterSpec{Job: table, Run: "r1", Partition: "p0", Lease: 1, Schema: schema}, recs...)
}

// claim claims spec's partition through the sink's commit log.
func claim(t testing.TB, s connectors.Sink, spec connectors.WriterSpec) connectors.CommitRecord {
	t.Helper()
	rec, err := s.(connectors.CommitLog).Claim(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// advance is rec after a commit of rows more rows under spec, read up to
// position (nil: where it was).
func advance(rec connectors.CommitRecord, spec connectors.WriterSpec, rows int64, position connectors.Key) connectors.CommitRecord {
	rec.Job, rec.Run, rec.Partition, rec.Lease = spec.Job, spec.Run, spec.Partition, spec.Lease
	rec.Rows += rows
	rec.Commits++
	if position != nil {
		rec.Position = position
	}
	return rec
}

// writePart claims spec's partition, writes recs through one writer and
// commits them as the partition's last commit. It returns the record
// committed.
func writePart(t testing.TB, s connectors.Sink, spec connectors.WriterSpec, recs ...arrow.RecordBatch) connectors.CommitRecord {
	t.Helper()
	ctx := context.Background()
	rec := claim(t, s, spec)
	w, err := s.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var n int64
	for _, r := range recs {
		if err := w.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
		n += r.NumRows()
	}
	rec = advance(rec, spec, n, nil)
	rec.Done = true
	if err := w.Commit(ctx, rec); err != nil {
		t.Fatal(err)
	}
	return rec
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
