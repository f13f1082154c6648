package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/zkstore"
	"github.com/datashift/datashift/coordinator/store/zkstore/zktest"
	"github.com/datashift/datashift/engine"
)

// stores gives a test the embedded store and a real ZooKeeper root; both
// hold the same run state, and the fencing must hold on each.
func stores(t *testing.T) map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"embedded": func(t *testing.T) store.Store {
			return newState(t).S.(store.Store)
		},
		"zookeeper": func(t *testing.T) store.Store {
			servers, root := zktest.Root(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: root, SessionTimeout: zktest.SessionTimeout})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}

// pause holds the first holder of partition p0000 at one point of its
// copy until released: at its n-th checkpoint save (after the sink commit
// it saves), or at its n-th batch written (rows in the sink's open
// transaction, uncommitted).
type pause struct {
	atSave, atBatch int
	reached         chan struct{}
	release         chan struct{}

	mu            sync.Mutex
	saves, writes int
	once          sync.Once
	after         bool // released: what the holder does from here on is counted
	writtenAfter  int
	saveErr       error
}

func newPause(atSave, atBatch int) *pause {
	return &pause{atSave: atSave, atBatch: atBatch, reached: make(chan struct{}), release: make(chan struct{})}
}

func (p *pause) hold() {
	p.once.Do(func() { close(p.reached) })
	<-p.release
	p.mu.Lock()
	p.after = true
	p.mu.Unlock()
}

// progress is the first holder's Progress callback.
func (p *pause) progress(pr engine.Progress) {
	if pr.Partition != "p0000" || pr.State != engine.Running {
		return
	}
	p.mu.Lock()
	p.writes++
	hold := p.writes == p.atBatch
	if p.after {
		p.writtenAfter++
	}
	p.mu.Unlock()
	if hold {
		p.hold()
	}
}

type pausingState struct {
	engine.State
	p *pause
}

type pausingLease struct {
	engine.Lease
	p *pause
}

func (s pausingState) TakePartition(ctx context.Context, job, run, id, owner string) (engine.Lease, engine.PartitionRecord, error) {
	l, rec, err := s.State.TakePartition(ctx, job, run, id, owner)
	if err != nil || id != "p0000" {
		return l, rec, err
	}
	return pausingLease{l, s.p}, rec, nil
}

func (l pausingLease) Save(ctx context.Context, cp engine.Checkpoint) error {
	l.p.mu.Lock()
	l.p.saves++
	hold := l.p.saves == l.p.atSave
	l.p.mu.Unlock()
	if hold {
		l.p.hold()
	}
	err := l.Lease.Save(ctx, cp)
	l.p.mu.Lock()
	if l.p.after && l.p.saveErr == nil {
		l.p.saveErr = err
	}
	l.p.mu.Unlock()
	return err
}

// A worker that lost its partition while it was copying is fenced out at
// its next step: at a checkpoint save (the coordinator store refuses it) or
// at a sink commit (the sink's record has the newer lease and the commit
// rolls back). Either way its copy stops at once, and the new holder's
// copy leaves the sink equal to the source, no row lost or doubled.
func TestStaleLeaseHolderStops(t *testing.T) {
	for name, open := range stores(t) {
		for _, at := range []struct {
			name            string
			atSave, atBatch int
		}{{"at-checkpoint-save", 3, 0}, {"at-sink-commit", 0, 5}} {
			t.Run(name+"/"+at.name, func(t *testing.T) {
				src, dst := pgEndpoint(t), pgEndpoint(t)
				src.fill(t, fixtureRows)
				job := copyJob(src, dst, connectors.Append)
				job.Parallelism = 1
				state := &coordinator.RunState{S: open(t)}
				p := newPause(at.atSave, at.atBatch)

				// The first holder runs the job and stalls in p0000.
				var firstRun *engine.RunRecord
				firstErr := make(chan error, 1)
				go func() {
					run, err := (&engine.Runner{State: pausingState{state, p}, Progress: p.progress, Owner: "node-1"}).Run(context.Background(), job)
					firstRun = run
					firstErr <- err
				}()
				select {
				case <-p.reached:
				case err := <-firstErr:
					t.Fatalf("the first holder ended before it stalled: %v", err)
				case <-time.After(time.Minute):
					t.Fatal("the first holder never reached the pause")
				}

				// Meanwhile the partition is taken over and copied to its end.
				ctx := context.Background()
				run, err := state.ActiveRun(ctx, job.Name)
				if err != nil {
					t.Fatal(err)
				}
				lease, part, err := state.TakePartition(ctx, job.Name, run.ID, "p0000", "node-2")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := (&engine.Executor{}).Execute(ctx, engine.Task{Job: job, Run: run, Partition: part, Lease: lease}); err != nil {
					t.Fatalf("the new holder: %v", err)
				}
				if err := state.EndPartition(ctx, job.Name, run.ID, "p0000", lease.Epoch(), engine.Done, ""); err != nil {
					t.Fatal(err)
				}

				close(p.release)
				err = <-firstErr
				if !errors.Is(err, engine.ErrLeaseLost) {
					t.Fatalf("the stale holder's run ended with %v, want a lost lease", err)
				}
				p.mu.Lock()
				written, saveErr := p.writtenAfter, p.saveErr
				p.mu.Unlock()
				switch at.name {
				case "at-checkpoint-save":
					if !errors.Is(saveErr, engine.ErrLeaseLost) || written != 0 {
						t.Fatalf("stale holder: save %v, then %d batches written; want a refused save and no more writes", saveErr, written)
					}
				case "at-sink-commit":
					if saveErr != nil {
						t.Fatalf("the stale holder saved a checkpoint after it lost the lease: %v", saveErr)
					}
				}
				if firstRun == nil || firstRun.State != engine.RunFailed {
					t.Fatalf("the stale holder's run: %+v", firstRun)
				}

				// The run, continued, ends with the sink equal to the source.
				again, err := (&engine.Runner{State: state}).Run(ctx, job)
				if err != nil {
					t.Fatalf("continued run: %v", err)
				}
				if got, want := dst.checksum(t), src.checksum(t); got != want || again.Rows != fixtureRows {
					t.Fatalf("sink %v (run says %d rows), source %v", got, again.Rows, want)
				}
			})
		}
	}
}
