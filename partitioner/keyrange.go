package partitioner

import (
	"fmt"
	"math"
	"math/big"
	"sort"
	"time"

	"github.com/datashift/datashift/connectors"
)

func splitKeyed(in Input) Plan {
	st := in.Stats
	nulls := nullable(in.Key)
	slots := int64(in.MaxPartitions)
	if nulls && slots > 1 {
		slots-- // the NULL-key partition takes a slot
	}
	rows := max(st.Rows, int64(len(st.Sample)), 0)

	var splits []connectors.Key
	var est []int64
	var reason string
	switch {
	case st.Min == nil && len(st.Sample) == 0 && rows == 0:
		reason = "table is empty: one partition"
		if st.NullRows > 0 {
			reason = "no non-NULL keys: one key range"
		}
	default:
		n, why := count(in, rows, slots)
		switch {
		case n == 1:
			reason = fmt.Sprintf("one key range (%s)", why)
		case len(st.Sample) > 0:
			splits, est, reason = fromSample(st, rows, n, why)
		default:
			splits, est, reason = fromMinMax(st, rows, n, why)
		}
	}

	ranges := make([]connectors.Range, 0, len(splits)+2)
	var lo connectors.Key
	for _, s := range splits {
		ranges = append(ranges, connectors.Range{Lo: lo, Hi: s})
		lo = s
	}
	ranges = append(ranges, connectors.Range{Lo: lo})
	if est == nil {
		est = []int64{rows}
	}
	if nulls {
		ranges = append(ranges, connectors.Range{Nulls: true})
		est = append(est, max(st.NullRows, 0))
		reason += "; plus one partition for NULL keys"
	}
	return Plan{Scheme: SchemeKeyRange, Reason: reason, Key: in.Key, Partitions: number(ranges, est)}
}

// fromSample picks split points among the sampled keys.
func fromSample(st connectors.Stats, rows, n int64, why string) ([]connectors.Key, []int64, string) {
	sample := st.Sample
	m := len(sample)
	cuts, heavy, distinct := cutPoints(sample, n)

	splits := make([]connectors.Key, len(cuts))
	est := make([]int64, 0, len(cuts)+1)
	prev := 0
	for i, c := range cuts {
		splits[i] = sample[c]
		est = append(est, share(rows, int64(prev), int64(c), int64(m)))
		prev = c
	}
	est = append(est, share(rows, int64(prev), int64(m), int64(m)))

	method := ""
	if st.Method != "" {
		method = " (" + st.Method + ")"
	}
	reason := fmt.Sprintf("%d key ranges from %d sampled keys%s; %s", len(splits)+1, m, method, why)
	if len(splits) == 0 {
		reason = fmt.Sprintf("one key range from %d sampled keys%s; %s", m, method, why)
	}
	if int64(len(splits)+1) < n && distinct < int(n) {
		reason += fmt.Sprintf("; only %d distinct sampled keys", distinct)
	}
	// A value holding more than a fair share of the sample cannot be split:
	// a range boundary is a key value, so all its rows land in one range.
	if float64(heavy.count) > float64(m)/float64(n) && n > 1 {
		reason += fmt.Sprintf("; key %s holds ~%.0f%% of the sampled rows and cannot be split below one value, so its partition is bigger than the target",
			sample[heavy.at], 100*float64(heavy.count)/float64(m))
	}
	return splits, est, reason
}

type run struct{ at, count int }

// cutPoints returns up to n-1 indexes into the sorted sample at which to cut:
// a cut at i makes sample[i] a split point, so it is only placed where a new
// key value starts (strictly increasing split points, no empty range).
//
// It walks left to right, aiming each cut at an equal share of what remains.
// The cut must land on a value boundary, so of the boundaries just below and
// just above the aim it takes the one that leaves the smaller of the two
// sizes that matter: this partition, and the mean of the partitions still to
// come. Re-aiming after every cut is what keeps a skewed sample balanced: a
// heavy run of one value becomes a partition of its own and the rest share
// the remaining cuts, instead of fixed quantiles i·m/n collapsing onto it.
func cutPoints(sample []connectors.Key, n int64) (cuts []int, heaviest run, distinct int) {
	m := len(sample)
	var bounds []int // i such that sample[i] differs from sample[i-1]
	start := 0
	for i := 1; i <= m; i++ {
		if i == m || connectors.CompareKeys(sample[i-1], sample[i]) != 0 {
			if i-start > heaviest.count {
				heaviest = run{at: start, count: i - start}
			}
			if i < m {
				bounds = append(bounds, i)
			}
			start = i
		}
	}
	distinct = len(bounds) + 1
	prev := 0
	for k := n; k > 1; k-- {
		ideal := float64(prev) + float64(m-prev)/float64(k)
		j := sort.Search(len(bounds), func(j int) bool { return float64(bounds[j]) >= ideal })
		cost := func(c int) float64 { return max(float64(c-prev), float64(m-c)/float64(k-1)) }
		best := -1
		if j < len(bounds) {
			best = bounds[j] // > prev, since ideal > prev
		}
		if j > 0 && bounds[j-1] > prev && (best < 0 || cost(bounds[j-1]) <= cost(best)) {
			best = bounds[j-1]
		}
		if best < 0 {
			break
		}
		cuts = append(cuts, best)
		prev = best
	}
	return cuts, heaviest, distinct
}

// fromMinMax splits [Min, Max] evenly when there is no sample: only for a
// single-column key whose type has arithmetic. Anything else stays one range.
func fromMinMax(st connectors.Stats, rows, n int64, why string) ([]connectors.Key, []int64, string) {
	if st.Min == nil || len(st.Min) != 1 {
		return nil, nil, fmt.Sprintf("one key range: no sampled keys to split by (%s)", why)
	}
	lo, hi := st.Min[0], st.Max[0]
	var splits []connectors.Key
	last := lo
	for i := int64(1); i < n; i++ {
		v, ok := interpolate(lo, hi, i, n)
		if !ok {
			return nil, nil, fmt.Sprintf("one key range: no sampled keys, and %T keys cannot be split by value (%s)", lo, why)
		}
		if connectors.CompareValues(v, last) > 0 {
			splits = append(splits, connectors.Key{v})
			last = v
		}
	}
	est := make([]int64, len(splits)+1)
	for i := range est {
		est[i] = share(rows, int64(i), int64(i+1), int64(len(est)))
	}
	reason := fmt.Sprintf("%d key ranges of equal width between min %s and max %s (no sample: skewed keys may be unbalanced); %s",
		len(splits)+1, st.Min, st.Max, why)
	return splits, est, reason
}

// interpolate returns the value i/n of the way from lo to hi.
func interpolate(lo, hi any, i, n int64) (any, bool) {
	if l, ok := lo.(float64); ok {
		h := hi.(float64)
		if math.IsInf(l, 0) || math.IsInf(h, 0) {
			return nil, false
		}
		f := float64(i) / float64(n)
		return l*(1-f) + h*f, true // two finite terms: no overflow of h-l
	}
	toBig := func(v any) (*big.Int, bool) {
		switch x := v.(type) {
		case int64:
			return big.NewInt(x), true
		case uint64:
			return new(big.Int).SetUint64(x), true
		case time.Time:
			return big.NewInt(x.UnixMicro()), true
		case connectors.UUID:
			return new(big.Int).SetBytes(x[:]), true
		}
		return nil, false
	}
	l, ok := toBig(lo)
	if !ok {
		return nil, false
	}
	h, _ := toBig(hi)
	d := new(big.Int).Sub(h, l)
	d.Mul(d, big.NewInt(i))
	d.Quo(d, big.NewInt(n))
	d.Add(d, l)
	switch lo.(type) {
	case int64:
		return d.Int64(), true
	case uint64:
		return d.Uint64(), true
	case time.Time:
		return time.UnixMicro(d.Int64()).UTC(), true
	default:
		var u connectors.UUID
		d.FillBytes(u[:])
		return u, true
	}
}
