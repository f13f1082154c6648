package coordinator

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/datashift/datashift/engine"
)

// The leader's decisions are pure functions of a snapshot of the cluster:
// which node a partition goes to, which node a job is filed under, which
// jobs move, which partitions a dead node leaves behind, whether a run is
// over. The leader's loop reads the snapshot, calls them, and writes what
// they decide; the tests call them with tables.

// Member is a live node as the leader's decisions see it.
type Member struct {
	ID    string
	Slots int
	// Assigned counts the partitions the leader has given the node and not
	// yet seen end: the leader's own count, not what the node last
	// published, so placement never overfills a node.
	Assigned int
	Draining bool
	// FreeMemory is the bytes available on the node's host (0: unknown);
	// Load its 1-minute load average per core.
	FreeMemory int64
	Load       float64
	// Jobs counts the jobs filed under the node.
	Jobs int
}

func (m Member) free() int { return m.Slots - m.Assigned }

// PartitionKey names a partition of a run.
type PartitionKey struct {
	Job, Run, Partition string
}

func (k PartitionKey) String() string { return k.Job + "/" + k.Run + "/" + k.Partition }

// Placement gives a partition to a node.
type Placement struct {
	PartitionKey
	Node string
}

// Waiting is a partition left unplaced, and why, for the run's status.
type Waiting struct {
	PartitionKey
	Reason string
}

// Place gives each pending partition, in order, to the live member with the
// most free resources: the most free slots, then the lowest load, then the
// most free memory. Ties are broken by a hash of the partition's run and the
// member's id, so that the same snapshot always gives the same placement
// and different runs spread differently. No member goes over its slots and
// a draining member gets nothing; what cannot be placed waits, with a
// reason an operator can read.
func Place(members []Member, pending []PartitionKey) (placed []Placement, waiting []Waiting) {
	ms := make([]Member, len(members))
	copy(ms, members)
	for _, p := range pending {
		best := -1
		for i := range ms {
			m := &ms[i]
			if m.Draining || m.free() <= 0 {
				continue
			}
			if best < 0 || better(*m, ms[best], p.Run) {
				best = i
			}
		}
		if best < 0 {
			waiting = append(waiting, Waiting{p, waitReason(ms)})
			continue
		}
		ms[best].Assigned++
		placed = append(placed, Placement{p, ms[best].ID})
	}
	return placed, waiting
}

// better reports whether a has more free resources than b, for a partition
// of run.
func better(a, b Member, run string) bool {
	switch {
	case a.free() != b.free():
		return a.free() > b.free()
	case a.Load != b.Load:
		return a.Load < b.Load
	case a.FreeMemory != b.FreeMemory:
		return a.FreeMemory > b.FreeMemory
	}
	ha, hb := tieBreak(run, a.ID), tieBreak(run, b.ID)
	if ha != hb {
		return ha < hb
	}
	return a.ID < b.ID
}

func tieBreak(run, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(run))
	h.Write([]byte{0})
	h.Write([]byte(node))
	return h.Sum64()
}

func waitReason(ms []Member) string {
	if len(ms) == 0 {
		return "no live node"
	}
	slots, busy, draining := 0, 0, 0
	for _, m := range ms {
		if m.Draining {
			draining++
			continue
		}
		slots += m.Slots
		busy += min(m.Assigned, m.Slots)
	}
	if draining == len(ms) {
		return fmt.Sprintf("every node is draining (%d)", draining)
	}
	nodes := "nodes"
	if len(ms)-draining == 1 {
		nodes = "node"
	}
	reason := fmt.Sprintf("no free slot: %d of %d slots busy on %d %s", busy, slots, len(ms)-draining, nodes)
	if draining > 0 {
		reason += fmt.Sprintf(", %d draining", draining)
	}
	return reason
}

// FileJob picks the member a new job is filed under: the one with the
// fewest jobs, ties by id. Draining members take none.
func FileJob(members []Member) (string, bool) {
	best := -1
	for i, m := range members {
		if m.Draining {
			continue
		}
		if best < 0 || m.Jobs < members[best].Jobs || (m.Jobs == members[best].Jobs && m.ID < members[best].ID) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return members[best].ID, true
}

// JobMove moves a job to another owner.
type JobMove struct {
	Job, From, To string
}

// BalanceJobs plans the moves that even out job ownership. Every job whose
// owner is not a live member moves first, each to the live member with the
// fewest jobs at that point (a node's death is never left half handled).
// Then, while the most and least loaded live members differ by more than one
// job, one job moves from the most to the least loaded, at most limit such
// moves: a node that joins takes work over a few rounds, not in one storm.
// owners maps each job to its owner; choices are made in job name and node
// id order, so the same snapshot gives the same moves.
func BalanceJobs(owners map[string]string, members []Member, limit int) []JobMove {
	live := map[string][]string{}
	var ids []string
	for _, m := range members {
		if !m.Draining {
			live[m.ID] = nil
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	jobs := make([]string, 0, len(owners))
	for j := range owners {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	var orphans []string
	for _, j := range jobs {
		if _, ok := live[owners[j]]; ok {
			live[owners[j]] = append(live[owners[j]], j)
		} else {
			orphans = append(orphans, j)
		}
	}
	least := func() string {
		best := ids[0]
		for _, id := range ids[1:] {
			if len(live[id]) < len(live[best]) {
				best = id
			}
		}
		return best
	}
	most := func() string {
		best := ids[0]
		for _, id := range ids[1:] {
			if len(live[id]) > len(live[best]) {
				best = id
			}
		}
		return best
	}
	var moves []JobMove
	for _, j := range orphans {
		to := least()
		moves = append(moves, JobMove{Job: j, From: owners[j], To: to})
		live[to] = append(live[to], j)
	}
	for n := 0; n < limit; n++ {
		from, to := most(), least()
		if len(live[from])-len(live[to]) <= 1 {
			break
		}
		list := live[from]
		j := list[len(list)-1] // the last by name: moves are predictable
		live[from] = list[:len(list)-1]
		live[to] = append(live[to], j)
		moves = append(moves, JobMove{Job: j, From: from, To: to})
	}
	return moves
}

// Orphans lists the partitions assigned to nodes that are no longer live, in
// order: the leader gives them back to pending (their checkpoints kept) and
// places them again, and the next holder continues from the sink's record.
func Orphans(assigned map[PartitionKey]string, live map[string]bool) []PartitionKey {
	var out []PartitionKey
	for k, node := range assigned {
		if !live[node] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Outcome says where a run stands once the leader has seen every partition.
type Outcome int

const (
	// Going: partitions are pending or running.
	Going Outcome = iota
	// Succeeded: every partition is done.
	Succeeded
	// Failing: a partition failed; nothing more is placed, and the run
	// fails once the running partitions have ended.
	Failing
	// FailedNow: a partition failed and none is running: finish the run as
	// failed.
	FailedNow
)

// RunOutcome decides a run's outcome from its partitions, and when it
// failed the first failure's reason (by partition id).
func RunOutcome(parts []engine.PartitionRecord) (Outcome, string) {
	done, running := 0, 0
	var failed *engine.PartitionRecord
	for i := range parts {
		switch p := &parts[i]; p.State {
		case engine.Done:
			done++
		case engine.Running:
			running++
		case engine.Failed:
			if failed == nil || p.ID < failed.ID {
				failed = p
			}
		}
	}
	switch {
	case failed != nil && running > 0:
		return Failing, fmt.Sprintf("partition %s: %s", failed.ID, failed.Error)
	case failed != nil:
		return FailedNow, fmt.Sprintf("partition %s: %s", failed.ID, failed.Error)
	case done == len(parts):
		return Succeeded, ""
	}
	return Going, ""
}
