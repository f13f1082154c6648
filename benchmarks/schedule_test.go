package benchmarks

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
	mem "github.com/datashift/datashift/connectors/memory"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store"
	"github.com/datashift/datashift/coordinator/store/zkstore/zktest"
	"github.com/datashift/datashift/engine"
)

// BenchmarkSchedule10kJobs files 10,000 cron jobs on three nodes on
// ZooKeeper, all due at the same second (the worst case for one timer per
// node), and measures the fire lag of that tick — from the scheduled time
// to the fire record and queue entry made in one Multi — and counts the
// fires made twice (there must be none).
func BenchmarkSchedule10kJobs(b *testing.B) {
	const jobs, nodes = 10000, 3
	res := &result{name: "schedule_10k_jobs"}
	servers, root := zktest.Root(b)
	open := zkOpener(b, servers, root)
	startNodes(b, nodes, 4, open)
	client := open()
	defer client.Close()
	c := &coordinator.Cluster{S: client}
	db := mem.New("bench-schedule")
	defer db.Drop()
	src := coordRows(1)
	defer src.Release()
	db.Put("src", src)

	began := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				j := &engine.Job{
					Name:     fmt.Sprintf("cron%05d", i),
					Source:   engine.SourceSpec{Type: mem.TypeName, DSN: db.DSN(), Table: "src", Key: []string{"id"}},
					Sink:     engine.SinkSpec{Type: mem.TypeName, DSN: db.DSN(), Table: fmt.Sprintf("dst%05d", i), Mode: connectors.Append, CreateTable: true},
					Schedule: &engine.ScheduleSpec{Cron: "0 * * * * *"},
				}
				j.Normalize()
				if _, err := c.SubmitJob(context.Background(), j); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
	submitted := time.Since(began)
	// Every job's mark is its submission: at the first minute after the
	// last one, all are due at once.
	tick := time.Now().Truncate(time.Minute).Add(time.Minute).UTC()
	time.Sleep(time.Until(tick.Add(5 * time.Second)))
	ctx := context.Background()
	var lags []time.Duration
	missing := 0
	for i := range jobs {
		fires, err := c.Fires(ctx, fmt.Sprintf("cron%05d", i))
		if err != nil {
			b.Fatal(err)
		}
		found := false
		for _, f := range fires {
			if f.Tick.Equal(tick) {
				found = true
				lags = append(lags, f.Fired.Sub(tick))
			}
		}
		if !found {
			missing++
		}
	}
	// Duplicates: two queue entries or runs for one (job, tick). The runs
	// are read first: an entry the leader turns into a run meanwhile is
	// then counted once at most, never twice.
	seen, started := map[string]int{}, 0
	for i := range jobs {
		runs, err := c.Runs(ctx, fmt.Sprintf("cron%05d", i), 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range runs {
			if r.Trigger == coordinator.TriggerCron {
				seen[r.Job+"@"+r.Scheduled.Format(time.RFC3339)]++
				started++
			}
		}
	}
	entries, err := client.Children(ctx, "/queue")
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		var q coordinator.QueueEntry
		if data, _, err := client.Get(ctx, store.Join("/queue", e)); err == nil && json.Unmarshal(data, &q) == nil {
			seen[q.Job+"@"+q.Scheduled.Format(time.RFC3339)]++
		}
	}
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups += n - 1
		}
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	pct := func(p float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[min(len(lags)-1, int(p*float64(len(lags))))]
	}
	res.add("%d cron jobs on %d nodes (ZooKeeper), all due at %s; filed in %.1fs", jobs, nodes, tick.Format("15:04:05"), submitted.Seconds())
	res.add("fired for that tick:   %d of %d (%d missing)", len(lags), jobs, missing)
	res.add("fire lag p50:          %8.3fs", pct(0.50).Seconds())
	res.add("fire lag p99:          %8.3fs", pct(0.99).Seconds())
	res.add("fire lag max:          %8.3fs", pct(1).Seconds())
	res.add("duplicate fires:       %d (queue entries and runs per job and tick; %d runs started, %d waiting)", dups, started, len(entries))
	res.write(b)
	if missing > 0 || dups > 0 {
		b.Errorf("%d jobs did not fire, %d fires doubled", missing, dups)
	}
}
