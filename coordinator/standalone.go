package coordinator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// RunOptions tune RunJob.
type RunOptions struct {
	// Restart abandons the job's unfinished or failed run (its rows stay in
	// the sink) and starts a new one.
	Restart bool
	// Progress hears every partition's progress; OnPlan the run's
	// partitions once they are known.
	Progress func(engine.Progress)
	OnPlan   func(run *engine.RunRecord, parts []engine.PartitionRecord)
	Log      *slog.Logger
	// CallbackWait bounds how long RunJob waits, once the run is over,
	// for its callbacks to be posted (default 15s). What is not posted by
	// then stays in the job's state and is posted by its next run.
	CallbackWait time.Duration
	// Now and Sleep are the clock; nil: the real one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// RunJob runs one job to its end on a cluster of one: a node on s (the
// embedded store of a standalone run) that leads and works, with
// job.Parallelism slots. It is how `datashift run` runs: the same leader
// and worker as a cluster's, so a standalone run and a cluster run are the
// same code. The job is filed (or its spec updated), its unfinished run
// continued (a failed one by a trigger, as in a cluster) or a new run
// triggered, and RunJob returns the finished run; the error is the run's
// failure. When ctx ends first the node drains: its partitions stop at
// their last checkpoint, the run stays to be continued by the next call,
// and the context's error is returned.
func RunJob(ctx context.Context, s store.Store, job *engine.Job, opts RunOptions) (*engine.RunRecord, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// What the last process left is read before the node starts: once it
	// does, its leader acts on it at once (finishes a run whose partitions
	// are all done, consumes a trigger), and what is read later could be
	// its doing, not the last process's.
	// A cluster of one runs the job once: it keeps no schedule (its
	// upstreams are other state files' jobs).
	if job.Schedule != nil {
		once := *job
		once.Schedule = nil
		job = &once
	}
	c := &Cluster{S: s, Now: opts.Now}
	rs := c.runs()
	filed := true
	if _, _, err := c.Job(ctx, job.Name); errors.Is(err, ErrNoJob) {
		filed = false
	} else if err != nil {
		return nil, err
	} else if err := c.UpdateJob(ctx, job); err != nil {
		return nil, err
	}
	steps := &engine.Steps{State: rs, Log: log, Now: opts.Now, Sleep: opts.Sleep}
	active, err := rs.ActiveRun(ctx, job.Name)
	switch {
	case err == nil && opts.Restart:
		if err := steps.Abandon(ctx, job, active); err != nil {
			return nil, err
		}
		active = nil
	case err == nil && active.State == engine.RunRunning:
		// An interrupted run continues only as it was planned: the checks
		// of a trigger's (the pinned spec and inputs, the plan), which a
		// run that is going never meets.
		if _, _, _, err := steps.Plan(ctx, job, false); err != nil {
			return nil, err
		}
	case errors.Is(err, engine.ErrNotFound):
		active = nil
	case err != nil:
		return nil, err
	}
	// A trigger the last process made and did not see taken is this run's.
	entry, err := pendingTrigger(ctx, c, job.Name)
	if err != nil {
		return nil, err
	}

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	node, err := Start(startCtx, Config{Store: s, Slots: max(1, job.Parallelism), Log: log, Tick: 500 * time.Millisecond,
		Progress: opts.Progress, Now: opts.Now, Sleep: opts.Sleep, NoSchedule: true})
	cancel()
	if err != nil {
		return nil, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = node.Stop(stopCtx)
	}()
	c = node.Cluster()
	if !filed {
		if _, err := c.SubmitJob(ctx, job); err != nil {
			return nil, err
		}
	}
	if entry == "" && (active == nil || active.State == engine.RunFailed) {
		if entry, err = c.Trigger(ctx, job.Name, TriggerRun); err != nil {
			return nil, err
		}
	}
	if entry != "" {
		if active, err = waitStarted(ctx, c, job.Name, entry); err != nil {
			return nil, err
		}
	}
	if opts.OnPlan != nil {
		if st, err := c.Run(ctx, job.Name, active.ID); err == nil {
			opts.OnPlan(&st.Run, st.Partitions)
		}
	}
	run, err := waitEnded(ctx, c, job.Name, active.ID)
	if run != nil && run.State != engine.RunRunning {
		waitCallbacks(ctx, c, log, cmp.Or(opts.CallbackWait, 15*time.Second))
	}
	return run, err
}

// waitCallbacks waits up to wait for the outbox of callbacks to empty,
// and says what it left.
func waitCallbacks(ctx context.Context, c *Cluster, log *slog.Logger, wait time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	pending := 0
	for {
		left, err := c.S.Children(ctx, callbacksPath)
		switch {
		case err == nil && len(left) == 0:
			return
		case err == nil:
			pending = len(left)
		case ctx.Err() == nil:
			return
		}
		// The time may run out in the read as well as in the sleep.
		if ctx.Err() != nil {
			log.Warn(fmt.Sprintf("callbacks not posted within %s; they stay in the job's state and are posted by its next run", wait), "left", pending)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pendingTrigger returns the job's entry in the run queue, "" if none.
func pendingTrigger(ctx context.Context, c *Cluster, job string) (string, error) {
	entries, err := c.S.Children(ctx, queuePath)
	if errors.Is(err, store.ErrNoNode) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	sortBySequence(entries)
	for _, e := range entries {
		var q QueueEntry
		if err := getJSON(ctx, c.S, store.Join(queuePath, e), &q); err == nil && q.Job == job {
			return e, nil
		} else if err != nil && !errors.Is(err, store.ErrNoNode) {
			return "", err
		}
	}
	return "", nil
}

// waitStarted waits for the leader to take the queue entry and returns the
// run it started, or the reason it refused the trigger: the run whose
// record names the entry.
func waitStarted(ctx context.Context, c *Cluster, job, entry string) (*engine.RunRecord, error) {
	rs := c.runs()
	for {
		ok, _, err := c.S.Exists(ctx, store.Join(queuePath, entry))
		if err != nil {
			return nil, err
		}
		if !ok {
			run, err := rs.ActiveRun(ctx, job)
			switch {
			case err == nil && run.QueueEntry == entry && run.State == engine.RunRunning:
				return run, nil
			case err == nil && run.QueueEntry == entry:
				return nil, refusedRun(job, run.Error)
			case err != nil && !errors.Is(err, engine.ErrNotFound):
				return nil, err
			}
			hist, err := rs.History(ctx, job)
			if err != nil {
				return nil, err
			}
			for _, h := range hist {
				if h.QueueEntry != entry {
					continue
				}
				if h.State == engine.RunFailed {
					return nil, refusedRun(job, h.Error)
				}
				return &h, nil
			}
			return nil, fmt.Errorf("job %q: the trigger was taken but no run came of it", job)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitEnded waits for run to end and returns its final record. It watches
// the run's record rather than reading the run over and over: a read of a
// run decodes every partition, and at 50 reads a second that was 5 % of a
// copy's CPU.
func waitEnded(ctx context.Context, c *Cluster, job, run string) (*engine.RunRecord, error) {
	var last *engine.RunRecord
	for {
		data, _, changed, err := c.S.GetW(ctx, runPath(job, run))
		if errors.Is(err, store.ErrNoNode) {
			// Ended, and moved to the history: read it there.
			st, err := c.Run(ctx, job, run)
			if err != nil {
				return last, err
			}
			return endedRun(job, run, st.Run)
		}
		if err != nil {
			return last, err
		}
		var rec engine.RunRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return last, fmt.Errorf("decode run %s of job %q: %w", run, job, err)
		}
		if rec.State != engine.RunRunning {
			return endedRun(job, run, rec)
		}
		last = &rec
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-changed:
		case <-time.After(time.Second): // a watch lost with the session
		}
	}
}

// endedRun is waitEnded's answer for an ended run's record.
func endedRun(job, run string, rec engine.RunRecord) (*engine.RunRecord, error) {
	if rec.State != engine.RunSucceeded {
		return &rec, fmt.Errorf("job %q run %s %s: %s", job, run, rec.State, rec.Error)
	}
	return &rec, nil
}

// refusedRun is the error of a run refused before it started, named by its
// job once: the reason often names it already (a spec error).
func refusedRun(job, reason string) error {
	if prefix := fmt.Sprintf("job %q", job); strings.HasPrefix(reason, prefix) {
		return errors.New(reason)
	}
	return fmt.Errorf("job %q: %s", job, reason)
}
