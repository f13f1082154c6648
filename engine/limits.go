package engine

import "fmt"

// Ceilings on the sizes a spec may ask for. Above them a run does not go
// faster, it only costs more: a plan of a billion partitions never ends
// being made, and 200,000 workers on one process took 572 MB to copy
// 3,000 rows.
const (
	// MaxParallelism bounds the partitions one process runs at once: each
	// holds connections and batches in flight.
	MaxParallelism = 256
	// MaxPartitions bounds a run's partitions: each costs a plan entry, a
	// lease and a commit record in the sink.
	MaxPartitions = 10000
)

// CheckParallelism says what is wrong with n partitions at once, or nil;
// the job's parallelism and the --parallelism flag share it.
func CheckParallelism(n int) error {
	switch {
	case n < 1:
		return fmt.Errorf("must be at least 1 (got %d)", n)
	case n > MaxParallelism:
		return fmt.Errorf("%d is more than %d partitions at once: more adds memory, not speed", n, MaxParallelism)
	}
	return nil
}

// zeroIsDefault are the fields whose zero Normalize replaces by a default:
// an explicit 0 in a spec is refused, not taken for "the default".
var zeroIsDefault = map[string]int{
	"parallelism":    DefaultParallelism,
	"partitions.max": DefaultMaxParts,
	"batch_rows":     DefaultBatchRows,
	"commit_rows":    DefaultCommitRows,
}
