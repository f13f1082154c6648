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
	"time"

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
	// Cursor.From <= column <= Cursor.UpTo (From nil: no lower bound).
	Cursor *CursorWindow
	// Options holds connector-specific settings, validated by the connector.
	Options map[string]string
}

// CursorWindow is the slice of an incremental sync a run copies, both ends
// inclusive: rows that share the cursor value of the last run's upper end
// must be read again, or a row that arrived at that value later would be
// lost (the engine drops the ones an append sink already holds). Values are
// key values (see Key): int64, float64, string, time.Time, ….
type CursorWindow struct {
	Column string
	From   any
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
	Key         []string // the source key columns; required for Upsert
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
// columns, makes the sink's commit log ready (see CommitLog) and empties the
// target in Truncate mode. A resumed run does not call Prepare with Truncate
// again (the engine records that it was done).
type Sink interface {
	Prepare(ctx context.Context, schema *arrow.Schema, truncate bool) error
	OpenWriter(ctx context.Context, w WriterSpec) (Writer, error)
	Close() error
}

// SinkChecker is implemented by sinks that can say, changing nothing,
// whether Prepare would succeed for schema: the store reachable, the target
// there with a column for every field (or, with CreateTable, creatable from
// schema), the key usable. Prepare runs the same checks before it changes
// anything, so `datashift check` and a run refuse a sink with the same
// words. The engine calls it through CheckSink.
type SinkChecker interface {
	Check(ctx context.Context, schema *arrow.Schema) error
}

// Completer is implemented by sinks that leave work to the end of a run:
// a PostgreSQL table the sink created is loaded without its primary key,
// which is built once every row is in (faster than keeping an index up to
// date row by row). Complete is called once every partition is done,
// before the run is recorded as succeeded, and again after a crash during
// it: it does what is left, and nothing when nothing is.
type Completer interface {
	Complete(ctx context.Context) error
}

// CheckSink runs s's Check when it has one; a sink without one has nothing
// it can check before Prepare.
func CheckSink(ctx context.Context, s Sink, schema *arrow.Schema) error {
	if c, ok := s.(SinkChecker); ok {
		return c.Check(ctx, schema)
	}
	return nil
}

// WriterSpec names the partition a Writer writes and the lease it writes
// under.
type WriterSpec struct {
	// Job, Run and Partition name the partition's commit record. Partition
	// is unique within the run; file sinks name their parts by Run and
	// Partition.
	Job, Run, Partition string
	// Lease is the epoch of the lease the partition is executed under; its
	// commit records carry it. Once a newer lease has claimed the partition
	// (CommitLog.Claim), a writer of an older one commits nothing: its
	// Commit fails with ErrLeaseLost.
	Lease  int64
	Range  Range
	Schema *arrow.Schema
}

// Writer writes one partition. Rows given to Write are durable only after
// Commit returns nil. The caller releases rec after Write returns: a writer
// that keeps it (to send at Commit) must Retain it. Close without Commit
// abandons uncommitted rows.
type Writer interface {
	Write(ctx context.Context, rec arrow.RecordBatch) error
	// Commit makes the rows written since the last Commit durable together
	// with rec, in one step: after a crash the sink holds both or neither.
	// rec is the partition's record as of this commit (totals, not a delta);
	// a Commit with no rows written since the last still stores it. With a
	// CommitLog, the partition must have been claimed under rec.Lease, and
	// once a newer lease has claimed it the commit fails with ErrLeaseLost,
	// writing nothing. A sink without a CommitLog ignores rec.
	Commit(ctx context.Context, rec CommitRecord) error
	Close() error
}

// CommitRecord is what a sink commit makes durable together with its rows:
// how far the partition's read had got, and what it had written. SQL sinks
// keep one row per partition of a run in a table of the target database
// (option commit_table, default datashift_commits); file sinks keep it next
// to the part file whose rename commits it; Redis keeps it in a key of its
// own, set in the same MULTI/EXEC as the rows. The sink files it under the
// WriterSpec's Job, Run and Partition; the record's own copies of them are
// informational.
type CommitRecord struct {
	Job       string `json:"job"`
	Run       string `json:"run"`
	Partition string `json:"partition"`
	Lease     int64  `json:"lease"`
	// Position is where the partition's read stands: every row up to and
	// including it is committed (or set aside as bad), none after it. For a
	// keyed range it is the key of the last row; for a keyless range it is
	// the position a PositionReader gave. Nil: nothing read yet.
	Position Key   `json:"position,omitempty"`
	Rows     int64 `json:"rows"`
	Bytes    int64 `json:"bytes"`
	BadRows  int64 `json:"bad_rows,omitempty"`
	Commits  int64 `json:"commits"`
	// Done is set by the partition's last commit: the whole range is in.
	Done bool `json:"done,omitempty"`
}

// CommitLog is implemented by sinks that keep a CommitRecord with every
// commit, the way Kafka Connect's exactly-once sinks keep source offsets in
// the data's own transaction: after a crash the sink itself says what a
// partition committed, so a resumed partition reads on from there and
// nothing in the target is ever deleted. The engine refuses to resume a
// partition into a sink without one.
type CommitLog interface {
	// Claim takes the partition for spec.Lease: from now on commits under
	// older leases fail. It returns the partition's record as the sink
	// holds it (Commits 0: nothing committed yet), or ErrLeaseLost when a
	// newer lease has claimed it already. Claiming again under the same
	// lease is allowed (a retry of the same holder).
	Claim(ctx context.Context, spec WriterSpec) (CommitRecord, error)
	// Forget deletes the records of a run that is over.
	Forget(ctx context.Context, job, run string) error
}

// PositionReader is implemented by sources that read keyless ranges
// (Range.Pages, Range.Nulls, or any range of a source without a key) in a
// fixed order and can continue after any point in it: PostgreSQL reads heap
// pages in ctid order, SQLite by rowid, file sources by file and row. A
// partition of such a range commits as it goes and resumes mid-way, like a
// keyed one.
type PositionReader interface {
	// Positioned reports whether ReadPositioned can read r.
	Positioned(r Range) bool
	// ReadPositioned is Read for such a range; fn also gets the position of
	// the batch's last row. Reading r.Resumed(position) continues right
	// after it, as long as the source's rows have not changed (a keyless
	// range's After is a position, not a key).
	ReadPositioned(ctx context.Context, r Range, fn func(b arrow.RecordBatch, last Key) error) error
}

// FileSet is implemented by sources that read a set of files. A run pins
// the list its plan was made from, and refuses to resume when a file was
// added, removed or changed since: file ranges and row positions index it.
type FileSet interface {
	Files(ctx context.Context) ([]FileInfo, error)
}

// FileInfo is one input file as a run pins it.
type FileInfo struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
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

// PrimaryKeyer is implemented by sources that can name their table's primary
// key. A job that gives no key is split, read and resumed by it, and its
// sink is given it (create_table, upsert), as if the job had named it.
type PrimaryKeyer interface {
	// PrimaryKey returns the columns of the table's primary key in key
	// order; none for a query, or a table without one.
	PrimaryKey(ctx context.Context) ([]string, error)
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
