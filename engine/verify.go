package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/partitioner"
)

// TableChecksum reads every row of a source (all of it: key, filter and
// cursor are ignored) and returns its order-independent checksum over the
// given columns (all when empty). It is how a run is verified: source and
// sink checksums match when the sink holds each source row exactly once.
func TableChecksum(ctx context.Context, typ string, cfg connectors.SourceConfig, columns []string) (connectors.Checksum, error) {
	cfg.Key, cfg.Where, cfg.Cursor = nil, "", nil
	cfg.Columns = columns
	src, err := connectors.OpenSource(ctx, typ, cfg)
	if err != nil {
		return connectors.Checksum{}, err
	}
	defer src.Close()
	sum, err := rangeChecksum(ctx, src, connectors.Range{})
	if err != nil {
		return sum, fmt.Errorf("checksum of %s %s: %w", typ, cfg.Table, err)
	}
	return sum, nil
}

func rangeChecksum(ctx context.Context, src connectors.Source, r connectors.Range) (connectors.Checksum, error) {
	var sum connectors.Checksum
	err := src.Read(ctx, r, func(b arrow.RecordBatch) error {
		sum.Add(b, nil)
		return nil
	})
	return sum, err
}

// ErrDiffers is wrapped by Verify's error when a partition of the sink
// does not hold exactly its source rows.
var ErrDiffers = errors.New("the sink differs from the source")

// Verification is what Verify compared: the job's source against its sink,
// partition by partition.
type Verification struct {
	Job    string `json:"job"`
	Scheme string `json:"scheme"`
	// Reason says why the comparison has this shape: the plan's reason, or
	// why the table was compared whole.
	Reason     string           `json:"reason"`
	Columns    []string         `json:"columns"`
	Partitions []PartitionCheck `json:"partitions"`
	Duration   Duration         `json:"duration"`
}

// PartitionCheck is one range read from both sides.
type PartitionCheck struct {
	ID     string              `json:"id"`
	Range  connectors.Range    `json:"range"`
	Source connectors.Checksum `json:"source"`
	Sink   connectors.Checksum `json:"sink"`
	// Differs says the sink's rows of the range are not the source's.
	Differs bool `json:"differs"`
}

// Differing returns the partitions that differ, in plan order.
func (v *Verification) Differing() []PartitionCheck {
	var out []PartitionCheck
	for _, p := range v.Partitions {
		if p.Differs {
			out = append(out, p)
		}
	}
	return out
}

// Totals adds up the rows read from each side.
func (v *Verification) Totals() (source, sink int64) {
	for _, p := range v.Partitions {
		source += p.Source.Rows
		sink += p.Sink.Rows
	}
	return source, sink
}

// Verify compares a job's source with its sink without writing anything:
// it plans the source as a run would, and for each partition, parallelism
// at a time, reads the range from the source and the same key range from
// the sink's store opened as a source of its type, and compares row count
// and checksum (connectors.Checksum, which normalizes values so type round
// trips compare equal) over the columns the job copies. The ranges cover
// the whole key space, NULL keys included, so a sink row outside every
// source range still shows. The comparison is of the whole table also for
// an incremental job (not one run's window), and is one range when the job
// has no key or the sink is read back as files (no key order to range by).
// Verify returns the comparison, and an error wrapping ErrDiffers when any
// partition differs.
func Verify(ctx context.Context, job *Job) (*Verification, error) {
	start := time.Now()
	if _, ok := connectors.SourceOptions(job.Sink.Type); !ok {
		return nil, &SpecError{Job: job.Name, Field: "sink.type", Reason: fmt.Sprintf("a %s sink cannot be read back to verify it", job.Sink.Type)}
	}
	if err := Check(ctx, job); err != nil {
		return nil, err
	}
	src, err := connectors.OpenSource(ctx, job.Source.Type, sourceConfig(job, nil))
	if err != nil {
		return nil, fmt.Errorf("job %q: open source: %w", job.Name, err)
	}
	schema, err := src.Schema(ctx)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("job %q: source schema: %w", job.Name, err)
	}
	// The sink's table may have columns the job does not copy: compare
	// the source's, by name.
	v := &Verification{Job: job.Name, Columns: make([]string, schema.NumFields())}
	for i, f := range schema.Fields() {
		v.Columns[i] = f.Name
	}
	whole, err := sinkReadsWhole(ctx, job, v.Columns)
	if err != nil {
		src.Close()
		return nil, err
	}
	var plan partitioner.Plan
	switch {
	case len(job.Source.Key) == 0:
		plan = partitioner.Unsplit(nil, "no key: the table is compared as one partition")
	case whole:
		plan = partitioner.Unsplit(nil, fmt.Sprintf("%s sink is read back as files, in no key order: the table is compared as one partition", job.Sink.Type))
	default:
		plan, err = planSource(ctx, job, src)
		if err != nil {
			src.Close()
			return nil, fmt.Errorf("job %q: %w", job.Name, err)
		}
		plan = withNullRange(plan)
	}
	src.Close()
	v.Scheme, v.Reason = plan.Scheme, plan.Reason
	if job.Incremental != nil {
		v.Reason += fmt.Sprintf("; incremental: the whole table is compared, not one run's window of %s", job.Incremental.Cursor)
	}
	v.Partitions = make([]PartitionCheck, len(plan.Partitions))
	for i, p := range plan.Partitions {
		v.Partitions[i] = PartitionCheck{ID: p.ID, Range: p.Range}
	}
	if err := verifyPartitions(ctx, job, v, len(plan.Key) > 0); err != nil {
		return nil, err
	}
	v.Duration = Duration(time.Since(start))
	if d := v.Differing(); len(d) > 0 {
		return v, fmt.Errorf("job %q: %w in %d of %d partitions", job.Name, ErrDiffers, len(d), len(v.Partitions))
	}
	return v, nil
}

// withNullRange adds the NULL-key range to a keyed plan without one: the
// source's key is NOT NULL there, but the sink's table need not be, and a
// row with a NULL key in the sink must not escape every range.
func withNullRange(plan partitioner.Plan) partitioner.Plan {
	for _, p := range plan.Partitions {
		if p.Range.Nulls {
			return plan
		}
	}
	ids := make([]string, len(plan.Partitions))
	for i, p := range plan.Partitions {
		ids[i] = p.ID
	}
	id := "nulls"
	for slices.Contains(ids, id) {
		id += "_"
	}
	plan.Partitions = append(slices.Clone(plan.Partitions), partitioner.Partition{ID: id, Range: connectors.Range{Nulls: true}})
	plan.Reason += "; plus a partition for NULL keys the sink may hold"
	return plan
}

// sinkConfigAsSource is how the sink's store is read back: a source of the
// sink's type on the sink's DSN and table, with the job's key and the
// compared columns, and those of the sink's options the source side of
// the connector also takes (a CSV delimiter, not a commit table).
func sinkConfigAsSource(job *Job, key, columns []string) connectors.SourceConfig {
	known, _ := connectors.SourceOptions(job.Sink.Type)
	var opts map[string]string
	for k, val := range job.Sink.Options {
		if slices.Contains(known.Names(), k) {
			if opts == nil {
				opts = map[string]string{}
			}
			opts[k] = val
		}
	}
	return connectors.SourceConfig{
		DSN: job.Sink.DSN, Table: job.Sink.Table, Key: key, Columns: columns,
		BatchRows: job.BatchRows, BatchBytes: int(job.BatchBytes), Options: opts,
	}
}

// sinkReadsWhole opens the sink's store as a source once, to refuse before
// reading anything a sink that cannot be read back or lacks a compared
// column, and reports whether it reads files (FileSet): those have no key
// order, so they are compared whole.
func sinkReadsWhole(ctx context.Context, job *Job, columns []string) (bool, error) {
	s, err := connectors.OpenSource(ctx, job.Sink.Type, sinkConfigAsSource(job, nil, columns))
	if err != nil {
		return false, &SpecError{Job: job.Name, Field: "sink", Reason: "read it back: " + err.Error()}
	}
	defer s.Close()
	if _, err := s.Schema(ctx); err != nil {
		return false, &SpecError{Job: job.Name, Field: "sink", Reason: "read it back: " + err.Error()}
	}
	_, files := s.(connectors.FileSet)
	return files, nil
}

// verifyPartitions fills in each partition's checksums, job.Parallelism
// partitions at a time, each with its own source and sink connections as
// an executor's partition has. keyed says the ranges are key ranges, read
// from both sides with the job's key.
func verifyPartitions(ctx context.Context, job *Job, v *Verification, keyed bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var key []string
	if keyed {
		key = job.Source.Key
	}
	srcCfg := sourceConfig(job, nil)
	srcCfg.Key, srcCfg.Columns = key, v.Columns
	sinkCfg := sinkConfigAsSource(job, key, v.Columns)
	next := make(chan int)
	errs := make(chan error, len(v.Partitions))
	var wg sync.WaitGroup
	for range min(job.Parallelism, len(v.Partitions)) {
		wg.Go(func() {
			for i := range next {
				p := &v.Partitions[i]
				var err error
				if p.Source, err = checksumOf(ctx, job.Source.Type, srcCfg, p.Range); err != nil {
					errs <- fmt.Errorf("job %q: partition %s %s: source: %w", job.Name, p.ID, p.Range, err)
					cancel()
					continue
				}
				if p.Sink, err = checksumOf(ctx, job.Sink.Type, sinkCfg, p.Range); err != nil {
					errs <- fmt.Errorf("job %q: partition %s %s: sink: %w", job.Name, p.ID, p.Range, err)
					cancel()
				}
				p.Differs = p.Source != p.Sink
			}
		})
	}
	for i := range v.Partitions {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

func checksumOf(ctx context.Context, typ string, cfg connectors.SourceConfig, r connectors.Range) (connectors.Checksum, error) {
	src, err := connectors.OpenSource(ctx, typ, cfg)
	if err != nil {
		return connectors.Checksum{}, err
	}
	defer src.Close()
	return rangeChecksum(ctx, src, r)
}
