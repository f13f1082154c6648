package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datashift/datashift/connectors"
	mem "github.com/datashift/datashift/connectors/memory"
	"github.com/datashift/datashift/coordinator/store"
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

func (c *crasher) failed() error {
	if c.dead() {
		return errCrash
	}
	return nil
}

// crashingStore is a process's session on the coordinator store as the
// process sees it when it crashes: every call goes to the real session
// until the crash point, and fails with errCrash from there on (those the
// node makes while it stops included), so nothing more lands. The crash
// points are the store's writes that matter, recognised by what they do:
//
//	take    the leader's assignment of a partition (a Multi creating /assign/…)
//	save    a worker's fenced checkpoint save (a Check of …/partitions/P
//	        and a Set of …/progress/P), before it lands
//	saved   just after such a save landed
//	end     a worker's final report (a progress Set with the deletion of
//	        its /assign/… node), before it lands
//	finish  the finish step (a Multi writing /history/…), before it lands
//	start   the leader's start of a run (a Multi consuming a /queue/…
//	        trigger), before it lands
type crashingStore struct {
	store.Store
	c *crasher
}

// storeStep names what a Multi does, "" for none of the crash points.
func storeStep(ops []store.Op) string {
	var partCheck, progressSet, assignCreate, assignDelete, history, queue bool
	for _, op := range ops {
		switch {
		case strings.HasPrefix(op.Path, "/history/") && (op.Kind == store.OpCreate || op.Kind == store.OpSet):
			history = true
		case strings.HasPrefix(op.Path, "/queue/") && op.Kind == store.OpDelete:
			queue = true
		case strings.HasPrefix(op.Path, "/assign/") && op.Kind == store.OpCreate:
			assignCreate = true
		case strings.HasPrefix(op.Path, "/assign/") && op.Kind == store.OpDelete:
			assignDelete = true
		case strings.HasPrefix(op.Path, "/runs/") && strings.Contains(op.Path, "/partitions/") && op.Kind == store.OpCheck:
			partCheck = true
		case strings.HasPrefix(op.Path, "/runs/") && strings.Contains(op.Path, "/progress/") && op.Kind == store.OpSet:
			progressSet = true
		}
	}
	switch {
	case history:
		return "finish"
	case queue:
		return "start"
	case assignCreate:
		return "take"
	case progressSet && assignDelete:
		return "end"
	case len(ops) == 2 && partCheck && progressSet:
		return "save"
	}
	return ""
}

func (s crashingStore) Multi(ctx context.Context, ops ...store.Op) ([]store.OpResult, error) {
	if err := s.c.failed(); err != nil {
		return nil, err
	}
	step := storeStep(ops)
	if step != "" {
		if err := s.c.at(step); err != nil {
			return nil, err
		}
	}
	res, err := s.Store.Multi(ctx, ops...)
	if err == nil && step == "save" {
		if err := s.c.at("saved"); err != nil {
			return nil, err
		}
	}
	return res, err
}

func (s crashingStore) Get(ctx context.Context, path string) ([]byte, store.Stat, error) {
	if err := s.c.failed(); err != nil {
		return nil, store.Stat{}, err
	}
	return s.Store.Get(ctx, path)
}

func (s crashingStore) Exists(ctx context.Context, path string) (bool, store.Stat, error) {
	if err := s.c.failed(); err != nil {
		return false, store.Stat{}, err
	}
	return s.Store.Exists(ctx, path)
}

func (s crashingStore) Children(ctx context.Context, path string) ([]string, error) {
	if err := s.c.failed(); err != nil {
		return nil, err
	}
	return s.Store.Children(ctx, path)
}

func (s crashingStore) Create(ctx context.Context, path string, data []byte, flags store.Flags) (string, error) {
	if err := s.c.failed(); err != nil {
		return "", err
	}
	return s.Store.Create(ctx, path, data, flags)
}

func (s crashingStore) Set(ctx context.Context, path string, data []byte, version int32) (store.Stat, error) {
	if err := s.c.failed(); err != nil {
		return store.Stat{}, err
	}
	return s.Store.Set(ctx, path, data, version)
}

func (s crashingStore) Delete(ctx context.Context, path string, version int32) error {
	if err := s.c.failed(); err != nil {
		return err
	}
	return s.Store.Delete(ctx, path, version)
}

func (s crashingStore) GetW(ctx context.Context, path string) ([]byte, store.Stat, <-chan store.Event, error) {
	if err := s.c.failed(); err != nil {
		return nil, store.Stat{}, nil, err
	}
	return s.Store.GetW(ctx, path)
}

func (s crashingStore) ExistsW(ctx context.Context, path string) (bool, store.Stat, <-chan store.Event, error) {
	if err := s.c.failed(); err != nil {
		return false, store.Stat{}, nil, err
	}
	return s.Store.ExistsW(ctx, path)
}

func (s crashingStore) ChildrenW(ctx context.Context, path string) ([]string, <-chan store.Event, error) {
	if err := s.c.failed(); err != nil {
		return nil, nil, err
	}
	return s.Store.ChildrenW(ctx, path)
}

// crashing is a process that crashes as c says: its store calls through a
// crashingStore, its memory connector's faults (read, write, commit,
// record, committed) from c, and its context cancelled at the crash.
// db may be nil (a job on other connectors).
func crashing(c *crasher, db *mem.DB) (proc, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.counts, c.crashed = cancel, map[string]int{}, false
	if db != nil {
		db.SetFaults(func(step mem.Step, _, _ string, _ int) error { return c.at(string(step)) })
	}
	return proc{ctx: ctx, wrap: func(s store.Store) store.Store { return crashingStore{s, c} }}, func() {
		if db != nil {
			db.SetFaults(nil)
		}
		cancel()
	}
}

// world is a memory store with a source table and a target table, and the
// coordinator state that outlives the processes run on it.
type world struct {
	t      *testing.T
	db     *mem.DB
	home   *home
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
	w := &world{t: t, db: mem.New(t.Name()), home: newHome(t), src: orders(1, rows+1, "row", nullEvery)}
	t.Cleanup(func() { w.src.Release(); w.db.Drop() })
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
	p := proc{}
	if c != nil {
		var done func()
		p, done = crashing(c, w.db)
		defer done()
	}
	p.Sleep = shortSleep
	if os.Getenv("DEBUGLOG") != "" {
		p.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return w.home.run(job, p)
}

// shortSleep is the clock of the crash tests: every wait (retry backoffs,
// the node's pauses after a failed store call) cut to a millisecond.
func shortSleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(min(d, time.Millisecond)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
		{"start", []int{1}},
		{"take", []int{1, 3}},
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
// partition wrote: its resume is refused, naming the job and the
// partition, before anything more of it is written. (The partitions that
// had not started go on: they are safe to copy, and the cluster lets the
// others of a failing run end.)
func TestResumeRefusedWithoutCommitRecords(t *testing.T) {
	w := newWorld(t, 600, 0, false)
	job := w.job([]string{"id"}, connectors.Append)
	job.Sink.Options = map[string]string{"no_commit_log": "true"}
	if _, err := w.run(job, &crasher{step: string(mem.StepCommitted), n: 3}); err == nil {
		t.Fatal("the crash did not happen")
	}
	run := w.home.activeRun(job)
	parts, err := w.home.state().Partitions(context.Background(), job.Name, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var started []engine.PartitionRecord
	for _, p := range parts {
		if p.Checkpoint.Started {
			started = append(started, p)
		}
	}
	if len(started) == 0 {
		t.Fatal("no partition had started before the crash: the test proves nothing")
	}
	before := w.rowsIn(started)
	_, err = w.run(job, nil)
	if err == nil || !strings.Contains(err.Error(), `job "crash" partition p00`) || !strings.Contains(err.Error(), "keeps no commit record") {
		t.Fatalf("resume into a sink without commit records: %v", err)
	}
	if after := w.rowsIn(started); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the refused resume wrote into the started partitions: rows by partition %v, before %v", after, before)
	}
}

// rowsIn counts the target's rows in each partition's range.
func (w *world) rowsIn(parts []engine.PartitionRecord) []int {
	got := w.db.Rows("dst")
	if got == nil {
		return make([]int, len(parts))
	}
	defer got.Release()
	out := make([]int, len(parts))
	ids := got.Column(0).(*array.Int64)
	for i := 0; i < ids.Len(); i++ {
		for j, p := range parts {
			if !ids.IsNull(i) && p.Range.Contains(connectors.Key{ids.Value(i)}) {
				out[j]++
			}
		}
	}
	return out
}

// When the sink holds fewer commits than the checkpoints say (its commit
// records dropped), the resume is refused: guessing would lose or double
// rows. So it is for a partition stopped halfway (its checkpoint after its
// first commit) and for one whose last checkpoint says done but whose end
// was never reported (the crash between the two). One partition at a
// time, so the crash falls on the first partition's steps.
func TestResumeRefusedWhenTheSinkLostCommits(t *testing.T) {
	for _, c := range []*crasher{{step: "saved", n: 2}, {step: "end", n: 1}} {
		t.Run(c.step, func(t *testing.T) {
			w := newWorld(t, 600, 0, false)
			job := w.job([]string{"id"}, connectors.Append)
			job.Parallelism = 1
			if _, err := w.run(job, c); err == nil || !c.dead() {
				t.Fatal("the crash did not happen")
			}
			run := w.home.activeRun(job)
			sink, err := connectors.OpenSink(context.Background(), mem.TypeName, connectors.SinkConfig{DSN: w.db.DSN(), Table: "dst"})
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			if err := sink.(connectors.CommitLog).Forget(context.Background(), job.Name, run.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := w.run(job, nil); err == nil || !strings.Contains(err.Error(), "the sink lost commits") {
				t.Fatalf("resume after the sink lost its records: %v", err)
			}
		})
	}
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
	// The refusal is recorded on the run and comes back as its text.
	_, err := w.run(&other, nil)
	if err == nil || !strings.Contains(err.Error(), "was planned with another spec") || !strings.Contains(err.Error(), `sink.table: "dst" → "elsewhere"`) || !strings.Contains(err.Error(), "source.key") {
		t.Fatalf("resume under another sink table: %v", err)
	}
	tuned := *job
	tuned.Parallelism, tuned.CommitRows, tuned.BatchRows = 1, 37, 11
	if _, err := w.run(&tuned, nil); err != nil {
		t.Fatalf("resume with other parallelism and batch sizes: %v", err)
	}
	w.check(connectors.Append)
}
