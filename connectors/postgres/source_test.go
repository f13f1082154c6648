package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/internal/testenv"
	"github.com/jackc/pgx/v5"
)

func TestSourceConfigErrors(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE s (id int PRIMARY KEY, "Name" text)`)
	cases := []struct {
		cfg  connectors.SourceConfig
		want string
	}{
		{connectors.SourceConfig{DSN: dsn, Table: "nope"}, `postgres source "nope": table "nope": table does not exist`},
		{connectors.SourceConfig{DSN: dsn, Table: "s", Key: []string{"ID"}}, `postgres source "s": key column "ID" not found in "s" (columns: id, Name)`},
		{connectors.SourceConfig{DSN: dsn, Table: "s", Columns: []string{"id", "name"}}, `postgres source "s": selected column "name" not found in "s" (columns: id, Name)`},
		{connectors.SourceConfig{DSN: dsn, Table: "s", Query: "SELECT 1"}, `postgres source: set exactly one of table and query`},
		{connectors.SourceConfig{DSN: dsn, Table: "s", Options: map[string]string{"fetch": "1"}}, `postgres source: unknown option "fetch" (takes no options)`},
		{connectors.SourceConfig{DSN: dsn, Table: "s", Where: "idd > 1"}, `postgres source "s": where "idd > 1": ERROR: column "idd" does not exist (SQLSTATE 42703)`},
		{connectors.SourceConfig{DSN: dsn, Query: "SELECT id, id FROM s"}, `postgres source query: query returns column "id" twice; give the columns distinct names`},
		{connectors.SourceConfig{DSN: dsn, Table: "s", Snapshot: "x'; DROP TABLE s"}, `postgres source: snapshot "x'; DROP TABLE s" is not a snapshot id`},
	}
	for _, c := range cases {
		_, err := OpenSource(testCtx(t), c.cfg)
		if err == nil || err.Error() != c.want {
			t.Errorf("got  %v\nwant %s", err, c.want)
		}
	}
	// A quoted, mixed-case, schema-qualified name resolves.
	mustExec(t, conn, `CREATE SCHEMA "My Schema"; CREATE TABLE "My Schema"."Mixed.Case" ("K" int)`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: `"My Schema"."Mixed.Case"`, Key: []string{"K"}})
	if n, err := s.Count(testCtx(t), connectors.Range{}); n != 0 || err != nil {
		t.Errorf("count: %d, %v", n, err)
	}
}

func TestBatchBoundsAndCallbackError(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE big (id int PRIMARY KEY, pad text);
		INSERT INTO big SELECT g, repeat('x', 1000) FROM generate_series(1, 2000) g`)
	// BatchBytes bounds batches long before BatchRows.
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "big", Key: []string{"id"}, BatchBytes: 64 << 10})
	batches, rows := 0, 0
	err := s.Read(testCtx(t), connectors.Range{}, func(rec arrow.RecordBatch) error {
		batches++
		rows += int(rec.NumRows())
		if rec.NumRows() > 65 {
			t.Errorf("batch of %d rows of ~1 KB with BatchBytes 64 KiB", rec.NumRows())
		}
		return nil
	})
	if err != nil || rows != 2000 || batches < 30 {
		t.Errorf("read %d rows in %d batches: %v", rows, batches, err)
	}
	// fn's error stops the read and comes back unchanged; the source keeps
	// working afterwards (the broken connection is not reused).
	stop := errors.New("stop here")
	calls := 0
	err = s.Read(testCtx(t), connectors.Range{}, func(arrow.RecordBatch) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("fn error: got %v after %d calls", err, calls)
	}
	if n := len(readRows(t, s, connectors.Range{Lo: k(int64(1999))})); n != 2 {
		t.Errorf("read after a stopped read: %d rows, want 2", n)
	}
}

// Readers that import an exported snapshot see the data as of the export,
// not a row inserted afterwards.
func TestSnapshot(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE snap (id int PRIMARY KEY); INSERT INTO snap SELECT generate_series(1, 100)`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "snap", Key: []string{"id"}})
	id, release, err := s.ExportSnapshot(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	mustExec(t, conn, `INSERT INTO snap VALUES (101), (0); DELETE FROM snap WHERE id = 50`)

	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, r := range []connectors.Range{{Hi: k(int64(51))}, {Lo: k(int64(51))}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reader, err := OpenSource(testCtx(t), connectors.SourceConfig{DSN: dsn, Table: "snap", Key: []string{"id"}, Snapshot: id})
			if err != nil {
				t.Error(err)
				return
			}
			defer reader.Close()
			err = reader.Read(testCtx(t), r, func(rec arrow.RecordBatch) error { counts[i] += int(rec.NumRows()); return nil })
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if counts[0] != 50 || counts[1] != 50 {
		t.Errorf("readers on the snapshot saw %v rows, want [50 50]", counts)
	}
	snapSrc := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "snap", Key: []string{"id"}, Snapshot: id})
	if n, err := snapSrc.Count(testCtx(t), connectors.Range{}); n != 100 || err != nil {
		t.Errorf("count on the snapshot: %d, %v", n, err)
	}
	if n := len(readRows(t, s, connectors.Range{})); n != 101 {
		t.Errorf("a reader without the snapshot sees %d rows, want 101", n)
	}
	release()
	_, err = snapSrc.Count(testCtx(t), connectors.Range{})
	if err == nil || !strings.Contains(err.Error(), "import snapshot") || !errors.Is(err, connectors.ErrSnapshotGone) {
		t.Errorf("importing a released snapshot: %v", err)
	}
}

// A backend killed mid-read is a retryable error.
func TestTransientOnTerminatedBackend(t *testing.T) {
	dsn, conn := newDB(t)
	// 20 MB, more than socket buffers hold: the server is still sending
	// when the first batch arrives.
	mustExec(t, conn, `CREATE TABLE tr (id int PRIMARY KEY, pad text); INSERT INTO tr SELECT g, repeat('x', 1000) FROM generate_series(1, 20000) g`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "tr", Key: []string{"id"}, BatchRows: 100,
		Options: nil})
	first := true
	err := s.Read(testCtx(t), connectors.Range{}, func(rec arrow.RecordBatch) error {
		if first {
			first = false
			if n := queryInt(t, conn, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE 'COPY%'`); n != 1 {
				t.Errorf("terminated %d backends, want the one reading", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	if err == nil || !connectors.IsTransient(err) {
		t.Fatalf("read with its backend terminated: %v (transient %v)", err, connectors.IsTransient(err))
	}
	if !strings.Contains(err.Error(), `postgres source "tr"`) {
		t.Errorf("error does not name the table: %v", err)
	}
	// The source recovers on a fresh connection.
	if n, err := s.Count(testCtx(t), connectors.Range{}); n != 20000 || err != nil {
		t.Errorf("count after the failure: %d, %v", n, err)
	}
	// Nothing listening: transient too, and the DSN in the message is redacted.
	_, err = OpenSource(testCtx(t), connectors.SourceConfig{DSN: "postgres://u:s3cret-pw@127.0.0.1:1/db?sslmode=disable", Table: "x"})
	if err == nil || !connectors.IsTransient(err) || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "u:xxxxx@127.0.0.1:1/db") {
		t.Errorf("refused connection: %v (transient %v)", err, connectors.IsTransient(err))
	}
}

// A password never shows in an error, even when the server or driver would
// repeat it.
func TestErrorsHidePassword(t *testing.T) {
	testenv.Need(t, "PostgreSQL", testenv.PostgresAddr())
	pw := "Sup3r-Secret-Pw"
	dsn := fmt.Sprintf("postgres://postgres:%s@%s/no_such_db_%d?sslmode=disable", pw, testenv.PostgresAddr(), time.Now().UnixNano())
	_, err := OpenSource(testCtx(t), connectors.SourceConfig{DSN: dsn, Table: "x"})
	if err == nil || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing database: %v", err)
	}
	_, err = OpenSource(testCtx(t), connectors.SourceConfig{DSN: "host=127.0.0.1 password=" + pw + " port=notaport", Table: "x"})
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("bad DSN: %v", err)
	}
	// A message that echoes the password (here from a filter that quotes
	// it) is scrubbed as well.
	dsn2, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE pwt (id int)`)
	withPW := strings.Replace(dsn2, "postgres@", "postgres:"+pw+"@", 1)
	_, err = OpenSource(testCtx(t), connectors.SourceConfig{DSN: withPW, Table: "pwt", Where: "id = '" + pw + "'"})
	if err == nil || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "xxxxx") {
		t.Errorf("error quoting the password: %v", err)
	}
}

func TestCancelledRead(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE cr (id int PRIMARY KEY); INSERT INTO cr SELECT generate_series(1, 20000)`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "cr", Key: []string{"id"}, BatchRows: 10})
	ctx, cancel := context.WithCancel(testCtx(t))
	err := s.Read(ctx, connectors.Range{}, func(arrow.RecordBatch) error { cancel(); time.Sleep(10 * time.Millisecond); return nil })
	if err == nil || connectors.IsTransient(err) {
		t.Errorf("cancelled read: %v (transient %v)", err, connectors.IsTransient(err))
	}
	_ = pgx.ErrNoRows
}

// Values Arrow cannot hold fail the read with the column and the row's key.
func TestSourceValueErrors(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE inf (id int, name text, ts timestamp, d date, n numeric(10,2), PRIMARY KEY (name, id));
		INSERT INTO inf VALUES (1, 'a', now(), now(), 1), (2, 'b', 'infinity', now(), 1), (3, 'c', now(), '-infinity', 1), (4, 'd', now(), now(), 'NaN')`)
	s := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "inf", Key: []string{"name", "id"}})
	for _, c := range []struct {
		lo   string
		want string
	}{
		{"b", `postgres source "inf", range [("b", 0), +∞): column "ts", row with key ("b", 2): infinite timestamp has no Arrow representation`},
		{"c", `postgres source "inf", range [("c", 0), +∞): column "d", row with key ("c", 3): infinite date has no Arrow representation`},
		{"d", `postgres source "inf", range [("d", 0), +∞): column "n", row with key ("d", 4): NaN or infinity has no decimal form`},
	} {
		err := s.Read(testCtx(t), connectors.Range{Lo: k(c.lo, int64(0))}, func(arrow.RecordBatch) error { return nil })
		var ve *connectors.ValueError
		if !errors.As(err, &ve) || err.Error() != c.want || connectors.IsTransient(err) {
			t.Errorf("got  %v\nwant %s", err, c.want)
		}
	}
}

// PrimaryKey names the key's columns in key order, not table order; none
// for a table without one (a unique index is not a primary key) or a query.
func TestPrimaryKey(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE SCHEMA s`)
	mustExec(t, conn, `CREATE TABLE s.composite (a text, b int, c int, PRIMARY KEY (c, a))`)
	mustExec(t, conn, `CREATE TABLE heap (id int UNIQUE)`)
	for _, tc := range []struct {
		cfg  connectors.SourceConfig
		want []string
	}{
		{connectors.SourceConfig{DSN: dsn, Table: "s.composite"}, []string{"c", "a"}},
		{connectors.SourceConfig{DSN: dsn, Table: "heap"}, nil},
		{connectors.SourceConfig{DSN: dsn, Query: "SELECT * FROM s.composite"}, nil},
	} {
		got, err := openSource(t, tc.cfg).PrimaryKey(testCtx(t))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s%s: primary key %v (%v), want %v", tc.cfg.Table, tc.cfg.Query, got, err, tc.want)
		}
	}
}

// A connection the server ended while it sat idle in the pool (a restart,
// idle_session_timeout, an administrator) is found out when it is taken
// again, so the next partition's read does not fail on it.
func TestIdleConnectionEndedByTheServerIsNotReused(t *testing.T) {
	dsn, conn := newDB(t)
	mustExec(t, conn, `CREATE TABLE idle_t (id bigint PRIMARY KEY, v text)`)
	mustExec(t, conn, `INSERT INTO idle_t SELECT g, 'v' || g FROM generate_series(1, 100) g`)
	src := openSource(t, connectors.SourceConfig{DSN: dsn, Table: "idle_t", Key: []string{"id"}, BatchRows: 50})
	want := readRows(t, src, connectors.Range{})

	src.conn.mu.Lock()
	if len(src.conn.idle) == 0 {
		src.conn.mu.Unlock()
		t.Fatal("the read gave no connection back to the pool")
	}
	pids := make([]uint32, len(src.conn.idle))
	for i := range src.conn.idle {
		pids[i] = src.conn.idle[i].conn.PgConn().PID()
		src.conn.idle[i].since = time.Now().Add(-2 * pingAfter) // idle long enough to be checked
	}
	src.conn.mu.Unlock()
	for _, pid := range pids {
		mustExec(t, conn, `SELECT pg_terminate_backend($1)`, int32(pid))
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if queryInt(t, conn, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)`, pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backends %v did not end", pids)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if got := readRows(t, src, connectors.Range{}); fmtRows(got) != fmtRows(want) {
		t.Fatalf("the read after the pool's connection was ended gave\n%s\nwant\n%s", fmtRows(got), fmtRows(want))
	}
}
