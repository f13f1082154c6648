package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// The scheduling state (see DESIGN.md, "Cluster"):
//
//	/fires/JOB          the job's schedule state (FireState): its last-fired
//	                    mark, paused, the upstream runs its last dependency
//	                    fire consumed
//	/fires/JOB/TICK     one fire record (FireRecord) per scheduled time,
//	                    created with its queue entry: a tick fires once
//	/after/JOB          the upstreams of a job that runs after others; the
//	                    data of /after itself is bumped with every change,
//	                    so a change of the graph is one compare-and-set
//	/callbacks/JOB~RUN~ENDED a finished run's callbacks still to be posted,
//	                    created with the run's end
const (
	firesPath     = "/fires"
	afterPath     = "/after"
	callbacksPath = "/callbacks"
	// firesKept is how many fire records a job keeps: the last-fired mark,
	// not the records, is what makes a tick fire once.
	firesKept = 200
)

func firesJobPath(job string) string { return store.Join(firesPath, job) }

// tickName names a fire record by its scheduled time: names sort by time.
func tickName(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// FireState is a job's schedule state, in /fires/JOB.
type FireState struct {
	// Mark is the last tick fired (or skipped): a new owner fires from the
	// tick after it.
	Mark     time.Time `json:"mark"`
	Paused   bool      `json:"paused,omitempty"`
	PausedAt time.Time `json:"paused_at,omitzero"`
	// Consumed holds, by upstream, the succeeded run the job's last
	// dependency fire stood for.
	Consumed map[string]string `json:"consumed,omitempty"`
	// Fires counts the fire records made, to prune them now and then.
	Fires int64 `json:"fires,omitempty"`
}

// FireRecord is one fire, in /fires/JOB/TICK.
type FireRecord struct {
	Job  string    `json:"job"`
	Tick time.Time `json:"tick"`
	// Ticks are the scheduled times the fire stands for: itself, or with
	// fire_once all the ticks missed before it.
	Ticks engine.TickSpan `json:"ticks"`
	Node  string          `json:"node"`
	Fired time.Time       `json:"fired"`
	// Outcome: queued, skipped (the misfire policy), or dropped with its
	// reason (the overlap policy).
	Outcome string `json:"outcome"`
}

// Fire outcomes.
const (
	FireQueued  = "queued"
	FireSkipped = "skipped"
	FireDropped = "dropped"
)

// ScheduleInfo is what the API shows of a job's schedule.
type ScheduleInfo struct {
	Paused    bool        `json:"paused"`
	PausedAt  time.Time   `json:"paused_at,omitzero"`
	Mark      time.Time   `json:"last_tick,omitzero"`
	NextFires []time.Time `json:"next_fires"`
	Misfire   string      `json:"misfire"`
	Overlap   string      `json:"overlap"`
	After     []string    `json:"after,omitempty"`
	// Dependants are the jobs that run after this one.
	Dependants []string `json:"dependants,omitempty"`
}

// ErrHasDependants refuses to delete a job other jobs run after.
var ErrHasDependants = errors.New("other jobs run after it")

// fireState reads a job's schedule state and its version.
func fireState(ctx context.Context, r store.Reader, job string) (FireState, store.Stat, error) {
	var st FireState
	data, stat, err := r.Get(ctx, firesJobPath(job))
	if err != nil {
		return st, stat, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, stat, fmt.Errorf("decode %s: %w", firesJobPath(job), err)
	}
	return st, stat, nil
}

// lastSucceeded reads the last succeeded run of each job.
func lastSucceeded(ctx context.Context, r store.Reader, jobs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, j := range jobs {
		var js jobState
		err := getJSON(ctx, r, store.Join(jobStatePath, j), &js)
		if err != nil && !errors.Is(err, store.ErrNoNode) {
			return nil, err
		}
		out[j] = js.LastSucceeded
	}
	return out, nil
}

// dependencyGraph reads every job's upstreams, and the graph's version.
func dependencyGraph(ctx context.Context, r store.Reader) (map[string][]string, store.Stat, error) {
	_, st, err := r.Get(ctx, afterPath)
	if err != nil {
		return nil, st, err
	}
	kids, err := r.Children(ctx, afterPath)
	if err != nil {
		return nil, st, err
	}
	graph := map[string][]string{}
	for _, k := range kids {
		var ups []string
		if err := getJSON(ctx, r, store.Join(afterPath, k), &ups); err != nil {
			if errors.Is(err, store.ErrNoNode) {
				continue
			}
			return nil, st, err
		}
		graph[k] = ups
	}
	return graph, st, nil
}

// afterOps are the ops that set job's upstreams in the graph read at
// version graphVer (and check that each upstream exists), or a spec error
// naming an unknown upstream or the cycle the job would close.
func (c *Cluster) afterOps(ctx context.Context, job *engine.Job, graph map[string][]string, graphVer int32) ([]store.Op, error) {
	var after []string
	if job.Schedule != nil {
		after = job.Schedule.After
	}
	_, had := graph[job.Name]
	if len(after) == 0 && !had {
		return nil, nil
	}
	var ops []store.Op
	for _, up := range after {
		ok, st, err := c.S.Exists(ctx, store.Join(namesPath, up))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &engine.SpecError{Job: job.Name, Field: "schedule.after", Reason: fmt.Sprintf("unknown job %q", up)}
		}
		ops = append(ops, store.CheckOp(store.Join(namesPath, up), st.Version))
	}
	if cycle := FindCycle(graph, job.Name, after); cycle != nil {
		return nil, &engine.SpecError{Job: job.Name, Field: "schedule.after", Reason: "would close a cycle: " + strings.Join(cycle, " runs after ")}
	}
	data, _ := json.Marshal(after)
	p := store.Join(afterPath, job.Name)
	switch {
	case len(after) == 0:
		ops = append(ops, store.DeleteOp(p, store.AnyVersion))
	case had:
		ops = append(ops, store.SetOp(p, data, store.AnyVersion))
	default:
		ops = append(ops, store.CreateOp(p, data, 0))
	}
	return append(ops, store.SetOp(afterPath, nil, graphVer)), nil
}

// newFireState is the schedule state of a job filed now: its ticks count
// from now, and its upstreams' earlier successes are not its generation.
func (c *Cluster) newFireState(ctx context.Context, job *engine.Job) ([]byte, error) {
	st := FireState{Mark: c.now()}
	if job.Schedule != nil && len(job.Schedule.After) > 0 {
		last, err := lastSucceeded(ctx, c.S, job.Schedule.After)
		if err != nil {
			return nil, err
		}
		st.Consumed = last
	}
	return json.Marshal(st)
}

// fireStateOp creates the job's schedule state, or replaces one a deleted
// job of the same name left.
func (c *Cluster) fireStateOp(ctx context.Context, job *engine.Job) (store.Op, error) {
	data, err := c.newFireState(ctx, job)
	if err != nil {
		return store.Op{}, err
	}
	ok, _, err := c.S.Exists(ctx, firesJobPath(job.Name))
	if err != nil {
		return store.Op{}, err
	}
	if ok {
		return store.SetOp(firesJobPath(job.Name), data, store.AnyVersion), nil
	}
	return store.CreateOp(firesJobPath(job.Name), data, 0), nil
}

// Schedule returns what the API shows of a job's schedule: paused, the
// last tick, the next five fires, the jobs up and down stream.
func (c *Cluster) Schedule(ctx context.Context, job *engine.Job) (*ScheduleInfo, error) {
	graph, _, err := dependencyGraph(ctx, c.S)
	if err != nil {
		return nil, err
	}
	return c.scheduleInfo(ctx, job, graph)
}

// scheduleInfo is Schedule with the dependency graph read once for many
// jobs.
func (c *Cluster) scheduleInfo(ctx context.Context, job *engine.Job, graph map[string][]string) (*ScheduleInfo, error) {
	st, _, err := fireState(ctx, c.S, job.Name)
	if err != nil && !errors.Is(err, store.ErrNoNode) {
		return nil, err
	}
	m := MisfireOf(job.Schedule)
	info := &ScheduleInfo{Paused: st.Paused, PausedAt: st.PausedAt, Mark: st.Mark, NextFires: []time.Time{}, Misfire: m.Policy, Overlap: engine.OverlapSkip}
	if s := job.Schedule; s != nil {
		info.After, info.Overlap = s.After, s.Overlap
		if s.Cron != "" {
			sched, err := engine.ParseSchedule(s.Cron, s.Timezone)
			if err != nil {
				return nil, err
			}
			from := c.now()
			if st.Mark.After(from) {
				from = st.Mark
			}
			info.NextFires = sched.NextFires(from, 5)
		}
	}
	info.Dependants = Dependants(graph, job.Name)
	return info, nil
}

// Fires lists a job's fire records, newest first.
func (c *Cluster) Fires(ctx context.Context, job string) ([]FireRecord, error) {
	if _, _, err := c.owner(ctx, job); err != nil {
		return nil, err
	}
	kids, err := c.S.Children(ctx, firesJobPath(job))
	if errors.Is(err, store.ErrNoNode) {
		return []FireRecord{}, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(kids)))
	out := make([]FireRecord, 0, len(kids))
	for _, k := range kids {
		var f FireRecord
		if err := getJSON(ctx, c.S, store.Join(firesJobPath(job), k), &f); err != nil {
			if errors.Is(err, store.ErrNoNode) {
				continue
			}
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Pause stops a job's fires until Resume; a run going goes on.
func (c *Cluster) Pause(ctx context.Context, job string) error {
	return c.setPaused(ctx, job, true)
}

// Resume lets a paused job fire again. The ticks missed while it was
// paused go as its misfire policy says; so does an upstream generation:
// with skip, the upstream successes seen while paused are dropped.
func (c *Cluster) Resume(ctx context.Context, job string) error {
	return c.setPaused(ctx, job, false)
}

func (c *Cluster) setPaused(ctx context.Context, name string, paused bool) error {
	for {
		owner, nst, err := c.owner(ctx, name)
		if err != nil {
			return err
		}
		spec := &engine.Job{}
		if err := getJSON(ctx, c.S, store.Join(jobsPath, owner, name), spec); errors.Is(err, store.ErrNoNode) {
			continue // moving between owners
		} else if err != nil {
			return err
		}
		st, fst, err := fireState(ctx, c.S, name)
		if errors.Is(err, store.ErrNoNode) {
			data, err := c.newFireState(ctx, spec)
			if err != nil {
				return err
			}
			_, err = c.S.Multi(ctx, store.CreateOp(firesJobPath(name), data, 0))
			if err != nil && !errors.Is(err, store.ErrNodeExists) {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if st.Paused == paused {
			return nil
		}
		st.Paused = paused
		if paused {
			st.PausedAt = c.now()
		} else {
			st.PausedAt = time.Time{}
			if s := spec.Schedule; s != nil && len(s.After) > 0 && MisfireOf(s).Policy == engine.MisfireSkip {
				if st.Consumed, err = lastSucceeded(ctx, c.S, s.After); err != nil {
					return err
				}
			}
		}
		data, err := json.Marshal(st)
		if err != nil {
			return err
		}
		// The owner's folder is told which job changed: its scheduler
		// looks at that job again.
		_, err = c.S.Multi(ctx, store.CheckOp(store.Join(namesPath, name), nst.Version),
			store.SetOp(firesJobPath(name), data, fst.Version),
			store.SetOp(store.Join(jobsPath, owner), []byte(name), store.AnyVersion))
		if errors.Is(err, store.ErrBadVersion) || errors.Is(err, store.ErrNoNode) {
			continue // fired or moved meanwhile: again, on a fresh read
		}
		return err
	}
}
