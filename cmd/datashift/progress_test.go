package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/datashift/datashift/engine"
)

// The plan is read once the run has started, so a small run's partitions
// may have been copied (or ended and gone from the run's state) before
// it is: rows this process copied are not counted as resumed, and the
// partitions it ran are counted even when the plan read no longer lists
// them. Rows an earlier attempt left are.
func TestProgressCountsOnlyEarlierAttemptsAsResumed(t *testing.T) {
	run := &engine.RunRecord{Job: "j", ID: "r1", Scheme: "key-range", Reason: "one key range"}
	part := func(id string, rows int64, started bool, state string) engine.PartitionRecord {
		return engine.PartitionRecord{ID: id, EstRows: 10, State: state, Checkpoint: engine.Checkpoint{Rows: rows, Started: started, Done: state == engine.Done}}
	}
	for _, tc := range []struct {
		name       string
		before     []engine.Progress // reported before the plan is read
		plan       []engine.PartitionRecord
		resumed    int64
		partitions int
		says       string // in what Plan prints; "" for no resuming line
	}{
		{
			name:       "copied and gone before the plan was read",
			before:     []engine.Progress{{Partition: "p0000", State: engine.Done, Rows: 2}},
			resumed:    0,
			partitions: 1,
		},
		{
			name:       "copied before the plan was read",
			before:     []engine.Progress{{Partition: "p0000", State: engine.Done, Rows: 2}},
			plan:       []engine.PartitionRecord{part("p0000", 2, true, engine.Done), part("p0001", 0, false, engine.Pending)},
			resumed:    0,
			partitions: 2,
		},
		{
			name:       "resumed",
			plan:       []engine.PartitionRecord{part("p0000", 5, true, engine.Done), part("p0001", 3, true, engine.Pending), part("p0002", 0, false, engine.Pending)},
			resumed:    8,
			partitions: 3,
			says:       "j: resuming from checkpoints: 1 partitions done, 1 part-way, 8 rows already copied\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			ui := newProgressUI(&out, false)
			for _, p := range tc.before {
				ui.Update(p)
			}
			out.Reset()
			ui.Plan(run, tc.plan)
			if ui.Resumed() != tc.resumed || ui.Partitions() != tc.partitions {
				t.Errorf("resumed %d rows of %d partitions, want %d of %d", ui.Resumed(), ui.Partitions(), tc.resumed, tc.partitions)
			}
			resuming := strings.Contains(out.String(), "resuming from checkpoints")
			if tc.says == "" && resuming || tc.says != "" && !strings.Contains(out.String(), tc.says) {
				t.Errorf("the plan printed %q, want the resuming line %q", out.String(), tc.says)
			}
		})
	}
}

// When the last partition is done the run is not over: the sink may build
// its indexes for a while with every bar full. That is said once, and not
// when quiet.
func TestProgressSaysTheRunIsFinishingOnceEveryPartitionIsDone(t *testing.T) {
	run := &engine.RunRecord{Job: "j", ID: "r1", Scheme: "key-range", Reason: "two key ranges"}
	parts := []engine.PartitionRecord{{ID: "p0000", EstRows: 10, State: engine.Pending}, {ID: "p0001", EstRows: 10, State: engine.Pending}}
	const finishing = "j: all 2 partitions copied; finishing the run"
	for _, quiet := range []bool{false, true} {
		var out bytes.Buffer
		ui := newProgressUI(&out, quiet)
		ui.Plan(run, parts)
		ui.Update(engine.Progress{Job: "j", Partition: "p0000", State: engine.Done, Rows: 10})
		if strings.Contains(out.String(), finishing) {
			t.Fatalf("quiet %v: finishing with a partition to go:\n%s", quiet, out.String())
		}
		ui.Update(engine.Progress{Job: "j", Partition: "p0001", State: engine.Running, Rows: 4})
		ui.Update(engine.Progress{Job: "j", Partition: "p0001", State: engine.Done, Rows: 10})
		if n := strings.Count(out.String(), finishing); n != map[bool]int{false: 1, true: 0}[quiet] {
			t.Errorf("quiet %v: said %d times that the run is finishing:\n%s", quiet, n, out.String())
		}
	}
}
