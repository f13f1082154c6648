package coordinator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/coordinator/store/zkstore"
	"github.com/datashift/datashift/coordinator/store/zkstore/zktest"
	"github.com/datashift/datashift/engine"
)

// backends gives each test the embedded store and a real ZooKeeper root.
func backends(t *testing.T) map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"embedded": func(t *testing.T) store.Store {
			db := embedded.Memory()
			s, err := db.Session()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(); db.Close() })
			return s
		},
		"zookeeper": func(t *testing.T) store.Store {
			servers, root := zktest.Root(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: root, SessionTimeout: 4 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}

func TestRunStateLifecycle(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := &coordinator.RunState{S: open(t)}
			if _, err := st.ActiveRun(ctx, "orders"); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("ActiveRun on an empty store: %v", err)
			}
			run := &engine.RunRecord{Job: "orders", ID: engine.NewRunID(time.Now()), State: engine.RunRunning,
				CursorUpTo: connectors.Key{int64(500)}, CursorKeys: []connectors.Key{{int64(3)}, {int64(17)}}}
			parts := []engine.PartitionRecord{
				{ID: "p0000", Range: connectors.Range{Hi: connectors.Key{int64(100)}}, State: engine.Pending},
				{ID: "p0001", Range: connectors.Range{Lo: connectors.Key{int64(100)}}, State: engine.Pending},
				{ID: "p0002", Range: connectors.Range{Nulls: true}, State: engine.Pending},
			}
			if err := st.CreateRun(ctx, run, parts); err != nil {
				t.Fatal(err)
			}
			active, err := st.ActiveRun(ctx, "orders")
			if err != nil || active.ID != run.ID {
				t.Fatalf("ActiveRun = %v, %v", active, err)
			}
			lease, p, err := st.TakePartition(ctx, "orders", run.ID, "p0001", "me")
			if err != nil {
				t.Fatal(err)
			}
			if p.State != engine.Running || p.Owner != "me" || p.Attempts != 1 || p.Lease != 1 || lease.Epoch() != 1 {
				t.Fatalf("taken partition: %+v, lease %d", p, lease.Epoch())
			}
			if err := lease.Save(ctx, engine.Checkpoint{Position: connectors.Key{int64(250)}, Rows: 150, Started: true}); err != nil {
				t.Fatal(err)
			}
			got, err := st.Partitions(ctx, "orders", run.ID)
			if err != nil || len(got) != 3 {
				t.Fatalf("Partitions = %v, %v", got, err)
			}
			if pos := got[1].Checkpoint.Position; len(pos) != 1 || pos[0] != int64(250) || got[1].Range.Lo[0] != int64(100) || !got[2].Range.Nulls {
				t.Fatalf("partition came back as %+v", got[1])
			}
			if err := st.EndPartition(ctx, "orders", run.ID, "p0001", 1, engine.Done, ""); err != nil {
				t.Fatal(err)
			}
			if got, _ := st.Partitions(ctx, "orders", run.ID); got[1].State != engine.Done || got[1].Checkpoint.Rows != 150 {
				t.Fatalf("ended partition: %+v", got[1])
			}
			if hw, err := st.HighWater(ctx, "orders"); err != nil || hw.Cursor != nil {
				t.Fatalf("high-water before the run succeeded: %v, %v", hw, err)
			}

			run.State = engine.RunSucceeded
			if err := st.FinishRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			if _, err := st.ActiveRun(ctx, "orders"); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("finished run still active: %v", err)
			}
			hw, err := st.HighWater(ctx, "orders")
			if err != nil || len(hw.Cursor) != 1 || hw.Cursor[0] != int64(500) || len(hw.Keys) != 2 || hw.Keys[1][0] != int64(17) {
				t.Fatalf("high-water after success = %v, %v", hw, err)
			}
			hist, err := st.History(ctx, "orders")
			if err != nil || len(hist) != 1 || hist[0].ID != run.ID || hist[0].State != engine.RunSucceeded {
				t.Fatalf("history = %+v, %v", hist, err)
			}

			// A failed run does not move the mark.
			run2 := &engine.RunRecord{Job: "orders", ID: engine.NewRunID(time.Now().Add(time.Second)), State: engine.RunRunning, CursorUpTo: connectors.Key{int64(900)}}
			if err := st.CreateRun(ctx, run2, parts[:1]); err != nil {
				t.Fatal(err)
			}
			run2.State = engine.RunFailed
			if err := st.FinishRun(ctx, run2); err != nil {
				t.Fatal(err)
			}
			if hw, _ := st.HighWater(ctx, "orders"); hw.Cursor[0] != int64(500) || len(hw.Keys) != 2 {
				t.Fatalf("failed run moved the high-water mark to %v", hw)
			}
			// ... and stays, with its partitions, to be continued.
			if active, err := st.ActiveRun(ctx, "orders"); err != nil || active.ID != run2.ID || active.State != engine.RunFailed {
				t.Fatalf("failed run is not continuable: %+v, %v", active, err)
			}
			if ps, err := st.Partitions(ctx, "orders", run2.ID); err != nil || len(ps) != 1 {
				t.Fatalf("failed run's partitions: %v, %v", ps, err)
			}
			// Failing again overwrites its history entry; abandoning it drops it.
			if err := st.FinishRun(ctx, run2); err != nil {
				t.Fatalf("second failure of the same run: %v", err)
			}
			run2.State = engine.RunAbandoned
			if err := st.FinishRun(ctx, run2); err != nil {
				t.Fatal(err)
			}
			if _, err := st.ActiveRun(ctx, "orders"); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("abandoned run still active: %v", err)
			}
			if hist, _ := st.History(ctx, "orders"); len(hist) != 2 || hist[0].State != engine.RunAbandoned {
				t.Fatalf("history after abandoning: %+v", hist)
			}
		})
	}
}

// A partition taken over by a newer lease fences the old holder out: its
// saves fail with ErrLeaseLost and leave the new holder's checkpoint as it
// is, and the old epoch cannot be opened again.
func TestLeaseFencing(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := &coordinator.RunState{S: open(t)}
			run := &engine.RunRecord{Job: "orders", ID: engine.NewRunID(time.Now()), State: engine.RunRunning}
			if err := st.CreateRun(ctx, run, []engine.PartitionRecord{{ID: "p0000", State: engine.Pending}}); err != nil {
				t.Fatal(err)
			}
			stale, _, err := st.TakePartition(ctx, "orders", run.ID, "p0000", "node-1")
			if err != nil {
				t.Fatal(err)
			}
			first := engine.Checkpoint{Position: connectors.Key{int64(10)}, Rows: 10, Commits: 1, Started: true}
			if err := stale.Save(ctx, first); err != nil {
				t.Fatal(err)
			}
			fresh, p, err := st.TakePartition(ctx, "orders", run.ID, "p0000", "node-2")
			if err != nil {
				t.Fatal(err)
			}
			if fresh.Epoch() != 2 || p.Owner != "node-2" || p.Attempts != 2 || p.Checkpoint.Rows != 10 {
				t.Fatalf("taken over: %+v, epoch %d", p, fresh.Epoch())
			}
			if err := stale.Save(ctx, engine.Checkpoint{Rows: 999, Commits: 5}); !errors.Is(err, engine.ErrLeaseLost) {
				t.Fatalf("save under the old lease: %v, want ErrLeaseLost", err)
			}
			if _, _, err := st.OpenLease(ctx, "orders", run.ID, "p0000", 1); !errors.Is(err, engine.ErrLeaseLost) {
				t.Fatalf("open of the old epoch: %v, want ErrLeaseLost", err)
			}
			if err := stale.Check(ctx); !errors.Is(err, engine.ErrLeaseLost) {
				t.Fatalf("check of the old lease: %v, want ErrLeaseLost", err)
			}
			if err := fresh.Check(ctx); err != nil {
				t.Fatalf("check of the new lease: %v", err)
			}
			if err := st.EndPartition(ctx, "orders", run.ID, "p0000", stale.Epoch(), engine.Failed, "stale"); !errors.Is(err, engine.ErrLeaseLost) {
				t.Fatalf("outcome recorded under the old lease: %v, want ErrLeaseLost", err)
			}
			second := engine.Checkpoint{Position: connectors.Key{int64(20)}, Rows: 20, Commits: 2, Started: true}
			for _, cp := range []engine.Checkpoint{first, second} { // saves follow each other
				if err := fresh.Save(ctx, cp); err != nil {
					t.Fatalf("save under the new lease: %v", err)
				}
			}
			got, err := st.Partitions(ctx, "orders", run.ID)
			if err != nil || got[0].Checkpoint.Rows != 20 || got[0].Owner != "node-2" {
				t.Fatalf("after the takeover: %+v, %v", got, err)
			}
		})
	}
}

// Without a History outside the store, a finished run keeps its
// partitions' summary beside its history entry, for the newest ten runs
// of a job; a run going shows its live partitions instead.
func TestRunStateKeepsTheNewestRunsPartitions(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			st := &coordinator.RunState{S: s}
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var ids []string
			for i := range 12 {
				run := &engine.RunRecord{Job: "orders", ID: engine.NewRunID(start.Add(time.Duration(i) * time.Minute)), State: engine.RunRunning}
				parts := []engine.PartitionRecord{
					{ID: "p0000", Range: connectors.Range{Hi: connectors.Key{int64(100)}}, State: engine.Pending},
					{ID: "p0001", Range: connectors.Range{Lo: connectors.Key{int64(100)}}, State: engine.Pending},
				}
				if err := st.CreateRun(ctx, run, parts); err != nil {
					t.Fatal(err)
				}
				for j, p := range parts {
					lease, _, err := st.TakePartition(ctx, "orders", run.ID, p.ID, "node-1")
					if err != nil {
						t.Fatal(err)
					}
					if err := lease.Save(ctx, engine.Checkpoint{Rows: int64(10*i + j), Done: true, Started: true}); err != nil {
						t.Fatal(err)
					}
					if err := st.EndPartition(ctx, "orders", run.ID, p.ID, lease.Epoch(), engine.Done, ""); err != nil {
						t.Fatal(err)
					}
				}
				run.State = engine.RunSucceeded
				if err := st.FinishRun(ctx, run); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, run.ID)
			}
			for i, id := range ids {
				kept, err := st.KeptPartitions(ctx, "orders", id)
				if err != nil {
					t.Fatal(err)
				}
				if i < 2 {
					if kept != nil {
						t.Errorf("run %d of 12 kept its partitions: %+v", i+1, kept)
					}
					continue
				}
				if len(kept) != 2 || kept[0].ID != "p0000" || kept[0].Rows != int64(10*i) || kept[1].Rows != int64(10*i+1) ||
					kept[1].State != engine.Done || kept[1].Owner != "node-1" || kept[1].Range != "[100, +∞)" {
					t.Errorf("run %d of 12 kept %+v", i+1, kept)
				}
			}
			hist, err := st.History(ctx, "orders")
			if err != nil || len(hist) != 12 {
				t.Fatalf("history: %d runs, %v", len(hist), err)
			}
		})
	}
}

// deletesNothing is a store whose Delete does nothing: a run's end caught
// before it deleted the run.
type deletesNothing struct{ store.Store }

func (deletesNothing) Delete(context.Context, string, int32) error { return nil }

// A run read while its end deletes its partitions shows every partition
// (from the summary written with the end), not the ones not yet deleted.
func TestRunEndedShowsEveryPartitionWhileItIsDeleted(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			st := &coordinator.RunState{S: s}
			run := &engine.RunRecord{Job: "orders", ID: engine.NewRunID(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), State: engine.RunRunning}
			parts := []engine.PartitionRecord{
				{ID: "p0000", Range: connectors.Range{Hi: connectors.Key{int64(100)}}, State: engine.Pending},
				{ID: "p0001", Range: connectors.Range{Lo: connectors.Key{int64(100)}, Hi: connectors.Key{int64(200)}}, State: engine.Pending},
				{ID: "p0002", Range: connectors.Range{Lo: connectors.Key{int64(200)}}, State: engine.Pending},
			}
			if err := st.CreateRun(ctx, run, parts); err != nil {
				t.Fatal(err)
			}
			for i, p := range parts {
				lease, _, err := st.TakePartition(ctx, "orders", run.ID, p.ID, "node-1")
				if err != nil {
					t.Fatal(err)
				}
				if err := lease.Save(ctx, engine.Checkpoint{Rows: int64(i + 1), Done: true, Started: true}); err != nil {
					t.Fatal(err)
				}
				if err := st.EndPartition(ctx, "orders", run.ID, p.ID, lease.Epoch(), engine.Done, ""); err != nil {
					t.Fatal(err)
				}
			}
			run.State = engine.RunSucceeded
			if err := (&coordinator.RunState{S: deletesNothing{s}}).FinishRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			// Halfway through deleting the run: the first partition is gone.
			for _, p := range []string{"progress", "partitions"} {
				if err := s.Delete(ctx, "/runs/orders/"+run.ID+"/"+p+"/p0000", store.AnyVersion); err != nil {
					t.Fatal(err)
				}
			}
			got, err := (&coordinator.Cluster{S: s}).Run(ctx, "orders", run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Run.State != engine.RunSucceeded || len(got.Partitions) != 0 || len(got.Finished) != 3 {
				t.Fatalf("run %s with %d live and %d finished partitions, want succeeded with 3 finished", got.Run.State, len(got.Partitions), len(got.Finished))
			}
			for i, p := range got.Finished {
				if p.ID != parts[i].ID || p.Rows != int64(i+1) || p.State != engine.Done {
					t.Errorf("partition %d: %+v", i, p)
				}
			}
		})
	}
}
