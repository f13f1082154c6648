package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/time/rate"

	"github.com/datashift/datashift/connectors"
)

// batchesInFlight bounds the memory of one partition: the reader runs at most
// this many batches ahead of the writer.
const batchesInFlight = 4

// Task is one partition of a run, taken under a lease, ready to execute.
type Task struct {
	Job       *Job
	Run       *RunRecord
	Partition PartitionRecord // its range, and its last checkpoint
	Lease     Lease
}

// Progress is what an executor reports as a partition moves.
type Progress struct {
	Job, Run, Partition string
	State               string
	Rows, Bytes         int64 // written so far in this partition (committed or not)
	EstRows             int64
	BadRows             int64
	Err                 error
}

// Executor runs partitions: read → batches → write → commit (rows and the
// sink's commit record together) → checkpoint under the lease. It is safe
// for concurrent use by several partitions of one job, and it serves a
// standalone run and a cluster worker alike: it writes nothing but through
// the task's lease, and returns the partition's outcome to its caller.
type Executor struct {
	// Limiter caps rows per second across every partition using it; nil: none.
	Limiter *rate.Limiter
	// Progress, if set, is called after every batch and state change.
	Progress func(Progress)
	// Rejects receives rows the sink refused, within the job's error budget.
	Rejects RejectLog
	// Budget counts bad rows across a run's partitions; nil: budget of 0.
	Budget *Budget
	// Sleep waits between retries and Now tells the time; tests and the
	// cluster pass their own clock. Nil: the real one.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time

	// stores keeps the source and sink of partitions that ended well for
	// the next one (see storePool); nil: each attempt opens its own.
	// NewExecutor makes one, and its close closes it.
	stores *storePool
}

// ErrBudgetExceeded fails a run whose sink rejected more rows than its
// bad_rows budget allows.
var ErrBudgetExceeded = errors.New("bad rows exceed the budget")

// Execute runs a partition to its end under t.Lease, retrying transient
// failures with exponential backoff up to the job's retries; each attempt
// continues from what the sink's commit record says is committed. It
// returns the partition's last checkpoint and
//
//   - nil when the partition is done;
//   - an error wrapping ErrLeaseLost when the lease was taken over: the
//     copy stopped at once, and the new holder continues it;
//   - the context's error when ctx ended: the partition resumes later;
//   - otherwise the reason the partition failed.
//
// Recording the outcome (done, failed, given back) is the caller's.
func (e *Executor) Execute(ctx context.Context, t Task) (Checkpoint, error) {
	cp := t.Partition.Checkpoint
	cp.Error = "" // an earlier attempt's failure, now being retried
	err := retry(ctx, t.Job.Retries, e.sleep, func(err error) {
		e.report(t, Progress{State: Pending, Rows: cp.Rows, Bytes: cp.Bytes, EstRows: t.Partition.EstRows, Err: err})
	}, func() error { return e.attempt(ctx, t, &cp) })
	switch {
	case ctx.Err() != nil:
		return cp, ctx.Err()
	case err != nil && !errors.Is(err, ErrLeaseLost):
		// A holder that lost its lease may see its copy fail in other ways
		// first (the new holder's rows in its way, say): what ended the
		// attempt is then not this partition's failure.
		if lerr := t.Lease.Check(ctx); errors.Is(lerr, ErrLeaseLost) {
			return cp, fmt.Errorf("partition %s: %w (the attempt ended with: %v)", t.Partition.ID, lerr, err)
		}
		e.report(t, Progress{State: Failed, Rows: cp.Rows, Bytes: cp.Bytes, EstRows: t.Partition.EstRows, BadRows: cp.BadRows, Err: err})
	}
	return cp, err
}

// retry runs fn until it succeeds, fails with an error that is not
// transient, or has failed spec.Max+1 times, sleeping between tries with a
// backoff that doubles up to spec.MaxBackoff. A store out of connections
// (connectors.IsBusy) is waited for without using up tries, for up to
// busyWaitLimit in all: often the run's own partitions fill it, and it
// has room again as they end. onRetry, if set, hears each error that is
// retried.
func retry(ctx context.Context, spec RetrySpec, sleep func(context.Context, time.Duration) error, onRetry func(error), fn func() error) error {
	var busyWait time.Duration
	for attempt, busy := 0, 0; ; attempt++ {
		err := fn()
		if err == nil || ctx.Err() != nil || !connectors.IsTransient(err) {
			return err
		}
		wait := spec.Wait(attempt - busy)
		if connectors.IsBusy(err) && busyWait < busyWaitLimit {
			busy++
			wait = min(spec.Wait(busy-1), busyBackoffLimit)
			busyWait += wait
		} else if attempt-busy >= spec.Max {
			return err
		}
		if onRetry != nil {
			onRetry(err)
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// busyWaitLimit bounds how long a partition waits, in all, for a store
// out of connections to have room before its retries count again;
// busyBackoffLimit bounds each wait, so that it takes the room soon after
// another partition frees it.
const (
	busyWaitLimit    = 10 * time.Minute
	busyBackoffLimit = 2 * time.Second
)

// Wait is the wait before retry number attempt+1 (attempt counts from
// 0): retries.backoff, doubled each time up to retries.max_backoff.
func (r RetrySpec) Wait(attempt int) time.Duration {
	d := time.Duration(r.Backoff)
	for i := 0; i < attempt && d < time.Duration(r.MaxBackoff); i++ {
		d *= 2
	}
	return min(d, max(time.Duration(r.MaxBackoff), time.Duration(r.Backoff)))
}

func (e *Executor) sleep(ctx context.Context, d time.Duration) error {
	if e.Sleep != nil {
		return e.Sleep(ctx, d)
	}
	return sleepCtx(ctx, d)
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Executor) report(t Task, p Progress) {
	if e.Progress == nil {
		return
	}
	p.Job, p.Run, p.Partition = t.Job.Name, t.Run.ID, t.Partition.ID
	e.Progress(p)
}

// readOrder is how a partition's rows are ordered, which decides where it
// may commit and how it resumes.
type readOrder int

const (
	// byKey: a key range read in key order; commits fall between keys and
	// a resume reads after the last key committed.
	byKey readOrder = iota
	// byPosition: a keyless range a PositionReader reads in a fixed order;
	// commits fall between batches, a resume reads after the last position.
	byPosition
	// whole: a keyless range read in no fixed order; it commits once, at
	// the end, so an interrupted attempt has committed nothing and the next
	// starts over.
	whole
)

func (o readOrder) String() string {
	return [...]string{"key order", "position order", "no fixed order"}[o]
}

// attempt is one try at a partition; cp is its checkpoint, kept up to date
// across attempts.
func (e *Executor) attempt(ctx context.Context, t Task, cp *Checkpoint) (err error) {
	job, part := t.Job, t.Partition
	st, err := e.openStores(ctx, t)
	if err != nil {
		return err
	}
	// Stores that saw an error may hold a broken connection or a half
	// state: only those of an attempt that ended well serve the next.
	defer func() {
		if err == nil {
			e.stores.put(st)
		} else {
			st.close()
		}
	}()
	src, sink := st.src, st.sink
	schema, err := src.Schema(ctx)
	if err != nil {
		return fmt.Errorf("source schema: %w", err)
	}
	keyCols, err := connectors.ColumnIndexes(schema, job.Source.Key)
	if err != nil {
		return fmt.Errorf("source.key: %w", err)
	}

	spec := connectors.WriterSpec{Job: job.Name, Run: t.Run.ID, Partition: part.ID, Lease: t.Lease.Epoch(), Range: part.Range, Schema: schema}
	if err := e.settle(ctx, t, sink, spec, cp); err != nil {
		return err
	}
	if cp.Done {
		return e.save(ctx, t, cp)
	}
	order := whole
	pr, positioned := src.(connectors.PositionReader)
	switch {
	case len(keyCols) > 0 && !part.Range.Nulls && part.Range.Pages == nil:
		order = byKey
	case positioned && pr.Positioned(part.Range):
		order = byPosition
	}
	if order == whole && cp.Commits > 0 {
		return fmt.Errorf("job %q partition %s: the sink holds %d commits of a partition read in no fixed order, which commits only when it is done; it cannot be continued", job.Name, part.ID, cp.Commits)
	}

	cp.Started = true
	if err := e.save(ctx, t, cp); err != nil {
		return err
	}
	p := &partitionRun{e: e, t: t, cp: cp, sink: sink, spec: spec, keyCols: keyCols, order: order, position: cp.Position}
	if p.w, err = sink.OpenWriter(ctx, spec); err != nil {
		return fmt.Errorf("open writer for partition %s: %w", part.ID, err)
	}
	defer func() { p.w.Close() }()
	r := part.Range.Resumed(cp.Position)
	filter, err := NewCursorFilter(job, t.Run, schema)
	if err != nil {
		return fmt.Errorf("partition %s: %w", part.ID, err)
	}
	read := func(ctx context.Context, fn func(arrow.RecordBatch, connectors.Key) error) error {
		if filter != nil {
			// The rows dropped at the window's ends are dropped again when
			// a resume reads them again: the window is fixed in the run. A
			// batch keeps the position of its last row read, kept or not.
			next := fn
			fn = func(b arrow.RecordBatch, last connectors.Key) error {
				kept, err := filter.Apply(b)
				if err != nil || kept == nil {
					return err
				}
				defer kept.Release()
				return next(kept, last)
			}
		}
		if order == byPosition {
			return pr.ReadPositioned(ctx, r, fn)
		}
		return src.Read(ctx, r, func(b arrow.RecordBatch) error { return fn(b, nil) })
	}
	return p.copy(ctx, read)
}

// settle makes cp agree with what the sink holds before anything is
// written: it claims the partition in the sink's commit log under the
// task's lease and takes the sink's record as the truth. A sink without a
// commit log cannot say what an interrupted attempt wrote, so a partition
// that may have written is refused rather than guessed at.
func (e *Executor) settle(ctx context.Context, t Task, sink connectors.Sink, spec connectors.WriterSpec, cp *Checkpoint) error {
	job, part := t.Job, t.Partition
	log, ok := sink.(connectors.CommitLog)
	if !ok {
		if cp.Started {
			return fmt.Errorf("job %q partition %s: sink type %q keeps no commit record, so the rows an interrupted attempt wrote cannot be told from the rest; continuing could write rows twice (start over into an emptied target instead)", job.Name, part.ID, job.Sink.Type)
		}
		return nil
	}
	rec, err := log.Claim(ctx, spec)
	if err != nil {
		return fmt.Errorf("partition %s: claim in the sink: %w", part.ID, err)
	}
	if rec.Commits < cp.Commits {
		return fmt.Errorf("job %q partition %s: the checkpoint counts %d commits but the sink's commit record %d: the sink lost commits (its commit table dropped, the target restored from a backup?); refusing to guess what it holds", job.Name, part.ID, cp.Commits, rec.Commits)
	}
	if extra := rec.BadRows - cp.BadRows; extra > 0 && !e.Budget.TakeN(extra) {
		return fmt.Errorf("partition %s: %w (%s)", part.ID, ErrBudgetExceeded, e.Budget)
	}
	cp.Position, cp.Rows, cp.Bytes, cp.BadRows, cp.Commits, cp.Done = rec.Position, rec.Rows, rec.Bytes, rec.BadRows, rec.Commits, rec.Done
	return nil
}

func (e *Executor) save(ctx context.Context, t Task, cp *Checkpoint) error {
	cp.Updated = e.now()
	err := t.Lease.Save(ctx, *cp)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrLeaseLost):
		return fmt.Errorf("partition %s: save checkpoint: %w", t.Partition.ID, err)
	}
	return connectors.Transient(fmt.Errorf("partition %s: save checkpoint: %w", t.Partition.ID, err))
}

// partitionRun is the state of one attempt at one partition.
type partitionRun struct {
	e       *Executor
	t       Task
	cp      *Checkpoint
	sink    connectors.Sink
	spec    connectors.WriterSpec
	w       connectors.Writer
	keyCols []int
	order   readOrder

	position    connectors.Key      // of the last row written
	uncommitted []arrow.RecordBatch // kept only while a bad-row budget needs them
	sinceRows   int64               // rows written since the last commit
	sinceBytes  int64
}

// batch is a record batch with the read position of its last row.
type batch struct {
	rec  arrow.RecordBatch
	last connectors.Key
}

func (p *partitionRun) copy(ctx context.Context, read func(context.Context, func(arrow.RecordBatch, connectors.Key) error) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan batch, batchesInFlight)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		readErr <- read(ctx, func(b arrow.RecordBatch, last connectors.Key) error {
			b.Retain()
			select {
			case batches <- batch{b, last}:
				return nil
			case <-ctx.Done():
				b.Release()
				return ctx.Err()
			}
		})
	}()
	drain := func() {
		cancel()
		for b := range batches {
			b.rec.Release()
		}
	}

	commitRows := p.t.Job.CommitRows
	if p.e.Budget.Allows() && p.order == byKey {
		// Rows of a failed commit are bisected to find the bad ones, so keep
		// commits to one batch: that bounds what must be held to retry.
		commitRows = 1
	}
	commitDue := false
	for b := range batches {
		if commitDue && (p.order == byPosition || !sameKey(p.position, connectors.KeyOf(b.rec, p.keyCols, 0))) {
			if err := p.commit(ctx, false); err != nil {
				b.rec.Release()
				drain()
				return err
			}
			commitDue = false
		}
		if err := p.write(ctx, b); err != nil {
			drain()
			return err
		}
		// A keyed commit waits for the next batch: if it starts with the
		// same key, cutting here would split that key across commits and a
		// resume "after the last key" would skip its remaining rows.
		commitDue = p.order != whole && p.sinceRows >= commitRows
	}
	if err := <-readErr; err != nil {
		return fmt.Errorf("read partition %s: %w", p.t.Partition.ID, err)
	}
	if err := p.commit(ctx, true); err != nil {
		return err
	}
	p.e.report(p.t, Progress{State: Done, Rows: p.cp.Rows, Bytes: p.cp.Bytes, EstRows: p.t.Partition.EstRows, BadRows: p.cp.BadRows})
	return nil
}

// write writes one batch and takes ownership of it.
func (p *partitionRun) write(ctx context.Context, b batch) error {
	n := b.rec.NumRows()
	if lim := p.e.Limiter; lim != nil {
		if err := waitRows(ctx, lim, n); err != nil {
			b.rec.Release()
			return err
		}
	}
	if n > 0 {
		switch p.order {
		case byKey:
			p.position = connectors.KeyOf(b.rec, p.keyCols, int(n-1))
		case byPosition:
			p.position = b.last
		}
	}
	size := recordBytes(b.rec)
	p.sinceRows += n
	p.sinceBytes += size
	err := p.w.Write(ctx, b.rec)
	if p.e.Budget.Allows() && p.order == byKey {
		p.uncommitted = append(p.uncommitted, b.rec)
	} else {
		b.rec.Release()
	}
	if err != nil {
		return p.recover(ctx, err)
	}
	cp := p.cp
	p.e.report(p.t, Progress{State: Running, Rows: cp.Rows + p.sinceRows, Bytes: cp.Bytes + p.sinceBytes, EstRows: p.t.Partition.EstRows, BadRows: cp.BadRows})
	return nil
}

// record is the sink's commit record for the rows written so far.
func (p *partitionRun) record(done bool) connectors.CommitRecord {
	cp := p.cp
	return connectors.CommitRecord{
		Job: p.spec.Job, Run: p.spec.Run, Partition: p.spec.Partition, Lease: p.spec.Lease,
		Position: p.position, Rows: cp.Rows + p.sinceRows, Bytes: cp.Bytes + p.sinceBytes,
		BadRows: cp.BadRows, Commits: cp.Commits + 1, Done: done,
	}
}

// commit makes the rows written since the last commit durable together
// with the sink's record of them, then saves the checkpoint under the
// lease. A crash between the two costs nothing: the next attempt takes the
// sink's record. done marks the partition's last commit.
func (p *partitionRun) commit(ctx context.Context, done bool) error {
	rec := p.record(done)
	if err := p.w.Commit(ctx, rec); err != nil {
		if err := p.recover(ctx, err); err != nil || !done {
			return err
		}
		// The bad rows are set aside and the rest committed; the last
		// commit, which says so, is still to come.
		rec = p.record(true)
		if err := p.w.Commit(ctx, rec); err != nil {
			return fmt.Errorf("partition %s: %w", p.t.Partition.ID, err)
		}
	}
	return p.committed(ctx, rec)
}

func (p *partitionRun) committed(ctx context.Context, rec connectors.CommitRecord) error {
	cp := p.cp
	cp.Position, cp.Rows, cp.Bytes, cp.BadRows, cp.Commits, cp.Done = rec.Position, rec.Rows, rec.Bytes, rec.BadRows, rec.Commits, rec.Done
	p.sinceRows, p.sinceBytes = 0, 0
	for _, b := range p.uncommitted {
		b.Release()
	}
	p.uncommitted = p.uncommitted[:0]
	return p.e.save(ctx, p.t, cp)
}

// recover handles a failed write or commit. A value the sink cannot hold is
// set aside when the job's bad-row budget allows: the uncommitted rows are
// written again in halves until the bad rows are alone. Anything else ends
// the attempt.
func (p *partitionRun) recover(ctx context.Context, cause error) error {
	var ve *connectors.ValueError
	if !errors.As(cause, &ve) || !p.e.Budget.Allows() || p.order != byKey {
		return fmt.Errorf("partition %s: %w", p.t.Partition.ID, cause)
	}
	pending := p.uncommitted
	p.uncommitted = nil
	defer func() {
		for _, b := range pending {
			b.Release()
		}
	}()
	p.sinceRows, p.sinceBytes = 0, 0
	p.position = p.cp.Position
	for _, b := range pending {
		if err := p.bisect(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// bisect writes b in a fresh writer, committing what goes through and
// rejecting single rows that do not.
func (p *partitionRun) bisect(ctx context.Context, b arrow.RecordBatch) error {
	if err := p.reopen(ctx); err != nil {
		return err
	}
	p.position = connectors.KeyOf(b, p.keyCols, int(b.NumRows()-1))
	p.sinceRows, p.sinceBytes = b.NumRows(), recordBytes(b)
	rec := p.record(false)
	err := p.w.Write(ctx, b)
	if err == nil {
		err = p.w.Commit(ctx, rec)
	}
	if err == nil {
		return p.committed(ctx, rec)
	}
	p.position, p.sinceRows, p.sinceBytes = p.cp.Position, 0, 0
	var ve *connectors.ValueError
	if !errors.As(err, &ve) {
		return fmt.Errorf("partition %s: %w", p.t.Partition.ID, err)
	}
	if b.NumRows() == 1 {
		return p.reject(ctx, b, ve)
	}
	half := b.NumRows() / 2
	lo, hi := b.NewSlice(0, half), b.NewSlice(half, b.NumRows())
	defer lo.Release()
	defer hi.Release()
	if err := p.bisect(ctx, lo); err != nil {
		return err
	}
	return p.bisect(ctx, hi)
}

func (p *partitionRun) reopen(ctx context.Context) error {
	p.w.Close()
	w, err := p.sink.OpenWriter(ctx, p.spec)
	if err != nil {
		return fmt.Errorf("reopen writer for partition %s: %w", p.t.Partition.ID, err)
	}
	p.w = w
	return nil
}

// reject sets one row aside: the row goes to the reject log, and a commit
// with no rows moves the sink's record past it, so that a resume does not
// meet it (and count it) again.
func (p *partitionRun) reject(ctx context.Context, row arrow.RecordBatch, cause *connectors.ValueError) error {
	key := connectors.KeyOf(row, p.keyCols, 0)
	if cause.Key == nil {
		cause.Key = key
	}
	if !p.e.Budget.Take() {
		return fmt.Errorf("partition %s: %w (%s); last: %v", p.t.Partition.ID, ErrBudgetExceeded, p.e.Budget, cause)
	}
	if p.e.Rejects != nil {
		if err := p.e.Rejects.Reject(Reject{Job: p.t.Job.Name, Run: p.t.Run.ID, Partition: p.t.Partition.ID, Key: key, Reason: cause.Error(), Row: rowValues(row)}); err != nil {
			return fmt.Errorf("write reject: %w", err)
		}
	}
	if err := p.reopen(ctx); err != nil {
		return err
	}
	p.position = key
	rec := p.record(false)
	rec.BadRows++
	if err := p.w.Commit(ctx, rec); err != nil {
		return fmt.Errorf("partition %s: commit past a bad row: %w", p.t.Partition.ID, err)
	}
	return p.committed(ctx, rec)
}

func waitRows(ctx context.Context, lim *rate.Limiter, n int64) error {
	for n > 0 {
		step := min(n, int64(lim.Burst()))
		if err := lim.WaitN(ctx, int(step)); err != nil {
			return err
		}
		n -= step
	}
	return nil
}

// recordBytes is the size of a batch's buffers: what a partition moved.
func recordBytes(b arrow.RecordBatch) int64 {
	var n int64
	for _, col := range b.Columns() {
		for _, buf := range col.Data().Buffers() {
			if buf != nil {
				n += int64(buf.Len())
			}
		}
	}
	return n
}

// sameKey reports whether two keys might be equal in the source's
// collation. It errs towards "equal" (case, accents and trailing spaces
// folded away): a wrong "equal" only delays a commit, a wrong "different"
// could split a key across commits.
func sameKey(a, b connectors.Key) bool {
	if a == nil || b == nil || len(a) != len(b) {
		return false
	}
	for i := range a {
		x, xok := a[i].(string)
		y, yok := b[i].(string)
		if xok && yok {
			if foldText(x) != foldText(y) {
				return false
			}
			continue
		}
		if connectors.CompareValues(a[i], b[i]) != 0 {
			return false
		}
	}
	return true
}

func foldText(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return strings.TrimRight(b.String(), " ")
}

func rowValues(b arrow.RecordBatch) map[string]string {
	out := make(map[string]string, b.NumCols())
	for i, f := range b.Schema().Fields() {
		v := connectors.ValueAt(b.Column(i), 0)
		if v == nil {
			continue
		}
		out[f.Name] = fmt.Sprint(v)
	}
	return out
}

func sourceConfig(job *Job, run *RunRecord) connectors.SourceConfig {
	cfg := connectors.SourceConfig{
		DSN: job.Source.DSN, Table: job.Source.Table, Query: job.Source.Query,
		Key: job.Source.Key, Columns: job.Source.Columns, Where: job.Source.Where,
		BatchRows: job.BatchRows, BatchBytes: int(job.BatchBytes), Options: job.Source.Options,
	}
	if run != nil {
		cfg.Snapshot = run.Snapshot
		if job.Incremental != nil && run.CursorUpTo != nil {
			cfg.Cursor = &connectors.CursorWindow{Column: job.Incremental.Cursor, UpTo: run.CursorUpTo[0]}
			if run.CursorFrom != nil {
				cfg.Cursor.From = run.CursorFrom[0]
			}
		}
	}
	return cfg
}

func sinkConfig(job *Job) connectors.SinkConfig {
	return connectors.SinkConfig{
		DSN: job.Sink.DSN, Table: job.Sink.Table, Mode: job.Sink.Mode, Key: job.Source.Key,
		CreateTable: job.Sink.CreateTable, Options: job.Sink.Options,
	}
}
