package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

// makeOrders creates a demo-shaped orders table of n rows with SQLite's own
// generator.
func makeOrders(t testing.TB, dsn string, n int) {
	t.Helper()
	db := sqlDB(t, dsn)
	mustExec(t, db, `CREATE TABLE orders (
		id INTEGER PRIMARY KEY, customer TEXT NOT NULL, status TEXT NOT NULL,
		amount DECIMAL_TEXT(12,2), created TIMESTAMP_TEXT NOT NULL, note TEXT, qty INTEGER, price REAL, blob BLOB)`)
	mustExec(t, db, fmt.Sprintf(`WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < %d)
		INSERT INTO orders SELECT x,
			'customer-' || (x * 7919 %% 10007),
			CASE x %% 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'returned' END,
			printf('%%d.%%02d', x * 31 %% 100000, x %% 100),
			printf('%%s.%%06d', datetime(1700000000 + x * 37, 'unixepoch'), x * 7919 %% 1000000),
			CASE WHEN x %% 10 = 0 THEN NULL ELSE 'note ' || hex(x) || ' ✓' END,
			x %% 17, x / 7.0, randomblob(x %% 5)
		FROM seq`, n))
	db.Close()
}

// TestParallelPartitions copies a table in partitions read and written
// concurrently into one target file, committing often with their records,
// while another connection keeps reading the target and partitions claim
// theirs: the copy equals the source by count and checksum, each record
// holds its partition's totals, and no reader or writer fails on a lock.
func TestParallelPartitions(t *testing.T) {
	const rows, parts = 10_000, 4
	ctx := context.Background()
	srcDSN, dstDSN := newDB(t), newDB(t)
	makeOrders(t, srcDSN, rows)
	src := openSrc(t, connectors.SourceConfig{DSN: srcDSN, Table: "orders", Key: []string{"id"}, BatchRows: 500})
	schema, _ := src.Schema(ctx)
	sink, err := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dstDSN, Table: "orders", Mode: connectors.Truncate,
		Key: []string{"id"}, CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Prepare(ctx, schema, true); err != nil {
		t.Fatal(err)
	}

	stopReading := make(chan struct{})
	var readerErr error
	var readerRounds int
	var readerWG sync.WaitGroup
	readerWG.Add(1)
	go func() {
		defer readerWG.Done()
		db := sqlDB(t, dstDSN)
		for {
			select {
			case <-stopReading:
				return
			default:
			}
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM orders`).Scan(&n); err != nil {
				readerErr = err
				return
			}
			readerRounds++
			time.Sleep(5 * time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, parts)
	committed := make([]connectors.CommitRecord, parts) // each partition's last record
	for p := 0; p < parts; p++ {
		r := connectors.Range{}
		if p > 0 {
			r.Lo = connectors.Key{int64(p * rows / parts)}
		}
		if p < parts-1 {
			r.Hi = connectors.Key{int64((p + 1) * rows / parts)}
		}
		wg.Add(1)
		go func(p int, name string, r connectors.Range) {
			defer wg.Done()
			spec := connectors.WriterSpec{Job: "copy", Run: "r1", Partition: name, Lease: 1, Range: r, Schema: schema}
			rec, err := sink.(connectors.CommitLog).Claim(ctx, spec)
			if err != nil {
				errs <- err
				return
			}
			w, err := sink.OpenWriter(ctx, spec)
			if err != nil {
				errs <- err
				return
			}
			defer w.Close()
			n, rows := 0, int64(0)
			err = src.Read(ctx, r, func(b arrow.RecordBatch) error {
				if err := w.Write(ctx, b); err != nil {
					return err
				}
				rows += b.NumRows()
				rec.Position = connectors.KeyOf(b, []int{0}, int(b.NumRows()-1))
				if n++; n%2 == 0 {
					rec = advance(rec, spec, rows, nil)
					rows = 0
					return w.Commit(ctx, rec)
				}
				return nil
			})
			if err == nil {
				rec = advance(rec, spec, rows, nil)
				rec.Done = true
				err = w.Commit(ctx, rec)
				committed[p] = rec
			}
			if err != nil {
				errs <- fmt.Errorf("partition %s: %w", name, err)
			}
		}(p, fmt.Sprint("p", p), r)
	}
	wg.Wait()
	close(stopReading)
	readerWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if readerErr != nil {
		t.Errorf("a reader of the target failed while writers committed: %v", readerErr)
	}
	want := checksum(t, src, connectors.Range{})
	got := checksum(t, openSrc(t, connectors.SourceConfig{DSN: dstDSN, Table: "orders"}), connectors.Range{})
	if want.Rows != rows || got != want {
		t.Fatalf("target %v, source %v (want %d rows)", got, want, rows)
	}
	var total int64
	for p, want := range committed {
		rec := claim(t, sink, connectors.WriterSpec{Job: "copy", Run: "r1", Partition: fmt.Sprint("p", p), Lease: 1})
		if fmt.Sprintf("%+v", rec) != fmt.Sprintf("%+v", want) || !rec.Done {
			t.Errorf("record of p%d: %+v, want %+v", p, rec, want)
		}
		total += rec.Rows
	}
	if total != rows {
		t.Errorf("the records count %d rows, want %d", total, rows)
	}
	t.Logf("%d rows in %d partitions, checksum %v; the target was read %d times meanwhile", rows, parts, got, readerRounds)
}

// TestLockIsTransient: a write lock held past the busy timeout fails the
// commit and a claim with a retryable error, and neither rows nor records
// are half written.
func TestLockIsTransient(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	rec, _ := compositeRows(t)
	defer rec.Release()
	writeTable(t, dsn, "c", connectors.Append, nil, rec.Schema())
	s, _ := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dsn, Table: "c", Options: map[string]string{"busy_timeout": "200"}})
	spec := connectors.WriterSpec{Job: "lock", Run: "r1", Partition: "p", Lease: 1, Schema: rec.Schema()}
	claim(t, s, spec)

	db := sqlDB(t, dsn)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	w, err := s.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(ctx, rec)
	start := time.Now()
	err = w.Commit(ctx, connectors.CommitRecord{Job: "lock", Run: "r1", Partition: "p", Lease: 1, Rows: rec.NumRows(), Commits: 1})
	if err == nil || !connectors.IsTransient(err) || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("commit under a held lock: got %v, want a transient \"database is locked\"", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("gave up after %s, before the 200ms busy timeout", waited)
	}
	_, err = s.(connectors.CommitLog).Claim(ctx, connectors.WriterSpec{Job: "lock", Run: "r1", Partition: "q", Lease: 1})
	if err == nil || !connectors.IsTransient(err) || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("claim under a held lock: got %v, want a transient \"database is locked\"", err)
	}
	conn.ExecContext(ctx, "ROLLBACK")
	var n int
	db.QueryRow(`SELECT count(*) FROM c`).Scan(&n)
	if n != 0 {
		t.Errorf("table holds %d rows after the failed commit, want 0", n)
	}
	if got := claim(t, s, spec); got.Commits != 0 {
		t.Errorf("record after the failed commit: %+v, want none committed", got)
	}
	db.QueryRow(`SELECT count(*) FROM datashift_commits WHERE job = 'lock' AND part = 'q'`).Scan(&n)
	if n != 0 {
		t.Errorf("the failed claim left a record")
	}
}

// TestClaimDuringCommit: a newer lease claims a partition while its old
// holder's commit of a large batch holds the write lock on another
// connection. The claim waits for the commit instead of deadlocking or
// failing, and returns the record the commit stored; after it the old
// holder commits nothing more.
func TestClaimDuringCommit(t *testing.T) {
	ctx := context.Background()
	const rows = 5000
	srcDSN := newDB(t)
	makeOrders(t, srcDSN, rows)
	src := openSrc(t, connectors.SourceConfig{DSN: srcDSN, Table: "orders", Key: []string{"id"}})
	schema, _ := src.Schema(ctx)
	dst := newDB(t)
	s, err := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dst, Table: "orders", CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(ctx, schema, false); err != nil {
		t.Fatal(err)
	}
	spec := connectors.WriterSpec{Job: "race", Run: "r1", Partition: "p0", Lease: 1, Schema: schema}
	rec := claim(t, s, spec)
	w, err := s.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := src.Read(ctx, connectors.Range{}, func(b arrow.RecordBatch) error { return w.Write(ctx, b) }); err != nil {
		t.Fatal(err)
	}
	rec = advance(rec, spec, rows, connectors.Key{int64(rows)})
	commitErr := make(chan error, 1)
	go func() { commitErr <- w.Commit(ctx, rec) }()

	// Wait until someone holds the write lock: a probe that cannot take it
	// at once.
	probe, err := sql.Open("sqlite", dst+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	conn, err := probe.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for locked := false; !locked; {
		select {
		case err := <-commitErr:
			t.Fatalf("the commit ended (%v) before the probe saw it hold the lock", err)
		default:
		}
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			locked = true
		} else {
			conn.ExecContext(ctx, "ROLLBACK")
		}
	}

	start := time.Now()
	spec.Lease = 2
	got, err := s.(connectors.CommitLog).Claim(ctx, spec)
	if err != nil {
		t.Fatalf("claim while a commit holds the lock: %v", err)
	}
	if err := <-commitErr; err != nil {
		t.Fatalf("the commit that held the lock: %v", err)
	}
	if got.Commits != 1 || got.Rows != rows || got.Lease != 2 {
		t.Fatalf("the claim returned %+v, want the commit's record under lease 2", got)
	}
	t.Logf("the claim waited %s for the commit", time.Since(start))
	err = w.Commit(ctx, advance(rec, connectors.WriterSpec{Job: "race", Run: "r1", Partition: "p0", Lease: 1}, 0, nil))
	if !errors.Is(err, connectors.ErrLeaseLost) {
		t.Fatalf("the old holder's next commit: %v, want ErrLeaseLost", err)
	}
	var n int
	sqlDB(t, dst).QueryRow(`SELECT count(*) FROM orders`).Scan(&n)
	if n != rows {
		t.Errorf("the table holds %d rows, want %d", n, rows)
	}
}

// TestCancel: a cancelled context stops a read between batches and inside a
// long statement (a sort that would never end), with the context's error.
func TestCancel(t *testing.T) {
	dsn := newDB(t)
	makeOrders(t, dsn, 2000)
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "orders", Key: []string{"id"}, BatchRows: 100})
	ctx, cancel := context.WithCancel(context.Background())
	batches := 0
	err := src.Read(ctx, connectors.Range{}, func(arrow.RecordBatch) error {
		if batches++; batches == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || batches != 2 {
		t.Errorf("cancel between batches: got %v after %d batches, want context.Canceled after 2", err, batches)
	}

	endless := openSrc(t, connectors.SourceConfig{DSN: dsn, Key: []string{"x"},
		Query: `WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq) SELECT -x AS x FROM seq`})
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = endless.Read(ctx, connectors.Range{}, func(arrow.RecordBatch) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancel inside a sort: got %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the interrupted sort returned after %s", took)
	}
}
