package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/partitioner"
)

// incrementalJob copies src to dst in mode, by the cursor updated_at.
func incrementalJob(src, dst endpoint, mode connectors.WriteMode) *engine.Job {
	job := copyJob(src, dst, mode)
	job.Incremental = &engine.IncrementalSpec{Cursor: "updated_at"}
	return job
}

// syncRun runs job on h and checks that the sink then holds the source's
// rows exactly once: the same count and order-independent checksum.
func syncRun(t *testing.T, h *home, job *engine.Job, src, dst endpoint) *engine.RunRecord {
	t.Helper()
	run, err := h.run(job, proc{})
	if err != nil {
		t.Fatalf("incremental run: %v", err)
	}
	if got, want := dst.checksum(t), src.checksum(t); got != want {
		t.Fatalf("after run %s: sink %v, source %v", run.ID, got, want)
	}
	return run
}

// inTens sets the cursor so that ten rows share each value: ids 1..10 are
// at 1, 11..20 at 2, and so on.
func inTens(t *testing.T, src endpoint) {
	t.Helper()
	div := "/" // integer division but on MariaDB
	if src.typ == "mysql" {
		div = "DIV"
	}
	src.exec(t, "UPDATE orders SET updated_at = (id + 9) "+div+" 10")
}

// insertAt inserts rows with ids from..to (inclusive) and cursor value at,
// by the source's own SQL.
func insertAt(t *testing.T, src endpoint, from, to int, at int64) {
	t.Helper()
	var stmts []string
	for id := from; id <= to; id++ {
		ts := "'2025-01-01 00:00:00'"
		if src.typ == "sqlite" {
			ts = "'2025-01-01T00:00:00.000000Z'"
		}
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO orders (id, name, amount, created, flag, updated_at) VALUES (%d, 'late %d', 1.25, %s, true, %d)`, id, id, ts, at))
	}
	src.exec(t, stmts...)
}

// A row inserted after a run with the cursor value of the run's high-water
// mark (the same second, the same batch number) is copied by the next
// run, which reads from the mark inclusive; nothing is doubled: an upsert
// sink takes the rows at the mark again, an append sink skips the keys it
// copied there.
func TestIncrementalRowAtTheMark(t *testing.T) {
	for _, c := range []struct {
		name     string
		src, dst func(*testing.T) endpoint
	}{
		{"postgres-postgres", pgEndpoint, pgEndpoint},
		{"postgres-mariadb", pgEndpoint, mysqlEndpoint},
		{"mariadb-sqlite", mysqlEndpoint, sqliteEndpoint},
		{"sqlite-postgres", sqliteEndpoint, pgEndpoint},
	} {
		for _, mode := range []connectors.WriteMode{connectors.Append, connectors.Upsert} {
			t.Run(c.name+"/"+string(mode), func(t *testing.T) {
				src, dst := c.src(t), c.dst(t)
				src.fill(t, 3000)
				// Ten rows share each cursor value: ids 2991..3000 are at 300.
				inTens(t, src)
				job := incrementalJob(src, dst, mode)
				h := newHome(t)
				if run := syncRun(t, h, job, src, dst); run.Rows != 3000 {
					t.Fatalf("first run copied %d rows, want 3000", run.Rows)
				}
				// Committed after the run read the mark's value: the old
				// strict window (mark < cursor) never copied it.
				insertAt(t, src, 3001, 3001, 300)
				run := syncRun(t, h, job, src, dst)
				want := map[connectors.WriteMode]int64{connectors.Append: 1, connectors.Upsert: 11}[mode]
				if run.Rows != want {
					t.Fatalf("second run copied %d rows, want %d (the new row at the mark)", run.Rows, want)
				}
				// Nothing new: an append copies nothing, an upsert re-reads
				// the rows at the mark.
				want = map[connectors.WriteMode]int64{connectors.Append: 0, connectors.Upsert: 11}[mode]
				if run := syncRun(t, h, job, src, dst); run.Rows != want {
					t.Fatalf("third run copied %d rows, want %d", run.Rows, want)
				}
				// Rows past the mark and more at the new one.
				insertAt(t, src, 3002, 3004, 301)
				insertAt(t, src, 3005, 3005, 300)
				syncRun(t, h, job, src, dst)
				insertAt(t, src, 3006, 3007, 301)
				syncRun(t, h, job, src, dst)
			})
		}
	}
}

// A row that arrives at the cursor value of a run's upper end while the
// run is going (here: between its plan and its resume after a crash) is
// not the run's to copy in append mode, since the next run skips the rows
// the run listed at that value: the next run copies it, once.
func TestIncrementalRowArrivingAtTheUpperEndDuringTheRun(t *testing.T) {
	src, dst := pgEndpoint(t), sqliteEndpoint(t)
	src.fill(t, 3000)
	inTens(t, src)
	job := incrementalJob(src, dst, connectors.Append)
	h := newHome(t)
	crash, c, done := crashAt("take", 1)
	_, err := h.run(job, crash)
	done()
	if err == nil || !c.dead() {
		t.Fatalf("crashed run: %v", err)
	}
	if run := h.activeRun(job); run.CursorUpTo[0] != int64(300) || len(run.CursorKeys) != 10 {
		t.Fatalf("planned window up to %v with keys %v; want 300 and ids 2991..3000", run.CursorUpTo, run.CursorKeys)
	}
	insertAt(t, src, 3001, 3001, 300)
	run, err := h.run(job, proc{})
	if err != nil || run.Rows != 3000 {
		t.Fatalf("resumed run copied %d rows (%v), want the 3000 it planned", run.Rows, err)
	}
	if run := syncRun(t, h, job, src, dst); run.Rows != 1 {
		t.Fatalf("next run copied %d rows, want the 1 that arrived at the mark", run.Rows)
	}
}

// More rows at the greatest cursor value than the job can list: an append
// run leaves them all to a later run, whose window reaches past that
// value; none is lost or doubled.
func TestIncrementalTooManyRowsAtTheUpperEnd(t *testing.T) {
	for _, from := range []func(*testing.T) endpoint{sqliteEndpoint, pgEndpoint} {
		src, dst := from(t), sqliteEndpoint(t)
		t.Run(src.typ, func(t *testing.T) {
			n := 500 + engine.MaxMarkKeys + 1
			src.fill(t, n)
			src.exec(t, `UPDATE orders SET updated_at = CASE WHEN id <= 500 THEN id ELSE 1000 END`)
			job := incrementalJob(src, dst, connectors.Append)
			job.Partitions.TargetRows = 5000
			h := newHome(t)
			run, err := h.run(job, proc{})
			if err != nil || run.Rows != 500 {
				t.Fatalf("first run copied %d rows (%v), want the 500 below the crowded value", run.Rows, err)
			}
			insertAt(t, src, n+1, n+1, 1001)
			if run := syncRun(t, h, job, src, dst); run.Rows != int64(n-500+1) {
				t.Fatalf("second run copied %d rows, want the %d at the crowded value and the one past it", run.Rows, n-500+1)
			}
		})
	}
}

// With incremental.lookback, an upsert run re-reads from the mark minus the
// lookback, so a row committed late with a cursor value older than the
// mark (a long transaction) is copied; without it, that row is lost.
func TestIncrementalLookback(t *testing.T) {
	t.Run("number/postgres-mariadb", func(t *testing.T) {
		src, dst := pgEndpoint(t), mysqlEndpoint(t)
		src.fill(t, 3000)
		src.exec(t, `UPDATE orders SET updated_at = id`)
		job := incrementalJob(src, dst, connectors.Upsert)
		job.Incremental.Lookback = "100"
		h := newHome(t)
		syncRun(t, h, job, src, dst)
		insertAt(t, src, 3001, 3001, 2950) // inside the lookback
		if run := syncRun(t, h, job, src, dst); run.Rows != 102 {
			t.Fatalf("run copied %d rows, want the 101 of 2900..3000 and the late one", run.Rows)
		}
	})
	t.Run("duration/sqlite-postgres", func(t *testing.T) {
		src, dst := sqliteEndpoint(t), pgEndpoint(t)
		src.fill(t, 3000) // created: 2024-01-01 00:00:00 + id seconds
		job := copyJob(src, dst, connectors.Upsert)
		job.Incremental = &engine.IncrementalSpec{Cursor: "created", Lookback: "1m"}
		h := newHome(t)
		syncRun(t, h, job, src, dst)
		// Committed late: 30 seconds before the mark (id 3000's).
		src.exec(t, `INSERT INTO orders (id, name, amount, created, flag) VALUES (3001, 'late', 2.50, '2024-01-01T00:49:30.000000Z', false)`)
		if run := syncRun(t, h, job, src, dst); run.Rows != 62 {
			t.Fatalf("run copied %d rows, want the 61 of the last minute and the late one", run.Rows)
		}
	})
	t.Run("without/postgres-postgres", func(t *testing.T) {
		src, dst := pgEndpoint(t), pgEndpoint(t)
		src.fill(t, 3000)
		src.exec(t, `UPDATE orders SET updated_at = id`)
		job := incrementalJob(src, dst, connectors.Upsert)
		h := newHome(t)
		syncRun(t, h, job, src, dst)
		insertAt(t, src, 3001, 3001, 2950)
		h.run(job, proc{})
		if got, want := dst.checksum(t), src.checksum(t); got.Rows != want.Rows-1 {
			t.Fatalf("without a lookback the late row should be missed: sink %d rows, source %d", got.Rows, want.Rows)
		}
	})
}

// Lookback misuse is refused, naming incremental.lookback: with a sink
// that does not upsert (the rows re-read would be written twice), a value
// that is neither a duration nor a number, or one that does not fit the
// cursor's type (found once a mark exists).
func TestIncrementalLookbackRefused(t *testing.T) {
	spec := func(mode, lookback string) string {
		return fmt.Sprintf(`
name: lb
source: {type: sqlite, dsn: /tmp/s.db, table: orders, key: [id]}
sink: {type: sqlite, dsn: /tmp/t.db, table: orders, mode: %s}
incremental: {cursor: updated_at, lookback: %s}
`, mode, lookback)
	}
	for _, c := range []struct{ mode, lookback, want string }{
		{"append", "10m", `job "lb": incremental.lookback: needs sink.mode upsert (got append): re-reading the rows before the mark would write them into the sink again`},
		{"truncate", "100", `job "lb": incremental.lookback: needs sink.mode upsert (got truncate)`},
		{"upsert", "soon", `job "lb": incremental.lookback: "soon" is neither a duration like 10m (for a time cursor) nor a number (for a numeric one)`},
		{"upsert", "-5", `job "lb": incremental.lookback: must be more than 0 (got -5)`},
	} {
		_, err := engine.ParseJob([]byte(spec(c.mode, c.lookback)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("mode %s, lookback %s: %v; want %q", c.mode, c.lookback, err, c.want)
		}
	}
	if _, err := engine.ParseJob([]byte(spec("upsert", "100"))); err != nil {
		t.Errorf("lookback 100 with upsert: %v", err)
	}

	src, dst := pgEndpoint(t), pgEndpoint(t)
	src.fill(t, 100)
	src.exec(t, `UPDATE orders SET updated_at = id`)
	job := incrementalJob(src, dst, connectors.Upsert)
	job.Incremental.Lookback = "10m"
	err := engine.Check(context.Background(), job)
	if err == nil || !strings.Contains(err.Error(), `incremental.lookback: cursor "updated_at" holds int64 values, so the lookback must be a number (got 10m)`) {
		t.Fatalf("check of lookback 10m on a numeric cursor: %v", err)
	}
	h := newHome(t)
	syncRun(t, h, job, src, dst) // no mark yet: no lookback to apply
	// The refusal is recorded on the run and comes back as its text.
	if _, err := h.run(job, proc{}); err == nil || !strings.Contains(err.Error(), `incremental.lookback: the cursor's values are int64, so the lookback must be a number`) {
		t.Fatalf("lookback 10m on a numeric cursor: %v", err)
	}
}

// engine.Plan shows the window the next run would copy, from the mark
// inclusive, and estimates the rows of that window, not of the table.
func TestPlanShowsTheIncrementalWindow(t *testing.T) {
	for _, mode := range []connectors.WriteMode{connectors.Append, connectors.Upsert} {
		t.Run(string(mode), func(t *testing.T) {
			src, dst := pgEndpoint(t), mysqlEndpoint(t)
			src.fill(t, 20000)
			inTens(t, src)
			src.exec(t, `ANALYZE orders`)
			job := incrementalJob(src, dst, mode)
			h := newHome(t)
			ctx := context.Background()
			run, plan, continued, err := engine.Plan(ctx, job, h.state())
			if err != nil || continued || estRows(plan.Partitions) < 15000 {
				t.Fatalf("plan before the first run: %d rows estimated (%v)", estRows(plan.Partitions), err)
			}
			if w := engine.DescribeWindow(job, run); !strings.Contains(w, "updated_at <= 2000 (no high-water mark yet") {
				t.Fatalf("window before the first run: %s", w)
			}
			syncRun(t, h, job, src, dst)
			insertAt(t, src, 20001, 20005, 2001)
			src.exec(t, `ANALYZE orders`)
			run, plan, _, err = engine.Plan(ctx, job, h.state())
			if err != nil {
				t.Fatal(err)
			}
			w := engine.DescribeWindow(job, run)
			if !strings.Contains(w, "incremental window: 2000 <= updated_at <= 2001, both ends inclusive (from the high-water mark)") {
				t.Fatalf("window after a run: %s", w)
			}
			if mode == connectors.Append && !strings.Contains(w, "at 2000, skips the 10 rows earlier runs copied; at 2001, copies only the 5 rows there now") {
				t.Fatalf("append window after a run: %s", w)
			}
			if n := estRows(plan.Partitions); n < 1 || n > 1000 {
				t.Fatalf("plan after a run estimates %d rows; want about the 15 of the window", n)
			}
			// Plan stored nothing: the run copies that window.
			if run := syncRun(t, h, job, src, dst); run.Rows != map[connectors.WriteMode]int64{connectors.Append: 5, connectors.Upsert: 15}[mode] {
				t.Fatalf("run after the plan copied %d rows", run.Rows)
			}
		})
	}
}

func estRows(parts []partitioner.Partition) int64 {
	var n int64
	for _, p := range parts {
		n += p.EstRows
	}
	return n
}
