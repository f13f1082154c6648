package mysql

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

const benchRows = 200_000

var benchSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "n", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "amount", Type: &arrow.Decimal128Type{Precision: 12, Scale: 2}, Nullable: true},
	{Name: "ratio", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "created", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "flag", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "payload", Type: arrow.BinaryTypes.Binary, Nullable: true},
}, nil)

// benchBatches builds benchRows rows of the mixed table in 10k-row batches.
func benchBatches() []arrow.RecordBatch {
	var out []arrow.RecordBatch
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	b := array.NewRecordBuilder(memory.DefaultAllocator, benchSchema)
	defer b.Release()
	for id := int64(0); id < benchRows; id++ {
		b.Field(0).(*array.Int64Builder).Append(id)
		b.Field(1).(*array.Int32Builder).Append(int32(id * 7 % 100000))
		b.Field(2).(*array.Decimal128Builder).Append(decimal128.FromI64(id*313%10000000 - 5000000))
		b.Field(3).(*array.Float64Builder).Append(float64(id) / 7)
		if id%10 == 0 {
			b.Field(4).AppendNull()
		} else {
			b.Field(4).(*array.StringBuilder).Append(fmt.Sprintf("customer %d ünï", id))
		}
		b.Field(5).(*array.TimestampBuilder).Append(arrow.Timestamp(base + id*1_000_003))
		b.Field(6).(*array.BooleanBuilder).Append(id%3 == 0)
		b.Field(7).(*array.BinaryBuilder).Append([]byte{byte(id), byte(id >> 8), 0, '\t', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
		if (id+1)%10000 == 0 {
			out = append(out, b.NewRecordBatch())
		}
	}
	return out
}

func benchSink(b *testing.B, dsn, bulk string) connectors.Sink {
	snk, err := connectors.OpenSink(context.Background(), TypeName, connectors.SinkConfig{
		DSN: dsn, Table: "bench", Key: []string{"id"}, CreateTable: true, Options: map[string]string{"bulk": bulk}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { snk.Close() })
	if err := snk.Prepare(context.Background(), benchSchema, true); err != nil {
		b.Fatal(err)
	}
	return snk
}

func BenchmarkWrite(b *testing.B) {
	for _, bulk := range []string{bulkLoad, bulkInsert} {
		b.Run(bulk, func(b *testing.B) {
			dsn, db := testDB(b)
			recs := benchBatches()
			defer func() {
				for _, r := range recs {
					r.Release()
				}
			}()
			snk := benchSink(b, dsn, bulk)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if _, err := db.Exec("TRUNCATE TABLE bench"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				spec := partSpec("p", benchSchema)
				spec.Run = fmt.Sprintf("r%d", i)
				cr := claim(b, snk, spec)
				w, err := snk.OpenWriter(ctx, spec)
				if err != nil {
					b.Fatal(err)
				}
				for j, r := range recs {
					if err := w.Write(ctx, r); err != nil {
						b.Fatal(err)
					}
					cr.Rows += r.NumRows()
					if j%5 == 4 { // commit every 50k rows
						cr.Position = connectors.KeyOf(r, []int{0}, int(r.NumRows()-1))
						cr.Commits++
						if err := w.Commit(ctx, cr); err != nil {
							b.Fatal(err)
						}
					}
				}
				cr.Commits++
				cr.Done = true
				if err := w.Commit(ctx, cr); err != nil {
					b.Fatal(err)
				}
				w.Close()
			}
			b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func BenchmarkRead(b *testing.B) {
	dsn, _ := testDB(b)
	recs := benchBatches()
	snk := benchSink(b, dsn, bulkLoad)
	writeAll(b, snk, partSpec("p", benchSchema), recs...)
	for _, r := range recs {
		r.Release()
	}
	src := openSrc(b, connectors.SourceConfig{DSN: dsn, Table: "bench", Key: []string{"id"}})
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rows := 0
		if err := src.Read(ctx, connectors.Range{}, func(rec arrow.RecordBatch) error {
			rows += int(rec.NumRows())
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if rows != benchRows {
			b.Fatalf("read %d rows", rows)
		}
	}
	b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
