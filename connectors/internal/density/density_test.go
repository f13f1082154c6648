package density

import (
	"context"
	"math"
	"slices"
	"testing"
)

// keySet is a sorted set of keys with the Probe a store would answer.
type keySet struct {
	keys            []int64
	probes, batches int
}

func (k *keySet) probe(_ context.Context, starts []int64) ([][]int64, error) {
	k.batches++
	k.probes += len(starts)
	out := make([][]int64, len(starts))
	for i, s := range starts {
		at, _ := slices.BinarySearch(k.keys, s)
		out[i] = k.keys[at:min(at+PerProbe, len(k.keys))]
	}
	return out, nil
}

func keys(ranges ...[3]int64) []int64 { // {first, step, count}
	var out []int64
	for _, r := range ranges {
		for i := int64(0); i < r[2]; i++ {
			out = append(out, r[0]+i*r[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// halfAtRandom is about half of the keys 1..n, picked by a fixed hash.
func halfAtRandom(n int64) []int64 {
	var out []int64
	for k := int64(1); k <= n; k++ {
		if (uint64(k)*0x9E3779B97F4A7C15)>>63 == 1 {
			out = append(out, k)
		}
	}
	return out
}

// growing is n keys whose gaps shrink along the range: the density grows
// a little from each span to the next, never twice over.
func growing(n int64) []int64 {
	out := make([]int64, n)
	var k int64
	for i := range out {
		k += 1 + (n-int64(i))/5000
		out[i] = k
	}
	return out
}

// Keys at evenly spaced ranks of the estimate cut the real keys into parts
// of about equal size, however the keys cluster; the estimate of the total
// is close; the probes stay within the budget, in a few batches.
func TestMeasureBalancesSkewedKeys(t *testing.T) {
	for _, c := range []struct {
		name      string
		keys      []int64
		maxRatio  float64
		maxErrPct float64
	}{
		{"dense", keys([3]int64{1, 1, 200_000}), 1.05, 1},
		{"every 7th", keys([3]int64{100, 7, 150_000}), 1.05, 1},
		{"90% in 1% of the range", keys([3]int64{1, 1, 180_000}, [3]int64{10_000_000, 4_950, 20_000}), 1.5, 5},
		{"two far clusters", keys([3]int64{-1 << 40, 3, 50_000}, [3]int64{1 << 50, 1, 150_000}), 1.5, 5},
		{"half of them, at random", halfAtRandom(400_000), 1.1, 3},
		{"density growing along the range", growing(100_000), 1.1, 3},
		{"both ends of int64", keys([3]int64{math.MinInt64, 1, 30_000}, [3]int64{math.MaxInt64 - 29_999, 1, 30_000}), 1.5, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			const parts = 16
			ks := &keySet{keys: c.keys}
			spans, total, err := Measure(context.Background(), c.keys[0], c.keys[len(c.keys)-1], 10*parts, ks.probe)
			if err != nil {
				t.Fatal(err)
			}
			n := float64(len(c.keys))
			if errPct := math.Abs(total-n) / n * 100; errPct > c.maxErrPct {
				t.Errorf("estimated %.0f rows of %.0f: %.1f%% off, want at most %.0f%%", total, n, errPct, c.maxErrPct)
			}
			if ks.probes > MaxProbes || ks.batches > 40 {
				t.Errorf("%d probes in %d batches, want at most %d probes and a few batches", ks.probes, ks.batches, MaxProbes)
			}
			for i := 1; i < len(spans); i++ {
				if spans[i].Lo != spans[i-1].Hi+1 {
					t.Fatalf("spans %d and %d do not meet: %+v %+v", i-1, i, spans[i-1], spans[i])
				}
			}
			if spans[0].Lo != c.keys[0] || spans[len(spans)-1].Hi != c.keys[len(c.keys)-1] {
				t.Fatalf("spans cover [%d, %d], want [%d, %d]", spans[0].Lo, spans[len(spans)-1].Hi, c.keys[0], c.keys[len(c.keys)-1])
			}
			// Cut at the keys of ranks total·i/parts and count each part.
			var counts []int
			prev := 0
			for i := 1; i <= parts; i++ {
				end := len(c.keys)
				if i < parts {
					end, _ = slices.BinarySearch(c.keys, At(spans, total*float64(i)/parts))
				}
				counts = append(counts, end-prev)
				prev = end
			}
			ratio := float64(slices.Max(counts)) / (n / parts)
			t.Logf("%.0f rows estimated, %d spans, %d probes in %d batches; parts %v: largest %.2f× the mean", total, len(spans), ks.probes, ks.batches, counts, ratio)
			if ratio > c.maxRatio {
				t.Errorf("largest part %.2f× the mean, want at most %.2f×: %v", ratio, c.maxRatio, counts)
			}
		})
	}
}

// A range of fewer keys than a probe reads is counted exactly.
func TestMeasureSmallRangeIsExact(t *testing.T) {
	ks := &keySet{keys: []int64{5, 6, 9}}
	spans, total, err := Measure(context.Background(), 5, 9, 100, ks.probe)
	if err != nil {
		t.Fatal(err)
	}
	if total != 3 {
		t.Fatalf("total %v, want 3 (%+v)", total, spans)
	}
	for _, sp := range spans {
		if !sp.Exact {
			t.Errorf("span %+v not counted exactly", sp)
		}
	}
}

func TestCutAndAtAtTheEdges(t *testing.T) {
	whole := Span{Lo: math.MinInt64, Hi: math.MaxInt64}
	parts := Cut(whole, 8)
	if len(parts) != 8 || parts[0].Lo != math.MinInt64 || parts[7].Hi != math.MaxInt64 {
		t.Fatalf("cut of all int64: %+v", parts)
	}
	for i := 1; i < len(parts); i++ {
		if parts[i].Lo != parts[i-1].Hi+1 {
			t.Fatalf("parts %d and %d do not meet: %+v", i-1, i, parts)
		}
	}
	if got := Cut(Span{Lo: 3, Hi: 5}, 8); len(got) != 3 {
		t.Fatalf("cut of 3 keys in 8: %+v", got)
	}
	spans := []Span{{Lo: 0, Hi: 9, Rows: 10}, {Lo: 10, Hi: 1009, Rows: 10}}
	for _, c := range []struct {
		rank float64
		want int64
	}{{0, 0}, {9.5, 9}, {10, 10}, {15, 510}, {19.99, 1008}, {25, 1009}} {
		if got := At(spans, c.rank); got != c.want {
			t.Errorf("At(%v) = %d, want %d", c.rank, got, c.want)
		}
	}
}
