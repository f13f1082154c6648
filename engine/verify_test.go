package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/coordinator"
	"github.com/datashift/datashift/engine"
)

// Verify compares range by range, and a sink row no source range holds —
// here a NULL key, which the source's NOT NULL key never plans a range
// for — still shows, in a partition of its own. A job without a key is
// compared whole and says so.
func TestVerifyCoversRowsOutsideTheSourceRanges(t *testing.T) {
	src, dst := sqliteEndpoint(t), sqliteEndpoint(t)
	src.fill(t, 25000)
	dst.fill(t, 25000)
	job := copyJob(src, dst, "truncate")
	ctx := context.Background()
	v, err := engine.Verify(ctx, job)
	if err != nil {
		t.Fatalf("verify of equal tables: %v", err)
	}
	if n := len(v.Partitions); n < 4 || !v.Partitions[n-1].Range.Nulls {
		t.Fatalf("want several key ranges and a NULL-key range last: %+v", v.Partitions)
	}
	if s, k := v.Totals(); s != 25000 || k != 25000 {
		t.Fatalf("totals %d and %d, want 25000", s, k)
	}

	// A sink table that lets its key be NULL, holding one row more.
	dst.exec(t, `CREATE TABLE loose (id INTEGER, name TEXT, amount DECIMAL_TEXT(12,2), created TIMESTAMPTZ_TEXT NOT NULL, flag BOOLEAN, updated_at INTEGER NOT NULL DEFAULT 0)`,
		`INSERT INTO loose SELECT * FROM orders`,
		`INSERT INTO loose (id, name, created, updated_at) VALUES (NULL, 'stray', '2024-01-01T00:00:00.000000Z', 0)`)
	job.Sink.Table = "loose"
	v, err = engine.Verify(ctx, job)
	if !errors.Is(err, engine.ErrDiffers) || err.Error() != `job "copy-sqlite-sqlite": the sink differs from the source in 1 of `+fmt.Sprint(len(v.Partitions))+" partitions" {
		t.Fatalf("verify with a NULL-key row in the sink: %v", err)
	}
	d := v.Differing()
	if len(d) != 1 || !d[0].Range.Nulls || d[0].Source.Rows != 0 || d[0].Sink.Rows != 1 {
		t.Fatalf("want the NULL-key partition to differ by one sink row: %+v", d)
	}

	// Without a key: none named, and the table's primary key not among
	// the columns compared.
	job.Source.Key, job.Source.Columns = nil, []string{"name", "amount", "created", "flag"}
	v, err = engine.Verify(ctx, job)
	if !errors.Is(err, engine.ErrDiffers) || len(v.Partitions) != 1 || !strings.HasPrefix(v.Reason, "no key: the table is compared as one partition") {
		t.Fatalf("keyless verify: %v, %s, %+v", err, v.Reason, v.Partitions)
	}
	if p := v.Partitions[0]; p.Source.Rows != 25000 || p.Sink.Rows != 25001 {
		t.Fatalf("keyless verify read %v and %v", p.Source, p.Sink)
	}
}

// A job that names no key is verified range by range by its table's
// primary key, as its runs copy it, and a changed row is found in its own
// key range.
func TestVerifyKeylessJobByThePrimaryKey(t *testing.T) {
	src, dst := mysqlEndpoint(t), pgEndpoint(t)
	src.fill(t, 20000)
	job := copyJob(src, dst, connectors.Append)
	job.Source.Key = nil
	if _, err := runOnce(t, job, coordinator.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Verify (and the check it starts with) finds the key it compares by
	// without a word on the process's log: `datashift verify` and
	// `datashift run -q` print only what they mean to.
	var logged bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	v, err := engine.Verify(ctx, job)
	slog.SetDefault(prev)
	if err != nil {
		t.Fatalf("verify of the copy: %v", err)
	}
	if logged.Len() > 0 {
		t.Errorf("verify wrote to the process's log:\n%s", logged.String())
	}
	if s, k := v.Totals(); len(v.Partitions) < 4 || s != 20000 || k != 20000 {
		t.Fatalf("want several key ranges holding 20000 rows on each side: %d and %d in %+v", s, k, v.Partitions)
	}
	dst.exec(t, `UPDATE `+dst.table+` SET name = 'changed' WHERE id = 12345`)
	v, err = engine.Verify(ctx, job)
	d := v.Differing()
	if !errors.Is(err, engine.ErrDiffers) || len(d) != 1 || d[0].Range.Lo == nil && d[0].Range.Hi == nil {
		t.Fatalf("want one key range to differ: %v, %+v", err, d)
	}
}
