package partitioner

import (
	"context"
	"fmt"

	"github.com/datashift/datashift/connectors"
)

// Options are the limits PlanSource plans within; see Input for their meaning.
type Options struct {
	TargetRows    int64
	TargetBytes   int64
	MaxPartitions int
	// Workers is Input.Workers.
	Workers int
	// SampleSize is how many keys to ask a Sampler for; 0 picks
	// DefaultSampleSize(MaxPartitions).
	SampleSize int
}

// DefaultSampleSize asks for 256 sampled keys per partition the plan may
// have, within [2048, 16384]. A partition's share of 256 sampled keys
// estimates its share of the rows to about ±6%, which keeps the largest
// partition within ~1.2× the mean (see TestBalanceOnePercentSample); more
// costs the store more than it gains, since some stores fetch a sampled key
// per round trip (an index walk).
func DefaultSampleSize(maxPartitions int) int {
	return min(max(256*maxPartitions, 2048), 16384)
}

// PlanSource reads what planning needs from src — the nullability of the key
// columns from its schema and, when src is a connectors.Sampler, its
// statistics — and plans it with Split. key is the source's key
// (SourceConfig.Key); empty when it has none. A source that cannot sample is
// planned as one range, and the plan says why.
func PlanSource(ctx context.Context, src connectors.Source, key []string, opts Options) (Plan, error) {
	schema, err := src.Schema(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("plan partitions: read schema: %w", err)
	}
	idx, err := connectors.ColumnIndexes(schema, key)
	if err != nil {
		return Plan{}, fmt.Errorf("plan partitions: key: %w", err)
	}
	cols := make([]KeyColumn, len(key))
	for i, c := range idx {
		f := schema.Field(c)
		cols[i] = KeyColumn{Name: f.Name, Nullable: f.Nullable}
	}
	in := Input{
		Key:           cols,
		TargetRows:    opts.TargetRows,
		TargetBytes:   opts.TargetBytes,
		MaxPartitions: opts.MaxPartitions,
		Workers:       opts.Workers,
	}
	// Check the limits before asking the store for anything.
	if err := checkInput(in); err != nil {
		return Plan{}, err
	}
	sampler, ok := src.(connectors.Sampler)
	if !ok {
		return Unsplit(cols, fmt.Sprintf("source %T cannot sample its keys (no Stats method): one partition", src)), nil
	}
	size := opts.SampleSize
	if size <= 0 {
		size = DefaultSampleSize(opts.MaxPartitions)
	}
	if in.Stats, err = sampler.Stats(ctx, size); err != nil {
		return Plan{}, fmt.Errorf("plan partitions: source statistics: %w", err)
	}
	p, err := Split(in)
	if err != nil {
		return Plan{}, fmt.Errorf("plan partitions: %w", err)
	}
	return p, nil
}
