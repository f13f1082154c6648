package parquet

import (
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
	if st := fixture.Write(t, s, "p0", fixture.Schema, nil, true, a, b); string(st) != `{"parts":1}` {
		t.Fatalf("sink state %s, want {\"parts\":1}", st)
	}
	fixture.Write(t, s, "p1", fixture.Schema, nil, true, c)
	if got, want := fixture.ListDir(t, dir), []string{"p0-000001.parquet", "p1-000001.parquet"}; !slices.Equal(got, want) {
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
	one := openSource(t, filepath.Join(dir, "p1-000001.parquet"), connectors.SourceConfig{})
	fixture.Equal(t, fixture.ReadAll(t, one, connectors.Range{}, fixture.Schema), fixture.Values(c), fixture.Schema)
}

func TestBatchesAreBounded(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, map[string]string{"row_group_rows": "16"})
	all := fixture.Rows(0, 100)
	defer all.Release()
	fixture.Write(t, s, "p0", fixture.Schema, nil, true, all)

	pf, err := file.OpenParquetFile(filepath.Join(dir, "p0-000001.parquet"), false)
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
		fixture.Write(t, s, "p0", fixture.Schema, nil, true, rec)
		pf, err := file.OpenParquetFile(filepath.Join(dir, "p0-000001.parquet"), false)
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

func TestResume(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	if err := s.Prepare(ctx, fixture.Schema, false); err != nil {
		t.Fatal(err)
	}
	r := func(from, to int64) arrow.RecordBatch { return fixture.Rows(from, to) }
	fixture.Write(t, s, "p1", fixture.Schema, nil, true, r(1000, 1010))

	// Attempt 1: three commits, but only the first checkpoint was saved; then
	// rows written and never committed, and a crash that left a .tmp part.
	st1 := fixture.Write(t, s, "p0", fixture.Schema, nil, true, r(0, 100))
	w, err := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p0", Schema: fixture.Schema,
		Resume: &connectors.ResumePoint{LastKey: connectors.Key{int64(99)}, SinkState: st1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []arrow.RecordBatch{r(100, 150), r(150, 170)} {
		if err := w.Write(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(ctx, r(170, 180)); err != nil {
		t.Fatal(err)
	}
	// no Commit, no Close: the process died
	if got, want := fixture.ListDir(t, dir), []string{"p0-000001.parquet", "p0-000002.parquet", "p0-000003.parquet", "p0-000004.parquet.tmp", "p1-000001.parquet"}; !slices.Equal(got, want) {
		t.Fatalf("before resume: %v, want %v", got, want)
	}

	// Attempt 2 resumes from the saved checkpoint: after 99, one part.
	st := fixture.Write(t, s, "p0", fixture.Schema, &connectors.ResumePoint{LastKey: connectors.Key{int64(99)}, SinkState: st1}, true, r(100, 150), r(150, 200))
	if string(st) != `{"parts":2}` {
		t.Fatalf("state after resume %s, want {\"parts\":2}", st)
	}
	if got, want := fixture.ListDir(t, dir), []string{"p0-000001.parquet", "p0-000002.parquet", "p1-000001.parquet"}; !slices.Equal(got, want) {
		t.Fatalf("files after resume %v, want %v", got, want)
	}
	if got, want := ids(t, dir), append(seq(0, 200), seq(1000, 1010)...); !slices.Equal(got, want) {
		t.Fatalf("ids after resume: %d rows %v…, want 0..199 and 1000..1009", len(got), got[:min(len(got), 5)])
	}
	all, tail := r(0, 200), r(1000, 1010)
	src := openSource(t, dir, connectors.SourceConfig{})
	if got, want := fixture.SourceChecksum(t, src, connectors.Range{}), fixture.Checksum(all, tail); got != want {
		t.Fatalf("checksum %v, want %v", got, want)
	}

	// A restart from scratch (no checkpoint) removes all of p0 and nothing of p1.
	fixture.Write(t, s, "p0", fixture.Schema, &connectors.ResumePoint{}, true, r(0, 10))
	if got, want := ids(t, dir), append(seq(0, 10), seq(1000, 1010)...); !slices.Equal(got, want) {
		t.Fatalf("ids after restart: %v, want 0..9 and 1000..1009", got)
	}
}

func TestResumeRefusals(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	rec := fixture.Rows(0, 5)
	defer rec.Release()
	fixture.Write(t, s, "p0", fixture.Schema, nil, true, rec)

	// A fresh writer must not overwrite the parts of an earlier run.
	_, err := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p0", Schema: fixture.Schema})
	if err == nil || !strings.Contains(err.Error(), "p0-000001.parquet already exists") {
		t.Fatalf("fresh writer over committed parts: %v", err)
	}
	// A checkpoint with a key but no sink state cannot say which parts to keep.
	_, err = s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p0", Schema: fixture.Schema,
		Resume: &connectors.ResumePoint{LastKey: connectors.Key{int64(3)}}})
	if err == nil || !strings.Contains(err.Error(), "without sink state") {
		t.Fatalf("resume with key and no state: %v", err)
	}
	// A state naming a part that is gone is corruption, not something to paper over.
	_, err = s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p0", Schema: fixture.Schema,
		Resume: &connectors.ResumePoint{LastKey: connectors.Key{int64(3)}, SinkState: []byte(`{"parts":2}`)}})
	if err == nil || !strings.Contains(err.Error(), "p0-000002.parquet is missing") {
		t.Fatalf("resume with a missing part: %v", err)
	}
	if got := ids(t, dir); !slices.Equal(got, seq(0, 5)) {
		t.Fatalf("refused writers changed the data: %v", got)
	}
}

func TestTruncateRemovesOnlyParts(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	old := fixture.Rows(0, 20)
	defer old.Release()
	fixture.Write(t, s, "p0", fixture.Schema, nil, true, old)
	fixture.Write(t, s, "p1", fixture.Schema, nil, false, old) // abandoned: Close removes its .tmp
	keep := []string{"README.txt", "manual.parquet", "p0-1.parquet"}
	for _, n := range append(keep, "p2-000007.parquet.tmp") {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Prepare(ctx, fixture.Schema, true); err != nil {
		t.Fatal(err)
	}
	if got := fixture.ListDir(t, dir); !slices.Equal(got, keep) {
		t.Fatalf("after truncate: %v, want only %v", got, keep)
	}
	for _, n := range keep {
		os.Remove(filepath.Join(dir, n))
	}
	fresh := fixture.Rows(500, 510)
	defer fresh.Release()
	fixture.Write(t, s, "p0", fixture.Schema, nil, true, fresh)
	if got := ids(t, dir); !slices.Equal(got, seq(500, 510)) {
		t.Fatalf("after truncate and write: %v", got)
	}
}

func TestSchemaMismatchNamesFile(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, nil)
	rec := fixture.Rows(0, 3)
	defer rec.Release()
	fixture.Write(t, s, "a", fixture.Schema, nil, true, rec)

	other := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil)
	s2, err := connectors.OpenSink(ctx, "parquet", connectors.SinkConfig{DSN: dir})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s2.OpenWriter(ctx, connectors.WriterSpec{Partition: "b", Schema: other})
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, other)
	b.Field(0).(*array.StringBuilder).Append("x")
	r2 := b.NewRecordBatch()
	if err := w.Write(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = connectors.OpenSource(ctx, "parquet", connectors.SourceConfig{DSN: dir})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "b-000001.parquet")) ||
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
			_, err := connectors.OpenSource(ctx, "parquet", connectors.SourceConfig{DSN: dir})
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
	w, err := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p0", Schema: sc})
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
	fixture.Write(t, s, "p0", fixture.Schema, nil, true, rec)
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
	fixture.Write(t, s, "p0", fixture.Schema, nil, true, plain)
	src := openSource(t, dir, connectors.SourceConfig{})
	sc, _ := src.Schema(ctx)
	if !sc.Equal(fixture.Schema) {
		t.Fatalf("file schema %s, want the planned %s", sc, fixture.Schema)
	}
	fixture.Equal(t, fixture.ReadAll(t, src, connectors.Range{}, fixture.Schema), fixture.Values(rec), fixture.Schema)

	// A batch whose column types differ is refused, naming the column.
	w, err := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p1", Schema: fixture.Schema})
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
