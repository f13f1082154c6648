package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/datashift/datashift/coordinator/history"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// The cluster's tree (../shared/DESIGN.md, "Cluster"), under the store's
// root; the run state's paths are in runstate.go.
//
//	/nodes/node-N          ephemeral sequential: a live node (NodeInfo); N is its id
//	/resources/node-N      ephemeral: what it has free (Resources)
//	/election/n-N          ephemeral sequential: candidates; the lowest leads
//	/names/JOB             the job's name, taken once in the cluster; data: its owner
//	/jobs/node-N/JOB       the job's spec (engine.Job, JSON), filed under its owner
//	/queue/run-N           persistent sequential: a triggered run waiting for the leader
//	/assign/node-N/KEY     a partition given to node N (Assignment)
//	/runs/JOB/RUN/job      the spec the run executes with, written with the run
const (
	nodesPath     = "/nodes"
	resourcesPath = "/resources"
	electionPath  = "/election"
	namesPath     = "/names"
	jobsPath      = "/jobs"
	queuePath     = "/queue"
	assignPath    = "/assign"
)

// basePaths are made once, by whichever node starts first.
var basePaths = []string{nodesPath, resourcesPath, electionPath, namesPath, jobsPath, queuePath, assignPath, runsPath, firesPath, afterPath, callbacksPath}

// NodeInfo is what a node says about itself in /nodes/node-N.
type NodeInfo struct {
	Addr    string    `json:"addr"` // its API, host:port
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Slots   int       `json:"slots"`
	Started time.Time `json:"started"`
}

// Resources is what a node publishes in /resources/node-N, on change and
// every few seconds.
type Resources struct {
	Slots   int      `json:"slots"`
	Free    int      `json:"free"`
	Running []string `json:"running,omitempty"` // the partitions it executes, JOB/RUN/P
	// MemAvailable is the host's available memory in bytes (0: unknown),
	// Heap this process's Go heap, Load the 1-minute load per core.
	MemAvailable int64     `json:"mem_available"`
	Heap         int64     `json:"heap"`
	Load         float64   `json:"load"`
	Draining     bool      `json:"draining,omitempty"`
	Updated      time.Time `json:"updated"`
}

// QueueEntry is a triggered run waiting in /queue.
type QueueEntry struct {
	Job       string    `json:"job"`
	Trigger   string    `json:"trigger"` // TriggerManual, TriggerRun, TriggerCron, TriggerAfter
	Requested time.Time `json:"requested"`
	// A cron fire's tick, the ticks it stands for and its fire record.
	Scheduled time.Time       `json:"scheduled,omitzero"`
	Ticks     engine.TickSpan `json:"ticks,omitzero"`
	Fire      string          `json:"fire,omitempty"`
	// Upstream is, for an `after` fire, the upstream runs it stands for.
	Upstream map[string]string `json:"upstream,omitempty"`
}

// Assignment is a partition given to a node: /assign/node-N/KEY. Lease is
// the partition's lease epoch the node executes under; Leader the epoch of
// the leader that gave it.
type Assignment struct {
	Job       string    `json:"job"`
	Run       string    `json:"run"`
	Partition string    `json:"partition"`
	Lease     int64     `json:"lease"`
	Leader    int64     `json:"leader"`
	Assigned  time.Time `json:"assigned"`
}

// assignName names an assignment's node: job names and run ids hold no '~'.
func assignName(k PartitionKey) string { return k.Job + "~" + k.Run + "~" + k.Partition }

func parseAssignName(name string) (PartitionKey, bool) {
	parts := strings.Split(name, "~")
	if len(parts) != 3 {
		return PartitionKey{}, false
	}
	return PartitionKey{parts[0], parts[1], parts[2]}, true
}

func assignNodePath(node string, k PartitionKey) string {
	return store.Join(assignPath, node, assignName(k))
}

func runJobPath(job, run string) string { return store.Join(runPath(job, run), "job") }

// ErrJobExists refuses a job whose name another job holds in the cluster.
var ErrJobExists = errors.New("a job of that name exists")

// ErrNoJob is returned for a job that is not in the cluster.
var ErrNoJob = errors.New("no such job")

// Cluster is what any node can do on the cluster's tree, leader or not:
// file, read, update, delete and trigger jobs, and read runs and nodes.
type Cluster struct {
	S store.Store
	// History, if set, holds the finished runs (Redis); else the store's
	// own history of the last few runs serves.
	History history.Reader
	// Now is the clock; nil: the real one.
	Now func() time.Time
}

func (c *Cluster) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

func (c *Cluster) runs() *RunState { return &RunState{S: c.S} }

// ensureBase makes the cluster's top-level paths.
func (c *Cluster) ensureBase(ctx context.Context) error {
	for _, p := range basePaths {
		if _, err := store.CreateAll(ctx, c.S, p, nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}

// Members reads the live nodes with what they publish and the jobs filed
// under each, sorted by id.
func (c *Cluster) Members(ctx context.Context) ([]Member, map[string]NodeInfo, map[string]Resources, error) {
	ids, err := c.S.Children(ctx, nodesPath)
	if err != nil {
		return nil, nil, nil, err
	}
	infos, res := map[string]NodeInfo{}, map[string]Resources{}
	var out []Member
	for _, id := range ids {
		var info NodeInfo
		if err := getJSON(ctx, c.S, store.Join(nodesPath, id), &info); err != nil {
			if errors.Is(err, store.ErrNoNode) {
				continue // gone since the listing
			}
			return nil, nil, nil, err
		}
		m := Member{ID: id, Slots: info.Slots}
		var r Resources
		if err := getJSON(ctx, c.S, store.Join(resourcesPath, id), &r); err == nil {
			// The published slots follow the cluster's config.
			m.Slots, m.Draining, m.FreeMemory, m.Load = r.Slots, r.Draining, r.MemAvailable, r.Load
			res[id] = r
		} else if !errors.Is(err, store.ErrNoNode) {
			return nil, nil, nil, err
		}
		jobs, err := c.S.Children(ctx, store.Join(jobsPath, id))
		if err != nil && !errors.Is(err, store.ErrNoNode) {
			return nil, nil, nil, err
		}
		m.Jobs = len(jobs)
		infos[id] = info
		out = append(out, m)
	}
	return out, infos, res, nil
}

// SubmitJob files a new job under the live node with the fewest jobs. A
// name taken anywhere in the cluster is refused with ErrJobExists.
func (c *Cluster) SubmitJob(ctx context.Context, job *engine.Job) (owner string, err error) {
	members, _, _, err := c.Members(ctx)
	if err != nil {
		return "", err
	}
	owner, ok := FileJob(members)
	if !ok {
		return "", errors.New("no live node takes jobs")
	}
	spec, err := json.Marshal(job)
	if err != nil {
		return "", err
	}
	if _, err := store.CreateAll(ctx, c.S, store.Join(jobsPath, owner), nil, 0); err != nil && !errors.Is(err, store.ErrNodeExists) {
		return "", err
	}
	for {
		graph, gst, err := dependencyGraph(ctx, c.S)
		if err != nil {
			return "", err
		}
		after, err := c.afterOps(ctx, job, graph, gst.Version)
		if err != nil {
			return "", err
		}
		fires, err := c.fireStateOp(ctx, job)
		if err != nil {
			return "", err
		}
		ops := append([]store.Op{
			store.CreateOp(store.Join(namesPath, job.Name), []byte(owner), 0),
			store.CreateOp(store.Join(jobsPath, owner, job.Name), spec, 0),
			fires}, after...)
		_, err = c.S.Multi(ctx, ops...)
		var me *store.MultiError
		switch {
		case errors.As(err, &me) && me.Index == 0 && errors.Is(err, store.ErrNodeExists):
			return "", fmt.Errorf("job %q: %w", job.Name, ErrJobExists)
		case errors.As(err, &me) && me.Index > 0 && (errors.Is(err, store.ErrBadVersion) || errors.Is(err, store.ErrNoNode) || errors.Is(err, store.ErrNodeExists)):
			continue // the graph or an upstream changed meanwhile: decide again
		}
		return owner, err
	}
}

// UpdateJob replaces an existing job's spec, where it is filed.
func (c *Cluster) UpdateJob(ctx context.Context, job *engine.Job) error {
	spec, err := json.Marshal(job)
	if err != nil {
		return err
	}
	for {
		owner, st, err := c.owner(ctx, job.Name)
		if err != nil {
			return err
		}
		graph, gst, err := dependencyGraph(ctx, c.S)
		if err != nil {
			return err
		}
		after, err := c.afterOps(ctx, job, graph, gst.Version)
		if err != nil {
			return err
		}
		// The owner's folder names the job that changed: its scheduler
		// reads it again.
		ops := append([]store.Op{store.CheckOp(store.Join(namesPath, job.Name), st.Version),
			store.SetOp(store.Join(jobsPath, owner, job.Name), spec, store.AnyVersion),
			store.SetOp(store.Join(jobsPath, owner), []byte(job.Name), store.AnyVersion)}, after...)
		_, err = c.S.Multi(ctx, ops...)
		if errors.Is(err, store.ErrBadVersion) || errors.Is(err, store.ErrNoNode) || errors.Is(err, store.ErrNodeExists) {
			continue // moved, or the graph changed, meanwhile: look again
		}
		return err
	}
}

// owner returns the node a job is filed under, and the version of its name.
func (c *Cluster) owner(ctx context.Context, name string) (string, store.Stat, error) {
	data, st, err := c.S.Get(ctx, store.Join(namesPath, name))
	if errors.Is(err, store.ErrNoNode) {
		return "", st, fmt.Errorf("job %q: %w", name, ErrNoJob)
	}
	return string(data), st, err
}

// Job returns a job's spec and its owner.
func (c *Cluster) Job(ctx context.Context, name string) (*engine.Job, string, error) {
	for attempt := 0; ; attempt++ {
		owner, _, err := c.owner(ctx, name)
		if err != nil {
			return nil, "", err
		}
		var job engine.Job
		err = getJSON(ctx, c.S, store.Join(jobsPath, owner, name), &job)
		if errors.Is(err, store.ErrNoNode) && attempt < 5 {
			continue // moving between owners
		}
		if err != nil {
			return nil, "", err
		}
		return &job, owner, nil
	}
}

// JobInfo is a job as a listing shows it.
type JobInfo struct {
	Job   *engine.Job
	Owner string
}

// Jobs lists every job, by name.
func (c *Cluster) Jobs(ctx context.Context) ([]JobInfo, error) {
	names, err := c.S.Children(ctx, namesPath)
	if err != nil {
		return nil, err
	}
	var out []JobInfo
	for _, name := range names {
		job, owner, err := c.Job(ctx, name)
		if errors.Is(err, ErrNoJob) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, JobInfo{Job: job, Owner: owner})
	}
	return out, nil
}

// JobOverview is a job as a list of jobs shows it: its spec, owner,
// schedule and newest run.
type JobOverview struct {
	JobInfo
	Schedule *ScheduleInfo
	// LastRun is the newest run, going or finished; nil before the first.
	LastRun *engine.RunRecord
}

// Overview lists every job, by name, with its schedule and newest run.
func (c *Cluster) Overview(ctx context.Context) ([]JobOverview, error) {
	jobs, err := c.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	graph, _, err := dependencyGraph(ctx, c.S)
	if err != nil {
		return nil, err
	}
	out := make([]JobOverview, 0, len(jobs))
	for _, j := range jobs {
		sched, err := c.scheduleInfo(ctx, j.Job, graph)
		if err != nil {
			return nil, fmt.Errorf("job %q: %w", j.Job.Name, err)
		}
		o := JobOverview{JobInfo: j, Schedule: sched}
		runs, err := c.Runs(ctx, j.Job.Name, 1)
		if err != nil {
			return nil, fmt.Errorf("job %q: %w", j.Job.Name, err)
		}
		if len(runs) > 0 {
			o.LastRun = &runs[0]
		}
		out = append(out, o)
	}
	return out, nil
}

// DeleteJob removes a job. A run of it that is going goes on to its end
// with the spec it was started with. A job other jobs run after is
// refused, naming them.
func (c *Cluster) DeleteJob(ctx context.Context, name string) error {
	for {
		owner, st, err := c.owner(ctx, name)
		if err != nil {
			return err
		}
		graph, gst, err := dependencyGraph(ctx, c.S)
		if err != nil {
			return err
		}
		if deps := Dependants(graph, name); len(deps) > 0 {
			return fmt.Errorf("job %q: %w: %s (delete them or change their schedule.after first)", name, ErrHasDependants, strings.Join(deps, ", "))
		}
		ops := []store.Op{store.DeleteOp(store.Join(namesPath, name), st.Version),
			store.DeleteOp(store.Join(jobsPath, owner, name), store.AnyVersion),
			store.SetOp(afterPath, nil, gst.Version)}
		if _, ok := graph[name]; ok {
			ops = append(ops, store.DeleteOp(store.Join(afterPath, name), store.AnyVersion))
		}
		_, err = c.S.Multi(ctx, ops...)
		if errors.Is(err, store.ErrBadVersion) {
			continue
		}
		if err == nil {
			// Its fire records go too; a job filed again under the name
			// starts afresh (its state is made anew at submit).
			if err := store.DeleteAll(ctx, c.S, firesJobPath(name)); err != nil && !errors.Is(err, store.ErrNoNode) {
				return err
			}
		}
		return err
	}
}

// Trigger puts a run of the job on the queue and returns the entry's name.
func (c *Cluster) Trigger(ctx context.Context, name, trigger string) (string, error) {
	if _, _, err := c.owner(ctx, name); err != nil {
		return "", err
	}
	data, err := json.Marshal(QueueEntry{Job: name, Trigger: trigger, Requested: c.now()})
	if err != nil {
		return "", err
	}
	made, err := c.S.Create(ctx, store.Join(queuePath, "run-"), data, store.Sequential)
	if err != nil {
		return "", err
	}
	return store.Base(made), nil
}

// Runs lists a job's runs, newest first: those going or failed (from the
// run state) and the finished ones of its history; limit > 0 keeps the
// newest limit of them.
func (c *Cluster) Runs(ctx context.Context, job string, limit int) ([]engine.RunRecord, error) {
	out, err := c.runs().runRecords(ctx, job)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, rec := range out {
		seen[rec.ID] = true
	}
	hist, err := c.history(ctx, job, limit)
	if err != nil {
		return nil, err
	}
	for _, h := range hist {
		if !seen[h.ID] {
			out = append(out, h)
			seen[h.ID] = true
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// history lists the job's finished runs, newest first: from History when
// there is one (with the store's few as a fallback for runs it missed),
// else the store's. limit > 0 reads no more than that from History.
func (c *Cluster) history(ctx context.Context, job string, limit int) ([]engine.RunRecord, error) {
	kept, err := c.runs().History(ctx, job)
	if err != nil || c.History == nil {
		return kept, err
	}
	long, err := c.History.List(ctx, job, limit)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, r := range long {
		seen[r.ID] = true
	}
	for _, r := range kept {
		if !seen[r.ID] {
			long = append(long, r)
		}
	}
	return long, nil
}

// RunStatus is a run with its partitions, for people.
type RunStatus struct {
	Run        engine.RunRecord
	Partitions []engine.PartitionRecord
	// Finished is the partitions' summary of a run that is over, from the
	// History (the store keeps none once a run is done).
	Finished []history.Partition
	// Waiting says why pending partitions wait, by partition id, as the
	// leader last placed.
	Waiting map[string]string
}

// Run returns one run with its partitions while it is in the run state,
// or once it is over its history entry with its partitions' summary (from
// History, or as the store kept it for the newest runs; none otherwise).
func (c *Cluster) Run(ctx context.Context, job, run string) (*RunStatus, error) {
	for {
		st, err := c.readRun(ctx, job, run)
		// A run that ends while it is read is deleted partition by
		// partition after its history entry is written: read it again.
		if (errors.Is(err, store.ErrNoNode) || errors.Is(err, engine.ErrNotFound)) && st != nil {
			continue
		}
		return st, err
	}
}

// readRun is one read of Run; a non-nil status with a not-found error means
// the run went while it was read.
func (c *Cluster) readRun(ctx context.Context, job, run string) (*RunStatus, error) {
	rs := c.runs()
	var rec engine.RunRecord
	_, err := rs.get(ctx, runPath(job, run), &rec)
	if errors.Is(err, store.ErrNoNode) {
		if c.History != nil {
			e, herr := c.History.Get(ctx, job, run)
			if herr == nil {
				return &RunStatus{Run: e.Run, Finished: e.Partitions}, nil
			}
			if !errors.Is(herr, engine.ErrNotFound) {
				return nil, herr
			}
		}
		hist, herr := rs.History(ctx, job)
		if herr != nil {
			return nil, herr
		}
		for _, h := range hist {
			if h.ID == run {
				kept, err := rs.KeptPartitions(ctx, job, run)
				return &RunStatus{Run: h, Finished: kept}, err
			}
		}
		return nil, fmt.Errorf("run %s of job %q: %w", run, job, engine.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if rec.State != engine.RunRunning && rec.State != engine.RunFailed {
		// FinishRun is deleting the run's nodes, partitions first, and a
		// listing could find some of them gone: read the summary that was
		// written with the run's end instead.
		kept, err := rs.KeptPartitions(ctx, job, run)
		return &RunStatus{Run: rec, Finished: kept}, err
	}
	parts, err := rs.Partitions(ctx, job, run)
	if err != nil {
		return &RunStatus{Run: rec}, err
	}
	st := &RunStatus{Run: rec, Partitions: parts}
	var waiting map[string]string
	if err := getJSON(ctx, c.S, store.Join(runPath(job, run), "waiting"), &waiting); err == nil {
		st.Waiting = waiting
	}
	return st, nil
}

// Leader returns the id of the node leading now ("" when none).
func (c *Cluster) Leader(ctx context.Context) (string, error) {
	kids, err := c.S.Children(ctx, electionPath)
	if err != nil || len(kids) == 0 {
		return "", err
	}
	sortBySequence(kids)
	data, _, err := c.S.Get(ctx, store.Join(electionPath, kids[0]))
	if errors.Is(err, store.ErrNoNode) {
		return "", nil
	}
	return string(data), err
}

func sortBySequence(names []string) {
	sort.Slice(names, func(i, j int) bool {
		a, _ := store.Sequence(names[i])
		b, _ := store.Sequence(names[j])
		return a < b
	})
}

func getJSON(ctx context.Context, r store.Reader, path string, v any) error {
	data, _, err := r.Get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
