package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/internal/demodata"
	"github.com/datashift/datashift/internal/testenv"
)

// sinkJob writes a job copying a 10-row demo SQLite table into the given
// sink block.
func sinkJob(t *testing.T, sink string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	if err := demodata.Generate(context.Background(), src, 10); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "job.yaml", `name: cli
source: {type: sqlite, dsn: `+src+`, table: orders, key: [id]}
sink: `+sink+"\n")
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// check reaches the sink and checks its table against the source's
// columns, saying what a run would say, in the spec's field names; the
// run refuses the job with the same words, before it has a state.
func TestCheckRefusesASinkItCannotUse(t *testing.T) {
	pg := testenv.Postgres(t)
	my := testenv.MySQL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE narrow (id bigint PRIMARY KEY, customer text, status text, amount numeric(12,2), created timestamp)`); err != nil {
		t.Fatal(err)
	}
	noDB := strings.Replace(pg, "/dstest_", "/nosuch_", 1)
	port := closedPort(t)
	for _, c := range []struct {
		name, sink, want string
	}{
		{"pg missing database", `{type: postgres, dsn: "` + noDB + `", table: t}`,
			`job "cli": sink: connect to ` + noDB + ": failed to connect to `user=postgres database=nosuch_"},
		{"pg closed port", `{type: postgres, dsn: "postgres://postgres@` + port + `/db?sslmode=disable", table: t}`,
			`job "cli": sink: connect to postgres://postgres@` + port + "/db?sslmode=disable: failed to connect to `user=postgres database=db`"},
		{"pg missing table", `{type: postgres, dsn: "` + pg + `", table: missing}`,
			`job "cli": sink: postgres sink "missing": table does not exist (set sink.create_table: true to create it)`},
		{"pg missing column", `{type: postgres, dsn: "` + pg + `", table: narrow}`,
			`job "cli": sink: postgres sink "narrow": column "note" is missing from the table (columns: id, customer, status, amount, created)`},
		{"pg table that cannot be created", `{type: postgres, dsn: "` + pg + `", table: nosuchschema.t, create_table: true}`,
			`job "cli": sink: postgres sink "nosuchschema"."t": create table: ERROR: schema "nosuchschema" does not exist (SQLSTATE 3F000)`},
		{"mysql missing table", `{type: mysql, dsn: "` + my + `", table: missing}`,
			`job "cli": sink: mysql sink ` + my[strings.LastIndex(my, "/")+1:] + `.missing: table does not exist (set sink.create_table: true to create it)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			job := sinkJob(t, c.sink)
			out, err := datashift(t, "check", job)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("check:\ngot  %v\nwant %s\n%s", err, c.want, out)
			}
			if exitCode(err) != 2 {
				t.Errorf("check exits %d, want 2", exitCode(err))
			}
			if strings.Contains(out, "is valid") {
				t.Errorf("check printed valid:\n%s", out)
			}
			checked := err.Error()
			out, err = datashift(t, "run", job, "-q", "--state", filepath.Join(t.TempDir(), "state"))
			if err == nil || err.Error() != checked {
				t.Fatalf("run says something else than check:\nrun   %v\ncheck %s\n%s", err, checked, out)
			}
		})
	}
	// A sink with create_table that can be created passes, and check
	// creates nothing.
	job := sinkJob(t, `{type: postgres, dsn: "`+pg+`", table: fresh, create_table: true}`)
	if out, err := datashift(t, "check", job); err != nil || !strings.Contains(out, "job cli is valid") {
		t.Fatalf("check of a creatable table: %v\n%s", err, out)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('fresh') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("check created the table (%v, %v)", exists, err)
	}
	db, err := sql.Open("mysql", my)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE ok (id BIGINT PRIMARY KEY, customer TEXT, status TEXT, amount DECIMAL(12,2), created DATETIME(6), note TEXT)`); err != nil {
		t.Fatal(err)
	}
	job = sinkJob(t, fmt.Sprintf(`{type: mysql, dsn: %q, table: ok}`, my))
	if out, err := datashift(t, "check", job); err != nil || !strings.Contains(out, "job cli is valid") {
		t.Fatalf("check of a matching MariaDB table: %v\n%s", err, out)
	}
}

// A spec's mistakes are told in its own words, with the exit code of a
// refused spec; an empty file says so.
func TestSpecMistakesInTheUsersWords(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, spec, want string }{
		{"typo.yaml", "name: typo\nsource: {type: sqlite, dsn: x.db, table: t}\nsink: {type: parquet, dsn: out, create_tabel: true}\n",
			`typo.yaml: job "typo": sink.create_tabel: unknown field (did you mean create_table?)`},
		{"empty.yaml", "", "empty.yaml: job spec: the file is empty: a job needs at least name, source and sink"},
		{"blank.yaml", "\n  \n", "blank.yaml: job spec: the file is empty: a job needs at least name, source and sink"},
	} {
		job := writeFile(t, dir, c.name, c.spec)
		for _, cmd := range [][]string{{"check", job}, {"plan", job}, {"run", job, "-q", "--state", filepath.Join(dir, "state")}} {
			out, err := datashift(t, cmd...)
			if err == nil || err.Error() != c.want {
				t.Errorf("%s %s:\ngot  %v\nwant %s\n%s", cmd[0], c.name, err, c.want, out)
				continue
			}
			if exitCode(err) != 2 {
				t.Errorf("%s %s exits %d, want 2", cmd[0], c.name, exitCode(err))
			}
		}
	}
}

// `null: NULL` in a CSV sink's options is the option null (how NULL is
// written), not a YAML null key dropped on the way.
func TestCSVNullOptionIsKept(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	if err := demodata.Generate(context.Background(), src, 100); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	job := writeFile(t, dir, "job.yaml", `name: csvnull
source: {type: sqlite, dsn: `+src+`, table: orders, key: [id], columns: [id, note]}
sink:
  type: csv
  dsn: `+out+`
  options:
    null: NULL
`)
	if o, err := datashift(t, "run", job, "-q", "--state", filepath.Join(dir, "state")); err != nil {
		t.Fatalf("run: %v\n%s", err, o)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.csv"))
	var text strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(b)
	}
	if !regexp.MustCompile(`(?m)^\d+,NULL\r?$`).MatchString(text.String()) {
		t.Fatalf("no NULL written for a null note in %v:\n%.500s", files, text.String())
	}
}

// A password typed into a DSN without percent-encoding, or with spaces and
// no quotes, never shows: not whole, not in part, whatever the driver
// would make of it, from check or run, for a source or a sink.
func TestMistypedPasswordsNeverShow(t *testing.T) {
	testenv.Need(t, "PostgreSQL", testenv.PostgresAddr())
	testenv.Need(t, "MariaDB", testenv.MySQLAddr())
	pg, my, closed := testenv.PostgresAddr(), testenv.MySQLAddr(), closedPort(t)
	fragments := []string{"Hu7x", "Qz9w", "Lk4v"}
	var dsns []string
	for _, sep := range []string{"@", ":", "/", "?", "#", " ", "@:/?# "} {
		pw := strings.Join(fragments, sep)
		dsns = append(dsns,
			"postgres://postgres:"+pw+"@"+pg+"/db?sslmode=disable",
			"postgresql://postgres:"+pw+"@"+closed+"/db",
			"host=127.0.0.1 port="+closed[strings.LastIndex(closed, ":")+1:]+" user=postgres password="+pw+" dbname=db",
			"root:"+pw+"@tcp("+my+")/db",
			"root:"+pw+"@tcp("+closed+")/db",
			"mysql://root:"+pw+"@"+my+"/db",
		)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	if err := demodata.Generate(context.Background(), src, 10); err != nil {
		t.Fatal(err)
	}
	for i, dsn := range dsns {
		typ := "postgres"
		if strings.Contains(dsn, "tcp(") || strings.HasPrefix(dsn, "mysql:") {
			typ = "mysql"
		}
		for _, job := range []string{
			fmt.Sprintf("name: leak\nsource: {type: sqlite, dsn: %s, table: orders, key: [id]}\nsink: {type: %s, dsn: %q, table: t}\n", src, typ, dsn),
			fmt.Sprintf("name: leak\nsource: {type: %s, dsn: %q, table: t, key: [id]}\nsink: {type: parquet, dsn: %s}\n", typ, dsn, filepath.Join(dir, "out")),
		} {
			path := writeFile(t, dir, fmt.Sprintf("job%d.yaml", i), job)
			for _, cmd := range [][]string{{"check", path}, {"run", path, "-q", "--state", filepath.Join(dir, "state")}} {
				out, err := datashift(t, cmd...)
				if err == nil {
					t.Errorf("%s accepted %q", cmd[0], dsn)
					continue
				}
				for _, f := range fragments {
					if strings.Contains(out+err.Error(), f) {
						t.Errorf("%s with DSN %q shows %q:\n%v\n%s", cmd[0], dsn, f, err, out)
					}
				}
			}
		}
	}
	// What the user sees for the first of them.
	job := writeFile(t, dir, "at.yaml", "name: leak\nsource: {type: sqlite, dsn: "+src+", table: orders}\nsink: {type: postgres, dsn: \"postgres://user:pa@ss@LeakJ1@127.0.0.1/db\", table: t}\n")
	_, err := datashift(t, "check", job)
	if want := `at.yaml: job "leak": sink.dsn: the password holds '@', which a URL must write as %40`; err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// Partition counts fit the work: a table the default target leaves whole
// is split one partition per worker when it is big enough; absurd counts
// and parallelism are refused naming the field or flag, and 0 or a
// negative --parallelism is an error, not the default.
func TestPartitionCountsFitTheWork(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	if err := demodata.Generate(context.Background(), src, 40000); err != nil {
		t.Fatal(err)
	}
	spec := "name: fit\nsource: {type: sqlite, dsn: " + src + ", table: orders, key: [id]}\nsink: {type: parquet, dsn: " + filepath.Join(dir, "out") + ", mode: truncate}\n"
	job := writeFile(t, dir, "fit.yaml", spec)
	out, err := datashift(t, "plan", job)
	if err != nil || !strings.Contains(out, "job fit: 4 partitions, scheme key-range") ||
		!strings.Contains(out, "~40000 rows / target 500000 rows, raised to 4 to keep 4 workers busy (at least 10000 rows each)") {
		t.Fatalf("plan of 40,000 rows with the default target and parallelism: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "state")
	if out, err := datashift(t, "run", job, "-q", "--state", state, "--parallelism", "2"); err != nil || !strings.Contains(out, "succeeded: 40000 rows") || !strings.Contains(out, "2 partitions (key-range)") {
		t.Fatalf("run --parallelism 2: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--parallelism", "0"}, `job "fit": --parallelism: must be at least 1 (got 0)`},
		{[]string{"--parallelism", "-1"}, `job "fit": --parallelism: must be at least 1 (got -1)`},
		{[]string{"--parallelism", "200000"}, `job "fit": --parallelism: 200000 is more than 256 partitions at once: more adds memory, not speed`},
	} {
		out, err := datashift(t, append([]string{"run", job, "-q", "--state", state}, c.args...)...)
		if err == nil || err.Error() != c.want || exitCode(err) != 2 {
			t.Errorf("run %v:\ngot  %v\nwant %s\n%s", c.args, err, c.want, out)
		}
	}
	for _, c := range []struct{ extra, want string }{
		{"partitions: {max: 1000000000, target_rows: 1}\n", `big.yaml: job "fit": partitions.max: 1000000000 is more than 10000: each partition costs a plan entry, a lease and a commit record; raise partitions.target_rows instead`},
		{"parallelism: 0\n", `big.yaml: job "fit": parallelism: must be at least 1 (leave it out for the default, 4)`},
	} {
		job := writeFile(t, dir, "big.yaml", spec+c.extra)
		out, err := datashift(t, "check", job)
		if err == nil || err.Error() != c.want || exitCode(err) != 2 {
			t.Errorf("check with %q:\ngot  %v\nwant %s\n%s", c.extra, err, c.want, out)
		}
	}
}
