// Package partitioner splits a source into key-range partitions that a run
// copies in parallel.
//
// Planning is pure: Split takes what is known about the source (key columns,
// connectors.Stats, the target partition size and the number of free slots)
// and returns a Plan, with no I/O, so the leader can plan from a snapshot and
// tests can plan millions of synthetic keys. PlanSource is the thin edge that
// asks a connectors.Source for its schema and statistics and then calls Split.
//
// The loop a caller writes:
//
//  1. plan, err := partitioner.PlanSource(ctx, src, key, opts) — or build an
//     Input from statistics gathered elsewhere and call Split.
//  2. if err := plan.Validate(); err != nil { refuse to run }. Split's plans
//     always validate; the check is for plans read back from storage
//     (ZooKeeper), where a corrupted or hand-edited plan would lose rows.
//  3. store plan.Partitions (they marshal to JSON with typed keys) and hand
//     each Partition.Range to Source.Read / Sink.OpenWriter.
//
// What a plan promises: its ranges cover every row of the source exactly once.
// Key ranges are half-open [Lo, Hi), the first unbounded below and the last
// unbounded above, with strictly increasing split points; when any key column
// is nullable there is one more partition with Range.Nulls, whatever the NULL
// estimate says, because estimates go stale and a lost row is not acceptable.
// A source with no usable key is split by physical pages when the store
// reports a page count (PostgreSQL ctid), else copied as one Range{}.
//
// What a plan only estimates: balance. Split points are sample quantiles, so
// skewed keys still give partitions of similar size, but a key value that
// alone holds more rows than the target cannot be split: its partition is
// bigger, and Plan.Reason says so.
package partitioner
