// Package integration runs the datashift binary against real servers: a
// process killed with SIGKILL mid-copy and started again must leave the
// sink equal to the source, row for row.
package integration

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	_ "github.com/datashift/datashift/connectors/all"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/demodata"
	"github.com/datashift/datashift/internal/testenv"
)

// binary builds cmd/datashift once per test binary.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(os.TempDir(), fmt.Sprintf("datashift-it-%d", os.Getpid()))
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/datashift").CombinedOutput()
	if err != nil {
		t.Fatalf("build datashift: %v\n%s", err, out)
	}
	return bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	os.Remove(filepath.Join(os.TempDir(), fmt.Sprintf("datashift-it-%d", os.Getpid())))
	os.Exit(code)
}

func pgExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// killAndResume starts `datashift run` on job, SIGKILLs it at random
// moments kills times, then lets it finish, and returns how many kills
// landed while it was still copying.
func killAndResume(t *testing.T, job string, kills int) int {
	t.Helper()
	bin := binary(t)
	state := filepath.Join(t.TempDir(), "state.db")
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	landed := 0
	for i := 0; i < kills; i++ {
		cmd := exec.Command(bin, "run", job, "--state", state, "-q")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Logf("run %d finished before the kill (%v):\n%s", i, err, out.String())
			if err != nil {
				t.Fatalf("run %d failed: %v\n%s", i, err, out.String())
			}
			return landed
		case <-time.After(time.Duration(300+rng.Intn(1500)) * time.Millisecond):
			_ = cmd.Process.Kill()
			<-done
			landed++
		}
	}
	out, err := exec.Command(bin, "run", job, "--state", state, "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	t.Logf("final run:\n%s", out)
	return landed
}

func writeJob(t *testing.T, spec string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func checksum(t *testing.T, typ string, cfg connectors.SourceConfig) connectors.Checksum {
	t.Helper()
	sum, err := engine.TableChecksum(context.Background(), typ, cfg, []string{"id", "name", "amount", "created"})
	if err != nil {
		t.Fatalf("checksum %s: %v", typ, err)
	}
	return sum
}

func TestKillPostgresToPostgres(t *testing.T) {
	src, dst := testenv.Postgres(t), testenv.Postgres(t)
	const rows = 200000
	pgExec(t, src, `CREATE TABLE orders (id bigint PRIMARY KEY, name text, amount numeric(12,2), created timestamptz)`,
		fmt.Sprintf(`INSERT INTO orders SELECT g, 'name ' || g, g / 100.0, now() - g * interval '1 minute' FROM generate_series(1, %d) g`, rows))
	for _, mode := range []string{"append", "truncate", "upsert"} {
		t.Run(mode, func(t *testing.T) {
			table := "orders_" + mode
			job := writeJob(t, fmt.Sprintf(`
name: kill-pg-pg-%s
source: {type: postgres, dsn: %q, table: orders, key: [id]}
sink: {type: postgres, dsn: %q, table: %s, mode: %s, create_table: true}
partitions: {target_rows: 25000}
commit_rows: 5000
batch_rows: 2000
parallelism: 4
rate_limit: {rows_per_second: 60000}
`, mode, src, dst, table, mode))
			landed := killAndResume(t, job, 3)
			if landed == 0 {
				t.Fatal("no kill landed while copying: the test did not test resuming")
			}
			want := checksum(t, "postgres", connectors.SourceConfig{DSN: src, Table: "orders"})
			got := checksum(t, "postgres", connectors.SourceConfig{DSN: dst, Table: table})
			if got != want || got.Rows != rows {
				t.Fatalf("after %d kills: sink %v, source %v", landed, got, want)
			}
		})
	}
}

func TestKillSQLiteToParquet(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.sqlite")
	const rows = 200000
	if err := demodata.Generate(context.Background(), src, rows); err != nil {
		t.Fatal(err)
	}
	sink := filepath.Join(dir, "out")
	job := writeJob(t, fmt.Sprintf(`
name: kill-sqlite-parquet
source: {type: sqlite, dsn: %q, table: orders, key: [id]}
sink: {type: parquet, dsn: %q, mode: truncate}
partitions: {target_rows: 25000}
commit_rows: 5000
batch_rows: 2000
parallelism: 4
rate_limit: {rows_per_second: 60000}
`, src, sink))
	landed := killAndResume(t, job, 3)
	if landed == 0 {
		t.Fatal("no kill landed while copying")
	}
	cols := demodata.Columns
	want, err := engine.TableChecksum(context.Background(), "sqlite", connectors.SourceConfig{DSN: src, Table: "orders"}, cols)
	if err != nil {
		t.Fatal(err)
	}
	got, err := engine.TableChecksum(context.Background(), "parquet", connectors.SourceConfig{DSN: sink}, cols)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || got.Rows != rows {
		t.Fatalf("after %d kills: sink %v, source %v", landed, got, want)
	}
}
