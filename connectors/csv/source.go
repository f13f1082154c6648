package csv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/parts"
	"github.com/datashift/datashift/connectors/internal/textform"
)

const (
	defaultBatchRows = 16 * 1024
	defaultInferRows = 1000
)

var (
	_ connectors.Source         = (*Source)(nil)
	_ connectors.Sampler        = (*Source)(nil)
	_ connectors.Counter        = (*Source)(nil)
	_ connectors.PositionReader = (*Source)(nil)
	_ connectors.FileSet        = (*Source)(nil)
)

// Source reads a set of CSV files with one header (or one schema).
type Source struct {
	files      []connectors.FileInfo // sorted: what Range.Pages and positions index
	format     format
	schema     *arrow.Schema // of the selected columns
	ncols      int           // columns in the files
	sel        []int         // file column of each selected column
	parsers    []textform.Parser
	textLike   []bool // column keeps empty text as a value rather than NULL
	batchRows  int
	batchBytes int
	bytes      int64
	rowBytes   float64 // average record size in the sample, for the row estimate
}

// OpenSource lists the files, checks their headers agree and settles the
// schema (from the schema option, or inferred from the first file).
func OpenSource(_ context.Context, cfg connectors.SourceConfig) (connectors.Source, error) {
	path, err := datasetPath(cfg.DSN, cfg.Table)
	if err != nil {
		return nil, err
	}
	if err := parts.CheckSourceConfig(typeName, cfg); err != nil {
		return nil, err
	}
	s := &Source{batchRows: defaultBatchRows, batchBytes: cfg.BatchBytes}
	if cfg.BatchRows > 0 {
		s.batchRows = cfg.BatchRows
	}
	ov, err := sourceOptions.Values(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	if err := s.format.parseOptions(ov); err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	var explicit *arrow.Schema
	if v, ok := ov.Lookup("schema"); ok {
		if explicit, err = parseSchema(v); err != nil {
			return nil, fmt.Errorf("%s source: option schema: %w", typeName, err)
		}
	}
	inferRows := defaultInferRows
	if v, ok := ov.Lookup("infer_rows"); ok {
		if inferRows, err = strconv.Atoi(v); err != nil || inferRows < 1 {
			return nil, fmt.Errorf("%s source: option infer_rows %q: want a positive integer", typeName, v)
		}
	}
	if s.files, err = parts.List(path, ext); err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	if len(s.files) == 0 && explicit == nil {
		return nil, fmt.Errorf("%s source: no %s files in %s, and no schema option to say the columns", typeName, ext, path)
	}
	full, err := s.resolveSchema(explicit, inferRows)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	s.ncols = full.NumFields()
	if len(cfg.Columns) > 0 {
		if s.sel, err = connectors.ColumnIndexes(full, cfg.Columns); err != nil {
			return nil, fmt.Errorf("%s source %s: %w", typeName, path, err)
		}
	} else {
		for i := range full.NumFields() {
			s.sel = append(s.sel, i)
		}
	}
	fields := make([]arrow.Field, len(s.sel))
	for j, i := range s.sel {
		f := full.Field(i)
		fields[j] = f
		p, err := textform.NewParser(f, s.format.binary)
		if err != nil {
			return nil, fmt.Errorf("%s source: %w", typeName, err)
		}
		s.parsers = append(s.parsers, p)
		switch f.Type.ID() {
		case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY:
			s.textLike = append(s.textLike, true)
		default:
			s.textLike = append(s.textLike, false)
		}
	}
	s.schema = arrow.NewSchema(fields, nil)
	for _, f := range s.files {
		s.bytes += f.Size
	}
	return s, nil
}

// resolveSchema reads every file's header (they must agree with the first,
// and with the schema option when there is one) and, with no schema
// option, infers the types from the first file's first rows.
func (s *Source) resolveSchema(explicit *arrow.Schema, inferRows int) (*arrow.Schema, error) {
	var names []string
	var kinds []kind
	for n, fi := range s.files {
		path := fi.Path
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		rr := newRecordReader(f, s.format.delim)
		var header []string
		if s.format.header {
			fields, _, _, err := rr.Read()
			if err != nil && !errors.Is(err, io.EOF) {
				f.Close()
				return nil, fmt.Errorf("%s: header: %w", path, err)
			}
			header = append([]string(nil), fields...)
			switch {
			case explicit != nil:
				if err := headerMatches(header, schemaNames(explicit)); err != nil {
					f.Close()
					return nil, fmt.Errorf("%s: header does not match option schema: %w", path, err)
				}
			case n == 0:
				names = header
			default:
				if err := headerMatches(header, names); err != nil {
					f.Close()
					return nil, fmt.Errorf("%s: header differs from %s: %w", path, s.files[0].Path, err)
				}
			}
		}
		if n == 0 {
			var err error
			kinds, names, err = s.sample(rr, path, names, explicit == nil, inferRows)
			if err != nil {
				f.Close()
				return nil, err
			}
		}
		f.Close()
	}
	if explicit != nil {
		return explicit, nil
	}
	fields := make([]arrow.Field, len(names))
	for i, n := range names {
		fields[i] = kinds[i].field(n)
	}
	return arrow.NewSchema(fields, nil), nil
}

// sample reads up to rows records of the first file: their average size
// for the row estimate and, when infer is set, the column types. With no
// header the columns are named col1, col2, ….
func (s *Source) sample(rr *recordReader, path string, names []string, infer bool, rows int) ([]kind, []string, error) {
	kinds := make([]kind, len(names))
	var bytes, n int
	for n < rows {
		fields, quoted, line, err := rr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if names == nil {
			for i := range fields {
				names = append(names, "col"+strconv.Itoa(i+1))
			}
			kinds = make([]kind, len(names))
		}
		if len(fields) == 1 && fields[0] == "" && !quoted[0] && len(names) > 1 {
			continue // blank line
		}
		n++
		for _, f := range fields {
			bytes += len(f) + 1
		}
		if !infer {
			continue
		}
		if len(fields) != len(names) {
			return nil, nil, fmt.Errorf("%s: line %d: %d fields, want %d", path, line, len(fields), len(names))
		}
		for i, v := range fields {
			if !quoted[i] && v == s.format.null || v == "" {
				continue // NULL tells nothing of the type
			}
			kinds[i] = widen(kinds[i], v)
		}
	}
	if n > 0 {
		s.rowBytes = float64(bytes) / float64(n)
	}
	if names == nil {
		return nil, nil, fmt.Errorf("%s: empty file and no schema option: no columns", path)
	}
	return kinds, names, nil
}

func schemaNames(sc *arrow.Schema) []string {
	out := make([]string, sc.NumFields())
	for i, f := range sc.Fields() {
		out[i] = f.Name
	}
	return out
}

func headerMatches(got, want []string) error {
	for i := 0; i < max(len(got), len(want)); i++ {
		switch {
		case i >= len(got):
			return fmt.Errorf("column %d %q missing", i+1, want[i])
		case i >= len(want):
			return fmt.Errorf("column %d %q not expected", i+1, got[i])
		case got[i] != want[i]:
			return fmt.Errorf("column %d is %q, want %q", i+1, got[i], want[i])
		}
	}
	return nil
}

// Schema is the files' schema (of the selected columns).
func (s *Source) Schema(context.Context) (*arrow.Schema, error) { return s.schema, nil }

// Files is the sorted list of input files, as listed when the source
// opened: what Range.Pages and positions index.
func (s *Source) Files(context.Context) ([]connectors.FileInfo, error) {
	return slices.Clone(s.files), nil
}

// Read streams the rows of r in file name order, then row order, a batch
// at a time. r.After, when set, is a position (see ReadPositioned).
func (s *Source) Read(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch) error) error {
	return s.ReadPositioned(ctx, r, func(b arrow.RecordBatch, _ connectors.Key) error { return fn(b) })
}

// Positioned reports whether r is a file range (no key bounds): every
// range a CSV source reads is.
func (s *Source) Positioned(r connectors.Range) bool { return parts.Positioned(r) }

// ReadPositioned is Read giving each batch's last position,
// {int64(file index), int64(row in file)} (0-based, header and blank lines
// not counted). Batches never span files. Resumed after a position, the
// read opens no earlier file and parses the position's file through the
// rows it skips, without converting them.
func (s *Source) ReadPositioned(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch, connectors.Key) error) error {
	span, err := parts.FileSpan(len(s.files), r)
	if err != nil {
		return fmt.Errorf("%s source: %w", typeName, err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, s.schema)
	defer b.Release()
	for _, i := range span.Files() {
		if err := s.readFile(ctx, i, span.SkipOf(i), b, fn); err != nil {
			return err
		}
	}
	return nil
}

// records opens file i and returns a reader past its header; ok is false
// (and err nil) for a file with nothing after its header.
func (s *Source) records(i int) (rr *recordReader, f *os.File, ok bool, err error) {
	path := s.files[i].Path
	if f, err = os.Open(path); err != nil {
		return nil, nil, false, fmt.Errorf("%s source: %w", typeName, err)
	}
	rr = newRecordReader(f, s.format.delim)
	if s.format.header {
		if _, _, _, err := rr.Read(); err != nil {
			f.Close()
			if errors.Is(err, io.EOF) {
				return nil, nil, false, nil
			}
			return nil, nil, false, fmt.Errorf("%s source: %s: %w", typeName, path, err)
		}
	}
	return rr, f, true, nil
}

// next returns the file's next row's fields, skipping blank lines; io.EOF
// at the end.
func (s *Source) next(rr *recordReader, path string) (fields []string, quoted []bool, line int, err error) {
	for {
		fields, quoted, line, err := rr.Read()
		if errors.Is(err, io.EOF) {
			return nil, nil, 0, err
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s source: %s: %w", typeName, path, err)
		}
		if len(fields) != s.ncols {
			if len(fields) == 1 && fields[0] == "" && !quoted[0] {
				continue // blank line
			}
			return nil, nil, 0, fmt.Errorf("%s source: %s: line %d: %d fields, want %d", typeName, path, line, len(fields), s.ncols)
		}
		return fields, quoted, line, nil
	}
}

func (s *Source) readFile(ctx context.Context, i int, skip int64, b *array.RecordBuilder, fn func(arrow.RecordBatch, connectors.Key) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path := s.files[i].Path
	rr, f, ok, err := s.records(i)
	if !ok {
		return err
	}
	defer f.Close()
	var row int64 // rows of the file read so far, skipped ones included
	for ; row < skip; row++ {
		if _, _, _, err := s.next(rr, path); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
	rows, bytes := 0, 0
	flush := func() error {
		rec := b.NewRecordBatch()
		defer rec.Release()
		rows, bytes = 0, 0
		if err := fn(rec, parts.Pos{File: i, Row: row - 1}.Key()); err != nil {
			return err
		}
		return ctx.Err()
	}
	builders := b.Fields()
	for {
		fields, quoted, line, err := s.next(rr, path)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		for j, c := range s.sel {
			v := fields[c]
			if !quoted[c] && v == s.format.null || v == "" && !s.textLike[j] {
				builders[j].AppendNull()
				continue
			}
			if err := s.parsers[j](builders[j], v); err != nil {
				return fmt.Errorf("%s source: %s: line %d: column %q: %w", typeName, path, line, s.schema.Field(j).Name, err)
			}
			bytes += len(v)
		}
		rows++
		row++
		if rows >= s.batchRows || s.batchBytes > 0 && bytes >= s.batchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if rows > 0 {
		return flush()
	}
	return nil
}

// Stats reports the file count for planning by file range; rows are
// estimated from the sampled record size (reading every file to count would
// cost as much as copying it).
func (s *Source) Stats(context.Context, int) (connectors.Stats, error) {
	st := connectors.Stats{Bytes: s.bytes, Method: "files", PageCount: int64(len(s.files))}
	if s.rowBytes > 0 {
		st.Rows = int64(float64(s.bytes) / s.rowBytes)
	}
	return st, nil
}

// Count reads the files of r and counts their rows.
func (s *Source) Count(ctx context.Context, r connectors.Range) (int64, error) {
	span, err := parts.FileSpan(len(s.files), r)
	if err != nil {
		return 0, fmt.Errorf("%s source: %w", typeName, err)
	}
	var n int64
	for _, i := range span.Files() {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		c, err := s.countFile(i)
		if err != nil {
			return 0, err
		}
		n += max(0, c-span.SkipOf(i))
	}
	return n, nil
}

func (s *Source) countFile(i int) (int64, error) {
	rr, f, ok, err := s.records(i)
	if !ok {
		return 0, err
	}
	defer f.Close()
	var n int64
	for {
		_, _, _, err := s.next(rr, s.files[i].Path)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		n++
	}
}

// Close has nothing to release: each Read opens and closes its files.
func (s *Source) Close() error { return nil }
