package integration

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/coordinator/store/embedded"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/demodata"
	"github.com/datashift/datashift/internal/testenv"
)

// A table copied into Redis becomes one hash per row under the key template.
func TestSQLiteToRedisHashes(t *testing.T) {
	addr, prefix := testenv.RedisPrefix(t)
	src := filepath.Join(t.TempDir(), "src.sqlite")
	const rows = 5000
	if err := demodata.Generate(context.Background(), src, rows); err != nil {
		t.Fatal(err)
	}
	db := embedded.Memory()
	s, err := db.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defer s.Close()
	job := &engine.Job{
		Name:       "sqlite-redis",
		Source:     engine.SourceSpec{Type: "sqlite", DSN: src, Table: "orders", Key: []string{"id"}},
		Sink:       engine.SinkSpec{Type: "redis", DSN: "redis://" + addr + "/0", Mode: connectors.Upsert, Options: map[string]string{"key": prefix + "orders:{id}"}},
		Partitions: engine.PartitionSpec{TargetRows: 1000},
	}
	job.Normalize()
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	run, err := coordinator.RunJob(context.Background(), s, job, coordinator.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if run.Rows != rows {
		t.Fatalf("run moved %d rows", run.Rows)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	var n int
	iter := c.Scan(ctx, 0, prefix+"orders:*", 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	if n != rows {
		t.Fatalf("%d hashes under %sorders:*, want %d", n, prefix, rows)
	}
	h, err := c.HGetAll(ctx, prefix+"orders:"+strconv.Itoa(10)).Result()
	if err != nil {
		t.Fatal(err)
	}
	// Row 10 of the demo table: note is NULL (every tenth row), so the
	// field is absent; the others are there as text.
	if _, has := h["note"]; has || h["id"] != "10" || h["status"] != "shipped" || h["customer"] == "" {
		t.Fatalf("hash of row 10: %v", h)
	}
}
