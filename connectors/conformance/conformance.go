// Package conformance is the suite every SQL-like connector runs against its
// real store: a sink creates and fills a table, the connector's source reads it
// back by range, and resume, truncate and upsert keep exactly the rows they
// should. A connector's test calls Run with a Harness for its own database.
package conformance

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

// Harness tells the suite how to reach a table in the connector's store.
// Each subtest uses a table name of its own.
type Harness struct {
	Type         string
	SourceConfig func(table string) connectors.SourceConfig
	SinkConfig   func(table string) connectors.SinkConfig
}

// Schema is the fixture's schema: one key column and a spread of types every
// SQL store holds.
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "amount", Type: &arrow.Decimal128Type{Precision: 18, Scale: 4}, Nullable: true},
	{Name: "ratio", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "active", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "created", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "payload", Type: arrow.BinaryTypes.Binary, Nullable: true},
}, nil)

// Rows builds fixture rows with ids in [from, to); version changes the
// non-key values, so an upsert can be told from the original.
func Rows(from, to int64, version int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, Schema)
	defer b.Release()
	base := time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC)
	for id := from; id < to; id++ {
		b.Field(0).(*array.Int64Builder).Append(id)
		if id%11 == 0 {
			b.Field(1).AppendNull()
		} else {
			names := []string{"", "plain", "Ünïcödé", "emoji 🚀✨", "tab\tnew\nline", `quote"back\slash`}
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("%s-%d-v%d", names[id%int64(len(names))], id, version))
		}
		b.Field(2).(*array.Decimal128Builder).Append(decimal128.FromI64(id*10007*int64(version+1) - 5000000))
		b.Field(3).(*array.Float64Builder).Append(float64(id) / 7)
		if id%13 == 0 {
			b.Field(4).AppendNull()
		} else {
			b.Field(4).(*array.BooleanBuilder).Append(id%2 == 0)
		}
		b.Field(5).(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(id) * time.Second).UnixMicro()))
		if id%17 == 0 {
			b.Field(6).AppendNull()
		} else {
			b.Field(6).(*array.BinaryBuilder).Append([]byte{0, byte(id), 0xff, byte(version)})
		}
	}
	return b.NewRecordBatch()
}

func checksumOf(recs ...arrow.RecordBatch) connectors.Checksum {
	var c connectors.Checksum
	for _, r := range recs {
		c.Add(r, nil)
	}
	return c
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, h) })
	t.Run("Ranges", func(t *testing.T) { testRanges(t, h) })
	t.Run("ResumeAfterUncommitted", func(t *testing.T) { testResumeUncommitted(t, h) })
	t.Run("ResumeAfterLostCheckpoint", func(t *testing.T) { testResumeLostCheckpoint(t, h) })
	t.Run("ResumeStaysInsideRange", func(t *testing.T) { testResumeInsideRange(t, h) })
	t.Run("Truncate", func(t *testing.T) { testTruncate(t, h) })
	t.Run("Upsert", func(t *testing.T) { testUpsert(t, h) })
}

type fixture struct {
	t    *testing.T
	h    Harness
	tbl  string
	sink connectors.Sink
}

func newFixture(t *testing.T, h Harness, table string, mode connectors.WriteMode) *fixture {
	t.Helper()
	cfg := h.SinkConfig(table)
	cfg.Mode = mode
	cfg.Key = []string{"id"}
	cfg.CreateTable = true
	sink, err := connectors.OpenSink(context.Background(), h.Type, cfg)
	if err != nil {
		t.Fatalf("open sink: %v", err)
	}
	t.Cleanup(func() { sink.Close() })
	if err := sink.Prepare(context.Background(), Schema, mode == connectors.Truncate); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	return &fixture{t: t, h: h, tbl: table, sink: sink}
}

// write writes recs through one writer of partition p and commits unless
// commit is false (then the writer is closed, abandoning the rows).
func (f *fixture) write(p string, r connectors.Range, resume *connectors.ResumePoint, commit bool, recs ...arrow.RecordBatch) {
	f.t.Helper()
	ctx := context.Background()
	w, err := f.sink.OpenWriter(ctx, connectors.WriterSpec{Partition: p, Range: r, Schema: Schema, Resume: resume})
	if err != nil {
		f.t.Fatalf("open writer %s: %v", p, err)
	}
	defer w.Close()
	for _, rec := range recs {
		if err := w.Write(ctx, rec); err != nil {
			f.t.Fatalf("write %s: %v", p, err)
		}
	}
	if commit {
		if _, err := w.Commit(ctx); err != nil {
			f.t.Fatalf("commit %s: %v", p, err)
		}
	}
}

// read reads range r back and returns its checksum and keys in read order.
func (f *fixture) read(r connectors.Range) (connectors.Checksum, []int64) {
	f.t.Helper()
	cfg := f.h.SourceConfig(f.tbl)
	cfg.Key = []string{"id"}
	cfg.BatchRows = 64 // several batches even for small tables
	src, err := connectors.OpenSource(context.Background(), f.h.Type, cfg)
	if err != nil {
		f.t.Fatalf("open source: %v", err)
	}
	defer src.Close()
	var sum connectors.Checksum
	var ids []int64
	err = src.Read(context.Background(), r, func(rec arrow.RecordBatch) error {
		if !rec.Schema().Equal(Schema) {
			// Types may differ in width but the columns must be there, in order.
			for i, fld := range Schema.Fields() {
				if rec.Schema().Field(i).Name != fld.Name {
					return fmt.Errorf("column %d is %q, want %q", i, rec.Schema().Field(i).Name, fld.Name)
				}
			}
		}
		sum.Add(rec, nil)
		col := rec.Column(0)
		for i := 0; i < int(rec.NumRows()); i++ {
			ids = append(ids, connectors.ValueAt(col, i).(int64))
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("read %s: %v", r, err)
	}
	return sum, ids
}

func (f *fixture) expect(r connectors.Range, want connectors.Checksum) {
	f.t.Helper()
	got, ids := f.read(r)
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			f.t.Fatalf("read %s: id %d after %d: not in key order or duplicated", r, ids[i], ids[i-1])
		}
	}
	if got != want {
		f.t.Fatalf("read %s: got %v, want %v", r, got, want)
	}
}

func testRoundTrip(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_roundtrip", connectors.Append)
	a, b := Rows(0, 500, 0), Rows(500, 1200, 0)
	defer a.Release()
	defer b.Release()
	f.write("p0", connectors.Range{Hi: connectors.Key{int64(500)}}, nil, true, a)
	f.write("p1", connectors.Range{Lo: connectors.Key{int64(500)}}, nil, true, b)
	f.expect(connectors.Range{}, checksumOf(a, b))
}

func testRanges(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_ranges", connectors.Append)
	all := Rows(0, 300, 0)
	defer all.Release()
	f.write("p0", connectors.Range{}, nil, true, all)
	slice := func(from, to int64) connectors.Checksum {
		s := all.NewSlice(from, to)
		defer s.Release()
		return checksumOf(s)
	}
	k := func(v int64) connectors.Key { return connectors.Key{v} }
	f.expect(connectors.Range{Hi: k(100)}, slice(0, 100))
	f.expect(connectors.Range{Lo: k(100), Hi: k(200)}, slice(100, 200))
	f.expect(connectors.Range{Lo: k(200)}, slice(200, 300))
	f.expect(connectors.Range{Lo: k(100), Hi: k(200), After: k(149)}, slice(150, 200))
	f.expect(connectors.Range{Lo: k(1000)}, connectors.Checksum{})
	f.expect(connectors.Range{Nulls: true}, connectors.Checksum{})
}

func testResumeUncommitted(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_resume_uncommitted", connectors.Append)
	r := connectors.Range{}
	first, lost, rest := Rows(0, 100, 0), Rows(100, 150, 0), Rows(100, 200, 0)
	defer first.Release()
	defer lost.Release()
	defer rest.Release()
	f.write("p0", r, nil, true, first)
	f.write("p0", r, nil, false, lost) // a crash before Commit
	f.write("p0", r, &connectors.ResumePoint{LastKey: connectors.Key{int64(99)}}, true, rest)
	f.expect(r, checksumOf(first, rest))
}

func testResumeLostCheckpoint(t *testing.T, h Harness) {
	// The sink committed rows 100..149 but the process died before the
	// checkpoint said so: resume from 99 must remove them first.
	f := newFixture(t, h, "conf_resume_lost", connectors.Append)
	r := connectors.Range{}
	first, committed, rest := Rows(0, 100, 0), Rows(100, 150, 0), Rows(100, 200, 0)
	defer first.Release()
	defer committed.Release()
	defer rest.Release()
	f.write("p0", r, nil, true, first)
	f.write("p0", r, nil, true, committed)
	f.write("p0", r, &connectors.ResumePoint{LastKey: connectors.Key{int64(99)}}, true, rest)
	f.expect(r, checksumOf(first, rest))
}

func testResumeInsideRange(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_resume_range", connectors.Append)
	k := func(v int64) connectors.Key { return connectors.Key{v} }
	p0, p1, p2 := connectors.Range{Hi: k(100)}, connectors.Range{Lo: k(100), Hi: k(200)}, connectors.Range{Lo: k(200)}
	a, b, c := Rows(0, 100, 0), Rows(100, 200, 0), Rows(200, 300, 0)
	defer a.Release()
	defer b.Release()
	defer c.Release()
	f.write("p0", p0, nil, true, a)
	f.write("p1", p1, nil, true, b)
	f.write("p2", p2, nil, true, c)
	// p1 restarts with no checkpoint: everything of p1 goes, p0 and p2 stay.
	f.write("p1", p1, &connectors.ResumePoint{}, true, b)
	f.expect(connectors.Range{}, checksumOf(a, b, c))
	// p1 resumes after 149 having nothing new to write: rows past 149 inside p1 go.
	f.write("p1", p1, &connectors.ResumePoint{LastKey: k(149)}, true)
	head := b.NewSlice(0, 50)
	defer head.Release()
	f.expect(connectors.Range{}, checksumOf(a, head, c))
}

func testTruncate(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_truncate", connectors.Append)
	old := Rows(0, 50, 0)
	defer old.Release()
	f.write("p0", connectors.Range{}, nil, true, old)
	g := newFixture(t, h, "conf_truncate", connectors.Truncate)
	fresh := Rows(1000, 1010, 1)
	defer fresh.Release()
	g.write("p0", connectors.Range{}, nil, true, fresh)
	g.expect(connectors.Range{}, checksumOf(fresh))
}

func testUpsert(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_upsert", connectors.Upsert)
	v0, v1 := Rows(0, 100, 0), Rows(50, 150, 1)
	defer v0.Release()
	defer v1.Release()
	f.write("p0", connectors.Range{}, nil, true, v0)
	f.write("p0", connectors.Range{}, nil, true, v1)
	// Writing the same rows again, as a resumed partition would, changes nothing.
	f.write("p0", connectors.Range{}, &connectors.ResumePoint{LastKey: connectors.Key{int64(49)}}, true, v1)
	head := v0.NewSlice(0, 50)
	defer head.Release()
	f.expect(connectors.Range{}, checksumOf(head, v1))
}
