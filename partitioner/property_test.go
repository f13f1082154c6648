package partitioner_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/partitioner"
)

// column generates values of one key type: dense draws from a handful of
// values (heavy duplicates), wide from the whole domain; probes are the
// domain's extremes, which a plan must cover even if no row has them.
type column struct {
	name   string
	dense  func(r *rand.Rand) any
	wide   func(r *rand.Rand) any
	probes []any
}

var textRunes = []rune("aAbBzZ09 _-éÉßøΩ日本語😀\x00\x7f")

func randText(r *rand.Rand) any {
	b := make([]rune, r.IntN(8))
	for i := range b {
		b[i] = textRunes[r.IntN(len(textRunes))]
	}
	return string(b)
}

func randUUID(r *rand.Rand) connectors.UUID {
	var u connectors.UUID
	for i := range u {
		u[i] = byte(r.UintN(256))
	}
	return u
}

var (
	epoch   = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

var columns = []column{
	{
		name:  "int64",
		dense: func(r *rand.Rand) any { return r.Int64N(12) - 6 },
		wide: func(r *rand.Rand) any {
			switch r.IntN(6) {
			case 0:
				return []int64{math.MinInt64, math.MinInt64 + 1, math.MaxInt64, math.MaxInt64 - 1, 0, -1}[r.IntN(6)]
			case 1:
				return r.Int64N(1000)
			}
			return int64(r.Uint64())
		},
		probes: []any{int64(math.MinInt64), int64(math.MaxInt64), int64(0)},
	},
	{
		name:   "uint64",
		dense:  func(r *rand.Rand) any { return r.Uint64N(5) },
		wide:   func(r *rand.Rand) any { return r.Uint64() },
		probes: []any{uint64(0), uint64(math.MaxUint64)},
	},
	{
		name: "text",
		dense: func(r *rand.Rand) any {
			return []string{"", "a", "A", "B", "b", "é", "E", "日本", "ab", "aB", "\x00"}[r.IntN(11)]
		},
		wide:   randText,
		probes: []any{"", "\x00", "\xff\xff\xff", "Z", "a"},
	},
	{
		name:  "bytes",
		dense: func(r *rand.Rand) any { return []byte{byte(r.IntN(3))} },
		wide: func(r *rand.Rand) any {
			b := make([]byte, r.IntN(5))
			for i := range b {
				b[i] = byte(r.UintN(256))
			}
			return b
		},
		probes: []any{[]byte{}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	},
	{
		name: "uuid",
		dense: func(r *rand.Rand) any {
			var u connectors.UUID
			u[15] = byte(r.IntN(4))
			return u
		},
		wide:   func(r *rand.Rand) any { return randUUID(r) },
		probes: []any{connectors.UUID{}, connectors.UUID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	},
	{
		name:  "time",
		dense: func(r *rand.Rand) any { return epoch.Add(time.Duration(r.IntN(4)) * time.Hour) },
		wide: func(r *rand.Rand) any {
			span := maxTime.UnixMicro() - minTime.UnixMicro()
			return time.UnixMicro(minTime.UnixMicro() + r.Int64N(span)).UTC()
		},
		probes: []any{minTime, maxTime, epoch},
	},
	{
		name:  "float64",
		dense: func(r *rand.Rand) any { return float64(r.IntN(4)) / 2 },
		wide: func(r *rand.Rand) any {
			if r.IntN(8) == 0 {
				return []float64{math.Inf(-1), math.Inf(1), -math.MaxFloat64, math.MaxFloat64, math.SmallestNonzeroFloat64}[r.IntN(5)]
			}
			return r.NormFloat64() * math.Pow(10, float64(r.IntN(600)-300))
		},
		probes: []any{math.Inf(-1), math.Inf(1), 0.0},
	},
	{
		name:   "bool",
		dense:  func(r *rand.Rand) any { return r.IntN(2) == 0 },
		wide:   func(r *rand.Rand) any { return r.IntN(2) == 0 },
		probes: []any{false, true},
	},
}

// table is one random source: its key columns, every row's key, and how it
// is described to Split.
type table struct {
	cols []column
	key  []partitioner.KeyColumn
	rows []connectors.Key
}

func randomTable(r *rand.Rand) table {
	var tb table
	nc := 1 + r.IntN(3)
	for i := range nc {
		c := columns[r.IntN(len(columns))]
		tb.cols = append(tb.cols, c)
		tb.key = append(tb.key, partitioner.KeyColumn{Name: fmt.Sprintf("k%d_%s", i, c.name), Nullable: r.IntN(3) == 0})
	}
	nullP := 0.0
	if nullable(tb.key) {
		nullP = []float64{0, 0.05, 0.3, 1}[r.IntN(4)]
	}
	dense := r.IntN(2) == 0
	n := []int{0, 1, 2, r.IntN(50), r.IntN(1000)}[r.IntN(5)]
	for range n {
		k := make(connectors.Key, nc)
		for i, c := range tb.cols {
			switch {
			case tb.key[i].Nullable && r.Float64() < nullP:
				k[i] = nil
			case dense:
				k[i] = c.dense(r)
			default:
				k[i] = c.wide(r)
			}
		}
		tb.rows = append(tb.rows, k)
	}
	return tb
}

func nullable(key []partitioner.KeyColumn) bool {
	for _, c := range key {
		if c.Nullable {
			return true
		}
	}
	return false
}

// probes returns keys no row may have: the domain's extremes in each column,
// fresh random keys, and keys with a NULL where a column is nullable.
func (tb table) probes(r *rand.Rand) []connectors.Key {
	var out []connectors.Key
	for range 40 {
		k := make(connectors.Key, len(tb.cols))
		for i, c := range tb.cols {
			switch r.IntN(3) {
			case 0:
				k[i] = c.probes[r.IntN(len(c.probes))]
			case 1:
				k[i] = c.wide(r)
			default:
				k[i] = c.dense(r)
			}
			if tb.key[i].Nullable && r.IntN(5) == 0 {
				k[i] = nil
			}
		}
		out = append(out, k)
	}
	return out
}

// TestSplitProperties plans random tables of every key type under random
// statistics and limits, and checks what every plan must do whatever the
// statistics say: cover every key exactly once, and respect target and max.
func TestSplitProperties(t *testing.T) {
	r := newRand(t)
	for iter := range 500 {
		tb := randomTable(r)
		var keys []connectors.Key // non-NULL keys, sorted
		nullRows := int64(0)
		for _, k := range tb.rows {
			if hasNull(k) {
				nullRows++
			} else {
				keys = append(keys, k)
			}
		}
		sortKeys(keys)

		st := connectors.Stats{Rows: int64(len(keys)), NullRows: nullRows, Method: "test"}
		if len(keys) > 0 {
			st.Min, st.Max = keys[0], keys[len(keys)-1]
		}
		sampleMode := []string{"exact", "subset", "none"}[r.IntN(3)]
		switch sampleMode {
		case "exact":
			st.Sample, st.Exact = keys, true
		case "subset":
			p := r.Float64()
			for _, k := range keys {
				if r.Float64() < p {
					st.Sample = append(st.Sample, k)
				}
			}
			// Estimates are estimates: off by up to 2× either way, and
			// the NULL count sometimes missing altogether.
			st.Rows = int64(float64(st.Rows) * (0.5 + 1.5*r.Float64()))
			if r.IntN(2) == 0 {
				st.NullRows = 0
			}
		}
		in := partitioner.Input{Key: tb.key, Stats: st, MaxPartitions: 1 + r.IntN(40)}
		if r.IntN(5) > 0 {
			in.TargetRows = 1 + r.Int64N(int64(len(keys))+2)
		}
		if r.IntN(5) == 0 {
			in.Stats.Bytes = r.Int64N(1 << 20)
			in.TargetBytes = 1 + r.Int64N(1<<18)
		}
		what := fmt.Sprintf("iteration %d: key %v, %d rows (%d NULL), sample %s, target %d rows %d bytes, max %d",
			iter, tb.key, len(tb.rows), nullRows, sampleMode, in.TargetRows, in.TargetBytes, in.MaxPartitions)

		p, err := partitioner.Split(in)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		checkCovers(t, p, append(tb.rows, tb.probes(r)...))
		checkStable(t, in, p)

		kr := keyRanges(p)
		nulls := len(p.Partitions) - len(kr)
		if want := btoi(nullable(tb.key)); nulls != want {
			t.Fatalf("%s: %d NULL-key partitions, want %d", what, nulls, want)
		}
		slots := in.MaxPartitions
		if nulls == 1 && slots > 1 {
			slots--
		}
		if len(kr) > slots {
			t.Fatalf("%s: %d key ranges for %d slots\n%s", what, len(kr), slots, describe(p))
		}
		rows := max(st.Rows, int64(len(st.Sample)))
		if in.TargetRows > 0 && in.TargetBytes == 0 && rows > 0 {
			if want := ceilDiv(rows, in.TargetRows); int64(len(kr)) > want {
				t.Fatalf("%s: %d key ranges for ~%d rows at %d per partition\n%s", what, len(kr), rows, in.TargetRows, describe(p))
			}
		}
		var est int64
		for _, pt := range p.Partitions {
			est += pt.EstRows
		}
		if want := rows + in.Stats.NullRows*int64(nulls); est != want {
			t.Fatalf("%s: estimates add up to %d, want %d\n%s", what, est, want, describe(p))
		}
		if len(st.Sample) == 0 {
			continue
		}
		// Split points are sampled keys, so there are no more ranges than
		// distinct sampled keys.
		distinct := 1
		for i := 1; i < len(st.Sample); i++ {
			if connectors.CompareKeys(st.Sample[i-1], st.Sample[i]) != 0 {
				distinct++
			}
		}
		for _, pt := range kr[1:] {
			if !sampled(st.Sample, pt.Range.Lo) {
				t.Fatalf("%s: split point %s is not a sampled key", what, pt.Range.Lo)
			}
		}
		if len(kr) > distinct {
			t.Fatalf("%s: %d key ranges from %d distinct sampled keys", what, len(kr), distinct)
		}
		// With all keys distinct nothing stops Split from giving exactly
		// the count the target asks for.
		if distinct == len(st.Sample) && in.TargetBytes == 0 {
			want := int64(min(slots, distinct))
			if in.TargetRows > 0 {
				want = min(want, ceilDiv(rows, in.TargetRows))
			}
			if int64(len(kr)) != want {
				t.Fatalf("%s: %d key ranges from %d distinct keys, want %d\n%s", what, len(kr), distinct, want, describe(p))
			}
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func sampled(sample []connectors.Key, k connectors.Key) bool {
	for _, s := range sample {
		if connectors.CompareKeys(s, k) == 0 {
			return true
		}
	}
	return false
}

// checkStable fails t unless planning in again gives the same plan, and the
// plan survives the JSON round trip the engine puts it through with the same
// bounds.
func checkStable(t *testing.T, in partitioner.Input, p partitioner.Plan) {
	t.Helper()
	again, err := partitioner.Split(in)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(p)
	b, err := json.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("the same input planned twice differs:\n%s\n%s", a, b)
	}
	var back partitioner.Plan
	if err := json.Unmarshal(a, &back); err != nil {
		t.Fatalf("%v\n%s", err, a)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("plan read back: %v\n%s", err, a)
	}
	for i, pt := range p.Partitions {
		q := back.Partitions[i].Range
		for j, pair := range [][2]connectors.Key{{pt.Range.Lo, q.Lo}, {pt.Range.Hi, q.Hi}} {
			if (pair[0] == nil) != (pair[1] == nil) || pair[0] != nil && connectors.CompareKeys(pair[0], pair[1]) != 0 {
				t.Fatalf("partition %s bound %d is %s, read back %s", pt.ID, j, pair[0], pair[1])
			}
		}
	}
}
