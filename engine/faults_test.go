package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/engine"
)

// Connections dropped under a running copy (the sink's and the source's
// backends terminated by the server) end in retries from the checkpoints,
// and the sink still holds every row once.
func TestDroppedConnectionsRetryFromCheckpoint(t *testing.T) {
	src, dst := pgEndpoint(t), pgEndpoint(t)
	src.fill(t, fixtureRows)
	job := copyJob(src, dst, connectors.Append)
	job.Retries = engine.RetrySpec{Max: 20, Backoff: engine.Duration(20 * time.Millisecond), MaxBackoff: engine.Duration(200 * time.Millisecond)}
	job.RateLimit.RowsPerSecond = 15000 // a copy of about 1.5s, long enough to cut into

	var retries atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var killerDone sync.WaitGroup
	killerDone.Add(1)
	var killed atomic.Int64
	go func() {
		defer killerDone.Done()
		for i := 0; i < 4; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
			for _, dsn := range []string{src.dsn, dst.dsn} {
				killed.Add(terminateBackends(t, dsn))
			}
		}
	}()
	run, err := newHome(t).run(job, proc{ctx: ctx, RunOptions: coordinator.RunOptions{Progress: func(p engine.Progress) {
		if p.State == engine.Pending && p.Err != nil {
			retries.Add(1)
		}
	}}})
	cancel()
	killerDone.Wait()
	if err != nil {
		t.Fatalf("run with dropped connections: %v", err)
	}
	if killed.Load() == 0 || retries.Load() == 0 {
		t.Fatalf("%d connections terminated, %d retries: the fault did not hit the copy", killed.Load(), retries.Load())
	}
	t.Logf("%d connections terminated, %d partition retries", killed.Load(), retries.Load())
	if got, want := dst.checksum(t), src.checksum(t); got != want || run.Rows != fixtureRows {
		t.Fatalf("sink %v (run says %d rows), source %v", got, run.Rows, want)
	}
}

// terminateBackends ends every other connection to the DSN's database.
func terminateBackends(t *testing.T, dsn string) int64 {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Error(err)
		return 0
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close(context.Background())
	var n int64
	err = conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, cfg.Database).Scan(&n)
	if err != nil {
		t.Error(err)
	}
	return n
}

// An unreachable source fails the run with the reason, after the retries,
// without a password in the message.
func TestUnreachableSourceFailsWithReason(t *testing.T) {
	dst := pgEndpoint(t)
	job := copyJob(endpoint{typ: "postgres", dsn: "postgres://app:hunter2@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2", table: "orders"}, dst, connectors.Append)
	err := engine.Check(context.Background(), job)
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Check of an unreachable source: %v", err)
	}
	// The run fails once the plan step has used the job's retries (a few
	// milliseconds of backoff); a minute is far more than it needs.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = newHome(t).run(job, proc{ctx: ctx})
	if err == nil || ctx.Err() != nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("run of an unreachable source: %v (want it failed with the reason, before the deadline)", err)
	}
}

// With snapshot: true every partition reads the data as of the run's start,
// though rows are changed while it runs. The changes are made before the
// later partitions start (the first partition's first batch waits for
// them), and the same run without a snapshot shows that they land in what
// those partitions read.
func TestSnapshotIsolatesTheRun(t *testing.T) {
	for _, snapshot := range []bool{true, false} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			src, dst := pgEndpoint(t), pgEndpoint(t)
			src.fill(t, fixtureRows)
			want := src.checksum(t)
			job := copyJob(src, dst, connectors.Append)
			job.Snapshot = snapshot
			job.Parallelism = 1 // the partitions run in key order, one after another
			var once sync.Once
			partitions := 0
			opts := coordinator.RunOptions{OnPlan: func(_ *engine.RunRecord, parts []engine.PartitionRecord) { partitions = len(parts) }, Progress: func(p engine.Progress) {
				if p.Rows > 0 {
					once.Do(func() {
						src.exec(t, `INSERT INTO orders (id, name, amount, created, flag) SELECT g, 'late', 1, now(), true FROM generate_series(100001, 100100) g`,
							`UPDATE orders SET name = 'changed late' WHERE id > 15000`,
							`DELETE FROM orders WHERE id BETWEEN 18000 AND 18100`)
					})
				}
			}}
			run, err := runOnce(t, job, opts)
			if err != nil {
				t.Fatal(err)
			}
			if run.Scheme != "key-range" || partitions < 3 {
				t.Fatalf("the run needs several partitions to test anything: %s, %s", run.Scheme, run.Reason)
			}
			now := src.checksum(t)
			if now == want {
				t.Fatal("the source did not change during the run: the test proved nothing")
			}
			got := dst.checksum(t)
			switch {
			case snapshot && got != want:
				t.Fatalf("sink %v, source at the run's start %v (run moved %d rows)", got, want, run.Rows)
			case !snapshot && got == want:
				t.Fatal("without a snapshot the sink still equals the source at the start: the changes did not reach the later partitions, so the snapshot case proves nothing")
			}
		})
	}
}

func TestCallbacksReportTheOutcome(t *testing.T) {
	var mu sync.Mutex
	var got []engine.CallbackPayload
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable) // retried
			return
		}
		body, _ := io.ReadAll(r.Body)
		var p engine.CallbackPayload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("callback body %s: %v", body, err)
		}
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}))
	defer srv.Close()

	src, dst := sqliteEndpoint(t), sqliteEndpoint(t)
	src.fill(t, 1000)
	job := copyJob(src, dst, connectors.Append)
	job.Callbacks = []engine.CallbackSpec{{URL: srv.URL + "/done"}, {URL: srv.URL + "/failed-only", On: []string{"failure"}}}
	run, err := runOnce(t, job, coordinator.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Status != engine.RunSucceeded || got[0].Rows != 1000 || got[0].Run != run.ID || got[0].Job != job.Name {
		t.Fatalf("callbacks received %+v", got)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 2 refused and 1 accepted", calls.Load())
	}
}
