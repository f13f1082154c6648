package engine_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/datashift/datashift/connectors"
	mem "github.com/datashift/datashift/connectors/memory"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/engine"
)

// A run's partitions take up the source and sink the partition before
// them opened on the same node instead of opening their own, so a run of
// six partitions one at a time opens its stores as often as a run of one.
// An attempt that failed passes nothing on (its retry opens new stores),
// every store is closed when the run ends, and the copy is whole.
func TestPartitionsTakeUpTheStoresBeforeThem(t *testing.T) {
	for name, newHome := range homes {
		t.Run(name, func(t *testing.T) {
			opened := func(t *testing.T, parts int, failAt string) int64 {
				w := newWorld(t, 600, 0, false)
				w.home = newHome(t)
				job := w.job([]string{"id"}, connectors.Append)
				job.Partitions = engine.PartitionSpec{TargetRows: int64(600 / parts), Max: parts}
				job.Parallelism = 1
				failed := 0
				w.db.SetFaults(func(step mem.Step, table, partition string, n int) error {
					if step == mem.StepWrite && partition == failAt && n == 1 {
						failed++
						return connectors.Transient(errors.New("connection reset by peer"))
					}
					return nil
				})
				var mu sync.Mutex
				done := map[string]bool{}
				run, err := w.home.run(job, proc{RunOptions: coordinator.RunOptions{Sleep: shortSleep, Progress: func(p engine.Progress) {
					mu.Lock()
					defer mu.Unlock()
					if p.State == engine.Done {
						done[p.Partition] = true
					}
				}}})
				if err != nil || run.State != engine.RunSucceeded {
					t.Fatalf("run: %+v, %v", run, err)
				}
				if len(done) != parts {
					t.Fatalf("%d partitions done, want %d", len(done), parts)
				}
				if failAt != "" && failed != 1 {
					t.Fatalf("the fault at %s hit %d times, want once", failAt, failed)
				}
				w.check(connectors.Append)
				n, open := w.db.Opened()
				if open != 0 {
					t.Fatalf("%d of the %d sources and sinks opened are still open after the run", open, n)
				}
				return n
			}
			one := opened(t, 1, "")
			if six := opened(t, 6, ""); six != one {
				t.Errorf("a run of 6 partitions opened %d sources and sinks, a run of 1 opened %d; want as many", six, one)
			}
			if retried := opened(t, 6, "p0002"); retried != one+2 {
				t.Errorf("a run of 6 partitions with one failed attempt opened %d sources and sinks, want %d: a run of 1's, and a source and sink for the retry", retried, one+2)
			}
		})
	}
}
