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

// Task is one partition of a run, ready to execute.
type Task struct {
	Job       *Job
	Run       *RunRecord
	Partition string
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

// Executor runs partitions: read → batches → write → commit → checkpoint.
// It is safe for concurrent use by several partitions of one job.
type Executor struct {
	Checkpoints Checkpoints
	// Limiter caps rows per second across every partition using it; nil: none.
	Limiter *rate.Limiter
	// Progress, if set, is called after every batch and state change.
	Progress func(Progress)
	// Rejects receives rows the sink refused, within the job's error budget.
	Rejects RejectLog
	// Budget counts bad rows across a run's partitions; nil: budget of 0.
	Budget *Budget
	// Sleep waits between retries; tests and the cluster pass their own clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// ErrBudgetExceeded fails a run whose sink rejected more rows than its
// bad_rows budget allows.
var ErrBudgetExceeded = errors.New("bad rows exceed the budget")

// Execute runs a partition to the end, retrying transient failures from its
// checkpoint with exponential backoff, up to the job's retries. It returns
// nil when the partition is done, and leaves the partition record Failed
// with the reason otherwise (except when ctx is cancelled: then the record
// stays as it was, to be resumed).
func (e *Executor) Execute(ctx context.Context, t Task) error {
	err := retry(ctx, t.Job.Retries, e.sleep, func(err error) {
		e.report(t, Progress{State: Pending, Err: err})
	}, func() error { return e.attempt(ctx, t) })
	if err != nil && ctx.Err() == nil {
		e.fail(t, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// retry runs fn until it succeeds, fails with an error that is not
// transient, or has failed spec.Max+1 times, sleeping between tries with a
// backoff that doubles up to spec.MaxBackoff. onRetry, if set, hears each
// error that is retried.
func retry(ctx context.Context, spec RetrySpec, sleep func(context.Context, time.Duration) error, onRetry func(error), fn func() error) error {
	backoff := time.Duration(spec.Backoff)
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || ctx.Err() != nil || !connectors.IsTransient(err) || attempt >= spec.Max {
			return err
		}
		if onRetry != nil {
			onRetry(err)
		}
		if err := sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(backoff*2, time.Duration(spec.MaxBackoff))
	}
}

func (e *Executor) sleep(ctx context.Context, d time.Duration) error {
	if e.Sleep != nil {
		return e.Sleep(ctx, d)
	}
	return sleepCtx(ctx, d)
}

// fail records a partition's failure; the record is saved with a fresh
// context because the run's may be the one that failed.
func (e *Executor) fail(t Task, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := e.Checkpoints.LoadPartition(ctx, t.Job.Name, t.Run.ID, t.Partition)
	if err != nil {
		return
	}
	rec.State = Failed
	rec.Error = cause.Error()
	_ = e.Checkpoints.SavePartition(ctx, t.Job.Name, t.Run.ID, rec)
	e.report(t, Progress{State: Failed, Rows: rec.Checkpoint.Rows, Bytes: rec.Checkpoint.Bytes, EstRows: rec.EstRows, Err: cause})
}

func (e *Executor) report(t Task, p Progress) {
	if e.Progress == nil {
		return
	}
	p.Job, p.Run, p.Partition = t.Job.Name, t.Run.ID, t.Partition
	e.Progress(p)
}

// attempt is one try at a partition, from its checkpoint.
func (e *Executor) attempt(ctx context.Context, t Task) (err error) {
	job := t.Job
	rec, err := e.Checkpoints.LoadPartition(ctx, job.Name, t.Run.ID, t.Partition)
	if err != nil {
		return connectors.Transient(fmt.Errorf("load checkpoint of partition %s: %w", t.Partition, err))
	}
	if rec.State == Done {
		return nil
	}
	// A partition can continue after its last key only when it has a key it
	// reads in order; the others (NULL keys, physical pages, no key) commit
	// once at the end and restart from the beginning.
	keyed := len(job.Source.Key) > 0 && !rec.Range.Nulls && rec.Range.Pages == nil
	var resume *connectors.ResumePoint
	if rec.Checkpoint.Started {
		resume = &connectors.ResumePoint{SinkState: rec.Checkpoint.SinkState}
		if keyed {
			resume.LastKey = rec.Checkpoint.LastKey
		} else {
			// Restarting from the beginning: the sink drops everything of
			// the partition, committed file parts included.
			resume.SinkState = nil
			rec.Checkpoint = Checkpoint{Started: true}
		}
	}
	rec.State = Running
	rec.Attempts++
	rec.Error = ""
	rec.Checkpoint.Started = true
	rec.Checkpoint.Updated = time.Now().UTC().Format(time.RFC3339Nano)
	if err := e.Checkpoints.SavePartition(ctx, job.Name, t.Run.ID, rec); err != nil {
		return connectors.Transient(fmt.Errorf("save checkpoint of partition %s: %w", t.Partition, err))
	}

	src, err := connectors.OpenSource(ctx, job.Source.Type, sourceConfig(job, t.Run))
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer src.Close()
	schema, err := src.Schema(ctx)
	if err != nil {
		return fmt.Errorf("source schema: %w", err)
	}
	keyCols, err := connectors.ColumnIndexes(schema, job.Source.Key)
	if err != nil {
		return fmt.Errorf("source.key: %w", err)
	}
	sink, err := connectors.OpenSink(ctx, job.Sink.Type, sinkConfig(job))
	if err != nil {
		return fmt.Errorf("open sink: %w", err)
	}
	defer sink.Close()

	p := &partitionRun{
		e: e, t: t, rec: rec, sink: sink, schema: schema, keyCols: keyCols, keyed: keyed,
		// The writer's partition name carries the run, so file sinks name
		// their parts uniquely across runs appending to one dataset.
		spec: connectors.WriterSpec{Partition: t.Run.ID + "-" + t.Partition, Range: rec.Range, Schema: schema, Resume: resume},
	}
	if p.w, err = sink.OpenWriter(ctx, p.spec); err != nil {
		return fmt.Errorf("open writer for partition %s: %w", t.Partition, err)
	}
	defer func() { p.w.Close() }()

	readRange := rec.Range
	if keyed {
		readRange = readRange.Resumed(rec.Checkpoint.LastKey)
	}
	return p.copy(ctx, src, readRange)
}

// partitionRun is the state of one attempt at one partition.
type partitionRun struct {
	e       *Executor
	t       Task
	rec     PartitionRecord
	sink    connectors.Sink
	spec    connectors.WriterSpec
	w       connectors.Writer
	schema  *arrow.Schema
	keyCols []int
	keyed   bool

	lastKey     connectors.Key      // key of the last row written
	uncommitted []arrow.RecordBatch // kept only while a bad-row budget needs them
	sinceRows   int64               // rows written since the last commit
	sinceBytes  int64
}

func (p *partitionRun) copy(ctx context.Context, src connectors.Source, r connectors.Range) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan arrow.RecordBatch, batchesInFlight)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		readErr <- src.Read(ctx, r, func(b arrow.RecordBatch) error {
			b.Retain()
			select {
			case batches <- b:
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
			b.Release()
		}
	}

	job := p.t.Job
	commitRows := job.CommitRows
	if p.e.Budget.Allows() {
		// Rows of a failed commit are bisected to find the bad ones, so keep
		// commits to one batch: that bounds what must be held to retry.
		commitRows = 1
	}
	commitDue := false
	for b := range batches {
		if commitDue && p.keyed && !sameKey(p.lastKey, connectors.KeyOf(b, p.keyCols, 0)) {
			if err := p.commit(ctx); err != nil {
				b.Release()
				drain()
				return err
			}
			commitDue = false
		}
		if err := p.write(ctx, b); err != nil {
			drain()
			return err
		}
		if p.keyed && p.sinceRows >= commitRows {
			// The commit waits for the next batch: if it starts with the
			// same key, cutting here would split that key across commits
			// and a resume "after lastKey" would skip its remaining rows.
			commitDue = true
		}
	}
	if err := <-readErr; err != nil {
		return fmt.Errorf("read partition %s: %w", p.t.Partition, err)
	}
	if err := p.commit(ctx); err != nil {
		return err
	}
	p.rec.State = Done
	if err := p.save(ctx); err != nil {
		return err
	}
	p.e.report(p.t, Progress{State: Done, Rows: p.rec.Checkpoint.Rows, Bytes: p.rec.Checkpoint.Bytes, EstRows: p.rec.EstRows, BadRows: p.rec.Checkpoint.BadRows})
	return nil
}

// write writes one batch and takes ownership of it.
func (p *partitionRun) write(ctx context.Context, b arrow.RecordBatch) error {
	n := b.NumRows()
	if lim := p.e.Limiter; lim != nil {
		if err := waitRows(ctx, lim, n); err != nil {
			b.Release()
			return err
		}
	}
	if p.keyed && n > 0 {
		p.lastKey = connectors.KeyOf(b, p.keyCols, int(n-1))
	}
	size := recordBytes(b)
	p.sinceRows += n
	p.sinceBytes += size
	err := p.w.Write(ctx, b)
	if p.e.Budget.Allows() {
		p.uncommitted = append(p.uncommitted, b)
	} else {
		b.Release()
	}
	if err != nil {
		return p.recover(ctx, err)
	}
	cp := p.rec.Checkpoint
	p.e.report(p.t, Progress{State: Running, Rows: cp.Rows + p.sinceRows, Bytes: cp.Bytes + p.sinceBytes, EstRows: p.rec.EstRows, BadRows: cp.BadRows})
	return nil
}

// commit makes the rows written since the last commit durable and then
// saves the checkpoint, in that order: a crash between the two leaves rows
// past the checkpoint in the sink, which the next attempt's writer removes.
func (p *partitionRun) commit(ctx context.Context) error {
	state, err := p.w.Commit(ctx)
	if err != nil {
		return p.recover(ctx, err)
	}
	p.committed(state)
	return p.save(ctx)
}

func (p *partitionRun) committed(state []byte) {
	cp := &p.rec.Checkpoint
	if p.keyed {
		cp.LastKey = p.lastKey
	}
	cp.Rows += p.sinceRows
	cp.Bytes += p.sinceBytes
	cp.SinkState = state
	cp.Commits++
	p.sinceRows, p.sinceBytes = 0, 0
	for _, b := range p.uncommitted {
		b.Release()
	}
	p.uncommitted = p.uncommitted[:0]
}

func (p *partitionRun) save(ctx context.Context) error {
	p.rec.Checkpoint.Updated = time.Now().UTC().Format(time.RFC3339Nano)
	if err := p.e.Checkpoints.SavePartition(ctx, p.t.Job.Name, p.t.Run.ID, p.rec); err != nil {
		return connectors.Transient(fmt.Errorf("save checkpoint of partition %s: %w", p.t.Partition, err))
	}
	return nil
}

// recover handles a failed write or commit. A value the sink cannot hold is
// set aside when the job's bad-row budget allows: the uncommitted rows are
// written again in halves until the bad rows are alone. Anything else ends
// the attempt.
func (p *partitionRun) recover(ctx context.Context, cause error) error {
	var ve *connectors.ValueError
	if !errors.As(cause, &ve) || !p.e.Budget.Allows() || !p.keyed {
		return fmt.Errorf("partition %s: %w", p.t.Partition, cause)
	}
	pending := p.uncommitted
	p.uncommitted = nil
	defer func() {
		for _, b := range pending {
			b.Release()
		}
	}()
	p.sinceRows, p.sinceBytes = 0, 0
	for _, b := range pending {
		if err := p.bisect(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// bisect writes b in a fresh writer from the checkpoint, committing what goes
// through and rejecting single rows that do not.
func (p *partitionRun) bisect(ctx context.Context, b arrow.RecordBatch) error {
	if err := p.reopen(ctx); err != nil {
		return err
	}
	err := p.w.Write(ctx, b)
	var state []byte
	if err == nil {
		state, err = p.w.Commit(ctx)
	}
	if err == nil {
		p.lastKey = connectors.KeyOf(b, p.keyCols, int(b.NumRows()-1))
		p.sinceRows, p.sinceBytes = b.NumRows(), recordBytes(b)
		p.committed(state)
		return p.save(ctx)
	}
	var ve *connectors.ValueError
	if !errors.As(err, &ve) {
		return fmt.Errorf("partition %s: %w", p.t.Partition, err)
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
	spec := p.spec
	spec.Resume = &connectors.ResumePoint{LastKey: p.rec.Checkpoint.LastKey, SinkState: p.rec.Checkpoint.SinkState}
	w, err := p.sink.OpenWriter(ctx, spec)
	if err != nil {
		return fmt.Errorf("reopen writer for partition %s: %w", p.t.Partition, err)
	}
	p.w = w
	return nil
}

// reject sets one row aside and moves the checkpoint past it.
func (p *partitionRun) reject(ctx context.Context, row arrow.RecordBatch, cause *connectors.ValueError) error {
	key := connectors.KeyOf(row, p.keyCols, 0)
	if cause.Key == nil {
		cause.Key = key
	}
	if !p.e.Budget.Take() {
		return fmt.Errorf("partition %s: %w (%s); last: %v", p.t.Partition, ErrBudgetExceeded, p.e.Budget, cause)
	}
	if p.e.Rejects != nil {
		if err := p.e.Rejects.Reject(Reject{Job: p.t.Job.Name, Run: p.t.Run.ID, Partition: p.t.Partition, Key: key, Reason: cause.Error(), Row: rowValues(row)}); err != nil {
			return fmt.Errorf("write reject: %w", err)
		}
	}
	p.lastKey = key
	p.rec.Checkpoint.BadRows++
	p.sinceRows, p.sinceBytes = 0, 0
	p.committed(p.rec.Checkpoint.SinkState)
	return p.save(ctx)
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
			if run.CursorAfter != nil {
				cfg.Cursor.After = run.CursorAfter[0]
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
