package coordinator

import (
	"sort"
	"time"

	"github.com/datashift/datashift/engine"
)

// The scheduling decisions are pure functions of a job's schedule, its
// durable marks and the time: when a job fires next (daylight saving made
// explicit), which ticks a late owner fires or skips (the misfire policy),
// what a trigger does while the job's run is going (the overlap policy),
// and whether a job's upstreams have given it a new generation. The
// scheduler and the leader read the marks, call these, and write what they
// decide in one fenced Multi; the tests call them with a fake clock.

// Misfire is a job's misfire policy.
type Misfire struct {
	Policy string
	// Cap bounds the runs fire_all makes at once; the older ticks are
	// skipped.
	Cap int
	// Grace is how late a tick may be fired and still count as on time.
	Grace time.Duration
}

// MisfireOf reads the policy from a job's schedule, with its defaults.
func MisfireOf(s *engine.ScheduleSpec) Misfire {
	m := Misfire{Policy: engine.MisfireFireOnce, Cap: engine.DefaultMisfireCap, Grace: engine.DefaultMisfireGrace}
	if s == nil {
		return m
	}
	if s.Misfire != "" {
		m.Policy = s.Misfire
	}
	if s.MisfireCap > 0 {
		m.Cap = s.MisfireCap
	}
	if s.MisfireGrace > 0 {
		m.Grace = time.Duration(s.MisfireGrace)
	}
	return m
}

// Fire is one run a scheduler puts on the queue: named by its tick (the
// newest of the ticks it stands for).
type Fire struct {
	Tick  time.Time
	Ticks engine.TickSpan
}

// Due is what a job's owner does at a time: the fires to make, the ticks
// it skips, and its new last-fired mark.
type Due struct {
	Fires   []Fire
	Skipped engine.TickSpan // Count 0: none
	Mark    time.Time
}

// maxWalk bounds the missed ticks DueFires counts one by one; past it, it
// jumps to the last hour before now and the counts are lower bounds.
const maxWalk = 100000

// DueFires decides, for a job whose ticks up to mark are done, what is due
// at now. A tick at most m.Grace old fires on its own; older ones were
// missed, and the misfire policy says what becomes of them.
func DueFires(s *engine.Schedule, mark, now time.Time, m Misfire) Due {
	d := Due{Mark: mark}
	var missed engine.TickSpan
	var recent []time.Time // the newest missed ticks, for fire_all
	var onTime []time.Time
	t, walked := mark, 0
	for {
		next := s.Next(t)
		if next.IsZero() || next.After(now) {
			break
		}
		if walked++; walked > maxWalk {
			if jump := now.Add(-time.Hour); jump.After(next) {
				next = s.Next(jump)
				if next.IsZero() || next.After(now) {
					break
				}
			}
		}
		t = next
		d.Mark = t
		if now.Sub(t) <= m.Grace {
			onTime = append(onTime, t)
			continue
		}
		missed.Add(t)
		if m.Policy == engine.MisfireFireAll {
			recent = append(recent, t)
			if len(recent) > max(m.Cap, 1) {
				recent = recent[1:]
			}
		}
	}
	if missed.Count > 0 {
		switch m.Policy {
		case engine.MisfireSkip:
			d.Skipped = missed
		case engine.MisfireFireAll:
			for _, t := range recent {
				d.Fires = append(d.Fires, Fire{Tick: t, Ticks: engine.TickSpan{First: t, Last: t, Count: 1}})
			}
			if n := missed.Count - len(recent); n > 0 {
				d.Skipped = engine.TickSpan{First: missed.First, Last: s.Prev(recent[0], missed.First), Count: n}
			}
		default:
			d.Fires = append(d.Fires, Fire{Tick: missed.Last, Ticks: missed})
		}
	}
	for _, t := range onTime {
		d.Fires = append(d.Fires, Fire{Tick: t, Ticks: engine.TickSpan{First: t, Last: t, Count: 1}})
	}
	return d
}

// Triggers: what put a run on the queue.
const (
	TriggerManual = "manual" // the API's trigger
	TriggerRun    = "run"    // datashift run
	TriggerCron   = "cron"   // a tick of the job's schedule
	TriggerAfter  = "after"  // its upstreams succeeded
)

// Overlap decisions for a queued trigger.
type OverlapAction int

const (
	// StartRun: start the run now.
	StartRun OverlapAction = iota
	// Wait in the queue until the job's run ends.
	Wait
	// Drop the trigger: it will not run.
	Drop
)

// DecideOverlap says what a trigger does when it reaches the head of the
// queue: going is whether a run of the job is going, waiting how many of
// the job's triggers ahead of this one are kept waiting. A manual trigger
// always waits its turn; a scheduled one follows the job's overlap policy.
func DecideOverlap(policy, trigger string, going bool, waiting int) (OverlapAction, string) {
	if !going && waiting == 0 {
		return StartRun, ""
	}
	if trigger == TriggerManual || trigger == TriggerRun {
		return Wait, ""
	}
	switch policy {
	case engine.OverlapAllow:
		return StartRun, ""
	case engine.OverlapQueue:
		if waiting == 0 {
			return Wait, ""
		}
		return Drop, "another fire already waits for the run going (overlap: queue)"
	}
	if !going {
		return Wait, "" // behind a manual trigger
	}
	return Drop, "the previous run was still going (overlap: skip)"
}

// DependencyReady reports whether a job that runs after upstreams has a new
// generation: each upstream has succeeded since the job last fired for them
// (consumed holds, by upstream, the succeeded run that fire consumed).
func DependencyReady(after []string, lastSucceeded, consumed map[string]string) bool {
	if len(after) == 0 {
		return false
	}
	for _, up := range after {
		if lastSucceeded[up] == "" || lastSucceeded[up] == consumed[up] {
			return false
		}
	}
	return true
}

// Dependants lists the jobs that run after job, sorted.
func Dependants(graph map[string][]string, job string) []string {
	var out []string
	for d, ups := range graph {
		for _, u := range ups {
			if u == job {
				out = append(out, d)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// FindCycle returns the jobs along a cycle that adding job with its
// upstreams to an acyclic graph would close (job first and last), or nil.
func FindCycle(graph map[string][]string, job string, after []string) []string {
	with := make(map[string][]string, len(graph)+1)
	for n, ups := range graph {
		with[n] = ups
	}
	with[job] = after
	cycle := engine.FindCycle(with)
	// The graph had none: the cycle runs through job. Start it there.
	for i, n := range cycle {
		if n == job && i > 0 {
			return append(append(cycle[i:len(cycle)-1:len(cycle)-1], cycle[:i]...), job)
		}
	}
	return cycle
}
