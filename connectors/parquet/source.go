package parquet

import (
	"context"
	"errors"
	"fmt"
	"os"

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
	_ connectors.Source  = (*Source)(nil)
	_ connectors.Sampler = (*Source)(nil)
	_ connectors.Counter = (*Source)(nil)
)

// Source reads a set of Parquet files that share one schema.
type Source struct {
	files      []string
	rows       []int64 // per file, from the footers
	bytes      int64
	schema     *arrow.Schema // of the selected columns, cleaned of pqarrow's field ids
	fields     []int         // selected top-level fields; nil = all
	batchRows  int64
	batchBytes int64
	mem        memory.Allocator
}

// OpenSource lists the files and reads their footers: the schemas must agree
// and the row counts make Stats exact.
func OpenSource(_ context.Context, cfg connectors.SourceConfig) (connectors.Source, error) {
	path, err := datasetPath(cfg.DSN, cfg.Table)
	if err != nil {
		return nil, err
	}
	if err := parts.CheckSourceConfig(typeName, cfg); err != nil {
		return nil, err
	}
	for k := range cfg.Options {
		return nil, fmt.Errorf("%s source: unknown option %q (the source takes none)", typeName, k)
	}
	files, err := parts.Files(path, ext)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	s := &Source{files: files, batchRows: defaultBatchRows, batchBytes: int64(cfg.BatchBytes), mem: memory.DefaultAllocator}
	if cfg.BatchRows > 0 {
		s.batchRows = int64(cfg.BatchRows)
	}
	var full *arrow.Schema
	for _, f := range files {
		sc, rows, size, err := s.footer(f)
		if err != nil {
			return nil, err
		}
		if full == nil {
			full = sc
		} else if err := sameSchema(full, sc); err != nil {
			return nil, fmt.Errorf("%s source: %s differs from %s: %w", typeName, f, files[0], err)
		}
		s.rows = append(s.rows, rows)
		s.bytes += size
	}
	s.schema = full
	if len(cfg.Columns) > 0 {
		idx, err := connectors.ColumnIndexes(full, cfg.Columns)
		if err != nil {
			return nil, fmt.Errorf("%s source %s: %w", typeName, files[0], err)
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

func (s *Source) footer(path string) (*arrow.Schema, int64, int64, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s source: %s: %w", typeName, path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, s.mem)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s source: %s: %w", typeName, path, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s source: %s: schema: %w", typeName, path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s source: %w", typeName, err)
	}
	return cleanSchema(sc), pf.NumRows(), st.Size(), nil
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
func (s *Source) Schema(context.Context) (*arrow.Schema, error) { return s.schema, nil }

func (s *Source) selectFiles(r connectors.Range) ([]int, error) {
	lo, hi, err := parts.FileRange(len(s.files), r)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	var out []int
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out, nil
}

// Read streams the files of r in name order, batch by batch: memory is a
// batch plus a page and a 1 MiB read buffer per column, not a file or a row
// group.
func (s *Source) Read(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch) error) error {
	idx, err := s.selectFiles(r)
	if err != nil {
		return err
	}
	for _, i := range idx {
		if err := s.readFile(ctx, s.files[i], s.rows[i], fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) readFile(ctx context.Context, path string, rows int64, fn func(arrow.RecordBatch) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rows == 0 {
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
	rr, err := fr.GetRecordReader(ctx, leaves, nil)
	if err != nil {
		return fmt.Errorf("%s source: %s: %w", typeName, path, err)
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.RecordBatch()
		// Same columns, reported under the cleaned schema; no copy.
		out := array.NewRecordBatch(s.schema, rec.Columns(), rec.NumRows())
		err := fn(out)
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
	return ctx.Err()
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
	idx, err := s.selectFiles(r)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, i := range idx {
		n += s.rows[i]
	}
	return n, nil
}

// Close has nothing to release: each Read opens and closes its files.
func (s *Source) Close() error { return nil }
