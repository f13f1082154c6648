// Package csv reads and writes RFC 4180 CSV files.
//
// The DSN is a directory (a source may also name one .csv file); when Table
// is set it is a sub-directory of the DSN. Values are written in the text
// forms of package textform (RFC 3339 timestamps with microseconds, exact
// decimals, canonical UUIDs, JSON as its text, binary in base64 or hex).
//
// NULL and the empty string stay apart: with the default null "" a NULL is
// an empty unquoted field and an empty string is written "" (quoted). With
// another null marker (null=\N) the marker unquoted is NULL and the same text
// quoted is that text. Readers of other tools that ignore quoting will see
// both as empty.
//
// Sink: each partition writes its own part files, one per Commit with rows,
// in the layout of package parts (<dir>/<run>-<partition>-<seq>.csv), and
// keeps a commit record per commit in <dir>/_datashift/ (a
// connectors.CommitLog: a resumed partition continues from its record and
// nothing committed is deleted). Every part has its own header. Records end
// in CRLF, as RFC 4180 says. Options:
//
//	delimiter  one ASCII character, or "tab" (default ",")
//	null       the text of a NULL (default: empty)
//	header     true (default) or false
//	binary     base64 (default) or hex
//
// Source: the sorted .csv files of the directory (not its folders, so never
// _datashift/), planned and read by file range like parquet (no key order)
// and by position: the position of a row is {file index, row in file}, and
// a resumed read opens no file before the position's, parsing that one
// through the rows it skips without converting their values. Options:
// delimiter, null, header and binary as above, plus
//
//	schema      explicit columns, "id:int64,name:string,price:decimal(10,2)"
//	            (types: int8…int64, uint8…uint64, float32, float64, bool,
//	            decimal(p,s), numeric, string, binary, uuid, json, date,
//	            timestamp, timestamptz, time)
//	infer_rows  rows of the first file sampled to infer types when there is
//	            no schema (default 1000); inferred types are int64, float64,
//	            bool, timestamptz (text with an offset), timestamp, date,
//	            time or string. A later value that does not parse fails the
//	            read with file, line and column: set schema then.
package csv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/parts"
	"github.com/datashift/datashift/connectors/internal/textform"
)

const (
	typeName = "csv"
	ext      = ".csv"
)

func init() {
	connectors.RegisterSource(typeName, OpenSource, sourceOptions...)
	connectors.RegisterSink(typeName, OpenSink, sinkOptions...)
}

// The options each side takes (connectors/REFERENCE.md): the format options
// on both, and on the source what settles the columns.
var (
	formatOptions = connectors.Options{
		{Name: "delimiter", Doc: "one ASCII character other than a quote or line break, or `tab` (default `,`)"},
		{Name: "null", Doc: "the text of a NULL (default empty); the same text quoted is that text, not NULL"},
		{Name: "header", Doc: "`true` (default) or `false`: whether the first record of each file names the columns"},
		{Name: "binary", Doc: "how binary values are written: `base64` (default) or `hex`"},
	}
	sourceOptions = append(slices.Clone(formatOptions),
		connectors.Option{Name: "schema", Doc: "explicit columns, `id:int64,name:string,price:decimal(10,2)` (types: " + typeNames + ")"},
		connectors.Option{Name: "infer_rows", Doc: "rows of the first file sampled to infer column types when there is no schema (default 1000)"},
	)
	sinkOptions = formatOptions
)

var (
	_ connectors.Sink        = (*Sink)(nil)
	_ connectors.SinkChecker = (*Sink)(nil)
	_ connectors.CommitLog   = (*Sink)(nil)
)

// format is what reader and writer agree on.
type format struct {
	delim  byte
	null   string
	header bool
	binary textform.Binary
}

// option applies one of the format options; ok is false for other keys.
func (f *format) option(k, v string) (ok bool, err error) {
	switch k {
	case "delimiter":
		switch {
		case v == "tab" || v == `\t`:
			f.delim = '\t'
		case len(v) == 1 && v[0] < 0x80 && v[0] != '"' && v[0] != '\n' && v[0] != '\r':
			f.delim = v[0]
		default:
			return true, fmt.Errorf("option delimiter %q: want one ASCII character other than a quote or line break, or \"tab\"", v)
		}
	case "null":
		if strings.ContainsAny(v, "\"\r\n") || strings.IndexByte(v, f.delim) >= 0 {
			return true, fmt.Errorf("option null %q: must not hold a quote, line break or the delimiter", v)
		}
		f.null = v
	case "header":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return true, fmt.Errorf("option header %q: want true or false", v)
		}
		f.header = b
	case "binary":
		b, err := textform.ParseBinary(v)
		if err != nil || b == textform.Raw {
			return true, fmt.Errorf("option binary %q: want base64 or hex", v)
		}
		f.binary = b
	default:
		return false, nil
	}
	return true, nil
}

// parseOptions applies the format options in a fixed order (delimiter before
// null, which must not contain it).
func (f *format) parseOptions(ov connectors.OptionValues) error {
	*f = format{delim: ',', header: true, binary: textform.Base64}
	for _, k := range formatOptions.Names() {
		if v, ok := ov.Lookup(k); ok {
			if _, err := f.option(k, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// datasetPath is the DSN, or the Table directory inside it.
func datasetPath(dsn, table string) (string, error) {
	if dsn == "" {
		return "", fmt.Errorf("%s: dsn (a directory) is required", typeName)
	}
	dsn = strings.TrimPrefix(dsn, "file://")
	if table == "" {
		return dsn, nil
	}
	if filepath.IsAbs(table) || strings.Contains(filepath.ToSlash(table), "..") {
		return "", fmt.Errorf("%s: table %q must be a directory name inside the dsn", typeName, table)
	}
	return filepath.Join(dsn, table), nil
}

// Sink writes a CSV dataset directory.
type Sink struct {
	parts.Log // the commit log, beside the parts
	layout    parts.Layout
	format    format
}

// OpenSink checks cfg; it touches no file until Prepare, Claim or OpenWriter.
func OpenSink(_ context.Context, cfg connectors.SinkConfig) (connectors.Sink, error) {
	dir, err := datasetPath(cfg.DSN, cfg.Table)
	if err != nil {
		return nil, err
	}
	switch cfg.Mode {
	case "", connectors.Append, connectors.Truncate:
	default:
		return nil, fmt.Errorf("%s sink: mode %q is not supported (files take append or truncate)", typeName, cfg.Mode)
	}
	layout := parts.Layout{Dir: dir, Ext: ext}
	s := &Sink{Log: parts.Log{Layout: layout, Sink: typeName}, layout: layout}
	ov, err := sinkOptions.Values(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("%s sink: %w", typeName, err)
	}
	if err := s.format.parseOptions(ov); err != nil {
		return nil, fmt.Errorf("%s sink: %w", typeName, err)
	}
	return s, nil
}

func checkSchema(schema *arrow.Schema) error {
	for _, f := range schema.Fields() {
		if err := textform.CheckType(f); err != nil {
			return fmt.Errorf("%s sink: %w", typeName, err)
		}
	}
	return nil
}

// Check is what Prepare checks before it changes anything (SinkChecker).
func (s *Sink) Check(_ context.Context, schema *arrow.Schema) error {
	if err := checkSchema(schema); err != nil {
		return err
	}
	if err := s.layout.Check(); err != nil {
		return fmt.Errorf("%s sink %s: %w", typeName, s.layout.Dir, err)
	}
	return nil
}

// Prepare creates the directory and its commit log folder, checks every
// column has a text form and, in truncate mode, removes the dataset's part
// files and commit log (other files stay).
func (s *Sink) Prepare(_ context.Context, schema *arrow.Schema, truncate bool) error {
	if err := checkSchema(schema); err != nil {
		return err
	}
	if err := s.layout.Prepare(truncate); err != nil {
		return fmt.Errorf("%s sink %s: %w", typeName, s.layout.Dir, err)
	}
	return nil
}

// OpenWriter returns the writer of spec's partition; its parts are
// numbered past every part the partition has.
func (s *Sink) OpenWriter(_ context.Context, spec connectors.WriterSpec) (connectors.Writer, error) {
	if spec.Schema == nil {
		return nil, fmt.Errorf("%s sink: writer %s has no schema", typeName, spec.Partition)
	}
	if err := checkSchema(spec.Schema); err != nil {
		return nil, err
	}
	schema, f := spec.Schema, s.format
	w, err := s.layout.OpenWriter(spec, func(w io.Writer) (parts.Encoder, error) {
		e := &encoder{w: bufio.NewWriterSize(w, 256<<10), schema: schema, f: f}
		if f.header {
			var line []byte
			for i, fld := range schema.Fields() {
				if i > 0 {
					line = append(line, f.delim)
				}
				line = appendField(line, []byte(fld.Name), f.delim, "")
			}
			if _, err := e.w.Write(append(line, '\r', '\n')); err != nil {
				return nil, err
			}
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s sink: %w", typeName, err)
	}
	return w, nil
}

// Close has nothing to release: writers own their files.
func (s *Sink) Close() error { return nil }

type encoder struct {
	w      *bufio.Writer
	schema *arrow.Schema
	f      format
	line   []byte
	text   []byte
	fmts   []textform.Formatter
}

func (e *encoder) Write(rec arrow.RecordBatch) error {
	if int(rec.NumCols()) != e.schema.NumFields() {
		return fmt.Errorf("batch has %d columns, the dataset %d", rec.NumCols(), e.schema.NumFields())
	}
	e.fmts = e.fmts[:0]
	for i, fld := range e.schema.Fields() {
		if got := rec.Column(i).DataType(); !arrow.TypeEqual(got, fld.Type) {
			return fmt.Errorf("column %q: batch has type %s, the dataset %s", fld.Name, got, fld.Type)
		}
		fm, err := textform.NewFormatter(fld, rec.Column(i), e.f.binary)
		if err != nil {
			return err
		}
		e.fmts = append(e.fmts, fm)
	}
	cols := rec.Columns()
	for r := 0; r < int(rec.NumRows()); r++ {
		line := e.line[:0]
		for c, fm := range e.fmts {
			if c > 0 {
				line = append(line, e.f.delim)
			}
			if cols[c].IsNull(r) {
				line = append(line, e.f.null...)
				continue
			}
			e.text = fm(e.text[:0], r)
			line = appendField(line, e.text, e.f.delim, e.f.null)
		}
		line = append(line, '\r', '\n')
		if _, err := e.w.Write(line); err != nil {
			return err
		}
		e.line = line
	}
	return nil
}

func (e *encoder) Close() error { return e.w.Flush() }
