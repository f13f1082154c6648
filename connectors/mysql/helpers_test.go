package mysql

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/internal/testenv"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testDB returns the DSN of a fresh database and a pool on it for setup.
func testDB(t testing.TB) (string, *sql.DB) {
	t.Helper()
	dsn := testenv.MySQL(t)
	db, err := sql.Open("mysql", dsn+"?time_zone=%27%2B00%3A00%27&parseTime=true&loc=UTC")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return dsn, db
}

func exec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func openSrc(t testing.TB, cfg connectors.SourceConfig) *source {
	t.Helper()
	s, err := connectors.OpenSource(testCtx(t), TypeName, cfg)
	if err != nil {
		t.Fatalf("open source: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*source)
}

func openSnk(t testing.TB, cfg connectors.SinkConfig) *sink {
	t.Helper()
	s, err := connectors.OpenSink(testCtx(t), TypeName, cfg)
	if err != nil {
		t.Fatalf("open sink: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*sink)
}

// readAll reads range r and returns every row as plain values (ValueAt),
// with the number of batches.
func readAll(t testing.TB, s connectors.Source, r connectors.Range) ([][]any, int) {
	t.Helper()
	rows, batches, err := tryReadAll(s, r)
	if err != nil {
		t.Fatalf("read %s: %v", r, err)
	}
	return rows, batches
}

func tryReadAll(s connectors.Source, r connectors.Range) ([][]any, int, error) {
	var rows [][]any
	batches := 0
	err := s.Read(context.Background(), r, func(rec arrow.RecordBatch) error {
		batches++
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]any, rec.NumCols())
			for c := range row {
				v := connectors.ValueAt(rec.Column(c), i)
				switch x := v.(type) {
				case []byte:
					v = append([]byte{}, x...)
				case string:
					v = string([]byte(x))
				}
				row[c] = v
			}
			rows = append(rows, row)
		}
		return nil
	})
	return rows, batches, err
}

// checksum reads range r and folds it into a Checksum.
func checksum(t testing.TB, s connectors.Source, r connectors.Range) connectors.Checksum {
	t.Helper()
	var c connectors.Checksum
	if err := s.Read(context.Background(), r, func(rec arrow.RecordBatch) error {
		c.Add(rec, nil)
		return nil
	}); err != nil {
		t.Fatalf("read %s: %v", r, err)
	}
	return c
}

// partSpec is the WriterSpec of partition part of job "test", run "r1",
// under lease 1.
func partSpec(part string, schema *arrow.Schema) connectors.WriterSpec {
	return connectors.WriterSpec{Job: "test", Run: "r1", Partition: part, Lease: 1, Schema: schema}
}

// writeAll claims spec's partition, writes recs through one writer and
// commits them with the partition's next record.
func writeAll(t testing.TB, snk connectors.Sink, spec connectors.WriterSpec, recs ...arrow.RecordBatch) {
	t.Helper()
	if err := tryWriteAll(snk, spec, recs...); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func tryWriteAll(snk connectors.Sink, spec connectors.WriterSpec, recs ...arrow.RecordBatch) error {
	ctx := context.Background()
	rec, err := snk.(connectors.CommitLog).Claim(ctx, spec)
	if err != nil {
		return err
	}
	w, err := snk.OpenWriter(ctx, spec)
	if err != nil {
		return err
	}
	defer w.Close()
	for _, r := range recs {
		if err := w.Write(ctx, r); err != nil {
			return err
		}
		rec.Rows += r.NumRows()
	}
	rec.Commits++
	return w.Commit(ctx, rec)
}

// claim claims spec's partition and returns the sink's record of it.
func claim(t testing.TB, snk connectors.Sink, spec connectors.WriterSpec) connectors.CommitRecord {
	t.Helper()
	rec, err := snk.(connectors.CommitLog).Claim(testCtx(t), spec)
	if err != nil {
		t.Fatalf("claim %s/%s/%s under lease %d: %v", spec.Job, spec.Run, spec.Partition, spec.Lease, err)
	}
	return rec
}

// intTextRecord builds a batch of (id BIGINT, s TEXT) rows.
func intTextRecord(ids []int64, texts []string) arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, id := range ids {
		b.Field(0).(*array.Int64Builder).Append(id)
		b.Field(1).(*array.StringBuilder).Append(texts[i])
	}
	return b.NewRecordBatch()
}

func count(t testing.TB, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
