package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/engine"
)

// cronJob is a small memory copy fired by cron.
func cronJob(t *testing.T, name, cron string) *engine.Job {
	job, _, _ := copyJob(t, name, 20, 0)
	job.Schedule = &engine.ScheduleSpec{Cron: cron, Overlap: engine.OverlapAllow, MisfireGrace: engine.Duration(time.Second)}
	job.Normalize()
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	return job
}

// ownerNode returns the started node that owns job now.
func ownerNode(t *testing.T, nodes []*node, job string) *node {
	t.Helper()
	for range 100 {
		_, owner, err := nodes[0].Cluster().Job(context.Background(), job)
		if err == nil {
			for _, n := range nodes {
				if n.ID() == owner {
					return n
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no live owner of %s", job)
	return nil
}

// settled pauses the jobs and waits until their fires are all run or
// dropped: nothing queued, nothing running.
func settled(t *testing.T, c *coordinator.Cluster, jobs ...string) {
	t.Helper()
	for _, j := range jobs {
		if err := c.Pause(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		busy := false
		for _, j := range jobs {
			runs, err := c.Runs(context.Background(), j, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range runs {
				busy = busy || r.State == engine.RunRunning
			}
		}
		q, err := c.S.Children(context.Background(), "/queue")
		if err != nil {
			t.Fatal(err)
		}
		if !busy && len(q) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the fired runs did not settle within a minute")
}

// checkTicksOnce checks a job's fire records account for every tick of
// its schedule in (from, the last record] exactly once (from: when the
// job's submission returned; its mark is taken within it), and that every
// queued fire became exactly one run for its tick. It returns the records.
func checkTicksOnce(t *testing.T, c *coordinator.Cluster, job *engine.Job, from time.Time) []coordinator.FireRecord {
	t.Helper()
	fires, err := c.Fires(context.Background(), job.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(fires) == 0 {
		t.Fatalf("job %s: no fire", job.Name)
	}
	sched, err := engine.ParseSchedule(job.Schedule.Cron, job.Schedule.Timezone)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[time.Time]int{}
	last := time.Time{}
	for _, f := range fires {
		for tk := f.Ticks.First; !tk.After(f.Ticks.Last); tk = sched.Next(tk) {
			seen[tk]++
		}
		if f.Ticks.Last.After(last) {
			last = f.Ticks.Last
		}
	}
	for tk := sched.Next(from); !tk.After(last); tk = sched.Next(tk) {
		if seen[tk] != 1 {
			t.Errorf("job %s: tick %s accounted for %d times", job.Name, tk.Format(time.RFC3339), seen[tk])
		}
	}
	runs, err := c.Runs(context.Background(), job.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	byTick := map[time.Time]int{}
	for _, r := range runs {
		if r.Trigger != coordinator.TriggerCron {
			continue
		}
		byTick[r.Scheduled]++
		// The fire lag is on the run: queued after its tick, its first
		// partition placed after it was queued.
		if r.Queued.Before(r.Scheduled) || r.FirstStarted.Before(r.Queued) || !r.Ticks.Last.Equal(r.Scheduled) {
			t.Errorf("job %s run %s: scheduled %s, ticks %+v, queued %s, first started %s", job.Name, r.ID, r.Scheduled, r.Ticks, r.Queued, r.FirstStarted)
		}
	}
	for _, f := range fires {
		want := 0
		if f.Outcome == coordinator.FireQueued {
			want = 1
		}
		if byTick[f.Tick] != want {
			t.Errorf("job %s: fire %s (%s) made %d runs, want %d", job.Name, f.Tick.Format(time.RFC3339), f.Outcome, byTick[f.Tick], want)
		}
	}
	return fires
}

// Every tick of every job fires once while the owner of a job is killed
// and while jobs move to a node that joins.
func TestScheduleEachTickOnceAcrossFailover(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			nodes := []*node{startNode(t, b, 4), startNode(t, b, 4)}
			c := nodes[0].Cluster()
			var jobs []*engine.Job
			from := map[string]time.Time{}
			for i := range 6 {
				job := cronJob(t, fmt.Sprintf("tick%d", i), "* * * * * *")
				if _, err := c.SubmitJob(context.Background(), job); err != nil {
					t.Fatal(err)
				}
				jobs = append(jobs, job)
				from[job.Name] = time.Now().UTC()
			}
			time.Sleep(3 * time.Second)
			victim := ownerNode(t, nodes, "tick0")
			victim.kill()
			var live []*node
			for _, n := range nodes {
				if n != victim {
					live = append(live, n)
				}
			}
			time.Sleep(3 * time.Second)
			live = append(live, startNode(t, b, 4)) // takes jobs over from the others
			time.Sleep(4 * time.Second)
			c = live[0].Cluster()
			members, _, _, err := c.Members(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range members {
				if m.Jobs == 0 {
					t.Errorf("node %s owns no job after the join: %+v", m.ID, members)
				}
			}
			names := make([]string, len(jobs))
			for i, j := range jobs {
				names[i] = j.Name
			}
			settled(t, c, names...)
			for _, job := range jobs {
				fires := checkTicksOnce(t, c, job, from[job.Name])
				if len(fires) < 8 {
					t.Errorf("job %s: %d fires in 10 s of an every-second schedule", job.Name, len(fires))
				}
			}
		})
	}
}

// A paused job does not fire; on resume its misfire policy covers what it
// missed: fire_once as one run standing for the missed ticks, skip as a
// skipped record.
func TestSchedulePauseResumeMisfire(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			n := startNode(t, b, 4)
			c := n.Cluster()
			once := cronJob(t, "once", "* * * * * *")
			skip := cronJob(t, "skip", "* * * * * *")
			skip.Schedule.Misfire = engine.MisfireSkip
			from := map[string]time.Time{}
			for _, j := range []*engine.Job{once, skip} {
				if _, err := c.SubmitJob(context.Background(), j); err != nil {
					t.Fatal(err)
				}
				from[j.Name] = time.Now().UTC()
			}
			time.Sleep(1500 * time.Millisecond)
			for _, j := range []string{"once", "skip"} {
				if err := c.Pause(context.Background(), j); err != nil {
					t.Fatal(err)
				}
			}
			before, err := c.Fires(context.Background(), "once")
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(4 * time.Second)
			during, err := c.Fires(context.Background(), "once")
			if err != nil {
				t.Fatal(err)
			}
			if len(during) != len(before) {
				t.Fatalf("a paused job fired: %d fire records before the pause, %d after", len(before), len(during))
			}
			info, err := c.Schedule(context.Background(), once)
			if err != nil || !info.Paused || len(info.NextFires) != 5 {
				t.Fatalf("schedule of a paused job: %+v, %v", info, err)
			}
			for _, j := range []string{"once", "skip"} {
				if err := c.Resume(context.Background(), j); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(1500 * time.Millisecond)
			settled(t, c, "once", "skip")
			var standsFor, skipped int
			for _, f := range checkTicksOnce(t, c, once, from["once"]) {
				if f.Outcome == coordinator.FireQueued && f.Ticks.Count > standsFor {
					standsFor = f.Ticks.Count
				}
			}
			if standsFor < 2 {
				t.Errorf("fire_once: no run stands for the ticks missed while paused")
			}
			for _, f := range checkTicksOnce(t, c, skip, from["skip"]) {
				if strings.HasPrefix(f.Outcome, coordinator.FireSkipped) {
					skipped += f.Ticks.Count
				}
			}
			if skipped < 2 {
				t.Errorf("skip: %d ticks recorded as skipped after a 4 s pause", skipped)
			}
		})
	}
}

// A → B → C runs in order, each after its upstream succeeded, once per
// upstream success; B does not run when A fails. A cycle and deleting an
// upstream are refused, naming the jobs.
func TestScheduleAfterChain(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			n := startNode(t, b, 4)
			c := n.Cluster()
			ctx := context.Background()
			a, _, _ := copyJob(t, "a", 100, 0)
			bj, _, _ := copyJob(t, "b", 100, 0)
			cj, _, _ := copyJob(t, "c", 100, 0)
			bj.Schedule = &engine.ScheduleSpec{After: []string{"a"}}
			cj.Schedule = &engine.ScheduleSpec{After: []string{"b"}}
			for _, j := range []*engine.Job{a, bj, cj} {
				j.Normalize()
				if _, err := c.SubmitJob(ctx, j); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.Trigger(ctx, "a", coordinator.TriggerManual); err != nil {
				t.Fatal(err)
			}
			ra := waitRun(t, c, "a", 30*time.Second)
			rb := waitRun(t, c, "b", 30*time.Second)
			rc := waitRun(t, c, "c", 30*time.Second)
			for _, r := range []engine.RunRecord{ra, rb, rc} {
				if r.State != engine.RunSucceeded {
					t.Fatalf("run of %s: %s %s", r.Job, r.State, r.Error)
				}
			}
			if rb.Trigger != coordinator.TriggerAfter || rb.Upstream["a"] != ra.ID || rb.Queued.Before(ra.Finished) {
				t.Errorf("b's run: trigger %s, upstream %v, queued %s; a's run %s finished %s", rb.Trigger, rb.Upstream, rb.Queued, ra.ID, ra.Finished)
			}
			if rc.Upstream["b"] != rb.ID || rc.Queued.Before(rb.Finished) {
				t.Errorf("c's run: upstream %v, queued %s; b's run %s finished %s", rc.Upstream, rc.Queued, rb.ID, rb.Finished)
			}

			// A cycle is refused with its path; so is deleting an upstream.
			a.Schedule = &engine.ScheduleSpec{After: []string{"c"}}
			err := c.UpdateJob(ctx, a)
			var se *engine.SpecError
			if !errors.As(err, &se) || se.Field != "schedule.after" || !strings.Contains(err.Error(), "would close a cycle: a runs after c runs after b runs after a") {
				t.Errorf("a cycle: %v", err)
			}
			if err := c.DeleteJob(ctx, "b"); !errors.Is(err, coordinator.ErrHasDependants) || !strings.Contains(err.Error(), `job "b": other jobs run after it: c`) {
				t.Errorf("deleting an upstream: %v", err)
			}

			// A fails: b does not run. Then a succeeds again: b and c run
			// once more, for a's new success.
			a.Schedule = nil
			a.Source.Table = "missing"
			if err := c.UpdateJob(ctx, a); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Trigger(ctx, "a", coordinator.TriggerManual); err != nil {
				t.Fatal(err)
			}
			if failed := waitRunAfter(t, c, "a", ra.ID, 30*time.Second); failed.State != engine.RunFailed {
				t.Fatalf("a's run with a missing table: %s", failed.State)
			}
			a.Source.Table = "src"
			if err := c.UpdateJob(ctx, a); err != nil {
				t.Fatal(err)
			}
			time.Sleep(6 * time.Second) // longer than the leader's full look at dependants
			if runs, _ := c.Runs(ctx, "b", 0); len(runs) != 1 {
				t.Fatalf("b ran %d times after a failed, want once (before)", len(runs))
			}
			if _, err := c.Trigger(ctx, "a", coordinator.TriggerManual); err != nil {
				t.Fatal(err)
			}
			ra2 := waitRunAfter(t, c, "a", ra.ID, 30*time.Second)
			for ra2.State == engine.RunFailed {
				ra2 = waitRunAfter(t, c, "a", ra2.ID, 30*time.Second)
			}
			rb2 := waitRunAfter(t, c, "b", rb.ID, 30*time.Second)
			waitRunAfter(t, c, "c", rc.ID, 30*time.Second)
			if rb2.Upstream["a"] != ra2.ID {
				t.Errorf("b's second run stands for %v, want a's run %s", rb2.Upstream, ra2.ID)
			}
			settled(t, c, "a", "b", "c")
			for job, want := range map[string]int{"a": 3, "b": 2, "c": 2} {
				if runs, _ := c.Runs(ctx, job, 0); len(runs) != want {
					t.Errorf("%s ran %d times, want %d", job, len(runs), want)
				}
			}
		})
	}
}

// waitRunAfter waits for a run of job newer than after to end.
func waitRunAfter(t *testing.T, c *coordinator.Cluster, job, after string, within time.Duration) engine.RunRecord {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		runs, err := c.Runs(context.Background(), job, 0)
		if err == nil && len(runs) > 0 && runs[0].ID > after && runs[0].State != engine.RunRunning {
			return runs[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s: no run after %s ended within %s", job, after, within)
	return engine.RunRecord{}
}

// Each run's end is posted once to each callback, with the run id as the
// Idempotency-Key, also for a run refused before it started.
func TestScheduleCallbacksOncePerRun(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			var mu sync.Mutex
			got := map[string][]engine.CallbackPayload{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var p engine.CallbackPayload
				if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
					t.Errorf("callback body: %v", err)
				}
				mu.Lock()
				got[r.Header.Get("Idempotency-Key")] = append(got[r.Header.Get("Idempotency-Key")], p)
				mu.Unlock()
			}))
			defer srv.Close()
			n := startNode(t, b, 2)
			c := n.Cluster()
			ctx := context.Background()
			job, _, _ := copyJob(t, "hooked", 100, 0)
			job.Callbacks = []engine.CallbackSpec{{URL: srv.URL + "/hook"}}
			if _, err := c.SubmitJob(ctx, job); err != nil {
				t.Fatal(err)
			}
			var runs []engine.RunRecord
			last := ""
			for range 3 {
				if _, err := c.Trigger(ctx, job.Name, coordinator.TriggerManual); err != nil {
					t.Fatal(err)
				}
				r := waitRunAfter(t, c, job.Name, last, 30*time.Second)
				runs, last = append(runs, r), r.ID
			}
			// Every entry of the outbox gone: nothing more will be posted.
			deadline := time.Now().Add(30 * time.Second)
			for {
				left, err := c.S.Children(ctx, "/callbacks")
				if err != nil {
					t.Fatal(err)
				}
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("callbacks still to post: %v", left)
				}
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != len(runs) {
				t.Fatalf("callbacks for %d runs, want %d: %v", len(got), len(runs), got)
			}
			for _, r := range runs {
				p := heardFor(got, r.ID)
				if len(p) != 1 || p[0].Run != r.ID || p[0].Status != engine.RunSucceeded || p[0].Rows != r.Rows || p[0].Trigger != coordinator.TriggerManual {
					t.Errorf("run %s (%d rows): callbacks %+v", r.ID, r.Rows, p)
				}
			}
		})
	}
}

// heardFor is what a callback server heard of a run: the payloads posted
// under each Idempotency-Key of the run (its id and when it ended).
func heardFor(got map[string][]engine.CallbackPayload, run string) []engine.CallbackPayload {
	var out []engine.CallbackPayload
	for key, ps := range got {
		if strings.HasPrefix(key, run+"~") {
			out = append(out, ps...)
		}
	}
	return out
}

// A run's end is posted even when the leader that ended it dies while
// posting: its successor posts it, and the receiver accepts it once.
func TestScheduleCallbackOutlivesItsLeader(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			var mu sync.Mutex
			refused, accepted := 0, map[string]int{}
			allow := false
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				if !allow {
					refused++
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				accepted[r.Header.Get("Idempotency-Key")]++
			}))
			defer srv.Close()
			nodes := []*node{startNode(t, b, 2), startNode(t, b, 2)}
			c := nodes[1].Cluster()
			ctx := context.Background()
			job, _, _ := copyJob(t, "hooked", 100, 0)
			job.Callbacks = []engine.CallbackSpec{{URL: srv.URL + "/hook"}}
			if _, err := c.SubmitJob(ctx, job); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Trigger(ctx, job.Name, coordinator.TriggerManual); err != nil {
				t.Fatal(err)
			}
			run := waitRun(t, c, job.Name, 30*time.Second)
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				mu.Lock()
				n := refused
				mu.Unlock()
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the callback was never tried")
				}
			}
			var leader, other *node
			for _, n := range nodes {
				if n.Leading() {
					leader = n
				} else {
					other = n
				}
			}
			if leader == nil {
				t.Fatal("no leader")
			}
			leader.kill()
			mu.Lock()
			allow = true
			mu.Unlock()
			c = other.Cluster()
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				left, err := c.S.Children(ctx, "/callbacks")
				if err != nil {
					t.Fatal(err)
				}
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("callbacks left to post after the leader died: %v", left)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			total := 0
			for key, n := range accepted {
				total += n
				if !strings.HasPrefix(key, run.ID+"~") || n != 1 {
					t.Errorf("callback %s accepted %d times", key, n)
				}
			}
			if total != 1 {
				t.Errorf("%d callbacks accepted for one run's end: %v", total, accepted)
			}
		})
	}
}
