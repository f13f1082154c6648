// Package parquet reads and writes Parquet files through Arrow's pqarrow.
//
// The DSN is a directory (a sink's dataset directory; a source may also name
// a single .parquet file). When Table is set it is a sub-directory of the DSN,
// so one DSN can hold several datasets.
//
// Sink: each partition writes its own part files, one per Commit with rows,
// as package parts lays them out (<dir>/<run>-<partition>-<seq>.parquet),
// and keeps a commit record per commit in <dir>/_datashift/ (a
// connectors.CommitLog: a resumed partition continues from its record and
// nothing committed is deleted). The Arrow schema is stored in every file so
// field metadata (datashift.logical json/uuid/numeric) and time zones
// survive. Options:
//
//	compression     snappy (default; written at Snappy's fast level, see
//	                fastSnappy), zstd, gzip, lz4, brotli, none
//	row_group_rows  rows per row group (default 131072); a row group is
//	                buffered in memory, compressed, until it is full
//
// Source: the sorted .parquet files of the directory (not its folders, so
// never _datashift/); no key order, so it plans by file (Stats.PageCount =
// files, Method "files"), reads Range.Pages as file indexes [Lo, Hi) and
// reads by position: the position of a row is {file index, row in file}. A
// read resumed after a position opens no earlier file and skips the row
// groups before it by the footer's row counts, without reading them.
// Options: none.
package parquet

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/parts"
)

const (
	typeName = "parquet"
	ext      = ".parquet"

	defaultRowGroupRows = 128 * 1024
)

func init() {
	connectors.RegisterSource(typeName, OpenSource, sourceOptions...)
	connectors.RegisterSink(typeName, OpenSink, sinkOptions...)
}

// The options each side takes (connectors/REFERENCE.md).
var (
	sourceOptions = connectors.Options{}
	sinkOptions   = connectors.Options{
		{Name: "compression", Doc: "`snappy` (default), `zstd`, `gzip`, `lz4`, `brotli` or `none`"},
		{Name: "row_group_rows", Doc: "rows per row group (default 131072); a row group is buffered in memory, compressed, until it is full"},
	}
)

var (
	_ connectors.Sink        = (*Sink)(nil)
	_ connectors.SinkChecker = (*Sink)(nil)
	_ connectors.CommitLog   = (*Sink)(nil)
	_ connectors.Writer      = (*parts.Writer)(nil)
)

// Sink writes a Parquet dataset directory.
type Sink struct {
	parts.Log    // the commit log, beside the parts
	layout       parts.Layout
	codec        compress.Compression
	rowGroupRows int64
	keys         []string
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

// OpenSink checks cfg; it touches no file until Prepare, Claim or OpenWriter.
func OpenSink(_ context.Context, cfg connectors.SinkConfig) (connectors.Sink, error) {
	dir, err := datasetPath(cfg.DSN, cfg.Table)
	if err != nil {
		return nil, err
	}
	layout := parts.Layout{Dir: dir, Ext: ext}
	s := &Sink{Log: parts.Log{Layout: layout, Sink: typeName}, layout: layout, codec: compress.Codecs.Snappy, rowGroupRows: defaultRowGroupRows, keys: cfg.Key}
	switch cfg.Mode {
	case "", connectors.Append, connectors.Truncate:
	default:
		return nil, fmt.Errorf("%s sink: mode %q is not supported (files take append or truncate)", typeName, cfg.Mode)
	}
	ov, err := sinkOptions.Values(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("%s sink: %w", typeName, err)
	}
	if v, ok := ov.Lookup("compression"); ok {
		c, err := parseCompression(v)
		if err != nil {
			return nil, fmt.Errorf("%s sink: option compression: %w", typeName, err)
		}
		s.codec = c
	}
	if v, ok := ov.Lookup("row_group_rows"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s sink: option row_group_rows %q: want a positive integer", typeName, v)
		}
		s.rowGroupRows = n
	}
	return s, nil
}

func parseCompression(v string) (compress.Compression, error) {
	switch strings.ToLower(v) {
	case "snappy", "":
		return compress.Codecs.Snappy, nil
	case "zstd":
		return compress.Codecs.Zstd, nil
	case "gzip":
		return compress.Codecs.Gzip, nil
	case "lz4":
		return compress.Codecs.Lz4Raw, nil
	case "brotli":
		return compress.Codecs.Brotli, nil
	case "none", "uncompressed":
		return compress.Codecs.Uncompressed, nil
	}
	return 0, fmt.Errorf("%q: want snappy, zstd, gzip, lz4, brotli or none", v)
}

func (s *Sink) writerProps(schema *arrow.Schema) (*parquet.WriterProperties, pqarrow.ArrowWriterProperties) {
	opts := []parquet.WriterProperty{
		parquet.WithCompression(s.codec),
		parquet.WithMaxRowGroupLength(s.rowGroupRows),
		parquet.WithCreatedBy("datashift"),
		// Dictionary encoding only where repeats are likely (text). On keys,
		// amounts, floats and times, mostly distinct, the dictionary is
		// hashed, outgrows its page and is thrown away: measured at over half
		// the sink's CPU.
		parquet.WithDictionaryDefault(false),
	}
	for _, f := range schema.Fields() {
		switch f.Type.ID() {
		case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY, arrow.DICTIONARY:
			if connectors.Logical(f) == "" {
				opts = append(opts, parquet.WithDictionaryFor(f.Name, true))
			}
		}
	}
	props := parquet.NewWriterProperties(opts...)
	// The stored Arrow schema is what brings back field metadata, time zones
	// and unsigned/small integer widths on read.
	return props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
}

// Check is what Prepare checks before it changes anything (SinkChecker).
func (s *Sink) Check(_ context.Context, schema *arrow.Schema) error {
	if err := s.checkSchema(schema); err != nil {
		return err
	}
	if err := s.layout.Check(); err != nil {
		return fmt.Errorf("%s sink %s: %w", typeName, s.layout.Dir, err)
	}
	return nil
}

// Prepare creates the directory and its commit log folder, checks that
// every column has a Parquet type, and in truncate mode removes the
// dataset's part files and commit log (files of other names stay).
func (s *Sink) Prepare(_ context.Context, schema *arrow.Schema, truncate bool) error {
	if err := s.checkSchema(schema); err != nil {
		return err
	}
	if err := s.layout.Prepare(truncate); err != nil {
		return fmt.Errorf("%s sink %s: %w", typeName, s.layout.Dir, err)
	}
	return nil
}

func (s *Sink) checkSchema(schema *arrow.Schema) error {
	props, aprops := s.writerProps(schema)
	for _, f := range schema.Fields() {
		one := arrow.NewSchema([]arrow.Field{f}, nil)
		if _, err := pqarrow.ToParquet(one, props, aprops); err != nil {
			return fmt.Errorf("%s sink: column %q: type %s: %w", typeName, f.Name, f.Type, err)
		}
	}
	if _, err := connectors.ColumnIndexes(schema, s.keys); err != nil {
		return fmt.Errorf("%s sink: key: %w", typeName, err)
	}
	return nil
}

// OpenWriter returns the writer of spec's partition; its parts are
// numbered past every part the partition has.
func (s *Sink) OpenWriter(_ context.Context, spec connectors.WriterSpec) (connectors.Writer, error) {
	if spec.Schema == nil {
		return nil, fmt.Errorf("%s sink: writer %s has no schema", typeName, spec.Partition)
	}
	if err := s.checkSchema(spec.Schema); err != nil {
		return nil, err
	}
	// The schema's own metadata is a source's word to a sink of its kind
	// (a PostgreSQL table's indexes), not for the files; the fields keep
	// theirs.
	schema := arrow.NewSchema(spec.Schema.Fields(), nil)
	var keyCols []int
	if len(s.keys) > 0 {
		keyCols, _ = connectors.ColumnIndexes(schema, s.keys) // checked by checkSchema
	}
	w, err := s.layout.OpenWriter(spec, func(w io.Writer) (parts.Encoder, error) {
		props, aprops := s.writerProps(schema)
		fw, err := pqarrow.NewFileWriter(schema, w, props, aprops)
		if err != nil {
			return nil, err
		}
		return &encoder{fw: fw, schema: schema, keyCols: keyCols}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s sink: %w", typeName, err)
	}
	return w, nil
}

// Close has nothing to release: writers own their files.
func (s *Sink) Close() error { return nil }

// encoder writes one part file.
type encoder struct {
	fw      *pqarrow.FileWriter
	schema  *arrow.Schema
	keyCols []int
}

func (e *encoder) Write(rec arrow.RecordBatch) error {
	if !rec.Schema().Equal(e.schema) {
		// Batches may differ from the planned schema in metadata or
		// nullability only; the columns' types must be the same.
		if rec.NumCols() != int64(e.schema.NumFields()) {
			return fmt.Errorf("batch has %d columns, the dataset %d", rec.NumCols(), e.schema.NumFields())
		}
		for i, f := range e.schema.Fields() {
			if got := rec.Column(i).DataType(); !arrow.TypeEqual(got, f.Type) {
				return fmt.Errorf("column %q: batch has type %s, the dataset %s", f.Name, got, f.Type)
			}
		}
		rec = array.NewRecordBatch(e.schema, rec.Columns(), rec.NumRows())
		defer rec.Release()
	}
	// A required Parquet column cannot hold a NULL: say which row has one
	// rather than let the encoder fail somewhere inside the row group.
	for i, f := range e.schema.Fields() {
		col := rec.Column(i)
		if f.Nullable || col.NullN() == 0 {
			continue
		}
		for r := 0; r < col.Len(); r++ {
			if col.IsNull(r) {
				var key connectors.Key
				if len(e.keyCols) > 0 {
					key = connectors.KeyOf(rec, e.keyCols, r)
				}
				return &connectors.ValueError{Column: f.Name, Key: key, Value: "NULL", Reason: "the column is not nullable"}
			}
		}
	}
	return e.fw.WriteBuffered(rec)
}

func (e *encoder) Close() error { return e.fw.Close() }
