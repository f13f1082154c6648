package csv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
	_ connectors.Source  = (*Source)(nil)
	_ connectors.Sampler = (*Source)(nil)
	_ connectors.Counter = (*Source)(nil)
)

// Source reads a set of CSV files with one header (or one schema).
type Source struct {
	files      []string
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
	others, err := s.format.parseOptions(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	var explicit *arrow.Schema
	inferRows := defaultInferRows
	for _, k := range others {
		v := cfg.Options[k]
		switch k {
		case "schema":
			if explicit, err = parseSchema(v); err != nil {
				return nil, fmt.Errorf("%s source: option schema: %w", typeName, err)
			}
		case "infer_rows":
			if inferRows, err = strconv.Atoi(v); err != nil || inferRows < 1 {
				return nil, fmt.Errorf("%s source: option infer_rows %q: want a positive integer", typeName, v)
			}
		default:
			return nil, fmt.Errorf("%s source: unknown option %q (known: delimiter, null, header, binary, schema, infer_rows)", typeName, k)
		}
	}
	if s.files, err = parts.Files(path, ext); err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	full, err := s.resolveSchema(explicit, inferRows)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", typeName, err)
	}
	s.ncols = full.NumFields()
	if len(cfg.Columns) > 0 {
		if s.sel, err = connectors.ColumnIndexes(full, cfg.Columns); err != nil {
			return nil, fmt.Errorf("%s source %s: %w", typeName, s.files[0], err)
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
		if st, err := os.Stat(f); err == nil {
			s.bytes += st.Size()
		}
	}
	return s, nil
}

// resolveSchema reads every file's header (they must agree with the first,
// and with the schema option when there is one) and, with no schema
// option, infers the types from the first file's first rows.
func (s *Source) resolveSchema(explicit *arrow.Schema, inferRows int) (*arrow.Schema, error) {
	var names []string
	var kinds []kind
	for n, path := range s.files {
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
					return nil, fmt.Errorf("%s: header differs from %s: %w", path, s.files[0], err)
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

// Read streams the files of r in name order, a batch at a time.
func (s *Source) Read(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch) error) error {
	lo, hi, err := parts.FileRange(len(s.files), r)
	if err != nil {
		return fmt.Errorf("%s source: %w", typeName, err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, s.schema)
	defer b.Release()
	for _, path := range s.files[lo:hi] {
		if err := s.readFile(ctx, path, b, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) readFile(ctx context.Context, path string, b *array.RecordBuilder, fn func(arrow.RecordBatch) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s source: %w", typeName, err)
	}
	defer f.Close()
	rr := newRecordReader(f, s.format.delim)
	if s.format.header {
		if _, _, _, err := rr.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s source: %s: %w", typeName, path, err)
		}
	}
	rows, bytes := 0, 0
	flush := func() error {
		rec := b.NewRecordBatch()
		defer rec.Release()
		rows, bytes = 0, 0
		if err := fn(rec); err != nil {
			return err
		}
		return ctx.Err()
	}
	builders := b.Fields()
	for {
		fields, quoted, line, err := rr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s source: %s: %w", typeName, path, err)
		}
		if len(fields) != s.ncols {
			if len(fields) == 1 && fields[0] == "" && !quoted[0] {
				continue // blank line
			}
			return fmt.Errorf("%s source: %s: line %d: %d fields, want %d", typeName, path, line, len(fields), s.ncols)
		}
		for j, i := range s.sel {
			v := fields[i]
			if !quoted[i] && v == s.format.null || v == "" && !s.textLike[j] {
				builders[j].AppendNull()
				continue
			}
			if err := s.parsers[j](builders[j], v); err != nil {
				return fmt.Errorf("%s source: %s: line %d: column %q: %w", typeName, path, line, s.schema.Field(j).Name, err)
			}
			bytes += len(v)
		}
		rows++
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

// Count reads the files of r and counts their records.
func (s *Source) Count(ctx context.Context, r connectors.Range) (int64, error) {
	lo, hi, err := parts.FileRange(len(s.files), r)
	if err != nil {
		return 0, fmt.Errorf("%s source: %w", typeName, err)
	}
	var n int64
	for _, path := range s.files[lo:hi] {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		c, err := s.countFile(path)
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

func (s *Source) countFile(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%s source: %w", typeName, err)
	}
	defer f.Close()
	rr := newRecordReader(f, s.format.delim)
	var n int64
	for first := true; ; first = false {
		fields, quoted, _, err := rr.Read()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("%s source: %s: %w", typeName, path, err)
		}
		if first && s.format.header || len(fields) == 1 && fields[0] == "" && !quoted[0] && s.ncols > 1 {
			continue
		}
		n++
	}
}

// Close has nothing to release: each Read opens and closes its files.
func (s *Source) Close() error { return nil }
