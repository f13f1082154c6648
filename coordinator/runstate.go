package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// Paths of run state in the store (see DESIGN.md, "Cluster").
//
//	/runs/JOB/RUN                 run record (engine.RunRecord, JSON)
//	/runs/JOB/RUN/partitions/P    partition record with its checkpoint
//	/jobstate/JOB                 the job's incremental high-water mark
//	/history/JOB/RUN              finished runs, the newest historyKept kept
const (
	runsPath     = "/runs"
	jobStatePath = "/jobstate"
	historyPath  = "/history"
	historyKept  = 50
)

// RunState keeps runs, partitions and checkpoints in a coordinator store. It
// implements engine.State; the same code serves the embedded store of a
// standalone run and ZooKeeper in a cluster.
type RunState struct {
	S store.ReadWriter
}

var _ engine.State = (*RunState)(nil)

func runPath(job, run string) string { return store.Join(runsPath, job, run) }
func partPath(job, run, id string) string {
	return store.Join(runsPath, job, run, "partitions", id)
}

type jobState struct {
	HighWater connectors.Key `json:"high_water,omitempty"`
}

func (s *RunState) ActiveRun(ctx context.Context, job string) (*engine.RunRecord, error) {
	runs, err := s.S.Children(ctx, store.Join(runsPath, job))
	if errors.Is(err, store.ErrNoNode) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(runs))) // newest first: ids sort by start time
	for _, id := range runs {
		var rec engine.RunRecord
		if _, err := s.get(ctx, runPath(job, id), &rec); err != nil {
			if errors.Is(err, store.ErrNoNode) {
				continue
			}
			return nil, err
		}
		if rec.State == engine.RunRunning || rec.State == engine.RunFailed {
			return &rec, nil
		}
	}
	return nil, engine.ErrNotFound
}

func (s *RunState) CreateRun(ctx context.Context, run *engine.RunRecord, parts []engine.PartitionRecord) error {
	if _, err := store.CreateAll(ctx, s.S, store.Join(runsPath, run.Job), nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
		return err
	}
	data, err := json.Marshal(run)
	if err != nil {
		return err
	}
	ops := []store.Op{
		store.CreateOp(runPath(run.Job, run.ID), data, 0),
		store.CreateOp(store.Join(runPath(run.Job, run.ID), "partitions"), nil, 0),
	}
	for _, p := range parts {
		pd, err := json.Marshal(p)
		if err != nil {
			return err
		}
		ops = append(ops, store.CreateOp(partPath(run.Job, run.ID, p.ID), pd, 0))
	}
	// One Multi: a run is never seen with half its partitions.
	_, err = s.S.Multi(ctx, ops...)
	return err
}

func (s *RunState) UpdateRun(ctx context.Context, run *engine.RunRecord) error {
	return s.set(ctx, runPath(run.Job, run.ID), run)
}

func (s *RunState) LoadPartition(ctx context.Context, job, run, id string) (engine.PartitionRecord, error) {
	var p engine.PartitionRecord
	_, err := s.get(ctx, partPath(job, run, id), &p)
	if errors.Is(err, store.ErrNoNode) {
		return p, fmt.Errorf("partition %s of run %s: %w", id, run, engine.ErrNotFound)
	}
	return p, err
}

func (s *RunState) SavePartition(ctx context.Context, job, run string, p engine.PartitionRecord) error {
	return s.set(ctx, partPath(job, run, p.ID), p)
}

func (s *RunState) Partitions(ctx context.Context, job, run string) ([]engine.PartitionRecord, error) {
	ids, err := s.S.Children(ctx, store.Join(runPath(job, run), "partitions"))
	if err != nil {
		return nil, err
	}
	out := make([]engine.PartitionRecord, 0, len(ids))
	for _, id := range ids {
		p, err := s.LoadPartition(ctx, job, run, id)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (s *RunState) FinishRun(ctx context.Context, run *engine.RunRecord) error {
	data, err := json.Marshal(run)
	if err != nil {
		return err
	}
	if _, err := store.CreateAll(ctx, s.S, store.Join(historyPath, run.Job), nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
		return err
	}
	if _, err := store.CreateAll(ctx, s.S, jobStatePath, nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
		return err
	}
	// The run's final state, its history entry and the new high-water mark
	// land together, so a crash here cannot move the mark without the run
	// being recorded as done (or the reverse).
	ops := []store.Op{store.SetOp(runPath(run.Job, run.ID), data, store.AnyVersion)}
	// A failed run continued later ends again under the same id: its
	// history entry is overwritten with the latest outcome.
	hist := store.Join(historyPath, run.Job, run.ID)
	if ok, _, err := s.S.Exists(ctx, hist); err != nil {
		return err
	} else if ok {
		ops = append(ops, store.SetOp(hist, data, store.AnyVersion))
	} else {
		ops = append(ops, store.CreateOp(hist, data, 0))
	}
	if run.State == engine.RunSucceeded && run.CursorUpTo != nil {
		js, err := json.Marshal(jobState{HighWater: run.CursorUpTo})
		if err != nil {
			return err
		}
		p := store.Join(jobStatePath, run.Job)
		ok, _, err := s.S.Exists(ctx, p)
		if err != nil {
			return err
		}
		if ok {
			ops = append(ops, store.SetOp(p, js, store.AnyVersion))
		} else {
			ops = append(ops, store.CreateOp(p, js, 0))
		}
	}
	if _, err := s.S.Multi(ctx, ops...); err != nil {
		return err
	}
	if run.State != engine.RunFailed {
		if err := store.DeleteAll(ctx, s.S, runPath(run.Job, run.ID)); err != nil && !errors.Is(err, store.ErrNoNode) {
			return err
		}
	}
	return s.pruneHistory(ctx, run.Job)
}

func (s *RunState) pruneHistory(ctx context.Context, job string) error {
	runs, err := s.S.Children(ctx, store.Join(historyPath, job))
	if err != nil {
		return err
	}
	for len(runs) > historyKept {
		if err := s.S.Delete(ctx, store.Join(historyPath, job, runs[0]), store.AnyVersion); err != nil && !errors.Is(err, store.ErrNoNode) {
			return err
		}
		runs = runs[1:]
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

func (s *RunState) HighWater(ctx context.Context, job string) (connectors.Key, error) {
	var js jobState
	_, err := s.get(ctx, store.Join(jobStatePath, job), &js)
	if errors.Is(err, store.ErrNoNode) {
		return nil, nil
	}
	return js.HighWater, err
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
	_, err = s.S.Set(ctx, path, data, store.AnyVersion)
	return err
}
