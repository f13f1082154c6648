package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
	mem "github.com/datashift/datashift/connectors/memory"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/engine"
)

// The crash tests run a job on the memory connector, kill it in-process at
// one step of one commit (or of the run around it), start it again as a new
// process would, and check that the sink then holds every source row once
// and the rows it held before untouched.

var errCrash = errors.New("crashed")

// crasher kills a run at the n-th time any partition reaches step: it
// cancels the run's context, and from then on every sink, source and store
// operation fails, as in a process that is gone.
type crasher struct {
	step   string
	n      int
	cancel context.CancelFunc

	mu      sync.Mutex
	counts  map[string]int
	crashed bool
}

func (c *crasher) at(step string) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return errCrash
	}
	c.counts[step]++
	if step == c.step && c.counts[step] == c.n {
		c.crashed = true
		c.cancel()
		return errCrash
	}
	return nil
}

func (c *crasher) dead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed
}

// crashingState is the run state as a crashing process sees it.
type crashingState struct {
	engine.State
	c *crasher
}

type crashingLease struct {
	engine.Lease
	c *crasher
}

func (s crashingState) TakePartition(ctx context.Context, job, run, id, owner string) (engine.Lease, engine.PartitionRecord, error) {
	if err := s.c.at("take"); err != nil {
		return nil, engine.PartitionRecord{}, err
	}
	l, p, err := s.State.TakePartition(ctx, job, run, id, owner)
	return crashingLease{l, s.c}, p, err
}

// Save crashes before ("save") or just after ("saved") the checkpoint lands.
func (l crashingLease) Save(ctx context.Context, cp engine.Checkpoint) error {
	if err := l.c.at("save"); err != nil {
		return err
	}
	if err := l.Lease.Save(ctx, cp); err != nil {
		return err
	}
	return l.c.at("saved")
}

func (s crashingState) EndPartition(ctx context.Context, job, run, id string, epoch int64, state, reason string) error {
	if err := s.c.at("end"); err != nil {
		return err
	}
	return s.State.EndPartition(ctx, job, run, id, epoch, state, reason)
}

func (s crashingState) UpdateRun(ctx context.Context, run *engine.RunRecord) error {
	if err := s.c.at("update"); err != nil {
		return err
	}
	return s.State.UpdateRun(ctx, run)
}

func (s crashingState) FinishRun(ctx context.Context, run *engine.RunRecord) error {
	if err := s.c.at("finish"); err != nil {
		return err
	}
	return s.State.FinishRun(ctx, run)
}

// world is a memory store with a source table and a target table, and the
// coordinator state that outlives the processes run on it.
type world struct {
	t      *testing.T
	db     *mem.DB
	state  *embedded.DB
	src    arrow.RecordBatch // every source row
	others arrow.RecordBatch // rows in the target before the job, nil for none
}

var ordersSchema = func(nullableKey bool) *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: nullableKey},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
}

// orders builds rows with even ids 2*from … 2*(to-1) (odd ids are left for
// rows the job did not write); nullEvery > 0 makes every nullEvery-th id
// NULL.
func orders(from, to int64, tag string, nullEvery int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, ordersSchema(nullEvery > 0))
	defer b.Release()
	for i := from; i < to; i++ {
		if nullEvery > 0 && i%nullEvery == 0 {
			b.Field(0).AppendNull()
		} else {
			b.Field(0).(*array.Int64Builder).Append(2 * i)
		}
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("%s %d ü", tag, i))
		b.Field(2).(*array.Float64Builder).Append(float64(i) / 4)
	}
	return b.NewRecordBatch()
}

// others builds rows the job does not write: odd ids inside the source's
// key range and ids past it.
func othersRows(schema *arrow.Schema) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for _, id := range []int64{101, 103, 555, 1999, 1_000_001, 1_000_003} {
		b.Field(0).(*array.Int64Builder).Append(id)
		b.Field(1).(*array.StringBuilder).Append("not the job's")
		b.Field(2).(*array.Float64Builder).Append(-1)
	}
	return b.NewRecordBatch()
}

func newWorld(t *testing.T, rows, nullEvery int64, withOthers bool) *world {
	w := &world{t: t, db: mem.New(t.Name()), state: embedded.Memory(), src: orders(1, rows+1, "row", nullEvery)}
	t.Cleanup(func() { w.src.Release(); w.db.Drop(); w.state.Close() })
	w.db.Put("src", w.src)
	if withOthers {
		w.others = othersRows(w.src.Schema())
		t.Cleanup(w.others.Release)
		w.db.Put("dst", w.others)
	}
	return w
}

func (w *world) job(key []string, mode connectors.WriteMode) *engine.Job {
	j := &engine.Job{
		Name:        "crash",
		Source:      engine.SourceSpec{Type: mem.TypeName, DSN: w.db.DSN(), Table: "src", Key: key},
		Sink:        engine.SinkSpec{Type: mem.TypeName, DSN: w.db.DSN(), Table: "dst", Mode: mode, CreateTable: true},
		Partitions:  engine.PartitionSpec{TargetRows: 150},
		BatchRows:   25,
		CommitRows:  50,
		Parallelism: 3,
		Retries:     engine.RetrySpec{Max: 2, Backoff: engine.Duration(time.Millisecond), MaxBackoff: engine.Duration(time.Millisecond)},
	}
	j.Normalize()
	return j
}

// run runs the job as one process: its own session on the state, and
// faults from c (nil: none).
func (w *world) run(job *engine.Job, c *crasher) (*engine.RunRecord, error) {
	w.t.Helper()
	s, err := w.state.Session()
	if err != nil {
		w.t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var state engine.State = &coordinator.RunState{S: s}
	w.db.SetFaults(nil)
	if c != nil {
		c.cancel, c.counts = cancel, map[string]int{}
		state = crashingState{state, c}
		w.db.SetFaults(func(step mem.Step, _, _ string, _ int) error { return c.at(string(step)) })
		defer w.db.SetFaults(nil)
	}
	noSleep := func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	return (&engine.Runner{State: state, Sleep: noSleep}).Run(ctx, job)
}

// check compares the target with the source rows plus, unless truncated,
// the rows that were there before: same rows, each once.
func (w *world) check(mode connectors.WriteMode) {
	w.t.Helper()
	got := w.db.Rows("dst")
	if got == nil {
		w.t.Fatal("the target is empty")
	}
	defer got.Release()
	var want, have connectors.Checksum
	want.Add(w.src, nil)
	if w.others != nil && mode != connectors.Truncate {
		want.Add(w.others, nil)
	}
	have.Add(got, nil)
	seen := map[int64]bool{}
	for i := 0; i < int(got.NumRows()); i++ {
		if got.Column(0).IsNull(i) {
			continue
		}
		id := got.Column(0).(*array.Int64).Value(i)
		if seen[id] {
			w.t.Fatalf("id %d is in the target twice", id)
		}
		seen[id] = true
	}
	if have != want {
		w.t.Fatalf("target %v, want %v (source %d rows)", have, want, w.src.NumRows())
	}
}

// Every step a crash can fall on, for keyed, nullable-keyed and keyless
// sources and every write mode: the same command run again leaves the
// target equal to the source, with the target's own rows untouched.
func TestCrashBetweenEverySteps(t *testing.T) {
	sources := []struct {
		name      string
		key       []string
		nullEvery int64
		modes     []connectors.WriteMode
	}{
		{"keyed", []string{"id"}, 0, []connectors.WriteMode{connectors.Append, connectors.Truncate, connectors.Upsert}},
		{"null-keys", []string{"id"}, 9, []connectors.WriteMode{connectors.Append, connectors.Truncate, connectors.Upsert}},
		{"keyless", nil, 0, []connectors.WriteMode{connectors.Append, connectors.Truncate}},
	}
	points := []struct {
		step string
		n    []int
	}{
		{"read", []int{1, 6}},
		{string(mem.StepWrite), []int{1, 7}},
		{string(mem.StepCommit), []int{1, 4}},
		{string(mem.StepRecord), []int{2, 5}},
		{string(mem.StepCommitted), []int{1, 3, 6}},
		{"save", []int{2, 5}},
		{"saved", []int{1, 4, 8}},
		{"end", []int{1, 3}},
		{"finish", []int{1}},
	}
	for _, src := range sources {
		for _, mode := range src.modes {
			for _, p := range points {
				for _, n := range p.n {
					t.Run(fmt.Sprintf("%s/%s/%s-%d", src.name, mode, p.step, n), func(t *testing.T) {
						w := newWorld(t, 600, src.nullEvery, true)
						job := w.job(src.key, mode)
						c := &crasher{step: p.step, n: n}
						if _, err := w.run(job, c); err == nil || !c.dead() {
							t.Fatalf("the crash at %s #%d did not happen (run: %v)", p.step, n, err)
						}
						run, err := w.run(job, nil)
						if err != nil {
							t.Fatalf("run after the crash: %v", err)
						}
						if run.Rows != w.src.NumRows() {
							t.Fatalf("run says %d rows, the source has %d", run.Rows, w.src.NumRows())
						}
						w.check(mode)
					})
				}
			}
		}
	}
}

// Two crashes in a row, the second while the first is being resumed.
func TestCrashWhileResuming(t *testing.T) {
	w := newWorld(t, 900, 7, true)
	job := w.job([]string{"id"}, connectors.Append)
	for _, c := range []*crasher{{step: string(mem.StepCommitted), n: 4}, {step: "saved", n: 3}} {
		if _, err := w.run(job, c); err == nil || !c.dead() {
			t.Fatalf("the crash at %s did not happen: %v", c.step, err)
		}
	}
	if _, err := w.run(job, nil); err != nil {
		t.Fatal(err)
	}
	w.check(connectors.Append)
}

// A sink that keeps no commit record cannot say what an interrupted
// partition wrote: the resume is refused, naming the job and the
// partition, before anything more is written.
func TestResumeRefusedWithoutCommitRecords(t *testing.T) {
	w := newWorld(t, 600, 0, false)
	job := w.job([]string{"id"}, connectors.Append)
	job.Sink.Options = map[string]string{"no_commit_log": "true"}
	if _, err := w.run(job, &crasher{step: string(mem.StepCommitted), n: 3}); err == nil {
		t.Fatal("the crash did not happen")
	}
	before := w.db.Rows("dst")
	defer before.Release()
	_, err := w.run(job, nil)
	if err == nil || !strings.Contains(err.Error(), `job "crash" partition p00`) || !strings.Contains(err.Error(), "keeps no commit record") {
		t.Fatalf("resume into a sink without commit records: %v", err)
	}
	after := w.db.Rows("dst")
	defer after.Release()
	if after.NumRows() != before.NumRows() {
		t.Fatalf("the refused resume wrote %d rows", after.NumRows()-before.NumRows())
	}
}

// When the sink holds fewer commits than the checkpoints say (its commit
// records dropped), the resume is refused: guessing would lose or double
// rows.
func TestResumeRefusedWhenTheSinkLostCommits(t *testing.T) {
	w := newWorld(t, 600, 0, false)
	job := w.job([]string{"id"}, connectors.Append)
	c := &crasher{step: "saved", n: 6}
	if _, err := w.run(job, c); err == nil || !c.dead() {
		t.Fatal("the crash did not happen")
	}
	runs := activeRun(t, w, job)
	sink, err := connectors.OpenSink(context.Background(), mem.TypeName, connectors.SinkConfig{DSN: w.db.DSN(), Table: "dst"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.(connectors.CommitLog).Forget(context.Background(), job.Name, runs.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.run(job, nil); err == nil || !strings.Contains(err.Error(), "the sink lost commits") {
		t.Fatalf("resume after the sink lost its records: %v", err)
	}
}

func activeRun(t *testing.T, w *world, job *engine.Job) *engine.RunRecord {
	t.Helper()
	s, err := w.state.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run, err := (&coordinator.RunState{S: s}).ActiveRun(context.Background(), job.Name)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// A run continues only under the spec it was planned with; what only tunes
// the copy may change.
func TestResumeRefusedUnderAnotherSpec(t *testing.T) {
	w := newWorld(t, 600, 0, false)
	job := w.job([]string{"id"}, connectors.Append)
	c := &crasher{step: string(mem.StepCommitted), n: 3}
	if _, err := w.run(job, c); err == nil || !c.dead() {
		t.Fatal("the crash did not happen")
	}
	other := *job
	other.Sink.Table = "elsewhere"
	other.Source.Key = nil
	_, err := w.run(&other, nil)
	var pe *engine.PinError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), `sink.table: "dst" → "elsewhere"`) || !strings.Contains(err.Error(), "source.key") {
		t.Fatalf("resume under another sink table: %v", err)
	}
	tuned := *job
	tuned.Parallelism, tuned.CommitRows, tuned.BatchRows = 1, 37, 11
	if _, err := w.run(&tuned, nil); err != nil {
		t.Fatalf("resume with other parallelism and batch sizes: %v", err)
	}
	w.check(connectors.Append)
}
