package coordinator_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/datashift/datashift/connectors"
	_ "github.com/datashift/datashift/connectors/postgres"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/testenv"
)

// A snapshot: true run reads a snapshot the leader exports and holds. When
// that leader dies, the next one exports a fresh snapshot for the
// partitions still to run, and the run's record says so: its snapshot is
// another. The run still ends with sink = source.
func TestClusterSnapshotRunOutlivesItsLeader(t *testing.T) {
	for _, b := range clusterBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			src, dst := testenv.Postgres(t), testenv.Postgres(t)
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{`CREATE TABLE orders (id bigint PRIMARY KEY, name text)`,
				`INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 30000) g`, `ANALYZE orders`} {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			conn.Close(ctx)
			want, err := engine.TableChecksum(ctx, "postgres", connectors.SourceConfig{DSN: src, Table: "orders"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			nodes := []*node{startNode(t, b, 2), startNode(t, b, 2), startNode(t, b, 2)}
			job := &engine.Job{
				Name:       "snapshot-leader-dies",
				Source:     engine.SourceSpec{Type: "postgres", DSN: src, Table: "orders", Key: []string{"id"}},
				Sink:       engine.SinkSpec{Type: "postgres", DSN: dst, Table: "orders_copy", Mode: connectors.Append, CreateTable: true},
				Snapshot:   true,
				Partitions: engine.PartitionSpec{TargetRows: 2500},
				BatchRows:  250,
				CommitRows: 500,
				RateLimit:  engine.RateLimitSpec{RowsPerSecond: 3000},
			}
			job.Normalize()
			if err := job.Validate(); err != nil {
				t.Fatal(err)
			}
			c := nodes[0].Cluster()
			submitAndTrigger(t, c, job)
			waitForWorkOn(t, c, job.Name, nodes)
			runs, err := c.Runs(ctx, job.Name, 0)
			if err != nil || len(runs) == 0 || runs[0].Snapshot == "" {
				t.Fatalf("the run while it copies: %+v, %v; want its snapshot", runs, err)
			}
			first := runs[0]
			leader := leaderOf(t, nodes)
			leader.kill()
			run := waitRun(t, liveCluster(nodes, leader), job.Name, 2*time.Minute)
			if run.ID != first.ID || run.State != engine.RunSucceeded || run.Rows != want.Rows {
				t.Fatalf("run %s (first %s): %s, %d rows, %s", run.ID, first.ID, run.State, run.Rows, run.Error)
			}
			if run.Snapshot == "" || run.Snapshot == first.Snapshot {
				t.Errorf("the run's snapshot after its leader died: %q (first %q); want a fresh one", run.Snapshot, first.Snapshot)
			}
			got, err := engine.TableChecksum(ctx, "postgres", connectors.SourceConfig{DSN: dst, Table: "orders_copy"}, nil)
			if err != nil || got != want {
				t.Fatalf("sink %v (%v), source %v", got, err, want)
			}
		})
	}
}
