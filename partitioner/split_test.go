package partitioner_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/partitioner"
)

func seq(lo, hi int64) []connectors.Key { // [lo, hi)
	out := make([]connectors.Key, 0, hi-lo)
	for v := lo; v < hi; v++ {
		out = append(out, ik(v))
	}
	return out
}

func repeat(k connectors.Key, n int) []connectors.Key {
	out := make([]connectors.Key, n)
	for i := range out {
		out[i] = k
	}
	return out
}

var (
	idKey     = []partitioner.KeyColumn{{Name: "id"}}
	idNullKey = []partitioner.KeyColumn{{Name: "id", Nullable: true}}
)

func TestSplit(t *testing.T) {
	heavy := append(seq(0, 50), repeat(ik(50), 500)...)
	heavy = append(heavy, seq(51, 100)...)
	tests := []struct {
		name   string
		in     partitioner.Input
		scheme string
		// splits are the Lo of every key range after the first; nil: not checked.
		splits []int64
		parts  int // all partitions, the NULL one included
		est    []int64
		reason string
	}{
		{
			name:   "empty table",
			in:     partitioner.Input{Key: idKey, TargetRows: 10, MaxPartitions: 8},
			scheme: "key-range", parts: 1, est: []int64{0}, reason: "table is empty: one partition",
		},
		{
			name:   "empty table, nullable key still gets a NULL partition",
			in:     partitioner.Input{Key: idNullKey, TargetRows: 10, MaxPartitions: 8},
			scheme: "key-range", parts: 2, reason: "plus one partition for NULL keys",
		},
		{
			name:   "all keys NULL",
			in:     partitioner.Input{Key: idNullKey, Stats: connectors.Stats{NullRows: 100}, TargetRows: 10, MaxPartitions: 8},
			scheme: "key-range", parts: 2, est: []int64{0, 100}, reason: "no non-NULL keys",
		},
		{
			name: "one row",
			in: partitioner.Input{Key: idKey, TargetRows: 1, MaxPartitions: 8,
				Stats: connectors.Stats{Rows: 1, Min: ik(5), Max: ik(5), Sample: []connectors.Key{ik(5)}, Exact: true}},
			scheme: "key-range", parts: 1, est: []int64{1}, reason: "one key range",
		},
		{
			name: "uniform keys split at exact quantiles",
			in: partitioner.Input{Key: idKey, TargetRows: 100, MaxPartitions: 100,
				Stats: connectors.Stats{Rows: 1000, Min: ik(0), Max: ik(999), Sample: seq(0, 1000), Exact: true, Method: "full scan"}},
			scheme: "key-range", parts: 10, splits: []int64{100, 200, 300, 400, 500, 600, 700, 800, 900},
			est:    []int64{100, 100, 100, 100, 100, 100, 100, 100, 100, 100},
			reason: "10 key ranges from 1000 sampled keys (full scan); ~1000 rows / target 100 rows",
		},
		{
			name: "estimates scale a partial sample to the row estimate",
			in: partitioner.Input{Key: idKey, TargetRows: 250_000, MaxPartitions: 100,
				Stats: connectors.Stats{Rows: 1_000_000, Min: ik(0), Max: ik(999_999), Sample: seq(0, 1000)}},
			scheme: "key-range", parts: 4, splits: []int64{250, 500, 750},
			est: []int64{250_000, 250_000, 250_000, 250_000},
		},
		{
			name: "max partitions caps the count",
			in: partitioner.Input{Key: idKey, TargetRows: 100, MaxPartitions: 4,
				Stats: connectors.Stats{Rows: 1000, Min: ik(0), Max: ik(999), Sample: seq(0, 1000)}},
			scheme: "key-range", parts: 4, splits: []int64{250, 500, 750}, reason: "wants 10, capped at 4",
		},
		{
			name: "NULL partition counts against max",
			in: partitioner.Input{Key: idNullKey, TargetRows: 100, MaxPartitions: 4,
				Stats: connectors.Stats{Rows: 1000, NullRows: 7, Min: ik(0), Max: ik(999), Sample: seq(0, 1000)}},
			scheme: "key-range", parts: 4, est: []int64{333, 333, 334, 7},
		},
		{
			name: "max 1 with a nullable key: one key range and the NULL partition",
			in: partitioner.Input{Key: idNullKey, TargetRows: 100, MaxPartitions: 1,
				Stats: connectors.Stats{Rows: 1000, Min: ik(0), Max: ik(999), Sample: seq(0, 1000)}},
			scheme: "key-range", parts: 2,
		},
		{
			name: "bytes target gives more partitions than rows target",
			in: partitioner.Input{Key: idKey, TargetRows: 500, TargetBytes: 100_000, MaxPartitions: 100,
				Stats: connectors.Stats{Rows: 1000, Bytes: 1_000_000, Min: ik(0), Max: ik(999), Sample: seq(0, 1000)}},
			scheme: "key-range", parts: 10, reason: "~1000000 bytes / target 100000 bytes",
		},
		{
			name: "no target: one partition per free slot",
			in: partitioner.Input{Key: idKey, MaxPartitions: 5,
				Stats: connectors.Stats{Rows: 1000, Min: ik(0), Max: ik(999), Sample: seq(0, 1000)}},
			scheme: "key-range", parts: 5, splits: []int64{200, 400, 600, 800}, reason: "no target size",
		},
		{
			name: "one distinct sampled value caps the count",
			in: partitioner.Input{Key: idKey, TargetRows: 1000, MaxPartitions: 64,
				Stats: connectors.Stats{Rows: 1_000_000, Min: ik(7), Max: ik(7), Sample: repeat(ik(7), 1000)}},
			scheme: "key-range", parts: 1, reason: "one key range",
		},
		{
			name: "few distinct sampled values cap the count",
			in: partitioner.Input{Key: idKey, TargetRows: 1000, MaxPartitions: 64,
				Stats: connectors.Stats{Rows: 1_000_000, Min: ik(1), Max: ik(3),
					Sample: append(append(repeat(ik(1), 10), repeat(ik(2), 10)...), repeat(ik(3), 10)...)}},
			scheme: "key-range", parts: 3, splits: []int64{2, 3}, reason: "only 3 distinct sampled keys",
		},
		{
			name: "a heavy key value gets a partition of its own and is named",
			in: partitioner.Input{Key: idKey, TargetRows: 60, MaxPartitions: 64,
				Stats: connectors.Stats{Rows: int64(len(heavy)), Min: ik(0), Max: ik(99), Sample: heavy, Exact: true}},
			scheme: "key-range", reason: "key 50 holds ~83% of the sampled rows and cannot be split below one value",
		},
		{
			name: "no sample: even split between int64 extremes",
			in: partitioner.Input{Key: idKey, TargetRows: 10, MaxPartitions: 4,
				Stats: connectors.Stats{Rows: 1000, Min: ik(math.MinInt64), Max: ik(math.MaxInt64)}},
			scheme: "key-range", parts: 4, // (2^64-1)·i/4 truncated, from MinInt64
			splits: []int64{-4611686018427387905, -1, 4611686018427387903},
			reason: "equal width",
		},
		{
			name: "no sample, text key: one range",
			in: partitioner.Input{Key: []partitioner.KeyColumn{{Name: "name"}}, TargetRows: 10, MaxPartitions: 4,
				Stats: connectors.Stats{Rows: 1000, Min: connectors.Key{"a"}, Max: connectors.Key{"z"}}},
			scheme: "key-range", parts: 1, reason: "string keys cannot be split by value",
		},
		{
			name:   "no key, pages",
			in:     partitioner.Input{TargetRows: 100_000, MaxPartitions: 64, Stats: connectors.Stats{Rows: 1_000_000, PageCount: 1000, Method: "ctid"}},
			scheme: "pages", parts: 10, reason: "no usable key: 10 partitions of ~100 pages each (1000 pages, ctid)",
		},
		{
			name:   "no key, fewer pages than wanted partitions",
			in:     partitioner.Input{TargetRows: 1, MaxPartitions: 64, Stats: connectors.Stats{Rows: 1000, PageCount: 3}},
			scheme: "pages", parts: 3, est: []int64{333, 334, 333},
		},
		{
			name:   "no key, no pages",
			in:     partitioner.Input{TargetRows: 10, MaxPartitions: 64, Stats: connectors.Stats{Rows: 1000}},
			scheme: "single", parts: 1, est: []int64{1000}, reason: "no usable key and no page count: one partition",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := partitioner.Split(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("%v\n%s", err, describe(p))
			}
			if p.Scheme != tt.scheme {
				t.Errorf("scheme %q, want %q", p.Scheme, tt.scheme)
			}
			if tt.parts != 0 && len(p.Partitions) != tt.parts {
				t.Errorf("%d partitions, want %d\n%s", len(p.Partitions), tt.parts, describe(p))
			}
			if !strings.Contains(p.Reason, tt.reason) {
				t.Errorf("reason %q does not say %q", p.Reason, tt.reason)
			}
			if tt.splits != nil {
				kr := keyRanges(p)
				var got []int64
				for _, pt := range kr[1:] {
					got = append(got, pt.Range.Lo[0].(int64))
				}
				if !equal(got, tt.splits) {
					t.Errorf("splits %v, want %v", got, tt.splits)
				}
			}
			if tt.est != nil {
				var got []int64
				for _, pt := range p.Partitions {
					got = append(got, pt.EstRows)
				}
				if !equal(got, tt.est) {
					t.Errorf("estimated rows %v, want %v", got, tt.est)
				}
			}
			if p.Scheme == "pages" {
				last := p.Partitions[len(p.Partitions)-1].Range.Pages
				if last.Hi != 0 {
					t.Errorf("last page range %v is bounded", last)
				}
			}
		})
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSplitHeavyKeyAlone(t *testing.T) {
	// 50 light keys, one key with 500 rows, 49 light keys: the heavy key
	// must be a range of its own and the light ones share the other ranges.
	sample := append(seq(0, 50), repeat(ik(50), 500)...)
	sample = append(sample, seq(51, 100)...)
	p, err := partitioner.Split(partitioner.Input{Key: idKey, TargetRows: 60, MaxPartitions: 64,
		Stats: connectors.Stats{Rows: int64(len(sample)), Min: ik(0), Max: ik(99), Sample: sample, Exact: true}})
	if err != nil {
		t.Fatal(err)
	}
	checkCovers(t, p, sample)
	var heavy *partitioner.Partition
	for i, pt := range p.Partitions {
		if pt.Range.Contains(ik(50)) {
			heavy = &p.Partitions[i]
		}
	}
	if heavy.EstRows != 500 || !heavy.Range.Contains(ik(50)) || heavy.Range.Contains(ik(49)) || heavy.Range.Contains(ik(51)) {
		t.Errorf("heavy key's partition %s estimates %d rows, want [50, 51) with 500\n%s", heavy.Range, heavy.EstRows, describe(p))
	}
	for _, pt := range p.Partitions {
		if pt.ID != heavy.ID && pt.EstRows > 60 {
			t.Errorf("partition %s %s holds %d light rows, target 60\n%s", pt.ID, pt.Range, pt.EstRows, describe(p))
		}
	}
}

func TestSplitRejects(t *testing.T) {
	ok := connectors.Stats{Rows: 10, Min: ik(0), Max: ik(9), Sample: seq(0, 10)}
	tests := []struct {
		name string
		in   partitioner.Input
		says string
	}{
		{"no slots", partitioner.Input{Key: idKey, TargetRows: 1, Stats: ok}, "max partitions is 0"},
		{"negative target", partitioner.Input{Key: idKey, TargetRows: -1, MaxPartitions: 2, Stats: ok}, "negative target"},
		{"repeated key column", partitioner.Input{Key: []partitioner.KeyColumn{{Name: "a"}, {Name: "a"}}, MaxPartitions: 2}, "repeated"},
		{"unsorted sample", partitioner.Input{Key: idKey, MaxPartitions: 2,
			Stats: connectors.Stats{Rows: 3, Min: ik(0), Max: ik(2), Sample: []connectors.Key{ik(0), ik(2), ik(1)}}}, "not in key order at 2"},
		{"text sample in a collation's order", partitioner.Input{Key: []partitioner.KeyColumn{{Name: "s"}}, MaxPartitions: 2,
			Stats: connectors.Stats{Rows: 2, Min: connectors.Key{"B"}, Max: connectors.Key{"a"}, Sample: []connectors.Key{{"a"}, {"B"}}}}, "not in key order"},
		{"NULL in sample", partitioner.Input{Key: idNullKey, MaxPartitions: 2,
			Stats: connectors.Stats{Rows: 2, Min: ik(0), Max: ik(1), Sample: []connectors.Key{{nil}, ik(1)}}}, "has a NULL"},
		{"mixed types in a column", partitioner.Input{Key: idKey, MaxPartitions: 2,
			Stats: connectors.Stats{Rows: 2, Min: ik(0), Max: ik(1), Sample: []connectors.Key{ik(0), {uint64(1)}}}}, "column \"id\" is uint64"},
		{"wrong key length", partitioner.Input{Key: idKey, MaxPartitions: 2,
			Stats: connectors.Stats{Rows: 2, Min: ik(0), Max: ik(1), Sample: []connectors.Key{ik(0, 1)}}}, "has 2 values"},
		{"NaN", partitioner.Input{Key: idKey, MaxPartitions: 2,
			Stats: connectors.Stats{Rows: 2, Min: connectors.Key{0.0}, Max: connectors.Key{1.0}, Sample: []connectors.Key{{math.NaN()}}}}, "unsupported key type"},
		{"unsupported type", partitioner.Input{Key: idKey, MaxPartitions: 2,
			Stats: connectors.Stats{Rows: 1, Min: connectors.Key{time.Second}, Max: connectors.Key{time.Second}}}, "unsupported key type"},
		{"min above max", partitioner.Input{Key: idKey, MaxPartitions: 2,
			Stats: connectors.Stats{Rows: 2, Min: ik(5), Max: ik(1)}}, "above max"},
		{"only min", partitioner.Input{Key: idKey, MaxPartitions: 2, Stats: connectors.Stats{Rows: 2, Min: ik(5)}}, "only one of min and max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := partitioner.Split(tt.in)
			if !errors.Is(err, partitioner.ErrInvalidInput) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %v, want ErrInvalidInput saying %q", err, tt.says)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	r := func(lo, hi connectors.Key) connectors.Range { return connectors.Range{Lo: lo, Hi: hi} }
	parts := func(rs ...connectors.Range) []partitioner.Partition {
		out := make([]partitioner.Partition, len(rs))
		for i, x := range rs {
			out[i] = partitioner.Partition{ID: "p" + string(rune('a'+i)), Range: x}
		}
		return out
	}
	pages := func(lo, hi int64) connectors.Range {
		return connectors.Range{Pages: &connectors.PageRange{Lo: lo, Hi: hi}}
	}
	nulls := connectors.Range{Nulls: true}
	good := partitioner.Plan{Scheme: "key-range", Key: idNullKey, Partitions: parts(r(nil, ik(5)), r(ik(5), nil), nulls)}
	if err := good.Validate(); err != nil {
		t.Fatalf("good plan: %v", err)
	}
	tests := []struct {
		name string
		plan partitioner.Plan
		says string
	}{
		{"no partitions", partitioner.Plan{Scheme: "single"}, "no partitions"},
		{"unknown scheme", partitioner.Plan{Scheme: "hash", Partitions: parts(r(nil, nil))}, "unknown scheme"},
		{"gap", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: parts(r(nil, ik(5)), r(ik(6), nil))}, "gap or overlap"},
		{"overlap", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: parts(r(nil, ik(6)), r(ik(5), nil))}, "gap or overlap"},
		{"first bounded", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: parts(r(ik(0), ik(5)), r(ik(5), nil))}, "bounded below"},
		{"last bounded", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: parts(r(nil, ik(5)), r(ik(5), ik(9)))}, "bounded above"},
		{"empty range", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: parts(r(nil, ik(5)), r(ik(5), ik(5)), r(ik(5), nil))}, "empty or inverted"},
		{"inverted", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: parts(r(nil, ik(5)), r(ik(5), ik(3)), r(ik(3), nil))}, "empty or inverted"},
		{"unbounded middle", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: parts(r(nil, nil), r(nil, nil))}, "unbounded range in the middle"},
		{"nullable, no NULL partition", partitioner.Plan{Scheme: "key-range", Key: idNullKey, Partitions: parts(r(nil, nil))}, "no partition holds NULL keys"},
		{"two NULL partitions", partitioner.Plan{Scheme: "key-range", Key: idNullKey, Partitions: parts(r(nil, nil), nulls, nulls)}, "2 NULL-key partitions"},
		{"only NULL partition", partitioner.Plan{Scheme: "key-range", Key: idNullKey, Partitions: parts(nulls)}, "no partition for non-NULL keys"},
		{"NULL in a bound", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: parts(r(nil, connectors.Key{nil}), r(connectors.Key{nil}, nil))}, "NULL or not orderable"},
		{"mixed bound types", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: parts(r(nil, ik(1)), r(ik(1), connectors.Key{"x"}), r(connectors.Key{"x"}, nil))}, "column \"id\" is string"},
		{"bound of wrong length", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: parts(r(nil, ik(1, 2)), r(ik(1, 2), nil))}, "has 2 values"},
		{"single with two ranges", partitioner.Plan{Scheme: "single", Key: idKey, Partitions: parts(r(nil, ik(1)), r(ik(1), nil))}, "single plan with 2"},
		{"resumed range", partitioner.Plan{Scheme: "single", Partitions: parts(connectors.Range{After: ik(3)})}, "resumed"},
		{"repeated ID", partitioner.Plan{Scheme: "key-range", Key: idKey, Partitions: []partitioner.Partition{{ID: "a", Range: r(nil, ik(1))}, {ID: "a", Range: r(ik(1), nil)}}}, "repeated"},
		{"pages not from 0", partitioner.Plan{Scheme: "pages", Partitions: parts(pages(1, 0))}, "starts at page 1"},
		{"pages gap", partitioner.Plan{Scheme: "pages", Partitions: parts(pages(0, 5), pages(6, 0))}, "starts at page 6, want 5"},
		{"pages last bounded", partitioner.Plan{Scheme: "pages", Partitions: parts(pages(0, 5), pages(5, 9))}, "want unbounded"},
		{"pages unbounded early", partitioner.Plan{Scheme: "pages", Partitions: parts(pages(0, 0), pages(0, 0))}, "empty or unbounded"},
		{"key range in a pages plan", partitioner.Plan{Scheme: "pages", Partitions: parts(r(nil, nil))}, "in a pages plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plan.Validate()
			if !errors.Is(err, partitioner.ErrInvalidPlan) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %v, want ErrInvalidPlan saying %q", err, tt.says)
			}
		})
	}
}

// The engine stores plans in ZooKeeper as JSON: a plan read back must still
// validate and mean the same ranges.
func TestPlanJSONRoundTrip(t *testing.T) {
	u := func(b byte) connectors.UUID { var x connectors.UUID; x[0] = b; return x }
	ts := time.Date(2024, 2, 29, 12, 0, 0, 123456000, time.UTC)
	sample := []connectors.Key{
		{int64(1), "Zebra", u(1), ts},
		{int64(1), "apple", u(2), ts},
		{int64(2), "é", u(3), ts.Add(time.Hour)},
		{int64(3), "日本", u(4), ts.Add(2 * time.Hour)},
	}
	key := []partitioner.KeyColumn{{Name: "a"}, {Name: "b", Nullable: true}, {Name: "c"}, {Name: "d"}}
	p, err := partitioner.Split(partitioner.Input{Key: key, TargetRows: 1, MaxPartitions: 10,
		Stats: connectors.Stats{Rows: 4, Min: sample[0], Max: sample[3], Sample: sample, Exact: true}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back partitioner.Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("plan read back: %v\n%s", err, b)
	}
	if len(back.Partitions) != 5 || back.Reason != p.Reason || back.Scheme != p.Scheme {
		t.Fatalf("plan read back differs:\n%s\n%s", describe(p), describe(back))
	}
	for i, pt := range p.Partitions {
		q := back.Partitions[i]
		if q.ID != pt.ID || q.EstRows != pt.EstRows || q.Range.String() != pt.Range.String() {
			t.Errorf("partition %d: %s %s %d, read back %s %s %d", i, pt.ID, pt.Range, pt.EstRows, q.ID, q.Range, q.EstRows)
		}
	}
	checkCovers(t, back, append(sample, connectors.Key{int64(1), nil, u(0), ts}))
}
