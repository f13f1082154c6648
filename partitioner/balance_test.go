package partitioner_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/partitioner"
)

// Skewed int64 key sets. Each returns n keys, in no order.
var skews = []struct {
	name string
	gen  func(r *rand.Rand, n int) []int64
	// heavy: single key values may hold more than a partition's share.
	heavy bool
	// million: also planned from a 1% sample of a million keys.
	million bool
}{
	{name: "uniform", gen: func(r *rand.Rand, n int) []int64 {
		return fill(n, func() int64 { return r.Int64N(1 << 40) })
	}},
	{name: "90% of rows in 1% of the range", million: true, gen: func(r *rand.Rand, n int) []int64 {
		return fill(n, func() int64 {
			if r.IntN(10) < 9 {
				return r.Int64N(10_000_000)
			}
			return 10_000_000 + r.Int64N(990_000_000)
		})
	}},
	{name: "Zipf-like density, nearly unique keys", million: true, gen: func(r *rand.Rand, n int) []int64 {
		z := rand.NewZipf(r, 1.2, 1, 100_000)
		return fill(n, func() int64 { return int64(z.Uint64())*1_000_000 + r.Int64N(1_000_000) })
	}},
	{name: "two clusters at the int64 extremes", gen: func(r *rand.Rand, n int) []int64 {
		return fill(n, func() int64 {
			if r.IntN(2) == 0 {
				return math.MinInt64 + r.Int64N(1000)
			}
			return math.MaxInt64 - r.Int64N(1_000_000)
		})
	}},
	{name: "Zipf values, mild duplicates", million: true, gen: func(r *rand.Rand, n int) []int64 {
		z := rand.NewZipf(r, 1.1, 10, 1_000_000)
		return fill(n, func() int64 { return int64(z.Uint64()) })
	}},
	{name: "Zipf values, one key holds ~38% of rows", heavy: true, million: true, gen: func(r *rand.Rand, n int) []int64 {
		z := rand.NewZipf(r, 1.5, 1, 1_000_000)
		return fill(n, func() int64 { return int64(z.Uint64()) })
	}},
}

func fill(n int, f func() int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = f()
	}
	return out
}

// planInts plans a single int64 key from a sorted sample and counts the real
// rows of each key range in the sorted key set.
func planInts(t *testing.T, sorted, sample []int64, target int64, exact bool) (partitioner.Plan, []int64, [][2]int) {
	t.Helper()
	st := connectors.Stats{Rows: int64(len(sorted)), Min: ik(sorted[0]), Max: ik(sorted[len(sorted)-1]), Exact: exact}
	for _, v := range sample {
		st.Sample = append(st.Sample, ik(v))
	}
	p, err := partitioner.Split(partitioner.Input{Key: idKey, Stats: st, TargetRows: target, MaxPartitions: 256})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	at := func(k connectors.Key) int {
		if k == nil {
			return len(sorted)
		}
		v := k[0].(int64)
		return sort.Search(len(sorted), func(i int) bool { return sorted[i] >= v })
	}
	counts := make([]int64, len(p.Partitions))
	spans := make([][2]int, len(p.Partitions))
	for i, pt := range p.Partitions {
		lo := 0
		if pt.Range.Lo != nil {
			lo = at(pt.Range.Lo)
		}
		spans[i] = [2]int{lo, at(pt.Range.Hi)}
		counts[i] = int64(spans[i][1] - lo)
	}
	return p, counts, spans
}

// checkBalance fails t when a partition holds more than 1.5× the mean,
// unless it is one key value of a key set with heavy values: a range bound
// is a key value, so one value's rows cannot be split.
func checkBalance(t *testing.T, p partitioner.Plan, sorted []int64, counts []int64, spans [][2]int, heavy bool) {
	t.Helper()
	mean := float64(len(sorted)) / float64(len(counts))
	for i, pt := range p.Partitions {
		if float64(counts[i]) <= 1.5*mean {
			continue
		}
		lo, hi := spans[i][0], spans[i][1]
		if !heavy || sorted[lo] != sorted[hi-1] {
			t.Errorf("partition %s %s holds %d rows, %.2f× the mean\n%s", pt.ID, pt.Range, counts[i], float64(counts[i])/mean, describe(p))
		}
		if !strings.Contains(p.Reason, "cannot be split below one value") {
			t.Errorf("reason %q does not say why partition %s is big", p.Reason, pt.ID)
		}
	}
}

func maxOverMean(counts []int64) float64 {
	var sum int64
	for _, c := range counts {
		sum += c
	}
	return float64(slices.Max(counts)) / (float64(sum) / float64(len(counts)))
}

// With the whole key set as the sample, the largest partition holds at most
// 1.5× the mean — except a partition of one key value, which cannot be split.
func TestBalanceExactSample(t *testing.T) {
	const n, target = 50_000, 50_000 / 16
	for _, sk := range skews {
		t.Run(sk.name, func(t *testing.T) {
			r := newRand(t)
			keys := sk.gen(r, n)
			slices.Sort(keys)
			p, counts, spans := planInts(t, keys, keys, target, true)
			if len(counts) != 16 && !sk.heavy {
				t.Errorf("%d partitions, want 16\n%s", len(counts), describe(p))
			}
			for i, pt := range p.Partitions {
				if pt.EstRows != counts[i] {
					t.Errorf("partition %s estimates %d rows of an exact sample, holds %d", pt.ID, pt.EstRows, counts[i])
				}
			}
			checkBalance(t, p, keys, counts, spans, sk.heavy)
			t.Logf("%d partitions, max/mean %.3f", len(counts), maxOverMean(counts))
		})
	}
}

// A 1% random sample of a million skewed keys still balances the real
// partitions: the sample is ~10,000 keys, ~600 per partition of 16 and ~150
// per partition of 64, so quantile error stays within a few tens of percent.
func TestBalanceOnePercentSample(t *testing.T) {
	const n = 1_000_000
	for _, sk := range skews {
		if !sk.million {
			continue
		}
		t.Run(sk.name, func(t *testing.T) {
			r := newRand(t)
			keys := sk.gen(r, n)
			slices.Sort(keys)
			sample := make([]int64, n/100) // drawn with replacement: as good, and cheaper
			for i := range sample {
				sample[i] = keys[r.IntN(n)]
			}
			slices.Sort(sample)
			for _, parts := range []int64{16, 64} {
				p, counts, spans := planInts(t, keys, sample, n/parts, false)
				t.Logf("%s: %d-key sample, %d partitions: max/mean %.3f", sk.name, len(sample), len(counts), maxOverMean(counts))
				if int64(len(counts)) != parts && !sk.heavy {
					t.Errorf("%d partitions, want %d\n%s", len(counts), parts, describe(p))
				}
				checkBalance(t, p, keys, counts, spans, sk.heavy)
			}
		})
	}
}
