// Package conformance is the suite every connector runs against its real
// store: a sink creates and fills a table, keeps a commit record with every
// commit and fences out writers of older leases; the connector's source (or,
// for a connector that only writes, the harness's ReadBack) reads the rows
// back; resume, truncate and upsert keep exactly the rows they should, and
// rows the job did not write are never touched. A connector's test calls Run
// with a Harness for its own store and says, in Caps, what else it can do.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	Type string
	// SourceConfig reaches a table (or dataset) for reading; nil when the
	// connector has no source, and then ReadBack is set.
	SourceConfig func(table string) connectors.SourceConfig
	SinkConfig   func(table string) connectors.SinkConfig
	// ReadBack returns every row of a table the sink wrote, in the
	// fixture's Schema and in any order; for connectors without a source.
	ReadBack func(t *testing.T, table string) []arrow.RecordBatch
	Caps     Caps
}

// Caps are the connector's abilities beyond what every connector does.
type Caps struct {
	// KeyRanges: the source reads key ranges, in key order. Without it the
	// suite reads whole tables and ignores the order (files have no key).
	KeyRanges bool
	// Upsert: the sink takes mode upsert.
	Upsert bool
	// Positions: the source is a connectors.PositionReader for
	// KeylessRange of a table written without a key.
	Positions    bool
	KeylessRange connectors.Range
}

// Schema is the fixture's schema: one key column and a spread of types every
// store holds.
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
	if h.SourceConfig == nil && h.ReadBack == nil {
		t.Fatal("conformance: the harness needs SourceConfig or ReadBack")
	}
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, h) })
	if h.Caps.KeyRanges {
		t.Run("Ranges", func(t *testing.T) { testRanges(t, h) })
	}
	t.Run("CommitRecord", func(t *testing.T) { testCommitRecord(t, h) })
	t.Run("ResumeFromRecord", func(t *testing.T) { testResumeFromRecord(t, h) })
	t.Run("RowsOfOthersUntouched", func(t *testing.T) { testRowsOfOthers(t, h) })
	t.Run("LeaseFencing", func(t *testing.T) { testLeaseFencing(t, h) })
	t.Run("Forget", func(t *testing.T) { testForget(t, h) })
	t.Run("Truncate", func(t *testing.T) { testTruncate(t, h) })
	if h.Caps.Upsert {
		t.Run("Upsert", func(t *testing.T) { testUpsert(t, h) })
	}
	if h.Caps.Positions {
		t.Run("Positions", func(t *testing.T) { testPositions(t, h) })
	}
}

type fixture struct {
	t    *testing.T
	h    Harness
	tbl  string
	key  []string
	sink connectors.Sink
	log  connectors.CommitLog
}

func newFixture(t *testing.T, h Harness, table string, mode connectors.WriteMode) *fixture {
	t.Helper()
	return newFixtureKey(t, h, table, mode, []string{"id"})
}

func newFixtureKey(t *testing.T, h Harness, table string, mode connectors.WriteMode, key []string) *fixture {
	t.Helper()
	cfg := h.SinkConfig(table)
	cfg.Mode = mode
	cfg.Key = key
	cfg.CreateTable = true
	sink, err := connectors.OpenSink(context.Background(), h.Type, cfg)
	if err != nil {
		t.Fatalf("open sink: %v", err)
	}
	t.Cleanup(func() { sink.Close() })
	if err := sink.Prepare(context.Background(), Schema, mode == connectors.Truncate); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	log, ok := sink.(connectors.CommitLog)
	if !ok {
		t.Fatalf("%s sink keeps no commit record (connectors.CommitLog)", h.Type)
	}
	return &fixture{t: t, h: h, tbl: table, key: key, sink: sink, log: log}
}

// part is one partition of a run, written under one lease. The job is
// named after the fixture's table: a store keeps the records of every
// table in one place, and subtests must not see each other's.
type part struct {
	run, id string
	r       connectors.Range
	lease   int64
}

func (f *fixture) spec(p part) connectors.WriterSpec {
	return connectors.WriterSpec{Job: f.tbl, Run: p.run, Partition: p.id, Lease: p.lease, Range: p.r, Schema: Schema}
}

func (f *fixture) claim(p part) connectors.CommitRecord {
	f.t.Helper()
	rec, err := f.log.Claim(context.Background(), f.spec(p))
	if err != nil {
		f.t.Fatalf("claim %s/%s under lease %d: %v", p.run, p.id, p.lease, err)
	}
	return rec
}

// write claims p, writes recs through one writer and commits them with a
// record whose position is the last id written (or after, when no rows),
// unless commit is false: then the writer is closed, abandoning the rows,
// as a crash before the commit would. It returns the record committed.
func (f *fixture) write(p part, commit bool, recs ...arrow.RecordBatch) connectors.CommitRecord {
	f.t.Helper()
	ctx := context.Background()
	rec := f.claim(p)
	w, err := f.sink.OpenWriter(ctx, f.spec(p))
	if err != nil {
		f.t.Fatalf("open writer %s: %v", p.id, err)
	}
	defer w.Close()
	for _, b := range recs {
		if err := w.Write(ctx, b); err != nil {
			f.t.Fatalf("write %s: %v", p.id, err)
		}
		if n := b.NumRows(); n > 0 {
			rec.Position = connectors.Key{connectors.ValueAt(b.Column(0), int(n-1))}
			rec.Rows += n
			rec.Bytes += 10 * n
		}
	}
	spec := f.spec(p)
	rec.Job, rec.Run, rec.Partition, rec.Lease = spec.Job, spec.Run, spec.Partition, spec.Lease
	rec.Commits++
	if commit {
		if err := w.Commit(ctx, rec); err != nil {
			f.t.Fatalf("commit %s: %v", p.id, err)
		}
	}
	return rec
}

func (f *fixture) sourceConfig() connectors.SourceConfig {
	cfg := f.h.SourceConfig(f.tbl)
	if f.h.Caps.KeyRanges {
		cfg.Key = f.key
	}
	cfg.BatchRows = 64 // several batches even for small tables
	return cfg
}

// read reads range r back and returns its checksum and ids in read order.
func (f *fixture) read(r connectors.Range) (connectors.Checksum, []int64) {
	f.t.Helper()
	var sum connectors.Checksum
	var ids []int64
	add := func(rec arrow.RecordBatch) error {
		for i, fld := range Schema.Fields() {
			// Types may differ in width but the columns must be there, in order.
			if rec.Schema().Field(i).Name != fld.Name {
				return fmt.Errorf("column %d is %q, want %q", i, rec.Schema().Field(i).Name, fld.Name)
			}
		}
		sum.Add(rec, nil)
		col := rec.Column(0)
		for i := 0; i < int(rec.NumRows()); i++ {
			ids = append(ids, connectors.ValueAt(col, i).(int64))
		}
		return nil
	}
	if f.h.SourceConfig == nil {
		if r.Lo != nil || r.Hi != nil || r.After != nil || r.Nulls || r.Pages != nil {
			f.t.Fatalf("read %s: a harness without a source reads whole tables only", r)
		}
		for _, rec := range f.h.ReadBack(f.t, f.tbl) {
			if err := add(rec); err != nil {
				f.t.Fatal(err)
			}
			rec.Release()
		}
		return sum, ids
	}
	src, err := connectors.OpenSource(context.Background(), f.h.Type, f.sourceConfig())
	if err != nil {
		f.t.Fatalf("open source: %v", err)
	}
	defer src.Close()
	if err := src.Read(context.Background(), r, add); err != nil {
		f.t.Fatalf("read %s: %v", r, err)
	}
	return sum, ids
}

// expect checks that r holds exactly the rows want sums up, each once, and
// in key order where the source has one.
func (f *fixture) expect(r connectors.Range, want connectors.Checksum) {
	f.t.Helper()
	got, ids := f.read(r)
	if f.h.Caps.KeyRanges && len(f.key) > 0 {
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				f.t.Fatalf("read %s: id %d after %d: not in key order or duplicated", r, ids[i], ids[i-1])
			}
		}
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	if i := firstRepeat(sorted); i >= 0 {
		f.t.Fatalf("read %s: id %d is there twice", r, sorted[i])
	}
	if got != want {
		f.t.Fatalf("read %s: got %v, want %v", r, got, want)
	}
}

func firstRepeat(sorted []int64) int {
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return i
		}
	}
	return -1
}

func k(v int64) connectors.Key { return connectors.Key{v} }

func testRoundTrip(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_roundtrip", connectors.Append)
	a, b := Rows(0, 500, 0), Rows(500, 1200, 0)
	defer a.Release()
	defer b.Release()
	f.write(part{run: "r1", id: "p0", r: connectors.Range{Hi: k(500)}, lease: 1}, true, a)
	f.write(part{run: "r1", id: "p1", r: connectors.Range{Lo: k(500)}, lease: 1}, true, b)
	f.expect(connectors.Range{}, checksumOf(a, b))
}

func testRanges(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_ranges", connectors.Append)
	all := Rows(0, 300, 0)
	defer all.Release()
	f.write(part{run: "r1", id: "p0", lease: 1}, true, all)
	slice := func(from, to int64) connectors.Checksum {
		s := all.NewSlice(from, to)
		defer s.Release()
		return checksumOf(s)
	}
	f.expect(connectors.Range{Hi: k(100)}, slice(0, 100))
	f.expect(connectors.Range{Lo: k(100), Hi: k(200)}, slice(100, 200))
	f.expect(connectors.Range{Lo: k(200)}, slice(200, 300))
	f.expect(connectors.Range{Lo: k(100), Hi: k(200), After: k(149)}, slice(150, 200))
	f.expect(connectors.Range{Lo: k(1000)}, connectors.Checksum{})
	f.expect(connectors.Range{Nulls: true}, connectors.Checksum{})
}

// The record a commit stores is the record a later claim returns, field
// for field; an abandoned writer changes neither rows nor record; a commit
// with no rows still stores its record.
func testCommitRecord(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_record", connectors.Append)
	p := part{run: "r1", id: "p0", lease: 3}
	if got := f.claim(p); got.Commits != 0 || got.Rows != 0 || got.Position != nil || got.Done {
		t.Fatalf("claim of a new partition: %+v, want an empty record", got)
	}
	first, lost := Rows(0, 100, 0), Rows(100, 150, 0)
	defer first.Release()
	defer lost.Release()
	want := f.write(p, true, first)
	sameRecord(t, "after one commit", f.claim(p), want)
	f.write(p, false, lost) // a crash before the commit
	sameRecord(t, "after an abandoned writer", f.claim(p), want)
	f.expect(connectors.Range{}, checksumOf(first))

	// The last commit of a partition carries Done, with or without rows.
	ctx := context.Background()
	w, err := f.sink.OpenWriter(ctx, f.spec(p))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want.Done, want.Commits, want.BadRows = true, want.Commits+1, 2
	want.Position = k(120) // two bad rows set aside past the last row written
	if err := w.Commit(ctx, want); err != nil {
		t.Fatalf("commit with no rows: %v", err)
	}
	sameRecord(t, "after an empty commit", f.claim(p), want)
	f.expect(connectors.Range{}, checksumOf(first))
}

func sameRecord(t *testing.T, when string, got, want connectors.CommitRecord) {
	t.Helper()
	if got.Job != want.Job || got.Run != want.Run || got.Partition != want.Partition || got.Lease != want.Lease ||
		connectors.CompareKeys(got.Position, want.Position) != 0 || got.Rows != want.Rows || got.Bytes != want.Bytes ||
		got.BadRows != want.BadRows || got.Commits != want.Commits || got.Done != want.Done {
		t.Fatalf("%s: the sink's record is %+v, want %+v", when, got, want)
	}
}

// A partition resumed under a new lease reads on from the sink's record:
// what earlier attempts committed stays, what they did not is not there,
// and nothing is deleted, whether the checkpoint was saved or lost.
func testResumeFromRecord(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_resume", connectors.Append)
	r := connectors.Range{Lo: k(0), Hi: k(1000)}
	first, lost, rest := Rows(0, 100, 0), Rows(100, 150, 0), Rows(100, 200, 0)
	defer first.Release()
	defer lost.Release()
	defer rest.Release()
	f.write(part{run: "r1", id: "p0", r: r, lease: 1}, true, first)
	f.write(part{run: "r1", id: "p0", r: r, lease: 1}, false, lost)
	resumed := part{run: "r1", id: "p0", r: r, lease: 2}
	rec := f.claim(resumed)
	if connectors.CompareKeys(rec.Position, k(99)) != 0 || rec.Rows != 100 {
		t.Fatalf("claim after a crash: %+v, want position 99 and 100 rows", rec)
	}
	f.write(resumed, true, rest)
	f.expect(connectors.Range{}, checksumOf(first, rest))
}

// Rows already in the target, written by someone else, inside the
// partition's range or outside it, survive a partition's commits, its
// abandoned writer and its resume untouched.
func testRowsOfOthers(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_others", connectors.Append)
	inside, outside := Rows(1000, 1100, 7), Rows(5000, 5010, 7)
	defer inside.Release()
	defer outside.Release()
	other := connectors.WriterSpec{Job: "someone-else", Run: "x", Partition: "p9", Lease: 1, Schema: Schema}
	if _, err := f.log.Claim(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	w, err := f.sink.OpenWriter(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []arrow.RecordBatch{inside, outside} {
		if err := w.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(context.Background(), connectors.CommitRecord{Job: other.Job, Run: other.Run, Partition: other.Partition, Lease: 1, Rows: 110, Commits: 1, Done: true}); err != nil {
		t.Fatal(err)
	}
	w.Close()

	r := connectors.Range{Lo: k(0), Hi: k(2000)}
	a, lost, b := Rows(0, 1000, 0), Rows(1100, 1300, 0), Rows(1100, 2000, 0)
	defer a.Release()
	defer lost.Release()
	defer b.Release()
	f.write(part{run: "r1", id: "p0", r: r, lease: 1}, true, a)
	f.write(part{run: "r1", id: "p0", r: r, lease: 1}, false, lost)
	f.write(part{run: "r1", id: "p0", r: r, lease: 2}, true, b)
	f.expect(connectors.Range{}, checksumOf(inside, outside, a, b))
}

// Once a newer lease has claimed a partition, the older holder's commit
// fails with ErrLeaseLost and leaves nothing behind, and the older lease
// cannot claim it back.
func testLeaseFencing(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_fencing", connectors.Append)
	ctx := context.Background()
	stale := part{run: "r1", id: "p0", lease: 1}
	f.claim(stale)
	w, err := f.sink.OpenWriter(ctx, f.spec(stale))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	lost := Rows(0, 50, 9)
	defer lost.Release()
	if err := w.Write(ctx, lost); err != nil {
		t.Fatal(err)
	}

	fresh := part{run: "r1", id: "p0", lease: 2}
	f.claim(fresh)
	err = w.Commit(ctx, connectors.CommitRecord{Job: f.tbl, Run: "r1", Partition: "p0", Lease: 1, Position: k(49), Rows: 50, Commits: 1})
	if !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("commit under a lease taken over: %v, want ErrLeaseLost", err)
	}
	if _, err := f.log.Claim(ctx, f.spec(stale)); !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("claim under an older lease: %v, want ErrLeaseLost", err)
	}
	f.expect(connectors.Range{}, connectors.Checksum{})

	rows := Rows(0, 100, 0)
	defer rows.Release()
	want := f.write(fresh, true, rows)
	sameRecord(t, "the new holder's commit", f.claim(fresh), want)
	f.expect(connectors.Range{}, checksumOf(rows))
}

// Forget drops one run's records and no other's.
func testForget(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_forget", connectors.Append)
	a, b, c := Rows(0, 10, 0), Rows(10, 20, 0), Rows(20, 30, 0)
	defer a.Release()
	defer b.Release()
	defer c.Release()
	f.write(part{run: "r1", id: "p0", lease: 1}, true, a)
	f.write(part{run: "r1", id: "p1", lease: 1}, true, b)
	kept := f.write(part{run: "r2", id: "p0", lease: 1}, true, c)
	if err := f.log.Forget(context.Background(), f.tbl, "r1"); err != nil {
		t.Fatalf("forget: %v", err)
	}
	for _, id := range []string{"p0", "p1"} {
		if got := f.claim(part{run: "r1", id: id, lease: 5}); got.Commits != 0 {
			t.Fatalf("record of r1/%s after Forget: %+v", id, got)
		}
	}
	sameRecord(t, "another run's record after Forget", f.claim(part{run: "r2", id: "p0", lease: 1}), kept)
	f.expect(connectors.Range{}, checksumOf(a, b, c))
}

// Truncate empties the target and nothing else: another job's table in the
// same store keeps its rows and its commit records.
func testTruncate(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_truncate", connectors.Append)
	other := newFixture(t, h, "conf_truncate_other", connectors.Append)
	old, others := Rows(0, 50, 0), Rows(0, 20, 3)
	defer old.Release()
	defer others.Release()
	f.write(part{run: "r1", id: "p0", lease: 1}, true, old)
	kept := other.write(part{run: "r1", id: "p0", lease: 1}, true, others)
	g := newFixture(t, h, "conf_truncate", connectors.Truncate)
	sameRecord(t, "another job's record after a truncate", other.claim(part{run: "r1", id: "p0", lease: 1}), kept)
	other.expect(connectors.Range{}, checksumOf(others))
	fresh := Rows(1000, 1010, 1)
	defer fresh.Release()
	g.write(part{run: "r2", id: "p0", lease: 1}, true, fresh)
	g.expect(connectors.Range{}, checksumOf(fresh))
}

func testUpsert(t *testing.T, h Harness) {
	f := newFixture(t, h, "conf_upsert", connectors.Upsert)
	v0, v1 := Rows(0, 100, 0), Rows(50, 150, 1)
	defer v0.Release()
	defer v1.Release()
	f.write(part{run: "r1", id: "p0", lease: 1}, true, v0)
	f.write(part{run: "r2", id: "p0", lease: 1}, true, v1)
	// Writing the same rows again changes nothing.
	f.write(part{run: "r2", id: "p0", lease: 2}, true, v1)
	head := v0.NewSlice(0, 50)
	defer head.Release()
	f.expect(connectors.Range{}, checksumOf(head, v1))
}

// A keyless table read by position: every row once, and a read resumed
// after any batch's last position gives exactly the rows that followed it.
func testPositions(t *testing.T, h Harness) {
	f := newFixtureKey(t, h, "conf_positions", connectors.Append, nil)
	a, b, c := Rows(0, 300, 0), Rows(300, 650, 0), Rows(650, 1000, 0)
	defer a.Release()
	defer b.Release()
	defer c.Release()
	for i, rec := range []arrow.RecordBatch{a, b, c} {
		f.write(part{run: "r1", id: fmt.Sprintf("p%d", i), lease: 1}, true, rec)
	}
	src, err := connectors.OpenSource(context.Background(), h.Type, f.sourceConfig())
	if err != nil {
		t.Fatalf("open source: %v", err)
	}
	defer src.Close()
	pr, ok := src.(connectors.PositionReader)
	if !ok {
		t.Fatalf("%s source is not a connectors.PositionReader", h.Type)
	}
	r := h.Caps.KeylessRange
	if !pr.Positioned(r) {
		t.Fatalf("source cannot read %s by position", r)
	}
	type batch struct {
		ids  []int64
		last connectors.Key
	}
	read := func(r connectors.Range) []batch {
		t.Helper()
		var out []batch
		err := pr.ReadPositioned(context.Background(), r, func(rec arrow.RecordBatch, last connectors.Key) error {
			b := batch{last: last}
			for i := 0; i < int(rec.NumRows()); i++ {
				b.ids = append(b.ids, connectors.ValueAt(rec.Column(0), i).(int64))
			}
			out = append(out, b)
			return nil
		})
		if err != nil {
			t.Fatalf("read %s by position: %v", r, err)
		}
		return out
	}
	flat := func(bs []batch) []int64 {
		var ids []int64
		for _, b := range bs {
			ids = append(ids, b.ids...)
		}
		return ids
	}
	all := read(r)
	ids := flat(all)
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	if len(sorted) != 1000 || sorted[0] != 0 || sorted[999] != 999 || firstRepeat(sorted) >= 0 {
		t.Fatalf("read by position: %d rows, want ids 0..999 once each", len(ids))
	}
	if len(all) < 3 {
		t.Fatalf("read by position gave %d batches; the suite needs several (BatchRows is 64)", len(all))
	}
	for _, i := range []int{0, 1, len(all) / 2, len(all) - 2, len(all) - 1} {
		if all[i].last == nil {
			t.Fatalf("batch %d came without a position", i)
		}
		got := flat(read(r.Resumed(all[i].last)))
		want := flat(all[i+1:])
		if !slices.Equal(got, want) {
			t.Fatalf("resumed after batch %d (position %s): %d rows, want the %d that followed it", i, all[i].last, len(got), len(want))
		}
	}
}
