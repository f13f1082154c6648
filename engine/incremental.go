package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
)

// MaxMarkKeys bounds the keys a job keeps of the rows at its high-water
// mark (Mark.Keys): they travel in the run record and the job state, which
// live in ZooKeeper nodes of at most 1 MiB. When more rows than this share
// the greatest cursor value, a run that does not upsert leaves them all to
// a later run, one that sees a greater value (see cursorKeys).
const MaxMarkKeys = 10000

// lookback is incremental.lookback parsed: a duration or a number.
type lookback struct {
	dur   time.Duration
	num   float64
	isNum bool
}

func parseLookback(s string) (lookback, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n <= 0 {
			return lookback{}, fmt.Errorf("must be more than 0 (got %s)", s)
		}
		return lookback{num: n, isNum: true}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return lookback{}, fmt.Errorf("%q is neither a duration like 10m (for a time cursor) nor a number (for a numeric one)", s)
	}
	if d <= 0 {
		return lookback{}, fmt.Errorf("must be more than 0 (got %s)", s)
	}
	return lookback{dur: d}, nil
}

// before returns v moved back by the lookback, in v's type.
func (lb lookback) before(v any) (any, error) {
	switch x := v.(type) {
	case time.Time:
		if !lb.isNum {
			return x.Add(-lb.dur), nil
		}
	case time.Duration: // a time of day
		if !lb.isNum {
			return max(x-lb.dur, 0), nil
		}
	case int64:
		if lb.isNum && lb.num == float64(int64(lb.num)) {
			return x - int64(lb.num), nil
		}
	case uint64:
		if lb.isNum && lb.num == float64(uint64(lb.num)) {
			return x - min(x, uint64(lb.num)), nil
		}
	case float64:
		if lb.isNum {
			return x - lb.num, nil
		}
	}
	want := "a number (a whole one for an integer cursor)"
	if _, ok := v.(time.Time); ok {
		want = "a duration like 10m"
	} else if _, ok := v.(time.Duration); ok {
		want = "a duration like 10m"
	}
	return nil, fmt.Errorf("the cursor's values are %T, so the lookback must be %s", v, want)
}

// checkLookback refuses, before a run, a lookback that does not fit the
// cursor column's type; a run would refuse it only once a mark exists.
func checkLookback(inc *IncrementalSpec, cursor arrow.Field) error {
	if inc.Lookback == "" {
		return nil
	}
	lb, err := parseLookback(inc.Lookback)
	if err != nil {
		return err
	}
	switch cursor.Type.ID() {
	case arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64, arrow.TIME32, arrow.TIME64:
		if lb.isNum {
			return fmt.Errorf("cursor %q holds %s values, so the lookback must be a duration like 10m (got %s)", cursor.Name, cursor.Type, inc.Lookback)
		}
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64, arrow.DECIMAL128, arrow.DECIMAL256:
		if !lb.isNum {
			return fmt.Errorf("cursor %q holds %s values, so the lookback must be a number (got %s)", cursor.Name, cursor.Type, inc.Lookback)
		}
	default:
		return fmt.Errorf("cursor %q holds %s values: a lookback needs a time or numeric cursor", cursor.Name, cursor.Type)
	}
	return nil
}

// cursorFrom is where a new run's window starts: at the mark, inclusive
// (rows that arrived at the mark's value after the last run read it are
// copied now), or the lookback before it.
func cursorFrom(job *Job, mark Mark) (connectors.Key, error) {
	if mark.Cursor == nil || job.Incremental.Lookback == "" {
		return mark.Cursor, nil
	}
	lb, err := parseLookback(job.Incremental.Lookback)
	if err != nil {
		return nil, &SpecError{Job: job.Name, Field: "incremental.lookback", Reason: err.Error()}
	}
	from, err := lb.before(mark.Cursor[0])
	if err != nil {
		return nil, &SpecError{Job: job.Name, Field: "incremental.lookback", Reason: err.Error()}
	}
	return connectors.Key{from}, nil
}

// cursorUpTo fixes the upper end of a new run's window at the greatest
// cursor value now (never below the mark: the mark does not move back),
// and, for a sink that does not upsert, the keys at each end (see
// RunRecord.CursorSkip and CursorKeys).
func (s *Steps) cursorUpTo(ctx context.Context, job *Job, src connectors.Source, run *RunRecord, mark Mark) error {
	cs, ok := src.(connectors.CursorSource)
	if !ok {
		return &SpecError{Job: job.Name, Field: "incremental", Reason: fmt.Sprintf("source type %q does not support incremental syncs", job.Source.Type)}
	}
	upTo, err := cs.MaxCursor(ctx, job.Incremental.Cursor)
	if err != nil {
		return fmt.Errorf("job %q: incremental.cursor %q: %w", job.Name, job.Incremental.Cursor, err)
	}
	switch {
	case upTo != nil && (mark.Cursor == nil || connectors.CompareValues(upTo, mark.Cursor[0]) >= 0):
		run.CursorUpTo = connectors.Key{upTo}
	case mark.Cursor != nil:
		run.CursorUpTo = mark.Cursor // no rows past the mark: the rows at it, if any arrived
	default:
		return nil // no mark and no rows with a cursor value
	}
	if job.Sink.Mode == connectors.Upsert {
		return nil // a row read twice is written once
	}
	run.CursorSkip = mark.Keys
	keys, err := s.cursorKeys(ctx, job, run)
	if err != nil {
		return fmt.Errorf("job %q: incremental.cursor %q: keys at %s: %w", job.Name, job.Incremental.Cursor, run.CursorUpTo, err)
	}
	run.CursorKeys = keys
	return nil
}

var errTooManyKeys = errors.New("too many keys")

// cursorKeys lists the keys of the rows at the window's upper end now:
// the only rows there the run copies, so that the next run knows which
// rows at its lower end to skip. When they cannot be listed (more than
// MaxMarkKeys, a NULL key, a source without a key) the run copies none of
// the rows at its upper end: they wait for a run whose window reaches past
// that value, and are neither lost nor doubled.
func (s *Steps) cursorKeys(ctx context.Context, job *Job, run *RunRecord) ([]connectors.Key, error) {
	v := run.CursorUpTo[0]
	sameEnds := run.CursorFrom != nil && connectors.CompareKeys(run.CursorFrom, run.CursorUpTo) == 0
	fallback := func(why string) []connectors.Key {
		s.logger().Warn("the rows at the greatest cursor value are left to a later run", "job", job.Name,
			"cursor", job.Incremental.Cursor, "value", run.CursorUpTo.String(), "why", why)
		if sameEnds {
			return run.CursorSkip // the mark and the keys copied at it stay as they were
		}
		return []connectors.Key{}
	}
	if len(job.Source.Key) == 0 {
		return fallback("the source has no key to tell its rows apart"), nil
	}
	cfg := sourceConfig(job, nil)
	cfg.Columns = job.Source.Key // the cursor is among the source's columns, not needed in the rows
	cfg.Cursor = &connectors.CursorWindow{Column: job.Incremental.Cursor, From: v, UpTo: v}
	src, err := connectors.OpenSource(ctx, job.Source.Type, cfg)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	schema, err := src.Schema(ctx)
	if err != nil {
		return nil, err
	}
	keyCols, err := connectors.ColumnIndexes(schema, job.Source.Key)
	if err != nil {
		return nil, err
	}
	var keys []connectors.Key
	if sameEnds {
		keys = append(keys, run.CursorSkip...)
	}
	read := func(r connectors.Range) error {
		return src.Read(ctx, r, func(b arrow.RecordBatch) error {
			for i := 0; i < int(b.NumRows()); i++ {
				keys = append(keys, connectors.KeyOf(b, keyCols, i))
			}
			if len(keys) > MaxMarkKeys {
				return errTooManyKeys
			}
			return nil
		})
	}
	switch err := read(connectors.Range{}); {
	case errors.Is(err, errTooManyKeys):
		return fallback(fmt.Sprintf("more than %d rows share it", MaxMarkKeys)), nil
	case err != nil:
		return nil, err
	}
	var nulls int
	if err := src.Read(ctx, connectors.Range{Nulls: true}, func(b arrow.RecordBatch) error {
		nulls += int(b.NumRows())
		return nil
	}); err != nil {
		return nil, err
	}
	if nulls > 0 {
		return fallback("a row there has a NULL key"), nil
	}
	sort.Slice(keys, func(i, j int) bool { return connectors.CompareKeys(keys[i], keys[j]) < 0 })
	out := keys[:0]
	for i, k := range keys {
		if i == 0 || connectors.CompareKeys(k, keys[i-1]) != 0 {
			out = append(out, k)
		}
	}
	if out == nil {
		out = []connectors.Key{}
	}
	return out, nil
}

// CursorFilter drops, for a sink that does not upsert, the rows at the
// ends of a run's window that are not the run's to copy: at CursorFrom
// the keys of CursorSkip, at CursorUpTo the keys not in CursorKeys. Nil
// when there is nothing to drop.
type CursorFilter struct {
	col        int
	keyCols    []int
	from, upTo any
	skip, keep map[string]bool
}

// NewCursorFilter returns the filter of run's window over batches of
// schema, or nil.
func NewCursorFilter(job *Job, run *RunRecord, schema *arrow.Schema) (*CursorFilter, error) {
	if job.Incremental == nil || job.Sink.Mode == connectors.Upsert || run.CursorUpTo == nil {
		return nil, nil
	}
	cols, err := connectors.ColumnIndexes(schema, []string{job.Incremental.Cursor})
	if err != nil {
		return nil, fmt.Errorf("incremental.cursor: %w", err)
	}
	keyCols, err := connectors.ColumnIndexes(schema, job.Source.Key)
	if err != nil {
		return nil, fmt.Errorf("source.key: %w", err)
	}
	f := &CursorFilter{col: cols[0], keyCols: keyCols, upTo: run.CursorUpTo[0], skip: keySet(run.CursorSkip), keep: keySet(run.CursorKeys)}
	if run.CursorFrom != nil {
		f.from = run.CursorFrom[0]
	}
	return f, nil
}

func keySet(keys []connectors.Key) map[string]bool {
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[keyID(k)] = true
	}
	return out
}

// keyID is a key's typed JSON form: equal keys, equal ids.
func keyID(k connectors.Key) string {
	b, _ := json.Marshal(k) // key values as KeyOf gives them: cannot fail
	return string(b)
}

func sameValue(a, b any) bool {
	return a != nil && b != nil && reflect.TypeOf(a) == reflect.TypeOf(b) && connectors.CompareValues(a, b) == 0
}

func (f *CursorFilter) drop(rec arrow.RecordBatch, i int) bool {
	v := connectors.ValueAt(rec.Column(f.col), i)
	atFrom, atUpTo := sameValue(v, f.from), sameValue(v, f.upTo)
	if !atFrom && !atUpTo {
		return false
	}
	id := keyID(connectors.KeyOf(rec, f.keyCols, i))
	return atFrom && f.skip[id] || atUpTo && !f.keep[id]
}

// Apply returns the rows of rec the run copies: rec itself (retained)
// when it keeps them all, a new batch otherwise, nil when it keeps none.
// The caller releases what it gets.
func (f *CursorFilter) Apply(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	n := int(rec.NumRows())
	var spans [][2]int // kept rows [from, to)
	for i := 0; i < n; i++ {
		if f.drop(rec, i) {
			continue
		}
		if len(spans) > 0 && spans[len(spans)-1][1] == i {
			spans[len(spans)-1][1] = i + 1
		} else {
			spans = append(spans, [2]int{i, i + 1})
		}
	}
	switch {
	case len(spans) == 0:
		return nil, nil
	case len(spans) == 1 && spans[0] == [2]int{0, n}:
		rec.Retain()
		return rec, nil
	}
	cols := make([]arrow.Array, rec.NumCols())
	var kept int64
	for _, sp := range spans {
		kept += int64(sp[1] - sp[0])
	}
	for c := range cols {
		parts := make([]arrow.Array, len(spans))
		for j, sp := range spans {
			parts[j] = array.NewSlice(rec.Column(c), int64(sp[0]), int64(sp[1]))
		}
		col, err := array.Concatenate(parts, memory.DefaultAllocator)
		for _, p := range parts {
			p.Release()
		}
		if err != nil {
			for _, done := range cols[:c] {
				done.Release()
			}
			return nil, fmt.Errorf("drop the rows at the window's ends: %w", err)
		}
		cols[c] = col
	}
	out := array.NewRecordBatch(rec.Schema(), cols, kept)
	for _, c := range cols {
		c.Release()
	}
	return out, nil
}

// DescribeWindow says in words which rows of the cursor run copies, for
// `datashift plan`; "" for a job that is not incremental.
func DescribeWindow(job *Job, run *RunRecord) string {
	if job.Incremental == nil {
		return ""
	}
	c := job.Incremental.Cursor
	if run.CursorUpTo == nil {
		return fmt.Sprintf("incremental window: no row has a %s value yet; the run copies none and sets no mark", c)
	}
	var b strings.Builder
	if run.CursorFrom == nil {
		fmt.Fprintf(&b, "incremental window: %s <= %s (no high-water mark yet: every row up to the greatest value now)", c, run.CursorUpTo)
	} else {
		fmt.Fprintf(&b, "incremental window: %s <= %s <= %s, both ends inclusive", run.CursorFrom, c, run.CursorUpTo)
		if job.Incremental.Lookback != "" {
			fmt.Fprintf(&b, " (from the high-water mark minus incremental.lookback %s)", job.Incremental.Lookback)
		} else {
			b.WriteString(" (from the high-water mark)")
		}
	}
	if job.Sink.Mode == connectors.Upsert {
		return b.String()
	}
	if len(run.CursorSkip) > 0 {
		fmt.Fprintf(&b, "; at %s, skips the %s earlier runs copied", run.CursorFrom, rows(len(run.CursorSkip)))
	}
	if run.CursorKeys != nil && len(run.CursorKeys) == 0 {
		fmt.Fprintf(&b, "; at %s, copies no row: they cannot be listed (see the log), so they wait for a run that sees a greater value", run.CursorUpTo)
	} else {
		fmt.Fprintf(&b, "; at %s, copies only the %s there now (rows arriving at that value later go to the next run)", run.CursorUpTo, rows(len(run.CursorKeys)))
	}
	return b.String()
}

func rows(n int) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}
