package sqlite

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cespare/xxhash/v2"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/density"
)

// Stats estimates the key distribution for planning. Small tables, queries
// and WITHOUT ROWID tables are scanned for exact counts and split points. A
// large rowid table is sampled by index probes on its rowid, which read a
// few rows each and never the whole table:
//
//  1. rowidSpans estimates how many rows each stretch of the rowid range
//     holds, refining the stretches that hold the most, so that sparse or
//     clustered rowids (an INTEGER PRIMARY KEY of skewed values) are
//     measured, not assumed dense;
//  2. rows at evenly spaced ranks of that estimate are fetched by rowid:
//     a sample uniform over rows, whose sorted keys are the quantiles, and
//     the share of them that pass the filter or have a NULL key scales the
//     row estimate.
func (s *source) Stats(ctx context.Context, sampleSize int) (st connectors.Stats, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("sqlite source %s: stats: %w", s.what, ctxErr(ctx, err))
		}
	}()
	if sampleSize <= 0 {
		sampleSize = 100
	}
	c, err := s.conn(ctx)
	if err != nil {
		return st, err
	}
	defer c.close()
	stop := c.interruptOn(ctx)
	defer stop()

	if s.table != nil && s.table.rowid {
		// The rowids' range bounds the rows: a table whose range is small
		// is scanned without measuring its density first.
		whole, empty, err := s.rowidRange(c)
		if err != nil {
			return st, err
		}
		if !empty && s.keyIsRowid() && whole.Width() >= rowidKeyScanBelow {
			spans, rows, err := s.rowidSpans(ctx, c, whole, sampleSize)
			if err != nil {
				return st, err
			}
			if rows >= rowidKeyScanBelow {
				return connectors.Stats{Rows: int64(math.Round(rows)), Min: connectors.Key{whole.Lo}, Max: connectors.Key{whole.Hi},
					Sample: keysOf(density.Quantiles(spans, rows, sampleSize)), Method: "rowid density probes"}, nil
			}
		}
		if !empty && whole.Width() >= scanBelow(sampleSize) {
			spans, rows, err := s.rowidSpans(ctx, c, whole, sampleSize)
			if err != nil {
				return st, err
			}
			if rows >= scanBelow(sampleSize) {
				return s.probeStats(ctx, c, spans, rows, sampleSize)
			}
		}
	}
	if len(s.keys) == 0 {
		where, args, _ := s.where(connectors.Range{})
		err = c.query("SELECT count(*) FROM "+s.from+where, args, func(q *liteStmt) error {
			st.Rows = q.colInt64(0)
			return nil
		})
		st.Exact, st.Method = true, "count"
		return st, err
	}
	return s.scanStats(ctx, c, sampleSize)
}

// rowidKeyScanBelow is the table size under which a table keyed by its
// rowid is scanned rather than measured: its density probes cost a few
// hundred index walks whatever its size, and read no row. A variable for
// the tests.
var rowidKeyScanBelow = 50_000.0

// keyIsRowid reports whether the source reads a table unfiltered by its
// INTEGER PRIMARY KEY alone: the key's quantiles are then the rowids'.
func (s *source) keyIsRowid() bool {
	return s.table.rowidKey != nil && len(s.keys) == 1 && s.keys[0] == s.table.rowidKey && len(s.filter) == 0
}

// keysOf makes one-column keys of ints.
func keysOf(ints []int64) []connectors.Key {
	out := make([]connectors.Key, len(ints))
	for i, v := range ints {
		out[i] = connectors.Key{v}
	}
	return out
}

// rowidSpans measures the density of the table's rowids (see
// density.Measure), probing them here one after another: each probe is an
// index walk in this process.
func (s *source) rowidSpans(ctx context.Context, c *liteConn, whole density.Span, sampleSize int) ([]density.Span, float64, error) {
	p, err := c.prepare("SELECT rowid FROM " + s.table.ref.sql() + " WHERE rowid >= ? ORDER BY rowid LIMIT " + fmt.Sprint(density.PerProbe))
	if err != nil {
		return nil, 0, err
	}
	defer p.finalize()
	return density.Measure(ctx, whole.Lo, whole.Hi, sampleSize, func(ctx context.Context, starts []int64) ([][]int64, error) {
		out := make([][]int64, len(starts))
		for i, start := range starts {
			p.reset()
			if err := p.bindInt64(1, start); err != nil {
				return nil, err
			}
			for {
				row, err := p.step()
				if err != nil {
					return nil, err
				}
				if !row {
					break
				}
				out[i] = append(out[i], p.colInt64(0))
			}
		}
		return out, nil
	})
}

// rowidRange reads the table's least and greatest rowid (two index walks);
// empty when it has no rows.
func (s *source) rowidRange(c *liteConn) (whole density.Span, empty bool, err error) {
	t := s.table.ref.sql()
	err = c.query("SELECT (SELECT min(rowid) FROM "+t+"), (SELECT max(rowid) FROM "+t+")", nil, func(q *liteStmt) error {
		empty = q.colType(0) == typNull
		whole.Lo, whole.Hi = q.colInt64(0), q.colInt64(1)
		return nil
	})
	return whole, empty, err
}

// scanStats reads every key in order: exact row counts and exact quantiles.
func (s *source) scanStats(ctx context.Context, c *liteConn, sampleSize int) (connectors.Stats, error) {
	st := connectors.Stats{Exact: true, Method: "scan"}
	countQ := func(r connectors.Range) (int64, error) {
		where, args, err := s.where(r)
		if err != nil {
			return 0, err
		}
		var n int64
		err = c.query("SELECT count(*) FROM "+s.from+where, args, func(q *liteStmt) error {
			n = q.colInt64(0)
			return nil
		})
		return n, err
	}
	var err error
	if st.Rows, err = countQ(connectors.Range{}); err != nil {
		return st, err
	}
	if st.NullRows, err = countQ(connectors.Range{Nulls: true}); err != nil {
		return st, err
	}
	if st.Rows == 0 {
		return st, nil
	}
	where, args, _ := s.where(connectors.Range{})
	q := "SELECT " + strings.Join(quoted(s.keys), ", ") + " FROM " + s.from + where + " ORDER BY " + orderBy(s.keys)
	// Evenly spaced rows, always including the first and the last.
	step := float64(st.Rows-1) / float64(max(sampleSize-1, 1))
	next, taken := 0.0, 0
	keys, err := s.readKeys(c, q, args, s.keys, func(i int64) bool {
		if i == st.Rows-1 || (float64(i) >= next && taken < sampleSize-1) {
			taken++
			next = float64(taken) * step
			return true
		}
		return false
	})
	if err != nil {
		return st, err
	}
	if len(keys) > 0 {
		st.Min, st.Max, st.Sample = keys[0], keys[len(keys)-1], keys
	}
	return st, ctx.Err()
}

// probeCount is how many rows probeStats fetches for a sample of
// sampleSize keys: more than the sample, since rows that fail the filter
// or have a NULL key are not in it.
func probeCount(sampleSize int) int { return min(max(4*sampleSize, 1000), 20_000) }

// probeStats samples a large rowid table at evenly spaced ranks of the
// rowid density (see Stats).
func (s *source) probeStats(ctx context.Context, c *liteConn, spans []density.Span, total float64, sampleSize int) (connectors.Stats, error) {
	st := connectors.Stats{Method: "rowid probes"}
	filter := "1"
	if len(s.filter) > 0 {
		filter = strings.Join(s.filter, " AND ")
	}
	nullExpr := "0"
	if len(s.keys) > 0 {
		nulls := make([]string, len(s.keys))
		for i, k := range s.keys {
			nulls[i] = quoteIdent(k.name) + " IS NULL"
		}
		nullExpr = strings.Join(nulls, " OR ")
	}
	sel := append(quoted(s.keys), "("+filter+")", "("+nullExpr+")")
	// The filter's parameters come first: they are bound before the rowid.
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + s.table.ref.sql() + " WHERE rowid >= ? ORDER BY rowid LIMIT 1"
	p, err := c.prepare(q)
	if err != nil {
		return st, err
	}
	defer p.finalize()
	probes := probeCount(sampleSize)
	nk := len(s.keys)
	idx := make([]int, nk)
	all := make([]int, nk)
	for i := range idx {
		idx[i], all[i] = i, i
	}
	rr := newRowReader(memory.DefaultAllocator, s.keys, idx)
	defer rr.release()
	var hits, passed, nullKeys int
	// One probe at a random rank within each of probes equal strata of
	// rows; seeded by the table's name so that a plan can be replayed.
	rng := rand.New(rand.NewPCG(uint64(len(s.table.ref.name)), xxhash.Sum64String(s.table.ref.String())))
	args := append(append([]any(nil), s.filterArgs...), int64(0))
	for i := 0; i < probes; i++ {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		p.reset()
		args[len(args)-1] = density.At(spans, (float64(i)+rng.Float64())*total/float64(probes))
		if err := p.bindAll(args); err != nil {
			return st, err
		}
		row, err := p.step()
		if err != nil {
			return st, err
		}
		if !row {
			continue
		}
		hits++
		if p.colInt64(nk) == 0 {
			continue
		}
		passed++
		if p.colInt64(nk+1) != 0 {
			nullKeys++
			continue
		}
		if nk == 0 {
			continue
		}
		if col, bad := rr.appendRow(p); bad != nil {
			return st, &connectors.ValueError{Column: col.col.name, Value: bad.value, Reason: bad.reason}
		}
	}
	if hits > 0 {
		st.Rows = int64(total * float64(passed-nullKeys) / float64(hits))
		st.NullRows = int64(total * float64(nullKeys) / float64(hits))
	}
	if nk == 0 {
		return st, nil
	}
	rec := rr.flush()
	defer rec.Release()
	keys := make([]connectors.Key, rec.NumRows())
	for i := range keys {
		keys[i] = connectors.KeyOf(rec, all, i)
	}
	sort.Slice(keys, func(a, b int) bool { return connectors.CompareKeys(keys[a], keys[b]) < 0 })
	// Thin the sorted sample to sampleSize evenly spaced keys.
	if len(keys) > sampleSize {
		thin := make([]connectors.Key, sampleSize)
		for i := range thin {
			thin[i] = keys[i*(len(keys)-1)/max(sampleSize-1, 1)]
		}
		keys = thin
	}
	st.Sample = keys
	// The exact ends come from the key's index (a scan without one).
	where, wargs, _ := s.where(connectors.Range{})
	for _, desc := range []bool{false, true} {
		order := make([]string, nk)
		for i, k := range s.keys {
			order[i] = keyExpr(k)
			if desc {
				order[i] += " DESC"
			}
		}
		q := "SELECT " + strings.Join(quoted(s.keys), ", ") + " FROM " + s.from + where + " ORDER BY " + strings.Join(order, ", ") + " LIMIT 1"
		k, err := s.readKeys(c, q, wargs, s.keys, nil)
		if err != nil {
			return st, err
		}
		if len(k) == 1 {
			if desc {
				st.Max = k[0]
			} else {
				st.Min = k[0]
			}
		}
	}
	return st, nil
}
