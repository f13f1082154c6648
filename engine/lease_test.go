package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/engine"
)

// homes gives a test the embedded store and a real ZooKeeper root; both
// hold the same run state, and the fencing must hold on each.
var homes = map[string]func(t testing.TB) *home{"embedded": newHome, "zookeeper": zkHome}

// pause holds the node's first holder of partition p0000 at one point of
// its copy until released: inside its n-th checkpoint save of p0000 (a
// store call, after the sink commit it saves), or in the Progress
// callback of its n-th batch written (rows in the sink's open
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
	savesAfter    int
	saveErr       error // of the paused save
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

// progress is the node's Progress callback.
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

// pausingStore is the node's session, with the pause in its saves of p0000.
type pausingStore struct {
	store.Store
	p *pause
}

func (s pausingStore) Multi(ctx context.Context, ops ...store.Op) ([]store.OpResult, error) {
	if storeStep(ops) != "save" || !strings.HasSuffix(ops[1].Path, "/progress/p0000") {
		return s.Store.Multi(ctx, ops...)
	}
	s.p.mu.Lock()
	s.p.saves++
	hold := s.p.saves == s.p.atSave
	if s.p.after {
		s.p.savesAfter++
	}
	s.p.mu.Unlock()
	if hold {
		s.p.hold()
	}
	res, err := s.Store.Multi(ctx, ops...)
	if hold {
		s.p.mu.Lock()
		s.p.saveErr = err
		s.p.mu.Unlock()
	}
	return res, err
}

// logged keeps the records a node logs, with their attributes.
type logged struct {
	mu      sync.Mutex
	records []loggedRecord
}

type loggedRecord struct {
	msg   string
	attrs map[string]any
}

type logHandler struct {
	l     *logged
	attrs []slog.Attr
}

func (h logHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h logHandler) WithGroup(string) slog.Handler            { return h }
func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.l, append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h logHandler) Handle(_ context.Context, r slog.Record) error {
	rec := loggedRecord{msg: r.Message, attrs: map[string]any{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Any()
		return true
	})
	h.l.mu.Lock()
	h.l.records = append(h.l.records, rec)
	h.l.mu.Unlock()
	return nil
}

// find returns the records with message msg whose partition attribute
// ends with suffix.
func (l *logged) find(msg, suffix string) []loggedRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loggedRecord
	for _, r := range l.records {
		if p, _ := r.attrs["partition"].(string); r.msg == msg && strings.HasSuffix(p, suffix) {
			out = append(out, r)
		}
	}
	return out
}

// A worker that lost its partition while it was copying is fenced out at
// its next step: at a checkpoint save (the coordinator store refuses it) or
// at a sink commit (the sink's record has the newer lease and the commit
// rolls back). Either way its copy of that partition stops at once; the
// new holder's copy counts, and the stale holder's run goes on with its
// other partitions to success (a lost lease does not fail the run), the
// sink equal to the source, no row lost or doubled.
func TestStaleLeaseHolderStops(t *testing.T) {
	for name, newHome := range homes {
		for _, at := range []struct {
			name            string
			atSave, atBatch int
		}{{"at-checkpoint-save", 3, 0}, {"at-sink-commit", 0, 5}} {
			t.Run(name+"/"+at.name, func(t *testing.T) {
				src, dst := pgEndpoint(t), pgEndpoint(t)
				src.fill(t, fixtureRows)
				job := copyJob(src, dst, connectors.Append)
				job.Parallelism = 1
				h := newHome(t)
				p := newPause(at.atSave, at.atBatch)
				logs := &logged{}

				// The first holder is a node running the job; it stalls in p0000.
				var firstRun *engine.RunRecord
				firstErr := make(chan error, 1)
				go func() {
					run, err := h.run(job, proc{
						RunOptions: coordinator.RunOptions{Progress: p.progress, Log: slog.New(logHandler{l: logs})},
						wrap:       func(s store.Store) store.Store { return pausingStore{s, p} },
					})
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

				// Meanwhile another node takes the partition over and copies
				// it to its end.
				ctx := context.Background()
				state := h.state()
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
				select {
				case err = <-firstErr:
				case <-time.After(2 * time.Minute):
					t.Fatal("the stale holder's run did not end")
				}
				if err != nil || firstRun == nil || firstRun.State != engine.RunSucceeded {
					t.Fatalf("the stale holder's run: %+v, %v; want it succeeded, the lost lease not failing it", firstRun, err)
				}
				stopped := logs.find("partition taken over; stopped", "/p0000")
				if len(stopped) != 1 {
					t.Fatalf("the stale holder stopped p0000 %d times, want once", len(stopped))
				}
				stopErr, _ := stopped[0].attrs["err"].(error)
				if !errors.Is(stopErr, engine.ErrLeaseLost) {
					t.Fatalf("the stale holder stopped with %v, want a lost lease", stopErr)
				}
				p.mu.Lock()
				written, saves, saveErr := p.writtenAfter, p.savesAfter, p.saveErr
				p.mu.Unlock()
				switch at.name {
				case "at-checkpoint-save":
					if saveErr == nil || !strings.Contains(stopErr.Error(), "save checkpoint") || written != 0 || saves != 0 {
						t.Fatalf("stale holder: paused save %v (stopped with %v), then %d saves and %d batches written; want the save refused and nothing more", saveErr, stopErr, saves, written)
					}
				case "at-sink-commit":
					// It writes into its open transaction up to its next
					// commit, which the sink refuses; nothing after.
					if saves != 0 || strings.Contains(stopErr.Error(), "save checkpoint") || written > int(job.CommitRows)/job.BatchRows {
						t.Fatalf("stale holder: stopped with %v after %d saves and %d batches; want its commit refused, no save, no batch past it", stopErr, saves, written)
					}
				}
				if got, want := dst.checksum(t), src.checksum(t); got != want || firstRun.Rows != fixtureRows {
					t.Fatalf("sink %v (run says %d rows), source %v", got, firstRun.Rows, want)
				}
			})
		}
	}
}
