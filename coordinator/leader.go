package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// jobMovesPerStep bounds the rebalancing of jobs when a node joins; a dead
// node's jobs all move at once.
const jobMovesPerStep = 4

// leader is a node's leadership, while its election znode is the lowest:
// it consumes the run queue, places partitions, returns a dead node's
// partitions and jobs, and finishes runs. Each step reads what it needs
// from the store and decides with the pure functions of decide.go; every
// write is fenced by a Check of the election znode, so a leader that lost
// its place (its session gone) lands nothing. Nothing lives only in its
// memory but the snapshots it holds, which a successor takes again.
type leader struct {
	n      *Node
	id     string
	epoch  int64
	fence  []store.Op
	rs     *RunState
	steps  *engine.Steps
	holds  map[string]func() // exported snapshots by run, released at the run's end
	waited map[string]string // the waiting reasons last written, by run path
	// retries counts the transient failures of starting a queue entry's
	// run: it is retried as the job's retries say, then refused. A new
	// leader counts afresh, which only grants a few more tries.
	retries map[string]startRetry
	// done keeps the partitions seen done, by run path: done is final
	// within a run, and only the leader writes partition records, so a
	// step reads only the others again.
	done map[string]map[string]engine.PartitionRecord
	// started keeps the runs whose first placement is recorded.
	started map[string]bool
	// graph is the jobs' upstreams as of graphVer, the version of /after;
	// depsDue the jobs whose dependency readiness to look at, all of them
	// every depsEvery and whenever the graph changes.
	graph      map[string][]string
	graphVer   int32
	depsDue    map[string]bool
	depsLooked time.Time
	completion completions
}

// completions are the sink completions under way beside the leader's
// steps (completeSink): going is the step's own, done is written by their
// goroutines, and wake wakes the step when one is over.
type completions struct {
	ctx   context.Context // the leadership's
	going map[string]bool
	wg    sync.WaitGroup
	wake  chan struct{}
	mu    sync.Mutex
	done  map[string]error
}

// depsEvery is how often the leader looks at every dependent job, besides
// looking at a job's dependants when it succeeds: it catches what a leader
// that died left half done, and jobs resumed from a pause.
const depsEvery = 5 * time.Second

type startRetry struct {
	failures int
	next     time.Time
}

// errNotLeader ends a leadership whose fence no longer holds.
var errNotLeader = errors.New("no longer the leader")

func (n *Node) lead(ctx context.Context, id, election string, epoch int64) {
	n.mu.Lock()
	n.leading = true
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.leading = false
		n.mu.Unlock()
	}()
	fence := []store.Op{store.CheckOp(election, 0)}
	rs := &RunState{S: n.cfg.Store, Fence: fence}
	l := &leader{n: n, id: id, epoch: epoch, fence: fence, rs: rs,
		steps: &engine.Steps{State: rs, Log: n.log, Now: n.cfg.Now, Sleep: n.cfg.Sleep},
		holds: map[string]func(){}, waited: map[string]string{}, retries: map[string]startRetry{}, done: map[string]map[string]engine.PartitionRecord{},
		started: map[string]bool{}, graphVer: -1, depsDue: map[string]bool{},
		completion: completions{going: map[string]bool{}, done: map[string]error{}, wake: make(chan struct{}, 1)}}
	defer func() {
		for _, release := range l.holds {
			release()
		}
	}()
	// The completions under way end with the leadership, before the node
	// stands again.
	cctx, cancelCompletions := context.WithCancel(ctx)
	l.completion.ctx = cctx
	defer l.completion.wg.Wait()
	defer cancelCompletions()
	n.log.Info("leading the cluster", "node", id, "epoch", epoch)
	for ctx.Err() == nil {
		wctx, stopWatching := context.WithCancel(ctx)
		wake := l.watch(wctx)
		err := l.step(ctx)
		switch {
		case errors.Is(err, errNotLeader) || isFenced(err, len(fence)):
			stopWatching()
			n.log.Warn("lost the leadership", "node", id, "epoch", epoch)
			return
		case err != nil && ctx.Err() == nil:
			n.log.Warn("leader step", "node", id, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-l.completion.wake:
		case <-time.After(n.cfg.Tick):
		}
		stopWatching()
	}
}

// wakeOn sends on wake (without waiting: one wake-up is enough) when the
// watch ch fires, unless ctx ends first.
func wakeOn(ctx context.Context, ch <-chan store.Event, wake chan<- struct{}) {
	go func() {
		select {
		case <-ch:
			select {
			case wake <- struct{}{}:
			default:
			}
		case <-ctx.Done():
		}
	}()
}

// isFenced reports whether a Multi failed on its fence: the election
// znode is gone (or changed), so this node no longer leads.
func isFenced(err error, fenceOps int) bool {
	var me *store.MultiError
	return errors.As(err, &me) && me.Index < fenceOps && (errors.Is(err, store.ErrNoNode) || errors.Is(err, store.ErrBadVersion))
}

// watch sets a watch on everything the leader acts on (nodes, the queue,
// every node's assignments) and returns a channel that hears from the
// first to fire.
func (l *leader) watch(ctx context.Context) <-chan struct{} {
	wake := make(chan struct{}, 1)
	s := l.n.cfg.Store
	on := func(ch <-chan store.Event) { wakeOn(ctx, ch, wake) }
	for _, p := range []string{nodesPath, queuePath, assignPath} {
		if _, ch, err := s.ChildrenW(ctx, p); err == nil {
			on(ch)
		}
	}
	if _, _, ch, err := s.GetW(ctx, afterPath); err == nil {
		on(ch)
	}
	if dirs, err := s.Children(ctx, assignPath); err == nil {
		for _, d := range dirs {
			if _, ch, err := s.ChildrenW(ctx, store.Join(assignPath, d)); err == nil {
				on(ch)
			}
		}
	}
	return wake
}

// step is one round of the leader's work over a fresh read of the tree.
func (l *leader) step(ctx context.Context) error {
	members, _, _, err := l.n.cluster.Members(ctx)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, m := range members {
		live[m.ID] = true
	}
	assigned, err := l.assignments(ctx)
	if err != nil {
		return err
	}
	for _, k := range Orphans(assigned, live) {
		if err := l.release(ctx, k, assigned[k]); err != nil {
			return err
		}
		delete(assigned, k)
	}
	if err := l.clearDeadDirs(ctx); err != nil {
		return err
	}
	if err := l.balanceJobs(ctx, members); err != nil {
		return err
	}
	if err := l.consumeQueue(ctx); err != nil {
		return err
	}
	pending, exported, err := l.reconcileRuns(ctx, assigned)
	if err != nil {
		return err
	}
	// After the runs' ends: their dependants fire in the same step.
	if err := l.dependencies(ctx); err != nil {
		return err
	}
	l.n.postCallbacks(ctx)
	if err != nil {
		return err
	}
	// A run's snapshot is held by its leader: a new leader exports it
	// again before placing, and for the runs already under way (their
	// partitions running elsewhere wait for it).
	if err := l.holdSnapshots(ctx, append(exported, pending...)); err != nil {
		return err
	}
	count := map[string]int{}
	for _, node := range assigned {
		count[node]++
	}
	for i := range members {
		members[i].Assigned = count[members[i].ID]
	}
	return l.place(ctx, members, pending)
}

// assignments reads every node's assignments, the dead nodes' included.
func (l *leader) assignments(ctx context.Context) (map[PartitionKey]string, error) {
	s := l.n.cfg.Store
	dirs, err := s.Children(ctx, assignPath)
	if err != nil {
		return nil, err
	}
	out := map[PartitionKey]string{}
	for _, d := range dirs {
		kids, err := s.Children(ctx, store.Join(assignPath, d))
		if errors.Is(err, store.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, k := range kids {
			if key, ok := parseAssignName(k); ok {
				out[key] = d
			}
		}
	}
	return out, nil
}

// release gives a dead node's partition back to pending (its checkpoint
// stays) and drops the assignment, in one fenced Multi. Its next holder
// takes a new lease, so whatever the dead node still tries lands nothing.
func (l *leader) release(ctx context.Context, k PartitionKey, node string) error {
	del := store.DeleteOp(assignNodePath(node, k), store.AnyVersion)
	_, err := l.rs.updatePartitionWith(ctx, k.Job, k.Run, k.Partition, func(p *engine.PartitionRecord) error {
		if p.State == engine.Running && p.Owner == node {
			p.State, p.Error = engine.Pending, fmt.Sprintf("its node %s left; continues elsewhere from its checkpoint", node)
		}
		return nil
	}, func(engine.PartitionRecord) []store.Op { return []store.Op{del} })
	if errors.Is(err, engine.ErrNotFound) {
		_, err = l.rs.multi(ctx, del) // the run is gone: only the assignment is left
	}
	if err == nil {
		l.n.log.Info("partition given back from a node that left", "partition", k.String(), "node", node)
	}
	return ignoreNoNode(err)
}

// clearDeadDirs removes the assignment folders of nodes that left once
// they are empty. The nodes are listed after the folders: a node registers
// before it makes its folder, so one that joined since the step's list of
// members is seen live, and its folder stays.
func (l *leader) clearDeadDirs(ctx context.Context) error {
	dirs, err := l.n.cfg.Store.Children(ctx, assignPath)
	if err != nil {
		return err
	}
	nodes, err := l.n.cfg.Store.Children(ctx, nodesPath)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, id := range nodes {
		live[id] = true
	}
	for _, d := range dirs {
		if live[d] {
			continue
		}
		_, err := l.rs.multi(ctx, store.DeleteOp(store.Join(assignPath, d), store.AnyVersion))
		if err := ignoreNoNode(err); err != nil && !errors.Is(err, store.ErrNotEmpty) {
			return err
		}
	}
	return nil
}

// balanceJobs moves the jobs of nodes that left to live ones, and evens
// out the rest a few moves at a time.
func (l *leader) balanceJobs(ctx context.Context, members []Member) error {
	s := l.n.cfg.Store
	names, err := s.Children(ctx, namesPath)
	if err != nil {
		return err
	}
	owners := map[string]string{}
	for _, name := range names {
		data, _, err := s.Get(ctx, store.Join(namesPath, name))
		if errors.Is(err, store.ErrNoNode) {
			continue
		}
		if err != nil {
			return err
		}
		owners[name] = string(data)
	}
	for _, mv := range BalanceJobs(owners, members, jobMovesPerStep) {
		if err := l.moveJob(ctx, mv); err != nil {
			return err
		}
	}
	return nil
}

func (l *leader) moveJob(ctx context.Context, mv JobMove) error {
	s := l.n.cfg.Store
	from := store.Join(jobsPath, mv.From, mv.Job)
	spec, st, err := s.Get(ctx, from)
	if err != nil {
		return ignoreNoNode(err)
	}
	name, nst, err := s.Get(ctx, store.Join(namesPath, mv.Job))
	if err != nil || string(name) != mv.From {
		return ignoreNoNode(err) // moved or deleted meanwhile
	}
	if _, err := store.CreateAll(ctx, s, store.Join(jobsPath, mv.To), nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
		return err
	}
	_, err = l.rs.multi(ctx,
		store.DeleteOp(from, st.Version),
		store.CreateOp(store.Join(jobsPath, mv.To, mv.Job), spec, 0),
		store.SetOp(store.Join(namesPath, mv.Job), []byte(mv.To), nst.Version))
	if err == nil {
		l.n.log.Info("job moved", "job", mv.Job, "from", mv.From, "to", mv.To)
	}
	if errors.Is(err, store.ErrBadVersion) || errors.Is(err, store.ErrNodeExists) {
		return nil // changed meanwhile: the next step decides again
	}
	return ignoreNoNode(err)
}

// consumeQueue turns queued triggers into runs, in order. What a trigger
// for a job whose run is going does is the job's overlap policy's
// (DecideOverlap): it starts beside it, waits, or is dropped.
func (l *leader) consumeQueue(ctx context.Context) error {
	s := l.n.cfg.Store
	entries, err := s.Children(ctx, queuePath)
	if err != nil {
		return err
	}
	sortBySequence(entries)
	waiting := map[string]int{}
	for _, e := range entries {
		path := store.Join(queuePath, e)
		var q QueueEntry
		if err := getJSON(ctx, s, path, &q); err != nil {
			if errors.Is(err, store.ErrNoNode) {
				continue
			}
			l.n.log.Warn("dropping an unreadable queue entry", "entry", e, "err", err)
			if _, err := l.rs.multi(ctx, store.DeleteOp(path, store.AnyVersion)); err != nil {
				return ignoreNoNode(err)
			}
			continue
		}
		job, _, err := l.n.cluster.Job(ctx, q.Job)
		if errors.Is(err, ErrNoJob) {
			delete(l.retries, path)
			l.n.log.Warn("dropping a trigger of a job that is gone", "job", q.Job)
			if _, err := l.rs.multi(ctx, store.DeleteOp(path, store.AnyVersion)); err != nil {
				return ignoreNoNode(err)
			}
			continue
		}
		if err != nil {
			return err
		}
		active, err := l.rs.ActiveRun(ctx, job.Name)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return err
		}
		going := err == nil && active.State == engine.RunRunning
		policy := engine.OverlapSkip
		if job.Schedule != nil && job.Schedule.Overlap != "" {
			policy = job.Schedule.Overlap
		}
		action, why := DecideOverlap(policy, q.Trigger, going, waiting[job.Name])
		switch action {
		case Wait:
			waiting[job.Name]++
			continue
		case Drop:
			if err := l.drop(ctx, path, q, why); err != nil {
				return err
			}
			continue
		}
		if err := l.startRun(ctx, path, q, job, going); err != nil {
			return err
		}
	}
	return nil
}

// drop deletes a trigger the overlap policy refuses, and says why on its
// fire record.
func (l *leader) drop(ctx context.Context, entry string, q QueueEntry, why string) error {
	ops := []store.Op{store.DeleteOp(entry, store.AnyVersion)}
	if q.Fire != "" {
		var f FireRecord
		if err := getJSON(ctx, l.n.cfg.Store, q.Fire, &f); err == nil {
			f.Outcome = FireDropped + ": " + why
			data, _ := json.Marshal(f)
			ops = append(ops, store.SetOp(q.Fire, data, store.AnyVersion))
		}
	}
	_, err := l.rs.multi(ctx, ops...)
	if err == nil {
		l.n.log.Info("fire dropped", "job", q.Job, "trigger", q.Trigger, "scheduled", q.Scheduled, "why", why)
	}
	return ignoreNoNode(err)
}

// startRun makes the run a queue entry asks for: the job's unfinished
// (failed) run continued, or a new run planned and its sink prepared. The
// run, the spec it runs with and the entry's deletion are one fenced
// Multi: an entry is consumed exactly once, whenever the leader dies.
//
// A run started beside one going (overlap: allow) is always a new one.
func (l *leader) startRun(ctx context.Context, entry string, q QueueEntry, job *engine.Job, beside bool) error {
	now := l.n.cluster.now()
	if r, ok := l.retries[entry]; ok && now.Before(r.next) {
		return nil
	}
	var (
		run   *engine.RunRecord
		parts []engine.PartitionRecord
		fresh = true
		err   error
	)
	if beside {
		run, parts, err = l.steps.NewRun(ctx, job)
	} else {
		run, parts, fresh, err = l.steps.Plan(ctx, job, false)
	}
	if run != nil {
		run.Trigger, run.Scheduled, run.Ticks, run.Upstream, run.Queued = q.Trigger, q.Scheduled, q.Ticks, q.Upstream, q.Requested
		run.FirstStarted, run.QueueEntry = time.Time{}, store.Base(entry)
		// The sink, the partitions' executors and the run's end take the
		// job as the run runs it: the spec stored below.
		job = run.JobOf(job)
	}
	if err == nil && fresh {
		if err = l.steps.Prepare(ctx, job); err == nil {
			run.Prepared = true
		}
	}
	if err != nil && connectors.IsTransient(err) && ctx.Err() == nil {
		r := l.retries[entry]
		if r.failures < job.Retries.Max {
			wait := job.Retries.Wait(r.failures)
			l.retries[entry] = startRetry{failures: r.failures + 1, next: now.Add(wait)}
			l.n.log.Warn("cannot start the run yet; retrying", "job", job.Name, "in", wait, "err", err)
			return nil
		}
	}
	delete(l.retries, entry)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return l.refuse(ctx, entry, q, job, run, err)
	}
	spec, err := json.Marshal(job)
	if err != nil {
		return err
	}
	var ops []store.Op
	if fresh {
		if _, err := store.CreateAll(ctx, l.n.cfg.Store, store.Join(runsPath, job.Name), nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
			return err
		}
		if ops, err = CreateRunOps(run, parts); err != nil {
			return err
		}
		ops = append(ops, store.CreateOp(runJobPath(job.Name, run.ID), spec, 0))
	} else {
		data, err := json.Marshal(run)
		if err != nil {
			return err
		}
		ops = []store.Op{store.SetOp(runPath(job.Name, run.ID), data, store.AnyVersion), store.SetOp(runJobPath(job.Name, run.ID), spec, store.AnyVersion)}
		// Its failed partitions are tried again, from what their sink
		// committed, with the job's retries afresh. Nothing else writes
		// them: a failed run has no partition running.
		for _, p := range parts {
			if p.State != engine.Failed {
				continue
			}
			p.State, p.Error, p.Attempts = engine.Pending, "", 0
			data, err := json.Marshal(p)
			if err != nil {
				return err
			}
			ops = append(ops, store.SetOp(partPath(job.Name, run.ID, p.ID), data, store.AnyVersion))
		}
	}
	ops = append(ops, store.DeleteOp(entry, store.AnyVersion))
	if _, err := l.rs.multi(ctx, ops...); err != nil {
		return err
	}
	l.n.log.Info("run started", "job", job.Name, "run", run.ID, "partitions", len(parts), "continued", !fresh, "trigger", q.Trigger, "scheduled", q.Scheduled)
	return nil
}

// refuse drops a trigger that cannot start a run, and says why where the
// job's runs are read: on its unfinished run, or as a failed run of its
// own in the history.
func (l *leader) refuse(ctx context.Context, entry string, q QueueEntry, job *engine.Job, run *engine.RunRecord, cause error) error {
	l.n.log.Warn("trigger refused", "job", job.Name, "err", cause)
	now := l.n.cluster.now()
	if active, err := l.rs.ActiveRun(ctx, job.Name); err == nil {
		active.Error, active.QueueEntry = cause.Error(), store.Base(entry)
		data, err := json.Marshal(active)
		if err != nil {
			return err
		}
		_, err = l.rs.multi(ctx, store.SetOp(runPath(job.Name, active.ID), data, store.AnyVersion), store.DeleteOp(entry, store.AnyVersion))
		return ignoreNoNode(err)
	}
	if run == nil {
		run = &engine.RunRecord{Job: job.Name, ID: engine.NewRunID(now), Started: now}
	}
	run.State, run.Finished, run.Error = engine.RunFailed, now, cause.Error()
	run.Trigger, run.Scheduled, run.Ticks, run.Queued, run.QueueEntry = q.Trigger, q.Scheduled, q.Ticks, q.Requested, store.Base(entry)
	ops, err := l.rs.historyOps(ctx, run)
	if err != nil {
		return err
	}
	cb, err := l.rs.callbackOpsOf(ctx, job, run)
	if err != nil {
		return err
	}
	ops = append(append(ops, cb...), store.DeleteOp(entry, store.AnyVersion))
	if _, err := l.rs.multi(ctx, ops...); err != nil {
		return ignoreNoNode(err)
	}
	if len(cb) > 0 {
		l.n.postCallback(ctx, callbackPath(run.Job, run.ID, run.Finished))
	}
	return nil
}

// reconcileRuns records what became of the partitions whose assignment
// has gone, finishes the runs that are over, and returns the partitions
// waiting for a node, oldest run first, and a partition key (of no
// partition) for each run going on in an exported snapshot.
func (l *leader) reconcileRuns(ctx context.Context, assigned map[PartitionKey]string) (pending, exported []PartitionKey, err error) {
	s := l.n.cfg.Store
	jobs, err := s.Children(ctx, runsPath)
	if err != nil {
		return nil, nil, err
	}
	type active struct {
		job string
		run engine.RunRecord
	}
	var runs []active
	for _, job := range jobs {
		recs, err := l.rs.runRecords(ctx, job)
		if err != nil {
			return nil, nil, err
		}
		for _, rec := range recs {
			if rec.State == engine.RunRunning {
				runs = append(runs, active{job, rec})
			}
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].run.ID < runs[j].run.ID })
	going := map[string]bool{}
	for _, a := range runs {
		going[runPath(a.job, a.run.ID)] = true
	}
	for path := range l.done {
		if !going[path] {
			delete(l.done, path)
		}
	}
	for _, a := range runs {
		run := a.run
		// Only a partition whose assignment has gone needs its checkpoint
		// read here: it says what became of it.
		known := l.done[runPath(a.job, run.ID)]
		if known == nil {
			known = map[string]engine.PartitionRecord{}
			l.done[runPath(a.job, run.ID)] = known
		}
		parts, err := l.rs.partitions(ctx, a.job, run.ID, known, func(p engine.PartitionRecord) bool {
			_, ok := assigned[PartitionKey{a.job, run.ID, p.ID}]
			return p.State == engine.Running && !ok
		})
		if err != nil {
			return nil, nil, err
		}
		for i := range parts {
			p := &parts[i]
			k := PartitionKey{a.job, run.ID, p.ID}
			if p.State != engine.Running {
				continue
			}
			if _, ok := assigned[k]; ok {
				continue
			}
			state, reason := engine.Pending, "given back by its node; continues from its checkpoint"
			switch {
			case p.Checkpoint.Error != "":
				// Before Done: a partition that was done and failed the
				// check against its sink's commit record is not done.
				state, reason = engine.Failed, p.Checkpoint.Error
			case p.Checkpoint.Done:
				state, reason = engine.Done, ""
			}
			if err := l.rs.EndPartition(ctx, a.job, run.ID, p.ID, p.Lease, state, reason); err != nil {
				return nil, nil, err
			}
			p.State, p.Error = state, reason
		}
		for _, p := range parts {
			if p.State == engine.Done {
				known[p.ID] = p
			}
		}
		switch outcome, why := RunOutcome(parts); outcome {
		case Succeeded:
			completed, cerr, err := l.completeSink(ctx, &run)
			if err != nil {
				return nil, nil, err
			}
			if !completed {
				continue
			}
			if err := l.finish(ctx, &run, cerr); err != nil {
				return nil, nil, err
			}
		case FailedNow:
			if err := l.finish(ctx, &run, errors.New(why)); err != nil {
				return nil, nil, err
			}
		case Going:
			if run.Snapshot != "" {
				exported = append(exported, PartitionKey{Job: a.job, Run: run.ID})
			}
			for _, p := range parts {
				if p.State == engine.Pending {
					pending = append(pending, PartitionKey{a.job, run.ID, p.ID})
				}
			}
		}
	}
	return pending, exported, nil
}

// completeSink runs the sink's completion of a run whose partitions are
// all done (engine.Steps.Complete) beside the leader's steps: it may build
// an index over the whole table, and placing and finishing other runs goes
// on meanwhile. It reports whether the completion is over, with its error;
// a new leader completes again what its predecessor left (the step is
// idempotent).
func (l *leader) completeSink(ctx context.Context, run *engine.RunRecord) (completed bool, cerr, err error) {
	key := runPath(run.Job, run.ID)
	l.completion.mu.Lock()
	cerr, over := l.completion.done[key]
	delete(l.completion.done, key)
	l.completion.mu.Unlock()
	if over {
		delete(l.completion.going, key)
		return true, cerr, nil
	}
	if l.completion.going[key] {
		return false, nil, nil
	}
	job, err := l.runJob(ctx, run.Job, run.ID)
	if err != nil {
		return false, nil, err
	}
	l.completion.going[key] = true
	cctx := l.completion.ctx
	l.completion.wg.Go(func() {
		cerr := l.steps.Complete(cctx, job)
		if cctx.Err() != nil {
			return // the leadership is over: the next leader completes it
		}
		l.completion.mu.Lock()
		l.completion.done[key] = cerr
		l.completion.mu.Unlock()
		select {
		case l.completion.wake <- struct{}{}:
		default:
		}
	})
	return false, nil, nil
}

// finish ends a run whose partitions are all done, or one of which failed
// (runErr): the engine's finish step (outcome, high-water mark, history,
// the sink's records, callbacks), then the history outside the store.
func (l *leader) finish(ctx context.Context, run *engine.RunRecord, runErr error) error {
	job, err := l.runJob(ctx, run.Job, run.ID)
	if err != nil {
		return err
	}
	// The partitions with their checkpoints, for a History outside the
	// store (the store keeps only a summary of the newest runs').
	var parts []engine.PartitionRecord
	if l.n.cfg.History != nil {
		if parts, err = l.rs.Partitions(ctx, run.Job, run.ID); err != nil {
			return err
		}
	}
	if release, ok := l.holds[run.ID]; ok {
		release()
		delete(l.holds, run.ID)
	}
	done, err := l.steps.Finish(job, run, runErr)
	if isFenced(err, len(l.fence)) {
		return errNotLeader
	}
	l.n.cfg.Metrics.runEnded(done)
	if done != nil && done.State != engine.RunRunning && l.n.cfg.History != nil {
		// Kept even when the node is stopping: the run is over in the
		// store already, and this is its only long record.
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		herr := l.n.cfg.History.Put(hctx, done, parts)
		cancel()
		if herr != nil {
			l.n.log.Warn("cannot keep the run's history", "job", run.Job, "run", run.ID, "err", herr)
		}
	}
	if done != nil && done.State != engine.RunRunning && len(job.Callbacks) > 0 {
		l.n.postCallback(ctx, callbackPath(run.Job, run.ID, run.Finished))
	}
	if done != nil && done.State == engine.RunSucceeded {
		for _, d := range Dependants(l.graph, run.Job) {
			l.depsDue[d] = true
		}
	}
	l.n.log.Info("run finished", "job", run.Job, "run", run.ID, "state", done.State, "rows", done.Rows, "err", runErr)
	return nil
}

// runJob reads the spec a run executes with.
func (l *leader) runJob(ctx context.Context, job, run string) (*engine.Job, error) {
	var spec engine.Job
	if err := getJSON(ctx, l.n.cfg.Store, runJobPath(job, run), &spec); err != nil {
		return nil, fmt.Errorf("job %q run %s: read its spec: %w", job, run, err)
	}
	return &spec, nil
}

// place gives pending partitions to nodes, and records why the others
// wait.
func (l *leader) place(ctx context.Context, members []Member, pending []PartitionKey) error {
	if len(pending) == 0 {
		return nil
	}
	placed, waiting := Place(members, pending)
	for _, p := range placed {
		if err := l.assign(ctx, p.PartitionKey, p.Node); err != nil {
			return err
		}
	}
	byRun := map[string]map[string]string{}
	for _, w := range waiting {
		path := runPath(w.Job, w.Run)
		if byRun[path] == nil {
			byRun[path] = map[string]string{}
		}
		byRun[path][w.Partition] = w.Reason
	}
	for _, p := range placed {
		path := runPath(p.Job, p.Run)
		if _, ok := byRun[path]; !ok {
			byRun[path] = map[string]string{}
		}
	}
	for path, reasons := range byRun {
		if err := l.noteWaiting(ctx, path, reasons); err != nil {
			return err
		}
	}
	return nil
}

// assign gives partition k to node under the next lease: its record
// (Running, owner, attempts, lease) and the node's assignment in one fenced
// Multi.
func (l *leader) assign(ctx context.Context, k PartitionKey, node string) error {
	now := l.n.cluster.now()
	first, err := l.firstStartOps(ctx, k, now)
	if err != nil {
		return ignoreNoNode(err)
	}
	_, err = l.rs.updatePartitionWith(ctx, k.Job, k.Run, k.Partition, func(p *engine.PartitionRecord) error {
		if p.State != engine.Pending {
			return errSkip
		}
		p.State, p.Owner, p.Error = engine.Running, node, ""
		p.Attempts++
		p.Lease++
		return nil
	}, func(p engine.PartitionRecord) []store.Op {
		data, _ := json.Marshal(Assignment{Job: k.Job, Run: k.Run, Partition: k.Partition, Lease: p.Lease, Leader: l.epoch, Assigned: now})
		return append([]store.Op{store.CreateOp(assignNodePath(node, k), data, 0)}, first...)
	})
	switch {
	case errors.Is(err, errSkip):
		return nil
	case isFenced(err, len(l.fence)):
		return errNotLeader
	case errors.Is(err, store.ErrNoNode), errors.Is(err, store.ErrNodeExists):
		return nil // the node left, or the step raced itself: the next step decides again
	case err != nil:
		return err
	}
	if len(first) > 0 {
		l.started[runPath(k.Job, k.Run)] = true
	}
	l.n.log.Info("partition placed", "partition", k.String(), "node", node)
	return nil
}

// firstStartOps record when a run's first partition is placed, for the
// first placement of the run this leader makes.
func (l *leader) firstStartOps(ctx context.Context, k PartitionKey, now time.Time) ([]store.Op, error) {
	path := runPath(k.Job, k.Run)
	if l.started[path] {
		return nil, nil
	}
	var run engine.RunRecord
	st, err := l.rs.get(ctx, path, &run)
	if err != nil {
		return nil, err
	}
	if !run.FirstStarted.IsZero() {
		l.started[path] = true
		return nil, nil
	}
	run.FirstStarted = now
	data, err := json.Marshal(run)
	if err != nil {
		return nil, err
	}
	return []store.Op{store.SetOp(path, data, st.Version)}, nil
}

// dependencies fires each job whose upstreams have all succeeded since its
// last dependency fire (DependencyReady), once per such generation: the
// upstream runs it consumes and its queue entry are one fenced Multi,
// checked against the version of the state it read.
func (l *leader) dependencies(ctx context.Context) error {
	s := l.n.cfg.Store
	_, st, err := s.Get(ctx, afterPath)
	if err != nil {
		return err
	}
	now := l.n.cluster.now()
	if st.Version != l.graphVer {
		graph, gst, err := dependencyGraph(ctx, s)
		if err != nil {
			return err
		}
		l.graph, l.graphVer, l.depsLooked = graph, gst.Version, time.Time{}
	}
	if now.Sub(l.depsLooked) >= depsEvery {
		for d := range l.graph {
			l.depsDue[d] = true
		}
		l.depsLooked = now
	}
	due := make([]string, 0, len(l.depsDue))
	for d := range l.depsDue {
		due = append(due, d)
	}
	sort.Strings(due)
	for _, d := range due {
		if err := l.fireAfter(ctx, d, now); err != nil {
			return err
		}
		delete(l.depsDue, d)
	}
	return nil
}

func (l *leader) fireAfter(ctx context.Context, job string, now time.Time) error {
	ups := l.graph[job]
	if len(ups) == 0 {
		return nil
	}
	st, fst, err := fireState(ctx, l.n.cfg.Store, job)
	if err != nil || st.Paused {
		return ignoreNoNode(err)
	}
	last, err := lastSucceeded(ctx, l.n.cfg.Store, ups)
	if err != nil {
		return err
	}
	if !DependencyReady(ups, last, st.Consumed) {
		return nil
	}
	st.Consumed = last
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	entry, err := json.Marshal(QueueEntry{Job: job, Trigger: TriggerAfter, Requested: now, Upstream: last})
	if err != nil {
		return err
	}
	_, err = l.rs.multi(ctx, store.SetOp(firesJobPath(job), data, fst.Version),
		store.CreateOp(store.Join(queuePath, "run-"), entry, store.Sequential))
	switch {
	case isFenced(err, len(l.fence)):
		return errNotLeader
	case errors.Is(err, store.ErrBadVersion):
		return nil // paused or fired meanwhile: looked at again within depsEvery
	case err != nil:
		return ignoreNoNode(err)
	}
	l.n.log.Info("dependency fire", "job", job, "upstream", last)
	return nil
}

var errSkip = errors.New("skip")

// noteWaiting writes a run's waiting reasons when they changed.
func (l *leader) noteWaiting(ctx context.Context, run string, reasons map[string]string) error {
	data, _ := json.Marshal(reasons)
	if l.waited[run] == string(data) {
		return nil
	}
	path := store.Join(run, "waiting")
	_, err := l.rs.multi(ctx, store.SetOp(path, data, store.AnyVersion))
	if errors.Is(err, store.ErrNoNode) {
		_, err = l.rs.multi(ctx, store.CreateOp(path, data, 0))
	}
	if err == nil {
		l.waited[run] = string(data)
	}
	return ignoreNoNode(err)
}

// holdSnapshots exports and holds the snapshot of each run with snapshot:
// true before its first partition is placed. A new leader takes a new
// one for a run its predecessor held: the partitions done before saw the
// old one, said in the log.
func (l *leader) holdSnapshots(ctx context.Context, pending []PartitionKey) error {
	seen := map[string]bool{}
	for _, k := range pending {
		if seen[k.Run] || l.holds[k.Run] != nil {
			continue
		}
		seen[k.Run] = true
		job, err := l.runJob(ctx, k.Job, k.Run)
		if err != nil {
			return err
		}
		if !job.Snapshot {
			continue
		}
		var run engine.RunRecord
		if _, err := l.rs.get(ctx, runPath(k.Job, k.Run), &run); err != nil {
			return ignoreNoNode(err)
		}
		release, err := l.steps.ExportSnapshot(ctx, job, &run)
		if err != nil {
			return err
		}
		l.holds[k.Run] = release
	}
	return nil
}

func ignoreNoNode(err error) error {
	if errors.Is(err, store.ErrNoNode) {
		return nil
	}
	return err
}
