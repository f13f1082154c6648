package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/coordinator/store/zkstore"
	"github.com/datashift/datashift/coordinator/store/zkstore/zktest"
	"github.com/datashift/datashift/engine"
)

// The tests run jobs as `datashift run` does: coordinator.RunJob, a
// cluster of one on the job's coordinator state, the same leader and
// worker as a cluster's. A home is that state; it outlives the processes
// run on it, each with a session of its own that ends with the process
// (its ephemeral nodes go, so the next process's leader gives back the
// partitions the last one held).
type home struct {
	t    testing.TB
	open func() (store.Store, error)
}

// newHome is an embedded store in memory, as a job's state file is.
func newHome(t testing.TB) *home {
	db := embedded.Memory()
	t.Cleanup(func() { db.Close() })
	return &home{t: t, open: func() (store.Store, error) {
		s, err := db.Session()
		if err != nil {
			return nil, err
		}
		return s, nil
	}}
}

// zkHome is a ZooKeeper root of the test's own, as a cluster's state is.
func zkHome(t testing.TB) *home {
	servers, root := zktest.Root(t)
	return &home{t: t, open: func() (store.Store, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: root, SessionTimeout: zktest.SessionTimeout})
		if err != nil {
			return nil, err
		}
		return s, nil
	}}
}

// proc is how one process runs: its context (nil: one that does not end),
// RunJob's options, and, if wrap is set, what stands between the process
// and its session (a crash, a pause).
type proc struct {
	ctx context.Context
	coordinator.RunOptions
	wrap func(store.Store) store.Store
}

// run is one process running the job to its end (or to ctx's): a new
// session, RunJob, the session closed. Safe to call from any goroutine.
func (h *home) run(job *engine.Job, p proc) (*engine.RunRecord, error) {
	s, err := h.open()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	ctx := p.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	var st store.Store = s
	if p.wrap != nil {
		st = p.wrap(s)
	}
	return coordinator.RunJob(ctx, st, job, p.RunOptions)
}

// state reads (and, for a test playing another node, writes) the home's
// run state on a session of its own, closed when the test ends.
func (h *home) state() *coordinator.RunState {
	h.t.Helper()
	s, err := h.open()
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { s.Close() })
	return &coordinator.RunState{S: s}
}

// activeRun is the job's unfinished run.
func (h *home) activeRun(job *engine.Job) *engine.RunRecord {
	h.t.Helper()
	run, err := h.state().ActiveRun(context.Background(), job.Name)
	if err != nil {
		h.t.Fatal(err)
	}
	return run
}

// runOnce runs job in one process on a home of its own.
func runOnce(t testing.TB, job *engine.Job, opts coordinator.RunOptions) (*engine.RunRecord, error) {
	return newHome(t).run(job, proc{RunOptions: opts})
}
