package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"

	"github.com/datashift/datashift/connectors"
)

// Variables, not constants, so tests can reach every path with small tables.
var (
	// exactLimit: below this many estimated rows Stats reads every key.
	exactLimit int64 = 100_000
	// walkLimit: up to this many rows the sample walks the key index; above
	// it an integer key is probed at evenly spaced values instead.
	walkLimit int64 = 5_000_000
)

// Stats estimates rows and picks a sorted sample of keys for split points,
// from what the server already knows where it can:
//
//   - row and byte estimates from information_schema.TABLES (InnoDB's
//     statistics), or a bounded count for a query or a filtered table;
//   - small sources (< 100k rows): every key is read, Exact is set;
//   - otherwise Min and Max are index probes (ORDER BY key LIMIT 1) and the
//     sample is a chained index walk, each probe starting after the last
//     (… WHERE key > prev ORDER BY key LIMIT 1 OFFSET step-1), so the walk
//     touches each index entry once in the server and sends back only the
//     sample; integer keys of very large tables are probed at evenly spaced
//     values instead (insensitive to skew, but no walk).
func (s *source) Stats(ctx context.Context, sampleSize int) (connectors.Stats, error) {
	if sampleSize <= 0 {
		sampleSize = 100
	}
	var st connectors.Stats
	est, bytes, err := s.estimate(ctx)
	if err != nil {
		return st, err
	}
	st.Rows, st.Bytes = est, bytes
	if len(s.keys) == 0 {
		st.Method = "estimate only (no key)"
		return st, nil
	}
	for _, k := range s.keys {
		if k.nullable {
			if st.NullRows, err = s.Count(ctx, connectors.Range{Nulls: true}); err != nil {
				return st, err
			}
			break
		}
	}
	if est < exactLimit {
		keys, complete, err := s.allKeys(ctx, int(2*exactLimit))
		if err != nil {
			return st, err
		}
		if complete {
			st.Rows, st.Exact, st.Method = int64(len(keys)), true, "full scan"
			if len(keys) > 0 {
				st.Min, st.Max = keys[0], keys[len(keys)-1]
				st.Sample = evenly(keys, sampleSize)
			}
			return st, nil
		}
		// The statistics were stale: count properly before walking.
		if est, err = s.Count(ctx, connectors.Range{}); err != nil {
			return st, err
		}
		st.Rows = est
	} else {
		st.Rows = max(0, est-st.NullRows)
	}
	if st.Min, err = s.edgeKey(ctx, false); err != nil || st.Min == nil {
		return st, err
	}
	if st.Max, err = s.edgeKey(ctx, true); err != nil {
		return st, err
	}
	if st.Rows > walkLimit && len(s.keys) == 1 && (s.keys[0].kind == kInt || s.keys[0].kind == kUint) {
		st.Sample, err = s.valueProbes(ctx, st.Min[0], st.Max[0], sampleSize)
		st.Method = fmt.Sprintf("value probes between min and max (%d rows estimated)", st.Rows)
		return st, err
	}
	sample, rows, err := s.walk(ctx, st.Rows, sampleSize)
	if err != nil {
		return st, err
	}
	if rows > 0 {
		st.Rows = rows
	}
	st.Sample = sample
	st.Method = "index walk"
	return st, nil
}

// estimate returns the estimated rows and bytes of the source (filter included).
func (s *source) estimate(ctx context.Context) (rows, bytes int64, err error) {
	if s.table != nil {
		var tr, dl sql.NullInt64
		err := s.db.QueryRowContext(ctx, `SELECT TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, s.table.schema, s.table.name).Scan(&tr, &dl)
		if err != nil {
			return 0, 0, classify(fmt.Errorf("statistics of %s: %w", s.name, err))
		}
		rows, bytes = tr.Int64, dl.Int64
		if s.where == "" {
			return rows, bytes, nil
		}
	}
	// A filter or a query: count, but stop counting past the exact limit.
	var n int64
	q := "SELECT COUNT(*) FROM (SELECT 1 FROM " + s.from
	if s.where != "" {
		q += " WHERE (" + s.where + ")"
	}
	q += fmt.Sprintf(" LIMIT %d) AS c", 2*exactLimit)
	if err := s.db.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return 0, 0, classify(fmt.Errorf("count %s: %w", s.name, err))
	}
	if n < 2*exactLimit {
		if rows > 0 {
			bytes = bytes * n / rows
		}
		return n, bytes, nil
	}
	// Large: the optimizer's estimate for the filtered read.
	explain, err := s.explainRows(ctx)
	if err != nil {
		return 0, 0, err
	}
	return max(explain, n), bytes, nil
}

// explainRows is the largest row estimate EXPLAIN gives for the filtered read.
func (s *source) explainRows(ctx context.Context) (int64, error) {
	q := "EXPLAIN SELECT 1 FROM " + s.from
	if s.where != "" {
		q += " WHERE (" + s.where + ")"
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return 0, classify(fmt.Errorf("explain %s: %w", s.name, err))
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var best int64
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return 0, classify(err)
		}
		for i, c := range cols {
			if strings.EqualFold(c, "rows") && vals[i].Valid {
				var n int64
				fmt.Sscan(vals[i].String, &n)
				best = max(best, n)
			}
		}
	}
	return best, classify(rows.Err())
}

// keySelect is the SELECT list of the key columns.
func (s *source) keySelect() string {
	parts := make([]string, len(s.keys))
	for i, c := range s.keys {
		parts[i] = c.selectExpr(s.prefix)
	}
	return strings.Join(parts, ", ")
}

// allKeys reads every non-NULL key in key order, up to limit; complete is
// false when there were more.
func (s *source) allKeys(ctx context.Context, limit int) (keys []connectors.Key, complete bool, err error) {
	q, args, err := s.query(s.keySelect(), connectors.Range{}, true)
	if err != nil {
		return nil, false, err
	}
	q += fmt.Sprintf(" LIMIT %d", limit+1)
	err = s.queryKeys(ctx, q, args, func(k connectors.Key) bool {
		keys = append(keys, k)
		return len(keys) <= limit
	})
	if err != nil {
		return nil, false, fmt.Errorf("read keys of %s: %w", s.name, err)
	}
	return keys, len(keys) <= limit, nil
}

// edgeKey returns the smallest (or largest) non-NULL key. For keys compared
// as CAST(… AS BINARY) this reads the whole key column once (no index
// order matches); others are one index probe.
func (s *source) edgeKey(ctx context.Context, last bool) (connectors.Key, error) {
	q, args, err := s.build(s.keySelect(), connectors.Range{}, "", nil, orderBy(s.keys, s.prefix, last))
	if err != nil {
		return nil, err
	}
	q += " LIMIT 1"
	var out connectors.Key
	err = s.queryKeys(ctx, q, args, func(k connectors.Key) bool { out = k; return false })
	if err != nil {
		return nil, fmt.Errorf("min/max key of %s: %w", s.name, err)
	}
	return out, nil
}

// nativeOrder reports whether the columns' own order (the index order) is
// the byte order of TYPES.md, so a walk in index order is already sorted.
func (s *source) nativeOrder() bool {
	for _, c := range s.keys {
		if c.keyExpr("") != c.quoted() {
			return false
		}
	}
	return true
}

// walk samples keys by a chained walk in index order: each probe skips step
// entries past the previous one. When the walk outgrows twice the sample
// size (the estimate was low) it keeps every other key and doubles the step,
// so the sample stays evenly spread. It returns the sample sorted in key
// order and the row count the walk saw (approximate by up to one step).
func (s *source) walk(ctx context.Context, est int64, size int) ([]connectors.Key, int64, error) {
	step := max(1, est/int64(size))
	plain := make([]*column, len(s.keys))
	for i, c := range s.keys {
		cp := *c
		cp.kind = walkKind(c.kind)
		cp.native = true
		plain[i] = &cp
	}
	var order []string
	for _, c := range s.keys {
		order = append(order, s.prefix+c.quoted())
	}
	var sample []connectors.Key
	var prev connectors.Key
	var seen int64
	for {
		cond := ""
		var args []any
		if prev != nil {
			vals := make([]any, len(prev))
			for i, v := range prev {
				a, err := walkArg(plain[i], v)
				if err != nil {
					return nil, 0, err
				}
				vals[i] = a
			}
			cond, args = boundCond(plain, s.prefix, vals, ">")
		}
		q, args, err := s.build(s.keySelect(), connectors.Range{}, cond, args, strings.Join(order, ", "))
		if err != nil {
			return nil, 0, err
		}
		q += fmt.Sprintf(" LIMIT 1 OFFSET %d", step-1)
		var got connectors.Key
		if err := s.queryKeys(ctx, q, args, func(k connectors.Key) bool { got = k; return false }); err != nil {
			return nil, 0, fmt.Errorf("sample keys of %s: %w", s.name, err)
		}
		if got == nil {
			break
		}
		seen += step
		sample = append(sample, got)
		prev = got
		if len(sample) >= 2*size {
			half := sample[:0]
			for i := 1; i < len(sample); i += 2 {
				half = append(half, sample[i])
			}
			sample = half
			step *= 2
		}
	}
	if !s.nativeOrder() {
		slices.SortFunc(sample, connectors.CompareKeys)
	}
	return sample, seen + step/2, nil
}

// walkKind is the kind whose plain comparison the walk uses: the columns are
// compared as they are (index order), not in byte order.
func walkKind(k kind) kind {
	if k == kUUID {
		return kString // compared with its text form
	}
	return k
}

// walkArg converts a key value for a comparison in the column's own order.
func walkArg(c *column, v any) (any, error) {
	if u, ok := v.(connectors.UUID); ok {
		return u.String(), nil
	}
	return c.keyArg(v)
}

// valueProbes samples an integer key at evenly spaced values between min and
// max: each probe is the first key at or above its value.
func (s *source) valueProbes(ctx context.Context, lo, hi any, size int) ([]connectors.Key, error) {
	toBig := func(v any) *big.Int {
		switch x := v.(type) {
		case int64:
			return big.NewInt(x)
		case uint64:
			return new(big.Int).SetUint64(x)
		}
		return big.NewInt(0)
	}
	blo, bhi := toBig(lo), toBig(hi)
	span := new(big.Int).Sub(bhi, blo)
	c := s.keys[0]
	var out []connectors.Key
	for i := 1; i < size; i++ {
		p := new(big.Int).Mul(span, big.NewInt(int64(i)))
		p.Div(p, big.NewInt(int64(size)))
		p.Add(p, blo)
		var arg any
		if c.kind == kUint {
			arg = p.Uint64()
		} else {
			if !p.IsInt64() {
				continue
			}
			arg = p.Int64()
		}
		q, args, err := s.build(s.keySelect(), connectors.Range{}, c.keyExpr(s.prefix)+" >= ?", []any{arg}, orderBy(s.keys, s.prefix, false))
		if err != nil {
			return nil, err
		}
		q += " LIMIT 1"
		var got connectors.Key
		if err := s.queryKeys(ctx, q, args, func(k connectors.Key) bool { got = k; return false }); err != nil {
			return nil, fmt.Errorf("sample keys of %s: %w", s.name, err)
		}
		if got != nil && (len(out) == 0 || connectors.CompareKeys(out[len(out)-1], got) < 0) {
			out = append(out, got)
		}
	}
	return out, nil
}

// evenly picks n keys at evenly spaced positions of sorted keys.
func evenly(keys []connectors.Key, n int) []connectors.Key {
	if len(keys) <= n {
		return keys
	}
	out := make([]connectors.Key, 0, n)
	for i := 0; i < n; i++ {
		j := int(math.Floor(float64(i) * float64(len(keys)) / float64(n)))
		out = append(out, keys[j])
	}
	return out
}
