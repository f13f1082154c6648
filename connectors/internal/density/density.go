// Package density estimates how the rows of a table spread over an integer
// key (a SQLite rowid, a MariaDB integer primary key) from index probes
// that read a few keys each, never the whole index: planning then costs
// the same for a thousand rows as for a billion.
//
// A probe at the start of a span reads the next PerProbe keys. If they run
// past the end of the span, its rows are counted exactly; otherwise their
// spread gives the density of the rest of it. The spans holding the most
// rows are cut in eight and probed again, round by round, so that sparse
// or clustered keys (90% of the rows in 1% of the range) are measured, not
// assumed dense. Only spans whose density differs from a neighbour's are
// refined: a uniform table costs one round. The price is a blind spot: a
// dense cluster inside one span of sparse keys, past what its probe reads,
// is taken for sparse keys; a store can compare the total with its own
// estimate of the rows and fall back to reading the index. A store sends
// each round's probes in one batch.
package density

import (
	"context"
	"math"
	"slices"
)

const (
	// PerProbe is how many keys one probe reads.
	PerProbe = 16
	// initialSpans are the equal stretches of the range probed first.
	initialSpans = 256
	// MaxProbes bounds the probes of one measurement.
	MaxProbes = 4096
	// refineParts is what a span that holds too many rows is cut into.
	refineParts = 8
)

// Span is a stretch [Lo, Hi] of keys (inclusive: a key may be
// math.MaxInt64) and the rows it is estimated to hold.
type Span struct {
	Lo, Hi int64
	Rows   float64
	Exact  bool // Rows were counted, not estimated
}

// Width is the number of keys the span can hold, as a float: a span may
// cover all 2^64 of them.
func (sp Span) Width() float64 { return float64(uint64(sp.Hi)-uint64(sp.Lo)) + 1 }

// Probe returns, for each of starts, the first PerProbe keys at or after
// it in ascending order (fewer where the table ends).
type Probe func(ctx context.Context, starts []int64) ([][]int64, error)

// Measure estimates the rows of every part of [lo, hi], refining the spans
// whose density differs from a neighbour's until none holds more than a
// quarter of a sample interval (total/sampleSize) or MaxProbes are spent. It returns the spans, in key order, and their
// total.
func Measure(ctx context.Context, lo, hi int64, sampleSize int, probe Probe) ([]Span, float64, error) {
	spans := Cut(Span{Lo: lo, Hi: hi}, initialSpans)
	if err := measure(ctx, spans, probe); err != nil {
		return nil, 0, err
	}
	probes := len(spans)
	for {
		total := Total(spans)
		limit := total / float64(4*max(sampleSize, 1))
		var heavy []int
		for i, sp := range spans {
			if !sp.Exact && sp.Width() > PerProbe && sp.Rows > limit && unlike(spans, i) {
				heavy = append(heavy, i)
			}
		}
		// The heaviest first, as many as the budget allows.
		slices.SortFunc(heavy, func(a, b int) int {
			switch {
			case spans[a].Rows > spans[b].Rows:
				return -1
			case spans[a].Rows < spans[b].Rows:
				return 1
			}
			return a - b
		})
		heavy = heavy[:min(len(heavy), (MaxProbes-probes)/refineParts)]
		if len(heavy) == 0 {
			return spans, total, nil
		}
		cut := make(map[int]bool, len(heavy))
		var parts []Span
		for _, h := range heavy {
			cut[h] = true
		}
		for i, sp := range spans {
			if cut[i] {
				parts = append(parts, Cut(sp, refineParts)...)
			}
		}
		if err := measure(ctx, parts, probe); err != nil {
			return nil, 0, err
		}
		probes += len(parts)
		// The measured parts take their span's place, in key order.
		next := make([]Span, 0, len(spans)+len(parts))
		for i, sp := range spans {
			if !cut[i] {
				next = append(next, sp)
				continue
			}
			n := len(Cut(sp, refineParts))
			next, parts = append(next, parts[:n]...), parts[n:]
		}
		spans = next
	}
}

// unlike reports whether span i's density differs from a neighbour's by
// more than twice: the keys change there, and the span is measured closer.
// A span among others of its density is taken as measured: refining a
// uniform stretch would spend probes to learn nothing.
func unlike(spans []Span, i int) bool {
	d := spans[i].Rows / spans[i].Width()
	for _, j := range []int{i - 1, i + 1} {
		if j < 0 || j >= len(spans) {
			continue
		}
		dj := spans[j].Rows / spans[j].Width()
		if max(d, dj) > 2*min(d, dj) {
			return true
		}
	}
	return false
}

// measure probes every span at its start and sets its rows.
func measure(ctx context.Context, spans []Span, probe Probe) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	starts := make([]int64, len(spans))
	for i, sp := range spans {
		starts[i] = sp.Lo
	}
	found, err := probe(ctx, starts)
	if err != nil {
		return err
	}
	for i := range spans {
		var keys []int64
		if i < len(found) {
			keys = found[i]
		}
		n, first, last := 0, int64(0), int64(0)
		for _, k := range keys {
			if k < spans[i].Lo || k > spans[i].Hi {
				break
			}
			if n == 0 {
				first = k
			}
			n, last = n+1, k
		}
		if n < PerProbe {
			spans[i].Rows, spans[i].Exact = float64(n), true
			continue
		}
		// No key lies before first, n lie in [first, last], and the rest
		// of the span is taken to be as dense as that stretch: a span that
		// is empty but for a cluster at its end is not mistaken for a
		// sparse one, nor a regular spacing for a denser one.
		spread := float64(uint64(last) - uint64(first)) // > 0: n ≥ 2 distinct keys
		rest := float64(uint64(spans[i].Hi) - uint64(last))
		spans[i].Rows = float64(n) + rest*float64(n-1)/spread
	}
	return nil
}

// Total is the rows of spans.
func Total(spans []Span) (n float64) {
	for _, sp := range spans {
		n += sp.Rows
	}
	return n
}

// Cut cuts sp into at most n spans of nearly equal width.
func Cut(sp Span, n int) []Span {
	w := uint64(sp.Hi) - uint64(sp.Lo) // keys in the span, minus one
	if w < uint64(n) {
		n = int(w) + 1
	}
	out := make([]Span, n)
	for i := range out {
		off := w/uint64(n)*uint64(i) + w%uint64(n)*uint64(i)/uint64(n)
		out[i].Lo = int64(uint64(sp.Lo) + off)
		if i > 0 {
			out[i-1].Hi = out[i].Lo - 1
		}
	}
	out[n-1].Hi = sp.Hi
	return out
}

// At returns the key at which the rank-th row (0 ≤ rank < Total) is
// expected, assuming rows spread evenly inside each span.
func At(spans []Span, rank float64) int64 {
	for _, sp := range spans {
		if rank < sp.Rows {
			off := rank / sp.Rows * sp.Width()
			if off >= sp.Width() || off >= math.MaxUint64 {
				return sp.Hi
			}
			return int64(uint64(sp.Lo) + uint64(off))
		}
		rank -= sp.Rows
	}
	return spans[len(spans)-1].Hi
}

// Quantiles returns the keys at n evenly spaced ranks of spans (of total
// rows), each once: a sample of the keys for split points, without reading
// a row.
func Quantiles(spans []Span, total float64, n int) []int64 {
	var out []int64
	for i := range n {
		at := At(spans, (float64(i)+0.5)*total/float64(n))
		if len(out) == 0 || at != out[len(out)-1] {
			out = append(out, at)
		}
	}
	return out
}
