// Package memory is a store of tables in process memory, a source and a sink
// over it, and faults to inject between the steps of a commit. The engine's
// tests use it to crash a run between any two steps (rows written, commit
// record written, commit applied, checkpoint saved) without servers; it runs
// the same conformance suite as every other connector, so what holds for it
// holds for the contract.
//
// DSN: "memory:NAME", naming a DB made by New. Source and sink open tables by
// name; sink option no_commit_log=true opens a sink that keeps no commit
// records, like a store that cannot hold them.
package memory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

// TypeName is the connector's type in job specs.
const TypeName = "memory"

func init() {
	connectors.RegisterSource(TypeName, func(ctx context.Context, cfg connectors.SourceConfig) (connectors.Source, error) {
		return openSource(cfg)
	}, sourceOptions...)
	connectors.RegisterSink(TypeName, func(ctx context.Context, cfg connectors.SinkConfig) (connectors.Sink, error) {
		return openSink(cfg)
	}, sinkOptions...)
}

// The options each side takes (connectors/REFERENCE.md).
var (
	sourceOptions = connectors.Options{}
	sinkOptions   = connectors.Options{
		{Name: "no_commit_log", Doc: "`true` opens a sink that keeps no commit records, like a store that cannot hold them (default `false`)"},
	}
)

// Step is a point in a sink's commit or a source's read where a fault can
// be injected.
type Step string

const (
	// StepWrite: before a batch is taken by Writer.Write.
	StepWrite Step = "write"
	// StepCommit: at the start of Commit; the rows are written, nothing of
	// the commit is applied.
	StepCommit Step = "commit"
	// StepRecord: the commit record is written alongside the rows, but the
	// commit has not been applied (a SQL transaction before COMMIT).
	StepRecord Step = "record"
	// StepCommitted: the commit is applied (rows and record), Commit has
	// not returned yet: a crash here leaves the caller without news of it.
	StepCommitted Step = "committed"
	// StepRead: before a source batch is handed on.
	StepRead Step = "read"
	// StepComplete: the sink's Complete, once every partition of a run is
	// done (partition ""); a fault there may also block, as a long index
	// build would.
	StepComplete Step = "complete"
)

// FaultFunc decides whether an operation fails at step. table and partition
// say where (partition is "" for reads); n counts the calls at this step for
// the partition, from 1. A nil error lets the step go on.
type FaultFunc func(step Step, table, partition string, n int) error

// DB is a set of tables. It is safe for concurrent use.
type DB struct {
	name string

	mu      sync.Mutex
	tables  map[string]*table
	records map[recordKey]connectors.CommitRecord
	faults  FaultFunc
	counts  map[string]int
	nextRow atomic.Int64

	opened, closed atomic.Int64 // sources and sinks on db
}

// Opened says how many sources and sinks were opened on db, and how many
// of them are not closed yet.
func (db *DB) Opened() (opened, open int64) {
	o, c := db.opened.Load(), db.closed.Load()
	return o, o - c
}

// closer counts one source's or sink's Close, once.
type closer struct {
	db   *DB
	once sync.Once
}

func newCloser(db *DB) *closer {
	db.opened.Add(1)
	return &closer{db: db}
}

func (c *closer) Close() error {
	c.once.Do(func() { c.db.closed.Add(1) })
	return nil
}

type recordKey struct{ job, run, partition string }

// table is a schema and its rows, each a one-row slice of the batch it came
// in, in insertion order.
type table struct {
	schema *arrow.Schema
	rows   []row
}

type row struct {
	rec arrow.RecordBatch // one row
	id  int64             // insertion order, unique in the DB: the row's position
}

var (
	dbsMu sync.Mutex
	dbs   = map[string]*DB{}
)

// New makes an empty DB reachable as "memory:"+name, replacing any DB of
// that name.
func New(name string) *DB {
	db := &DB{name: name, tables: map[string]*table{}, records: map[recordKey]connectors.CommitRecord{}, counts: map[string]int{}}
	dbsMu.Lock()
	dbs[name] = db
	dbsMu.Unlock()
	return db
}

// DSN is the DSN that reaches db.
func (db *DB) DSN() string { return "memory:" + db.name }

// Drop forgets db and releases its rows.
func (db *DB) Drop() {
	dbsMu.Lock()
	if dbs[db.name] == db {
		delete(dbs, db.name)
	}
	dbsMu.Unlock()
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, t := range db.tables {
		t.release()
	}
	db.tables = map[string]*table{}
}

// SetFaults installs f (nil: none) for every later operation.
func (db *DB) SetFaults(f FaultFunc) {
	db.mu.Lock()
	db.faults = f
	db.counts = map[string]int{}
	db.mu.Unlock()
}

func (db *DB) fault(step Step, tbl, partition string) error {
	db.mu.Lock()
	f := db.faults
	key := string(step) + "\x00" + tbl + "\x00" + partition
	db.counts[key]++
	n := db.counts[key]
	db.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(step, tbl, partition, n)
}

func lookup(dsn string) (*DB, error) {
	name, ok := strings.CutPrefix(dsn, "memory:")
	if !ok {
		return nil, fmt.Errorf("memory: dsn %q: want memory:NAME", dsn)
	}
	dbsMu.Lock()
	defer dbsMu.Unlock()
	db, ok := dbs[name]
	if !ok {
		return nil, fmt.Errorf("memory: no database %q", name)
	}
	return db, nil
}

// Put creates table name with schema, or appends to it, holding recs.
func (db *DB) Put(name string, recs ...arrow.RecordBatch) {
	db.mu.Lock()
	defer db.mu.Unlock()
	t := db.tables[name]
	for _, rec := range recs {
		if t == nil {
			t = &table{schema: rec.Schema()}
			db.tables[name] = t
		}
		t.rows = append(t.rows, db.split(rec)...)
	}
}

// split cuts rec into one-row slices, numbered in order.
func (db *DB) split(rec arrow.RecordBatch) []row {
	out := make([]row, rec.NumRows())
	for i := range out {
		out[i] = row{rec: rec.NewSlice(int64(i), int64(i+1)), id: db.nextRow.Add(1)}
	}
	return out
}

// Rows returns a table's rows in insertion order as one batch (nil when
// the table is missing or empty); the caller releases it.
func (db *DB) Rows(name string) arrow.RecordBatch {
	db.mu.Lock()
	defer db.mu.Unlock()
	t := db.tables[name]
	if t == nil || len(t.rows) == 0 {
		return nil
	}
	return concat(t.schema, t.rows)
}

// Records returns the commit records of job's run, by partition.
func (db *DB) Records(job, run string) map[string]connectors.CommitRecord {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := map[string]connectors.CommitRecord{}
	for k, r := range db.records {
		if k.job == job && k.run == run {
			out[k.partition] = r
		}
	}
	return out
}

func (t *table) release() {
	for _, r := range t.rows {
		r.rec.Release()
	}
	t.rows = nil
}

// concat joins one-row batches into one batch of schema.
func concat(schema *arrow.Schema, rows []row) arrow.RecordBatch {
	cols := make([]arrow.Array, schema.NumFields())
	parts := make([]arrow.Array, len(rows))
	for c := range cols {
		for i, r := range rows {
			parts[i] = r.rec.Column(c)
		}
		a, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			panic(fmt.Sprintf("memory: concatenate column %d: %v", c, err)) // the rows share one schema
		}
		cols[c] = a
	}
	rec := array.NewRecordBatch(schema, cols, int64(len(rows)))
	for _, a := range cols {
		a.Release()
	}
	return rec
}

var errNoTable = errors.New("table does not exist")
