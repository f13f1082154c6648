package sqlite

import (
	"context"
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
// concurrently into one target file, committing often, while another
// connection keeps reading the target: the copy equals the source by count
// and checksum, and no reader or writer fails on a lock.
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
	for p := 0; p < parts; p++ {
		r := connectors.Range{}
		if p > 0 {
			r.Lo = connectors.Key{int64(p * rows / parts)}
		}
		if p < parts-1 {
			r.Hi = connectors.Key{int64((p + 1) * rows / parts)}
		}
		wg.Add(1)
		go func(name string, r connectors.Range) {
			defer wg.Done()
			w, err := sink.OpenWriter(ctx, connectors.WriterSpec{Partition: name, Range: r, Schema: schema})
			if err != nil {
				errs <- err
				return
			}
			defer w.Close()
			n := 0
			err = src.Read(ctx, r, func(rec arrow.RecordBatch) error {
				if err := w.Write(ctx, rec); err != nil {
					return err
				}
				if n++; n%2 == 0 {
					_, err := w.Commit(ctx)
					return err
				}
				return nil
			})
			if err == nil {
				_, err = w.Commit(ctx)
			}
			if err != nil {
				errs <- fmt.Errorf("partition %s: %w", name, err)
			}
		}(fmt.Sprint("p", p), r)
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
	t.Logf("%d rows in %d partitions, checksum %v; the target was read %d times meanwhile", rows, parts, got, readerRounds)
}

// TestLockIsTransient: a write lock held past the busy timeout fails the
// commit with a retryable error, and the rows are not half written.
func TestLockIsTransient(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	rec, _ := compositeRows(t)
	defer rec.Release()
	writeTable(t, dsn, "c", connectors.Append, nil, rec.Schema())

	db := sqlDB(t, dsn)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	s, _ := connectors.OpenSink(ctx, TypeName, connectors.SinkConfig{DSN: dsn, Table: "c", Options: map[string]string{"busy_timeout": "200"}})
	w, err := s.OpenWriter(ctx, connectors.WriterSpec{Partition: "p", Schema: rec.Schema()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(ctx, rec)
	start := time.Now()
	_, err = w.Commit(ctx)
	if err == nil || !connectors.IsTransient(err) || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("commit under a held lock: got %v, want a transient \"database is locked\"", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("gave up after %s, before the 200ms busy timeout", waited)
	}
	conn.ExecContext(ctx, "ROLLBACK")
	var n int
	db.QueryRow(`SELECT count(*) FROM c`).Scan(&n)
	if n != 0 {
		t.Errorf("table holds %d rows after the failed commit, want 0", n)
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
