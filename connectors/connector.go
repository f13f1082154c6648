// Package connectors defines the seam between datashift and the stores it copies
// between: a Source reads a key range of a table as Arrow record batches in key
// order, a Sink writes batches for one partition and commits them. Each store lives
// in its own sub-package and registers itself by type name (see Register*).
//
// Optional abilities (sampling for split points, exported snapshots, …) are separate
// small interfaces that callers detect with a type assertion, the way database/sql
// detects driver.ConnPrepareContext.
package connectors

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
)

// SourceConfig says what to read. Table or Query is set, not both.
type SourceConfig struct {
	DSN   string
	Table string // may be schema-qualified: "public.orders"
	// Query is a SELECT whose result is read as if it were a table; Key columns
	// must be among its output columns.
	Query   string
	Key     []string // columns that order and split the rows; empty: no usable key
	Columns []string // empty: all columns
	// Where is a user filter (SQL text in the source's dialect) applied to
	// planning and reading alike.
	Where string
	// BatchRows and BatchBytes bound one record batch; whichever is hit first.
	BatchRows  int
	BatchBytes int
	// Snapshot, when set, is an exported snapshot id every reader imports so all
	// partitions see the same data (PostgreSQL).
	Snapshot string
	// Cursor, when set, narrows the read to an incremental window:
	// Cursor.After < column <= Cursor.UpTo (After nil: no lower bound).
	Cursor *CursorWindow
	// Options holds connector-specific settings, validated by the connector.
	Options map[string]string
}

// CursorWindow is the slice of an incremental sync a run copies. Values are
// key values (see Key): int64, float64, string, time.Time, ….
type CursorWindow struct {
	Column string
	After  any
	UpTo   any
}

// WriteMode says how a sink treats rows already in the target.
type WriteMode string

const (
	Append   WriteMode = "append"   // insert; the target keeps what it had
	Truncate WriteMode = "truncate" // empty the target once per run, then insert
	Upsert   WriteMode = "upsert"   // insert or replace by Key
)

// SinkConfig says where to write.
type SinkConfig struct {
	DSN         string
	Table       string
	Mode        WriteMode
	Key         []string // the source key columns; required for Upsert and resume
	CreateTable bool     // create the target from the Arrow schema if it is missing
	Options     map[string]string
}

// Source reads rows as Arrow record batches.
//
// Read streams the rows of r to fn in key order (rows with equal keys in any
// order), in batches bounded by SourceConfig.BatchRows/BatchBytes. The batch is
// released when fn returns: fn must Retain it to keep it. Read stops at the first
// error fn returns and returns that error. The context covers the whole read.
type Source interface {
	Schema(ctx context.Context) (*arrow.Schema, error)
	Read(ctx context.Context, r Range, fn func(arrow.RecordBatch) error) error
	Close() error
}

// Sink writes rows into a target table or file set.
//
// Prepare is called once per run, before any writer opens: it creates the target
// from schema when asked and missing, checks that an existing target has the
// columns, and empties it in Truncate mode. A resumed run does not call Prepare
// with Truncate again (the engine records that it was done).
type Sink interface {
	Prepare(ctx context.Context, schema *arrow.Schema, truncate bool) error
	OpenWriter(ctx context.Context, w WriterSpec) (Writer, error)
	Close() error
}

// WriterSpec names the partition a Writer writes and where a resumed one
// continues from.
type WriterSpec struct {
	Partition string // unique within the run; used for file names, logs
	Range     Range
	Schema    *arrow.Schema
	// Resume is set when an earlier attempt of this partition may have written
	// rows. The writer first removes what the target holds of Range past
	// Resume.LastKey (all of Range when LastKey is nil), or restores its file
	// parts to Resume.SinkState, so the executor can continue reading after
	// LastKey with no row written twice.
	Resume *ResumePoint
}

// ResumePoint is the sink-facing part of a checkpoint.
type ResumePoint struct {
	LastKey   Key
	SinkState []byte
}

// Writer writes one partition. Rows given to Write are durable only after
// Commit returns nil. The caller releases rec after Write returns: a writer
// that keeps it (to send at Commit) must Retain it. Commit returns the sink's state after the commit (for
// file sinks, which parts exist), saved with the checkpoint and given back in
// ResumePoint.SinkState. Close without Commit abandons uncommitted rows.
type Writer interface {
	Write(ctx context.Context, rec arrow.RecordBatch) error
	Commit(ctx context.Context) (sinkState []byte, err error)
	Close() error
}

// Sampler is implemented by sources that can pick split points cheaply
// (sampled quantiles, histograms, index probes). See package partitioner.
type Sampler interface {
	// Stats returns the row estimate, the key range and a sorted sample of
	// keys (non-NULL), using what the store already knows where possible.
	Stats(ctx context.Context, sampleSize int) (Stats, error)
}

// Stats describes a source's key distribution for planning.
type Stats struct {
	Rows      int64 // estimated rows (non-NULL keys)
	NullRows  int64 // estimated rows with a NULL key (or any NULL in a composite key)
	Bytes     int64 // estimated bytes of the table, 0 if unknown
	Min, Max  Key   // nil when the table is empty
	Sample    []Key // sorted ascending in the source's key order
	Exact     bool  // Rows and Sample came from a full scan (small tables)
	Method    string
	PageCount int64 // heap pages, for sources that split by physical location
}

// Counter is implemented by sources that can count the rows of a range (used by
// tests and verification, never on the copy path).
type Counter interface {
	Count(ctx context.Context, r Range) (int64, error)
}

// CursorSource is implemented by sources that support incremental syncs
// (SourceConfig.Cursor).
type CursorSource interface {
	// MaxCursor returns the greatest value of column among the rows the
	// source reads (its Where applies), or nil when there are none.
	MaxCursor(ctx context.Context, column string) (any, error)
}

// Snapshotter is implemented by sources that can export a consistent snapshot
// for other readers to import (SourceConfig.Snapshot). The snapshot lives as
// long as the returned release function is not called.
type Snapshotter interface {
	ExportSnapshot(ctx context.Context) (id string, release func(), err error)
}
