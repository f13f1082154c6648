package partitioner_test

import (
	"flag"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/partitioner"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the random tests (0: from the clock); printed on failure")

// newRand returns a seeded generator and prints the seed if t fails, so a
// failure can be replayed with -seed.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed %d: replay with go test ./partitioner -run '%s' -seed %d", seed, t.Name(), seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func ik(vs ...int64) connectors.Key {
	k := make(connectors.Key, len(vs))
	for i, v := range vs {
		k[i] = v
	}
	return k
}

func sortKeys(keys []connectors.Key) {
	sort.SliceStable(keys, func(i, j int) bool { return connectors.CompareKeys(keys[i], keys[j]) < 0 })
}

func hasNull(k connectors.Key) bool {
	for _, v := range k {
		if v == nil {
			return true
		}
	}
	return false
}

// checkCovers fails t unless plan validates and every key lies in exactly one
// of its partitions.
func checkCovers(t testing.TB, plan partitioner.Plan, keys []connectors.Key) {
	t.Helper()
	if err := plan.Validate(); err != nil {
		t.Fatalf("plan does not validate: %v\n%s", err, describe(plan))
	}
	for _, k := range keys {
		n := 0
		for _, p := range plan.Partitions {
			if p.Range.Contains(k) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("key %s is in %d partitions, want 1\n%s", k, n, describe(plan))
		}
	}
}

func describe(p partitioner.Plan) string {
	s := p.Scheme + ": " + p.Reason + "\n"
	for _, pt := range p.Partitions {
		s += "  " + pt.ID + " " + pt.Range.String() + "\n"
	}
	return s
}

// keyRanges returns the partitions that are not the NULL-key partition.
func keyRanges(p partitioner.Plan) []partitioner.Partition {
	var out []partitioner.Partition
	for _, pt := range p.Partitions {
		if !pt.Range.Nulls {
			out = append(out, pt)
		}
	}
	return out
}
