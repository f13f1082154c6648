package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

const benchRows = 200_000

// cpuTime is the process's user+system CPU time. The machine is shared, so
// wall-clock rows/s swing with the neighbours' load; rows per CPU second
// is the steadier measure of the work per row.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRows reports rows/s over wall time and rows per CPU second.
func reportRows(b *testing.B, rows int, cpuStart time.Duration) {
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows)/(cpuTime()-cpuStart).Seconds(), "rows/cpu-s")
}

// BenchmarkRead reads a demo-shaped table of 200k rows (integer key, text,
// DECIMAL_TEXT, TIMESTAMP_TEXT, integer, real, blob) into Arrow batches.
//
//	go test -run '^$' -bench Read -benchmem ./connectors/sqlite
func BenchmarkRead(b *testing.B) {
	dsn := newDB(b)
	makeOrders(b, dsn, benchRows)
	ctx := context.Background()
	b.Run("arrow", func(b *testing.B) {
		src := openSrc(b, connectors.SourceConfig{DSN: dsn, Table: "orders", Key: []string{"id"}})
		b.ResetTimer()
		cpu := cpuTime()
		for i := 0; i < b.N; i++ {
			n := 0
			if err := src.Read(ctx, connectors.Range{}, func(rec arrow.RecordBatch) error {
				n += int(rec.NumRows())
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if n != benchRows {
				b.Fatalf("read %d rows", n)
			}
		}
		reportRows(b, benchRows*b.N, cpu)
	})
	// The baseline: database/sql with the same driver, scanning into Go
	// values and building nothing.
	b.Run("database-sql-scan", func(b *testing.B) {
		db := sqlDB(b, dsn)
		cpu := cpuTime()
		for i := 0; i < b.N; i++ {
			rows, err := db.Query(`SELECT id, customer, status, amount, created, note, qty, price, blob FROM orders ORDER BY id`)
			if err != nil {
				b.Fatal(err)
			}
			var id, qty sql.NullInt64
			var customer, status, amount, created, note sql.NullString
			var price sql.NullFloat64
			var blob sql.RawBytes
			for rows.Next() {
				if err := rows.Scan(&id, &customer, &status, &amount, &created, &note, &qty, &price, &blob); err != nil {
					b.Fatal(err)
				}
			}
			rows.Close()
		}
		reportRows(b, benchRows*b.N, cpu)
	})
}

// BenchmarkWrite writes 200k rows read from the demo-shaped table into a
// new table of a fresh file, committing every 50k rows, as the engine does.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	srcDSN := newDB(b)
	makeOrders(b, srcDSN, benchRows)
	src := openSrc(b, connectors.SourceConfig{DSN: srcDSN, Table: "orders", Key: []string{"id"}})
	schema, _ := src.Schema(ctx)
	var batches []arrow.RecordBatch
	if err := src.Read(ctx, connectors.Range{}, func(rec arrow.RecordBatch) error {
		rec.Retain()
		batches = append(batches, rec)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, r := range batches {
			r.Release()
		}
	}()
	for _, rowsPer := range []int{32, 128, 256} {
		b.Run(fmt.Sprintf("rows_per_insert=%d", rowsPer), func(b *testing.B) {
			var cpuSetup time.Duration
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				setup := cpuTime()
				dst := newDB(b)
				s, err := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dst, Table: "orders", Key: []string{"id"},
					CreateTable: true, Options: map[string]string{"rows_per_insert": fmt.Sprint(rowsPer)}})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Prepare(ctx, schema, false); err != nil {
					b.Fatal(err)
				}
				spec := connectors.WriterSpec{Job: "bench", Run: "r1", Partition: "all", Lease: 1, Schema: schema}
				rec := claim(b, s, spec)
				cpuSetup += cpuTime() - setup
				b.StartTimer()
				w, err := s.OpenWriter(ctx, spec)
				if err != nil {
					b.Fatal(err)
				}
				rows := int64(0)
				for j, batch := range batches {
					if err := w.Write(ctx, batch); err != nil {
						b.Fatal(err)
					}
					rows += batch.NumRows()
					if (j+1)%5 == 0 || j == len(batches)-1 {
						rec = advance(rec, spec, rows, connectors.KeyOf(batch, []int{0}, int(batch.NumRows()-1)))
						rec.Done, rows = j == len(batches)-1, 0
						if err := w.Commit(ctx, rec); err != nil {
							b.Fatal(err)
						}
					}
				}
				w.Close()
			}
			reportRows(b, benchRows*b.N, cpu+cpuSetup)
		})
	}
}
