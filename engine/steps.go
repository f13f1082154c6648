package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/partitioner"
)

// Steps are the steps of a run that concern the whole run — plan (or
// resume), prepare the sink, finish — each taken through State. A cluster's
// leader takes them for the runs it places on its workers (a standalone
// `datashift run` is a cluster of one: coordinator.RunJob); the partitions
// in between are the workers', each executed by an Executor.
type Steps struct {
	State State
	Log   *slog.Logger
	// Sleep and Now are the clock; nil: the real one.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
}

// Check opens the job's source and sink to refuse, before anything runs,
// what only the stores can tell: a missing table, an unknown key, column or
// cursor column, an unreachable database, a sink table without a column
// for every source column (or that cannot be created, with create_table).
// The sink's part is the sink's own check, the one Prepare starts with, so
// `datashift check` and a run refuse a sink with the same words. It
// creates no table and writes no row (opening a SQLite sink does create
// its database file).
func Check(ctx context.Context, job *Job) error {
	cfg := sourceConfig(job, nil)
	src, err := connectors.OpenSource(ctx, job.Source.Type, cfg)
	if err != nil {
		return &SpecError{Job: job.Name, Field: "source", Reason: err.Error()}
	}
	// The sink is checked with the key a run would give it. What the key
	// is shows in the run's plan; check says nothing of it.
	keyed, src, err := primaryKeyed(ctx, quiet, job, cfg, src)
	if err != nil {
		return &SpecError{Job: job.Name, Field: "source", Reason: err.Error()}
	}
	job = keyed
	defer src.Close()
	if err := upsertNeedsKey(job); err != nil {
		return err
	}
	schema, err := src.Schema(ctx)
	if err != nil {
		return &SpecError{Job: job.Name, Field: "source", Reason: err.Error()}
	}
	if _, err := connectors.ColumnIndexes(schema, job.Source.Key); err != nil {
		return &SpecError{Job: job.Name, Field: "source.key", Reason: err.Error()}
	}
	if inc := job.Incremental; inc != nil {
		idx, err := connectors.ColumnIndexes(schema, []string{inc.Cursor})
		if err != nil {
			return &SpecError{Job: job.Name, Field: "incremental.cursor", Reason: err.Error()}
		}
		if err := checkLookback(inc, schema.Field(idx[0])); err != nil {
			return &SpecError{Job: job.Name, Field: "incremental.lookback", Reason: err.Error()}
		}
		if _, ok := src.(connectors.CursorSource); !ok {
			return &SpecError{Job: job.Name, Field: "incremental", Reason: fmt.Sprintf("source type %q does not support incremental syncs", job.Source.Type)}
		}
	}
	if job.Snapshot {
		if _, ok := src.(connectors.Snapshotter); !ok {
			return &SpecError{Job: job.Name, Field: "snapshot", Reason: fmt.Sprintf("source type %q cannot export a snapshot", job.Source.Type)}
		}
	}
	sink, err := connectors.OpenSink(ctx, job.Sink.Type, sinkConfig(job))
	if err != nil {
		return &SpecError{Job: job.Name, Field: "sink", Reason: err.Error()}
	}
	defer sink.Close()
	if err := connectors.CheckSink(ctx, sink, schema); err != nil {
		return &SpecError{Job: job.Name, Field: "sink", Reason: err.Error()}
	}
	return nil
}

// Plan says what the job's next run would copy, storing nothing: the
// unfinished run it would continue (continued), or a new run planned as
// Steps.NewRun plans it, with its incremental window from the job's
// high-water mark in st (nil: the job has no state yet).
func Plan(ctx context.Context, job *Job, st State) (run *RunRecord, plan partitioner.Plan, continued bool, err error) {
	if st == nil {
		st = noState{}
	}
	var parts []PartitionRecord
	run, err = st.ActiveRun(ctx, job.Name)
	switch {
	case err == nil:
		continued = true
		if parts, err = st.Partitions(ctx, job.Name, run.ID); err != nil {
			return nil, plan, false, fmt.Errorf("job %q: read partitions of run %s: %w", job.Name, run.ID, err)
		}
	case errors.Is(err, ErrNotFound):
		if run, parts, err = (&Steps{State: st}).NewRun(ctx, job); err != nil {
			return nil, plan, false, err
		}
	default:
		return nil, plan, false, fmt.Errorf("job %q: read active run: %w", job.Name, err)
	}
	plan = partitioner.Plan{Scheme: run.Scheme, Reason: run.Reason, Key: run.PlanKey}
	for _, p := range parts {
		plan.Partitions = append(plan.Partitions, partitioner.Partition{ID: p.ID, Range: p.Range, EstRows: p.EstRows})
	}
	return run, plan, continued, nil
}

// noState is the state of a job that has never run: no runs, no mark.
type noState struct{ State }

func (noState) ActiveRun(context.Context, string) (*RunRecord, error) { return nil, ErrNotFound }
func (noState) HighWater(context.Context, string) (Mark, error)       { return Mark{}, nil }

func planSource(ctx context.Context, job *Job, src connectors.Source) (partitioner.Plan, error) {
	return partitioner.PlanSource(ctx, src, job.Source.Key, partitioner.Options{
		TargetRows:    job.Partitions.TargetRows,
		TargetBytes:   int64(job.Partitions.TargetBytes),
		MaxPartitions: job.Partitions.Max,
		Workers:       job.Parallelism,
	})
}

// NewRunID returns a run id that sorts by start time.
func NewRunID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(b)
}

// NewExecutor makes the executor of a job's partitions, for the run whose
// partitions are parts: its bad-row budget starts from what they have set
// aside already, its rate limit and reject file are the job's. close
// releases the reject file and the stores its partitions left open.
func NewExecutor(job *Job, parts []PartitionRecord) (exec *Executor, close func(), err error) {
	var used int64
	for _, p := range parts {
		used += p.Checkpoint.BadRows
	}
	if used > job.BadRows.Max {
		return nil, nil, fmt.Errorf("%w: the run has set aside %d bad rows already, bad_rows.max is %d", ErrBudgetExceeded, used, job.BadRows.Max)
	}
	exec = &Executor{Budget: NewBudget(job.BadRows.Max, used), stores: &storePool{}}
	if job.RateLimit.RowsPerSecond > 0 {
		exec.Limiter = rate.NewLimiter(rate.Limit(job.RateLimit.RowsPerSecond), int(min(job.RateLimit.RowsPerSecond, int64(job.BatchRows))))
	}
	close = exec.stores.close
	if job.BadRows.Max > 0 && job.BadRows.RejectFile != "" {
		rf, err := OpenRejectFile(job.BadRows.RejectFile)
		if err != nil {
			return nil, nil, err
		}
		exec.Rejects, close = rf, func() { exec.stores.close(); rf.Close() }
	}
	return exec, close, nil
}

// Plan is the plan step: it continues the job's unfinished run (after
// checking that it still fits the job; a failed one comes back running),
// or with restart abandons it, or plans a new one. Plan stores neither: the
// caller stores a new run (fresh) with CreateRun and a continued one with
// UpdateRun, together with whatever must happen in the same step.
func (s *Steps) Plan(ctx context.Context, job *Job, restart bool) (run *RunRecord, parts []PartitionRecord, fresh bool, err error) {
	run, err = s.State.ActiveRun(ctx, job.Name)
	switch {
	case err == nil && restart:
		if err := s.Abandon(ctx, job, run); err != nil {
			return nil, nil, false, err
		}
	case err == nil:
		run, parts, err = s.resume(ctx, job, run)
		return run, parts, false, err
	case !errors.Is(err, ErrNotFound):
		return nil, nil, false, fmt.Errorf("job %q: read active run: %w", job.Name, err)
	}
	run, parts, err = s.NewRun(ctx, job)
	return run, parts, err == nil, err
}

// NewRun plans a new run: the incremental window, the pinned inputs and the
// partitions, all from one opening of the source.
//
// A job that names no key runs by its source table's primary key, found
// here and kept in the run (RunRecord.PrimaryKey): the run's job
// (RunRecord.JobOf) has it, for the sink and the partitions' executors,
// and a resumed run keeps it.
func (s *Steps) NewRun(ctx context.Context, job *Job) (*RunRecord, []PartitionRecord, error) {
	pin := job.Pin()
	run := &RunRecord{Job: job.Name, ID: NewRunID(s.now()), State: RunRunning, Started: s.now(), SpecHash: pin.Hash(), Spec: pin}
	cfg := sourceConfig(job, nil)
	var mark Mark
	if job.Incremental != nil {
		var err error
		if mark, err = s.State.HighWater(ctx, job.Name); err != nil {
			return nil, nil, fmt.Errorf("job %q: read high-water mark: %w", job.Name, err)
		}
		if run.CursorFrom, err = cursorFrom(job, mark); err != nil {
			return nil, nil, err
		}
		// Plan the rows from the window's start: its upper end is not
		// known before the source is open, and rows arriving meanwhile
		// only make the estimates a little high.
		cfg.Cursor = &connectors.CursorWindow{Column: job.Incremental.Cursor}
		if run.CursorFrom != nil {
			cfg.Cursor.From = run.CursorFrom[0]
		}
	}
	src, err := connectors.OpenSource(ctx, job.Source.Type, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("job %q: open source: %w", job.Name, err)
	}
	named := len(job.Source.Key) > 0
	if job, src, err = primaryKeyed(ctx, s.logger(), job, cfg, src); err != nil {
		return nil, nil, err
	}
	defer src.Close()
	if err := upsertNeedsKey(job); err != nil {
		return nil, nil, err
	}
	if !named {
		run.PrimaryKey = job.Source.Key
	}
	if fs, ok := src.(connectors.FileSet); ok {
		if run.Inputs, err = fs.Files(ctx); err != nil {
			return nil, nil, fmt.Errorf("job %q: list input files: %w", job.Name, err)
		}
	}
	if job.Incremental != nil {
		if err := s.cursorUpTo(ctx, job, src, run, mark); err != nil {
			return nil, nil, err
		}
	}
	plan, err := planSource(ctx, job, src)
	if err != nil {
		return nil, nil, fmt.Errorf("job %q: %w", job.Name, err)
	}
	if err := plan.Validate(); err != nil {
		return nil, nil, fmt.Errorf("job %q: plan: %w", job.Name, err)
	}
	if !named && len(job.Source.Key) > 0 {
		plan.Reason = fmt.Sprintf("by the table's primary key (%s), as the job names no key; %s", strings.Join(job.Source.Key, ", "), plan.Reason)
	}
	run.Scheme, run.Reason, run.PlanKey = plan.Scheme, plan.Reason, plan.Key
	parts := make([]PartitionRecord, len(plan.Partitions))
	for i, p := range plan.Partitions {
		parts[i] = PartitionRecord{ID: p.ID, Range: p.Range, EstRows: p.EstRows, State: Pending}
	}
	run.PlanDuration = s.now().Sub(run.Started)
	return run, parts, nil
}

// primaryKeyed returns job with its source table's primary key for its
// key, and src opened with it, when the job names no key and the source
// can tell (connectors.PrimaryKeyer); job and src as they are otherwise. A
// primary key the source cannot read by (not among the columns read, or of
// a type it cannot order) leaves the job keyless, as it was written. src
// is closed when another is returned, and on error.
func primaryKeyed(ctx context.Context, log *slog.Logger, job *Job, cfg connectors.SourceConfig, src connectors.Source) (*Job, connectors.Source, error) {
	pk, ok := src.(connectors.PrimaryKeyer)
	if len(job.Source.Key) > 0 || !ok {
		return job, src, nil
	}
	key, err := pk.PrimaryKey(ctx)
	if err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("job %q: %w", job.Name, err)
	}
	if len(key) == 0 {
		return job, src, nil
	}
	log = log.With("job", job.Name, "key", key)
	schema, err := src.Schema(ctx)
	if err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("job %q: source schema: %w", job.Name, err)
	}
	if _, err := connectors.ColumnIndexes(schema, key); err != nil {
		log.Info("no key given, and the table's primary key is not among the columns read: copying without a key")
		return job, src, nil
	}
	cfg.Key = key
	keyedSrc, err := connectors.OpenSource(ctx, job.Source.Type, cfg)
	if err != nil {
		if connectors.IsTransient(err) {
			src.Close()
			return nil, nil, fmt.Errorf("job %q: open source: %w", job.Name, err)
		}
		log.Warn("no key given, and the table's primary key cannot order the copy: copying without a key", "err", err)
		return job, src, nil
	}
	src.Close()
	keyed := *job
	keyed.Source.Key = key
	log.Info("no key given: the run is split, read and resumed by the table's primary key")
	return &keyed, keyedSrc, nil
}

// upsertNeedsKey refuses an upsert that has no key to match rows by, once
// its table's primary key was looked for (Validate lets a table source
// name none).
func upsertNeedsKey(job *Job) error {
	if job.Sink.Mode != connectors.Upsert || len(job.Source.Key) > 0 {
		return nil
	}
	return &SpecError{Job: job.Name, Field: "source.key", Reason: fmt.Sprintf(
		"is required for sink.mode upsert (the columns rows are matched by): the job names none, and the %s table %q has no primary key among the columns read",
		job.Source.Type, job.Source.Table)}
}

// resume continues an unfinished run once it is sure the run still means
// what it meant: the same pinned spec, the same input files, a valid plan.
func (s *Steps) resume(ctx context.Context, job *Job, run *RunRecord) (*RunRecord, []PartitionRecord, error) {
	if pin := job.Pin(); run.SpecHash != pin.Hash() {
		return nil, nil, &PinError{Job: job.Name, Run: run.ID, Changes: run.Spec.Changes(pin)}
	}
	if len(run.Inputs) > 0 {
		if err := checkInputs(ctx, job, run); err != nil {
			return nil, nil, err
		}
	}
	parts, err := s.State.Partitions(ctx, job.Name, run.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("job %q: read partitions of run %s: %w", job.Name, run.ID, err)
	}
	plan := partitioner.Plan{Scheme: run.Scheme, Key: run.PlanKey}
	for _, p := range parts {
		plan.Partitions = append(plan.Partitions, partitioner.Partition{ID: p.ID, Range: p.Range, EstRows: p.EstRows})
	}
	if err := plan.Validate(); err != nil {
		return nil, nil, fmt.Errorf("job %q: the plan of run %s does not hold: %w", job.Name, run.ID, err)
	}
	if run.State == RunFailed {
		// Continue it: its done partitions stay done, the others resume
		// from what their sink committed.
		s.logger().Info("continuing the failed run", "job", job.Name, "run", run.ID, "error", run.Error)
		run.State, run.Error, run.Finished = RunRunning, "", time.Time{}
	}
	return run, parts, nil
}

func checkInputs(ctx context.Context, job *Job, run *RunRecord) error {
	src, err := connectors.OpenSource(ctx, job.Source.Type, sourceConfig(job, run))
	if err != nil {
		return fmt.Errorf("job %q: open source: %w", job.Name, err)
	}
	defer src.Close()
	fs, ok := src.(connectors.FileSet)
	if !ok {
		return &PinError{Job: job.Name, Run: run.ID, Changes: []string{"the source no longer lists input files"}}
	}
	now, err := fs.Files(ctx)
	if err != nil {
		return fmt.Errorf("job %q: list input files: %w", job.Name, err)
	}
	if changes := inputChanges(run.Inputs, now); len(changes) > 0 {
		return &PinError{Job: job.Name, Run: run.ID, Changes: changes}
	}
	return nil
}

// Abandon gives up the job's unfinished run on purpose; its rows stay in
// the sink, its commit records go.
func (s *Steps) Abandon(ctx context.Context, job *Job, run *RunRecord) error {
	job = run.JobOf(job)
	run.State, run.Finished = RunAbandoned, s.now()
	if err := s.State.FinishRun(ctx, run); err != nil {
		return fmt.Errorf("job %q: abandon run %s: %w", job.Name, run.ID, err)
	}
	s.logger().Warn("abandoned the unfinished run; its rows stay in the sink", "job", job.Name, "run", run.ID)
	s.forget(ctx, job, run)
	return nil
}

// forget drops a run's commit records from the sink once nothing will
// resume it. Failing costs only a few rows in the commit table: logged.
func (s *Steps) forget(ctx context.Context, job *Job, run *RunRecord) {
	sink, err := connectors.OpenSink(ctx, job.Sink.Type, sinkConfig(job))
	if err == nil {
		defer sink.Close()
		if log, ok := sink.(connectors.CommitLog); ok {
			err = log.Forget(ctx, job.Name, run.ID)
		}
	}
	if err != nil {
		s.logger().Warn("could not drop the run's commit records from the sink", "job", job.Name, "run", run.ID, "err", err)
	}
}

// ExportSnapshot exports the snapshot every partition of the run reads
// (snapshot: true) and records its id in the run; it lives until release.
// A snapshot lives as long as the process that exported it holds it open,
// so a resumed run takes a new one: the partitions done before the
// interruption saw the old one (said in the log).
func (s *Steps) ExportSnapshot(ctx context.Context, job *Job, run *RunRecord) (release func(), err error) {
	if run.Snapshot != "" {
		s.logger().Warn("resumed run takes a new snapshot", "job", job.Name, "run", run.ID, "old", run.Snapshot)
	}
	src, err := connectors.OpenSource(ctx, job.Source.Type, sourceConfig(job, nil))
	if err != nil {
		return nil, err
	}
	snap, ok := src.(connectors.Snapshotter)
	if !ok {
		src.Close()
		return nil, &SpecError{Job: job.Name, Field: "snapshot", Reason: fmt.Sprintf("source type %q cannot export a snapshot", job.Source.Type)}
	}
	id, end, err := snap.ExportSnapshot(ctx)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("job %q: export snapshot: %w", job.Name, err)
	}
	run.Snapshot = id
	if err := s.State.UpdateRun(ctx, run); err != nil {
		end()
		src.Close()
		return nil, err
	}
	return func() { end(); src.Close() }, nil
}

// Prepare is the prepare step: the sink's table (and commit log) made
// ready from the source's schema, and emptied in truncate mode; transient
// failures are retried.
func (s *Steps) Prepare(ctx context.Context, job *Job) error {
	err := retry(ctx, job.Retries, s.sleep, s.logRetry(job, "prepare sink"), func() error { return prepareSink(ctx, job) })
	if err != nil {
		return fmt.Errorf("prepare sink: %w", err)
	}
	return nil
}

func prepareSink(ctx context.Context, job *Job) error {
	src, err := connectors.OpenSource(ctx, job.Source.Type, sourceConfig(job, nil))
	if err != nil {
		return err
	}
	schema, err := src.Schema(ctx)
	src.Close()
	if err != nil {
		return err
	}
	sink, err := connectors.OpenSink(ctx, job.Sink.Type, sinkConfig(job))
	if err != nil {
		return err
	}
	defer sink.Close()
	return sink.Prepare(ctx, schema, job.Sink.Mode == connectors.Truncate)
}

// Finish is the finish step: it totals the partitions, records the run's
// outcome (runErr, or the first partition not done) and drops a succeeded
// run's commit records from the sink. The State keeps the callbacks to
// post with the run's end (coordinator: an outbox). A run whose partitions
// are all done has had its sink completed first (Complete), its error
// given as runErr.
func (s *Steps) Finish(job *Job, run *RunRecord, runErr error) (*RunRecord, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parts, err := s.State.Partitions(ctx, job.Name, run.ID)
	if err != nil {
		return run, fmt.Errorf("job %q: read partitions: %w", job.Name, err)
	}
	run.Rows, run.Bytes, run.BadRows = 0, 0, 0
	for _, p := range parts {
		run.Rows += p.Checkpoint.Rows
		run.Bytes += p.Checkpoint.Bytes
		run.BadRows += p.Checkpoint.BadRows
		if runErr == nil && p.State != Done {
			runErr = fmt.Errorf("partition %s ended %s: %s", p.ID, p.State, p.Error)
		}
	}
	if runErr == nil && job.BadRows.Ratio > 0 && run.Rows+run.BadRows > 0 {
		if ratio := float64(run.BadRows) / float64(run.Rows+run.BadRows); ratio > job.BadRows.Ratio {
			runErr = fmt.Errorf("%w: %d of %d rows (%.4f) exceed bad_rows.ratio %.4f", ErrBudgetExceeded, run.BadRows, run.Rows+run.BadRows, ratio, job.BadRows.Ratio)
		}
	}
	run.Finished = s.now()
	run.State = RunSucceeded
	if runErr != nil {
		run.State = RunFailed
		run.Error = runErr.Error()
		runErr = fmt.Errorf("job %q run %s failed: %w", job.Name, run.ID, runErr)
	}
	if err := s.State.FinishRun(ctx, run); err != nil {
		if runErr == nil {
			runErr = fmt.Errorf("job %q: record run: %w", job.Name, err)
		}
	} else if run.State == RunSucceeded {
		s.forget(ctx, job, run)
	}
	return run, runErr
}

// Complete is the step between a run's last partition and its finish: the
// sink's Completer, if it has one (a key's index built over the loaded
// table), transient failures retried. It may take long: a leader runs it
// beside its other work. The error is the run's, for Finish.
func (s *Steps) Complete(ctx context.Context, job *Job) error {
	err := retry(ctx, job.Retries, s.sleep, s.logRetry(job, "complete sink"), func() error {
		sink, err := connectors.OpenSink(ctx, job.Sink.Type, sinkConfig(job))
		if err != nil {
			return err
		}
		defer sink.Close()
		c, ok := sink.(connectors.Completer)
		if !ok {
			return nil
		}
		start := s.now()
		if err := c.Complete(ctx); err != nil {
			return err
		}
		if took := s.now().Sub(start); took > time.Second {
			s.logger().Info("sink completed", "job", job.Name, "took", took.Round(time.Millisecond))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("complete the sink: %w", err)
	}
	return nil
}

func (s *Steps) logRetry(job *Job, step string) func(error) {
	return func(err error) { s.logger().Warn("retrying", "job", job.Name, "step", step, "err", err) }
}

func (s *Steps) logger() *slog.Logger {
	if s.Log == nil {
		return quiet
	}
	return s.Log
}

// quiet is the logger of steps that have no log to write to.
var quiet = slog.New(slog.DiscardHandler)

func (s *Steps) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	return sleepCtx(ctx, d)
}

func (s *Steps) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
