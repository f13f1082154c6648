package parquet

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

const benchRows = 500_000

// benchSchema is an ordinary table: a key, text, money, a float, a time.
var benchSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "amount", Type: &arrow.Decimal128Type{Precision: 18, Scale: 2}, Nullable: true},
	{Name: "ratio", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "created", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
}, nil)

func benchBatches(rows, per int) []arrow.RecordBatch {
	var out []arrow.RecordBatch
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	for from := 0; from < rows; from += per {
		b := array.NewRecordBuilder(memory.DefaultAllocator, benchSchema)
		for id := from; id < min(rows, from+per); id++ {
			b.Field(0).(*array.Int64Builder).Append(int64(id))
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("customer %d", id%5000))
			b.Field(2).(*array.Decimal128Builder).Append(decimal128.FromI64(int64(id * 37 % 1000000)))
			b.Field(3).(*array.Float64Builder).Append(float64(id) / 3)
			b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(base + int64(id)*1000))
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return out
}

func BenchmarkSink(b *testing.B) {
	batches := benchBatches(benchRows, 64*1024)
	dir := b.TempDir()
	s := openSink(b, dir, nil)
	if err := s.Prepare(ctx, benchSchema, false); err != nil {
		b.Fatal(err)
	}
	n := 0
	b.ResetTimer()
	for b.Loop() {
		n++
		spec := connectors.WriterSpec{Job: "bench", Run: "r1", Partition: fmt.Sprintf("p%d", n), Lease: 1, Schema: benchSchema}
		rec, err := s.(connectors.CommitLog).Claim(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		w, err := s.OpenWriter(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range batches {
			if err := w.Write(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		rec.Rows, rec.Commits, rec.Done = benchRows, 1, true
		if err := w.Commit(ctx, rec); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkSource(b *testing.B) {
	dir := b.TempDir()
	s := openSink(b, dir, nil)
	spec := connectors.WriterSpec{Job: "bench", Run: "r1", Partition: "p0", Lease: 1, Schema: benchSchema}
	rec, err := s.(connectors.CommitLog).Claim(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	w, err := s.OpenWriter(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range benchBatches(benchRows, 64*1024) {
		if err := w.Write(ctx, r); err != nil {
			b.Fatal(err)
		}
		r.Release()
	}
	rec.Rows, rec.Commits, rec.Done = benchRows, 1, true
	if err := w.Commit(ctx, rec); err != nil {
		b.Fatal(err)
	}
	src := openSource(b, dir, connectors.SourceConfig{BatchRows: 64 * 1024})
	b.ResetTimer()
	for b.Loop() {
		var rows int64
		if err := src.Read(ctx, connectors.Range{}, func(rec arrow.RecordBatch) error {
			rows += rec.NumRows()
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if rows != benchRows {
			b.Fatalf("read %d rows, want %d", rows, benchRows)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
