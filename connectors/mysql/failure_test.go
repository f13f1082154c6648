package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/internal/testenv"
)

// noLocalInfileProxy forwards to MariaDB but clears CLIENT_LOCAL_FILES in
// each client's handshake response, so the server refuses LOAD DATA LOCAL
// exactly as it does for a client that disabled it. It returns the DSN of
// dsn's database through the proxy.
func noLocalInfileProxy(t *testing.T, dsn string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", testenv.MySQLAddr())
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(c, s); c.Close() }()
			go func() {
				defer wg.Done()
				defer s.Close()
				var hdr [4]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				payload := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
				if _, err := io.ReadFull(c, payload); err != nil {
					return
				}
				payload[0] &^= 0x80 // CLIENT_LOCAL_FILES
				s.Write(hdr[:])
				s.Write(payload)
				io.Copy(s, c)
			}()
		}
	}()
	return "root@tcp(" + ln.Addr().String() + ")/" + dbName(dsn)
}

// When the server refuses LOAD DATA LOCAL, the sink says so once and writes
// with INSERTs; with bulk=load_data it fails instead.
func TestLoadDataRefusedFallsBackToInsert(t *testing.T) {
	dsn, db := testDB(t)
	proxied := noLocalInfileProxy(t, dsn)

	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	rec := intTextRecord(seq(1, 3000), texts(3000, "ü\t\\x"))
	defer rec.Release()
	snk := openSnk(t, connectors.SinkConfig{DSN: strings.Replace(proxied, "root@", "root:@", 1), Table: "fb", Key: []string{"id"}, CreateTable: true})
	if err := snk.Prepare(testCtx(t), rec.Schema(), false); err != nil {
		t.Fatal(err)
	}
	half1, half2 := rec.NewSlice(0, 1500), rec.NewSlice(1500, 3000)
	defer half1.Release()
	defer half2.Release()
	// Two writers: the first discovers the refusal, the second starts with INSERTs.
	writeAll(t, snk, partSpec("p1", rec.Schema()), half1)
	if !snk.noLoad.Load() {
		t.Error("the sink did not record that LOAD DATA LOCAL is refused")
	}
	writeAll(t, snk, partSpec("p2", rec.Schema()), half2)
	if n := count(t, db, "SELECT COUNT(*) FROM fb WHERE s = 'ü\t\\\\x'"); n != 3000 {
		t.Errorf("%d rows written through the fallback, want 3000", n)
	}
	if c := strings.Count(logs.String(), "LOAD DATA LOCAL INFILE refused"); c != 1 {
		t.Errorf("the fallback was logged %d times, want once:\n%s", c, logs.String())
	}
	if strings.Contains(logs.String(), "root:@") || !strings.Contains(logs.String(), "4166") {
		t.Errorf("log line: %s", logs.String())
	}

	strict := openSnk(t, connectors.SinkConfig{DSN: proxied, Table: "fb", Key: []string{"id"}, Options: map[string]string{"bulk": bulkLoad}})
	more := intTextRecord([]int64{5000}, []string{"x"})
	defer more.Release()
	err := tryWriteAll(strict, partSpec("p3", rec.Schema()), more)
	if err == nil || !strings.Contains(err.Error(), "refused (option bulk=load_data)") {
		t.Errorf("bulk=load_data through a refusing server: %v", err)
	}
}

// killWhere kills the other sessions whose running statement starts with prefix.
func killWhere(t *testing.T, ctx context.Context, prefix string) int {
	t.Helper()
	_, db := testDB(t)
	ids := sessionsRunning(t, ctx, db, prefix)
	for _, id := range ids {
		exec(t, db, "KILL ?", id)
	}
	return len(ids)
}

// sessionsRunning waits until other sessions run a statement starting with
// prefix, and returns their ids.
func sessionsRunning(t *testing.T, ctx context.Context, db *sql.DB, prefix string) []int64 {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rows, err := db.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()", prefix+"%")
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			ids = append(ids, id)
		}
		rows.Close()
		if len(ids) > 0 {
			return ids
		}
	}
	t.Fatalf("no session running %q", prefix)
	return nil
}

// A connection killed under a read or a write is a transient error: the
// engine retries the partition from its checkpoint.
func TestKilledConnectionIsTransient(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE k (id BIGINT PRIMARY KEY, s VARCHAR(100))")
	exec(t, db, "INSERT INTO k SELECT seq, REPEAT('y', 100) FROM seq_1_to_50000")
	ctx := testCtx(t)

	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "k", Key: []string{"id"}, BatchRows: 100})
	batches := 0
	err := src.Read(ctx, connectors.Range{}, func(rec arrow.RecordBatch) error {
		if batches++; batches == 1 {
			killWhere(t, ctx, "SELECT `id`, `s` FROM")
		}
		return nil
	})
	if err == nil || !connectors.IsTransient(err) {
		t.Errorf("read on a killed connection: %v (transient %v), want a transient error", err, connectors.IsTransient(err))
	}
	// The source still works afterwards: the dead connection left the pool.
	if n, err := src.Count(ctx, connectors.Range{}); err != nil || n != 50000 {
		t.Errorf("count after the kill: %d, %v", n, err)
	}

	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "k2", Key: []string{"id"}, CreateTable: true})
	rec := intTextRecord(seq(1, 2000), texts(2000, "z"))
	defer rec.Release()
	if err := snk.Prepare(ctx, rec.Schema(), false); err != nil {
		t.Fatal(err)
	}
	spec := partSpec("p", rec.Schema())
	cr := claim(t, snk, spec)
	w, err := snk.OpenWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	killWhere(t, ctx, "LOAD DATA LOCAL INFILE")
	cr.Rows, cr.Commits = rec.NumRows(), 1
	err = w.Commit(ctx, cr)
	if err == nil || !connectors.IsTransient(err) {
		t.Errorf("commit on a killed connection: %v, want a transient error", err)
	}
	var ve *connectors.ValueError
	if errors.As(err, &ve) {
		t.Errorf("a dropped connection is not a value error: %v", err)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM k2"); n != 0 {
		t.Errorf("%d rows stored by the killed transaction", n)
	}
	if got := claim(t, snk, spec); got.Commits != 0 || got.Rows != 0 {
		t.Errorf("record after the killed commit: %+v, want nothing committed", got)
	}
}

// Cancelling the context stops a read promptly, without draining the result.
func TestReadCancel(t *testing.T) {
	dsn, db := testDB(t)
	exec(t, db, "CREATE TABLE rc (id BIGINT PRIMARY KEY)")
	exec(t, db, "INSERT INTO rc SELECT seq FROM seq_1_to_50000")
	src := openSrc(t, connectors.SourceConfig{DSN: dsn, Table: "rc", Key: []string{"id"}, BatchRows: 10})
	ctx, cancel := context.WithCancel(context.Background())
	stop := errors.New("stop here")
	n := 0
	err := src.Read(ctx, connectors.Range{}, func(arrow.RecordBatch) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("fn error: got %v after %d batches, want it back after 3", err, n)
	}
	n = 0
	err = src.Read(ctx, connectors.Range{}, func(arrow.RecordBatch) error {
		if n++; n == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 3 {
		t.Errorf("cancelled read: %v after %d batches", err, n)
	}
}

// A Write whose context ends aborts the writer: nothing of its transaction
// is committed, and later calls say the writer is done.
func TestWriteCancel(t *testing.T) {
	dsn, db := testDB(t)
	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "wc", Key: []string{"id"}, CreateTable: true})
	rec := intTextRecord(seq(1, 20000), texts(20000, strings.Repeat("x", 200)))
	defer rec.Release()
	if err := snk.Prepare(testCtx(t), rec.Schema(), false); err != nil {
		t.Fatal(err)
	}
	spec := partSpec("p", rec.Schema())
	cr := claim(t, snk, spec)
	w, err := snk.OpenWriter(testCtx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	head := rec.NewSlice(0, 100)
	defer head.Release()
	if err := w.Write(testCtx(t), head); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(5 * time.Millisecond); cancel() }()
	var werr error
	for i := 0; i < 50 && werr == nil; i++ {
		werr = w.Write(ctx, rec)
	}
	if werr == nil {
		t.Fatal("writes went on after their context was cancelled")
	}
	cr.Commits = 1
	if err := w.Commit(testCtx(t), cr); err == nil {
		t.Error("commit after a cancelled write succeeded")
	}
	if n := count(t, db, "SELECT COUNT(*) FROM wc"); n != 0 {
		t.Errorf("%d rows committed", n)
	}
}
