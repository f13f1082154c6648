package memory

import (
	"context"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

var (
	_ connectors.Sink      = (*sink)(nil)
	_ connectors.CommitLog = (*sink)(nil)
)

type sink struct {
	*closer
	db  *DB
	cfg connectors.SinkConfig
	log bool // keeps commit records
}

// sinkWithoutLog is a sink of a store that cannot hold commit records: it
// has no Claim or Forget.
type sinkWithoutLog struct{ s *sink }

func (n sinkWithoutLog) Prepare(ctx context.Context, schema *arrow.Schema, truncate bool) error {
	return n.s.Prepare(ctx, schema, truncate)
}

func (n sinkWithoutLog) OpenWriter(ctx context.Context, spec connectors.WriterSpec) (connectors.Writer, error) {
	return n.s.OpenWriter(ctx, spec)
}

func (n sinkWithoutLog) Close() error { return n.s.Close() }

func openSink(cfg connectors.SinkConfig) (connectors.Sink, error) {
	db, err := lookup(cfg.DSN)
	if err != nil {
		return nil, err
	}
	if cfg.Table == "" {
		return nil, fmt.Errorf("memory sink: table is required")
	}
	switch cfg.Mode {
	case "", connectors.Append, connectors.Truncate:
	case connectors.Upsert:
		if len(cfg.Key) == 0 {
			return nil, fmt.Errorf("memory sink: upsert mode needs key columns")
		}
	default:
		return nil, fmt.Errorf("memory sink: unknown mode %q", cfg.Mode)
	}
	s := &sink{db: db, cfg: cfg, log: true}
	ov, err := sinkOptions.Values(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("memory sink: %w", err)
	}
	if v, ok := ov.Lookup("no_commit_log"); ok {
		switch v {
		case "true":
			s.log = false
		case "false":
		default:
			return nil, fmt.Errorf("memory sink: option no_commit_log %q: want true or false", v)
		}
	}
	s.closer = newCloser(db)
	if !s.log {
		return sinkWithoutLog{s}, nil
	}
	return s, nil
}

// Complete has nothing to build; it is where a test holds or fails a run's
// completion (StepComplete).
func (s *sink) Complete(ctx context.Context) error {
	return s.db.fault(StepComplete, s.cfg.Table, "")
}

func (s *sink) Prepare(ctx context.Context, schema *arrow.Schema, truncate bool) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	t := s.db.tables[s.cfg.Table]
	if t == nil {
		if !s.cfg.CreateTable {
			return fmt.Errorf("memory sink %s: %w", s.cfg.Table, connectors.ErrNoTable)
		}
		s.db.tables[s.cfg.Table] = &table{schema: schema}
		return nil
	}
	for _, f := range schema.Fields() {
		if len(t.schema.FieldIndices(f.Name)) == 0 {
			return fmt.Errorf("memory sink %s: column %q is missing from the table", s.cfg.Table, f.Name)
		}
	}
	if truncate {
		t.release()
	}
	return nil
}

func (s *sink) OpenWriter(ctx context.Context, spec connectors.WriterSpec) (connectors.Writer, error) {
	s.db.mu.Lock()
	t := s.db.tables[s.cfg.Table]
	s.db.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("memory sink %s: %w", s.cfg.Table, errNoTable)
	}
	if !t.schema.Equal(spec.Schema) {
		return nil, fmt.Errorf("memory sink %s: partition %s: batches of schema %s for a table of %s", s.cfg.Table, spec.Partition, spec.Schema, t.schema)
	}
	return &writer{s: s, spec: spec}, nil
}

func (s *sink) Claim(ctx context.Context, spec connectors.WriterSpec) (connectors.CommitRecord, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	k := recordKey{spec.Job, spec.Run, spec.Partition}
	rec, ok := s.db.records[k]
	if ok && rec.Lease > spec.Lease {
		return connectors.CommitRecord{}, fmt.Errorf("memory sink %s: partition %s: lease %d claimed it after lease %d: %w", s.cfg.Table, spec.Partition, rec.Lease, spec.Lease, connectors.ErrLeaseLost)
	}
	if !ok {
		rec = connectors.CommitRecord{Job: spec.Job, Run: spec.Run, Partition: spec.Partition}
	}
	rec.Lease = spec.Lease
	s.db.records[k] = rec
	return rec, nil
}

func (s *sink) Forget(ctx context.Context, job, run string) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	for k := range s.db.records {
		if k.job == job && k.run == run {
			delete(s.db.records, k)
		}
	}
	return nil
}

type writer struct {
	s       *sink
	spec    connectors.WriterSpec
	pending []arrow.RecordBatch
	closed  bool
}

func (w *writer) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.closed {
		return fmt.Errorf("memory sink: write after close")
	}
	if err := w.s.db.fault(StepWrite, w.s.cfg.Table, w.spec.Partition); err != nil {
		return err
	}
	rec.Retain()
	w.pending = append(w.pending, rec)
	return nil
}

// Commit applies the pending rows and the record under the DB's lock, so a
// reader sees both or neither; faults before the apply leave nothing of the
// commit behind, as a crash before a SQL COMMIT would.
func (w *writer) Commit(ctx context.Context, rec connectors.CommitRecord) error {
	db, tbl, part := w.s.db, w.s.cfg.Table, w.spec.Partition
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := db.fault(StepCommit, tbl, part); err != nil {
		return err
	}
	if w.s.log {
		if err := db.fault(StepRecord, tbl, part); err != nil {
			return err
		}
	}
	if err := w.apply(rec); err != nil {
		return err
	}
	return db.fault(StepCommitted, tbl, part)
}

func (w *writer) apply(rec connectors.CommitRecord) error {
	db := w.s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	k := recordKey{w.spec.Job, w.spec.Run, w.spec.Partition}
	if w.s.log {
		if stored, ok := db.records[k]; !ok || stored.Lease != rec.Lease {
			return fmt.Errorf("memory sink %s: partition %s: commit under lease %d, the record holds lease %d: %w", w.s.cfg.Table, w.spec.Partition, rec.Lease, stored.Lease, connectors.ErrLeaseLost)
		}
	}
	t := db.tables[w.s.cfg.Table]
	if t == nil {
		return fmt.Errorf("memory sink %s: %w", w.s.cfg.Table, errNoTable)
	}
	for _, b := range w.pending {
		rows := db.split(b)
		b.Release()
		if w.s.cfg.Mode == connectors.Upsert {
			t.replace(rows, w.s.cfg.Key)
		} else {
			t.rows = append(t.rows, rows...)
		}
	}
	w.pending = nil
	if w.s.log {
		db.records[k] = rec
	}
	return nil
}

// replace puts rows in, each replacing the row of equal key if there is one.
func (t *table) replace(rows []row, key []string) {
	cols, _ := connectors.ColumnIndexes(t.schema, key)
	for _, r := range rows {
		k := connectors.KeyOf(r.rec, cols, 0)
		if slices.Contains(k, nil) {
			t.rows = append(t.rows, r) // a NULL key matches no row, as in a unique index
			continue
		}
		i := slices.IndexFunc(t.rows, func(old row) bool {
			return connectors.CompareKeys(connectors.KeyOf(old.rec, cols, 0), k) == 0
		})
		if i >= 0 {
			t.rows[i].rec.Release()
			t.rows[i] = r
		} else {
			t.rows = append(t.rows, r)
		}
	}
}

func (w *writer) Close() error {
	for _, b := range w.pending {
		b.Release()
	}
	w.pending, w.closed = nil, true
	return nil
}
