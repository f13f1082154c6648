package parquet

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/conformance"
	"github.com/datashift/datashift/connectors/internal/parts/fixture"
)

var ctx = context.Background()

func openSink(t testing.TB, dir string, opts map[string]string) connectors.Sink {
	t.Helper()
	s, err := connectors.OpenSink(ctx, "parquet", connectors.SinkConfig{DSN: dir, Key: []string{"id"}, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openSource(t testing.TB, dsn string, cfg connectors.SourceConfig) connectors.Source {
	t.Helper()
	cfg.DSN = dsn
	s, err := connectors.OpenSource(ctx, "parquet", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRoundTripEveryType(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	if err := s.Prepare(ctx, fixture.Schema, false); err != nil {
		t.Fatal(err)
	}
	a, b, c := fixture.Rows(0, 25), fixture.Rows(25, 40), fixture.Rows(40, 60)
	defer a.Release()
	defer b.Release()
	defer c.Release()
	if rec := fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, a, b); rec.Rows != 40 || rec.Commits != 1 {
		t.Fatalf("record %+v, want 40 rows in 1 commit", rec)
	}
	fixture.Write(t, s, fixture.Spec("p1", fixture.Schema), true, c)
	if got, want := fixture.ListDir(t, dir), []string{"_datashift", "r1-p0-000001.parquet", "r1-p1-000001.parquet"}; !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}

	src := openSource(t, dir, connectors.SourceConfig{BatchRows: 16})
	sc, err := src.Schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Equal(fixture.Schema) {
		t.Fatalf("schema does not round-trip:\n got %s\nwant %s", sc, fixture.Schema)
	}
	want := append(append(fixture.Values(a), fixture.Values(b)...), fixture.Values(c)...)
	fixture.Equal(t, fixture.ReadAll(t, src, connectors.Range{}, fixture.Schema), want, fixture.Schema)

	// Planning by file: two files, exact rows from the footers.
	st, err := src.(connectors.Sampler).Stats(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 60 || st.PageCount != 2 || st.Method != "files" || !st.Exact || st.Bytes == 0 {
		t.Fatalf("stats %+v, want 60 rows in 2 files", st)
	}
	second := connectors.Range{Pages: &connectors.PageRange{Lo: 1, Hi: 2}}
	fixture.Equal(t, fixture.ReadAll(t, src, second, fixture.Schema), fixture.Values(c), fixture.Schema)
	if n, err := src.(connectors.Counter).Count(ctx, second); err != nil || n != 20 {
		t.Fatalf("count of file 1: %d, %v; want 20", n, err)
	}
	if n, err := src.(connectors.Counter).Count(ctx, connectors.Range{Pages: &connectors.PageRange{Lo: 5}}); err != nil || n != 0 {
		t.Fatalf("count past the last file: %d, %v; want 0", n, err)
	}
	// A single file is a DSN too.
	one := openSource(t, filepath.Join(dir, "r1-p1-000001.parquet"), connectors.SourceConfig{})
	fixture.Equal(t, fixture.ReadAll(t, one, connectors.Range{}, fixture.Schema), fixture.Values(c), fixture.Schema)
}

func TestBatchesAreBounded(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, map[string]string{"row_group_rows": "16"})
	all := fixture.Rows(0, 100)
	defer all.Release()
	fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, all)

	pf, err := file.OpenParquetFile(filepath.Join(dir, "r1-p0-000001.parquet"), false)
	if err != nil {
		t.Fatal(err)
	}
	if n := pf.NumRowGroups(); n != 7 {
		t.Errorf("row groups: %d, want 7 (100 rows by 16)", n)
	}
	pf.Close()

	src := openSource(t, dir, connectors.SourceConfig{BatchRows: 10})
	var sizes []int64
	err = src.Read(ctx, connectors.Range{}, func(rec arrow.RecordBatch) error {
		sizes = append(sizes, rec.NumRows())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range sizes {
		total += n
		if n > 10 {
			t.Fatalf("batch of %d rows, BatchRows is 10 (%v)", n, sizes)
		}
	}
	if total != 100 || len(sizes) < 10 {
		t.Fatalf("batches %v: want 100 rows in at least 10 batches", sizes)
	}
}

func TestCompression(t *testing.T) {
	for opt, want := range map[string]compress.Compression{
		"":     compress.Codecs.Snappy,
		"zstd": compress.Codecs.Zstd,
		"none": compress.Codecs.Uncompressed,
	} {
		dir := t.TempDir()
		var opts map[string]string
		if opt != "" {
			opts = map[string]string{"compression": opt}
		}
		s := openSink(t, dir, opts)
		rec := fixture.Rows(0, 30)
		fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, rec)
		pf, err := file.OpenParquetFile(filepath.Join(dir, "r1-p0-000001.parquet"), false)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := pf.MetaData().RowGroup(0).ColumnChunk(0)
		if err != nil {
			t.Fatal(err)
		}
		if got := cc.Compression(); got != want {
			t.Errorf("compression %q: file has %s, want %s", opt, got, want)
		}
		pf.Close()
		src := openSource(t, dir, connectors.SourceConfig{})
		fixture.Equal(t, fixture.ReadAll(t, src, connectors.Range{}, fixture.Schema), fixture.Values(rec), fixture.Schema)
		rec.Release()
	}
}

// ids reads the id column in file order.
func ids(t testing.TB, dir string) []int64 {
	t.Helper()
	src := openSource(t, dir, connectors.SourceConfig{Columns: []string{"id"}})
	var out []int64
	for _, row := range fixture.ReadAll(t, src, connectors.Range{}, nil) {
		out = append(out, row[0].(int64))
	}
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestResumeKeepsCommittedParts: a partition resumed under a new lease
// continues from the sink's record, whether its checkpoint was saved or
// not; committed parts are never deleted, the unfinished one is.
func TestResumeKeepsCommittedParts(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	if err := s.Prepare(ctx, fixture.Schema, false); err != nil {
		t.Fatal(err)
	}
	r := func(from, to int64) arrow.RecordBatch { return fixture.Rows(from, to) }
	fixture.Write(t, s, fixture.Spec("p1", fixture.Schema), true, r(1000, 1010))

	// Attempt 1: three commits, then rows written and never committed, and
	// a crash that left a .tmp part.
	spec := fixture.Spec("p0", fixture.Schema)
	rec := fixture.Write(t, s, spec, true, r(0, 100))
	w, err := s.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []arrow.RecordBatch{r(100, 150), r(150, 170)} {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		rec.Rows += b.NumRows()
		rec.Commits++
		rec.Position = connectors.Key{rec.Rows}
		if err := w.Commit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(ctx, r(170, 180)); err != nil {
		t.Fatal(err)
	}
	// no Commit, no Close: the process died
	committed := []string{"_datashift", "r1-p0-000001.parquet", "r1-p0-000002.parquet", "r1-p0-000003.parquet", "r1-p1-000001.parquet"}
	if got, want := fixture.ListDir(t, dir), append(slices.Clone(committed[:4]), "r1-p0-000004.parquet.1.tmp", committed[4]); !slices.Equal(got, want) {
		t.Fatalf("before resume: %v, want %v", got, want)
	}

	// Attempt 2 claims under lease 2: the sink's record says 170 rows.
	spec.Lease = 2
	got, err := s.(connectors.CommitLog).Claim(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != 170 || got.Commits != 3 || connectors.CompareKeys(got.Position, connectors.Key{int64(170)}) != 0 {
		t.Fatalf("claim after the crash: %+v, want 170 rows in 3 commits", got)
	}
	if got := fixture.ListDir(t, dir); !slices.Equal(got, committed) {
		t.Fatalf("after the claim: %v, want the committed parts %v", got, committed)
	}
	fixture.Write(t, s, spec, true, r(170, 200))
	if got, want := ids(t, dir), append(seq(0, 200), seq(1000, 1010)...); !slices.Equal(got, want) {
		t.Fatalf("ids after resume: %d rows %v…, want 0..199 and 1000..1009", len(got), got[:min(len(got), 5)])
	}
	all, tail := r(0, 200), r(1000, 1010)
	src := openSource(t, dir, connectors.SourceConfig{})
	if got, want := fixture.SourceChecksum(t, src, connectors.Range{}), fixture.Checksum(all, tail); got != want {
		t.Fatalf("checksum %v, want %v", got, want)
	}
}

// TestStaleWriterLandsNothing: a writer whose partition was claimed by a
// newer lease commits nothing and cannot claim it back.
func TestStaleWriterLandsNothing(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	log := s.(connectors.CommitLog)
	rec := fixture.Rows(0, 5)
	defer rec.Release()
	stale := fixture.Spec("p0", fixture.Schema)
	fixture.Write(t, s, stale, true, rec)
	w, err := s.OpenWriter(ctx, stale)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	more := fixture.Rows(5, 10)
	defer more.Release()
	if err := w.Write(ctx, more); err != nil {
		t.Fatal(err)
	}
	fresh := stale
	fresh.Lease = 2
	if _, err := log.Claim(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	err = w.Commit(ctx, connectors.CommitRecord{Job: stale.Job, Run: stale.Run, Partition: stale.Partition, Lease: 1, Rows: 10, Commits: 2})
	if !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("stale commit: %v, want ErrLeaseLost", err)
	}
	if _, err := log.Claim(ctx, stale); !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("claim under the older lease: %v, want ErrLeaseLost", err)
	}
	if got := ids(t, dir); !slices.Equal(got, seq(0, 5)) {
		t.Fatalf("the stale writer changed the data: %v", got)
	}
	if got := fixture.ListDir(t, dir); !slices.Equal(got, []string{"_datashift", "r1-p0-000001.parquet"}) {
		t.Fatalf("files %v", got)
	}
}

func TestTruncateRemovesOnlyParts(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	old := fixture.Rows(0, 20)
	defer old.Release()
	fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, old)
	fixture.Write(t, s, fixture.Spec("p1", fixture.Schema), false, old) // abandoned: Close removes its .tmp
	keep := []string{"README.txt", "manual.parquet", "p0-1.parquet"}
	for _, n := range append(keep, "p2-000007.parquet.tmp", "p3-000001.parquet") { // the last two named as earlier versions named parts
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Prepare(ctx, fixture.Schema, true); err != nil {
		t.Fatal(err)
	}
	if got, want := fixture.ListDir(t, dir), []string{"README.txt", "_datashift", "manual.parquet", "p0-1.parquet"}; !slices.Equal(got, want) {
		t.Fatalf("after truncate: %v, want only %v", got, want)
	}
	if got := fixture.ListDir(t, filepath.Join(dir, "_datashift")); len(got) != 0 {
		t.Fatalf("commit log after truncate: %v", got)
	}
	for _, n := range keep {
		os.Remove(filepath.Join(dir, n))
	}
	fresh := fixture.Rows(500, 510)
	defer fresh.Release()
	fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, fresh)
	if got := ids(t, dir); !slices.Equal(got, seq(500, 510)) {
		t.Fatalf("after truncate and write: %v", got)
	}
}

func TestSchemaMismatchNamesFile(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	rec := fixture.Rows(0, 3)
	defer rec.Release()
	fixture.Write(t, s, fixture.Spec("a", fixture.Schema), true, rec)

	other := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil)
	s2, err := connectors.OpenSink(ctx, "parquet", connectors.SinkConfig{DSN: dir})
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, other)
	b.Field(0).(*array.StringBuilder).Append("x")
	r2 := b.NewRecordBatch()
	fixture.Write(t, s2, fixture.Spec("b", other), true, r2)
	_, err = connectors.OpenSource(ctx, "parquet", connectors.SourceConfig{DSN: dir})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "r1-b-000001.parquet")) ||
		!strings.Contains(err.Error(), "22 columns") && !strings.Contains(err.Error(), "1 columns instead of 22") {
		t.Fatalf("mixed schemas: %v", err)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		err  func() error
		want string
	}{
		{"unknown sink option", func() error {
			_, err := connectors.OpenSink(ctx, "parquet", connectors.SinkConfig{DSN: dir, Options: map[string]string{"compresion": "zstd"}})
			return err
		}, `unknown option "compresion"`},
		{"bad compression", func() error {
			_, err := connectors.OpenSink(ctx, "parquet", connectors.SinkConfig{DSN: dir, Options: map[string]string{"compression": "lzma"}})
			return err
		}, `compression: "lzma"`},
		{"upsert", func() error {
			_, err := connectors.OpenSink(ctx, "parquet", connectors.SinkConfig{DSN: dir, Mode: connectors.Upsert})
			return err
		}, `mode "upsert" is not supported`},
		{"unknown source option", func() error {
			_, err := connectors.OpenSource(ctx, "parquet", connectors.SourceConfig{DSN: dir, Options: map[string]string{"x": "1"}})
			return err
		}, `unknown option "x"`},
		{"no files", func() error {
			src, err := connectors.OpenSource(ctx, "parquet", connectors.SourceConfig{DSN: dir})
			if err != nil {
				return err
			}
			_, err = src.Schema(ctx) // an empty dataset reads as no rows, but has no schema
			return err
		}, "no .parquet files in " + dir},
		{"source key", func() error {
			_, err := connectors.OpenSource(ctx, "parquet", connectors.SourceConfig{DSN: dir, Key: []string{"id"}})
			return err
		}, "no key order"},
		{"missing key column", func() error {
			s, _ := connectors.OpenSink(ctx, "parquet", connectors.SinkConfig{DSN: dir, Key: []string{"nope"}})
			return s.Prepare(ctx, fixture.Schema, false)
		}, `column "nope" not found`},
	}
	for _, c := range cases {
		err := c.err()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestNullInRequiredColumnIsValueError(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String}, // not nullable
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2}, nil)
	b.Field(1).(*array.StringBuilder).Append("a")
	b.Field(1).AppendNull()
	rec := b.NewRecordBatch()
	defer rec.Release()
	w, err := s.OpenWriter(ctx, fixture.Spec("p0", sc))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Write(ctx, rec)
	var ve *connectors.ValueError
	if !errors.As(err, &ve) || ve.Column != "name" || connectors.CompareKeys(ve.Key, connectors.Key{int64(2)}) != 0 {
		t.Fatalf("error %v, want a ValueError for column name, key 2", err)
	}
	if !strings.Contains(err.Error(), `column "name", row with key 2`) {
		t.Fatalf("message %q", err)
	}
}

func TestKeyRangeRefused(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	rec := fixture.Rows(0, 3)
	defer rec.Release()
	fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, rec)
	src := openSource(t, dir, connectors.SourceConfig{})
	err := src.Read(ctx, connectors.Range{Lo: connectors.Key{int64(1)}}, func(arrow.RecordBatch) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no key order") {
		t.Fatalf("key range on files: %v", err)
	}
	if got := fixture.ReadAll(t, src, connectors.Range{Nulls: true}, nil); len(got) != 0 {
		t.Fatalf("NULL-key range of a keyless source: %d rows", len(got))
	}
}

// TestBatchSchemaWithoutMetadata: the file keeps the planned schema (with its
// logical types) even when batches arrive with bare field types.
func TestBatchSchemaWithoutMetadata(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	rec := fixture.Rows(0, 10)
	defer rec.Release()
	bare := make([]arrow.Field, rec.NumCols())
	for i, f := range fixture.Schema.Fields() {
		bare[i] = arrow.Field{Name: f.Name, Type: f.Type, Nullable: true}
	}
	plain := array.NewRecordBatch(arrow.NewSchema(bare, nil), rec.Columns(), rec.NumRows())
	defer plain.Release()
	fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, plain)
	src := openSource(t, dir, connectors.SourceConfig{})
	sc, _ := src.Schema(ctx)
	if !sc.Equal(fixture.Schema) {
		t.Fatalf("file schema %s, want the planned %s", sc, fixture.Schema)
	}
	fixture.Equal(t, fixture.ReadAll(t, src, connectors.Range{}, fixture.Schema), fixture.Values(rec), fixture.Schema)

	// A batch whose column types differ is refused, naming the column.
	w, err := s.OpenWriter(ctx, fixture.Spec("p1", fixture.Schema))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil))
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append("x")
	wrong := b.NewRecordBatch()
	defer wrong.Release()
	if err := w.Write(ctx, wrong); err == nil || !strings.Contains(err.Error(), "batch has 1 columns, the dataset 22") {
		t.Fatalf("wrong batch: %v", err)
	}
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	conformance.Run(t, conformance.Harness{
		Type:         typeName,
		SourceConfig: func(table string) connectors.SourceConfig { return connectors.SourceConfig{DSN: dir, Table: table} },
		SinkConfig:   func(table string) connectors.SinkConfig { return connectors.SinkConfig{DSN: dir, Table: table} },
		Caps:         conformance.Caps{Positions: true, KeylessRange: connectors.Range{}},
	})
}

// positioned reads r by position: the ids in order, and each batch's last
// position.
func positioned(t *testing.T, src connectors.Source, r connectors.Range) (ids []int64, last []connectors.Key) {
	t.Helper()
	err := src.(connectors.PositionReader).ReadPositioned(ctx, r, func(rec arrow.RecordBatch, pos connectors.Key) error {
		ids = append(ids, rec.Column(0).(*array.Int64).Int64Values()...)
		last = append(last, pos)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s after %s: %v", r, r.After, err)
	}
	return ids, last
}

// TestResumeInsideRowGroups: in files of several row groups (dictionary
// pages, NULLs, a projection), a read resumed after a row gives exactly the
// rows that follow it, and positions count rows from 0 in each file.
func TestResumeInsideRowGroups(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, map[string]string{"row_group_rows": "16"})
	a, b := fixture.Rows(0, 100), fixture.Rows(100, 130)
	defer a.Release()
	defer b.Release()
	fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, a)
	fixture.Write(t, s, fixture.Spec("p1", fixture.Schema), true, b)
	for _, cols := range [][]string{nil, {"id", "s", "dec"}} {
		src := openSource(t, dir, connectors.SourceConfig{BatchRows: 7, Columns: cols})
		all, last := positioned(t, src, connectors.Range{})
		if !slices.Equal(all, seq(0, 130)) {
			t.Fatalf("columns %v: read %v", cols, all)
		}
		if want := (connectors.Key{int64(0), int64(6)}); connectors.CompareKeys(last[0], want) != 0 {
			t.Fatalf("first batch ends at %s, want %s", last[0], want)
		}
		if want := (connectors.Key{int64(1), int64(29)}); connectors.CompareKeys(last[len(last)-1], want) != 0 {
			t.Fatalf("last batch ends at %s, want %s", last[len(last)-1], want)
		}
		// Around batch (7) and row group (16) edges, and the ends of files.
		for _, id := range []int64{0, 5, 6, 14, 15, 16, 17, 31, 47, 50, 63, 64, 98, 99, 100, 101, 116, 128, 129} {
			pos := connectors.Key{int64(0), id}
			if id >= 100 {
				pos = connectors.Key{int64(1), id - 100}
			}
			var vals [][]any
			if err := src.(connectors.PositionReader).ReadPositioned(ctx, connectors.Range{}.Resumed(pos), func(rec arrow.RecordBatch, _ connectors.Key) error {
				vals = append(vals, fixture.Values(rec)...)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var want [][]any
			if id < 99 {
				tail := a.NewSlice(id+1, 100)
				want = fixture.Values(project(tail, cols))
				tail.Release()
			}
			if id < 129 {
				tail := b.NewSlice(max(0, id+1-100), 30)
				want = append(want, fixture.Values(project(tail, cols))...)
				tail.Release()
			}
			sc, _ := src.Schema(ctx)
			fixture.Equal(t, vals, want, sc)
		}
		if n, err := src.(connectors.Counter).Count(ctx, connectors.Range{}.Resumed(connectors.Key{int64(0), int64(89)})); err != nil || n != 40 {
			t.Fatalf("count after (0, 89): %d, %v; want 40", n, err)
		}
	}
}

// project is rec's columns named cols (all when nil).
func project(rec arrow.RecordBatch, cols []string) arrow.RecordBatch {
	if cols == nil {
		return rec
	}
	idx, _ := connectors.ColumnIndexes(rec.Schema(), cols)
	var fs []arrow.Field
	var arrs []arrow.Array
	for _, i := range idx {
		fs = append(fs, rec.Schema().Field(i))
		arrs = append(arrs, rec.Column(i))
	}
	return array.NewRecordBatch(arrow.NewSchema(fs, nil), arrs, rec.NumRows())
}

// TestResumedReadSkipsRowGroups: the row groups before a position are never
// read, nor are earlier files opened. Row group 0's bytes are overwritten
// and file 0 removed after the source opened: a whole read fails, a read
// resumed past them does not.
func TestResumedReadSkipsRowGroups(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, map[string]string{"row_group_rows": "16"})
	a, b := fixture.Rows(0, 10), fixture.Rows(10, 60)
	defer a.Release()
	defer b.Release()
	fixture.Write(t, s, fixture.Spec("p0", fixture.Schema), true, a)
	fixture.Write(t, s, fixture.Spec("p1", fixture.Schema), true, b)
	src := openSource(t, dir, connectors.SourceConfig{BatchRows: 5})

	path := filepath.Join(dir, "r1-p1-000001.parquet")
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	rg := pf.MetaData().RowGroup(0)
	lo, hi := int64(-1), int64(0)
	for c := 0; c < rg.NumColumns(); c++ {
		cc, err := rg.ColumnChunk(c)
		if err != nil {
			t.Fatal(err)
		}
		start := cc.DataPageOffset()
		if cc.HasDictionaryPage() && cc.DictionaryPageOffset() < start {
			start = cc.DictionaryPageOffset()
		}
		if lo < 0 || start < lo {
			lo = start
		}
		hi = max(hi, start+cc.TotalCompressedSize())
	}
	pf.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, int(hi-lo)), lo); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Remove(filepath.Join(dir, "r1-p0-000001.parquet")); err != nil {
		t.Fatal(err)
	}

	if err := src.Read(ctx, connectors.Range{Pages: &connectors.PageRange{Lo: 1}}, func(arrow.RecordBatch) error { return nil }); err == nil {
		t.Fatal("reading the overwritten row group did not fail: the test proves nothing")
	}
	got, _ := positioned(t, src, connectors.Range{}.Resumed(connectors.Key{int64(1), int64(15)}))
	if !slices.Equal(got, seq(26, 60)) {
		t.Fatalf("resumed after the first row group: %v", got)
	}
	got, _ = positioned(t, src, connectors.Range{}.Resumed(connectors.Key{int64(1), int64(20)}))
	if !slices.Equal(got, seq(31, 60)) {
		t.Fatalf("resumed inside the second row group: %v", got)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	for _, p := range []string{"p1", "p0"} {
		rec := fixture.Rows(0, 3)
		fixture.Write(t, s, fixture.Spec(p, fixture.Schema), true, rec)
		rec.Release()
	}
	os.WriteFile(filepath.Join(dir, "_datashift", "stray.parquet"), []byte("x"), 0o644)
	src := openSource(t, dir, connectors.SourceConfig{})
	files, err := src.(connectors.FileSet).Files(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || filepath.Base(files[0].Path) != "r1-p0-000001.parquet" || filepath.Base(files[1].Path) != "r1-p1-000001.parquet" {
		t.Fatalf("files %+v", files)
	}
	for _, f := range files {
		st, err := os.Stat(f.Path)
		if err != nil || st.Size() != f.Size || !st.ModTime().Equal(f.ModTime) {
			t.Fatalf("file %+v, on disk %v, %v", f, st, err)
		}
	}
	// An empty dataset (prepared, nothing committed) reads as no rows.
	empty := t.TempDir()
	if err := openSink(t, empty, nil).Prepare(ctx, fixture.Schema, false); err != nil {
		t.Fatal(err)
	}
	src = openSource(t, empty, connectors.SourceConfig{})
	if got := fixture.ReadAll(t, src, connectors.Range{}, nil); len(got) != 0 {
		t.Fatalf("empty dataset: %v", got)
	}
	if files, _ := src.(connectors.FileSet).Files(ctx); len(files) != 0 {
		t.Fatalf("empty dataset files: %v", files)
	}
}
