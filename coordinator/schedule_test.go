package coordinator

import (
	"reflect"
	"testing"
	"time"

	"github.com/datashift/datashift/engine"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

func span(t *testing.T, first, last string, n int) engine.TickSpan {
	return engine.TickSpan{First: at(t, first), Last: at(t, last), Count: n}
}

func one(t *testing.T, tick string) Fire {
	return Fire{Tick: at(t, tick), Ticks: span(t, tick, tick, 1)}
}

// DueFires with a fake clock: on-time ticks fire one by one; missed ones
// (older than the grace) as the misfire policy says; the mark moves to
// the last tick considered, so nothing is fired twice.
func TestDueFires(t *testing.T) {
	every10, err := engine.ParseSchedule("*/10 * * * * *", "")
	if err != nil {
		t.Fatal(err)
	}
	grace := 5 * time.Second
	cases := []struct {
		name      string
		policy    string
		cap       int
		mark, now string
		fires     []Fire
		skipped   engine.TickSpan
		mark2     string
	}{
		{"nothing due yet", engine.MisfireFireOnce, 0, "2026-01-01T00:00:00Z", "2026-01-01T00:00:09Z", nil, engine.TickSpan{}, "2026-01-01T00:00:00Z"},
		{"on time", engine.MisfireFireOnce, 0, "2026-01-01T00:00:00Z", "2026-01-01T00:00:10.003Z",
			[]Fire{one(t, "2026-01-01T00:00:10Z")}, engine.TickSpan{}, "2026-01-01T00:00:10Z"},
		{"late within the grace is on time", engine.MisfireSkip, 0, "2026-01-01T00:00:00Z", "2026-01-01T00:00:14Z",
			[]Fire{one(t, "2026-01-01T00:00:10Z")}, engine.TickSpan{}, "2026-01-01T00:00:10Z"},
		{"fire_once: one run for the missed, the on-time one apart", engine.MisfireFireOnce, 0, "2026-01-01T00:00:00Z", "2026-01-01T00:01:02Z",
			[]Fire{{Tick: at(t, "2026-01-01T00:00:50Z"), Ticks: span(t, "2026-01-01T00:00:10Z", "2026-01-01T00:00:50Z", 5)}, one(t, "2026-01-01T00:01:00Z")},
			engine.TickSpan{}, "2026-01-01T00:01:00Z"},
		{"skip: the missed are skipped", engine.MisfireSkip, 0, "2026-01-01T00:00:00Z", "2026-01-01T00:00:57Z",
			nil, span(t, "2026-01-01T00:00:10Z", "2026-01-01T00:00:50Z", 5), "2026-01-01T00:00:50Z"},
		{"fire_all: each, the newest cap", engine.MisfireFireAll, 3, "2026-01-01T00:00:00Z", "2026-01-01T00:00:57Z",
			[]Fire{one(t, "2026-01-01T00:00:30Z"), one(t, "2026-01-01T00:00:40Z"), one(t, "2026-01-01T00:00:50Z")},
			span(t, "2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z", 2), "2026-01-01T00:00:50Z"},
		{"fire_all under the cap", engine.MisfireFireAll, 10, "2026-01-01T00:00:00Z", "2026-01-01T00:00:37Z",
			[]Fire{one(t, "2026-01-01T00:00:10Z"), one(t, "2026-01-01T00:00:20Z"), one(t, "2026-01-01T00:00:30Z")},
			engine.TickSpan{}, "2026-01-01T00:00:30Z"},
		{"a tick at the mark is done", engine.MisfireFireOnce, 0, "2026-01-01T00:00:10Z", "2026-01-01T00:00:10.5Z",
			nil, engine.TickSpan{}, "2026-01-01T00:00:10Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := DueFires(every10, at(t, c.mark), at(t, c.now), Misfire{Policy: c.policy, Cap: c.cap, Grace: grace})
			if !reflect.DeepEqual(d.Fires, c.fires) {
				t.Errorf("fires:\n got %+v\nwant %+v", d.Fires, c.fires)
			}
			if !reflect.DeepEqual(d.Skipped, c.skipped) {
				t.Errorf("skipped: got %+v, want %+v", d.Skipped, c.skipped)
			}
			if !d.Mark.Equal(at(t, c.mark2)) {
				t.Errorf("mark: got %s, want %s", d.Mark, c.mark2)
			}
		})
	}
}

// Every tick is accounted for exactly once, whatever the times the owner
// looks at: fired on its own, stood for by a late run, or skipped.
func TestDueFiresCoverEveryTickOnce(t *testing.T) {
	s, err := engine.ParseSchedule("@every 2s", "")
	if err != nil {
		t.Fatal(err)
	}
	start := at(t, "2026-01-01T00:00:00Z")
	for _, policy := range []string{engine.MisfireFireOnce, engine.MisfireSkip, engine.MisfireFireAll} {
		mark, seen := start, map[time.Time]int{}
		// Looks at irregular moments, with gaps of up to 17 s (an owner
		// dying), over 10 minutes.
		for now, i := start, 0; now.Before(start.Add(10 * time.Minute)); i++ {
			now = now.Add(time.Duration(300+(i*7919)%17000) * time.Millisecond)
			d := DueFires(s, mark, now, Misfire{Policy: policy, Cap: 3, Grace: 5 * time.Second})
			count := func(sp engine.TickSpan) {
				for tk := sp.First; sp.Count > 0 && !tk.After(sp.Last); tk = s.Next(tk) {
					seen[tk]++
				}
			}
			for _, f := range d.Fires {
				count(f.Ticks)
			}
			count(d.Skipped)
			mark = d.Mark
		}
		for tk := s.Next(start); !tk.After(mark); tk = s.Next(tk) {
			if seen[tk] != 1 {
				t.Fatalf("%s: tick %s accounted for %d times", policy, tk, seen[tk])
			}
		}
	}
}

func TestDecideOverlap(t *testing.T) {
	cases := []struct {
		policy, trigger string
		going           bool
		waiting         int
		want            OverlapAction
	}{
		{engine.OverlapSkip, TriggerCron, false, 0, StartRun},
		{engine.OverlapSkip, TriggerCron, true, 0, Drop},
		{engine.OverlapSkip, TriggerAfter, true, 0, Drop},
		{engine.OverlapSkip, TriggerCron, false, 1, Wait}, // behind a manual trigger
		{engine.OverlapQueue, TriggerCron, true, 0, Wait},
		{engine.OverlapQueue, TriggerCron, true, 1, Drop},
		{engine.OverlapAllow, TriggerCron, true, 0, StartRun},
		{engine.OverlapAllow, TriggerCron, true, 3, StartRun},
		{engine.OverlapSkip, TriggerManual, true, 0, Wait},
		{engine.OverlapSkip, TriggerManual, true, 2, Wait},
		{engine.OverlapSkip, TriggerRun, true, 0, Wait},
	}
	for _, c := range cases {
		got, why := DecideOverlap(c.policy, c.trigger, c.going, c.waiting)
		if got != c.want {
			t.Errorf("DecideOverlap(%s, %s, going %v, waiting %d) = %v (%s), want %v", c.policy, c.trigger, c.going, c.waiting, got, why, c.want)
		}
		if got == Drop && why == "" {
			t.Errorf("a drop without its reason: %+v", c)
		}
	}
}

func TestDependencyReady(t *testing.T) {
	cases := []struct {
		name      string
		after     []string
		succeeded map[string]string
		consumed  map[string]string
		want      bool
	}{
		{"no upstream", nil, nil, nil, false},
		{"upstream never succeeded", []string{"a"}, map[string]string{}, nil, false},
		{"first success", []string{"a"}, map[string]string{"a": "r1"}, nil, true},
		{"already consumed", []string{"a"}, map[string]string{"a": "r1"}, map[string]string{"a": "r1"}, false},
		{"a new success", []string{"a"}, map[string]string{"a": "r2"}, map[string]string{"a": "r1"}, true},
		{"one of two new", []string{"a", "b"}, map[string]string{"a": "r2", "b": "s1"}, map[string]string{"a": "r1", "b": "s1"}, false},
		{"both new", []string{"a", "b"}, map[string]string{"a": "r2", "b": "s2"}, map[string]string{"a": "r1", "b": "s1"}, true},
	}
	for _, c := range cases {
		if got := DependencyReady(c.after, c.succeeded, c.consumed); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestFindCycleAndDependants(t *testing.T) {
	graph := map[string][]string{"b": {"a"}, "c": {"b"}, "d": {"a", "c"}}
	if got := FindCycle(graph, "a", []string{"c"}); !reflect.DeepEqual(got, []string{"a", "c", "b", "a"}) {
		t.Errorf("cycle: got %v", got)
	}
	// A cycle found from another job is told from the job added.
	if got := FindCycle(map[string][]string{"a": {"c"}, "b": {"a"}}, "c", []string{"b"}); !reflect.DeepEqual(got, []string{"c", "b", "a", "c"}) {
		t.Errorf("cycle from c: got %v", got)
	}
	if got := FindCycle(graph, "e", []string{"d"}); got != nil {
		t.Errorf("no cycle expected, got %v", got)
	}
	if got := FindCycle(graph, "a", []string{"a"}); !reflect.DeepEqual(got, []string{"a", "a"}) {
		t.Errorf("self cycle: got %v", got)
	}
	if got := Dependants(graph, "a"); !reflect.DeepEqual(got, []string{"b", "d"}) {
		t.Errorf("dependants of a: %v", got)
	}
}

func TestRefusedRunNamesItsJobOnce(t *testing.T) {
	for reason, want := range map[string]string{
		`job "x": incremental.lookback: must be positive`: `job "x": incremental.lookback: must be positive`,
		`open source: connection refused`:                 `job "x": open source: connection refused`,
	} {
		if got := refusedRun("x", reason).Error(); got != want {
			t.Errorf("refusedRun(%q) = %q, want %q", reason, got, want)
		}
	}
}
