package coordinator

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/datashift/datashift/engine"
)

func keys(run string, n int) []PartitionKey {
	out := make([]PartitionKey, n)
	for i := range out {
		out[i] = PartitionKey{Job: "j", Run: run, Partition: fmt.Sprintf("p%04d", i)}
	}
	return out
}

func countByNode(ps []Placement) map[string]int {
	out := map[string]int{}
	for _, p := range ps {
		out[p.Node]++
	}
	return out
}

func TestPlace(t *testing.T) {
	tests := []struct {
		name     string
		members  []Member
		pending  int
		want     map[string]int // partitions per node
		waiting  int
		reasonIs string
	}{
		{"spread over equal nodes", []Member{{ID: "a", Slots: 4}, {ID: "b", Slots: 4}, {ID: "c", Slots: 4}}, 6,
			map[string]int{"a": 2, "b": 2, "c": 2}, 0, ""},
		{"most free slots first", []Member{{ID: "a", Slots: 4, Assigned: 3}, {ID: "b", Slots: 4}}, 3,
			map[string]int{"b": 3}, 0, ""},
		{"then shared once even", []Member{{ID: "a", Slots: 4, Assigned: 2}, {ID: "b", Slots: 4}}, 6,
			map[string]int{"a": 2, "b": 4}, 0, ""},
		{"never over slots", []Member{{ID: "a", Slots: 2}, {ID: "b", Slots: 1, Assigned: 1}}, 5,
			map[string]int{"a": 2}, 3, "no free slot: 3 of 3 slots busy on 2 nodes"},
		{"draining nodes take nothing", []Member{{ID: "a", Slots: 4, Draining: true}, {ID: "b", Slots: 1}}, 2,
			map[string]int{"b": 1}, 1, "no free slot: 1 of 1 slots busy on 1 node, 1 draining"},
		{"all draining", []Member{{ID: "a", Slots: 4, Draining: true}}, 1, map[string]int{}, 1, "every node is draining (1)"},
		{"no nodes", nil, 2, map[string]int{}, 2, "no live node"},
		{"lower load wins a tie of slots", []Member{{ID: "a", Slots: 1, Load: 0.9}, {ID: "b", Slots: 1, Load: 0.1}}, 1,
			map[string]int{"b": 1}, 0, ""},
		{"more free memory wins a tie of load", []Member{{ID: "a", Slots: 1, FreeMemory: 1 << 30}, {ID: "b", Slots: 1, FreeMemory: 2 << 30}}, 1,
			map[string]int{"b": 1}, 0, ""},
		{"over-assigned node counts as full", []Member{{ID: "a", Slots: 2, Assigned: 5}, {ID: "b", Slots: 2}}, 3,
			map[string]int{"b": 2}, 1, "no free slot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			placed, waiting := Place(tt.members, keys("r1", tt.pending))
			if got := countByNode(placed); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("placed %v, want %v", got, tt.want)
			}
			if len(waiting) != tt.waiting {
				t.Fatalf("%d waiting, want %d: %v", len(waiting), tt.waiting, waiting)
			}
			for _, w := range waiting {
				if !strings.HasPrefix(w.Reason, tt.reasonIs) {
					t.Errorf("waiting reason %q, want %q", w.Reason, tt.reasonIs)
				}
			}
			if len(placed)+len(waiting) != tt.pending {
				t.Errorf("%d placed + %d waiting of %d", len(placed), len(waiting), tt.pending)
			}
		})
	}
}

// The same snapshot gives the same placement; ties are broken by the run,
// so two runs on idle nodes do not both start on the first node.
func TestPlaceIsReplayableAndSpreadsRuns(t *testing.T) {
	members := []Member{{ID: "node-1", Slots: 8}, {ID: "node-2", Slots: 8}, {ID: "node-3", Slots: 8}}
	a1, _ := Place(members, keys("run-a", 1))
	a2, _ := Place(members, keys("run-a", 1))
	if !reflect.DeepEqual(a1, a2) {
		t.Fatalf("placement changed between calls: %v, %v", a1, a2)
	}
	first := map[string]bool{}
	for i := 0; i < 20; i++ {
		p, _ := Place(members, keys(fmt.Sprintf("run-%d", i), 1))
		first[p[0].Node] = true
	}
	if len(first) < 2 {
		t.Fatalf("20 runs all started on %v", first)
	}
}

func TestFileJob(t *testing.T) {
	tests := []struct {
		members []Member
		want    string
		ok      bool
	}{
		{[]Member{{ID: "b", Jobs: 2}, {ID: "a", Jobs: 2}, {ID: "c", Jobs: 3}}, "a", true},
		{[]Member{{ID: "a", Jobs: 5}, {ID: "b", Jobs: 1}}, "b", true},
		{[]Member{{ID: "a", Jobs: 0, Draining: true}, {ID: "b", Jobs: 9}}, "b", true},
		{[]Member{{ID: "a", Draining: true}}, "", false},
		{nil, "", false},
	}
	for _, tt := range tests {
		got, ok := FileJob(tt.members)
		if got != tt.want || ok != tt.ok {
			t.Errorf("FileJob(%v) = %q, %v; want %q, %v", tt.members, got, ok, tt.want, tt.ok)
		}
	}
}

func owners(spec map[string]int) map[string]string {
	out := map[string]string{}
	for node, n := range spec {
		for i := 0; i < n; i++ {
			out[fmt.Sprintf("%s-job-%02d", node, i)] = node
		}
	}
	return out
}

func TestBalanceJobs(t *testing.T) {
	m := func(ids ...string) []Member {
		var out []Member
		for _, id := range ids {
			out = append(out, Member{ID: id})
		}
		return out
	}
	tests := []struct {
		name    string
		owners  map[string]string
		members []Member
		limit   int
		after   map[string]int // jobs per node after the moves
		moves   int
	}{
		{"balanced already", owners(map[string]int{"a": 3, "b": 3, "c": 2}), m("a", "b", "c"), 10, map[string]int{"a": 3, "b": 3, "c": 2}, 0},
		{"a node died: all its jobs move at once", owners(map[string]int{"a": 4, "b": 4, "dead": 6}), m("a", "b"), 0, map[string]int{"a": 7, "b": 7}, 6},
		{"a node joined: bounded moves", owners(map[string]int{"a": 10, "b": 10}), m("a", "b", "new"), 3, map[string]int{"a": 8, "b": 9, "new": 3}, 3},
		{"a node joined: enough rounds even it out", owners(map[string]int{"a": 10, "b": 10}), m("a", "b", "new"), 100, map[string]int{"a": 7, "b": 7, "new": 6}, 6},
		{"draining nodes keep no jobs", owners(map[string]int{"a": 2, "b": 2}), []Member{{ID: "a"}, {ID: "b", Draining: true}}, 0, map[string]int{"a": 4}, 2},
		{"no live node: nothing to do", owners(map[string]int{"a": 2}), nil, 5, map[string]int{"a": 2}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			moves := BalanceJobs(tt.owners, tt.members, tt.limit)
			if len(moves) != tt.moves {
				t.Fatalf("%d moves, want %d: %v", len(moves), tt.moves, moves)
			}
			after := map[string]string{}
			for j, o := range tt.owners {
				after[j] = o
			}
			for _, mv := range moves {
				if after[mv.Job] != mv.From {
					t.Fatalf("move %v: the job is on %s", mv, after[mv.Job])
				}
				after[mv.Job] = mv.To
			}
			count := map[string]int{}
			for _, o := range after {
				count[o]++
			}
			if !reflect.DeepEqual(count, tt.after) {
				t.Fatalf("jobs per node after the moves %v, want %v", count, tt.after)
			}
			if again := BalanceJobs(tt.owners, tt.members, tt.limit); !reflect.DeepEqual(again, moves) {
				t.Fatalf("the same snapshot gave other moves: %v, then %v", moves, again)
			}
		})
	}
}

// 30 jobs filed one by one over three nodes end within one of each other.
func TestFileJobBalancesThirtyJobs(t *testing.T) {
	members := []Member{{ID: "node-1"}, {ID: "node-2"}, {ID: "node-3"}}
	for i := 0; i < 30; i++ {
		id, _ := FileJob(members)
		for j := range members {
			if members[j].ID == id {
				members[j].Jobs++
			}
		}
	}
	for _, m := range members {
		if m.Jobs != 10 {
			t.Fatalf("jobs per node %v", members)
		}
	}
}

func TestOrphans(t *testing.T) {
	k := func(p string) PartitionKey { return PartitionKey{Job: "j", Run: "r", Partition: p} }
	assigned := map[PartitionKey]string{k("p2"): "dead", k("p0"): "a", k("p1"): "dead", k("p3"): "b"}
	got := Orphans(assigned, map[string]bool{"a": true, "b": true})
	if want := []PartitionKey{k("p1"), k("p2")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Orphans = %v, want %v", got, want)
	}
	if got := Orphans(assigned, map[string]bool{"a": true, "b": true, "dead": true}); len(got) != 0 {
		t.Fatalf("Orphans with every node live = %v", got)
	}
}

func TestRunOutcome(t *testing.T) {
	p := func(id, state, err string) engine.PartitionRecord {
		return engine.PartitionRecord{ID: id, State: state, Error: err}
	}
	tests := []struct {
		name  string
		parts []engine.PartitionRecord
		want  Outcome
		why   string
	}{
		{"all done", []engine.PartitionRecord{p("p0", engine.Done, ""), p("p1", engine.Done, "")}, Succeeded, ""},
		{"still going", []engine.PartitionRecord{p("p0", engine.Done, ""), p("p1", engine.Running, "")}, Going, ""},
		{"pending", []engine.PartitionRecord{p("p0", engine.Pending, "")}, Going, ""},
		{"failed, others running", []engine.PartitionRecord{p("p0", engine.Failed, "bad value"), p("p1", engine.Running, "")}, Failing, "partition p0: bad value"},
		{"failed, nothing running", []engine.PartitionRecord{p("p1", engine.Failed, "second"), p("p0", engine.Failed, "first"), p("p2", engine.Pending, "")}, FailedNow, "partition p0: first"},
	}
	for _, tt := range tests {
		got, why := RunOutcome(tt.parts)
		if got != tt.want || why != tt.why {
			t.Errorf("%s: RunOutcome = %v %q, want %v %q", tt.name, got, why, tt.want, tt.why)
		}
	}
}
