package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/go-sql-driver/mysql"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/connectors/internal/density"
)

// exactLimit: below this many estimated rows Stats reads every key. A
// variable, not a constant, so tests can reach every path with small tables.
var exactLimit int64 = 100_000

// densityAbove: from this many estimated rows a table keyed by one integer
// column is measured by density probes instead of read whole by the
// stride. A variable for the tests, as exactLimit.
var densityAbove int64 = 250_000

// Stats estimates rows and picks a sorted sample of keys for split points,
// in a handful of queries whatever the table's size:
//
//   - row and byte estimates from information_schema.TABLES (InnoDB's
//     statistics), or a bounded count for a query or a filtered table;
//   - small sources (< 100k rows): every key is read, Exact is set;
//   - otherwise Min and Max are index probes (ORDER BY key LIMIT 1);
//   - a large table keyed by one integer column, read unfiltered, is
//     measured by density probes (connectors/internal/density): a few
//     rounds of index walks of 16 keys each, each round a few statements
//     at once, so planning costs the same for any size; the sample is the
//     keys at evenly spaced ranks of that estimate;
//   - otherwise the sample is one ordered read of the key columns in which
//     the server keeps every step-th key (stride): evenly spaced in rank,
//     so skewed key values still give balanced partitions, and it counts
//     the rows exactly on the way.
//
// The other queries share a connection where they can: each new one costs
// a round trip or two of its own.
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
		// The statistics were stale: count properly for the stride's step.
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
	if st.Rows >= densityAbove && s.integerKey() {
		measured, err := s.densityStats(ctx, st, sampleSize)
		if err != nil {
			return st, err
		}
		// Far from the server's own estimate, the probes may have missed
		// a cluster of keys between them (density's blind spot): the
		// stride reads them all.
		if measured.Rows >= st.Rows/2 && measured.Rows <= 2*st.Rows {
			return measured, nil
		}
	}
	sample, rows, err := s.stride(ctx, st.Rows, sampleSize)
	if err != nil {
		return st, err
	}
	st.Rows, st.Sample = rows, sample
	st.Method = "index stride"
	return st, nil
}

// integerKey reports whether the source is a table read unfiltered by one
// integer key column whose values all fit an int64: what density probes
// can measure (a filter would make the keys' density not the rows').
func (s *source) integerKey() bool {
	if s.table == nil || s.where != "" || s.cursor != "" || len(s.keys) != 1 {
		return false
	}
	k := s.keys[0]
	return k.kind == kInt || k.kind == kUint && k.width < 64
}

// Density probes are spread over up to probeStatements statements at once,
// each of at least minWalksPerStatement walks. When the index is not in
// the buffer pool (a table just read whole by a copy has pushed it out),
// every walk waits for a page read of its own; one statement reads them one
// after another, several statements let the server read them together.
// The first round's 256 walks took 160 ms in one statement and 90 ms in
// four, on a 5M-row table just read whole.
const (
	probeStatements      = 4
	minWalksPerStatement = 32
)

// densityStats fills in st's rows and sample from density probes of the
// key between st.Min and st.Max.
func (s *source) densityStats(ctx context.Context, st connectors.Stats, sampleSize int) (connectors.Stats, error) {
	k := s.keys[0]
	asInt := func(v any) int64 {
		if u, ok := v.(uint64); ok {
			return int64(u)
		}
		return v.(int64)
	}
	spans, total, err := density.Measure(ctx, asInt(st.Min[0]), asInt(st.Max[0]), sampleSize, s.probeKeys)
	if err != nil {
		return st, fmt.Errorf("measure keys of %s: %w", s.name, err)
	}
	st.Rows, st.Exact, st.Method, st.Sample = int64(math.Round(total)), false, "index density probes", nil
	for _, at := range density.Quantiles(spans, total, sampleSize) {
		if k.kind == kUint {
			st.Sample = append(st.Sample, connectors.Key{uint64(at)})
		} else {
			st.Sample = append(st.Sample, connectors.Key{at})
		}
	}
	return st, nil
}

// probeKeys reads, for each start, the next density.PerProbe keys, in a
// few statements at once (probeStatements).
func (s *source) probeKeys(ctx context.Context, starts []int64) ([][]int64, error) {
	out := make([][]int64, len(starts))
	per := max((len(starts)+probeStatements-1)/probeStatements, minWalksPerStatement)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for lo := 0; lo < len(starts); lo += per {
		hi := min(lo+per, len(starts))
		wg.Go(func() {
			keys, err := s.walkKeys(ctx, starts[lo:hi])
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
				return
			}
			copy(out[lo:hi], keys)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0] // the first: the others may be its cancellation
	}
	return out, nil
}

// walkKeys reads, for each start, the next density.PerProbe keys in one
// statement: a UNION ALL of index walks, each row tagged with its walk.
func (s *source) walkKeys(ctx context.Context, starts []int64) ([][]int64, error) {
	key := s.keys[0].quoted()
	walks := make([]string, len(starts))
	args := make([]any, len(starts))
	for i, start := range starts {
		walks[i] = fmt.Sprintf("(SELECT %d AS w, %s AS k FROM %s WHERE %s >= ? ORDER BY %s LIMIT %d)", i, key, s.from, key, key, density.PerProbe)
		args[i] = start
	}
	rows, err := s.db.QueryContext(ctx, strings.Join(walks, " UNION ALL "), args...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := make([][]int64, len(starts))
	for rows.Next() {
		var w int
		var k int64
		if err := rows.Scan(&w, &k); err != nil {
			return nil, classify(err)
		}
		if w < 0 || w >= len(out) {
			return nil, fmt.Errorf("a density probe answered for walk %d of %d", w, len(out))
		}
		out[w] = append(out[w], k)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	// UNION ALL keeps no order: each walk's keys are sorted here.
	for _, keys := range out {
		slices.Sort(keys)
	}
	return out, nil
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

// strideVar is the session variable the server counts the stride's rows in.
const strideVar = "@datashift_stride_n"

// oversample: the server is asked for this many times the keys wanted, so
// an estimate up to this many times too high still gives a full sample; the
// surplus, a few thousand keys more, is thinned here.
const oversample = 4

// stride samples keys in one ordered read of the key index: the server
// numbers the rows in index order and sends back every step-th key (the
// first, then every step-th after it), so it reads each index entry once and
// sends only the sample, in one round trip. It replaces a chained walk of one
// query per sampled key. The count it ends with is the exact number of rows
// read (filter and cursor window included).
//
// When the sample outgrows twice size, every other key is dropped and only
// every other one kept from then on, so the sample stays evenly spread and
// bounded. When the estimate was so high that the sample came out under
// half of size, the read is done once more with the step the count gives.
// It returns the sample sorted in key order and the exact row count.
func (s *source) stride(ctx context.Context, est int64, size int) ([]connectors.Key, int64, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, 0, classify(fmt.Errorf("sample keys of %s: %w", s.name, err))
	}
	defer conn.Close()
	sample, n, err := s.strideStep(ctx, conn, max(1, est/int64(oversample*size)), size)
	if err == nil && len(sample) < size/2 && int64(len(sample)) < n {
		// A filter the optimizer misjudged, most likely: read again with
		// the step the count gives.
		sample, n, err = s.strideStep(ctx, conn, max(1, n/int64(size)), size)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("sample keys of %s: %w", s.name, err)
	}
	if !s.nativeOrder() {
		slices.SortFunc(sample, connectors.CompareKeys)
	}
	return sample, n, nil
}

// strideStep is one stride read with the given step: on the server, or on
// this side, reading every key, if the server did not number the rows as
// asked (a user variable's evaluation order is not guaranteed) or refused
// the statement (MySQL deprecates assigning user variables in expressions).
func (s *source) strideStep(ctx context.Context, conn *sql.Conn, step int64, size int) ([]connectors.Key, int64, error) {
	sample, n, err := s.strideOn(ctx, conn, step, size, true)
	var refused *mysql.MySQLError
	if errors.Is(err, errStrideCount) || errors.As(err, &refused) && ctx.Err() == nil {
		return s.strideOn(ctx, conn, step, size, false)
	}
	return sample, n, err
}

// errStrideCount: the server's row count disagrees with the keys it sent.
var errStrideCount = errors.New("the server's stride count does not match the keys it sent")

// strideOn runs the stride on conn. With onServer the server keeps every
// step-th row (HAVING on a session counter, checked against the keys
// received); without, every key is sent and the stride is kept here.
func (s *source) strideOn(ctx context.Context, conn *sql.Conn, step int64, size int, onServer bool) ([]connectors.Key, int64, error) {
	q, args, err := s.build(s.keySelect(), connectors.Range{}, "", nil, "")
	if err != nil {
		return nil, 0, err
	}
	if onServer && step > 1 {
		if _, err := conn.ExecContext(ctx, "SET "+strideVar+" = 0"); err != nil {
			return nil, 0, classify(err)
		}
		// HAVING is applied to the rows in ORDER BY order, after the WHERE.
		q += fmt.Sprintf(" HAVING (%s := %s + 1) %% %d = 1", strideVar, strideVar, step)
	}
	q += " ORDER BY " + s.indexOrder()
	serverStep := int64(1)
	if onServer {
		serverStep = step
	}
	keep := step / serverStep // of the keys received, keep every keep-th
	var sample []connectors.Key
	var received int64
	var prev connectors.Key
	ordered, native := true, s.nativeOrder()
	err = s.queryKeysOn(ctx, conn, q, args, func(k connectors.Key) bool {
		if native && prev != nil && connectors.CompareKeys(prev, k) > 0 {
			ordered = false
		}
		prev = k
		if received%keep == 0 {
			sample = append(sample, k)
			if len(sample) >= 2*size {
				sample, keep = thin(sample), keep*2
			}
		}
		received++
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	if !onServer || step == 1 {
		return sample, received, nil
	}
	var n int64
	if err := conn.QueryRowContext(ctx, "SELECT "+strideVar).Scan(&n); err != nil {
		return nil, 0, classify(err)
	}
	// Rows 1, 1+step, … were sent: received of them means n rows in
	// ((received-1)·step, received·step].
	// Stats asks only of a source it found a key in: no key back is an
	// error too.
	if !ordered || received == 0 || n <= (received-1)*step || n > received*step {
		return nil, 0, errStrideCount
	}
	return sample, n, nil
}

// thin keeps every other key of sample, the first included, in place.
func thin(sample []connectors.Key) []connectors.Key {
	half := sample[:0]
	for i := 0; i < len(sample); i += 2 {
		half = append(half, sample[i])
	}
	return half
}

// indexOrder is the ORDER BY list of the key columns as they are, so an
// index on them gives the order without a sort; the order may then differ
// from byte order (nativeOrder), and a sample read in it is sorted after.
func (s *source) indexOrder() string {
	order := make([]string, len(s.keys))
	for i, c := range s.keys {
		order[i] = s.prefix + c.quoted()
	}
	return strings.Join(order, ", ")
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
