package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// work is the node's worker for one membership: it watches its assignment
// folder and executes each partition given to it under the assignment's
// lease, with the engine's Executor, as a standalone run does. When it
// ends, the partition's outcome goes to the store in one Multi fenced by the
// lease: the final checkpoint (done, or the error) and the assignment's
// deletion, which the leader hears. A partition stopped by a drain is
// given back (the assignment deleted, the checkpoint as last saved); one
// stopped by the loss of the session writes nothing: the leader gives it
// back when the node's znode goes.
func (n *Node) work(ctx context.Context, id string) {
	s := n.cfg.Store
	dir := store.Join(assignPath, id)
	execs := &executors{byRun: map[string]*sharedExecutor{}, sleep: n.cfg.Sleep, now: n.cfg.Now, progress: n.cfg.Metrics.progress(n.cfg.Progress)}
	defer execs.closeAll() // after every partition has ended
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		kids, changed, err := s.ChildrenW(ctx, dir)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("worker: read assignments", "node", id, "err", err)
				_ = n.sleep(ctx, time.Second)
			}
			continue
		}
		for _, kid := range kids {
			k, ok := parseAssignName(kid)
			if !ok {
				continue
			}
			n.mu.Lock()
			_, busy := n.running[k]
			draining := n.draining
			if busy || draining {
				n.mu.Unlock()
				continue
			}
			pctx, cancel := context.WithCancel(ctx)
			n.running[k] = cancel
			n.mu.Unlock()
			n.republish()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					cancel()
					n.mu.Lock()
					delete(n.running, k)
					n.mu.Unlock()
					n.republish()
				}()
				n.execute(ctx, pctx, id, k, execs)
			}()
		}
		// Look again now and then even without a change: an assignment
		// whose start failed on a passing error (a lost connection) is
		// taken up again, and one whose end could not be reported is run
		// once more, to its sink's record.
		select {
		case <-ctx.Done():
		case <-changed:
		case <-time.After(n.cfg.Tick):
		}
	}
}

// execute runs one assignment. ctx is the membership's, pctx the
// partition's own (cancelled by a drain).
func (n *Node) execute(ctx, pctx context.Context, id string, k PartitionKey, execs *executors) {
	s := n.cfg.Store
	log := n.log.With("node", id, "partition", k.String())
	apath := assignNodePath(id, k)
	var a Assignment
	if err := getJSON(ctx, s, apath, &a); err != nil {
		if !errors.Is(err, store.ErrNoNode) {
			log.Warn("cannot read the assignment", "err", err)
		}
		return
	}
	rs := &RunState{S: s}
	var job engine.Job
	if err := getJSON(ctx, s, runJobPath(k.Job, k.Run), &job); err != nil {
		log.Warn("cannot read the run's spec", "err", err)
		return
	}
	var run engine.RunRecord
	if _, err := rs.get(ctx, runPath(k.Job, k.Run), &run); err != nil {
		log.Warn("cannot read the run", "err", err)
		return
	}
	l, part, err := rs.openLease(ctx, k.Job, k.Run, k.Partition, a.Lease)
	if err != nil {
		if errors.Is(err, engine.ErrLeaseLost) {
			// Reassigned before this node got to it: the assignment is stale.
			_, _ = s.Multi(ctx, store.DeleteOp(apath, store.AnyVersion))
		}
		log.Warn("cannot open the lease", "lease", a.Lease, "err", err)
		return
	}
	exec, release, err := execs.get(&job, &run, func() ([]engine.PartitionRecord, error) { return rs.Partitions(ctx, k.Job, k.Run) })
	if re := (*readError)(nil); errors.As(err, &re) {
		log.Warn("cannot read the run's partitions", "err", re.err)
		return // the assignment stays: the next look takes it up again
	}
	count := n.cfg.Metrics.committed(k.Job, part.Checkpoint)
	if err != nil {
		cp := part.Checkpoint
		cp.Error = err.Error()
		n.endPartition(ctx, log, l, cp, apath, count)
		return
	}
	defer release()
	var held engine.Lease = l
	if count != nil {
		held = countedLease{l, count}
	}
	log.Info("partition started", "lease", a.Lease, "leader", a.Leader)
	cp, err := exec.Execute(pctx, engine.Task{Job: &job, Run: &run, Partition: part, Lease: held})
	for errors.Is(err, connectors.ErrSnapshotGone) && pctx.Err() == nil {
		// The leader that exported the run's snapshot is gone: its
		// successor exports another, and the partition goes on in it
		// from what its sink committed.
		fresh, ok := n.nextSnapshot(pctx, k, run.Snapshot)
		if !ok {
			break
		}
		log.Warn("the run's snapshot went with its leader; the partition goes on in a new one", "old", run.Snapshot, "new", fresh.Snapshot)
		run, part.Checkpoint = fresh, cp
		cp, err = exec.Execute(pctx, engine.Task{Job: &job, Run: &run, Partition: part, Lease: held})
	}
	switch {
	case errors.Is(err, engine.ErrLeaseLost):
		log.Warn("partition taken over; stopped", "err", err)
	case pctx.Err() != nil && ctx.Err() == nil:
		// Drained: give it back at once, from its last checkpoint.
		if _, err := s.Multi(ctx, store.CheckOp(l.part, l.partVersion), store.DeleteOp(apath, store.AnyVersion)); err != nil {
			log.Warn("cannot give the partition back", "err", err)
		} else {
			log.Info("partition given back", "rows", cp.Rows)
		}
	case ctx.Err() != nil:
		// The membership ended (session lost, node stopped): the leader
		// gives the partition back when this node's znode goes.
	case err != nil:
		cp.Error = err.Error()
		n.endPartition(ctx, log, l, cp, apath, count)
	default:
		n.endPartition(ctx, log, l, cp, apath, count)
	}
}

// nextSnapshot waits for the run to be given a snapshot other than old, as
// a new leader does once it leads: for twice the session timeout, the
// time a dead leader may take to be replaced. false: none came.
func (n *Node) nextSnapshot(ctx context.Context, k PartitionKey, old string) (engine.RunRecord, bool) {
	rs := &RunState{S: n.cfg.Store}
	wait := 2 * n.cfg.SessionTimeout
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		var run engine.RunRecord
		if _, err := rs.get(ctx, runPath(k.Job, k.Run), &run); err == nil && run.Snapshot != old && run.Snapshot != "" {
			return run, true
		}
		if n.sleep(ctx, n.cfg.Tick) != nil {
			break
		}
	}
	return engine.RunRecord{}, false
}

// endPartition reports the partition's outcome under its lease: the final
// checkpoint and the assignment's deletion, together; count hears the
// checkpoint once it is in.
func (n *Node) endPartition(ctx context.Context, log interface {
	Info(string, ...any)
	Warn(string, ...any)
}, l *lease, cp engine.Checkpoint, apath string, count *committed) {
	cp.Updated = n.cluster.now()
	data, err := json.Marshal(cp)
	if err != nil {
		log.Warn("cannot encode the checkpoint", "err", err)
		return
	}
	l.mu.Lock()
	_, err = n.cfg.Store.Multi(ctx, store.CheckOp(l.part, l.partVersion), store.SetOp(l.progress, data, l.progressVersion), store.DeleteOp(apath, store.AnyVersion))
	l.mu.Unlock()
	if err != nil {
		log.Warn("cannot report the partition's end", "err", err)
		return
	}
	count.saved(cp)
	log.Info("partition ended", "done", cp.Done, "rows", cp.Rows, "error", cp.Error)
}

// executors share one Executor (its rate limit, bad-row budget, reject
// file and open stores) among a node's partitions of one run, as a
// standalone run shares one among its partitions. An executor no
// partition uses is kept for executorIdle, so that the run's next
// partition, usually assigned a few milliseconds after the last one
// ended, takes up its open source and sink.
type executors struct {
	mu       sync.Mutex
	byRun    map[string]*sharedExecutor
	sleep    func(context.Context, time.Duration) error
	now      func() time.Time
	progress func(engine.Progress)
}

type sharedExecutor struct {
	exec  *engine.Executor
	close func()
	users int
	idle  *time.Timer // closes it, once users is 0
}

// executorIdle is how long an executor outlives its last partition.
const executorIdle = 5 * time.Second

// closeAll closes every executor, used or not; the node's partitions have
// ended.
func (e *executors) closeAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for key, se := range e.byRun {
		if se.idle != nil {
			se.idle.Stop()
		}
		se.close()
		delete(e.byRun, key)
	}
}

// readError is a failure to read what an executor is made from.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

// get returns the executor of run on this node, made when there is none
// from the run's partitions (read by load; its failure is a *readError):
// its bad-row budget starts from what all of them have set aside. Each
// node keeps its own count from there, so in a cluster of several nodes
// the budget holds per node, not across them.
func (e *executors) get(job *engine.Job, run *engine.RunRecord, load func() ([]engine.PartitionRecord, error)) (*engine.Executor, func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := run.Job + "/" + run.ID
	se := e.byRun[key]
	if se == nil {
		parts, err := load()
		if err != nil {
			return nil, nil, &readError{err}
		}
		exec, close, err := engine.NewExecutor(job, parts)
		if err != nil {
			return nil, nil, err
		}
		exec.Sleep, exec.Now, exec.Progress = e.sleep, e.now, e.progress
		se = &sharedExecutor{exec: exec, close: close}
		e.byRun[key] = se
	}
	if se.idle != nil {
		se.idle.Stop()
		se.idle = nil
	}
	se.users++
	return se.exec, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if se.users--; se.users > 0 {
			return
		}
		se.idle = time.AfterFunc(executorIdle, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if se.users == 0 && e.byRun[key] == se {
				se.close()
				delete(e.byRun, key)
			}
		})
	}, nil
}
