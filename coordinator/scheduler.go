package coordinator

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// The scheduler of a node fires the jobs filed under it by their cron
// schedules: one timer over a heap of next-fire times, however many jobs.
// A fire is one Multi: a Check that the node still owns the job (the
// version of /names/JOB, which every move changes), the job's new
// last-fired mark (against the version read), the fire record named by
// the tick, and the queue entry. So a tick fires once whoever owns the job
// when it comes, also while it moves; a new owner fires from the mark on,
// the misfire policy deciding what becomes of the ticks nobody fired.

// fireWorkers bounds the fires in flight at once: jobs due in the same
// second are fired side by side, their Multis pipelined on the session.
const fireWorkers = 32

// jobsPerMulti is how many jobs due together one Multi fires.
const jobsPerMulti = 16

// resyncEvery is how often the scheduler reads its folder again without a
// watch firing; settle how long it lets a burst of changes settle first.
const (
	resyncEvery = 30 * time.Second
	settle      = 100 * time.Millisecond
)

type scheduler struct {
	n      *Node
	id     string
	folder string
	jobs   map[string]*scheduled
	heap   fireHeap
	// folderVer is the version of the folder's data, which names the job
	// last paused, resumed or updated.
	folderVer int32
}

// scheduled is an owned job as the scheduler keeps it.
type scheduled struct {
	name     string
	spec     *engine.Job
	sched    *engine.Schedule // nil: the job has no cron
	specVer  int32
	ownerVer int32 // of /names/JOB
	state    FireState
	stateVer int32
	next     time.Time // zero: not in the heap
	index    int
	moved    bool // the owner Check failed: the job went elsewhere
}

func (n *Node) schedule(ctx context.Context, id string) {
	sc := &scheduler{n: n, id: id, folder: store.Join(jobsPath, id), jobs: map[string]*scheduled{}, folderVer: -1}
	sc.run(ctx)
}

func (sc *scheduler) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		wctx, stopWatching := context.WithCancel(ctx)
		changed, err := sc.sync(wctx)
		if err != nil {
			stopWatching()
			if ctx.Err() == nil {
				sc.n.log.Warn("scheduler: read the jobs", "node", sc.id, "err", err)
				_ = sc.n.sleep(ctx, time.Second)
			}
			continue
		}
		resync := time.After(resyncEvery)
	wait:
		for {
			d := time.Hour
			if len(sc.heap) > 0 {
				d = max(0, sc.heap[0].next.Sub(sc.n.cluster.now()))
			}
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break wait
			case <-changed:
				_ = sc.n.sleep(ctx, settle)
				break wait
			case <-resync:
				break wait
			case <-timer.C:
				if sc.fireDue(ctx) {
					break wait // a job moved away
				}
			}
		}
		stopWatching()
	}
}

// sync reads the folder of owned jobs, loads what is new or changed and
// forgets what left, and returns a channel that hears of the next change.
func (sc *scheduler) sync(ctx context.Context) (<-chan struct{}, error) {
	s := sc.n.cfg.Store
	changed := make(chan struct{}, 1)
	on := func(ch <-chan store.Event) { wakeOn(ctx, ch, changed) }
	kids, kch, err := s.ChildrenW(ctx, sc.folder)
	if errors.Is(err, store.ErrNoNode) {
		// No job filed here yet: wait for the folder.
		ok, _, ech, err := s.ExistsW(ctx, sc.folder)
		if err != nil {
			return nil, err
		}
		if ok {
			changed <- struct{}{}
		}
		on(ech)
		sc.forgetAll(nil)
		return changed, nil
	}
	if err != nil {
		return nil, err
	}
	on(kch)
	data, fst, dch, err := s.GetW(ctx, sc.folder)
	if err != nil {
		return nil, err
	}
	on(dch)
	names := map[string]bool{}
	for _, k := range kids {
		names[k] = true
	}
	sc.forgetAll(names)
	var reload []string
	switch {
	case fst.Version == sc.folderVer:
	case sc.folderVer >= 0 && fst.Version == sc.folderVer+1 && names[string(data)]:
		reload = []string{string(data)}
	case sc.folderVer >= 0:
		reload = kids
	}
	sc.folderVer = fst.Version
	for _, name := range kids {
		if j, ok := sc.jobs[name]; ok && !j.moved && !slices.Contains(reload, name) {
			continue
		}
		if err := sc.load(ctx, name); err != nil {
			return nil, err
		}
	}
	return changed, nil
}

// forgetAll drops the jobs not among names.
func (sc *scheduler) forgetAll(names map[string]bool) {
	for name, j := range sc.jobs {
		if !names[name] {
			sc.unqueue(j)
			delete(sc.jobs, name)
		}
	}
}

// load reads an owned job's spec, ownership and schedule state, and puts
// it in the heap at its next fire.
func (sc *scheduler) load(ctx context.Context, name string) error {
	s := sc.n.cfg.Store
	if old, ok := sc.jobs[name]; ok {
		sc.unqueue(old)
		delete(sc.jobs, name)
	}
	data, st, err := s.Get(ctx, store.Join(sc.folder, name))
	if errors.Is(err, store.ErrNoNode) {
		return nil // moved meanwhile
	}
	if err != nil {
		return err
	}
	var spec engine.Job
	if err := json.Unmarshal(data, &spec); err != nil {
		sc.n.log.Error("scheduler: unreadable job spec", "job", name, "err", err)
		return nil
	}
	owner, ost, err := s.Get(ctx, store.Join(namesPath, name))
	if errors.Is(err, store.ErrNoNode) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	if string(owner) != sc.id {
		return nil // on its way here or away: the folder's watch says when
	}
	j := &scheduled{name: name, spec: &spec, specVer: st.Version, ownerVer: ost.Version, index: -1}
	sc.jobs[name] = j
	if spec.Schedule == nil || spec.Schedule.Cron == "" {
		return nil
	}
	if j.sched, err = engine.ParseSchedule(spec.Schedule.Cron, spec.Schedule.Timezone); err != nil {
		sc.n.log.Error("scheduler: bad schedule", "job", name, "err", err)
		return nil
	}
	if err := sc.readState(ctx, j); err != nil {
		return err
	}
	sc.queue(j)
	return nil
}

// readState reads the job's schedule state, making it for a job that has
// none (filed before the node knew schedules).
func (sc *scheduler) readState(ctx context.Context, j *scheduled) error {
	for {
		st, fst, err := fireState(ctx, sc.n.cfg.Store, j.name)
		if err == nil {
			j.state, j.stateVer = st, fst.Version
			return nil
		}
		if !errors.Is(err, store.ErrNoNode) {
			return err
		}
		data, err := sc.n.cluster.newFireState(ctx, j.spec)
		if err != nil {
			return err
		}
		if _, err := sc.n.cfg.Store.Create(ctx, firesJobPath(j.name), data, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
			return err
		}
	}
}

// queue puts j in the heap at its next fire after its mark (now, for
// ticks it missed), unless it is paused or never fires again.
func (sc *scheduler) queue(j *scheduled) {
	sc.unqueue(j)
	if j.sched == nil || j.state.Paused || j.moved {
		return
	}
	j.next = j.sched.Next(j.state.Mark)
	if !j.next.IsZero() {
		heap.Push(&sc.heap, j)
	}
}

func (sc *scheduler) unqueue(j *scheduled) {
	if j.index >= 0 {
		heap.Remove(&sc.heap, j.index)
	}
}

// fireDue fires every job due now, side by side, and puts them back at
// their next fire. It reports whether a job turned out to have moved away.
func (sc *scheduler) fireDue(ctx context.Context) (moved bool) {
	now := sc.n.cluster.now()
	var due []*scheduled
	for len(sc.heap) > 0 && !sc.heap[0].next.After(now) {
		due = append(due, heap.Pop(&sc.heap).(*scheduled))
	}
	work := make(chan []*scheduled)
	var wg sync.WaitGroup
	for range min(fireWorkers, (len(due)+jobsPerMulti-1)/jobsPerMulti) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range work {
				sc.fireBatch(ctx, batch)
			}
		}()
	}
	for i := 0; i < len(due); i += jobsPerMulti {
		work <- due[i:min(len(due), i+jobsPerMulti)]
	}
	close(work)
	wg.Wait()
	for _, j := range due {
		moved = moved || j.moved
		if sc.jobs[j.name] == j {
			sc.queue(j)
		}
	}
	return moved
}

// fireBatch fires a few jobs due together in one Multi: one transaction
// instead of one per job when thousands are due in the same second. If any
// of them cannot fire as read (moved, paused, fired meanwhile), the Multi
// lands nothing and each is fired on its own.
func (sc *scheduler) fireBatch(ctx context.Context, batch []*scheduled) {
	type planned struct {
		j     *scheduled
		next  FireState
		d     Due
		state int // the index of its state's Set among the ops
	}
	now := sc.n.cluster.now()
	var ops []store.Op
	var plans []planned
	for _, j := range batch {
		d := DueFires(j.sched, j.state.Mark, now, MisfireOf(j.spec.Schedule))
		if len(d.Fires) == 0 && d.Skipped.Count == 0 {
			continue
		}
		next := nextState(j.state, d)
		jops, err := sc.fireOps(j, next, d, now)
		if err != nil {
			sc.n.log.Error("scheduler: cannot encode a fire", "job", j.name, "err", err)
			continue
		}
		plans = append(plans, planned{j, next, d, len(ops) + 1})
		ops = append(ops, jops...)
	}
	if len(plans) == 0 {
		return
	}
	if len(plans) > 1 {
		res, err := sc.n.cfg.Store.Multi(ctx, ops...)
		if err == nil {
			for _, p := range plans {
				sc.fired(ctx, p.j, p.next, res[p.state].Stat.Version, p.d, now)
			}
			return
		}
	}
	for _, p := range plans {
		sc.fire(ctx, p.j)
	}
}

// nextState is a job's schedule state once d is fired.
func nextState(st FireState, d Due) FireState {
	st.Mark = d.Mark
	st.Fires += int64(len(d.Fires))
	if d.Skipped.Count > 0 {
		st.Fires++
	}
	return st
}

// fired records a landed fire in the job's state, and prunes its fire
// records every 50 fires.
func (sc *scheduler) fired(ctx context.Context, j *scheduled, next FireState, version int32, d Due, now time.Time) {
	crossed := next.Fires/50 != j.state.Fires/50
	j.state, j.stateVer = next, version
	sc.n.cfg.Metrics.fired(d.Fires, now)
	for _, f := range d.Fires {
		sc.n.log.Info("fired", "job", j.name, "tick", f.Tick, "stands_for", f.Ticks.Count, "lag", now.Sub(f.Tick).Round(time.Millisecond))
	}
	if d.Skipped.Count > 0 {
		sc.n.log.Info("missed ticks skipped", "job", j.name, "first", d.Skipped.First, "last", d.Skipped.Last, "count", d.Skipped.Count)
	}
	if crossed {
		sc.prune(ctx, j.name)
	}
}

// fire makes what is due of one job in one Multi, and moves its mark.
func (sc *scheduler) fire(ctx context.Context, j *scheduled) {
	s := sc.n.cfg.Store
	for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
		now := sc.n.cluster.now()
		d := DueFires(j.sched, j.state.Mark, now, MisfireOf(j.spec.Schedule))
		if len(d.Fires) == 0 && d.Skipped.Count == 0 {
			return
		}
		next := nextState(j.state, d)
		ops, err := sc.fireOps(j, next, d, now)
		if err != nil {
			sc.n.log.Error("scheduler: cannot encode a fire", "job", j.name, "err", err)
			return
		}
		res, err := s.Multi(ctx, ops...)
		var me *store.MultiError
		switch {
		case err == nil:
			sc.fired(ctx, j, next, res[1].Stat.Version, d, now)
			return
		case errors.As(err, &me) && me.Index == 0:
			j.moved = true // the job is no longer ours: its new owner fires it
			return
		case errors.As(err, &me) && me.Index == 1, errors.Is(err, store.ErrConnectionLoss):
			// The state moved on (a pause, or a fire by an owner before
			// us), or the Multi may have landed: read it again; its
			// version says which.
			if err := sc.readState(ctx, j); err != nil {
				sc.n.log.Warn("scheduler: read the schedule state", "job", j.name, "err", err)
				return
			}
			if j.state.Paused {
				return
			}
		default:
			sc.n.log.Warn("scheduler: fire", "job", j.name, "err", err)
			return
		}
	}
}

func (sc *scheduler) fireOps(j *scheduled, next FireState, d Due, now time.Time) ([]store.Op, error) {
	state, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	ops := []store.Op{
		store.CheckOp(store.Join(namesPath, j.name), j.ownerVer),
		store.SetOp(firesJobPath(j.name), state, j.stateVer),
	}
	record := func(tick time.Time, ticks engine.TickSpan, outcome string) (string, []byte, error) {
		data, err := json.Marshal(FireRecord{Job: j.name, Tick: tick, Ticks: ticks, Node: sc.id, Fired: now, Outcome: outcome})
		return store.Join(firesJobPath(j.name), tickName(tick)), data, err
	}
	for _, f := range d.Fires {
		path, data, err := record(f.Tick, f.Ticks, FireQueued)
		if err != nil {
			return nil, err
		}
		entry, err := json.Marshal(QueueEntry{Job: j.name, Trigger: TriggerCron, Requested: now, Scheduled: f.Tick, Ticks: f.Ticks, Fire: path})
		if err != nil {
			return nil, err
		}
		ops = append(ops, store.CreateOp(path, data, 0), store.CreateOp(store.Join(queuePath, "run-"), entry, store.Sequential))
	}
	if d.Skipped.Count > 0 {
		path, data, err := record(d.Skipped.Last, d.Skipped, FireSkipped+" (misfire: skip)")
		if err != nil {
			return nil, err
		}
		ops = append(ops, store.CreateOp(path, data, 0))
	}
	return ops, nil
}

// prune deletes a job's oldest fire records beyond firesKept.
func (sc *scheduler) prune(ctx context.Context, job string) {
	s := sc.n.cfg.Store
	kids, err := s.Children(ctx, firesJobPath(job))
	if err != nil {
		return
	}
	sort.Strings(kids)
	for _, k := range kids[:max(0, len(kids)-firesKept)] { // names sort by tick
		_ = s.Delete(ctx, store.Join(firesJobPath(job), k), store.AnyVersion)
	}
}

// fireHeap orders jobs by their next fire.
type fireHeap []*scheduled

func (h fireHeap) Len() int           { return len(h) }
func (h fireHeap) Less(i, k int) bool { return h[i].next.Before(h[k].next) }
func (h fireHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].index, h[k].index = i, k
}
func (h *fireHeap) Push(x any) {
	j := x.(*scheduled)
	j.index = len(*h)
	*h = append(*h, j)
}
func (h *fireHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	j.index = -1
	*h = old[:len(old)-1]
	return j
}
