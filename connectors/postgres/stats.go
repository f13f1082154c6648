package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/datashift/datashift/connectors"
	"github.com/jackc/pgx/v5"
)

// exactLimit is the estimated row count under which Stats scans the whole
// table: cheaper than being clever, and exact. smallPages is the size under
// which a never-analyzed table is scanned rather than analyzed. Variables
// so that tests can reach the sampling paths with small tables.
var (
	exactLimit       = 100_000.0
	smallPages int64 = 1024
)

// Stats describes the key distribution for planning, from what PostgreSQL
// already knows where it can: reltuples/relpages for sizes, pg_stats
// histograms and most-common values for quantiles of a single-column key,
// TABLESAMPLE otherwise, index probes for the minimum and maximum. Tables of
// fewer than 100k estimated rows are scanned whole (Exact). Keys in Sample
// are sorted in the key order; decimal keys are given as int64 or float64 so
// that they sort numerically.
func (s *Source) Stats(ctx context.Context, sampleSize int) (connectors.Stats, error) {
	if sampleSize <= 0 {
		sampleSize = 1000
	}
	conn, err := s.conn.get(ctx)
	if err != nil {
		return connectors.Stats{}, s.conn.redact(err)
	}
	st, err := s.stats(ctx, conn, sampleSize)
	if err != nil {
		s.conn.discard(conn)
		return connectors.Stats{}, s.conn.redact(classify(fmt.Errorf("postgres source %s: stats: %w", s.what, err)))
	}
	s.conn.put(conn)
	return st, nil
}

func (s *Source) stats(ctx context.Context, conn *pgx.Conn, sampleSize int) (connectors.Stats, error) {
	if s.tableOID == 0 {
		return s.queryStats(ctx, conn, sampleSize)
	}
	var reltuples float64
	var relpages, size int64
	var analyzed bool
	load := func() error {
		// reltuples is -1 before the first VACUUM, ANALYZE or CREATE INDEX
		// (PostgreSQL 14+), but only ANALYZE fills pg_stats.
		return conn.QueryRow(ctx, `SELECT c.reltuples, c.relpages, pg_relation_size(c.oid),
	coalesce(s.last_analyze, s.last_autoanalyze) IS NOT NULL
FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = $1`,
			s.tableOID).Scan(&reltuples, &relpages, &size, &analyzed)
	}
	if err := load(); err != nil {
		return connectors.Stats{}, err
	}
	var notes []string
	curPages := size / 8192
	if reltuples < 0 || !analyzed {
		if curPages < smallPages {
			return s.exactStats(ctx, conn, sampleSize, curPages, "table never analyzed and small")
		}
		if _, err := conn.Exec(ctx, "ANALYZE "+s.from); err != nil {
			return connectors.Stats{}, fmt.Errorf("analyze: %w", err)
		}
		if err := load(); err != nil {
			return connectors.Stats{}, err
		}
		notes = append(notes, "ran ANALYZE (table was never analyzed)")
	}
	// Like the planner: scale reltuples to the table's current size.
	est := reltuples
	if relpages > 0 && curPages > 0 {
		est = reltuples / float64(relpages) * float64(curPages)
	}
	if est < exactLimit {
		return s.exactStats(ctx, conn, sampleSize, curPages, "small table")
	}
	if s.filtered() {
		e, err := explainRows(ctx, conn, "SELECT 1 FROM "+s.from+whereClause(s.cursorConds, s.userWhere()))
		if err != nil {
			return connectors.Stats{}, err
		}
		est = e
		notes = append(notes, "rows of the filter and incremental window estimated by EXPLAIN")
	}
	st := connectors.Stats{Bytes: size, PageCount: curPages}
	if len(s.keys) == 0 {
		st.Rows = int64(est)
		st.Method = strings.Join(append([]string{"pg_class estimate, no key: ctid pages"}, notes...), "; ")
		return st, nil
	}

	var sample []connectors.Key
	nullFrac := -1.0
	if len(s.keys) == 1 && !s.filtered() && histogramUsable(&s.keys[0]) {
		var err error
		sample, nullFrac, err = s.histogramSample(ctx, conn, sampleSize)
		if err != nil {
			return connectors.Stats{}, err
		}
		if sample != nil {
			notes = append([]string{"pg_stats histogram and most common values"}, notes...)
		}
	}
	if sample == nil {
		var nulls, total int
		var err error
		sample, nulls, total, err = s.tableSample(ctx, conn, sampleSize, est)
		if err != nil {
			return connectors.Stats{}, err
		}
		if total > 0 {
			nullFrac = float64(nulls) / float64(total)
		}
		notes = append([]string{"TABLESAMPLE SYSTEM"}, notes...)
	}
	if allNotNull(s.keys) || nullFrac < 0 {
		nullFrac = 0
	}
	st.NullRows = int64(math.Round(est * nullFrac))
	st.Rows = int64(est) - st.NullRows
	st.Sample = sample

	if s.indexOrdered(ctx, conn) {
		lo, hi, err := s.probeMinMax(ctx, conn)
		if err != nil {
			return connectors.Stats{}, err
		}
		st.Min, st.Max = lo, hi
		notes = append(notes, "min/max by index probes")
	} else if len(sample) > 0 {
		st.Min, st.Max = sample[0], sample[len(sample)-1]
		notes = append(notes, "min/max from the sample (no index in the key order)")
	}
	st.Method = strings.Join(notes, "; ")
	return st, nil
}

// histogramUsable: pg_stats orders a histogram by the column's own
// collation, which is the key order only for non-text keys or byte-order
// collations.
func histogramUsable(c *column) bool {
	switch c.kind() {
	case kCast, kJSONB, kBool:
		return false
	}
	return !c.isTextual() || c.byteOrder
}

func allNotNull(keys []column) bool {
	for i := range keys {
		if !keys[i].notNull {
			return false
		}
	}
	return true
}

// keyReader reads the key columns of a SELECT through binary COPY and gives
// each row's key, NULLs included.
func (s *Source) keyReader(ctx context.Context, conn *pgx.Conn, sel string, fn func(connectors.Key)) error {
	fields := make([]arrow.Field, len(s.keys))
	for i := range s.keys {
		fields[i] = s.keys[i].field()
		fields[i].Nullable = true
	}
	schema := arrow.NewSchema(fields, nil)
	idx := make([]int, len(s.keys))
	for i := range idx {
		idx[i] = i
	}
	dec := newCopyDecoder(s.mem, schema, s.keys, s.keys, defaultBatchRows, defaultBatchBytes, func(rec arrow.RecordBatch) error {
		for i := 0; i < int(rec.NumRows()); i++ {
			fn(orderedKey(rec, idx, i))
		}
		return nil
	})
	defer dec.release()
	if _, err := conn.PgConn().CopyTo(ctx, dec, "COPY ("+sel+") TO STDOUT (FORMAT binary)"); err != nil {
		return err
	}
	return dec.flush()
}

// keySelectList selects the key columns in the form the decoder reads.
func (s *Source) keySelectList() string {
	parts := make([]string, len(s.keys))
	for i := range s.keys {
		parts[i] = quoteIdent(s.keys[i].name)
		if s.keys[i].kind() == kCast {
			parts[i] += "::text"
		}
	}
	return strings.Join(parts, ", ")
}

func hasNull(k connectors.Key) bool {
	return slices.Contains(k, nil)
}

// exactStats scans every key.
func (s *Source) exactStats(ctx context.Context, conn *pgx.Conn, sampleSize int, pages int64, why string) (connectors.Stats, error) {
	st := connectors.Stats{Exact: true, PageCount: pages, Bytes: pages * 8192}
	if len(s.keys) == 0 {
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+s.from+whereClause(s.cursorConds, s.userWhere())).Scan(&st.Rows); err != nil {
			return st, err
		}
		st.Method = "exact count (" + why + "), no key: ctid pages"
		return st, nil
	}
	var keys []connectors.Key
	err := s.keyReader(ctx, conn, "SELECT "+s.keySelectList()+" FROM "+s.from+whereClause(s.cursorConds, s.userWhere()), func(k connectors.Key) {
		if hasNull(k) {
			st.NullRows++
			return
		}
		keys = append(keys, k)
	})
	if err != nil {
		return st, err
	}
	slices.SortFunc(keys, connectors.CompareKeys)
	st.Rows = int64(len(keys))
	if len(keys) > 0 {
		st.Min, st.Max = keys[0], keys[len(keys)-1]
	}
	st.Sample = thin(keys, sampleSize)
	st.Method = fmt.Sprintf("exact: full scan of %d rows (%s)", st.Rows+st.NullRows, why)
	return st, nil
}

// thin picks n evenly spaced keys from sorted keys (all of them if fewer).
func thin(keys []connectors.Key, n int) []connectors.Key {
	if len(keys) <= n {
		return keys
	}
	out := make([]connectors.Key, n)
	for i := range out {
		out[i] = keys[int((int64(i)*2+1)*int64(len(keys))/(2*int64(n)))]
	}
	return out
}

// tableSample takes about 20×sampleSize rows with TABLESAMPLE SYSTEM (whole
// pages, so cheap even on a big table; more rows than needed to soften the
// clustering of keys within pages), falling back to BERNOULLI when too few
// come back, and thins them to sampleSize.
func (s *Source) tableSample(ctx context.Context, conn *pgx.Conn, sampleSize int, est float64) (sample []connectors.Key, nulls, total int, err error) {
	pct := math.Min(100, 100*float64(20*sampleSize)/math.Max(est, 1))
	for _, method := range []string{"SYSTEM", "BERNOULLI"} {
		var keys []connectors.Key
		nulls, total = 0, 0
		q := fmt.Sprintf("SELECT %s FROM %s TABLESAMPLE %s (%s) REPEATABLE (42)%s",
			s.keySelectList(), s.from, method, strconv.FormatFloat(pct, 'f', 6, 64), whereClause(s.cursorConds, s.userWhere()))
		err = s.keyReader(ctx, conn, q, func(k connectors.Key) {
			total++
			if hasNull(k) {
				nulls++
				return
			}
			keys = append(keys, k)
		})
		if err != nil {
			return nil, 0, 0, err
		}
		slices.SortFunc(keys, connectors.CompareKeys)
		sample = thin(keys, sampleSize)
		if len(keys) >= sampleSize/2 {
			break
		}
		pct = math.Min(100, pct*4)
	}
	return sample, nulls, total, nil
}

// histogramSample turns pg_stats' most common values (with their
// frequencies) and histogram (equal-frequency buckets of the rest) into
// sampleSize keys whose quantiles follow the column's distribution, so skew
// in the most common values shows. It returns nil when the column has no
// statistics.
func (s *Source) histogramSample(ctx context.Context, conn *pgx.Conn, sampleSize int) ([]connectors.Key, float64, error) {
	k := &s.keys[0]
	var nsp, rel string
	if err := conn.QueryRow(ctx, `SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`,
		s.tableOID).Scan(&nsp, &rel); err != nil {
		return nil, 0, err
	}
	var nullFrac float32
	var freqs []float32
	var hasHist bool
	err := conn.QueryRow(ctx, `SELECT null_frac, coalesce(most_common_freqs, '{}'), histogram_bounds IS NOT NULL
FROM pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3 AND NOT inherited`,
		nsp, rel, k.name).Scan(&nullFrac, &freqs, &hasHist)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var baseType string
	if err := conn.QueryRow(ctx, `SELECT format_type($1, $2)`, k.typeOID, k.typmod).Scan(&baseType); err != nil {
		return nil, 0, err
	}
	values := func(col string) ([]connectors.Key, error) {
		var out []connectors.Key
		lits := make([]string, 3)
		for i, v := range []string{nsp, rel, k.name} {
			var err error
			if lits[i], err = quoteLiteral(v); err != nil {
				return nil, err
			}
		}
		// anyarray has no direct cast; its text form parses as the column's
		// array type. WITH ORDINALITY keeps the stored order.
		q := fmt.Sprintf(`SELECT v FROM pg_stats, unnest(%s::text::%s[]) WITH ORDINALITY AS u(v, n)
WHERE schemaname = %s AND tablename = %s AND attname = %s AND NOT inherited ORDER BY n`,
			col, baseType, lits[0], lits[1], lits[2])
		err := s.keyReader(ctx, conn, q, func(key connectors.Key) { out = append(out, key) })
		return out, err
	}
	mcv, err := values("most_common_vals")
	if err != nil {
		return nil, 0, fmt.Errorf("read most common values: %w", err)
	}
	var hist []connectors.Key
	if hasHist {
		if hist, err = values("histogram_bounds"); err != nil {
			return nil, 0, fmt.Errorf("read histogram: %w", err)
		}
	}
	if len(mcv) != len(freqs) || (len(mcv) == 0 && len(hist) < 2) {
		return nil, 0, nil
	}
	type point struct {
		key    connectors.Key
		weight float64
	}
	var pts []point
	mass := 0.0
	for i := range mcv {
		pts = append(pts, point{mcv[i], float64(freqs[i])})
		mass += float64(freqs[i])
	}
	if len(hist) >= 2 {
		rest := math.Max(0, 1-float64(nullFrac)-mass)
		per := rest / float64(len(hist)-1)
		slices.SortFunc(hist, connectors.CompareKeys)
		for i := 0; i+1 < len(hist); i++ {
			pts = append(pts, point{hist[i], per})
		}
		mass += rest
	}
	if mass <= 0 {
		return nil, 0, nil
	}
	slices.SortFunc(pts, func(a, b point) int { return connectors.CompareKeys(a.key, b.key) })
	out := make([]connectors.Key, 0, sampleSize)
	cum, j := 0.0, 0
	for i := 0; i < sampleSize; i++ {
		q := (float64(i) + 0.5) / float64(sampleSize) * mass
		for j < len(pts)-1 && cum+pts[j].weight < q {
			cum += pts[j].weight
			j++
		}
		out = append(out, pts[j].key)
	}
	return out, float64(nullFrac), nil
}

// indexOrdered reports whether a plain btree index leads with the key
// columns in an order the key order can use, so ORDER BY … LIMIT 1 is a probe
// and not a scan.
func (s *Source) indexOrdered(ctx context.Context, conn *pgx.Conn) bool {
	attnums := make([]int16, len(s.keys))
	for i := range s.keys {
		if s.keys[i].isTextual() && !s.keys[i].byteOrder || s.keys[i].kind() == kCast {
			return false
		}
		attnums[i] = s.keys[i].attnum
	}
	var ok bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = $1 AND am.amname = 'btree' AND i.indpred IS NULL AND i.indexprs IS NULL
  AND (i.indkey::int2[])[0:$3] = $2::int2[])`, s.tableOID, attnums, len(attnums)-1).Scan(&ok)
	return err == nil && ok
}

// probeMinMax reads the first and last key in the key order.
func (s *Source) probeMinMax(ctx context.Context, conn *pgx.Conn) (lo, hi connectors.Key, err error) {
	conds, err := rangeConds(s.keys, connectors.Range{})
	if err != nil {
		return nil, nil, err
	}
	base := "SELECT " + s.keySelectList() + " FROM " + s.from + whereClause(append(conds, s.cursorConds...), s.userWhere())
	desc := make([]string, len(s.keys))
	for i := range s.keys {
		desc[i] = s.keys[i].orderExpr() + " DESC"
	}
	for i, q := range []string{base + orderBy(s.keys) + " LIMIT 1", base + " ORDER BY " + strings.Join(desc, ", ") + " LIMIT 1"} {
		var got connectors.Key
		if err := s.keyReader(ctx, conn, q, func(k connectors.Key) { got = k }); err != nil {
			return nil, nil, err
		}
		if i == 0 {
			lo = got
		} else {
			hi = got
		}
	}
	return lo, hi, nil
}

// queryStats plans a query source: EXPLAIN for the size; a small result is
// read whole, a big one sampled with random() in one pass.
func (s *Source) queryStats(ctx context.Context, conn *pgx.Conn, sampleSize int) (connectors.Stats, error) {
	est, err := explainRows(ctx, conn, "SELECT 1 FROM "+s.from+whereClause(s.cursorConds, s.userWhere()))
	if err != nil {
		return connectors.Stats{}, err
	}
	if est < exactLimit || len(s.keys) == 0 {
		st, err := s.exactStats(ctx, conn, sampleSize, 0, "query estimated by EXPLAIN at "+strconv.FormatInt(int64(est), 10)+" rows")
		return st, err
	}
	frac := math.Min(1, float64(20*sampleSize)/est)
	var keys []connectors.Key
	nulls, total := 0, 0
	q := "SELECT " + s.keySelectList() + " FROM " + s.from + whereClause(append([]string{"random() < " + strconv.FormatFloat(frac, 'f', 8, 64)}, s.cursorConds...), s.userWhere())
	if err := s.keyReader(ctx, conn, q, func(k connectors.Key) {
		total++
		if hasNull(k) {
			nulls++
			return
		}
		keys = append(keys, k)
	}); err != nil {
		return connectors.Stats{}, err
	}
	slices.SortFunc(keys, connectors.CompareKeys)
	st := connectors.Stats{Sample: thin(keys, sampleSize), Method: "query: EXPLAIN estimate, random() sample in one scan"}
	if total > 0 {
		st.NullRows = int64(est * float64(nulls) / float64(total))
	}
	st.Rows = int64(est) - st.NullRows
	if len(keys) > 0 {
		st.Min, st.Max = keys[0], keys[len(keys)-1]
	}
	return st, nil
}

// explainRows returns the planner's row estimate for a query.
func explainRows(ctx context.Context, conn *pgx.Conn, q string) (float64, error) {
	var out string
	if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+q).Scan(&out); err != nil {
		return 0, fmt.Errorf("explain: %w", err)
	}
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil || len(plan) == 0 {
		return 0, fmt.Errorf("explain: unexpected output %q", out)
	}
	return plan[0].Plan.Rows, nil
}
