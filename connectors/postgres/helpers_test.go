package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/internal/testenv"
	"github.com/jackc/pgx/v5"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newDB returns the DSN of a fresh database and a connection to it.
func newDB(t testing.TB) (string, *pgx.Conn) {
	t.Helper()
	dsn := testenv.Postgres(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return dsn, conn
}

func mustExec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func openSource(t testing.TB, cfg connectors.SourceConfig) *Source {
	t.Helper()
	s, err := OpenSource(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("open source: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openSink(t testing.TB, cfg connectors.SinkConfig) *Sink {
	t.Helper()
	s, err := OpenSink(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("open sink: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// readRows reads range r and returns every row as plain values
// (connectors.ValueAt), checking batch bounds and that rows come in key
// order as the source promises.
func readRows(t testing.TB, s *Source, r connectors.Range) [][]any {
	t.Helper()
	var rows [][]any
	err := s.Read(testCtx(t), r, func(rec arrow.RecordBatch) error {
		if int(rec.NumRows()) > s.cfg.BatchRows {
			t.Errorf("batch of %d rows, BatchRows is %d", rec.NumRows(), s.cfg.BatchRows)
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]any, rec.NumCols())
			for c := range row {
				v := connectors.ValueAt(rec.Column(c), i)
				switch x := v.(type) {
				case []byte:
					v = append([]byte(nil), x...)
				case string:
					v = string([]byte(x))
				}
				row[c] = v
			}
			rows = append(rows, row)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", r, err)
	}
	return rows
}

// firstCol returns column 0 of rows as int64s.
func firstCol(rows [][]any) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r[0].(int64)
	}
	return out
}

// testSpec fills in what a test leaves out of a writer spec: the job,
// run and lease its commit record is under.
func testSpec(spec connectors.WriterSpec) connectors.WriterSpec {
	if spec.Job == "" {
		spec.Job = "test"
	}
	if spec.Run == "" {
		spec.Run = "r1"
	}
	if spec.Lease == 0 {
		spec.Lease = 1
	}
	return spec
}

func claim(t testing.TB, snk *Sink, spec connectors.WriterSpec) connectors.CommitRecord {
	t.Helper()
	rec, err := snk.Claim(testCtx(t), spec)
	if err != nil {
		t.Fatalf("claim %s under lease %d: %v", spec.Partition, spec.Lease, err)
	}
	return rec
}

// copyAll claims the partition spec names and copies what is left of its
// range (past the position of the sink's record) with one writer and one
// commit. It returns the rows copied.
func copyAll(t testing.TB, src *Source, snk *Sink, spec connectors.WriterSpec) int {
	t.Helper()
	ctx := testCtx(t)
	spec = testSpec(spec)
	schema, _ := src.Schema(ctx)
	if spec.Schema == nil {
		spec.Schema = schema
	}
	rec := claim(t, snk, spec)
	w, err := snk.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatalf("open writer: %v", err)
	}
	defer w.Close()
	keyIdx, err := connectors.ColumnIndexes(schema, src.cfg.Key)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = src.Read(ctx, spec.Range.Resumed(rec.Position), func(b arrow.RecordBatch) error {
		n += int(b.NumRows())
		rec.Rows += b.NumRows()
		if len(keyIdx) > 0 && b.NumRows() > 0 {
			rec.Position = connectors.KeyOf(b, keyIdx, int(b.NumRows()-1))
		}
		return w.Write(ctx, b)
	})
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	rec.Commits++
	rec.Done = true
	if err := w.Commit(ctx, rec); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return n
}

// checksum reads the whole source (key or not) and sums it.
func checksum(t testing.TB, s *Source) connectors.Checksum {
	t.Helper()
	var c connectors.Checksum
	for _, r := range []connectors.Range{{}, {Nulls: true}} {
		if r.Nulls && len(s.keys) == 0 {
			continue
		}
		if err := s.Read(testCtx(t), r, func(rec arrow.RecordBatch) error {
			c.Add(rec, nil)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func queryInt(t testing.TB, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func fmtRows(rows [][]any) string {
	s := ""
	for _, r := range rows {
		s += fmt.Sprintf("%v\n", r)
	}
	return s
}
