package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator/history"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// Paths of run state in the store (see DESIGN.md, "Cluster").
//
//	/runs/JOB/RUN                 run record (engine.RunRecord, JSON)
//	/runs/JOB/RUN/partitions/P    the leader's record of a partition: range, state, owner, lease
//	/runs/JOB/RUN/progress/P      the worker's checkpoint, written under the lease
//	/jobstate/JOB                 the job's incremental high-water mark
//	/history/JOB/RUN              finished runs, the newest historyKept kept
//	/history/JOB/RUN/partitions   their partitions' summary: the newest partsKept
//	                              runs (a History outside the store keeps more)
const (
	runsPath     = "/runs"
	jobStatePath = "/jobstate"
	historyPath  = "/history"
	historyKept  = 50
	// partsKept runs of a job keep their partitions' summary in the store,
	// each of at most partsKeptMax partitions (a few hundred kilobytes).
	partsKept    = 10
	partsKeptMax = 1000
)

// RunState keeps runs, partitions and checkpoints in a coordinator store. It
// implements engine.State; the same code serves the embedded store of a
// standalone run and ZooKeeper in a cluster.
type RunState struct {
	S store.ReadWriter
	// Fence, when set, is put before every write of the run's leader (not
	// the lease holders' checkpoint saves) in one Multi: a cluster's leader
	// passes the Check of its election node, so that once it has lost its
	// leadership none of its writes lands.
	Fence []store.Op
}

// multi applies ops behind the fence.
func (s *RunState) multi(ctx context.Context, ops ...store.Op) ([]store.OpResult, error) {
	res, err := s.S.Multi(ctx, append(append([]store.Op(nil), s.Fence...), ops...)...)
	if err != nil {
		return nil, err
	}
	return res[len(s.Fence):], nil
}

var _ engine.State = (*RunState)(nil)

func runPath(job, run string) string { return store.Join(runsPath, job, run) }
func partPath(job, run, id string) string {
	return store.Join(runsPath, job, run, "partitions", id)
}
func progressPath(job, run, id string) string {
	return store.Join(runsPath, job, run, "progress", id)
}

// jobState is what a job keeps from run to run, in /jobstate/JOB, written
// with each succeeded run's end.
type jobState struct {
	HighWater connectors.Key `json:"high_water,omitempty"`
	// HighWaterKeys are the keys of the rows at exactly HighWater the job
	// copied (engine.Mark.Keys).
	HighWaterKeys []connectors.Key `json:"high_water_keys,omitempty"`
	// LastSucceeded is the job's last succeeded run: the jobs that run
	// after it fire once for each.
	LastSucceeded string `json:"last_succeeded,omitempty"`
}

func (s *RunState) ActiveRun(ctx context.Context, job string) (*engine.RunRecord, error) {
	runs, err := s.runRecords(ctx, job)
	if err != nil {
		return nil, err
	}
	for i := range runs {
		if rec := &runs[i]; rec.State == engine.RunRunning || rec.State == engine.RunFailed {
			return rec, nil
		}
	}
	return nil, engine.ErrNotFound
}

// runRecords reads the records of the job's runs in the run state (those
// not yet finished, or failed), newest first; none when the job has none.
func (s *RunState) runRecords(ctx context.Context, job string) ([]engine.RunRecord, error) {
	ids, err := s.S.Children(ctx, store.Join(runsPath, job))
	if errors.Is(err, store.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids))) // newest first: ids sort by start time
	out := make([]engine.RunRecord, 0, len(ids))
	for _, id := range ids {
		var rec engine.RunRecord
		if _, err := s.get(ctx, runPath(job, id), &rec); err != nil {
			if errors.Is(err, store.ErrNoNode) {
				continue // finished since the listing
			}
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

func (s *RunState) CreateRun(ctx context.Context, run *engine.RunRecord, parts []engine.PartitionRecord) error {
	if _, err := store.CreateAll(ctx, s.S, store.Join(runsPath, run.Job), nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
		return err
	}
	ops, err := CreateRunOps(run, parts)
	if err != nil {
		return err
	}
	// One Multi: a run is never seen with half its partitions.
	_, err = s.multi(ctx, ops...)
	return err
}

// CreateRunOps are the ops that store a new run with its partitions, for a
// caller that needs more in the same Multi (a leader deleting the queue
// entry the run came from). The parent /runs/JOB must exist.
func CreateRunOps(run *engine.RunRecord, parts []engine.PartitionRecord) ([]store.Op, error) {
	data, err := json.Marshal(run)
	if err != nil {
		return nil, err
	}
	ops := []store.Op{
		store.CreateOp(runPath(run.Job, run.ID), data, 0),
		store.CreateOp(store.Join(runPath(run.Job, run.ID), "partitions"), nil, 0),
		store.CreateOp(store.Join(runPath(run.Job, run.ID), "progress"), nil, 0),
	}
	for _, p := range parts {
		pd, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		cd, err := json.Marshal(p.Checkpoint)
		if err != nil {
			return nil, err
		}
		ops = append(ops, store.CreateOp(partPath(run.Job, run.ID, p.ID), pd, 0),
			store.CreateOp(progressPath(run.Job, run.ID, p.ID), cd, 0))
	}
	return ops, nil
}

func (s *RunState) UpdateRun(ctx context.Context, run *engine.RunRecord) error {
	return s.set(ctx, runPath(run.Job, run.ID), run)
}

// partition reads a partition's record, its version, and its checkpoint.
func (s *RunState) partition(ctx context.Context, job, run, id string) (engine.PartitionRecord, store.Stat, error) {
	var p engine.PartitionRecord
	st, err := s.get(ctx, partPath(job, run, id), &p)
	if errors.Is(err, store.ErrNoNode) {
		return p, st, fmt.Errorf("partition %s of run %s: %w", id, run, engine.ErrNotFound)
	}
	if err != nil {
		return p, st, err
	}
	if _, err := s.get(ctx, progressPath(job, run, id), &p.Checkpoint); err != nil {
		return p, st, err
	}
	return p, st, nil
}

func (s *RunState) Partitions(ctx context.Context, job, run string) ([]engine.PartitionRecord, error) {
	return s.partitions(ctx, job, run, nil, func(engine.PartitionRecord) bool { return true })
}

// partitions reads a run's partition records but those in known, and the
// checkpoints of those for which withCheckpoint holds: a leader's step
// needs few of them.
func (s *RunState) partitions(ctx context.Context, job, run string, known map[string]engine.PartitionRecord, withCheckpoint func(engine.PartitionRecord) bool) ([]engine.PartitionRecord, error) {
	ids, err := s.S.Children(ctx, store.Join(runPath(job, run), "partitions"))
	if err != nil {
		return nil, err
	}
	out := make([]engine.PartitionRecord, 0, len(ids))
	for _, id := range ids {
		if p, ok := known[id]; ok {
			out = append(out, p)
			continue
		}
		var p engine.PartitionRecord
		if _, err := s.get(ctx, partPath(job, run, id), &p); err != nil {
			if errors.Is(err, store.ErrNoNode) {
				return nil, fmt.Errorf("partition %s of run %s: %w", id, run, engine.ErrNotFound)
			}
			return nil, err
		}
		if withCheckpoint(p) {
			if _, err := s.get(ctx, progressPath(job, run, id), &p.Checkpoint); err != nil {
				return nil, err
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// TakePartition assigns the partition to owner under the next lease and
// opens that lease: the two halves of what a cluster's leader (assigns)
// and worker (opens) do apart.
func (s *RunState) TakePartition(ctx context.Context, job, run, id, owner string) (engine.Lease, engine.PartitionRecord, error) {
	p, err := s.AssignPartition(ctx, job, run, id, owner)
	if err != nil {
		return nil, p, err
	}
	return s.OpenLease(ctx, job, run, id, p.Lease)
}

// AssignPartition gives the partition to owner under a new lease: state
// Running, one more attempt, the next lease epoch. From then on, saves
// under any earlier lease fail.
func (s *RunState) AssignPartition(ctx context.Context, job, run, id, owner string) (engine.PartitionRecord, error) {
	return s.updatePartition(ctx, job, run, id, func(p *engine.PartitionRecord) error {
		p.State, p.Owner, p.Error = engine.Running, owner, ""
		p.Attempts++
		p.Lease++
		return nil
	})
}

// OpenLease opens the lease epoch of a partition assigned earlier, as the
// worker it was assigned to does; ErrLeaseLost if the partition has been
// given another lease since.
func (s *RunState) OpenLease(ctx context.Context, job, run, id string, epoch int64) (engine.Lease, engine.PartitionRecord, error) {
	l, p, err := s.openLease(ctx, job, run, id, epoch)
	if err != nil {
		return nil, p, err
	}
	return l, p, nil
}

func (s *RunState) openLease(ctx context.Context, job, run, id string, epoch int64) (*lease, engine.PartitionRecord, error) {
	p, st, err := s.partition(ctx, job, run, id)
	if err != nil {
		return nil, p, err
	}
	if p.Lease != epoch {
		return nil, p, fmt.Errorf("partition %s of run %s is under lease %d, not %d: %w", id, run, p.Lease, epoch, engine.ErrLeaseLost)
	}
	_, pst, err := s.S.Exists(ctx, progressPath(job, run, id))
	if err != nil {
		return nil, p, err
	}
	return &lease{s: s.S, part: partPath(job, run, id), progress: progressPath(job, run, id),
		partVersion: st.Version, progressVersion: pst.Version, epoch: epoch}, p, nil
}

// EndPartition records a partition's outcome under lease epoch. The owner
// and lease stay, to show who ran it last.
func (s *RunState) EndPartition(ctx context.Context, job, run, id string, epoch int64, state, reason string) error {
	_, err := s.updatePartition(ctx, job, run, id, func(p *engine.PartitionRecord) error {
		if p.Lease != epoch {
			return fmt.Errorf("partition %s of run %s is under lease %d, not %d: %w", id, run, p.Lease, epoch, engine.ErrLeaseLost)
		}
		p.State, p.Error = state, reason
		return nil
	})
	return err
}

// updatePartition is a read-modify-write of a partition's record at the
// version read, retried when someone wrote in between.
func (s *RunState) updatePartition(ctx context.Context, job, run, id string, change func(*engine.PartitionRecord) error) (engine.PartitionRecord, error) {
	return s.updatePartitionWith(ctx, job, run, id, change, nil)
}

// updatePartitionWith is updatePartition with more ops, made from the
// changed record, in the same Multi.
func (s *RunState) updatePartitionWith(ctx context.Context, job, run, id string, change func(*engine.PartitionRecord) error, also func(engine.PartitionRecord) []store.Op) (engine.PartitionRecord, error) {
	path := partPath(job, run, id)
	for {
		var p engine.PartitionRecord
		st, err := s.get(ctx, path, &p)
		if errors.Is(err, store.ErrNoNode) {
			return p, fmt.Errorf("partition %s of run %s: %w", id, run, engine.ErrNotFound)
		}
		if err != nil {
			return p, err
		}
		if err := change(&p); err != nil {
			return p, err
		}
		data, err := json.Marshal(p)
		if err != nil {
			return p, err
		}
		ops := []store.Op{store.SetOp(path, data, st.Version)}
		if also != nil {
			ops = append(ops, also(p)...)
		}
		_, err = s.multi(ctx, ops...)
		var me *store.MultiError
		if errors.Is(err, store.ErrBadVersion) && errors.As(err, &me) && me.Index == len(s.Fence) {
			continue
		}
		return p, err
	}
}

// lease is a partition held under one epoch. Its saves are fenced: a Multi
// that checks the partition's record is still at the version the lease
// was opened at (any new assignment changes it) and sets the checkpoint at
// the version last written.
type lease struct {
	s               store.ReadWriter
	part, progress  string
	partVersion     int32
	epoch           int64
	mu              sync.Mutex
	progressVersion int32
}

func (l *lease) Epoch() int64 { return l.epoch }

func (l *lease) Check(ctx context.Context) error {
	ok, st, err := l.s.Exists(ctx, l.part)
	switch {
	case err != nil:
		return err
	case !ok || st.Version != l.partVersion:
		return fmt.Errorf("lease %d of %s: %w", l.epoch, l.part, engine.ErrLeaseLost)
	}
	return nil
}

func (l *lease) Save(ctx context.Context, cp engine.Checkpoint) error {
	data, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	res, err := l.s.Multi(ctx, store.CheckOp(l.part, l.partVersion), store.SetOp(l.progress, data, l.progressVersion))
	if err == nil {
		l.progressVersion = res[1].Stat.Version
		return nil
	}
	var me *store.MultiError
	if errors.As(err, &me) && (errors.Is(err, store.ErrBadVersion) || errors.Is(err, store.ErrNoNode)) {
		return fmt.Errorf("lease %d of %s: %w", l.epoch, l.part, engine.ErrLeaseLost)
	}
	if !errors.Is(err, store.ErrConnectionLoss) {
		return err
	}
	// The outcome is unknown: the server may have applied the Multi. Read
	// back before anyone writes again, or the next save would fail on a
	// version this one moved.
	got, st, rerr := l.s.Get(ctx, l.progress)
	switch {
	case rerr != nil:
		return fmt.Errorf("%w (and reading it back: %v)", err, rerr)
	case st.Version == l.progressVersion+1 && string(got) == string(data):
		l.progressVersion = st.Version
		return nil
	case st.Version == l.progressVersion:
		return err // not applied: the caller may retry
	}
	return fmt.Errorf("lease %d of %s: the checkpoint was written by someone else: %w", l.epoch, l.part, engine.ErrLeaseLost)
}

func (s *RunState) FinishRun(ctx context.Context, run *engine.RunRecord) error {
	data, err := json.Marshal(run)
	if err != nil {
		return err
	}
	if _, err := store.CreateAll(ctx, s.S, jobStatePath, nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
		return err
	}
	// The run's final state, its history entry and the new high-water mark
	// land together, so a crash here cannot move the mark without the run
	// being recorded as done (or the reverse).
	hist, err := s.historyOps(ctx, run)
	if err != nil {
		return err
	}
	ops := append([]store.Op{store.SetOp(runPath(run.Job, run.ID), data, store.AnyVersion)}, hist...)
	// The partitions' summary lands with the end too: a reader that finds
	// the run ended reads them there, not from the partitions FinishRun is
	// about to delete (it could list them half deleted), whether or not a
	// History outside the store keeps them as well.
	kept, err := s.keptPartitionsOps(ctx, run)
	if err != nil {
		return err
	}
	ops = append(ops, kept...)
	if run.State == engine.RunSucceeded {
		p := store.Join(jobStatePath, run.Job)
		var js jobState
		st, err := s.get(ctx, p, &js)
		if err != nil && !errors.Is(err, store.ErrNoNode) {
			return err
		}
		exists := err == nil
		js.LastSucceeded = run.ID
		if run.CursorUpTo != nil {
			js.HighWater, js.HighWaterKeys = run.CursorUpTo, run.CursorKeys
		}
		data, err := json.Marshal(js)
		if err != nil {
			return err
		}
		if exists {
			ops = append(ops, store.SetOp(p, data, st.Version))
		} else {
			ops = append(ops, store.CreateOp(p, data, 0))
		}
	}
	cb, err := s.callbackOps(ctx, run)
	if err != nil {
		return err
	}
	ops = append(ops, cb...)
	if _, err := s.multi(ctx, ops...); err != nil {
		return err
	}
	if run.State != engine.RunFailed {
		if err := store.DeleteAll(ctx, s.S, runPath(run.Job, run.ID)); err != nil && !errors.Is(err, store.ErrNoNode) {
			return err
		}
	}
	return s.pruneHistory(ctx, run.Job)
}

// historyOps are the ops that record run in the job's history. A failed
// run continued later ends again under the same id: its entry is
// overwritten with the latest outcome.
func (s *RunState) historyOps(ctx context.Context, run *engine.RunRecord) ([]store.Op, error) {
	data, err := json.Marshal(run)
	if err != nil {
		return nil, err
	}
	if _, err := store.CreateAll(ctx, s.S, store.Join(historyPath, run.Job), nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
		return nil, err
	}
	hist := store.Join(historyPath, run.Job, run.ID)
	ok, _, err := s.S.Exists(ctx, hist)
	switch {
	case err != nil:
		return nil, err
	case ok:
		return []store.Op{store.SetOp(hist, data, store.AnyVersion)}, nil
	}
	return []store.Op{store.CreateOp(hist, data, 0)}, nil
}

// keptPartitionsOps are the ops that keep the summary of run's partitions
// beside its history entry, made or replaced; none for a
// run of more than partsKeptMax partitions.
func (s *RunState) keptPartitionsOps(ctx context.Context, run *engine.RunRecord) ([]store.Op, error) {
	parts, err := s.Partitions(ctx, run.Job, run.ID)
	if err != nil || len(parts) > partsKeptMax {
		return nil, err
	}
	sums := make([]history.Partition, len(parts))
	for i, p := range parts {
		sums[i] = history.Summarize(p)
	}
	data, err := json.Marshal(sums)
	if err != nil {
		return nil, err
	}
	path := store.Join(historyPath, run.Job, run.ID, "partitions")
	ok, _, err := s.S.Exists(ctx, path)
	switch {
	case err != nil:
		return nil, err
	case ok:
		return []store.Op{store.SetOp(path, data, store.AnyVersion)}, nil
	}
	return []store.Op{store.CreateOp(path, data, 0)}, nil
}

// KeptPartitions reads the partitions' summary kept with a finished run;
// nil when none was.
func (s *RunState) KeptPartitions(ctx context.Context, job, run string) ([]history.Partition, error) {
	var sums []history.Partition
	_, err := s.get(ctx, store.Join(historyPath, job, run, "partitions"), &sums)
	if errors.Is(err, store.ErrNoNode) {
		return nil, nil
	}
	return sums, err
}

// pruneHistory keeps the job's newest historyKept runs, and the partitions
// of the newest partsKept of them.
func (s *RunState) pruneHistory(ctx context.Context, job string) error {
	runs, err := s.S.Children(ctx, store.Join(historyPath, job))
	if err != nil {
		return err
	}
	for len(runs) > historyKept {
		if err := store.DeleteAll(ctx, s.S, store.Join(historyPath, job, runs[0])); err != nil && !errors.Is(err, store.ErrNoNode) {
			return err
		}
		runs = runs[1:]
	}
	// The run this one's end pushed out of the newest partsKept.
	if out := len(runs) - partsKept - 1; out >= 0 {
		if err := s.S.Delete(ctx, store.Join(historyPath, job, runs[out], "partitions"), store.AnyVersion); err != nil && !errors.Is(err, store.ErrNoNode) {
			return err
		}
	}
	return nil
}

// History returns the job's finished runs, newest first.
func (s *RunState) History(ctx context.Context, job string) ([]engine.RunRecord, error) {
	runs, err := s.S.Children(ctx, store.Join(historyPath, job))
	if errors.Is(err, store.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]engine.RunRecord, 0, len(runs))
	for i := len(runs) - 1; i >= 0; i-- {
		var rec engine.RunRecord
		if _, err := s.get(ctx, store.Join(historyPath, job, runs[i]), &rec); err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

func (s *RunState) HighWater(ctx context.Context, job string) (engine.Mark, error) {
	var js jobState
	_, err := s.get(ctx, store.Join(jobStatePath, job), &js)
	if errors.Is(err, store.ErrNoNode) {
		return engine.Mark{}, nil
	}
	return engine.Mark{Cursor: js.HighWater, Keys: js.HighWaterKeys}, err
}

func (s *RunState) get(ctx context.Context, path string, v any) (store.Stat, error) {
	data, st, err := s.S.Get(ctx, path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return st, fmt.Errorf("decode %s: %w", path, err)
	}
	return st, nil
}

func (s *RunState) set(ctx context.Context, path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.multi(ctx, store.SetOp(path, data, store.AnyVersion))
	return err
}
