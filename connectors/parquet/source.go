package parquet

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/parts"
)

const defaultBatchRows = 64 * 1024

var (
	_ connectors.Source         = (*Source)(nil)
	_ connectors.Sampler        = (*Source)(nil)
	_ connectors.Counter        = (*Source)(nil)
	_ connectors.PositionReader = (*Source)(nil)
	_ connectors.FileSet        = (*Source)(nil)
)

// Source reads a set of Parquet files that share one schema.
type Source struct {
	dir        string
	files      []connectors.FileInfo // sorted: what Range.Pages and positions index
	rows       []int64               // per file, from the footers
	bytes      int64
	schema     *arrow.Schema // of the selected columns, cleaned of pqarrow's field ids; nil with no files
	fields     []int         // selected top-level fields; nil = all
	batchRows  int64
	batchBytes int64
	mem        memory.Allocator
}

// OpenSource lists the files and reads their footers: the schemas must agree
// and the row counts make Stats exact. A directory with no files is an
// empty dataset: it reads as no rows, but has no schema to tell.
func OpenSource(_ context.Context, cfg connectors.SourceConfig) (connectors.Source, error) {
	path, err := datasetPath(cfg.DSN, cfg.Table)
	if err != nil {
		return nil, err
	}
	if err := parts.CheckSourceConfig(typeName, cfg); err != nil {
		return nil, err
	}
	if _, err := sourceOptions.Values(cfg.Options); err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	files, err := parts.List(path, ext)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	s := &Source{dir: path, files: files, batchRows: defaultBatchRows, batchBytes: int64(cfg.BatchBytes), mem: memory.DefaultAllocator}
	if cfg.BatchRows > 0 {
		s.batchRows = int64(cfg.BatchRows)
	}
	var full *arrow.Schema
	for _, f := range files {
		sc, rows, err := s.footer(f.Path)
		if err != nil {
			return nil, err
		}
		if full == nil {
			full = sc
		} else if err := sameSchema(full, sc); err != nil {
			return nil, fmt.Errorf("%s source: %s differs from %s: %w", typeName, f.Path, files[0].Path, err)
		}
		s.rows = append(s.rows, rows)
		s.bytes += f.Size
	}
	s.schema = full
	if len(cfg.Columns) > 0 && full != nil {
		idx, err := connectors.ColumnIndexes(full, cfg.Columns)
		if err != nil {
			return nil, fmt.Errorf("%s source %s: %w", typeName, files[0].Path, err)
		}
		s.fields = idx
		fs := make([]arrow.Field, len(idx))
		for i, j := range idx {
			fs[i] = full.Field(j)
		}
		s.schema = arrow.NewSchema(fs, nil)
	}
	return s, nil
}

func (s *Source) footer(path string) (*arrow.Schema, int64, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, 0, fmt.Errorf("%s source: %s: %w", typeName, path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, s.mem)
	if err != nil {
		return nil, 0, fmt.Errorf("%s source: %s: %w", typeName, path, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return nil, 0, fmt.Errorf("%s source: %s: schema: %w", typeName, path, err)
	}
	return cleanSchema(sc), pf.NumRows(), nil
}

// cleanSchema drops the "PARQUET:field_id" -1 that pqarrow adds to every
// field, so the schema a source reports is the one the writer had.
func cleanSchema(sc *arrow.Schema) *arrow.Schema {
	fs := make([]arrow.Field, sc.NumFields())
	for i, f := range sc.Fields() {
		if v, ok := f.Metadata.GetValue("PARQUET:field_id"); ok && v == "-1" {
			var ks, vs []string
			for j, k := range f.Metadata.Keys() {
				if k != "PARQUET:field_id" {
					ks = append(ks, k)
					vs = append(vs, f.Metadata.Values()[j])
				}
			}
			f.Metadata = arrow.NewMetadata(ks, vs)
		}
		fs[i] = f
	}
	var md *arrow.Metadata
	if sm := sc.Metadata(); sm.Len() > 0 {
		md = &sm
	}
	return arrow.NewSchema(fs, md)
}

// sameSchema says how b differs from a: names, types and logical types must
// agree column by column.
func sameSchema(a, b *arrow.Schema) error {
	if a.NumFields() != b.NumFields() {
		return fmt.Errorf("%d columns instead of %d", b.NumFields(), a.NumFields())
	}
	for i, fa := range a.Fields() {
		fb := b.Field(i)
		switch {
		case fa.Name != fb.Name:
			return fmt.Errorf("column %d is %q instead of %q", i, fb.Name, fa.Name)
		case !arrow.TypeEqual(fa.Type, fb.Type):
			return fmt.Errorf("column %q has type %s instead of %s", fa.Name, fb.Type, fa.Type)
		case connectors.Logical(fa) != connectors.Logical(fb):
			return fmt.Errorf("column %q has logical type %q instead of %q", fa.Name, connectors.Logical(fb), connectors.Logical(fa))
		}
	}
	return nil
}

// Schema is the files' schema (of the selected columns).
func (s *Source) Schema(context.Context) (*arrow.Schema, error) {
	if s.schema == nil {
		return nil, fmt.Errorf("%s source: no %s files in %s: no schema to read", typeName, ext, s.dir)
	}
	return s.schema, nil
}

// Files is the sorted list of input files, as listed when the source
// opened: what Range.Pages and positions index.
func (s *Source) Files(context.Context) ([]connectors.FileInfo, error) {
	return slices.Clone(s.files), nil
}

func (s *Source) span(r connectors.Range) (parts.Span, error) {
	span, err := parts.FileSpan(len(s.files), r)
	if err != nil {
		return span, fmt.Errorf("%s source: %w", typeName, err)
	}
	return span, nil
}

// Read streams the rows of r in file name order, then row order, batch by
// batch: memory is a batch plus a page and a 1 MiB read buffer per column,
// not a file or a row group. r.After, when set, is a position (see
// ReadPositioned).
func (s *Source) Read(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch) error) error {
	return s.ReadPositioned(ctx, r, func(b arrow.RecordBatch, _ connectors.Key) error { return fn(b) })
}

// Positioned reports whether r is a file range (no key bounds): every
// range a Parquet source reads is.
func (s *Source) Positioned(r connectors.Range) bool { return parts.Positioned(r) }

// ReadPositioned is Read giving each batch's last position,
// {int64(file index), int64(row in file)} (0-based). Batches never span
// files. Resumed after a position, the read opens no earlier file, skips
// the row groups before the position's by the footer's row counts and
// seeks inside its row group to the row after it.
func (s *Source) ReadPositioned(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch, connectors.Key) error) error {
	span, err := s.span(r)
	if err != nil {
		return err
	}
	for _, i := range span.Files() {
		if err := s.readFile(ctx, i, span.SkipOf(i), fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) readFile(ctx context.Context, i int, skip int64, fn func(arrow.RecordBatch, connectors.Key) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, rows := s.files[i].Path, s.rows[i]
	if skip >= rows {
		return nil
	}
	// Buffered streams read a column chunk through a small buffer instead of
	// whole: row groups of files we did not write may be gigabytes.
	props := parquet.NewReaderProperties(s.mem)
	props.BufferedStreamEnabled = true
	props.BufferSize = 1 << 20
	pf, err := file.OpenParquetFile(path, false, file.WithReadProps(props))
	if err != nil {
		return fmt.Errorf("%s source: %s: %w", typeName, path, err)
	}
	defer pf.Close()
	if pf.NumRows() != rows {
		return fmt.Errorf("%s source: %s: %d rows, %d when the source opened: the file changed", typeName, path, pf.NumRows(), rows)
	}
	// The row groups from the one that holds row skip on; the row's offset
	// in that group.
	var groups []int
	var start int64
	for g := 0; g < pf.NumRowGroups(); g++ {
		n := pf.MetaData().RowGroup(g).NumRows()
		if groups == nil && start+n <= skip {
			start += n
			continue
		}
		groups = append(groups, g)
	}
	batch := s.batchRows
	if s.batchBytes > 0 {
		// Bound bytes through rows: the footer knows the average
		// uncompressed row size.
		var ubytes int64
		for g := 0; g < pf.NumRowGroups(); g++ {
			ubytes += pf.MetaData().RowGroup(g).TotalByteSize()
		}
		if per := ubytes / rows; per > 0 {
			batch = max(1, min(batch, s.batchBytes/per))
		}
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: batch}, s.mem)
	if err != nil {
		return fmt.Errorf("%s source: %s: %w", typeName, path, err)
	}
	leaves, err := leafColumns(fr, s.fields)
	if err != nil {
		return fmt.Errorf("%s source: %s: %w", typeName, path, err)
	}
	rr, err := fr.GetRecordReader(ctx, leaves, groups)
	if err != nil {
		return fmt.Errorf("%s source: %s: %w", typeName, path, err)
	}
	defer rr.Release()
	if skip > start {
		if err := rr.SeekToRow(skip - start); err != nil {
			return fmt.Errorf("%s source: %s: seek to row %d: %w", typeName, path, skip, err)
		}
	}
	row := skip // the file's next row
	for rr.Next() {
		rec := rr.RecordBatch()
		row += rec.NumRows()
		// Same columns, reported under the cleaned schema; no copy.
		out := array.NewRecordBatch(s.schema, rec.Columns(), rec.NumRows())
		err := fn(out, parts.Pos{File: i, Row: row - 1}.Key())
		out.Release()
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s source: %s: %w", typeName, path, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if row != rows {
		return fmt.Errorf("%s source: %s: read up to row %d of %d", typeName, path, row, rows)
	}
	return nil
}

// leafColumns maps top-level fields to the Parquet leaf columns the record
// reader selects by (a struct or list field has several leaves).
func leafColumns(fr *pqarrow.FileReader, fields []int) ([]int, error) {
	if fields == nil {
		return nil, nil
	}
	var leaves []int
	var walk func(f pqarrow.SchemaField)
	walk = func(f pqarrow.SchemaField) {
		if f.ColIndex >= 0 && len(f.Children) == 0 {
			leaves = append(leaves, f.ColIndex)
			return
		}
		for _, c := range f.Children {
			walk(c)
		}
	}
	for _, i := range fields {
		if i >= len(fr.Manifest.Fields) {
			return nil, fmt.Errorf("column %d not in file", i)
		}
		walk(fr.Manifest.Fields[i])
	}
	return leaves, nil
}

// Stats reports the file count for planning by file range, and the exact
// row count from the footers. There is no key, so no sample.
func (s *Source) Stats(context.Context, int) (connectors.Stats, error) {
	var rows int64
	for _, n := range s.rows {
		rows += n
	}
	return connectors.Stats{
		Rows:      rows,
		Bytes:     s.bytes,
		Exact:     true,
		Method:    "files",
		PageCount: int64(len(s.files)),
	}, nil
}

// Count answers from the footers.
func (s *Source) Count(_ context.Context, r connectors.Range) (int64, error) {
	span, err := s.span(r)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, i := range span.Files() {
		n += max(0, s.rows[i]-span.SkipOf(i))
	}
	return n, nil
}

// Close has nothing to release: each Read opens and closes its files.
func (s *Source) Close() error { return nil }
