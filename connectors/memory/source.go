package memory

import (
	"context"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

// pageRows is how many rows (in insertion order) make one page of a keyless
// table, so that keyless tables split into page ranges as PostgreSQL's do.
const pageRows = 100

var (
	_ connectors.Source         = (*source)(nil)
	_ connectors.Sampler        = (*source)(nil)
	_ connectors.Counter        = (*source)(nil)
	_ connectors.PositionReader = (*source)(nil)
)

type source struct {
	*closer
	db      *DB
	cfg     connectors.SourceConfig
	schema  *arrow.Schema
	keyCols []int
}

func openSource(cfg connectors.SourceConfig) (*source, error) {
	db, err := lookup(cfg.DSN)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Query != "" || cfg.Where != "" || cfg.Cursor != nil || cfg.Snapshot != "" || len(cfg.Columns) > 0:
		return nil, fmt.Errorf("memory source: only table, key and batch sizes are supported")
	case cfg.BatchRows < 0:
		return nil, fmt.Errorf("memory source: batch_rows must not be negative")
	}
	if _, err := sourceOptions.Values(cfg.Options); err != nil {
		return nil, fmt.Errorf("memory source: %w", err)
	}
	if cfg.BatchRows == 0 {
		cfg.BatchRows = 1000
	}
	db.mu.Lock()
	t := db.tables[cfg.Table]
	db.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("memory source %s: %w", cfg.Table, errNoTable)
	}
	keyCols, err := connectors.ColumnIndexes(t.schema, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("memory source %s: key: %w", cfg.Table, err)
	}
	return &source{closer: newCloser(db), db: db, cfg: cfg, schema: t.schema, keyCols: keyCols}, nil
}

func (s *source) Schema(context.Context) (*arrow.Schema, error) { return s.schema, nil }

// keyed is a row with its key (nil for a keyless source).
type keyed struct {
	row
	key connectors.Key
}

// snapshot returns the rows of r, retained, in read order: key order for a
// key range, position (insertion) order otherwise.
func (s *source) snapshot(r connectors.Range) ([]keyed, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	t := s.db.tables[s.cfg.Table]
	if t == nil {
		return nil, fmt.Errorf("memory source %s: %w", s.cfg.Table, errNoTable)
	}
	positional := len(s.keyCols) == 0 || r.Nulls || r.Pages != nil
	var out []keyed
	for i, rw := range t.rows {
		k := keyed{row: rw}
		if len(s.keyCols) > 0 {
			k.key = connectors.KeyOf(rw.rec, s.keyCols, 0)
		}
		if !s.holds(r, i, k, positional) {
			continue
		}
		rw.rec.Retain()
		out = append(out, k)
	}
	if !positional {
		slices.SortStableFunc(out, func(a, b keyed) int { return connectors.CompareKeys(a.key, b.key) })
	}
	return out, nil
}

func (s *source) holds(r connectors.Range, index int, k keyed, positional bool) bool {
	if !positional {
		return r.Contains(k.key)
	}
	if r.After != nil && k.id <= r.After[0].(int64) {
		return false
	}
	if r.Pages != nil {
		page := int64(index / pageRows)
		if page < r.Pages.Lo || (r.Pages.Hi > 0 && page >= r.Pages.Hi) {
			return false
		}
	}
	if r.Nulls {
		return k.key != nil && slices.Contains(k.key, nil)
	}
	if len(s.keyCols) > 0 && r.Pages == nil {
		return false // a keyed source's non-NULL rows are read by key range
	}
	return r.Lo == nil && r.Hi == nil
}

func (s *source) Read(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch) error) error {
	return s.read(ctx, r, func(b arrow.RecordBatch, _ connectors.Key) error { return fn(b) })
}

func (s *source) Positioned(r connectors.Range) bool {
	return len(s.keyCols) == 0 || r.Nulls || r.Pages != nil
}

func (s *source) ReadPositioned(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch, connectors.Key) error) error {
	if !s.Positioned(r) {
		return fmt.Errorf("memory source %s: range %s is read by key, not by position", s.cfg.Table, r)
	}
	return s.read(ctx, r, fn)
}

func (s *source) read(ctx context.Context, r connectors.Range, fn func(arrow.RecordBatch, connectors.Key) error) error {
	rows, err := s.snapshot(r)
	if err != nil {
		return err
	}
	defer func() {
		for _, k := range rows {
			k.rec.Release()
		}
	}()
	plain := make([]row, len(rows))
	for i, k := range rows {
		plain[i] = k.row
	}
	for len(plain) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.db.fault(StepRead, s.cfg.Table, ""); err != nil {
			return err
		}
		n := min(len(plain), s.cfg.BatchRows)
		b := concat(s.schema, plain[:n])
		err := fn(b, connectors.Key{plain[n-1].id})
		b.Release()
		if err != nil {
			return err
		}
		plain = plain[n:]
	}
	return nil
}

func (s *source) Count(ctx context.Context, r connectors.Range) (int64, error) {
	rows, err := s.snapshot(r)
	for _, k := range rows {
		k.rec.Release()
	}
	return int64(len(rows)), err
}

// Stats are exact: the whole table is in memory.
func (s *source) Stats(ctx context.Context, sampleSize int) (connectors.Stats, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	t := s.db.tables[s.cfg.Table]
	if t == nil {
		return connectors.Stats{}, fmt.Errorf("memory source %s: %w", s.cfg.Table, errNoTable)
	}
	st := connectors.Stats{Exact: true, Method: "memory"}
	if len(s.keyCols) == 0 {
		st.Rows = int64(len(t.rows))
		st.PageCount = int64((len(t.rows) + pageRows - 1) / pageRows)
		return st, nil
	}
	var keys []connectors.Key
	for _, rw := range t.rows {
		k := connectors.KeyOf(rw.rec, s.keyCols, 0)
		if slices.Contains(k, nil) {
			st.NullRows++
			continue
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, connectors.CompareKeys)
	st.Rows = int64(len(keys))
	if len(keys) > 0 {
		st.Min, st.Max = keys[0], keys[len(keys)-1]
	}
	if sampleSize > 0 && len(keys) > sampleSize {
		step := float64(len(keys)) / float64(sampleSize)
		sample := make([]connectors.Key, 0, sampleSize)
		for i := 0; i < sampleSize; i++ {
			sample = append(sample, keys[int(float64(i)*step)])
		}
		keys, st.Exact = sample, false
	}
	st.Sample = keys
	return st, nil
}
