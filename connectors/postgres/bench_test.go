package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/internal/testenv"
	"github.com/jackc/pgx/v5"
)

// The benchmarks share one database with a 200k-row table of mixed types,
// created on first use and dropped by TestMain, so repeated benchmark
// invocations (b.N growing) do not rebuild it.
const benchRows = 200_000

var bench struct {
	once  sync.Once
	dsn   string
	admin string
	name  string
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.name != "" {
		if c, err := pgx.Connect(context.Background(), bench.admin); err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+bench.name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	}
	os.Exit(code)
}

func benchDB(b *testing.B) string {
	testenv.Need(b, "PostgreSQL", testenv.PostgresAddr())
	bench.once.Do(func() {
		ctx := context.Background()
		bench.admin = fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", testenv.PostgresAddr())
		admin, err := pgx.Connect(ctx, bench.admin)
		if err != nil {
			bench.err = err
			return
		}
		defer admin.Close(ctx)
		bench.name = testenv.UniqueName("dsbench")
		if _, bench.err = admin.Exec(ctx, "CREATE DATABASE "+bench.name+" TEMPLATE template0 ENCODING 'UTF8'"); bench.err != nil {
			return
		}
		bench.dsn = fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", testenv.PostgresAddr(), bench.name)
		conn, err := pgx.Connect(ctx, bench.dsn)
		if err != nil {
			bench.err = err
			return
		}
		defer conn.Close(ctx)
		_, bench.err = conn.Exec(ctx, fmt.Sprintf(`
CREATE TABLE mixed (
  id bigint PRIMARY KEY, qty integer NOT NULL, name text, amount numeric(12,2), price double precision,
  active boolean, created timestamptz, day date, ref uuid, note text);
INSERT INTO mixed
SELECT g, g %% 1000, 'customer ' || md5(g::text)::varchar(12), (g * 7 %% 100000) / 100.0, g * 0.37,
       g %% 2 = 0, '2024-01-01'::timestamptz + g * interval '1 second', '2000-01-01'::date + g %% 9000,
       md5(g::text)::uuid, CASE WHEN g %% 10 = 0 THEN NULL ELSE 'n' || g END
FROM generate_series(1, %d) g;
CREATE TABLE mixed_copy (LIKE mixed INCLUDING ALL)`, benchRows))
		if bench.err == nil {
			_, bench.err = conn.Exec(ctx, "VACUUM ANALYZE mixed")
		}
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.dsn
}

// reportRows reports throughput, and the CPU time this process spent per op
// since cpuStart: on a shared machine wall time swings with the neighbours'
// load, while the client's own CPU per op is what the per-value work costs.
func reportRows(b *testing.B, rows int) {
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	if !cpuMark.IsZero() {
		b.ReportMetric(float64((cpuTime()-cpuAtMark).Milliseconds())/float64(b.N), "client-cpu-ms/op")
	}
}

var (
	cpuMark   time.Time
	cpuAtMark time.Duration
)

// startCPU marks the start of the measured loop (call after setup, with
// b.ResetTimer).
func startCPU(b *testing.B) {
	b.ResetTimer()
	cpuMark, cpuAtMark = time.Now(), cpuTime()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRead is a full read of the table through Source.Read.
func BenchmarkRead(b *testing.B) {
	dsn := benchDB(b)
	s := openSource(b, connectors.SourceConfig{DSN: dsn, Table: "mixed", Key: []string{"id"}})
	ctx := context.Background()
	startCPU(b)
	for i := 0; i < b.N; i++ {
		n := 0
		if err := s.Read(ctx, connectors.Range{}, func(rec arrow.RecordBatch) error { n += int(rec.NumRows()); return nil }); err != nil {
			b.Fatal(err)
		}
		if n != benchRows {
			b.Fatalf("read %d rows", n)
		}
	}
	reportRows(b, benchRows)
}

// BenchmarkReadPositioned is a full read of the table by heap position
// (one page range of it all), ctids decoded and checked: against
// BenchmarkRead, what positions cost.
func BenchmarkReadPositioned(b *testing.B) {
	dsn := benchDB(b)
	s := openSource(b, connectors.SourceConfig{DSN: dsn, Table: "mixed", Key: []string{"id"}})
	ctx := context.Background()
	r := connectors.Range{Pages: &connectors.PageRange{}}
	startCPU(b)
	for i := 0; i < b.N; i++ {
		n := 0
		if err := s.ReadPositioned(ctx, r, func(rec arrow.RecordBatch, _ connectors.Key) error { n += int(rec.NumRows()); return nil }); err != nil {
			b.Fatal(err)
		}
		if n != benchRows {
			b.Fatalf("read %d rows", n)
		}
	}
	reportRows(b, benchRows)
}

// BenchmarkCopyToDiscard is the floor for BenchmarkRead: the same COPY with
// its output thrown away.
func BenchmarkCopyToDiscard(b *testing.B) {
	dsn := benchDB(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	startCPU(b)
	for i := 0; i < b.N; i++ {
		if _, err := conn.PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT * FROM mixed ORDER BY id) TO STDOUT (FORMAT binary)"); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, benchRows)
}

// benchBatches reads the table once into retained batches.
func benchBatches(b *testing.B, dsn string) []arrow.RecordBatch {
	s := openSource(b, connectors.SourceConfig{DSN: dsn, Table: "mixed", Key: []string{"id"}})
	var recs []arrow.RecordBatch
	if err := s.Read(context.Background(), connectors.Range{}, func(rec arrow.RecordBatch) error {
		rec.Retain()
		recs = append(recs, rec)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, r := range recs {
			r.Release()
		}
	})
	return recs
}

// BenchmarkWrite writes the table's batches into an empty copy through the
// sink, one commit.
func BenchmarkWrite(b *testing.B) {
	dsn := benchDB(b)
	recs := benchBatches(b, dsn)
	snk := openSink(b, connectors.SinkConfig{DSN: dsn, Table: "mixed_copy", Key: []string{"id"}})
	ctx := context.Background()
	startCPU(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := snk.Prepare(ctx, recs[0].Schema(), true); err != nil {
			b.Fatal(err)
		}
		spec := connectors.WriterSpec{Job: "bench", Run: fmt.Sprint("r", i), Partition: "p", Lease: 1, Schema: recs[0].Schema()}
		b.StartTimer()
		rec, err := snk.Claim(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		w, err := snk.OpenWriter(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		for _, batch := range recs {
			if err := w.Write(ctx, batch); err != nil {
				b.Fatal(err)
			}
			rec.Rows += batch.NumRows()
		}
		rec.Commits, rec.Done = 1, true
		if err := w.Commit(ctx, rec); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
	reportRows(b, benchRows)
}

// BenchmarkCopyFromBuffer is the floor for BenchmarkWrite: the table's own
// binary COPY output, captured beforehand, copied into the empty copy.
func BenchmarkCopyFromBuffer(b *testing.B) {
	dsn := benchDB(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var data bytes.Buffer
	if _, err := conn.PgConn().CopyTo(ctx, &data, "COPY (SELECT * FROM mixed ORDER BY id) TO STDOUT (FORMAT binary)"); err != nil {
		b.Fatal(err)
	}
	startCPU(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if _, err := conn.Exec(ctx, "TRUNCATE mixed_copy"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(data.Bytes()), "COPY mixed_copy FROM STDIN (FORMAT binary)"); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, benchRows)
}

// BenchmarkDecode and BenchmarkEncode are the client's share alone, with no
// server: the captured COPY stream into Arrow, and Arrow into COPY format.
func BenchmarkDecode(b *testing.B) {
	dsn := benchDB(b)
	s := openSource(b, connectors.SourceConfig{DSN: dsn, Table: "mixed", Key: []string{"id"}})
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Captured as pgconn delivers it: one CopyData message per Write.
	var msgs [][]byte
	if _, err := conn.PgConn().CopyTo(context.Background(), writerFunc(func(p []byte) (int, error) {
		msgs = append(msgs, append([]byte(nil), p...))
		return len(p), nil
	}), "COPY (SELECT "+s.selList+" FROM mixed ORDER BY id) TO STDOUT (FORMAT binary)"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	startCPU(b)
	for i := 0; i < b.N; i++ {
		n := 0
		dec := newCopyDecoder(memory.DefaultAllocator, s.schema, s.cols, s.keys, defaultBatchRows, defaultBatchBytes,
			func(rec arrow.RecordBatch) error { n += int(rec.NumRows()); return nil })
		for _, m := range msgs {
			if _, err := dec.Write(m); err != nil {
				b.Fatal(err)
			}
		}
		if err := dec.flush(); err != nil || n != benchRows {
			b.Fatalf("decoded %d rows: %v", n, err)
		}
		dec.release()
	}
	reportRows(b, benchRows)
}

func BenchmarkEncode(b *testing.B) {
	dsn := benchDB(b)
	recs := benchBatches(b, dsn)
	snk := openSink(b, connectors.SinkConfig{DSN: dsn, Table: "mixed_copy", Key: []string{"id"}})
	conn, err := snk.conn.get(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer snk.conn.put(conn)
	cols, err := snk.columns(context.Background(), conn, true)
	if err != nil {
		b.Fatal(err)
	}
	targets, encs, err := planColumns(recs[0].Schema(), cols)
	if err != nil {
		b.Fatal(err)
	}
	w := &writer{sink: snk, schema: recs[0].Schema(), encs: encs}
	w.plan(targets)
	b.ReportAllocs()
	startCPU(b)
	for i := 0; i < b.N; i++ {
		for _, rec := range recs {
			if err := w.encode(rec); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportRows(b, benchRows)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
