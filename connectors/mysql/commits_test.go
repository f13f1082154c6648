package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datashift/datashift/connectors"
)

// A writer whose lease was taken over while its rows were on the way
// (LOAD DATA streaming, or INSERTs in the open transaction) commits
// nothing: the new holder's claim does not wait for it, its commit fails
// with ErrLeaseLost, its rows do not land and the record stays the new
// holder's. The new holder then writes the same keys.
func TestStaleWriterRefusedMidStream(t *testing.T) {
	for _, bulk := range []string{bulkLoad, bulkInsert} {
		t.Run(bulk, func(t *testing.T) {
			dsn, db := testDB(t)
			cfg := connectors.SinkConfig{DSN: dsn, Table: "st", Key: []string{"id"}, CreateTable: true, Options: map[string]string{"bulk": bulk}}
			stale, fresh := openSnk(t, cfg), openSnk(t, cfg)
			rec := intTextRecord(seq(1, 3000), texts(3000, "stale"))
			defer rec.Release()
			if err := stale.Prepare(testCtx(t), rec.Schema(), false); err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			old := partSpec("p0", rec.Schema())
			cr := claim(t, stale, old)
			w, err := stale.OpenWriter(ctx, old)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := w.Write(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if bulk == bulkLoad {
				sessionsRunning(t, ctx, db, "LOAD DATA LOCAL INFILE") // the statement waits for more rows
			}

			// The new holder's claim does not wait on the stale transaction.
			next := old
			next.Lease = 2
			claimCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := fresh.Claim(claimCtx, next); err != nil {
				t.Fatalf("claim while the stale writer is mid-stream: %v", err)
			}

			cr.Rows, cr.Commits, cr.Position = rec.NumRows(), 1, connectors.Key{int64(3000)}
			err = w.Commit(ctx, cr)
			if !errors.Is(err, connectors.ErrLeaseLost) {
				t.Fatalf("stale commit: %v, want ErrLeaseLost", err)
			}
			for _, want := range []string{"commit table " + dbName(dsn) + ".datashift_commits", "partition test/r1/p0", "lease 1", "holds lease 2"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if connectors.IsTransient(err) {
				t.Errorf("a lost lease is not transient")
			}
			if n := count(t, db, "SELECT COUNT(*) FROM st"); n != 0 {
				t.Fatalf("%d rows of the stale writer landed", n)
			}
			if got := claim(t, fresh, next); got.Lease != 2 || got.Commits != 0 || got.Rows != 0 || got.Position != nil {
				t.Errorf("record after the refused commit: %+v, want lease 2 and nothing committed", got)
			}
			// The stale writer is done; a retry commits nothing either.
			if err := w.Write(ctx, rec); err == nil {
				t.Error("write after a refused commit succeeded")
			}
			if err := w.Commit(ctx, cr); err == nil {
				t.Error("second commit after a refused one succeeded")
			}

			again := intTextRecord(seq(1, 3000), texts(3000, "fresh"))
			defer again.Release()
			writeAll(t, fresh, next, again)
			if n := count(t, db, "SELECT COUNT(*) FROM st WHERE s = 'fresh'"); n != 3000 {
				t.Errorf("%d rows of the new holder, want 3000", n)
			}
		})
	}
}

// A commit needs the partition's record under its lease: a partition never
// claimed, or whose run was forgotten, commits nothing.
func TestCommitNeedsRecord(t *testing.T) {
	dsn, db := testDB(t)
	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "nr", Key: []string{"id"}, CreateTable: true})
	rec := intTextRecord(seq(1, 10), texts(10, "x"))
	defer rec.Release()
	if err := snk.Prepare(testCtx(t), rec.Schema(), false); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	spec := partSpec("p0", rec.Schema())
	commit := func() error {
		w, err := snk.OpenWriter(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.Write(ctx, rec); err != nil {
			t.Fatal(err)
		}
		return w.Commit(ctx, connectors.CommitRecord{Lease: 1, Rows: 10, Commits: 1})
	}
	if err := commit(); !errors.Is(err, connectors.ErrLeaseLost) || !strings.Contains(err.Error(), "never claimed, or forgotten") {
		t.Errorf("commit without a claim: %v, want ErrLeaseLost", err)
	}
	writeAll(t, snk, spec)
	if err := snk.Forget(ctx, "test", "r1"); err != nil {
		t.Fatal(err)
	}
	if err := commit(); !errors.Is(err, connectors.ErrLeaseLost) {
		t.Errorf("commit after Forget: %v, want ErrLeaseLost", err)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM nr"); n != 0 {
		t.Errorf("%d rows landed without a record", n)
	}
	// A record for another partition is not one for this partition.
	other := spec
	other.Partition = "p1"
	claim(t, snk, other)
	w, err := snk.OpenWriter(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Commit(ctx, connectors.CommitRecord{Job: "test", Run: "r1", Partition: "p0", Lease: 1}); err == nil ||
		!strings.Contains(err.Error(), "was given the record of test/r1/p0") {
		t.Errorf("commit of another partition's record: %v", err)
	}
}

// Positions of every key type come back from the record as they went in.
func TestCommitRecordPositions(t *testing.T) {
	dsn, _ := testDB(t)
	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "pos", Key: []string{"id"}, CreateTable: true})
	rec := intTextRecord(nil, nil)
	defer rec.Release()
	if err := snk.Prepare(testCtx(t), rec.Schema(), false); err != nil {
		t.Fatal(err)
	}
	u, _ := connectors.ParseUUID("123e4567-e89b-12d3-a456-426614174000")
	ctx := testCtx(t)
	for i, pos := range []connectors.Key{
		{int64(-1) << 63},
		{uint64(1) << 63, "é 😀 \t \"q\" \\", []byte{0, 0xff, '\n'}},
		{time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC), 12 * time.Hour, true, 0.1},
		{u, nil},
		{strings.Repeat("long key ", 10000)},
	} {
		spec := partSpec(fmt.Sprintf("p%d", i), rec.Schema())
		claim(t, snk, spec)
		w, err := snk.OpenWriter(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		want := connectors.CommitRecord{Job: spec.Job, Run: spec.Run, Partition: spec.Partition, Lease: 1,
			Position: pos, Rows: 5, Bytes: 1 << 40, BadRows: 2, Commits: 7, Done: i%2 == 0}
		if err := w.Commit(ctx, want); err != nil {
			t.Fatal(err)
		}
		w.Close()
		got := claim(t, snk, spec)
		if connectors.CompareKeys(got.Position, pos) != 0 || got.Rows != 5 || got.Bytes != 1<<40 || got.BadRows != 2 ||
			got.Commits != 7 || got.Done != want.Done || got.Lease != 1 {
			t.Errorf("record %d: got %+v, want %+v", i, got, want)
		}
	}
}

// Claims of many partitions at once, two leases each, neither fail nor
// deadlock, and the newer lease of each ends up holding it.
func TestConcurrentClaims(t *testing.T) {
	dsn, db := testDB(t)
	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "cc", CreateTable: true})
	rec := intTextRecord(nil, nil)
	defer rec.Release()
	if err := snk.Prepare(testCtx(t), rec.Schema(), false); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for p := range 32 {
		for _, lease := range []int64{1, 2} {
			wg.Go(func() {
				spec := partSpec(fmt.Sprintf("p%02d", p), rec.Schema())
				spec.Lease = lease
				if _, err := snk.Claim(ctx, spec); err != nil && !(lease == 1 && errors.Is(err, connectors.ErrLeaseLost)) {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("claim: %v", err)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM datashift_commits WHERE lease = 2"); n != 32 {
		t.Errorf("%d partitions held by lease 2, want 32", n)
	}
}

// Option commit_table puts the records elsewhere: a bare name next to the
// target (in the target's database, which need not be the DSN's), a
// qualified name in its own database.
func TestCommitTableOption(t *testing.T) {
	dsn, db := testDB(t)
	other, _ := testDB(t)
	rec := intTextRecord([]int64{1}, []string{"a"})
	defer rec.Release()
	for _, c := range []struct {
		table, option, want string
	}{
		{"t1", "", dbName(dsn) + ".datashift_commits"},
		{"t2", "my_commits", dbName(dsn) + ".my_commits"},
		{"t3", dbName(other) + ".theirs", dbName(other) + ".theirs"},
		{dbName(other) + ".t4", "", dbName(other) + ".datashift_commits"},
	} {
		cfg := connectors.SinkConfig{DSN: dsn, Table: c.table, Key: []string{"id"}, CreateTable: true}
		if c.option != "" {
			cfg.Options = map[string]string{"commit_table": c.option}
		}
		snk := openSnk(t, cfg)
		if err := snk.Prepare(testCtx(t), rec.Schema(), false); err != nil {
			t.Fatalf("%s: %v", c.table, err)
		}
		writeAll(t, snk, partSpec(c.table, rec.Schema()), rec)
		schema, name, _ := strings.Cut(c.want, ".")
		if n := count(t, db, "SELECT row_count FROM "+quoteIdent(schema)+"."+quoteIdent(name)+" WHERE part = ?", c.table); n != 1 {
			t.Errorf("%s: the record in %s says %d rows, want 1", c.table, c.want, n)
		}
	}
	var name, ddl string
	if err := db.QueryRow("SHOW CREATE TABLE datashift_commits").Scan(&name, &ddl); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"`job` varchar(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL",
		"`run` varchar(64) CHARACTER SET ascii COLLATE ascii_nopad_bin NOT NULL",
		"`part` varchar(64) CHARACTER SET ascii COLLATE ascii_nopad_bin NOT NULL",
		"`position` longtext",
		"`done` tinyint(1) NOT NULL",
		"`updated_at` datetime(6) NOT NULL",
		"PRIMARY KEY (`job`,`run`,`part`)",
		"ENGINE=InnoDB",
	} {
		if !strings.Contains(ddl, want) {
			t.Errorf("commit table lacks %q:\n%s", want, ddl)
		}
	}
	// updated_at is UTC.
	var skew float64
	if err := db.QueryRow("SELECT ABS(TIMESTAMPDIFF(SECOND, MAX(updated_at), UTC_TIMESTAMP())) FROM datashift_commits").Scan(&skew); err != nil || skew > 60 {
		t.Errorf("updated_at is %v s from UTC now (%v)", skew, err)
	}
}

// Prepare checks a commit table that is there, and names it when it is
// not one: a user's table of that name keeps its rows.
func TestCommitTableValidation(t *testing.T) {
	dsn, db := testDB(t)
	rec := intTextRecord([]int64{1}, []string{"a"})
	defer rec.Release()
	ctx := testCtx(t)
	columns := func(replace map[string]string) string {
		defs := []string{
			"job VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL",
			"run VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL",
			"part VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL",
			"lease BIGINT NOT NULL", "position TEXT NULL", "row_count BIGINT NOT NULL", "byte_count BIGINT NOT NULL",
			"bad_rows BIGINT NOT NULL", "commit_count BIGINT NOT NULL", "done BOOLEAN NOT NULL", "updated_at TIMESTAMP(6) NOT NULL",
		}
		for i, d := range defs {
			name, _, _ := strings.Cut(d, " ")
			if r, ok := replace[name]; ok {
				defs[i] = r
			}
		}
		return strings.Join(defs, ", ")
	}
	exec(t, db, "CREATE TABLE datashift_commits (id INT PRIMARY KEY, note TEXT)")
	exec(t, db, "INSERT INTO datashift_commits VALUES (1, 'mine')")
	exec(t, db, "CREATE TABLE by_hand ("+columns(nil)+", PRIMARY KEY (job, run, part))")
	exec(t, db, "CREATE TABLE wide ("+columns(nil)+", extra INT, PRIMARY KEY (job, run, part))")
	exec(t, db, "CREATE TABLE lease_text ("+columns(map[string]string{"lease": "lease VARCHAR(20) NOT NULL"})+", PRIMARY KEY (job, run, part))")
	exec(t, db, "CREATE TABLE short_part ("+columns(map[string]string{"part": "part VARCHAR(10) CHARACTER SET ascii COLLATE ascii_bin NOT NULL"})+", PRIMARY KEY (job, run, part))")
	exec(t, db, "CREATE TABLE pos_not_null ("+columns(map[string]string{"position": "position TEXT NOT NULL"})+", PRIMARY KEY (job, run, part))")
	exec(t, db, "CREATE TABLE ci ("+columns(map[string]string{"job": "job VARCHAR(128) NOT NULL"})+", PRIMARY KEY (job, run, part))")
	exec(t, db, "CREATE TABLE no_pk ("+columns(nil)+", UNIQUE KEY (job, run, part))")
	exec(t, db, "CREATE TABLE myisam ("+columns(nil)+", PRIMARY KEY (job, run, part)) ENGINE=MyISAM")
	exec(t, db, "CREATE VIEW a_view AS SELECT * FROM by_hand")
	for _, c := range []struct {
		option, want string
	}{
		{"", "commit table " + dbName(dsn) + ".datashift_commits: the table there has columns (id, note), not those of a commit table (job, run, part, lease, position, row_count, byte_count, bad_rows, commit_count, done, updated_at): it is not datashift's; name another table with option commit_table"},
		{"by_hand", ""},
		{"wide", "commit table " + dbName(dsn) + ".wide: the table there has columns (job, run, part, lease, position, row_count, byte_count, bad_rows, commit_count, done, updated_at, extra)"},
		{"lease_text", "column lease is varchar(20), want bigint"},
		{"short_part", "column part is varchar(10), want at least varchar(64)"},
		{"pos_not_null", "column position is NOT NULL, want NULL"},
		{"ci", "column job has collation utf8mb4_unicode_ci; record keys need a binary one"},
		{"no_pk", "want PRIMARY KEY (job, run, part), the table has ()"},
		{"myisam", "engine MyISAM has no transactions"},
		{"a_view", "a_view: is a view, not a table"},
	} {
		cfg := connectors.SinkConfig{DSN: dsn, Table: "t", Key: []string{"id"}, CreateTable: true}
		if c.option != "" {
			cfg.Options = map[string]string{"commit_table": c.option}
		}
		err := openSnk(t, cfg).Prepare(ctx, rec.Schema(), false)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("commit_table=%q: %v", c.option, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("commit_table=%q: got %v, want %q", c.option, err, c.want)
		}
	}
	if n := count(t, db, "SELECT COUNT(*) FROM datashift_commits WHERE note = 'mine'"); n != 1 {
		t.Errorf("the user's datashift_commits lost its row")
	}
	// A commit table made by hand to COMMITS.md works.
	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "t", Key: []string{"id"}, Options: map[string]string{"commit_table": "by_hand"}})
	writeAll(t, snk, partSpec("p0", rec.Schema()), rec)
	if got := claim(t, snk, partSpec("p0", rec.Schema())); got.Rows != 1 || got.Commits != 1 {
		t.Errorf("record in a hand-made table: %+v", got)
	}

	for _, c := range []struct {
		cfg  connectors.SinkConfig
		want string
	}{
		{connectors.SinkConfig{DSN: dsn, Table: "t", Options: map[string]string{"commit_table": ""}}, `commit_table="": want a table name or db.table`},
		{connectors.SinkConfig{DSN: dsn, Table: "t", Options: map[string]string{"commit_table": "db."}}, `commit_table="db.": want a table name`},
		{connectors.SinkConfig{DSN: dsn, Table: "t", Options: map[string]string{"commit_table": "T"}}, `commit_table="T" names the target table itself`},
		{connectors.SinkConfig{DSN: dsn, Table: "t", Options: map[string]string{"commit_table": dbName(dsn) + ".t"}}, "names the target table itself"},
	} {
		_, err := connectors.OpenSink(ctx, TypeName, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.cfg.Options, err, c.want)
		}
	}
	// Claim without the table says what makes it.
	missing := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "t", Options: map[string]string{"commit_table": "nowhere"}})
	if _, err := missing.Claim(ctx, partSpec("p0", rec.Schema())); err == nil || !strings.Contains(err.Error(), "Prepare creates it") {
		t.Errorf("claim without a commit table: %v", err)
	}
}

// Names that do not fit the commit table's key are refused before anything
// is written, by Claim and OpenWriter alike.
func TestRecordIDs(t *testing.T) {
	dsn, _ := testDB(t)
	snk := openSnk(t, connectors.SinkConfig{DSN: dsn, Table: "ids", Key: []string{"id"}, CreateTable: true})
	rec := intTextRecord(nil, nil)
	defer rec.Release()
	ctx := testCtx(t)
	if err := snk.Prepare(ctx, rec.Schema(), false); err != nil {
		t.Fatal(err)
	}
	ok := connectors.WriterSpec{Job: strings.Repeat("ü", 128), Run: strings.Repeat("r", 64), Partition: "p 0", Lease: 1, Schema: rec.Schema()}
	writeAll(t, snk, ok)
	for _, c := range []struct {
		job, run, part, want string
	}{
		{"", "r1", "p0", "job name is empty"},
		{strings.Repeat("j", 129), "r1", "p0", "is longer than 128 characters"},
		{"j", strings.Repeat("r", 65), "p0", "is longer than 64 characters"},
		{"j", "r1", "pü", `partition id "pü" is not printable ASCII`},
		{"j", "r\n1", "p0", "is not printable ASCII"},
		{"j", "r1", "p0 ", `partition id "p0 " ends in a space`},
		{"j\xff", "r1", "p0", "is not UTF-8"},
	} {
		spec := connectors.WriterSpec{Job: c.job, Run: c.run, Partition: c.part, Lease: 1, Schema: rec.Schema()}
		if _, err := snk.Claim(ctx, spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("claim %q/%q/%q: got %v, want %q", c.job, c.run, c.part, err, c.want)
		}
		if _, err := snk.OpenWriter(ctx, spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("open writer %q/%q/%q: got %v, want %q", c.job, c.run, c.part, err, c.want)
		}
	}
}
