package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
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
// has no key (named, or its table's primary key). A sink read back as
// files (no key order to read a range by) is read once, each row summed
// into the partition its key falls in.
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
	cfg := sourceConfig(job, nil)
	src, err := connectors.OpenSource(ctx, job.Source.Type, cfg)
	if err != nil {
		return nil, fmt.Errorf("job %q: open source: %w", job.Name, err)
	}
	// Compared by the key the job's runs copy by.
	if job, src, err = primaryKeyed(ctx, quiet, job, cfg, src); err != nil {
		return nil, err
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
	sinkSchema, files, err := sinkReadBack(ctx, job, v.Columns)
	if err != nil {
		src.Close()
		return nil, err
	}
	var plan partitioner.Plan
	switch {
	case len(job.Source.Key) == 0:
		plan = partitioner.Unsplit(nil, "no key: the table is compared as one partition")
	case files && keyTypesDiffer(schema, sinkSchema, job.Source.Key) != "":
		plan = partitioner.Unsplit(nil, fmt.Sprintf("%s sink is read back as files, and %s: the table is compared as one partition",
			job.Sink.Type, keyTypesDiffer(schema, sinkSchema, job.Source.Key)))
	default:
		plan, err = planSource(ctx, job, src)
		if err != nil {
			src.Close()
			return nil, fmt.Errorf("job %q: %w", job.Name, err)
		}
		plan = withNullRange(plan)
		if files {
			plan.Reason += fmt.Sprintf("; the %s sink's files are read once, each row summed into its key's partition", job.Sink.Type)
		}
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
	if err := verifyPartitions(ctx, job, v, len(plan.Key) > 0, files); err != nil {
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

// sinkReadBack opens the sink's store as a source once, to refuse before
// reading anything a sink that cannot be read back or lacks a compared
// column, and returns the schema it reads and whether it reads files
// (FileSet): those have no key order to read a range by, so they are read
// once, whole (sinkByPartition).
func sinkReadBack(ctx context.Context, job *Job, columns []string) (*arrow.Schema, bool, error) {
	s, err := connectors.OpenSource(ctx, job.Sink.Type, sinkConfigAsSource(job, nil, columns))
	if err != nil {
		return nil, false, &SpecError{Job: job.Name, Field: "sink", Reason: "read it back: " + err.Error()}
	}
	defer s.Close()
	schema, err := s.Schema(ctx)
	if err != nil {
		return nil, false, &SpecError{Job: job.Name, Field: "sink", Reason: "read it back: " + err.Error()}
	}
	_, files := s.(connectors.FileSet)
	return schema, files, nil
}

// keyTypesDiffer says which key column the sink reads back as another type
// than the source's ("" when none does): its keys could not be placed in
// the source's ranges.
func keyTypesDiffer(source, sink *arrow.Schema, key []string) string {
	for _, k := range key {
		a, aok := source.FieldsByName(k)
		b, bok := sink.FieldsByName(k)
		if !aok || !bok || !arrow.TypeEqual(a[0].Type, b[0].Type) {
			want, got := "none", "none"
			if aok {
				want = a[0].Type.String()
			}
			if bok {
				got = b[0].Type.String()
			}
			return fmt.Sprintf("its key column %s reads back as %s, not %s", k, got, want)
		}
	}
	return ""
}

// verifyPartitions fills in each partition's checksums, job.Parallelism
// partitions at a time, each with its own source and sink connections as
// an executor's partition has. keyed says the ranges are key ranges, read
// from both sides with the job's key; files that the sink is read back as
// files, once, beside the source's partitions (sinkByPartition).
func verifyPartitions(ctx context.Context, job *Job, v *Verification, keyed, files bool) error {
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
	errs := make(chan error, len(v.Partitions)+1)
	var wg sync.WaitGroup
	if files {
		wg.Go(func() {
			if err := sinkByPartition(ctx, job, v, key); err != nil {
				errs <- fmt.Errorf("job %q: sink: %w", job.Name, err)
				cancel()
			}
		})
	}
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
				if files {
					continue
				}
				if p.Sink, err = checksumOf(ctx, job.Sink.Type, sinkCfg, p.Range); err != nil {
					errs <- fmt.Errorf("job %q: partition %s %s: sink: %w", job.Name, p.ID, p.Range, err)
					cancel()
				}
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
	for i := range v.Partitions {
		p := &v.Partitions[i]
		p.Differs = p.Source != p.Sink
	}
	return ctx.Err()
}

// sinkByPartition reads the sink's files once and sums each row into the
// sink checksum of the partition whose range holds its key (key: the
// job's key, its columns among v.Columns). The ranges cover every key, NULL
// keys included.
func sinkByPartition(ctx context.Context, job *Job, v *Verification, key []string) error {
	src, err := connectors.OpenSource(ctx, job.Sink.Type, sinkConfigAsSource(job, nil, v.Columns))
	if err != nil {
		return err
	}
	defer src.Close()
	keyCols := make([]int, len(key))
	for i, k := range key {
		keyCols[i] = slices.Index(v.Columns, k)
	}
	ranges := make([]connectors.Range, len(v.Partitions))
	for i, p := range v.Partitions {
		ranges[i] = p.Range
	}
	holder := rangeHolder(ranges)
	sums := make([]connectors.Checksum, len(v.Partitions))
	err = src.Read(ctx, connectors.Range{}, func(b arrow.RecordBatch) error {
		connectors.AddEach(b, nil, func(i int) *connectors.Checksum {
			return &sums[holder(connectors.KeyOf(b, keyCols, i))]
		})
		return nil
	})
	for i := range sums {
		v.Partitions[i].Sink = sums[i]
	}
	return err
}

// rangeHolder returns the function that finds which of ranges (a plan's,
// in key order, with one for NULL keys) holds a key: by binary search
// over the key ranges' upper ends.
func rangeHolder(ranges []connectors.Range) func(connectors.Key) int {
	nulls := -1
	var keyed []int // indexes of the key ranges, in key order
	for i, r := range ranges {
		if r.Nulls {
			nulls = i
		} else {
			keyed = append(keyed, i)
		}
	}
	return func(k connectors.Key) int {
		if slices.Contains(k, nil) && nulls >= 0 {
			return nulls
		}
		at := sort.Search(len(keyed), func(j int) bool {
			hi := ranges[keyed[j]].Hi
			return hi == nil || connectors.CompareKeys(k, hi) < 0
		})
		if at < len(keyed) && ranges[keyed[at]].Contains(k) {
			return keyed[at]
		}
		for i, r := range ranges { // not in key order: look at each
			if r.Contains(k) {
				return i
			}
		}
		return len(ranges) - 1 // in none: it shows as a difference there
	}
}

func checksumOf(ctx context.Context, typ string, cfg connectors.SourceConfig, r connectors.Range) (connectors.Checksum, error) {
	src, err := connectors.OpenSource(ctx, typ, cfg)
	if err != nil {
		return connectors.Checksum{}, err
	}
	defer src.Close()
	return rangeChecksum(ctx, src, r)
}
